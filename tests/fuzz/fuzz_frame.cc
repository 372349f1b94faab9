// libFuzzer target: one frame as the edge server reads it from a socket (issue 8).
//
// The input is header + metadata + body. It goes through the same pure functions the server and
// the device call (common/frame.h, common/codec.h), in the server's order:
//   DecodeHeader (default FrameLimits) -> ParseMeta into the message the type names ->
//   for a tensor message (InferRequest, and the device's InferReply) ValidateTensorMeta against
//   the header's body length, then Decode of the bytes that follow the metadata (raw bodies
//   included: Decode's raw path is AllocateForMeta + copy, what the server does for them).
// Decode runs with max_body_bytes = 1 MiB so that a shape in the metadata cannot make the target
// allocate gigabytes; the default limits are still exercised by ValidateTensorMeta.
//
// Every outcome must be a Status. A crash, a sanitizer report (ASan, UBSan) or a leak is a bug;
// so is a broken invariant checked below (a decoded tensor whose shape is not the metadata's).
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include <google/protobuf/stubs/logging.h>

#include "common/codec.h"
#include "common/frame.h"
#include "common/status.h"
#include "splitinfer.pb.h"

namespace splitinfer {
namespace {

void Check(bool cond) {
  if (!cond) std::abort();  // an invariant the decoder promises; libFuzzer reports the input
}

FrameLimits DecodeLimits() {
  FrameLimits limits;
  limits.max_body_bytes = 1u << 20;
  return limits;
}

// The tensor of an InferRequest or InferReply: what the server (compute thread) and the device
// do with it.
void FuzzTensor(const wire::TensorMeta& meta, const FrameHeader& header, const uint8_t* body,
                size_t body_len) {
  // The I/O thread's check, before the body is read.
  Status st = ValidateTensorMeta(meta, header.body_len, FrameLimits());
  (void)st;
  // Decode validates again, against the bytes actually there.
  static const FrameLimits kDecodeLimits = DecodeLimits();
  Result<at::Tensor> out = Decode(meta, body, body_len, kDecodeLimits);
  if (!out.ok()) {
    Check(!out.status().message().empty());
    return;
  }
  Check(ValidateTensorMeta(meta, body_len, kDecodeLimits).ok());
  Check(out->dim() == meta.shape_size());
  for (int i = 0; i < meta.shape_size(); ++i) Check(out->size(i) == meta.shape(i));
  // float32 for every codec; the wire dtype for CODEC_RAW, zstd or not (codec.h).
  if (meta.codec() == wire::CODEC_RAW) {
    Check(out->element_size() == DTypeSize(meta.dtype()));
  } else {
    Check(out->scalar_type() == at::kFloat);
  }
  Check(out->is_contiguous());
}

template <typename Message>
Status Parse(const uint8_t* meta, size_t meta_len, Message* msg) {
  Status st = ParseMeta(meta, meta_len, msg);
  if (!st.ok()) Check(st.code() == StatusCode::kInvalidArgument);
  return st;
}

void FuzzFrame(const uint8_t* data, size_t size) {
  Result<FrameHeader> header = DecodeHeader(data, size, FrameLimits());
  if (!header.ok()) return;
  // A frame header that decodes encodes back to the same bytes (one meaning per frame).
  const HeaderBytes again = EncodeHeader(*header);
  for (size_t i = 0; i < kFrameHeaderSize; ++i) Check(again[i] == data[i]);

  const uint8_t* meta = data + kFrameHeaderSize;
  const size_t rest = size - kFrameHeaderSize;
  if (header->meta_len > rest) return;  // the server would still be waiting for bytes
  const uint8_t* body = meta + header->meta_len;
  const size_t body_len = rest - header->meta_len;

  switch (header->type) {
    case MessageType::kHello: {
      wire::Hello m;
      (void)Parse(meta, header->meta_len, &m);
      break;
    }
    case MessageType::kHelloReply: {
      wire::HelloReply m;
      (void)Parse(meta, header->meta_len, &m);
      break;
    }
    case MessageType::kInferRequest: {
      wire::InferRequest m;
      if (Parse(meta, header->meta_len, &m).ok()) FuzzTensor(m.tensor(), *header, body, body_len);
      break;
    }
    case MessageType::kInferReply: {
      wire::InferReply m;
      if (Parse(meta, header->meta_len, &m).ok() && m.code() == wire::OK) {
        FuzzTensor(m.tensor(), *header, body, body_len);
      }
      break;
    }
    case MessageType::kError: {
      wire::ErrorReply m;
      if (Parse(meta, header->meta_len, &m).ok()) (void)FromWireCode(m.code());
      break;
    }
    case MessageType::kPlacementRequest: {
      wire::PlacementRequest m;
      (void)Parse(meta, header->meta_len, &m);
      break;
    }
    case MessageType::kPlacementReply: {
      wire::PlacementReply m;
      (void)Parse(meta, header->meta_len, &m);
      break;
    }
    case MessageType::kFetchRequest: {
      wire::FetchRequest m;
      (void)Parse(meta, header->meta_len, &m);
      break;
    }
    case MessageType::kFetchChunk: {
      wire::FetchChunk m;
      (void)Parse(meta, header->meta_len, &m);
      break;
    }
    case MessageType::kGoAway: {
      wire::GoAway m;
      (void)Parse(meta, header->meta_len, &m);
      break;
    }
  }
}

}  // namespace
}  // namespace splitinfer

// Protobuf logs every string field that is not UTF-8 to stderr: noise at 10^5 inputs a second.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  splitinfer::FuzzFrame(data, size);
  return 0;
}

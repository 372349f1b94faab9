#include "common/frame.h"

#include <cstdio>
#include <limits>

namespace splitinfer {
namespace {

template <typename T>
void PutLE(uint8_t* p, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

template <typename T>
T GetLE(const uint8_t* p) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(p[i]) << (8 * i);
  return v;
}

bool KnownType(uint16_t t) { return t >= 1 && t <= 5; }

}  // namespace

const char* MessageTypeName(MessageType type) {
  switch (type) {
    case MessageType::kHello:
      return "Hello";
    case MessageType::kHelloReply:
      return "HelloReply";
    case MessageType::kInferRequest:
      return "InferRequest";
    case MessageType::kInferReply:
      return "InferReply";
    case MessageType::kError:
      return "Error";
  }
  return "Unknown";
}

bool FrameLimits::IsValid(std::string* error) const {
  if (max_meta_bytes < 64) {
    *error = "max_meta_bytes must be >= 64, got " + std::to_string(max_meta_bytes);
    return false;
  }
  if (max_body_bytes < 1 || max_body_bytes > (uint64_t{1} << 40)) {
    *error = "max_body_bytes must be in [1, 2^40], got " + std::to_string(max_body_bytes);
    return false;
  }
  if (max_tensor_rank < 1 || max_tensor_rank > 16) {
    *error = "max_tensor_rank must be in [1, 16], got " + std::to_string(max_tensor_rank);
    return false;
  }
  return true;
}

HeaderBytes EncodeHeader(const FrameHeader& h) {
  HeaderBytes b{};
  PutLE<uint32_t>(&b[0], kFrameMagic);
  PutLE<uint16_t>(&b[4], h.version);
  PutLE<uint16_t>(&b[6], static_cast<uint16_t>(h.type));
  PutLE<uint32_t>(&b[8], h.meta_len);
  PutLE<uint32_t>(&b[12], h.flags);
  PutLE<uint64_t>(&b[16], h.body_len);
  return b;
}

Result<FrameHeader> DecodeHeader(const uint8_t* data, size_t size, const FrameLimits& limits) {
  if (size < kFrameHeaderSize) {
    return InvalidArgumentError("truncated frame header: " + std::to_string(size) + " of " +
                                std::to_string(kFrameHeaderSize) + " bytes");
  }
  const uint32_t magic = GetLE<uint32_t>(data);
  if (magic != kFrameMagic) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "bad frame magic 0x%08x (expected 0x%08x 'SPLT')", magic,
                  kFrameMagic);
    return InvalidArgumentError(buf);
  }
  FrameHeader h;
  h.version = GetLE<uint16_t>(data + 4);
  if (h.version != kProtocolVersion) {
    return FailedPreconditionError("protocol version mismatch: peer speaks " +
                                   std::to_string(h.version) + ", this build speaks " +
                                   std::to_string(kProtocolVersion));
  }
  const uint16_t type = GetLE<uint16_t>(data + 6);
  if (!KnownType(type)) {
    return InvalidArgumentError("unknown message type " + std::to_string(type));
  }
  h.type = static_cast<MessageType>(type);
  h.meta_len = GetLE<uint32_t>(data + 8);
  h.flags = GetLE<uint32_t>(data + 12);
  h.body_len = GetLE<uint64_t>(data + 16);
  if (h.flags != 0) {
    return InvalidArgumentError("unsupported frame flags 0x" + std::to_string(h.flags));
  }
  if (h.meta_len > limits.max_meta_bytes) {
    return ResourceExhaustedError("metadata length " + std::to_string(h.meta_len) +
                                  " exceeds the limit of " + std::to_string(limits.max_meta_bytes) +
                                  " bytes");
  }
  if (h.body_len > limits.max_body_bytes) {
    return ResourceExhaustedError("body length " + std::to_string(h.body_len) +
                                  " exceeds the limit of " + std::to_string(limits.max_body_bytes) +
                                  " bytes");
  }
  return h;
}

size_t DTypeSize(int dtype) {
  switch (dtype) {
    case wire::FLOAT32:
      return 4;
    case wire::FLOAT16:
      return 2;
    case wire::BFLOAT16:
      return 2;
    case wire::FLOAT64:
      return 8;
    case wire::INT8:
      return 1;
    case wire::UINT8:
      return 1;
    case wire::INT32:
      return 4;
    case wire::INT64:
      return 8;
    default:
      return 0;
  }
}

const char* DTypeName(int dtype) {
  switch (dtype) {
    case wire::FLOAT32:
      return "float32";
    case wire::FLOAT16:
      return "float16";
    case wire::BFLOAT16:
      return "bfloat16";
    case wire::FLOAT64:
      return "float64";
    case wire::INT8:
      return "int8";
    case wire::UINT8:
      return "uint8";
    case wire::INT32:
      return "int32";
    case wire::INT64:
      return "int64";
    default:
      return "unspecified";
  }
}

Status ValidateTensorMeta(const wire::TensorMeta& meta, uint64_t body_len,
                          const FrameLimits& limits) {
  const size_t elem = DTypeSize(meta.dtype());
  if (elem == 0) {
    return InvalidArgumentError("unsupported tensor dtype " + std::to_string(meta.dtype()));
  }
  const int rank = meta.shape_size();
  if (rank < 1 || static_cast<uint32_t>(rank) > limits.max_tensor_rank) {
    return InvalidArgumentError("tensor rank " + std::to_string(rank) + " not in [1, " +
                                std::to_string(limits.max_tensor_rank) + "]");
  }
  uint64_t numel = 1;
  std::string shape_str;
  for (int i = 0; i < rank; ++i) {
    const int64_t d = meta.shape(i);
    shape_str += (i ? "," : "") + std::to_string(d);
    if (d < 0) return InvalidArgumentError("negative tensor dimension " + std::to_string(d));
    // Each step stays below max_body_bytes (<= 2^40), so the product never overflows.
    if (d != 0 && numel > limits.max_body_bytes / static_cast<uint64_t>(d)) {
      return ResourceExhaustedError("tensor shape [" + shape_str + "...] exceeds the body limit");
    }
    numel *= static_cast<uint64_t>(d);
  }
  if (numel > std::numeric_limits<uint64_t>::max() / elem || numel * elem != body_len) {
    return InvalidArgumentError("tensor " + std::string(DTypeName(meta.dtype())) + "[" + shape_str +
                                "] needs " + std::to_string(numel * elem) +
                                " bytes but the body has " + std::to_string(body_len));
  }
  return Status::Ok();
}

Status ParseMeta(const uint8_t* data, size_t size, google::protobuf::Message* msg) {
  if (size > static_cast<size_t>(std::numeric_limits<int>::max()) ||
      !msg->ParseFromArray(data, static_cast<int>(size))) {
    return InvalidArgumentError("malformed " + msg->GetTypeName() + " metadata (" +
                                std::to_string(size) + " bytes)");
  }
  return Status::Ok();
}

OutgoingFrame MakeFrame(MessageType type, const google::protobuf::Message& meta, const void* body,
                        size_t body_size, std::shared_ptr<const void> body_owner) {
  OutgoingFrame f;
  meta.SerializeToString(&f.meta);
  FrameHeader h;
  h.type = type;
  h.meta_len = static_cast<uint32_t>(f.meta.size());
  h.body_len = body_size;
  f.header = EncodeHeader(h);
  f.body = body;
  f.body_size = body_size;
  f.body_owner = std::move(body_owner);
  return f;
}

wire::StatusCode ToWireCode(StatusCode code) { return static_cast<wire::StatusCode>(code); }

StatusCode FromWireCode(int code) {
  switch (code) {
    case 0:
    case 1:
    case 2:
    case 3:
    case 4:
    case 5:
    case 8:
    case 9:
    case 12:
    case 13:
    case 14:
      return static_cast<StatusCode>(code);
    default:
      return StatusCode::kUnknown;
  }
}

}  // namespace splitinfer

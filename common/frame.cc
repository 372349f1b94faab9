#include "common/frame.h"

#include <cmath>
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

bool KnownType(uint16_t t) { return t >= 1 && t <= 10; }

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
    case MessageType::kPlacementRequest:
      return "PlacementRequest";
    case MessageType::kPlacementReply:
      return "PlacementReply";
    case MessageType::kFetchRequest:
      return "FetchRequest";
    case MessageType::kFetchChunk:
      return "FetchChunk";
    case MessageType::kGoAway:
      return "GoAway";
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

const char* CodecName(int codec) {
  switch (codec) {
    case wire::CODEC_RAW:
      return "raw";
    case wire::CODEC_FLOAT16:
      return "float16";
    case wire::CODEC_INT8:
      return "int8";
    case wire::CODEC_INT8_CHANNEL:
      return "int8-channel";
    default:
      return "unknown";
  }
}

const char* LosslessName(int lossless) {
  switch (lossless) {
    case wire::LOSSLESS_NONE:
      return "none";
    case wire::LOSSLESS_ZSTD:
      return "zstd";
    default:
      return "unknown";
  }
}

bool IsRawTensorBody(const wire::TensorMeta& meta) {
  return meta.codec() == wire::CODEC_RAW && meta.lossless() == wire::LOSSLESS_NONE;
}

size_t CodecElementSize(const wire::TensorMeta& meta) {
  switch (meta.codec()) {
    case wire::CODEC_RAW:
      return DTypeSize(meta.dtype());
    case wire::CODEC_FLOAT16:
      return 2;
    case wire::CODEC_INT8:
    case wire::CODEC_INT8_CHANNEL:
      return 1;
    default:
      return 0;
  }
}

namespace {

// The codec's parameters: none for RAW and FLOAT16, one (scale, zero point) for INT8, one per
// channel for INT8_CHANNEL. A field that does not belong to the codec is refused rather than
// ignored, so that a frame has one meaning only.
Status ValidateCodecParams(const wire::TensorMeta& meta) {
  const int codec = meta.codec();
  const std::string name = CodecName(codec);
  int expected = 0;
  if (codec == wire::CODEC_INT8) {
    expected = 1;
  } else if (codec == wire::CODEC_INT8_CHANNEL) {
    const int axis = meta.channel_axis();
    if (axis < 0 || axis >= meta.shape_size()) {
      return InvalidArgumentError("TensorMeta.channel_axis " + std::to_string(axis) +
                                  " out of range for a rank-" + std::to_string(meta.shape_size()) +
                                  " tensor");
    }
    // The metadata limit bounds how many scales a frame can carry, so this fits an int.
    const int64_t channels = meta.shape(axis);
    if (channels != meta.scale_size()) {
      return InvalidArgumentError("TensorMeta.scale has " + std::to_string(meta.scale_size()) +
                                  " values but the tensor has " + std::to_string(channels) +
                                  " channels along axis " + std::to_string(axis));
    }
    expected = meta.scale_size();
  }
  if (codec != wire::CODEC_INT8_CHANNEL && meta.channel_axis() != 0) {
    return InvalidArgumentError("TensorMeta.channel_axis is " +
                                std::to_string(meta.channel_axis()) + " but codec " + name +
                                " has no channel axis");
  }
  if (meta.scale_size() != expected) {
    return InvalidArgumentError("TensorMeta.scale has " + std::to_string(meta.scale_size()) +
                                " values but codec " + name + " takes " + std::to_string(expected));
  }
  if (meta.zero_point_size() != expected) {
    return InvalidArgumentError("TensorMeta.zero_point has " +
                                std::to_string(meta.zero_point_size()) + " values but codec " +
                                name + " takes " + std::to_string(expected));
  }
  for (int i = 0; i < expected; ++i) {
    const float s = meta.scale(i);
    if (!std::isfinite(s) || !(s > 0.0f)) {
      return InvalidArgumentError("TensorMeta.scale[" + std::to_string(i) +
                                  "] = " + std::to_string(s) + ": scales must be finite and > 0");
    }
    const int32_t z = meta.zero_point(i);
    if (z < 0 || z > 255) {
      return InvalidArgumentError("TensorMeta.zero_point[" + std::to_string(i) +
                                  "] = " + std::to_string(z) + " out of [0, 255]");
    }
  }
  return Status::Ok();
}

}  // namespace

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
  const std::string tensor =
      "tensor " + std::string(DTypeName(meta.dtype())) + "[" + shape_str + "]";
  if (!IsRawTensorBody(meta) || meta.raw_bytes() != 0 || meta.scale_size() != 0 ||
      meta.zero_point_size() != 0 || meta.channel_axis() != 0) {
    const int codec = meta.codec();
    if (codec < wire::CODEC_RAW || codec > wire::CODEC_INT8_CHANNEL) {
      return InvalidArgumentError("unknown TensorMeta.codec " + std::to_string(codec));
    }
    if (meta.lossless() < wire::LOSSLESS_NONE || meta.lossless() > wire::LOSSLESS_ZSTD) {
      return InvalidArgumentError("unknown TensorMeta.lossless " + std::to_string(meta.lossless()));
    }
    if (codec != wire::CODEC_RAW && meta.dtype() != wire::FLOAT32) {
      return InvalidArgumentError(std::string("TensorMeta.dtype must be float32 with codec ") +
                                  CodecName(codec) + " (the decoded type), got " +
                                  DTypeName(meta.dtype()));
    }
    // numel <= 2^40 and elem <= 8: no overflow. The decoded tensor is what the receiver
    // allocates, so it is held to the body limit whatever the body's own size.
    const uint64_t decoded = numel * elem;
    if (decoded > limits.max_body_bytes) {
      return ResourceExhaustedError("decoded " + tensor + " of " + std::to_string(decoded) +
                                    " bytes exceeds the limit of " +
                                    std::to_string(limits.max_body_bytes) + " bytes");
    }
    SPLITINFER_RETURN_IF_ERROR(ValidateCodecParams(meta));
    const uint64_t raw = numel * CodecElementSize(meta);
    const std::string encoded = tensor + " encoded as " + CodecName(codec);
    if (meta.lossless() == wire::LOSSLESS_NONE) {
      if (meta.raw_bytes() != 0 && meta.raw_bytes() != raw) {
        return InvalidArgumentError("TensorMeta.raw_bytes " + std::to_string(meta.raw_bytes()) +
                                    " does not match " + encoded + " (" + std::to_string(raw) +
                                    " bytes)");
      }
      if (body_len != raw) {
        return InvalidArgumentError(encoded + " needs " + std::to_string(raw) +
                                    " bytes but the body has " + std::to_string(body_len));
      }
      return Status::Ok();
    }
    // A lossless stage: raw_bytes is the decompressed size, fixed by the shape (so a stream
    // that claims more is refused here, before any allocation).
    if (meta.raw_bytes() != raw) {
      return InvalidArgumentError(
          "TensorMeta.raw_bytes " + std::to_string(meta.raw_bytes()) + " does not match " +
          encoded + " (" + std::to_string(raw) + " bytes before " + LosslessName(meta.lossless()) +
          ")" + (meta.raw_bytes() == 0 ? ": a lossless stage needs its decoded size" : ""));
    }
    return Status::Ok();
  }
  if (numel > std::numeric_limits<uint64_t>::max() / elem || numel * elem != body_len) {
    return InvalidArgumentError(tensor + " needs " + std::to_string(numel * elem) +
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
    case 15:
    case 16:
      return static_cast<StatusCode>(code);
    default:
      return StatusCode::kUnknown;
  }
}

}  // namespace splitinfer

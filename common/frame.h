// FrameCodec: the binary framing of the splitinfer wire protocol.
//
// A frame is
//   FrameHeader  kFrameHeaderSize bytes, little-endian, fixed layout:
//                  u32 magic ('S','P','L','T'), u16 protocol version, u16 message type,
//                  u32 metadata length, u32 flags (must be 0), u64 body length
//   metadata     a protobuf message (proto/splitinfer.proto) chosen by the message type
//   body         raw bytes (a tensor), possibly empty
//
// Everything here is pure functions over bytes: no sockets, no LibTorch. Every length read from
// the network is checked against FrameLimits before anything is allocated, and header fields are
// decoded byte by byte (no casts of received bytes onto structs).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "splitinfer.pb.h"

namespace splitinfer {

inline constexpr uint32_t kFrameMagic = 0x544C5053;  // "SPLT" as little-endian bytes
inline constexpr uint16_t kProtocolVersion = 1;
inline constexpr size_t kFrameHeaderSize = 24;

enum class MessageType : uint16_t {
  kHello = 1,
  kHelloReply = 2,
  kInferRequest = 3,
  kInferReply = 4,
  kError = 5,
  kPlacementRequest = 6,
  kPlacementReply = 7,
  kFetchRequest = 8,
  kFetchChunk = 9,
  kGoAway = 10,  // server -> device: no new requests here (wire::GoAway)
};
const char* MessageTypeName(MessageType type);

// Upper bounds on what a peer may send. Checked before allocation.
struct FrameLimits {
  uint32_t max_meta_bytes = 64 * 1024;
  uint64_t max_body_bytes = 256ull << 20;  // 256 MiB: a VGG-16 feature map at 224 is ~12 MiB
  uint32_t max_tensor_rank = 8;

  bool IsValid(std::string* error) const;
};

struct FrameHeader {
  uint16_t version = kProtocolVersion;
  MessageType type = MessageType::kError;
  uint32_t meta_len = 0;
  uint32_t flags = 0;
  uint64_t body_len = 0;
};

using HeaderBytes = std::array<uint8_t, kFrameHeaderSize>;

HeaderBytes EncodeHeader(const FrameHeader& header);

// Decodes and validates a header. Errors, each with its own message:
//   kInvalidArgument     bad magic, unknown message type, nonzero flags
//   kFailedPrecondition  protocol version other than kProtocolVersion
//   kResourceExhausted   meta_len or body_len over the limits
Result<FrameHeader> DecodeHeader(const uint8_t* data, size_t size, const FrameLimits& limits);

// Bytes per element of a wire dtype; 0 for DTYPE_UNSPECIFIED or an unknown value.
size_t DTypeSize(int dtype);
const char* DTypeName(int dtype);

// Names of the codec enums of TensorMeta ("raw", "float16", "int8", "int8-channel"; "none",
// "zstd"), "unknown" for other values.
const char* CodecName(int codec);
const char* LosslessName(int lossless);

// True when the body is the tensor's own bytes (codec RAW, no lossless stage): the receiver reads
// it straight into a tensor from AllocateForMeta (tensor_wire.h). Otherwise the body is decoded
// with Decode (codec.h).
bool IsRawTensorBody(const wire::TensorMeta& meta);

// Bytes per element of the codec's output, before the lossless stage: DTypeSize(dtype) for RAW,
// 2 for FLOAT16, 1 for the int8 codecs; 0 for an unknown codec.
size_t CodecElementSize(const wire::TensorMeta& meta);

// Checks that `meta` describes exactly `body_len` bytes: known dtype, rank in [1, max_rank],
// dimensions >= 0, no overflow in the element count, and numel * dtype size == body_len.
//
// With codec fields (issue 6) it also checks, before anything is allocated: known codec and
// lossless ids; dtype FLOAT32 for codecs other than RAW (the decoded type); the decoded tensor
// within limits.max_body_bytes (kResourceExhausted: the bound on a decompressed body); the
// codec's parameters (one scale and zero point per tensor, or one per index of channel_axis;
// scales finite and > 0; zero points in [0, 255]; no parameters for RAW and FLOAT16); raw_bytes
// = numel * CodecElementSize (0 allowed without a lossless stage), and body_len = raw_bytes
// without a lossless stage. Every message names the field. What needs the body itself (a zstd
// frame's content size, whether it decompresses) is checked by Decode (codec.h).
Status ValidateTensorMeta(const wire::TensorMeta& meta, uint64_t body_len,
                          const FrameLimits& limits);

// Parses metadata bytes into `msg`, naming the message type in the error.
Status ParseMeta(const uint8_t* data, size_t size, google::protobuf::Message* msg);
inline Status ParseMeta(const std::string& bytes, google::protobuf::Message* msg) {
  return ParseMeta(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), msg);
}

// A frame ready to send: header and metadata bytes owned here, body borrowed from `body_owner`
// (e.g. a tensor's storage) so that the tensor is never copied into a string. The three pieces
// go out as one gather-write (see frame_io.h).
struct OutgoingFrame {
  HeaderBytes header{};
  std::string meta;
  const void* body = nullptr;
  size_t body_size = 0;
  std::shared_ptr<const void> body_owner;  // keeps `body` alive until the write completes

  size_t total_size() const { return header.size() + meta.size() + body_size; }
};

// Builds a frame of `type` around `meta` and an optional body.
OutgoingFrame MakeFrame(MessageType type, const google::protobuf::Message& meta,
                        const void* body = nullptr, size_t body_size = 0,
                        std::shared_ptr<const void> body_owner = nullptr);

// Conversions between Status and the wire enum (1:1 by value; unknown values become kUnknown).
wire::StatusCode ToWireCode(StatusCode code);
StatusCode FromWireCode(int code);

}  // namespace splitinfer

// Codecs for the split tensor on the wire (issue 6): the device encodes the tensor at boundary k
// before sending it, the edge decodes it before running units k+1..N.
//
// A codec is a lossy stage (or none) and an optional lossless stage over its bytes:
//
//   fp32    the raw float32 body of before (TensorMeta.codec = CODEC_RAW)
//   fp16    IEEE binary16, round to nearest even (CODEC_FLOAT16)
//   int8    asymmetric linear quantization to uint8, one (scale, zero point) per tensor
//           (CODEC_INT8): lo = min(min x, 0), hi = max(max x, 0),
//           scale = max(hi/255 - lo/255, FLT_MIN), zero_point = round(-lo / scale) in [0, 255],
//           q = clamp(round(x / scale + zero_point), 0, 255), decoded x' = (q - zero_point) * scale
//   int8c   the same with one (scale, zero point) per channel, along dim 1 of an NCHW or NC tensor
//           (CODEC_INT8_CHANNEL); a 1-D tensor has no channel dimension and is coded as int8
//   +zstd   any of them followed by zstd (TensorMeta.lossless = LOSSLESS_ZSTD); the body is one
//           zstd frame recording its content size, which must equal TensorMeta.raw_bytes, and
//           (as Encode writes it) a checksum, so a corrupted body fails to decode
//
// Error bounds, x the float32 input and x' = Decode(Encode(x)):
//   fp32    x' == x bit for bit (NaN payloads and Inf included).
//   fp16    |x' - x| <= 2^-11 |x| for |x| in the normal range [2^-14, 65504], and <= 2^-25 below
//           it (subnormal spacing 2^-24). NaN stays NaN and +-Inf stays +-Inf; a finite x whose
//           magnitude rounds beyond 65504 is refused (kInvalidArgument) instead of becoming Inf.
//   int8    |x' - x| <= scale / 2, plus float32 rounding (at most scale * 2^-14 more), with scale
//           the element's (per tensor or per channel). Zeros (a post-ReLU feature map is mostly
//           zeros) decode to exactly 0, and a constant or all-zero tensor decodes exactly up to
//           the same rounding. NaN or Inf cannot be quantized: Encode refuses such a tensor
//           (kInvalidArgument), the caller sends fp32 or fp16 instead.
//   +zstd   lossless: Decode(Encode(x, c + zstd)) == Decode(Encode(x, c)) bit for bit.
//
// Decode is bit-exact across machines: each element is one float subtraction of small integers
// (exact) and one multiplication, or an exact fp16 -> fp32 widening; so the edge and a device
// that decodes its own tensor (verification, local fallback) get the same tensor.
//
// Everything read from the network is validated before use: ValidateTensorMeta (frame.h) checks
// the metadata before the body is read or anything allocated; Decode re-checks it and then the
// zstd frame (content size recorded and equal to raw_bytes, exactly one frame, decompresses).
//
// Thread safety: all functions are reentrant; zstd contexts are thread-local and reused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <ATen/ATen.h>

#include "common/frame.h"
#include "common/status.h"

namespace splitinfer {

enum class Codec { kFp32, kFp16, kInt8, kInt8Channel };

// What int8c may carry: one float scale and one zero point per channel must fit the metadata
// limit (64 KiB by default) with room to spare.
inline constexpr int64_t kMaxQuantChannels = 8192;

struct CodecSpec {
  static constexpr int kDefaultZstdLevel = 1;  // the fastest level; see docs/benchmarks.md

  Codec codec = Codec::kFp32;
  bool zstd = false;
  int zstd_level = kDefaultZstdLevel;  // in [-7, 19], not 0

  // "fp32", "fp16", "int8", "int8c", each optionally followed by "+zstd" or "+zstd:LEVEL".
  static Result<CodecSpec> Parse(const std::string& text);
  std::string ToString() const;

  // fp32 without a lossless stage: the body is the tensor itself (sent zero-copy, no Encode).
  bool IsRaw() const { return codec == Codec::kFp32 && !zstd; }
  bool operator==(const CodecSpec& o) const {
    return codec == o.codec && zstd == o.zstd && (!zstd || zstd_level == o.zstd_level);
  }
  bool operator!=(const CodecSpec& o) const { return !(*this == o); }
};

// An encoded tensor: the metadata to send (dtype, shape and the codec fields) and the body.
struct Encoded {
  wire::TensorMeta meta;
  // A contiguous CPU tensor whose bytes are the body: the input itself for fp32 (no copy), a
  // float16 tensor for fp16, otherwise a 1-D uint8 tensor.
  at::Tensor body;

  size_t body_bytes() const { return body.defined() ? body.nbytes() : 0; }
  const uint8_t* body_data() const {
    return body.defined() ? static_cast<const uint8_t*>(body.data_ptr()) : nullptr;
  }
};

// Encodes a float32 tensor (any device, any strides; rank >= 1). kInvalidArgument for another
// dtype, for values a codec cannot carry (see the bounds above), and for int8c with more than
// kMaxQuantChannels channels.
Result<Encoded> Encode(const at::Tensor& t, const CodecSpec& spec);

// Decodes a body described by `meta` into a CPU tensor: float32 for every codec, `meta.dtype`
// for CODEC_RAW. Validates meta against len and limits first (ValidateTensorMeta), then the zstd
// frame; every error is kInvalidArgument (kResourceExhausted for sizes over the limits) and names
// the field. `body` needs no particular alignment.
Result<at::Tensor> Decode(const wire::TensorMeta& meta, const uint8_t* body, size_t len,
                          const FrameLimits& limits);
inline Result<at::Tensor> Decode(const Encoded& e, const FrameLimits& limits) {
  return Decode(e.meta, e.body_data(), e.body_bytes(), limits);
}

}  // namespace splitinfer

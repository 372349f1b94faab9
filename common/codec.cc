#include "common/codec.h"

#include <zstd.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "common/codec_kernels.h"
#include "common/tensor_wire.h"

namespace splitinfer {
namespace {

constexpr int kMinZstdLevel = -7;
constexpr int kMaxZstdLevel = 19;

// Creating a zstd context allocates (a compression context at level 1 for a feature map holds
// about a MiB), so each thread keeps one of each and Encode/Decode stay reentrant without locks.
struct ZstdContexts {
  ZSTD_CCtx* c = nullptr;
  ZSTD_DCtx* d = nullptr;
  ~ZstdContexts() {
    ZSTD_freeCCtx(c);
    ZSTD_freeDCtx(d);
  }
};

ZstdContexts& Contexts() {
  thread_local ZstdContexts ctx;
  return ctx;
}

const char* BaseName(Codec c) {
  switch (c) {
    case Codec::kFp32:
      return "fp32";
    case Codec::kFp16:
      return "fp16";
    case Codec::kInt8:
      return "int8";
    case Codec::kInt8Channel:
      return "int8c";
  }
  return "?";
}

// Scale and zero point of the range [mn, mx], widened to hold 0 so that zeros are exact.
struct QuantParams {
  float scale;
  float zero_point;  // an integer in [0, 255]
};

QuantParams ParamsFor(float mn, float mx) {
  const float lo = std::min(mn, 0.0f), hi = std::max(mx, 0.0f);
  // hi/255 - lo/255 cannot overflow where (hi - lo) can (up to 2 * FLT_MAX). FLT_MIN keeps an
  // all-zero range a valid positive scale: every q is then the zero point and decodes to 0.
  const float scale = std::max(hi / 255.0f - lo / 255.0f, FLT_MIN);
  const float z = std::nearbyint(-lo / scale);
  return {scale, std::min(std::max(z, 0.0f), 255.0f)};
}

Status NonFinite(const char* codec) {
  return InvalidArgumentError(std::string("codec ") + codec +
                              ": the tensor has NaN or Inf values, which int8 cannot represent "
                              "(send it as fp16 or fp32)");
}

Status EncodeFp16(const at::Tensor& x, at::Tensor* stage) {
  at::Tensor h = x.to(at::kHalf);  // round to nearest even; NaN and +-Inf are kept
  // A finite value beyond the float16 range became Inf: refuse it rather than send a value
  // outside the stated bound. The second pass runs only when the output has an Inf at all.
  if (h.isinf().any().item<bool>() && (h.isinf() & x.isfinite()).any().item<bool>()) {
    return InvalidArgumentError(
        "codec fp16: the tensor has finite values beyond the float16 range (|x| >= 65520 rounds "
        "to Inf); send it as fp32");
  }
  *stage = std::move(h);
  return Status::Ok();
}

Status EncodeInt8(const at::Tensor& x, wire::TensorMeta* meta, at::Tensor* stage) {
  float mn = 0.0f, mx = 0.0f;
  if (x.numel() > 0) {
    auto mm = at::aminmax(x);  // propagates NaN
    mn = std::get<0>(mm).item<float>();
    mx = std::get<1>(mm).item<float>();
  }
  if (!std::isfinite(mn) || !std::isfinite(mx)) return NonFinite("int8");
  const QuantParams p = ParamsFor(mn, mx);
  at::Tensor q = at::empty({x.numel()}, at::TensorOptions().dtype(at::kByte));
  codec_kernels::QuantizeU8(x.data_ptr<float>(), static_cast<size_t>(x.numel()), p.scale,
                            p.zero_point, q.data_ptr<uint8_t>());
  meta->set_codec(wire::CODEC_INT8);
  meta->add_scale(p.scale);
  meta->add_zero_point(static_cast<int32_t>(p.zero_point));
  *stage = std::move(q);
  return Status::Ok();
}

Status EncodeInt8Channel(const at::Tensor& x, wire::TensorMeta* meta, at::Tensor* stage) {
  if (x.dim() < 2) return EncodeInt8(x, meta, stage);  // no channel dimension
  const int64_t channels = x.size(1);
  if (channels > kMaxQuantChannels) {
    return InvalidArgumentError("codec int8c: " + std::to_string(channels) +
                                " channels, more than the " + std::to_string(kMaxQuantChannels) +
                                " whose parameters fit the metadata (use int8)");
  }
  const int64_t outer = x.size(0);
  const int64_t inner = outer * channels > 0 ? x.numel() / (outer * channels) : 0;
  std::vector<float> scale(static_cast<size_t>(channels)), zero(static_cast<size_t>(channels));
  at::Tensor mins, maxs;
  if (x.numel() > 0) {
    const at::Tensor x3 = x.view({outer, channels, inner});
    mins = at::amin(x3, {0, 2}).contiguous();  // propagate NaN
    maxs = at::amax(x3, {0, 2}).contiguous();
  }
  for (int64_t c = 0; c < channels; ++c) {
    const float mn = mins.defined() ? mins.data_ptr<float>()[c] : 0.0f;
    const float mx = maxs.defined() ? maxs.data_ptr<float>()[c] : 0.0f;
    if (!std::isfinite(mn) || !std::isfinite(mx)) return NonFinite("int8c");
    const QuantParams p = ParamsFor(mn, mx);
    scale[static_cast<size_t>(c)] = p.scale;
    zero[static_cast<size_t>(c)] = p.zero_point;
  }
  at::Tensor q = at::empty({x.numel()}, at::TensorOptions().dtype(at::kByte));
  if (x.numel() > 0) {
    codec_kernels::QuantizeU8Channels(x.data_ptr<float>(), static_cast<size_t>(outer * channels),
                                      static_cast<size_t>(inner), static_cast<size_t>(channels),
                                      scale.data(), zero.data(), q.data_ptr<uint8_t>());
  }
  meta->set_codec(wire::CODEC_INT8_CHANNEL);
  meta->set_channel_axis(1);
  for (int64_t c = 0; c < channels; ++c) {
    meta->add_scale(scale[static_cast<size_t>(c)]);
    meta->add_zero_point(static_cast<int32_t>(zero[static_cast<size_t>(c)]));
  }
  *stage = std::move(q);
  return Status::Ok();
}

Result<at::Tensor> ZstdCompress(const void* src, size_t n, int level) {
  ZstdContexts& ctx = Contexts();
  if (ctx.c == nullptr) ctx.c = ZSTD_createCCtx();
  if (ctx.c == nullptr) return ResourceExhaustedError("cannot create a zstd compression context");
  const size_t bound = ZSTD_compressBound(n);
  at::Tensor out = at::empty({static_cast<int64_t>(bound)}, at::TensorOptions().dtype(at::kByte));
  // A one-shot ZSTD_compress2 records the content size in the frame header (Decode requires
  // it). The 4-byte checksum makes a body corrupted in flight fail to decode instead of
  // decoding to wrong values; it costs a hash pass far faster than compression.
  size_t got = ZSTD_CCtx_setParameter(ctx.c, ZSTD_c_compressionLevel, level);
  if (!ZSTD_isError(got)) got = ZSTD_CCtx_setParameter(ctx.c, ZSTD_c_checksumFlag, 1);
  if (!ZSTD_isError(got)) got = ZSTD_compress2(ctx.c, out.data_ptr(), bound, src, n);
  if (ZSTD_isError(got)) {
    return InternalError(std::string("zstd compression failed: ") + ZSTD_getErrorName(got));
  }
  return out.narrow(0, 0, static_cast<int64_t>(got));
}

// Decompresses the one zstd frame of src[0, len) into dst[0, raw). The content size the frame
// records must be raw (already checked against the shape and the limits by the caller), so the
// destination is never larger than the metadata allowed, whatever the stream claims.
Status ZstdDecompress(const uint8_t* src, size_t len, void* dst, uint64_t raw) {
  const unsigned long long size = ZSTD_getFrameContentSize(src, len);
  if (size == ZSTD_CONTENTSIZE_ERROR) {
    return InvalidArgumentError("zstd body (" + std::to_string(len) +
                                " bytes) does not start with a zstd frame header");
  }
  if (size == ZSTD_CONTENTSIZE_UNKNOWN) {
    return InvalidArgumentError(
        "zstd frame does not record its content size (TensorMeta.raw_bytes is " +
        std::to_string(raw) + ")");
  }
  if (size != raw) {
    return InvalidArgumentError("zstd frame content size " + std::to_string(size) +
                                " does not match TensorMeta.raw_bytes " + std::to_string(raw));
  }
  const size_t frame = ZSTD_findFrameCompressedSize(src, len);
  if (ZSTD_isError(frame)) {
    return InvalidArgumentError(std::string("zstd body truncated or corrupt: ") +
                                ZSTD_getErrorName(frame));
  }
  if (frame != len) {
    return InvalidArgumentError("zstd body has " + std::to_string(len - frame) +
                                " bytes after its frame");
  }
  ZstdContexts& ctx = Contexts();
  if (ctx.d == nullptr) ctx.d = ZSTD_createDCtx();
  if (ctx.d == nullptr) return ResourceExhaustedError("cannot create a zstd decompression context");
  const size_t got = ZSTD_decompressDCtx(ctx.d, dst, static_cast<size_t>(raw), src, len);
  if (ZSTD_isError(got)) {
    return InvalidArgumentError(std::string("zstd body does not decompress: ") +
                                ZSTD_getErrorName(got));
  }
  if (got != raw) {
    return InvalidArgumentError("zstd body decompressed to " + std::to_string(got) +
                                " bytes, TensorMeta.raw_bytes says " + std::to_string(raw));
  }
  return Status::Ok();
}

at::Tensor EmptyBytes(int64_t n) { return at::empty({n}, at::TensorOptions().dtype(at::kByte)); }

}  // namespace

Result<CodecSpec> CodecSpec::Parse(const std::string& text) {
  auto bad = [&text](const std::string& why) {
    return InvalidArgumentError("codec '" + text + "': " + why +
                                " (expected fp32, fp16, int8 or int8c, optionally followed by "
                                "+zstd or +zstd:LEVEL)");
  };
  CodecSpec spec;
  const size_t plus = text.find('+');
  const std::string base = text.substr(0, plus);
  if (base == "fp32") {
    spec.codec = Codec::kFp32;
  } else if (base == "fp16") {
    spec.codec = Codec::kFp16;
  } else if (base == "int8") {
    spec.codec = Codec::kInt8;
  } else if (base == "int8c") {
    spec.codec = Codec::kInt8Channel;
  } else {
    return bad("unknown codec '" + base + "'");
  }
  if (plus == std::string::npos) return spec;
  const std::string stage = text.substr(plus + 1);
  if (stage.rfind("zstd", 0) != 0) return bad("unknown lossless stage '" + stage + "'");
  spec.zstd = true;
  if (stage.size() == 4) return spec;
  if (stage[4] != ':') return bad("unknown lossless stage '" + stage + "'");
  const std::string level = stage.substr(5);
  try {
    size_t pos = 0;
    const int l = std::stoi(level, &pos);
    if (pos != level.size()) throw std::invalid_argument("");
    spec.zstd_level = l;
  } catch (const std::exception&) {
    return bad("zstd level '" + level + "' is not a number");
  }
  if (spec.zstd_level < kMinZstdLevel || spec.zstd_level > kMaxZstdLevel || spec.zstd_level == 0) {
    return bad("zstd level " + level + " not in [-7, -1] or [1, 19]");
  }
  return spec;
}

std::string CodecSpec::ToString() const {
  std::string s = BaseName(codec);
  if (zstd) {
    s += "+zstd";
    if (zstd_level != kDefaultZstdLevel) s += ":" + std::to_string(zstd_level);
  }
  return s;
}

Result<Encoded> Encode(const at::Tensor& t, const CodecSpec& spec) {
  const std::string name = spec.ToString();
  if (!t.defined()) return InvalidArgumentError("codec " + name + ": undefined tensor");
  if (t.scalar_type() != at::kFloat) {
    return InvalidArgumentError("codec " + name + " takes a float32 tensor, got " +
                                c10::toString(t.scalar_type()));
  }
  if (t.dim() < 1)
    return InvalidArgumentError("codec " + name + ": a 0-d tensor has no wire shape");
  if (spec.zstd && (spec.zstd_level < kMinZstdLevel || spec.zstd_level > kMaxZstdLevel ||
                    spec.zstd_level == 0)) {
    return InvalidArgumentError("codec " + name + ": zstd level not in [-7, -1] or [1, 19]");
  }
  try {
    const at::Tensor x = t.to(at::kCPU).contiguous();
    Encoded e;
    SPLITINFER_RETURN_IF_ERROR(FillTensorMeta(x, &e.meta));
    at::Tensor stage;
    switch (spec.codec) {
      case Codec::kFp32:
        stage = x;
        break;
      case Codec::kFp16:
        SPLITINFER_RETURN_IF_ERROR(EncodeFp16(x, &stage));
        e.meta.set_codec(wire::CODEC_FLOAT16);
        break;
      case Codec::kInt8:
        SPLITINFER_RETURN_IF_ERROR(EncodeInt8(x, &e.meta, &stage));
        break;
      case Codec::kInt8Channel:
        SPLITINFER_RETURN_IF_ERROR(EncodeInt8Channel(x, &e.meta, &stage));
        break;
    }
    // fp32 without zstd sets no codec field: the frame is byte for byte the raw frame of before.
    if (!spec.IsRaw()) e.meta.set_raw_bytes(stage.nbytes());
    if (!spec.zstd) {
      e.body = std::move(stage);
      return e;
    }
    Result<at::Tensor> packed = ZstdCompress(stage.data_ptr(), stage.nbytes(), spec.zstd_level);
    if (!packed.ok()) return packed.status();
    e.meta.set_lossless(wire::LOSSLESS_ZSTD);
    e.body = std::move(*packed);
    return e;
  } catch (const std::exception& ex) {
    return ResourceExhaustedError("codec " + name + ": " + ex.what());
  }
}

Result<at::Tensor> Decode(const wire::TensorMeta& meta, const uint8_t* body, size_t len,
                          const FrameLimits& limits) {
  SPLITINFER_RETURN_IF_ERROR(ValidateTensorMeta(meta, len, limits));
  if (len > 0 && body == nullptr) return InvalidArgumentError("Decode: null body");
  std::vector<int64_t> shape(meta.shape().begin(), meta.shape().end());
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;  // validated: no overflow, within the limits
  const uint64_t raw = static_cast<uint64_t>(numel) * CodecElementSize(meta);
  const bool zstd = meta.lossless() == wire::LOSSLESS_ZSTD;
  try {
    const auto f32 = at::TensorOptions().dtype(at::kFloat);
    switch (meta.codec()) {
      case wire::CODEC_RAW: {
        Result<at::Tensor> out = AllocateForMeta(meta);
        if (!out.ok()) return out.status();
        if (zstd) {
          SPLITINFER_RETURN_IF_ERROR(ZstdDecompress(body, len, out->data_ptr(), raw));
        } else if (raw > 0) {
          std::memcpy(out->data_ptr(), body, raw);
        }
        return std::move(*out);
      }
      case wire::CODEC_FLOAT16: {
        at::Tensor h = at::empty({numel}, at::TensorOptions().dtype(at::kHalf));
        if (zstd) {
          SPLITINFER_RETURN_IF_ERROR(ZstdDecompress(body, len, h.data_ptr(), raw));
        } else if (raw > 0) {
          std::memcpy(h.data_ptr(), body, raw);  // the body may be unaligned
        }
        return h.to(at::kFloat).view(shape);  // exact widening
      }
      case wire::CODEC_INT8:
      case wire::CODEC_INT8_CHANNEL: {
        at::Tensor bytes;
        const uint8_t* q = body;
        if (zstd) {
          bytes = EmptyBytes(numel);
          SPLITINFER_RETURN_IF_ERROR(ZstdDecompress(body, len, bytes.data_ptr(), raw));
          q = bytes.data_ptr<uint8_t>();
        }
        at::Tensor out = at::empty(shape, f32);
        if (numel == 0) return out;
        std::vector<float> scale(meta.scale().begin(), meta.scale().end());
        std::vector<float> zero(meta.zero_point().begin(), meta.zero_point().end());
        if (meta.codec() == wire::CODEC_INT8) {
          codec_kernels::DequantizeU8(q, static_cast<size_t>(numel), scale[0], zero[0],
                                      out.data_ptr<float>());
          return out;
        }
        const int axis = meta.channel_axis();
        const int64_t channels = shape[static_cast<size_t>(axis)];
        int64_t inner = 1;
        for (size_t i = static_cast<size_t>(axis) + 1; i < shape.size(); ++i) inner *= shape[i];
        codec_kernels::DequantizeU8Channels(
            q, static_cast<size_t>(numel / inner), static_cast<size_t>(inner),
            static_cast<size_t>(channels), scale.data(), zero.data(), out.data_ptr<float>());
        return out;
      }
      default:
        return InvalidArgumentError("unknown TensorMeta.codec " + std::to_string(meta.codec()));
    }
  } catch (const std::exception& ex) {
    return ResourceExhaustedError(std::string("cannot allocate the decoded tensor: ") + ex.what());
  }
}

}  // namespace splitinfer

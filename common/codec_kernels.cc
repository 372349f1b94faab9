#include "common/codec_kernels.h"

#include <cstdint>

namespace splitinfer::codec_kernels {
namespace {

// One element. v + 0.5 truncated rounds halves up for v >= 0, and every v < 0.5 ends at 0 after
// the clamp, so truncation toward zero is right for negative v too. The clamps are on integers:
// float compares cannot become min/max instructions without -ffinite-math-only (NaN and -0
// semantics), and a branch stops vectorization; std::nearbyint would be a library call. The
// input is finite and |v| stays near [0, 255], so the conversion never overflows.
inline uint8_t Quantize(float x, float scale, float zero_point) {
  int32_t r = static_cast<int32_t>(x / scale + zero_point + 0.5f);
  r = r < 0 ? 0 : r;
  r = r > 255 ? 255 : r;
  return static_cast<uint8_t>(r);
}

inline float Dequantize(uint8_t q, float scale, float zero_point) {
  return (static_cast<float>(q) - zero_point) * scale;
}

}  // namespace

void QuantizeU8(const float* __restrict x, size_t n, float scale, float zero_point,
                uint8_t* __restrict q) {
  for (size_t i = 0; i < n; ++i) q[i] = Quantize(x[i], scale, zero_point);
}

void DequantizeU8(const uint8_t* __restrict q, size_t n, float scale, float zero_point,
                  float* __restrict y) {
  for (size_t i = 0; i < n; ++i) y[i] = Dequantize(q[i], scale, zero_point);
}

void QuantizeU8Channels(const float* __restrict x, size_t blocks, size_t inner, size_t channels,
                        const float* __restrict scale, const float* __restrict zero_point,
                        uint8_t* __restrict q) {
  if (inner == 1) {  // NC: rows of `channels` elements, the parameters vary along the row
    for (size_t r = 0; r < blocks / channels; ++r) {
      const float* xr = x + r * channels;
      uint8_t* qr = q + r * channels;
      for (size_t c = 0; c < channels; ++c) qr[c] = Quantize(xr[c], scale[c], zero_point[c]);
    }
    return;
  }
  for (size_t b = 0; b < blocks; ++b) {
    const size_t c = b % channels;
    QuantizeU8(x + b * inner, inner, scale[c], zero_point[c], q + b * inner);
  }
}

void DequantizeU8Channels(const uint8_t* __restrict q, size_t blocks, size_t inner, size_t channels,
                          const float* __restrict scale, const float* __restrict zero_point,
                          float* __restrict y) {
  if (inner == 1) {
    for (size_t r = 0; r < blocks / channels; ++r) {
      const uint8_t* qr = q + r * channels;
      float* yr = y + r * channels;
      for (size_t c = 0; c < channels; ++c) yr[c] = Dequantize(qr[c], scale[c], zero_point[c]);
    }
    return;
  }
  for (size_t b = 0; b < blocks; ++b) {
    const size_t c = b % channels;
    DequantizeU8(q + b * inner, inner, scale[c], zero_point[c], y + b * inner);
  }
}

}  // namespace splitinfer::codec_kernels

// The element loops of the int8 codecs (common/codec.h), kept free of LibTorch so that this one
// file is compiled with -O3: at -O2 GCC 12 vectorizes only loops whose trip count is a known
// multiple of the vector width, and these loops are the whole cost of int8 encode and decode.
//
// Pure functions over caller-owned memory; reentrant.
#pragma once

#include <cstddef>
#include <cstdint>

namespace splitinfer::codec_kernels {

// q[i] = clamp(round(x[i] / scale + zero_point), 0, 255), rounding halves up. x must be finite
// (NaN would give an unspecified byte); scale > 0.
void QuantizeU8(const float* x, size_t n, float scale, float zero_point, uint8_t* q);

// y[i] = (float(q[i]) - zero_point) * scale: an exact subtraction and one rounding, so the result
// is the same on every IEEE machine.
void DequantizeU8(const uint8_t* q, size_t n, float scale, float zero_point, float* y);

// The same over `blocks` consecutive blocks of `inner` elements, block b using channel
// b % channels (an NCHW tensor is N*C blocks of H*W; an NC tensor is N*C blocks of 1).
void QuantizeU8Channels(const float* x, size_t blocks, size_t inner, size_t channels,
                        const float* scale, const float* zero_point, uint8_t* q);
void DequantizeU8Channels(const uint8_t* q, size_t blocks, size_t inner, size_t channels,
                          const float* scale, const float* zero_point, float* y);

}  // namespace splitinfer::codec_kernels

// The shape of one convolution or linear layer inside a split unit: the kernel-shape features of
// the per-unit cost predictors (issue 10). The zoo records one per layer it builds
// (UnitInfo::layers), profile_model writes them to the profile JSON ("layers"), and the cost
// model's parser reads them back (UnitProfile::layers). A linear layer is a 1x1 "kernel" on a 1x1
// map with kind kLinear.
#pragma once

#include <cstdint>

namespace splitinfer {

struct LayerShape {
  enum class Kind { kConv, kLinear };
  Kind kind = Kind::kConv;
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t kernel = 1;  // square kernel side (1 for linear)
  int64_t stride = 1;
  int64_t groups = 1;
  int64_t out_h = 1;  // output map (1 x 1 for linear)
  int64_t out_w = 1;

  // Multiply-adds x 2 for one sample, as UnitInfo::flops counts them.
  int64_t Flops() const {
    return 2 * (in_channels / groups) * kernel * kernel * out_channels * out_h * out_w;
  }
  // Depthwise: one group per input channel (MobileNet's 3x3 stage).
  bool depthwise() const { return groups > 1 && groups == in_channels; }
};

inline const char* LayerKindName(LayerShape::Kind k) {
  return k == LayerShape::Kind::kLinear ? "linear" : "conv";
}

}  // namespace splitinfer

// The built-in model zoo: AlexNet, VGG-16, ResNet-18, MobileNetV2 and an equal-width MLP, each
// defined as a chain of split units (see split_model.h). Weights come from a seed, so the device
// and the edge build identical models without shipping weight files.
//
// Units:
//   alexnet      8 units: 5 conv layers (max-pool fused into conv1, conv2, conv5), 3 fc layers
//   vgg16       16 units: 13 conv layers (each stage's max-pool fused into its last conv), 3 fc
//   resnet18    10 units: stem (conv, bn, relu, max-pool), 8 basic blocks, head (pool, fc)
//   mobilenetv2 20 units: stem conv, 17 inverted-residual blocks, last 1x1 conv, head
//   mlp          L units: Linear(width, width) + ReLU (no ReLU after the last)
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/split_model.h"
#include "common/status.h"

namespace splitinfer {

struct ZooOptions {
  int64_t input_size = 224;    // H = W of the image input (CNNs)
  int64_t num_classes = 1000;
  double width_mult = 1.0;     // scales every channel count (tests use small widths)
  int64_t mlp_width = 1024;    // MLP: features per layer (input is [width])
  int64_t mlp_layers = 8;      // MLP: L
  uint64_t seed = 0;           // 0 = derived from (model name, version)

  bool IsValid(std::string* error) const;
};

// Names the zoo knows, in a stable order.
const std::vector<std::string>& ZooModelNames();

// Builds model `name` at `version` on the CPU in eval mode. The weights depend only on
// (name, version, options): the same call on two machines gives the same bits.
// Errors: kNotFound for an unknown name, kInvalidArgument for bad options (e.g. an input too
// small for the network's pooling).
Result<std::shared_ptr<SplitModel>> BuildZooModel(const std::string& name, uint32_t version,
                                                  const ZooOptions& options);

}  // namespace splitinfer

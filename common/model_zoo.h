// The built-in model zoo: AlexNet, VGG-16, ResNet-18, MobileNetV2 and an equal-width MLP, each
// defined as a chain of split units (see split_model.h). Weights come from a seed, so the device
// and the edge build identical models without shipping weight files.
//
// Units (and their names):
//   alexnet      8 units: 5 conv layers (max-pool fused into conv1, conv2, conv5), 3 fc layers
//                conv1..conv5, fc6..fc8 (fc6 starts with the adaptive avg-pool and flatten)
//   vgg16       16 units: 13 conv layers (each stage's max-pool fused into its last conv), 3 fc
//                conv1_1..conv5_3, fc6..fc8
//   resnet18    10 units: stem (conv, bn, relu, max-pool), 8 basic blocks, head (pool, fc)
//                stem, layer1.0, layer1.1, ..., layer4.1, head
//   mobilenetv2 20 units: stem conv, 17 inverted-residual blocks, last 1x1 conv, head
//                stem, block1..block17, conv_last, head
//   mlp          L units: Linear(width, width) + ReLU (no ReLU after the last)
//                fc1..fcL; input [mlp_width]; num_classes and input_size are not used
//
// The CNNs follow torchvision (same layers, parameter counts and output shapes at width 1) with
// channels scaled by width_mult (MobileNetV2 rounds to multiples of 8 like torchvision) and an
// adaptive average pool before the classifier, so any input_size from the network's minimum up
// works (alexnet 63, vgg16 32, resnet18 and mobilenetv2 1). Dropout is left out (eval mode).
// UnitInfo::flops counts convolutions and linear layers only (see model_zoo.cc).
//
// Weights follow torchvision's init schemes with uniform values of the same variance, drawn
// from a private SplitMix64 stream seeded with options.seed or, when 0, FNV-1a of
// "<name>@<version>". No transcendental functions and no global generator are involved, so two
// processes on any two machines build the same weight bits, and other threads' use of torch's
// global generator cannot disturb a build. Building is thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/split_model.h"
#include "common/status.h"

namespace splitinfer {

struct ZooOptions {
  int64_t input_size = 224;  // H = W of the image input (CNNs)
  int64_t num_classes = 1000;
  double width_mult = 1.0;   // scales every channel count (tests use small widths)
  int64_t mlp_width = 1024;  // MLP: features per layer (input is [width])
  int64_t mlp_layers = 8;    // MLP: L
  uint64_t seed = 0;         // 0 = derived from (model name, version)

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

// One named tensor of a unit: a parameter or a buffer (e.g. a batch norm's running mean).
struct UnitTensor {
  std::string name;   // as torch names it inside the unit, e.g. "0.weight", "1.running_var"
  at::Tensor tensor;  // shares storage with the model: writing it changes the model
  bool is_buffer = false;
};

// The parameters then the buffers of unit i (in [0, N)) of a zoo model, in a stable order, for
// saving and loading weights (common/model_repo.h). Writing through the returned tensors
// (under a NoGradGuard) is only allowed while no other thread uses the model.
// Errors: kInvalidArgument when `model` is not a zoo model or i >= N.
Result<std::vector<UnitTensor>> ZooUnitTensors(const SplitModel& model, size_t i);

}  // namespace splitinfer

// The small model configuration the integration tests give to both edge_server and the local
// (device) side, so that both build identical weights quickly.
#pragma once

#include <string>
#include <vector>

#include "common/model_zoo.h"

namespace splitinfer::testing {

inline ZooOptions SmallZoo() {
  ZooOptions z;
  z.input_size = 64;
  z.width_mult = 0.25;
  z.num_classes = 10;
  z.mlp_width = 64;
  z.mlp_layers = 6;
  return z;
}

inline std::vector<std::string> SmallZooArgs() {
  return {"--input-size", "64",          "--width-mult", "0.25",         "--num-classes",
          "10",           "--mlp-width", "64",           "--mlp-layers", "6"};
}

}  // namespace splitinfer::testing

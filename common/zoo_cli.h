// The zoo's command-line options (input size, width, classes, MLP shape, weight seed), shared by
// the tools that build a zoo model from flags (profile_model, codec_fidelity). Header-only: CLI11
// is header-only and only the programs include it.
#pragma once

#include <cstdint>

#include <CLI/CLI.hpp>

#include "common/model_zoo.h"

namespace splitinfer {

inline void AddZooOptions(CLI::App& app, ZooOptions* zoo) {
  app.add_option("--input-size", zoo->input_size, "zoo: H = W of the input image")
      ->default_val(224)
      ->check(CLI::Range(int64_t{1}, int64_t{4096}));
  app.add_option("--width-mult", zoo->width_mult, "zoo: channel width multiplier")
      ->default_val(1.0)
      ->check(CLI::Range(1e-3, 16.0));
  app.add_option("--num-classes", zoo->num_classes, "zoo: classifier outputs")
      ->default_val(1000)
      ->check(CLI::PositiveNumber);
  app.add_option("--mlp-width", zoo->mlp_width, "zoo mlp: features per layer")
      ->default_val(1024)
      ->check(CLI::PositiveNumber);
  app.add_option("--mlp-layers", zoo->mlp_layers, "zoo mlp: number of layers")
      ->default_val(8)
      ->check(CLI::PositiveNumber);
  app.add_option("--seed", zoo->seed, "zoo: weight seed (0 = from name and version)")
      ->default_val(0);
}

}  // namespace splitinfer

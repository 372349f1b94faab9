// The zoo's command-line options (input size, width, classes, MLP shape, weight seed): one parser
// for every program that builds a zoo model from flags (edge_server, device_client, loadgen,
// profile_model, codec_fidelity, model_repo). Both sides of a split must build the same weights,
// so they take the same flags with the same bounds. The weight seed is --weight-seed: --seed
// means the run's own randomness in every program. Header-only: CLI11 is header-only and only
// the programs include it.
#pragma once

#include <cstdint>

#include <CLI/CLI.hpp>

#include "common/model_zoo.h"

namespace splitinfer {

inline void AddZooOptions(CLI::App& app, ZooOptions* zoo) {
  app.add_option("--input-size", zoo->input_size, "zoo CNNs: image height = width")
      ->check(CLI::Range(int64_t{16}, int64_t{4096}));
  app.add_option("--width-mult", zoo->width_mult, "zoo CNNs: channel multiplier")
      ->check(CLI::Range(0.05, 4.0));
  app.add_option("--num-classes", zoo->num_classes, "zoo models: classifier outputs")
      ->check(CLI::Range(1, 100000));
  app.add_option("--mlp-width", zoo->mlp_width, "zoo mlp: features per layer")
      ->check(CLI::Range(1, 1 << 16));
  app.add_option("--mlp-layers", zoo->mlp_layers, "zoo mlp: number of layers")
      ->check(CLI::Range(1, 1000));
  app.add_option("--weight-seed", zoo->seed, "zoo: weight seed (0 = from name and version)");
}

}  // namespace splitinfer

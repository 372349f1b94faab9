// The robust splitter's command-line options: one parser for split_sim and device_client, so
// that a simulated and a live run are configured by the same flags with the same bounds.
// Header-only: CLI11 is header-only and only the programs include it.
#pragma once

#include <CLI/CLI.hpp>

#include "common/decision/robust.h"

namespace splitinfer::decision {

inline void AddRobustOptions(CLI::App& app, RobustOptions* o) {
  app.add_option("--robust-refit-window-s", o->refit_window_s,
                 "bi: the re-fitted Markov candidates see the last this many seconds")
      ->check(CLI::Range(0.1, 1e6));
  app.add_option("--robust-refit-every-s", o->refit_every_s, "bi: re-fit period (channel time)")
      ->check(CLI::Range(0.01, 1e6));
  app.add_option("--robust-half-life", o->half_life,
                 "bi: the selector forgets past inferences with this half-life")
      ->check(CLI::Range(1.0, 1e9));
  app.add_option("--robust-z", o->z,
                 "bi: standard errors of paired advantage before switching candidate")
      ->check(CLI::Range(0.0, 100.0));
  app.add_option("--robust-min-gain", o->min_gain,
                 "bi: relative gain over the incumbent needed to switch")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--robust-long-window-s", o->long_window_s,
                 "bi: the two-window re-fitted candidates' long window (0: none)")
      ->check(CLI::Range(0.0, 1e4));
  app.add_flag("!--robust-no-refit", o->refit, "bi: no re-fitted Markov candidates");
}

}  // namespace splitinfer::decision

// Episode simulator behind split_sim: scores every policy on the same channel paths.
//
// Two engines:
//  - rayleigh:snr_db=X       i.i.d. Rayleigh, K quantile states with an outage state; each
//                            boundary draws a fresh gain; a stop is priced at the drawn rate.
//  - rate series             trace:<file> (i.i.d. law fitted on the trace), markov-fit:<file>
//                            (Markov law fitted at each unit's lag), gauss-markov:snr_db=X,
//                            doppler_hz=Y (a correlated Rayleigh series, Markov law). The series
//                            is split in time: the law and the expected-transfer pricing are
//                            fitted on the first part, episodes are scored on the rest, where a
//                            stop costs the actual transfer time of s_l bytes on the series.
// Policies see only the state observed at each boundary; the oracle sees the realized costs.
//
// Thread safety: RunSimulation is reentrant; the progress callback runs on the calling thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/decision/cost_model.h"
#include "common/decision/placement.h"
#include "common/decision/stopping.h"
#include "common/decision/trace.h"
#include "common/status.h"

namespace splitinfer::decision {

struct ChannelSpec {
  enum class Kind { kRayleigh, kGaussMarkov, kTrace, kMarkovFit };
  Kind kind = Kind::kRayleigh;
  double snr_db = 10.0;
  double doppler_hz = 5.0;
  std::string path;  // trace file
  std::string text;  // as given

  // "rayleigh:snr_db=10", "gauss-markov:snr_db=10,doppler_hz=5", "trace:<file>",
  // "markov-fit:<file>".
  static Result<ChannelSpec> Parse(const std::string& spec);
};

struct SimOptions {
  int episodes = 10000;
  uint64_t seed = 1;
  int num_states = 16;             // K
  double bandwidth_hz = 10e6;      // Shannon channels (rayleigh, gauss-markov, UCC SNR)
  double outage_prob = 0.01;       // rayleigh
  double grid_s = 0.005;           // rate-series step
  double observe_window_s = 0.02;  // the device observes the mean rate over this window
  // > 0: the state is a pair (short-window rate state, long-window rate state), K x long_states
  // product states (rate series only).
  double long_window_s = 0.0;
  int long_states = 4;
  double fit_fraction = 0.5;  // first part of a series fits, the rest scores
  double gauss_markov_duration_s = 1200.0;
  Pricing pricing = Pricing::kExpectedTransfer;  // rate series only; rayleigh is instant
  double transfer_scale = 1.0;  // multiplies every trace rate (a faster or slower uplink)
  UccColumn ucc_column = UccColumn::kSnrShannon;  // which UCC 5G column becomes the rate
  PlacementOptions placement;
  std::function<void(int done, int total)> progress;

  bool IsValid(std::string* error) const;
};

struct PolicyStats {
  std::string name;
  double mean_cost = 0.0;
  double ci95 = 0.0;  // half-width of the 95% confidence interval of the mean
  double mean_boundary = 0.0;
  double share_local = 0.0;  // stopped at N
  double share_edge = 0.0;   // stopped at 0
  double ratio_to_oracle = 0.0;
  double model_expected_cost = 0.0;  // exact expected cost under the fitted law (NaN: oracle)
  std::vector<int> boundary_counts;  // N+1: how often each boundary was chosen
};

struct SimResult {
  std::string model;
  std::string channel;
  int num_units = 0;
  int num_states = 0;
  bool markov = false;
  int episodes = 0;
  double fitted_law_mean_rate_bps = 0.0;
  std::vector<PolicyStats> policies;  // oracle first
  PlacementPlan placement;
  PlacementPlan placement_ola;
  double solve_ms = 0.0;  // building the problem and every policy
};

Result<SimResult> RunSimulation(const CostModel& cost, const ChannelSpec& channel,
                                const SimOptions& options);
nlohmann::json ToJson(const SimResult& r);
std::string ToTable(const SimResult& r);

}  // namespace splitinfer::decision

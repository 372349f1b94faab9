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
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/decision/cost_model.h"
#include "common/decision/placement.h"
#include "common/decision/robust.h"
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

// How a rate series becomes a stopping problem (the rate-series engine of the simulator, shared
// with the live device client so that both run the very same policies).
struct SeriesFitOptions {
  int num_states = 16;             // K of the short-window law
  double observe_window_s = 0.02;  // the device observes the mean rate over this window
  double long_window_s = 0.0;      // > 0: product state (short, long) as in SimOptions
  int long_states = 4;
  bool markov = true;  // Markov transitions at each unit's lag; false: i.i.d. law
  Pricing pricing = Pricing::kExpectedTransfer;
  // A series that carries no bits at all: every offload before N is "not allowed" (true) or an
  // error (false, the simulator's choice: it has nothing to score).
  bool allow_dead = false;
};

// The law, pricing and problem fitted on one rate series (SPEC section 6): states are K
// equal-probability quantiles of the observed (windowed) rates; a Markov law counts transitions
// between the observations at boundary l and l+1 (lag = the device time of unit l+1 in grid
// steps); a stop at boundary l in state s is priced at the mean time the series needed to carry
// s_l bytes, starting one step after an observation in state s. Immutable after Fit().
class SeriesModel {
 public:
  // `what` prefixes error messages (e.g. the channel spec).
  static Result<SeriesModel> Fit(const CostModel& cost, const RateSeries& fit,
                                 const SeriesFitOptions& options, const std::string& what);

  const StoppingProblem& problem() const { return problem_; }
  // The short-window law (its edges map an observed rate to a state).
  const ChannelLaw& short_law() const { return short_law_; }
  // The law the problem was built on (the product law with a long window).
  const ChannelLaw& law() const { return law_; }
  int long_states() const { return long_law_.num_states() > 0 ? long_law_.num_states() : 1; }
  // State of an observation: short-window rate (and long-window rate with a long window).
  int StateOf(double rate_bps, double long_rate_bps = 0.0) const {
    return short_law_.StateOf(rate_bps) * long_states() +
           (long_window_ > 0 ? long_law_.StateOf(long_rate_bps) : 0);
  }
  size_t window() const { return window_; }            // grid steps
  size_t long_window() const { return long_window_; }  // grid steps; 0: none
  // Grid steps from boundary 0 to boundary l (device time of units 1..l), l = 0..N.
  const std::vector<size_t>& lag() const { return lag_; }
  double grid_s() const { return grid_s_; }
  double fit_mean_rate_bps() const { return mean_rate_; }

 private:
  SeriesModel() = default;
  StoppingProblem problem_;
  ChannelLaw short_law_, long_law_, law_;
  size_t window_ = 1, long_window_ = 0;
  std::vector<size_t> lag_;
  double grid_s_ = 0.0, mean_rate_ = 0.0;
};

// A series episodes are scored on: its observed rates (with the model's windows) and its transfer
// clock. EpisodeAt(i0) is the channel path of an inference that starts at step i0 (wrapping):
// the state observed at each boundary and the realized stop cost there (the actual transfer time
// of s_l bytes on the series, starting one step after the observation).
class ScoredSeries {
 public:
  ScoredSeries(RateSeries series, size_t window, size_t long_window);
  Episode EpisodeAt(const CostModel& cost, const SeriesModel& model, size_t i0) const;
  size_t size() const { return series_.size(); }
  const RateSeries& series() const { return series_; }
  const std::vector<double>& observed() const { return observed_; }
  // Mean rate over the `window` steps ending at step i (shorter at the start), as
  // RateSeries::ObservedRates computes it.
  double ObservedAt(size_t i, size_t window) const;

 private:
  RateSeries series_;
  std::vector<double> observed_, observed_long_;
  TransferClock clock_;
  size_t window_, long_window_;
  std::vector<double> prefix_;  // prefix_[i] = sum of rates of steps [0, i)
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
  RobustOptions robust;  // the robust splitter, reported as "bi"
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
  std::vector<int> option_counts;    // per wire option: offloads that used it
};

// Why a law fitted on one part of a series may not hold on the scored part (rate series only):
// what the fitted law predicts against what the scored part does, and where textbook BI and
// greedy decide differently.
struct SeriesDiagnosis {
  bool valid = false;
  double fit_mean_rate_bps = 0.0, score_mean_rate_bps = 0.0;
  // Total variation distance between the state occupancy of the fitting and the scored part.
  double occupancy_tv = 0.0;
  // P(state at boundary N == state at boundary 0): the law's prediction (i.i.d.: sum pi^2) and
  // the share of scored steps where it held, over the device time of the whole model.
  double persistence_law = 0.0, persistence_fit = 0.0, persistence_score = 0.0;
  // Outage: rate below 10% of the fitting part's mean. Share of time and longest run (s).
  double outage_share_fit = 0.0, outage_share_score = 0.0;
  double outage_longest_fit_s = 0.0, outage_longest_score_s = 0.0;
  // Episodes where textbook BI and greedy stop at different boundaries, and what BI's choice cost
  // against greedy's on them (mean of bi - greedy, seconds-equivalent cost); split by whether BI
  // went on past greedy's stop (waiting for a better state) or stopped before it.
  double share_differ = 0.0, share_bi_later = 0.0;
  double cost_diff_later = 0.0, cost_diff_earlier = 0.0;
};

struct SimResult {
  std::string model;
  std::string channel;
  int num_units = 0;
  int num_states = 0;
  bool markov = false;
  int episodes = 0;
  double fitted_law_mean_rate_bps = 0.0;
  std::vector<PolicyStats> policies;      // oracle first
  std::vector<std::string> wire_options;  // names, option 0 = fp32
  PlacementPlan placement;
  PlacementPlan placement_ola;
  double solve_ms = 0.0;     // building the problem and every policy
  int robust_switches = 0;   // times the robust splitter changed its candidate
  std::string robust_final;  // and the candidate it ended with
  // Every candidate's mean cost over the episodes had it decided them all (hindsight).
  std::vector<std::pair<std::string, double>> robust_candidates;
  SeriesDiagnosis diagnosis;
};

// The rate series of a series channel (trace:, markov-fit:, gauss-markov:) on a grid of grid_s
// seconds, every rate times rate_scale: a trace file (UCC 5G logs read through `ucc_column` at
// `bandwidth_hz`), or a Gauss-Markov fading series of `duration_s` seeded from `seed`.
Result<RateSeries> LoadChannelSeries(const ChannelSpec& channel, double grid_s, double bandwidth_hz,
                                     double duration_s, uint64_t seed, UccColumn ucc_column,
                                     double rate_scale);

Result<SimResult> RunSimulation(const CostModel& cost, const ChannelSpec& channel,
                                const SimOptions& options);
nlohmann::json ToJson(const SimResult& r);
std::string ToTable(const SimResult& r);

}  // namespace splitinfer::decision

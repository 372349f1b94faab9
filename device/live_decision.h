// LiveDecision: the stopping policy the device asks after each unit during a real inference
// (issue 5, item 1). On the inference path a decision is StateOf (a binary search over K-1 rate
// edges) and a table lookup (StoppingPolicy::Stop).
//
// Rate-series channels (trace:, markov-fit:, gauss-markov:) are fitted exactly as split_sim fits
// them (decision::SeriesModel): K quantile states of the windowed rate, a Markov law at each
// unit's lag (markov-fit:, gauss-markov:) or an i.i.d. law (trace:), stops priced at the expected
// transfer time learned on the fitting series. So a live run and the simulator build the very
// same table, and their costs on the same channel path can be compared (scripts/replay.sh).
// rayleigh: the analytic quantile law with an outage state, priced at each state's rate.
//
// Costs are in wall-clock seconds: with --time-scale c the emulated link carries rate r per
// emulated second, i.e. c r per wall second over grid steps of dt / c wall seconds, so the series
// is rescaled that way before it is fitted, and StateOf scales the emulated observation by c.
//
// Thread safety: immutable after creation; any thread may call the const methods. Online
// re-fitting (device_client --law online) publishes new LiveDecision objects; an inference
// holds one shared_ptr for all its boundaries.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/decision/channel.h"
#include "common/decision/cost_model.h"
#include "common/decision/simulator.h"
#include "common/decision/stopping.h"
#include "common/decision/trace.h"
#include "common/split_model.h"
#include "common/status.h"

namespace splitinfer {

struct LiveDecisionOptions {
  // bi|ola|neurosurgeon|greedy|best-fixed|fixed:K|local (all-local)|edge (all-edge)
  std::string policy = "bi";
  int num_states = 16;             // K
  double observe_window_s = 0.02;  // emulated seconds (series channels)
  double bandwidth_hz = 10e6;      // rayleigh
  double outage_prob = 0.01;       // rayleigh
  double time_scale = 1.0;         // emulated seconds per wall second
};

// The policy names replay runs by default, in split_sim's order.
const std::vector<std::string>& StandardPolicyNames();

class LiveDecision {
 public:
  // Series channel: fits decision::SeriesModel on `fit` (an emulated-time series; markov: a
  // Markov law, else i.i.d.) and builds the policy. `generation` numbers online re-fits.
  static Result<std::shared_ptr<const LiveDecision>> FromSeries(const decision::CostModel& cost,
                                                                const decision::RateSeries& fit,
                                                                bool markov,
                                                                const LiveDecisionOptions& options,
                                                                uint64_t generation = 0);
  // rayleigh:snr_db=X: the analytic law (DiscretizeRayleigh).
  static Result<std::shared_ptr<const LiveDecision>> FromRayleigh(
      const decision::CostModel& cost, double snr_db, const LiveDecisionOptions& options);

  // State of an observed emulated rate.
  int StateOf(double emulated_rate_bps) const { return law().StateOf(emulated_rate_bps * scale_); }
  // Stop at boundary l in [0, H)? (Stop at H is implied.)
  bool Stop(int boundary, int state, int first_state) const {
    return policy_->Stop(boundary, state, first_state);
  }
  int horizon() const { return problem().horizon; }
  const std::string& policy_name() const { return policy_->name(); }
  const decision::StoppingPolicy& policy() const { return *policy_; }
  const decision::StoppingProblem& problem() const {
    return model_ ? model_->problem() : rayleigh_problem_;
  }
  // The policy's expected cost from boundary 0 in `first_state`, under the law (precomputed).
  double PredictedCost(int first_state) const { return predicted_[first_state]; }
  // The model's price of the path taken: C_1 + ... + C_k + S_k(state at k).
  double PathPrice(int boundary, int state) const {
    return problem().CumulativeContinue(boundary) + problem().stop_cost(boundary, state);
  }
  // The short-window law that maps observations to states (rates in wall-time bit/s).
  const decision::ChannelLaw& law() const { return model_ ? model_->short_law() : rayleigh_law_; }
  // Series channels only (null for rayleigh): the fitted model, in wall time.
  const std::shared_ptr<const decision::SeriesModel>& series_model() const { return model_; }
  double time_scale() const { return scale_; }
  uint64_t generation() const { return generation_; }

 private:
  LiveDecision() = default;
  Status MakePolicy(const std::string& name);

  double scale_ = 1.0;
  uint64_t generation_ = 0;
  std::shared_ptr<const decision::SeriesModel> model_;
  decision::ChannelLaw rayleigh_law_;
  decision::StoppingProblem rayleigh_problem_;
  std::unique_ptr<decision::StoppingPolicy> policy_;
  std::vector<double> predicted_;
};

// An emulated-time series as the wall-time series the cost model prices (rates x c, steps / c).
decision::RateSeries ToWallTime(const decision::RateSeries& emulated, double time_scale);

// Expected cost of `policy` from boundary 0 in state `first_state` under p's law.
double ExpectedCostFrom(const decision::StoppingProblem& p, const decision::StoppingPolicy& policy,
                        int first_state);

// Profiles `model` on this machine (median of `repeats` whole passes per unit after a warm-up
// pass, batch 1) as a decision::ModelProfile, for when no profile JSON fits the model's options
// (or device_client --profile local). With slowdown X > 1 each unit is followed by the idle time
// a --device-slowdown X run sleeps, so the profile is measured under live conditions.
decision::ModelProfile ProfileLocalModel(const SplitModel& model, int repeats = 5,
                                         double slowdown = 1.0);

}  // namespace splitinfer

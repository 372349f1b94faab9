// LiveDecision: the stopping policy the device asks after each unit during a real inference
// (issue 5, item 1). It is built once from the cost model and the law of the emulated channel;
// on the inference path a decision is StateOf (a binary search over K-1 rate edges) and a table
// lookup (StoppingPolicy::Stop).
//
// Costs are in wall-clock seconds: with --time-scale c the emulated link carries rate r per
// emulated second, i.e. c r per wall second, so the law's rates (and its Markov epoch) are scaled
// by c before the problem is built.
//
// The law is fitted on the whole emulated series (trace: i.i.d. quantile states; markov-fit and
// gauss-markov: a Markov chain at the grid step; rayleigh: the quantile law with an outage
// state). Stops are priced at each state's representative rate (Pricing::kInstantRate).
//
// Thread safety: immutable after Create(); any thread may call the const methods.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/decision/channel.h"
#include "common/decision/cost_model.h"
#include "common/decision/simulator.h"
#include "common/decision/stopping.h"
#include "common/split_model.h"
#include "common/status.h"

namespace splitinfer {

struct LiveDecisionOptions {
  std::string policy = "bi";   // bi|ola|neurosurgeon|greedy|fixed:K|local|edge
  int num_states = 16;         // K
  double grid_s = 0.005;       // step of the emulated series
  double bandwidth_hz = 10e6;  // rayleigh
  double outage_prob = 0.01;   // rayleigh
  double time_scale = 1.0;     // emulated seconds per wall second
};

class LiveDecision {
 public:
  // `observed_rates` are the rates (emulated bit/s) the device observes along the series.
  static Result<std::unique_ptr<LiveDecision>> Create(const decision::CostModel& cost,
                                                      const decision::ChannelSpec& spec,
                                                      const std::vector<double>& observed_rates,
                                                      const LiveDecisionOptions& options);

  // State of an observed emulated rate.
  int StateOf(double emulated_rate_bps) const { return law_.StateOf(emulated_rate_bps * scale_); }
  // Stop at boundary l in [0, H)? (Stop at H is implied.)
  bool Stop(int boundary, int state, int first_state) const {
    return policy_->Stop(boundary, state, first_state);
  }
  int horizon() const { return problem_.horizon; }
  const std::string& policy_name() const { return policy_->name(); }
  // The policy's expected cost from boundary 0 in `first_state`, under the law (precomputed).
  double PredictedCost(int first_state) const { return predicted_[first_state]; }
  // The model's price of the path taken: C_1 + ... + C_k + S_k(state at k).
  double PathPrice(int boundary, int state) const {
    return problem_.CumulativeContinue(boundary) + problem_.stop_cost(boundary, state);
  }
  const decision::ChannelLaw& law() const { return law_; }

 private:
  LiveDecision() = default;
  double scale_ = 1.0;
  decision::ChannelLaw law_;  // rates in wall-time bit/s
  decision::StoppingProblem problem_;
  std::unique_ptr<decision::StoppingPolicy> policy_;
  std::vector<double> predicted_;
};

// Expected cost of `policy` from boundary 0 in state `first_state` under p's law.
double ExpectedCostFrom(const decision::StoppingProblem& p, const decision::StoppingPolicy& policy,
                        int first_state);

// Profiles `model` on this machine (median of `repeats` runs per unit after one warm-up, batch 1)
// as a decision::ModelProfile, for when no profile JSON fits the model's options.
decision::ModelProfile ProfileLocalModel(const SplitModel& model, int repeats = 5);

}  // namespace splitinfer

// LiveDecision: the stopping policy the device asks after each unit during a real inference
// (issue 5, item 1). On the inference path a decision is StateOf (a binary search over K-1 rate
// edges) and a table lookup (StoppingPolicy::Stop).
//
// Rate-series channels (trace:, markov-fit:, gauss-markov:) are fitted exactly as split_sim fits
// them (decision::SeriesModel): K quantile states of the windowed rate, a Markov law at each
// unit's lag (markov-fit:, gauss-markov:) or an i.i.d. law (trace:), stops priced at the expected
// transfer time learned on the fitting series. So a live run and the simulator build the very
// same table, and their costs on the same channel path can be compared (scripts/replay.sh).
// rayleigh: the analytic quantile law with an outage state, priced at each state's rate; FromLaw
// takes any such discretized law (the placement agent's channel statistics).
//
// Placement (issue 7, SPEC section 4): a device that stores units 1..M only never runs beyond M.
// With options.horizon = M < N the policy is built on the stopping problem of horizon M with the
// forced offload at M, priced as the placement planner prices it (BuildProblem(cost, law, M) for
// a law; the series problem truncated at M with its expected-transfer stop row for a series), so
// that PredictedCost averaged over the initial law is the planner's inference_cost[M]. Stop()
// answers true at every boundary >= M, whatever the table says.
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
#include "common/decision/robust.h"
#include "common/decision/simulator.h"
#include "common/decision/stopping.h"
#include "common/decision/trace.h"
#include "common/split_model.h"
#include "common/status.h"

namespace splitinfer {

struct LiveDecisionOptions {
  // bi|bi-textbook|ola|neurosurgeon|greedy|best-fixed|fixed:K|local (all-local)|edge (all-edge);
  // one table each (bi and bi-textbook: the textbook BI table; the robust splitter that
  // device_client runs as bi is a RobustDecision source over several of these tables)
  std::string policy = "bi";
  int num_states = 16;             // K
  double observe_window_s = 0.02;  // emulated seconds (series channels)
  double bandwidth_hz = 10e6;      // rayleigh
  double outage_prob = 0.01;       // rayleigh
  double time_scale = 1.0;         // emulated seconds per wall second
  // Placed units M: the policy's horizon, with a forced offload at M < N. kAllUnits: M = N.
  // M = 0 is a real placement (nothing stored: every inference offloads the input), which is why
  // "all" is not spelled 0; PlacementPlan::best_m can be passed as it is.
  int horizon = kAllUnits;

  static constexpr int kAllUnits = -1;
  // time_scale > 0 and horizon kAllUnits or in 0..num_units.
  bool IsValid(int num_units, std::string* error) const;
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
  // rayleigh:snr_db=X: the analytic law (DiscretizeRayleigh with options' K, bandwidth and
  // outage probability), then FromLaw.
  static Result<std::shared_ptr<const LiveDecision>> FromRayleigh(
      const decision::CostModel& cost, double snr_db, const LiveDecisionOptions& options);
  // A given discretized law, i.i.d. or Markov (validated), priced at each state's rate like
  // decision::BuildProblem (outage states: not allowed before the horizon, the floor rate at a
  // forced offload). Its rates are emulated bit/s and a Markov epoch emulated seconds, as the
  // link reports them; both are identity at time_scale 1. options.num_states is unused (the
  // law has its own K).
  static Result<std::shared_ptr<const LiveDecision>> FromLaw(const decision::CostModel& cost,
                                                             const decision::ChannelLaw& law,
                                                             const LiveDecisionOptions& options);

  // A candidate of the robust splitter (decision::RobustSplitter: its series model fitted on a
  // wall-time series, its problem of horizon N and its table) as a live table. Needs
  // options.horizon = kAllUnits and a candidate with a series model.
  static Result<std::shared_ptr<const LiveDecision>> FromCandidate(
      const decision::SplitCandidate& candidate, const LiveDecisionOptions& options,
      uint64_t generation = 0);

  // State of an observed emulated rate.
  int StateOf(double emulated_rate_bps) const { return law().StateOf(emulated_rate_bps * scale_); }
  // A two-window state (the robust splitter's "-long" candidates): the short-window observation
  // and the wall-time rate over the model's long window (series_model()->long_window() steps).
  bool two_window() const { return model_ && model_->long_window() > 0; }
  int StateOf(double emulated_rate_bps, double long_rate_bps) const {
    return model_->StateOf(emulated_rate_bps * scale_, long_rate_bps);
  }
  // Stop at boundary l? The policy's table for l in [0, H); always true at l >= H (the device
  // holds no unit beyond the placement M = H).
  bool Stop(int boundary, int state, int first_state) const {
    return boundary >= horizon_ || policy_->Stop(boundary, state, first_state);
  }
  // H: the placed M (N when the options leave horizon at kAllUnits).
  int horizon() const { return horizon_; }
  int num_units() const { return num_units_; }  // N of the model
  const std::string& policy_name() const { return policy_->name(); }
  const decision::StoppingPolicy& policy() const { return *policy_; }
  // The problem the policy was built on, of horizon H (series: the fitted problem truncated at H).
  const decision::StoppingProblem& problem() const { return problem_; }
  // The policy's expected cost from boundary 0 in `first_state`, under the law (precomputed).
  double PredictedCost(int first_state) const { return predicted_[first_state]; }
  // The model's price of the path taken: C_1 + ... + C_k + S_k(state at k).
  double PathPrice(int boundary, int state) const {
    return problem().CumulativeContinue(boundary) + problem().stop_cost(boundary, state);
  }
  // The short-window law that maps observations to states (rates in wall-time bit/s).
  const decision::ChannelLaw& law() const { return model_ ? model_->short_law() : law_; }
  // Series channels only (null for laws): the fitted model, in wall time, of horizon N.
  const std::shared_ptr<const decision::SeriesModel>& series_model() const { return model_; }
  double time_scale() const { return scale_; }
  uint64_t generation() const { return generation_; }

 private:
  LiveDecision() = default;
  Status MakePolicy(const std::string& name);

  double scale_ = 1.0;
  uint64_t generation_ = 0;
  int horizon_ = 0, num_units_ = 0;
  std::shared_ptr<const decision::SeriesModel> model_;
  decision::ChannelLaw law_;           // FromLaw (wall-time rates)
  decision::StoppingProblem problem_;  // horizon H
  std::shared_ptr<const decision::StoppingPolicy> policy_;
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

// Early exits with a split point (issue 9, part B): the per-sample exit statistics of a branchy
// model, the exit-aware inference model, the controllers over (exit thresholds, boundary) and
// their evaluation on rate series. No LibTorch here (the DDPG agent is in exits_rl.h).
//
// The inference model. A branchy model is a chain of N split units with exits (heads) sitting at
// boundaries b_1 < ... < b_E = N (ExitHead::after_unit); the last one is the final classifier.
// An inference walks units 1..N on the device. After a unit whose boundary carries an active exit
// the head runs on the device (its profile time x CostOptions::device_slowdown, energy
// device_power_w x time, like a unit); if the sample's confidence (max softmax) at that head is
// >= the exit's threshold, the inference ends there with that head's prediction. At a boundary
// l < N, after the head there (if any) did not fire, the device may offload: it sends the tensor
// s_l (transfer time from the channel, energy p_tx x time, as in CostModel's S_l) and the edge runs
// units l+1..N, where the remaining exits apply with the same thresholds: the edge computes only
// up to the exit that fires (unit and head times / edge_speedup, plus edge_queue_ms once). The
// final exit always answers. A threshold > 1 (kExitOff) switches an exit off: its head does not
// run at all. The channel path (state, rate, transfer time) is observed at each boundary; the
// times at which boundaries are reached come from the unit times only (heads are small; their
// time is not added to the channel lag).
//
// Cost of one inference (CostModel's units: w_E per joule, w_T per second):
//   cost = w_E energy_device + w_T latency + accuracy_weight x 1[prediction != label]
// accuracy_weight is in cost units per wrong answer (with w_T = 1, w_E = 0: seconds).
//
// Thread safety: stats, models and worlds are immutable after construction; a controller keeps
// per-inference state (Begin/Offload/Feedback) and must be used by one inference at a time.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <Eigen/Dense>
#include <nlohmann/json.hpp>

#include "common/decision/cost_model.h"
#include "common/decision/simulator.h"
#include "common/decision/stopping.h"
#include "common/decision/trace.h"
#include "common/status.h"

namespace splitinfer::decision {

// ---------------------------------------------------------------------------------------------
// Statistics of a branchy model on its held-out split (data/exits/<model>_stats.json).

struct ExitHead {
  int index = 0;       // 0-based position in the exit list
  int after_unit = 0;  // 1-based: the exit sits at boundary after_unit (the last one at N)
  int64_t head_param_bytes = 0;
  int64_t head_flops = 0;
  double head_time_ms = 0.0;  // on the profiling machine, like UnitProfile::time_ms
  double test_accuracy = 0.0;
};

// One held-out sample: per exit, max softmax (conf), normalized entropy in [0, 1] and the
// predicted class.
struct ExitSample {
  int label = 0;
  std::vector<double> conf, entropy;
  std::vector<int> pred;
  bool Correct(int exit) const { return pred[exit] == label; }
};

struct ExitStats {
  std::string model, dataset;
  int64_t seed = 0;
  int train_size = 0, test_size = 0, num_units = 0;
  std::vector<ExitHead> exits;
  std::vector<ExitSample> samples;

  int num_exits() const { return static_cast<int>(exits.size()); }
  nlohmann::json ToJson() const;
};

// Parses and validates the schema {"model", "dataset", "seed", "train_size", "test_size",
// "num_units", "exits": [{"index", "after_unit", "head_param_bytes", "head_flops",
// "head_time_ms", "test_accuracy"}], "samples": [{"label", "exits": [{"conf", "entropy",
// "pred"}]}]}. Errors name the source and the JSON path (missing keys, wrong types, wrong counts,
// exits out of order or not ending at num_units, non-finite or out-of-range values).
Result<ExitStats> ParseExitStats(const nlohmann::json& j, const std::string& source);
Result<ExitStats> ParseExitStatsText(const std::string& text, const std::string& source);
Result<ExitStats> LoadExitStats(const std::string& path);

// ---------------------------------------------------------------------------------------------
// Thresholds and plans.

// One threshold per exit (the final exit's entry is ignored: it always answers). An exit fires
// iff conf >= threshold; any threshold > 1 means "off" (its head does not run).
using Thresholds = std::vector<double>;
inline constexpr double kExitOff = std::numeric_limits<double>::infinity();
inline bool ExitActive(const Thresholds& t, int exit, int num_exits) {
  return exit == num_exits - 1 || t[exit] <= 1.0;
}
// The default grid of one exit's threshold: {0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, off}.
std::vector<double> DefaultThresholdGrid();

// What one inference did.
struct InferenceOutcome {
  int exit = -1;              // the exit that answered
  int offload_boundary = -1;  // boundary where it offloaded; -1: it ended on the device
  bool correct = false;
  double latency_s = 0.0;  // device compute + heads + transfer + edge compute (+ queue)
  double energy_j = 0.0;   // device compute + heads + transmission
  double cost = 0.0;       // w_E energy + w_T latency + accuracy_weight x wrong
};

// What the device sees at a boundary.
struct ExitObservation {
  int boundary = 0;
  int state = 0;          // channel state of the fitted law (ChannelLaw::StateOf)
  double rate_bps = 0.0;  // observed (windowed) uplink rate
};

// The channel path of one inference, boundaries 0..N: the state and rate observed there and the
// realized transfer time of s_l bytes if the device offloads there (+inf: cannot offload).
struct ChannelPath {
  std::vector<int> state;
  std::vector<double> rate_bps;
  std::vector<double> transfer_s;
};

// ---------------------------------------------------------------------------------------------
// The controller interface: usable from device code (device_client) as well as the simulator.
// Per inference: Begin at boundary 0 returns the thresholds of every exit for this inference;
// Offload is then asked at each boundary l < N that the inference reaches (after the head at l, if
// any, did not fire); Feedback reports the outcome (labels known: correctness; otherwise pass
// correct = true and accuracy_weight 0).
class ExitController {
 public:
  virtual ~ExitController() = default;
  virtual const Thresholds& Begin(const ExitObservation& at0) = 0;
  virtual bool Offload(const ExitObservation& at) const = 0;
  virtual void Feedback(const InferenceOutcome& /*outcome*/) {}
  const std::string& name() const { return name_; }

 protected:
  explicit ExitController(std::string name) : name_(std::move(name)) {}

 private:
  std::string name_;
};

// Thresholds and a stop table chosen per channel state at boundary 0 (optimal stopping with
// exits, fixed thresholds + fixed split, plain BI): Begin picks the row of the state at boundary
// 0, Offload is one table load stop[s0][l * K + s].
class TableExitController final : public ExitController {
 public:
  TableExitController(std::string name, int num_states, std::vector<Thresholds> thresholds,
                      std::vector<std::vector<uint8_t>> stop)
      : ExitController(std::move(name)),
        k_(num_states),
        thresholds_(std::move(thresholds)),
        stop_(std::move(stop)) {}
  const Thresholds& Begin(const ExitObservation& at0) override {
    s0_ = thresholds_.size() == 1 ? 0 : at0.state;
    return thresholds_[s0_];
  }
  bool Offload(const ExitObservation& at) const override {
    return stop_[s0_][static_cast<size_t>(at.boundary) * k_ + at.state] != 0;
  }
  // One entry when the thresholds do not depend on the state at boundary 0, K otherwise.
  const std::vector<Thresholds>& thresholds() const { return thresholds_; }

 private:
  int k_;
  std::vector<Thresholds> thresholds_;
  std::vector<std::vector<uint8_t>> stop_;
  int s0_ = 0;
};

// A plan fixed for one inference: thresholds and the boundary k to offload at (k = N: local).
// When offloading is not possible at k (no bits), the device continues to the next boundary.
struct ExitPlan {
  Thresholds thresholds;
  int boundary = 0;
};

// ---------------------------------------------------------------------------------------------
// The exit-aware model: per-exit costs on device and edge, running one inference, and folding
// the exit statistics into a StoppingProblem.

// How Fold estimates the chance that an answer is wrong: from the labels of the calibration
// samples (1[pred != label], exact on them, but an argmin over many threshold vectors then fits
// their few errors), or from the head's own confidence (1 - conf of the answering exit: smooth,
// exact only for a calibrated head). Simulation always scores against the labels.
enum class ErrorEstimate { kLabels, kConfidence };

class ExitModel {
 public:
  // The stats' num_units must equal the profile's; accuracy_weight >= 0.
  static Result<ExitModel> Create(const CostModel& cost, const ExitStats& stats,
                                  double accuracy_weight,
                                  ErrorEstimate error = ErrorEstimate::kLabels);
  ErrorEstimate error_estimate() const { return error_; }

  const CostModel& cost() const { return *cost_; }
  const ExitStats& stats() const { return stats_; }
  int num_units() const { return cost_->num_units(); }
  int num_exits() const { return stats_.num_exits(); }
  double accuracy_weight() const { return accuracy_weight_; }
  int ExitBoundary(int exit) const { return stats_.exits[exit].after_unit; }
  // The exit at boundary l, or -1.
  int ExitAt(int boundary) const { return exit_at_[boundary]; }
  double HeadDeviceTime(int exit) const { return head_dev_s_[exit]; }
  double HeadDeviceEnergy(int exit) const { return head_dev_j_[exit]; }
  double HeadEdgeTime(int exit) const { return head_edge_s_[exit]; }
  double UnitEdgeTime(int unit) const { return unit_edge_s_[unit - 1]; }

  // The exit that answers sample `s` under thresholds `t`: the first active exit whose
  // confidence reaches its threshold, else the final one. Independent of where units run.
  int AnsweringExit(const ExitSample& s, const Thresholds& t) const;

  // One inference of `sample` on `path`, driven by `controller` (Begin, Offload, Feedback).
  InferenceOutcome Run(const ExitSample& sample, const ChannelPath& path,
                       ExitController& controller) const;
  // The same with a plan fixed up front (no controller).
  InferenceOutcome RunPlan(const ExitSample& sample, const ChannelPath& path,
                           const ExitPlan& plan) const;

  // The stopping problem of the exit-aware model for thresholds `t` over the empirical law of
  // `samples`, on the channel law and transfer pricing of `base` (a problem of horizon N built by
  // BuildProblem* / SeriesModel: S_l(s) = a E[transfer | s] + w_T T_edge(l)). Exact under that
  // empirical law (see docs/controllers.md): with P_l the share of samples still running at
  // boundary l, values are scaled by P_l, W_l = P_l V_l:
  //   continue_cost'(l) = P_l (C_{l+1} + head_{l+1}) + accuracy_weight x share(answer at l+1,
  //                       wrong)
  //   stop_cost'(l, s)  = P_l (S_l(s) - w_T T_edge(l)) + E[1(alive at l) (w_T edge time to the
  //                       answering exit + accuracy_weight x wrong)]
  // so SolveBackwardInduction on it gives the optimal (l, state) policy and its expected cost,
  // and ExactExpectedCost the expected cost of any StoppingPolicy with these thresholds.
  Result<StoppingProblem> Fold(const StoppingProblem& base,
                               const std::vector<const ExitSample*>& samples,
                               const Thresholds& t) const;

 private:
  ExitModel() = default;
  std::shared_ptr<const CostModel> cost_;
  ExitStats stats_;
  double accuracy_weight_ = 0.0;
  ErrorEstimate error_ = ErrorEstimate::kLabels;
  std::vector<int> exit_at_;
  std::vector<double> head_dev_s_, head_dev_j_, head_edge_s_, unit_edge_s_;
};

// ---------------------------------------------------------------------------------------------
// Controllers (a) optimal stopping with exits, (c) fixed thresholds, and plain BI.

struct OsControllerInfo {
  double expected_cost = 0.0;          // under the fitted law and the calibration samples
  std::vector<Thresholds> thresholds;  // chosen thresholds (per state at boundary 0 or one)
  int combinations = 0;                // threshold vectors searched
};
// For every threshold vector of grid^(E-1) (the final exit has none) folds the stats into `base`,
// solves BI, and keeps per state at boundary 0 (per_state) or overall the thresholds of least
// expected cost, with their BI table. kResourceExhausted above max_combinations.
Result<std::unique_ptr<TableExitController>> MakeOsController(
    const ExitModel& model, const StoppingProblem& base,
    const std::vector<const ExitSample*>& samples, const std::vector<double>& grid, bool per_state,
    OsControllerInfo* info, int max_combinations = 1 << 20);

struct FixedControllerInfo {
  double expected_cost = 0.0;
  double threshold = 0.0;  // the common threshold of the non-final exits
  int boundary = 0;        // the fixed split
};
// One common threshold for all exits from `grid` and one fixed split k, the pair of least exact
// expected cost (ExactExpectedCost on the folded problem). A grid of one value fixes the
// threshold (a sweep point).
Result<std::unique_ptr<TableExitController>> MakeFixedController(
    const ExitModel& model, const StoppingProblem& base,
    const std::vector<const ExitSample*>& samples, const std::vector<double>& grid,
    FixedControllerInfo* info);

// The plain BI splitter without exits (every non-final exit off), its table from `base`.
// expected_cost: its expected cost with the accuracy term, from the folded problem.
Result<std::unique_ptr<TableExitController>> MakePlainBiController(
    const ExitModel& model, const StoppingProblem& base,
    const std::vector<const ExitSample*>& samples, double* expected_cost);

// ---------------------------------------------------------------------------------------------
// The simulated world: a rate series fitted on its first part and scored on the rest, as in
// split_sim (SeriesModel, ScoredSeries semantics), plus the held-out samples split in two: the
// calibration part fits the controllers, the evaluation part scores them.

// Channel paths of inferences on one series under a fitted SeriesModel: the state and rate
// observed at boundary l, lag[l] grid steps after the start (wrapping), and the actual transfer
// time of s_l bytes starting one step after the observation (ScoredSeries::EpisodeAt's rule).
class PathSource {
 public:
  PathSource(const CostModel& cost, std::shared_ptr<const SeriesModel> model, RateSeries series);
  ChannelPath At(size_t i0) const;
  size_t size() const { return series_.size(); }

 private:
  std::vector<double> bits_;
  std::shared_ptr<const SeriesModel> model_;
  RateSeries series_;
  std::vector<double> observed_;
  TransferClock clock_;
};

struct ExitWorldOptions {
  int num_states = 8;              // K
  double grid_s = 0.005;           // rate-series step
  double observe_window_s = 0.02;  // observation window of the device
  double fit_fraction = 0.5;       // first part of the series fits, the rest scores
  double calib_fraction = 0.5;     // first part of the samples fits, the rest scores
  bool swap_samples = false;       // the other way round: the first part scores (cross-fitting)
  double rate_scale = 1.0;         // multiplies every trace rate
  double bandwidth_hz = 10e6;      // gauss-markov, UCC SNR
  double gauss_markov_duration_s = 1200.0;
  uint64_t seed = 1;  // gauss-markov series
  bool IsValid(std::string* error) const;
};

struct ExitWorld {
  std::shared_ptr<const ExitModel> model;
  std::shared_ptr<const SeriesModel> series_model;
  StoppingProblem base;  // the fitted problem (no exits)
  std::shared_ptr<const PathSource> fit, score;
  std::vector<const ExitSample*> calib, eval;  // point into model->stats()
  std::string channel;
};

// Rate-series channels only: trace:<file> (i.i.d. law), markov-fit:<file>, gauss-markov:...
Result<ExitWorld> BuildExitWorld(const CostModel& cost, const ExitStats& stats,
                                 double accuracy_weight, const ChannelSpec& channel,
                                 const ExitWorldOptions& options,
                                 ErrorEstimate error = ErrorEstimate::kLabels);

struct ControllerStats {
  std::string name;
  double accuracy = 0.0;
  double mean_latency_ms = 0.0;
  double mean_energy_mj = 0.0;
  double mean_cost = 0.0;
  double ci95 = 0.0;  // of the mean cost
  double share_local = 0.0;
  double mean_offload_boundary = 0.0;  // over the inferences that offloaded (NaN: none)
  std::vector<int> exit_counts;        // per exit: answers
  // Set by the caller: exact expected cost under the fitted law (NaN: none), training seconds.
  double expected_cost = std::numeric_limits<double>::quiet_NaN();
  double train_s = 0.0;
  nlohmann::json extra;
};

// Scores `controllers` on the same `episodes` inferences: each draws a start step on `paths`
// and a sample of `samples`, both uniform from a std::mt19937_64 seeded with `seed`.
std::vector<ControllerStats> EvaluateControllers(const ExitModel& model, const PathSource& paths,
                                                 const std::vector<const ExitSample*>& samples,
                                                 const std::vector<ExitController*>& controllers,
                                                 int episodes, uint64_t seed);

}  // namespace splitinfer::decision

// Model-variant selection as a contextual bandit (issue 10 item 3; Lu, Yang, Chen, Ren, CogMI
// 2019): arms are pre-trained variants of one task, the context is the device (speed, uplink,
// energy weight, latency sensitivity) crossed with each variant's features (accuracy, time,
// FLOPs), and the reward is the user's QoE feedback. LinUCB (Li et al. 2010) with ridge
// regression kept as an inverse Gram matrix updated by Sherman-Morrison (O(d^2) per update, no
// inversion per decision). Two model layouts: one parameter vector shared by every arm over the
// joint features (generalizes across variants and devices), or one per arm (disjoint LinUCB).
// epsilon-greedy over the same ridge estimates is the baseline. See docs/selection.md.
//
// The QoE model standing in for users, the device population and the simulator behind
// select_sim live here too, as does the link to the placement planner (PlanForVariant).
//
// Thread safety: LinUcb is a plain value, not synchronized; the free functions keep no state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <Eigen/Dense>
#include <nlohmann/json.hpp>

#include "common/decision/cost_model.h"
#include "common/decision/placement.h"
#include "common/status.h"

namespace splitinfer::decision {

// One model variant: data/variants/digits_variants.json (scripts/make_variants.sh).
struct Variant {
  std::string name;
  int width = 0;
  std::string kind;         // "full" or "truncated" (stops at an early exit)
  double accuracy = 0.0;    // held-out top-1 accuracy
  int64_t flops = 0;        // whole variant
  int64_t param_bytes = 0;  // whole variant
  double time_ms = 0.0;     // one inference on the profiling machine (sum of unit medians)
  ModelProfile profile;     // per-unit, for the cost model and the placement planner
};

// {"variants": [{"name", "width", "kind", "accuracy", "flops", "param_bytes", "time_ms",
// "profile": {profile_model schema}}]}. `source` names the file in errors.
Result<std::vector<Variant>> ParseVariants(const nlohmann::json& j, const std::string& source);
Result<std::vector<Variant>> LoadVariants(const std::string& path);

// A device as the bandit sees it.
struct DeviceContext {
  double slowdown = 10.0;            // device time = profiled time x slowdown
  double uplink_bps = 20e6;          // mean uplink rate (feeds the placement planner)
  double energy_weight = 0.0;        // QoE points per millijoule
  double latency_sensitivity = 0.1;  // QoE points per millisecond
  bool IsValid(std::string* error) const;
};

// The QoE model standing in for users: QoE = accuracy_scale * accuracy
//   - latency_sensitivity * latency_ms - energy_weight * device_power_w * latency_ms + N(0, sd^2)
// with latency_ms = slowdown * time_ms (the device runs the variant itself).
struct QoeOptions {
  double accuracy_scale = 100.0;  // QoE points per unit of accuracy (1 point per percent)
  double device_power_w = 2.0;    // W while computing (energy_mJ = power x latency_ms)
  double noise_sd = 1.0;          // user feedback noise
  bool IsValid(std::string* error) const;
};
double VariantLatencyMs(const Variant& v, const DeviceContext& d);
double ExpectedQoe(const Variant& v, const DeviceContext& d, const QoeOptions& q);

// Joint features of (device, variant): the outer product of the device vector
// [1, s, lambda s, w_E s, uplink] (s = slowdown / 100, uplink in 100 Mbit/s) and the variant
// vector [1, accuracy, time_ms, log10(flops) / 10]: kJointDim = 20. ExpectedQoe is linear in
// them (see docs/selection.md), so the shared model is well specified.
inline constexpr int kDeviceDim = 5;
inline constexpr int kVariantDim = 4;
inline constexpr int kJointDim = kDeviceDim * kVariantDim;
Eigen::VectorXd DeviceFeatures(const DeviceContext& d);
Eigen::VectorXd VariantFeatures(const Variant& v);
// Row a = the joint features of arm a (num_arms x kJointDim), written into `out`.
void JointFeatures(const DeviceContext& d, const std::vector<Variant>& arms, Eigen::MatrixXd* out);

enum class BanditPolicy { kLinUcb, kEpsilonGreedy };

struct BanditOptions {
  int num_arms = 0;
  int dim = 0;
  BanditPolicy policy = BanditPolicy::kLinUcb;
  bool shared = true;     // one model over joint features; false: one model per arm (disjoint)
  double alpha = 1.0;     // LinUCB width multiplier
  double ridge = 1.0;     // lambda of A = lambda I + sum x x^T
  double epsilon = 0.05;  // epsilon-greedy exploration rate
  // The model learns reward - reward_offset, so the ridge prior (theta = 0) predicts
  // reward_offset for an arm never played: the QoE ceiling makes that prior optimistic (every arm
  // gets tried), 0 is plain LinUCB.
  double reward_offset = 0.0;
  uint64_t seed = 1;  // epsilon-greedy draws
  bool IsValid(std::string* error) const;
};

// LinUCB / epsilon-greedy over ridge estimates. Select() takes the arms' features as the rows of
// a num_arms x dim matrix; ties go to the lowest index.
class LinUcb {
 public:
  static Result<LinUcb> Create(const BanditOptions& options);

  const BanditOptions& options() const { return options_; }
  // The chosen arm; kInvalidArgument on a shape mismatch or non-finite features.
  Result<int> Select(const Eigen::MatrixXd& arm_features);
  // Feeds back the reward of `arm` played with features `x` (its row at selection time).
  // kInvalidArgument on a bad arm, shape, or non-finite x or reward; the model is unchanged then.
  Status Update(int arm, const Eigen::VectorXd& x, double reward);
  // The current ridge estimate of the arm's model (the shared one when shared), of
  // reward - reward_offset.
  const Eigen::VectorXd& Theta(int arm) const { return theta_[options_.shared ? 0 : arm]; }
  int64_t updates() const { return updates_; }

 private:
  LinUcb() = default;
  double NextUniform();
  BanditOptions options_;
  std::vector<Eigen::MatrixXd> a_inv_;  // 1 (shared) or num_arms
  std::vector<Eigen::VectorXd> b_, theta_;
  Eigen::VectorXd scratch_;
  uint64_t rng_state_ = 0;
  int64_t updates_ = 0;
};

// A heterogeneous population: slowdown log-uniform in [1, 1000], uplink log-uniform in
// [1, 100] Mbit/s, latency sensitivity log-uniform in [0.01, 1] points/ms, energy weight 0
// for half the devices (mains-powered) and log-uniform in [0.005, 0.2] points/mJ for the others.
std::vector<DeviceContext> SampleDevices(int n, uint64_t seed);

// The bandit knobs of one policy of the simulator.
struct PolicyParams {
  double ridge = 0.001;     // lambda of A = lambda I + sum x x^T
  double alpha = 1.0;       // LinUCB width multiplier (unused by epsilon-greedy)
  bool optimistic = false;  // reward offset = the QoE ceiling (accuracy_scale), else 0
  bool IsValid(std::string* error) const;
};

struct SelectSimOptions {
  int devices = 200;
  int rounds = 20000;
  uint64_t seed = 1;
  QoeOptions qoe;
  // Each policy's knobs, tuned on seeds 101-110 only, never on the seeds reported: the lowest
  // mean regret at T = 20000 over the grid ridge {1, 0.1, 0.01, 0.001} x alpha {0.5, 1, 2, 4} x
  // optimistic {off, on} (select_sim --seeds 101-110 --ridge ... ; docs/selection.md, Tuning).
  PolicyParams linucb{0.001, 0.5, false};
  PolicyParams linucb_disjoint{0.01, 0.5, true};
  PolicyParams eps_greedy{0.001, 0.5, false};
  double epsilon = 0.05;
  std::vector<int> checkpoints;  // rounds at which cumulative regret is reported (ascending)
  void SetAll(const PolicyParams& p) { linucb = linucb_disjoint = eps_greedy = p; }
  bool IsValid(std::string* error) const;
};

struct PolicyTrace {
  std::string name;
  std::vector<double> regret_oracle;  // cumulative expected regret vs the per-device oracle
  std::vector<double> regret_common;  // vs always playing the best common variant
  double regret_oracle_half = 0.0;    // cumulative regret vs the oracle at round floor(T / 2)
  std::vector<int64_t> picks;         // per arm over all rounds
  std::vector<int64_t> picks_last;    // per arm over the last 20% of rounds
  double mean_qoe = 0.0;              // mean expected QoE of the arms played
  double mean_decision_us = 0.0;      // wall time of Select + Update per round
};

struct SelectSimResult {
  std::vector<int> checkpoints;
  int common_arm = 0;                 // best single variant for the population (expected QoE)
  std::vector<int> oracle_arm;        // per device
  double oracle_mean_qoe = 0.0;       // over the arrivals
  std::vector<PolicyTrace> policies;  // linucb, linucb_disjoint, eps_greedy, common
  std::optional<LinUcb> linucb;       // the shared LinUCB as it stands after the last round
  nlohmann::json ToJson(const std::vector<Variant>& arms) const;
};

// T rounds; each round a device drawn uniformly from the population arrives, every policy picks
// a variant from the same context and gets the same noise draw on its chosen arm's QoE.
Result<SelectSimResult> RunSelectSim(const std::vector<Variant>& arms,
                                     const std::vector<DeviceContext>& devices,
                                     const SelectSimOptions& options);

// --- Command-line lists (select_sim) ------------------------------------------------------------
// Strict comma lists: every item must be a whole number (resp. a finite decimal), spaces around
// an item allowed; "5x", "", "1,,2", "1e999" and out-of-range values are refused with
// kInvalidArgument naming `what` and the item.
Result<std::vector<int>> ParseIntList(const std::string& text, const std::string& what);
Result<std::vector<double>> ParseDoubleList(const std::string& text, const std::string& what);
// Seeds: comma list of N or A-B (inclusive, A <= B), e.g. "1-20" or "1,2,5" or "101-110,7";
// duplicates and more than kMaxSeeds seeds are refused.
inline constexpr int kMaxSeeds = 100000;
Result<std::vector<uint64_t>> ParseSeedList(const std::string& text);

// --- Many seeds ---------------------------------------------------------------------------------
// Distribution of one figure over seeds. sd is the sample standard deviation (0 for one seed);
// median of an even count is the mean of the two middle values.
struct SeedStats {
  double mean = 0, median = 0, min = 0, max = 0, sd = 0;
  nlohmann::json ToJson() const;
};
// kInvalidArgument when `values` is empty.
Result<SeedStats> SummarizeSeeds(const std::vector<double>& values);

// RunSelectSim once per seed, each seed drawing its own population (SampleDevices(devices, seed)),
// arrivals and noise, exactly as a single-seed run with that seed.
struct MultiSeedResult {
  std::vector<uint64_t> seeds;
  std::vector<std::string> policies;  // linucb, linucb_disjoint, eps_greedy, common
  // [policy][seed]: regret at T vs the oracle and vs the best common variant, regret over the
  // second half / first half (NaN when the first half has none), mean expected QoE.
  std::vector<std::vector<double>> regret_oracle, regret_common, late_ratio, mean_qoe;
  std::vector<double> oracle_mean_qoe;  // per seed
  std::vector<std::string> common_arm;  // per seed, the variant's name
  std::vector<SelectSimResult> runs;    // per seed, only when kept (keep_runs)
  // Distribution over the seeds of policy p's regret at T vs the oracle (resp. the others).
  SeedStats RegretStats(size_t p) const;
  nlohmann::json ToJson(const std::vector<Variant>& arms) const;
};
Result<MultiSeedResult> RunSelectSeeds(const std::vector<Variant>& arms,
                                       const SelectSimOptions& options,
                                       const std::vector<uint64_t>& seeds, bool keep_runs);

// The link to the placement planner: the chosen variant's profile priced for this device
// (device_slowdown, w_E from the context, w_T = 1 per second) over an i.i.d. Rayleigh uplink
// whose bandwidth gives the device's mean rate at 10 dB SNR; returns M* and the plan.
struct VariantPlacement {
  std::string variant;
  int num_units = 0;
  int64_t total_param_bytes = 0;
  PlacementPlan plan;
};
Result<VariantPlacement> PlanForVariant(const Variant& v, const DeviceContext& d,
                                        const PlacementOptions& options = {});

}  // namespace splitinfer::decision

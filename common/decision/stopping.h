// Online splitting as optimal stopping (SPEC section 3): the problem, backward induction (BI),
// one-stage look-ahead (OLA), the baselines and the clairvoyant oracle, all as StoppingPolicy
// objects whose run-time decision is a table lookup.
//
// A StoppingProblem has boundaries 0..H and K channel states. At boundary l < H in state s the
// device either stops (offloads, cost S_l(s)) or runs unit l+1 (cost C_{l+1}) and observes the
// next state, drawn i.i.d. from `initial` or from row s of transition[l]. At H it must stop.
// S_l(s) = +infinity marks "offloading not allowed" (an outage state) and is allowed only for
// l < H, so every value function stays finite.
//
// Thread safety: problems, solutions and policies are immutable after construction; Stop() may
// be called from any number of threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "common/decision/channel.h"
#include "common/decision/cost_model.h"
#include "common/status.h"

namespace splitinfer::decision {

// Row-major so that one boundary's K entries are contiguous.
using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct StoppingProblem {
  int horizon = 0;                // H
  Eigen::VectorXd continue_cost;  // H entries: C_{l+1} for l = 0..H-1
  Eigen::MatrixXd stop_cost;      // (H+1) x K: S_l(s)
  Eigen::VectorXd initial;        // K: law of the state at boundary 0 (and i.i.d. draws)
  bool iid = true;
  std::vector<Eigen::MatrixXd> transition;  // Markov: H row-stochastic K x K, step l -> l+1
  // Wire option (CostModel::WireOptionName) that attains S_l(s), row-major (H+1) x K; empty:
  // option 0 (float32) everywhere. A stop in state s at l sends the tensor with this option.
  std::vector<int> stop_option;

  int num_states() const { return static_cast<int>(initial.size()); }
  int StopOption(int l, int s) const {
    return stop_option.empty() ? 0 : stop_option[static_cast<size_t>(l) * num_states() + s];
  }
  bool Allowed(int l, int s) const { return stop_cost(l, s) < kNotAllowed; }
  // Sum of C_1..C_l.
  double CumulativeContinue(int l) const { return continue_cost.head(l).sum(); }
  Status Validate() const;

  static constexpr double kNotAllowed = 1e300;  // anything >= this (incl. +inf) is "not allowed"
};

// Transfer pricing of a stop.
enum class Pricing {
  kInstantRate,       // a 8 s_l / r(state): the channel holds still during the transfer
  kExpectedTransfer,  // a E[transfer time of s_l bytes | state], learned from a rate series
};

// Builds the problem for placement M (horizon H = M <= N) from a cost model and a channel law,
// pricing at each state's representative rate. Outage states: not allowed before H; a forced
// offload at H < N is priced at the floor rate. Markov laws step by transition^n_l with
// n_l = round(t_{l+1} / epoch_s) (t = device time of the unit), unless `steps` gives the H
// per-step matrices (e.g. fitted directly at each unit's lag).
Result<StoppingProblem> BuildProblem(const CostModel& cost, const ChannelLaw& law, int horizon,
                                     const std::vector<Eigen::MatrixXd>& steps = {});
// Same, with S_l(s) = a * transfer_s(l, s) + w_T T_edge(l): the expected-transfer pricing of
// SPEC section 6. transfer_s is (N+1) x K (row N unused). Float32 only.
Result<StoppingProblem> BuildProblemWithTransfers(const CostModel& cost, const ChannelLaw& law,
                                                  int horizon, const Eigen::MatrixXd& transfer_s,
                                                  const std::vector<Eigen::MatrixXd>& steps = {});
// With wire options (issue 6): S_l(s) = min over allowed options c of a * transfer_c(l, s) +
// overhead_c(l) + w_T T_edge(l), one (N+1) x K transfer table per option of `cost`; stop_option
// records the argmin.
Result<StoppingProblem> BuildProblemWithOptionTransfers(
    const CostModel& cost, const ChannelLaw& law, int horizon,
    const std::vector<Eigen::MatrixXd>& transfer_by_option,
    const std::vector<Eigen::MatrixXd>& steps = {});
// Per-step Markov matrices law.transition^n_l for the first `horizon` units.
std::vector<Eigen::MatrixXd> PowerSteps(const CostModel& cost, const ChannelLaw& law, int horizon);

// Decides at boundary l in [0, H) from the state observed there and the state observed at
// boundary 0. Stop at H is implied.
class StoppingPolicy {
 public:
  virtual ~StoppingPolicy() = default;
  virtual bool Stop(int boundary, int state, int first_state) const = 0;
  // True when Stop() reads first_state (Neurosurgeon-style plans).
  virtual bool UsesFirstState() const { return false; }
  const std::string& name() const { return name_; }

 protected:
  explicit StoppingPolicy(std::string name) : name_(std::move(name)) {}

 private:
  std::string name_;
};

// stop[l][s] as a flat bit table: one load per decision.
class TablePolicy final : public StoppingPolicy {
 public:
  TablePolicy(std::string name, int horizon, int num_states, std::vector<uint8_t> stop)
      : StoppingPolicy(std::move(name)), k_(num_states), stop_(std::move(stop)) {}
  bool Stop(int boundary, int state, int /*first_state*/) const override {
    return StopAt(boundary, state);
  }
  bool StopAt(int boundary, int state) const { return stop_[boundary * k_ + state] != 0; }
  const std::vector<uint8_t>& table() const { return stop_; }

 private:
  int k_;
  std::vector<uint8_t> stop_;
};

// A plan fixed at boundary 0 from the first state (Neurosurgeon): stop at the first allowed
// boundary l >= plan[first_state].
class StartPlanPolicy final : public StoppingPolicy {
 public:
  StartPlanPolicy(std::string name, int num_states, std::vector<int> plan,
                  std::vector<uint8_t> allowed)
      : StoppingPolicy(std::move(name)),
        k_(num_states),
        plan_(std::move(plan)),
        allowed_(std::move(allowed)) {}
  bool Stop(int boundary, int state, int first_state) const override {
    return boundary >= plan_[first_state] && allowed_[boundary * k_ + state] != 0;
  }
  bool UsesFirstState() const override { return true; }
  int PlannedBoundary(int first_state) const { return plan_[first_state]; }

 private:
  int k_;
  std::vector<int> plan_;
  std::vector<uint8_t> allowed_;
};

// Backward induction: V_H = S_H, V_l = min(S_l, C_{l+1} + E[V_{l+1} | s]).
struct BiSolution {
  RowMatrix value;             // (H+1) x K
  RowMatrix continuation;      // H x K: C_{l+1} + E[V_{l+1} | s]
  double expected_cost = 0.0;  // initial . V_0
  std::vector<uint8_t> stop;   // H x K, row-major
};
BiSolution SolveBackwardInduction(const StoppingProblem& p);
// BI's expected cost for the shorter horizon m <= H of `full`, whose rows 0..m-1 and first m
// transitions are shared and whose stop row at m is `terminal` (the forced stop at m). No copies:
// the placement planner solves every M this way.
double TruncatedBackwardInductionCost(const StoppingProblem& full, int m,
                                      const Eigen::RowVectorXd& terminal);
// The problem of horizon m as a copy (rows 0..m-1, transitions 0..m-1, `terminal` at m).
StoppingProblem Truncate(const StoppingProblem& full, int m, const Eigen::RowVectorXd& terminal);
// The forced-stop row at every horizon m = 0..N for problems built by BuildProblem: row m of
// BuildProblem(cost, law, m) (outage states priced at the floor rate).
RowMatrix ForcedStopRows(const CostModel& cost, const ChannelLaw& law);

// The policies. All return tables built once; Stop() is a lookup.
std::unique_ptr<TablePolicy> MakeBiPolicy(const StoppingProblem& p);
// OLA: stop iff S_l(s) <= C_{l+1} + E[W_{l+1} | s], W = S where allowed and "continue to the
// next allowed boundary" in an outage state (W = S without outages).
std::unique_ptr<TablePolicy> MakeOlaPolicy(const StoppingProblem& p);
std::unique_ptr<TablePolicy> MakeFixedPolicy(const StoppingProblem& p, int k, std::string name);
std::unique_ptr<TablePolicy> MakeAllLocalPolicy(const StoppingProblem& p);
std::unique_ptr<TablePolicy> MakeAllEdgePolicy(const StoppingProblem& p);
// argmin over k of the exact expected cost of the fixed-k policy under p's law.
std::unique_ptr<TablePolicy> MakeBestFixedPolicy(const StoppingProblem& p, int* best_k = nullptr);
std::unique_ptr<StartPlanPolicy> MakeNeurosurgeonPolicy(const StoppingProblem& p);
// Re-plans at every boundary as if the current state stayed: stop iff l is the first argmin over
// k >= l of (C_{l+1} + ... + C_k) + S_k(s).
std::unique_ptr<TablePolicy> MakeGreedyPolicy(const StoppingProblem& p);

// i.i.d. laws: S_l falls with the rate and the continuation is one number per boundary, so each
// row of a BI or OLA table is an upper set of states and the table is one rate threshold per
// boundary (SPEC's tau_l): stop at l iff rate >= tau[l] (+inf: never; 0: always). Needs the
// law the table was built on; kFailedPrecondition when a row is not an upper set of states.
Result<std::vector<double>> RateThresholds(const TablePolicy& policy, const ChannelLaw& law,
                                           int horizon);

// The policies every report shows, in a stable order: bi, ola, greedy, neurosurgeon, best-fixed,
// all-edge, all-local.
std::vector<std::unique_ptr<StoppingPolicy>> MakeStandardPolicies(const StoppingProblem& p);

// OLA threshold on the normalized gain for an i.i.d. Shannon channel r = B log2(1 + snr h)
// (SPEC section 3): stop at l iff h >= tau. a = w_E P_tx + w_T, look_ahead = C_{l+1} + E[S_{l+1}],
// edge = w_T T_edge(l). +infinity when look_ahead <= edge (never stop).
double OlaShannonGainThreshold(double a, double bits, double bandwidth_hz, double snr_linear,
                               double look_ahead, double edge);

// Exact expected cost of a policy under p's law (no sampling).
double ExactExpectedCost(const StoppingProblem& p, const StoppingPolicy& policy);
// Exact expected cost of the clairvoyant oracle: E[min_l (C_1..C_l + S_l(s_l))] by enumerating
// every state path; kResourceExhausted when K^(H+1) exceeds max_paths.
Result<double> ExactOracleCost(const StoppingProblem& p, double max_paths = 2e6);

// One inference's channel path as the simulator sees it: the state observed at each boundary and
// the realized cost of stopping there (e.g. the actual transfer time on the trace).
struct Episode {
  std::vector<int> state;         // H+1
  std::vector<double> stop_cost;  // H+1: the best wire option's realized cost (the oracle's)
  // With wire options: option_cost[l][c], the realized cost of stopping at l with option c; a
  // policy pays the option its problem chose for the observed state (StopOption). Empty: one
  // option.
  std::vector<std::vector<double>> option_cost;
  // Rate series: seconds from the start of the inference until a stop at l has finished sending
  // (device time of units 1..l plus the longest transfer of an option there); empty otherwise.
  // After that time the device has seen what a stop at l cost.
  std::vector<double> finish_s;
};
// Cost of running `policy` on an episode; `boundary` receives where it stopped.
double EpisodeCost(const StoppingProblem& p, const StoppingPolicy& policy, const Episode& e,
                   int* boundary);
double OracleEpisodeCost(const StoppingProblem& p, const Episode& e, int* boundary);

}  // namespace splitinfer::decision

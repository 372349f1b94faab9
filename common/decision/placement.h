// Model placement (SPEC section 4): how many units M of a model version the device stores.
//
//   M* = argmin_M  D(M) / R + E[V_0^(M)]   subject to  sum_{l<=M} w_l <= storage budget
//
// D(M) is the cost of downloading units 1..M once per version (CostModel::DownloadCost), R the
// expected number of inferences per version, and V_0^(M) the value of the stopping problem with
// horizon M (forced offload at M < N). BI gives the exact figure; OLA a fast one (the exact
// expected cost of the OLA policy). MlpClosedFormPlacement is the closed form for a chain whose
// units are all equal (the equal-width MLP), derived in docs/decision.md.
//
// Thread safety: Plan() is const and keeps no state.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "common/decision/channel.h"
#include "common/decision/cost_model.h"
#include "common/decision/stopping.h"
#include "common/status.h"

namespace splitinfer::decision {

enum class PlacementMethod { kBackwardInduction, kOneStageLookAhead };

struct PlacementOptions {
  double inferences_per_version = 1000.0;  // R
  int64_t storage_budget_bytes = std::numeric_limits<int64_t>::max();
  PlacementMethod method = PlacementMethod::kBackwardInduction;
  bool IsValid(std::string* error) const;
};

struct PlacementPlan {
  int best_m = 0;
  double best_objective = 0.0;
  std::vector<double> objective;       // J(M), M = 0..N; +inf over the storage budget
  std::vector<double> download_cost;   // D(M)
  std::vector<double> inference_cost;  // E[V_0^(M)] (BI) or the OLA policy's exact cost
  int feasible = 0;                    // number of M within the budget
};

class PlacementPlanner {
 public:
  // Builds the stopping problem of horizon M; BuildProblem(cost, law, M) for a channel law.
  using ProblemFactory = std::function<Result<StoppingProblem>(int m)>;
  PlacementPlanner(const CostModel& cost, ProblemFactory factory)
      : cost_(cost), factory_(std::move(factory)) {}
  // Convenience: problems priced at the law's representative rates.
  PlacementPlanner(const CostModel& cost, const ChannelLaw& law);
  // Fast path: every M is the full-horizon problem truncated at M with stop row
  // terminal_rows.row(M) (ForcedStopRows for BuildProblem; full.stop_cost for expected-transfer
  // pricing). BI then solves each M without building or copying a problem.
  PlacementPlanner(const CostModel& cost, StoppingProblem full, RowMatrix terminal_rows);

  PlacementPlanner(const PlacementPlanner&) = delete;  // the fast path's factory points at *this
  PlacementPlanner& operator=(const PlacementPlanner&) = delete;

  Result<PlacementPlan> Plan(const PlacementOptions& options) const;

 private:
  const CostModel& cost_;
  ProblemFactory factory_;
  bool truncating_ = false;
  StoppingProblem full_;
  RowMatrix terminal_;
};

// Closed form for an equal-unit chain (every C_l, w_l, s_l equal; s_0 = s too) on an i.i.d.
// channel without outage states, priced at the law's rates. Returns the plan with the objective
// for every M (from the scalar recursion u_j = E[min(X, delta + u_{j-1})]) and best_m from the
// threshold rule M* = #{j : u_{j-1} - u_j > D(1)/R}, compared with M = N. kInvalidArgument when
// the chain is not equal-unit or the law has outages or is Markov.
Result<PlacementPlan> MlpClosedFormPlacement(const CostModel& cost, const ChannelLaw& law,
                                             const PlacementOptions& options);

}  // namespace splitinfer::decision

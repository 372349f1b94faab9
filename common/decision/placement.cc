#include "common/decision/placement.h"

#include <cmath>
#include <sstream>

namespace splitinfer::decision {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

int MaxPlacement(const CostModel& cost, int64_t budget) {
  int m = 0;
  while (m < cost.num_units() && cost.PlacementBytes(m + 1) <= budget) ++m;
  return m;
}

}  // namespace

bool PlacementOptions::IsValid(std::string* error) const {
  std::ostringstream msg;
  if (!(inferences_per_version > 0) || !std::isfinite(inferences_per_version)) {
    msg << "inferences_per_version must be > 0 (got " << inferences_per_version << ")";
  } else if (storage_budget_bytes < 0) {
    msg << "storage_budget_bytes must be >= 0 (got " << storage_budget_bytes << ")";
  } else {
    return true;
  }
  if (error) *error = msg.str();
  return false;
}

PlacementPlanner::PlacementPlanner(const CostModel& cost, const ChannelLaw& law)
    : cost_(cost), factory_([&cost, law](int m) { return BuildProblem(cost, law, m); }) {}

PlacementPlanner::PlacementPlanner(const CostModel& cost, StoppingProblem full,
                                   RowMatrix terminal_rows)
    : cost_(cost), truncating_(true), full_(std::move(full)), terminal_(std::move(terminal_rows)) {
  factory_ = [this](int m) -> Result<StoppingProblem> {
    return Truncate(full_, m, terminal_.row(m));
  };
}

Result<PlacementPlan> PlacementPlanner::Plan(const PlacementOptions& options) const {
  std::string error;
  if (!options.IsValid(&error)) return InvalidArgumentError("placement: " + error);
  const int n = cost_.num_units();
  const int m_max = MaxPlacement(cost_, options.storage_budget_bytes);
  if (truncating_ &&
      (full_.horizon != n || terminal_.rows() != n + 1 || terminal_.cols() != full_.num_states()))
    return InvalidArgumentError("placement: the full problem must have horizon N and N+1 rows");
  PlacementPlan plan;
  plan.objective.assign(n + 1, kInf);
  plan.download_cost.resize(n + 1);
  plan.inference_cost.assign(n + 1, kInf);
  plan.best_objective = kInf;
  for (int m = 0; m <= n; ++m) {
    plan.download_cost[m] = cost_.DownloadCost(m);
    if (m > m_max) continue;
    if (truncating_ && options.method == PlacementMethod::kBackwardInduction) {
      plan.inference_cost[m] = TruncatedBackwardInductionCost(full_, m, terminal_.row(m));
    } else {
      Result<StoppingProblem> p = factory_(m);
      if (!p.ok()) return p.status().WithPrefix("placement M = " + std::to_string(m) + ": ");
      plan.inference_cost[m] = options.method == PlacementMethod::kBackwardInduction
                                   ? SolveBackwardInduction(*p).expected_cost
                                   : ExactExpectedCost(*p, *MakeOlaPolicy(*p));
    }
    plan.objective[m] =
        plan.download_cost[m] / options.inferences_per_version + plan.inference_cost[m];
    ++plan.feasible;
    if (plan.objective[m] < plan.best_objective) {
      plan.best_objective = plan.objective[m];
      plan.best_m = m;
    }
  }
  return plan;
}

Result<PlacementPlan> MlpClosedFormPlacement(const CostModel& cost, const ChannelLaw& law,
                                             const PlacementOptions& options) {
  std::string error;
  if (!options.IsValid(&error)) return InvalidArgumentError("placement: " + error);
  SPLITINFER_RETURN_IF_ERROR(law.Validate());
  if (!law.iid || law.outage_states > 0)
    return InvalidArgumentError("closed form needs an i.i.d. law without outage states");
  const int n = cost.num_units();
  const ModelProfile& prof = cost.profile();
  for (int l = 1; l <= n; ++l) {
    const UnitProfile& u = prof.units[l - 1];
    const UnitProfile& u1 = prof.units[0];
    if (u.time_ms != u1.time_ms || u.param_bytes != u1.param_bytes ||
        u.output_bytes != prof.input_bytes)
      return InvalidArgumentError("closed form needs equal units (unit " + std::to_string(l) +
                                  " differs)");
  }
  // Stopping at l < N costs N e + q + l delta + X(h); at N it costs N C = N e + N delta.
  const double c = cost.ContinueCost(1);
  const double e = n > 0 ? cost.options().w_time * (cost.EdgeTime(n - 1) - cost.EdgeTime(n) -
                                                    cost.options().edge_queue_ms * 1e-3)
                         : 0.0;
  const double q = cost.options().w_time * cost.options().edge_queue_ms * 1e-3;
  const double delta = c - e, base = n * e + q;
  const int k = law.num_states();
  Eigen::VectorXd x(k);
  for (int s = 0; s < k; ++s) x(s) = cost.TransferWeight() * cost.Bits(0) / law.rate_bps(s);
  auto phi = [&](double u) { return law.stationary.dot(x.cwiseMin(delta + u)); };
  // u_j: forced offload after j more units (M < N); w_N: horizon N with the local option.
  std::vector<double> u(n + 1);
  u[0] = law.stationary.dot(x);
  for (int j = 1; j <= n; ++j) u[j] = phi(u[j - 1]);
  double w = -q;
  for (int j = 1; j <= n; ++j) w = phi(w);
  const double d = cost.DownloadCost(1), r = options.inferences_per_version;
  const int m_max = MaxPlacement(cost, options.storage_budget_bytes);
  PlacementPlan plan;
  plan.objective.assign(n + 1, kInf);
  plan.inference_cost.assign(n + 1, kInf);
  plan.download_cost.resize(n + 1);
  for (int m = 0; m <= n; ++m) {
    plan.download_cost[m] = d * m;
    if (m > m_max) continue;
    plan.inference_cost[m] = base + (m < n ? u[m] : w);
    plan.objective[m] = d * m / r + plan.inference_cost[m];
    ++plan.feasible;
  }
  // Threshold rule over M < N: the decrements u_{j-1} - u_j never grow (phi is monotone and
  // 1-Lipschitz), so the optimum stops at the last j whose decrement beats d / R.
  int m_int = 0;
  for (int j = 1; j <= std::min(n - 1, m_max); ++j)
    if (u[j - 1] - u[j] > d / r) m_int = j;
  plan.best_m = m_int;
  if (n <= m_max && plan.objective[n] < plan.objective[m_int]) plan.best_m = n;
  plan.best_objective = plan.objective[plan.best_m];
  return plan;
}

}  // namespace splitinfer::decision

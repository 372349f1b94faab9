#include "common/decision/stopping.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

namespace splitinfer::decision {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

Eigen::MatrixXd MatrixPower(const Eigen::MatrixXd& q, long n) {
  Eigen::MatrixXd result = Eigen::MatrixXd::Identity(q.rows(), q.cols());
  Eigen::MatrixXd base = q;
  while (n > 0) {
    if (n & 1) result = result * base;
    base = base * base;
    n >>= 1;
  }
  return result;
}

// E[x_{l+1} | s] for every s: x is the next boundary's vector.
Eigen::VectorXd NextExpectation(const StoppingProblem& p, int l, const Eigen::VectorXd& x) {
  if (p.iid) return Eigen::VectorXd::Constant(p.num_states(), p.initial.dot(x));
  return p.transition[l] * x;
}

std::vector<uint8_t> AllowedTable(const StoppingProblem& p) {
  const int k = p.num_states();
  std::vector<uint8_t> allowed(static_cast<size_t>(p.horizon) * k);
  for (int l = 0; l < p.horizon; ++l)
    for (int s = 0; s < k; ++s) allowed[l * k + s] = p.Allowed(l, s) ? 1 : 0;
  return allowed;
}

Result<StoppingProblem> Finish(StoppingProblem p, const CostModel& cost, const ChannelLaw& law,
                               const std::vector<Eigen::MatrixXd>& steps) {
  p.initial = law.stationary;
  p.iid = law.iid;
  if (!law.iid) p.transition = steps.empty() ? PowerSteps(cost, law, p.horizon) : steps;
  p.continue_cost.resize(p.horizon);
  for (int l = 0; l < p.horizon; ++l) p.continue_cost(l) = cost.ContinueCost(l + 1);
  SPLITINFER_RETURN_IF_ERROR(p.Validate());
  return p;
}

}  // namespace

Status StoppingProblem::Validate() const {
  const int k = num_states();
  if (horizon < 0) return InvalidArgumentError("horizon must be >= 0");
  if (k < 1) return InvalidArgumentError("problem has no state");
  if (continue_cost.size() != horizon || !continue_cost.allFinite())
    return InvalidArgumentError("continue_cost must hold H finite entries");
  if (stop_cost.rows() != horizon + 1 || stop_cost.cols() != k)
    return InvalidArgumentError("stop_cost must be (H+1) x K");
  if (stop_cost.array().isNaN().any()) return InvalidArgumentError("stop_cost has a NaN");
  if ((stop_cost.row(horizon).array() >= kNotAllowed).any())
    return InvalidArgumentError("stopping at the horizon must be allowed in every state");
  if (std::abs(initial.sum() - 1.0) > 1e-9 || (initial.array() < 0).any())
    return InvalidArgumentError("initial must be a distribution");
  if (!iid) {
    if (static_cast<int>(transition.size()) != horizon)
      return InvalidArgumentError("a Markov problem needs H transition matrices");
    for (const Eigen::MatrixXd& q : transition)
      if (q.rows() != k || q.cols() != k || (q.array() < 0).any() ||
          ((q.rowwise().sum().array() - 1.0).abs() > 1e-9).any())
        return InvalidArgumentError("every transition must be a K x K row-stochastic matrix");
  }
  return Status::Ok();
}

std::vector<Eigen::MatrixXd> PowerSteps(const CostModel& cost, const ChannelLaw& law, int horizon) {
  std::vector<Eigen::MatrixXd> steps;
  for (int l = 0; l < horizon; ++l) {
    const long n = std::lround(cost.DeviceTime(l + 1) / law.epoch_s);
    steps.push_back(MatrixPower(law.transition, std::max(0L, n)));
  }
  return steps;
}

Result<StoppingProblem> BuildProblem(const CostModel& cost, const ChannelLaw& law, int horizon,
                                     const std::vector<Eigen::MatrixXd>& steps) {
  SPLITINFER_RETURN_IF_ERROR(law.Validate());
  const int n = cost.num_units();
  if (horizon < 0 || horizon > n) return InvalidArgumentError("horizon must be in [0, N]");
  StoppingProblem p;
  p.horizon = horizon;
  const int k = law.num_states();
  p.stop_cost.resize(horizon + 1, k);
  if (cost.num_wire_options() > 1) p.stop_option.assign(static_cast<size_t>(horizon + 1) * k, 0);
  for (int l = 0; l <= horizon; ++l) {
    for (int s = 0; s < k; ++s) {
      if (!law.IsOutage(s))
        p.stop_cost(l, s) = cost.StopCostAtRate(l, law.rate_bps(s));
      else if (l < horizon)
        p.stop_cost(l, s) = kInf;  // no offloading in an outage before the horizon
      else
        p.stop_cost(l, s) = cost.StopCostAtRate(l, law.floor_rate_bps);
      if (!p.stop_option.empty() && (!law.IsOutage(s) || l == horizon))
        p.stop_option[static_cast<size_t>(l) * k + s] =
            cost.BestOptionAtRate(l, law.IsOutage(s) ? law.floor_rate_bps : law.rate_bps(s));
    }
  }
  return Finish(std::move(p), cost, law, steps);
}

Result<StoppingProblem> BuildProblemWithTransfers(const CostModel& cost, const ChannelLaw& law,
                                                  int horizon, const Eigen::MatrixXd& transfer_s,
                                                  const std::vector<Eigen::MatrixXd>& steps) {
  SPLITINFER_RETURN_IF_ERROR(law.Validate());
  const int n = cost.num_units();
  if (horizon < 0 || horizon > n) return InvalidArgumentError("horizon must be in [0, N]");
  if (transfer_s.rows() < n || transfer_s.cols() != law.num_states())
    return InvalidArgumentError("transfer table must be (N+1) x K");
  StoppingProblem p;
  p.horizon = horizon;
  p.stop_cost.resize(horizon + 1, law.num_states());
  for (int l = 0; l <= horizon; ++l)
    for (int s = 0; s < law.num_states(); ++s)
      p.stop_cost(l, s) = l == n ? 0.0 : cost.StopCostForTransfer(l, transfer_s(l, s));
  return Finish(std::move(p), cost, law, steps);
}

Result<StoppingProblem> BuildProblemWithOptionTransfers(
    const CostModel& cost, const ChannelLaw& law, int horizon,
    const std::vector<Eigen::MatrixXd>& transfer_by_option,
    const std::vector<Eigen::MatrixXd>& steps) {
  const int c_count = cost.num_wire_options();
  if (static_cast<int>(transfer_by_option.size()) != c_count)
    return InvalidArgumentError("one transfer table per wire option");
  if (c_count == 1)
    return BuildProblemWithTransfers(cost, law, horizon, transfer_by_option[0], steps);
  SPLITINFER_RETURN_IF_ERROR(law.Validate());
  const int n = cost.num_units(), k = law.num_states();
  if (horizon < 0 || horizon > n) return InvalidArgumentError("horizon must be in [0, N]");
  for (const Eigen::MatrixXd& t : transfer_by_option)
    if (t.rows() < n || t.cols() != k)
      return InvalidArgumentError("transfer tables must be (N+1) x K");
  StoppingProblem p;
  p.horizon = horizon;
  p.stop_cost.resize(horizon + 1, k);
  p.stop_option.assign(static_cast<size_t>(horizon + 1) * k, 0);
  for (int l = 0; l <= horizon; ++l) {
    for (int s = 0; s < k; ++s) {
      if (l == n) {
        p.stop_cost(l, s) = 0.0;
        continue;
      }
      double best = kInf;
      int arg = 0;
      for (int c = 0; c < c_count; ++c) {
        const double v = cost.StopCostForTransfer(l, transfer_by_option[c](l, s), c);
        if (v < best) best = v, arg = c;
      }
      p.stop_cost(l, s) = best;
      p.stop_option[static_cast<size_t>(l) * k + s] = arg;
    }
  }
  return Finish(std::move(p), cost, law, steps);
}

BiSolution SolveBackwardInduction(const StoppingProblem& p) {
  const int h = p.horizon, k = p.num_states();
  BiSolution sol;
  sol.value.resize(h + 1, k);
  sol.continuation.resize(h, k);
  sol.stop.assign(static_cast<size_t>(h) * k, 0);
  sol.value.row(h) = p.stop_cost.row(h);
  Eigen::VectorXd cont(k);
  for (int l = h - 1; l >= 0; --l) {
    if (p.iid)
      cont.setConstant(p.initial.dot(sol.value.row(l + 1)) + p.continue_cost(l));
    else
      cont.noalias() = p.transition[l] * sol.value.row(l + 1).transpose();
    if (!p.iid) cont.array() += p.continue_cost(l);
    sol.continuation.row(l) = cont.transpose();
    for (int s = 0; s < k; ++s) {
      const double stop = p.stop_cost(l, s);
      const bool halt = stop <= cont(s);
      sol.stop[l * k + s] = halt ? 1 : 0;
      sol.value(l, s) = halt ? stop : cont(s);
    }
  }
  sol.expected_cost = p.initial.dot(sol.value.row(0).transpose());
  return sol;
}

double TruncatedBackwardInductionCost(const StoppingProblem& full, int m,
                                      const Eigen::RowVectorXd& terminal) {
  Eigen::VectorXd v = terminal.transpose(), cont(full.num_states());
  for (int l = m - 1; l >= 0; --l) {
    if (full.iid)
      cont.setConstant(full.initial.dot(v) + full.continue_cost(l));
    else
      cont.noalias() = full.transition[l] * v;
    if (!full.iid) cont.array() += full.continue_cost(l);
    v = full.stop_cost.row(l).transpose().cwiseMin(cont);
  }
  return full.initial.dot(v);
}

StoppingProblem Truncate(const StoppingProblem& full, int m, const Eigen::RowVectorXd& terminal) {
  StoppingProblem p;
  p.horizon = m;
  p.continue_cost = full.continue_cost.head(m);
  p.stop_cost = full.stop_cost.topRows(m + 1);
  p.stop_cost.row(m) = terminal;
  if (!full.stop_option.empty())
    p.stop_option.assign(
        full.stop_option.begin(),
        full.stop_option.begin() + static_cast<std::ptrdiff_t>(m + 1) * full.num_states());
  p.initial = full.initial;
  p.iid = full.iid;
  if (!full.iid) p.transition.assign(full.transition.begin(), full.transition.begin() + m);
  return p;
}

RowMatrix ForcedStopRows(const CostModel& cost, const ChannelLaw& law) {
  const int n = cost.num_units(), k = law.num_states();
  RowMatrix rows(n + 1, k);
  for (int m = 0; m <= n; ++m)
    for (int s = 0; s < k; ++s)
      rows(m, s) = cost.StopCostAtRate(m, law.IsOutage(s) ? law.floor_rate_bps : law.rate_bps(s));
  return rows;
}

std::unique_ptr<TablePolicy> MakeBiPolicy(const StoppingProblem& p) {
  BiSolution sol = SolveBackwardInduction(p);
  return std::make_unique<TablePolicy>("bi", p.horizon, p.num_states(), std::move(sol.stop));
}

std::unique_ptr<TablePolicy> MakeOlaPolicy(const StoppingProblem& p) {
  const int h = p.horizon, k = p.num_states();
  std::vector<uint8_t> stop(static_cast<size_t>(h) * k, 0);
  Eigen::VectorXd w = p.stop_cost.row(h).transpose();  // W_{l+1}
  for (int l = h - 1; l >= 0; --l) {
    const Eigen::VectorXd look = NextExpectation(p, l, w).array() + p.continue_cost(l);
    Eigen::VectorXd w_here(k);
    for (int s = 0; s < k; ++s) {
      stop[l * k + s] = p.stop_cost(l, s) <= look(s) ? 1 : 0;
      w_here(s) = p.Allowed(l, s) ? p.stop_cost(l, s) : look(s);
    }
    w = w_here;
  }
  return std::make_unique<TablePolicy>("ola", h, k, std::move(stop));
}

std::unique_ptr<TablePolicy> MakeFixedPolicy(const StoppingProblem& p, int k_fixed,
                                             std::string name) {
  const int k = p.num_states();
  std::vector<uint8_t> stop = AllowedTable(p);
  for (int l = 0; l < std::min(k_fixed, p.horizon); ++l)
    for (int s = 0; s < k; ++s) stop[l * k + s] = 0;
  return std::make_unique<TablePolicy>(std::move(name), p.horizon, k, std::move(stop));
}

std::unique_ptr<TablePolicy> MakeAllLocalPolicy(const StoppingProblem& p) {
  return MakeFixedPolicy(p, p.horizon, "all-local");
}

std::unique_ptr<TablePolicy> MakeAllEdgePolicy(const StoppingProblem& p) {
  return MakeFixedPolicy(p, 0, "all-edge");
}

std::unique_ptr<TablePolicy> MakeBestFixedPolicy(const StoppingProblem& p, int* best_k) {
  int best = 0;
  double best_cost = kInf;
  for (int k = 0; k <= p.horizon; ++k) {
    const double c = ExactExpectedCost(p, *MakeFixedPolicy(p, k, "fixed"));
    if (c < best_cost) best_cost = c, best = k;
  }
  if (best_k) *best_k = best;
  return MakeFixedPolicy(p, best, "best-fixed");
}

std::unique_ptr<StartPlanPolicy> MakeNeurosurgeonPolicy(const StoppingProblem& p) {
  const int k = p.num_states();
  std::vector<int> plan(k, p.horizon);
  for (int s = 0; s < k; ++s) {
    double best = kInf, cum = 0.0;
    for (int l = 0; l <= p.horizon; ++l) {
      if (l > 0) cum += p.continue_cost(l - 1);
      const double c = cum + p.stop_cost(l, s);
      if (c < best) best = c, plan[s] = l;
    }
  }
  return std::make_unique<StartPlanPolicy>("neurosurgeon", k, std::move(plan), AllowedTable(p));
}

std::unique_ptr<TablePolicy> MakeGreedyPolicy(const StoppingProblem& p) {
  const int h = p.horizon, k = p.num_states();
  std::vector<uint8_t> stop(static_cast<size_t>(h) * k, 0);
  for (int s = 0; s < k; ++s) {
    // best_after = min over k' > l of (C_{l+1} + ... + C_k') + S_k'(s), built from the end.
    double best_after = p.stop_cost(h, s);
    for (int l = h - 1; l >= 0; --l) {
      best_after += p.continue_cost(l);  // now relative to boundary l
      stop[l * k + s] = p.stop_cost(l, s) <= best_after ? 1 : 0;
      best_after = std::min(best_after, p.stop_cost(l, s));
    }
  }
  return std::make_unique<TablePolicy>("greedy", h, k, std::move(stop));
}

Result<std::vector<double>> RateThresholds(const TablePolicy& policy, const ChannelLaw& law,
                                           int horizon) {
  const int k = law.num_states();
  if (static_cast<int>(policy.table().size()) != horizon * k)
    return InvalidArgumentError("policy table does not match the law and horizon");
  std::vector<double> tau(horizon, kInf);
  for (int l = 0; l < horizon; ++l) {
    int first = k;
    for (int s = k - 1; s >= 0 && policy.StopAt(l, s); --s) first = s;
    for (int s = 0; s < first; ++s)
      if (policy.StopAt(l, s))
        return FailedPreconditionError("boundary " + std::to_string(l) +
                                       ": the stop set is not an upper set of states");
    if (first < k) tau[l] = first == 0 ? 0.0 : law.edges_bps[first - 1];
  }
  return tau;
}

std::vector<std::unique_ptr<StoppingPolicy>> MakeStandardPolicies(const StoppingProblem& p) {
  std::vector<std::unique_ptr<StoppingPolicy>> out;
  out.push_back(MakeBiPolicy(p));
  out.push_back(MakeOlaPolicy(p));
  out.push_back(MakeGreedyPolicy(p));
  out.push_back(MakeNeurosurgeonPolicy(p));
  out.push_back(MakeBestFixedPolicy(p));
  out.push_back(MakeAllEdgePolicy(p));
  out.push_back(MakeAllLocalPolicy(p));
  return out;
}

double OlaShannonGainThreshold(double a, double bits, double bandwidth_hz, double snr_linear,
                               double look_ahead, double edge) {
  if (look_ahead <= edge) return kInf;
  return (std::exp2(a * bits / (bandwidth_hz * (look_ahead - edge))) - 1.0) / snr_linear;
}

double ExactExpectedCost(const StoppingProblem& p, const StoppingPolicy& policy) {
  const int h = p.horizon, k = p.num_states();
  auto run = [&](const Eigen::VectorXd& start, int first) {
    Eigen::VectorXd mass = start;
    double cost = 0.0;
    for (int l = 0; l < h; ++l) {
      Eigen::VectorXd cont = mass;
      for (int s = 0; s < k; ++s) {
        if (mass(s) > 0 && policy.Stop(l, s, first)) {
          cost += mass(s) * p.stop_cost(l, s);
          cont(s) = 0.0;
        }
      }
      const double go = cont.sum();
      cost += go * p.continue_cost(l);
      if (p.iid)
        mass = go * p.initial;
      else
        mass = p.transition[l].transpose() * cont;
    }
    return cost + mass.dot(p.stop_cost.row(h).transpose());
  };
  if (!policy.UsesFirstState()) return run(p.initial, 0);
  double total = 0.0;
  for (int s0 = 0; s0 < k; ++s0) {
    if (p.initial(s0) <= 0) continue;
    total += p.initial(s0) * run(Eigen::VectorXd::Unit(k, s0), s0);
  }
  return total;
}

Result<double> ExactOracleCost(const StoppingProblem& p, double max_paths) {
  const int h = p.horizon, k = p.num_states();
  if (std::pow(static_cast<double>(k), h + 1) > max_paths)
    return ResourceExhaustedError("oracle enumeration needs K^(H+1) = " + std::to_string(k) + "^" +
                                  std::to_string(h + 1) + " paths");
  double total = 0.0;
  std::function<void(int, int, double, double, double)> walk = [&](int l, int s, double prob,
                                                                   double cum, double best) {
    if (p.Allowed(l, s) || l == h) best = std::min(best, cum + p.stop_cost(l, s));
    if (l == h) {
      total += prob * best;
      return;
    }
    for (int n = 0; n < k; ++n) {
      const double q = p.iid ? p.initial(n) : p.transition[l](s, n);
      if (q > 0) walk(l + 1, n, prob * q, cum + p.continue_cost(l), best);
    }
  };
  for (int s0 = 0; s0 < k; ++s0)
    if (p.initial(s0) > 0) walk(0, s0, p.initial(s0), 0.0, kInf);
  return total;
}

double EpisodeCost(const StoppingProblem& p, const StoppingPolicy& policy, const Episode& e,
                   int* boundary) {
  double cum = 0.0;
  for (int l = 0; l < p.horizon; ++l) {
    if (policy.Stop(l, e.state[l], e.state[0])) {
      if (boundary) *boundary = l;
      return cum + (e.option_cost.empty() ? e.stop_cost[l]
                                          : e.option_cost[l][p.StopOption(l, e.state[l])]);
    }
    cum += p.continue_cost(l);
  }
  if (boundary) *boundary = p.horizon;
  const int h = p.horizon;
  return cum +
         (e.option_cost.empty() ? e.stop_cost[h] : e.option_cost[h][p.StopOption(h, e.state[h])]);
}

double OracleEpisodeCost(const StoppingProblem& p, const Episode& e, int* boundary) {
  double cum = 0.0, best = kInf;
  int arg = p.horizon;
  for (int l = 0; l <= p.horizon; ++l) {
    if (l > 0) cum += p.continue_cost(l - 1);
    if (l < p.horizon && !p.Allowed(l, e.state[l])) continue;
    const double c = cum + e.stop_cost[l];
    if (c < best) best = c, arg = l;
  }
  if (boundary) *boundary = arg;
  return best;
}

}  // namespace splitinfer::decision

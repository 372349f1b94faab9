#include "device/live_decision.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <thread>

#include <torch/torch.h>

namespace splitinfer {

namespace sd = decision;

double ExpectedCostFrom(const sd::StoppingProblem& p, const sd::StoppingPolicy& policy,
                        int first_state) {
  const int k = p.num_states();
  Eigen::VectorXd dist = Eigen::VectorXd::Zero(k);
  dist(first_state) = 1.0;
  double cost = 0.0;
  for (int l = 0; l < p.horizon; ++l) {
    for (int s = 0; s < k; ++s) {
      if (dist(s) > 0 && policy.Stop(l, s, first_state)) {
        cost += dist(s) * p.stop_cost(l, s);
        dist(s) = 0.0;
      }
    }
    const double mass = dist.sum();
    cost += mass * p.continue_cost(l);
    if (p.iid)
      dist = p.initial * mass;
    else
      dist = p.transition[l].transpose() * dist;
  }
  for (int s = 0; s < k; ++s)
    if (dist(s) > 0) cost += dist(s) * p.stop_cost(p.horizon, s);
  return cost;
}

const std::vector<std::string>& StandardPolicyNames() {
  static const std::vector<std::string> names{
      "bi", "bi-textbook", "ola", "greedy", "neurosurgeon", "best-fixed", "all-edge", "all-local"};
  return names;
}

sd::RateSeries ToWallTime(const sd::RateSeries& emulated, double time_scale) {
  sd::RateSeries wall = emulated;
  wall.dt_s = emulated.dt_s / time_scale;
  for (double& r : wall.rate_bps) r *= time_scale;
  return wall;
}

bool LiveDecisionOptions::IsValid(int num_units, std::string* error) const {
  std::string why;
  if (!(time_scale > 0)) {
    why = "time scale must be > 0 (got " + std::to_string(time_scale) + ")";
  } else if (horizon != kAllUnits && (horizon < 0 || horizon > num_units)) {
    why = "horizon (placed units M) must be in 0..N = " + std::to_string(num_units) +
          ", or kAllUnits (got " + std::to_string(horizon) + ")";
  } else {
    return true;
  }
  if (error) *error = why;
  return false;
}

Status LiveDecision::MakePolicy(const std::string& name) {
  const sd::StoppingProblem& pr = problem();
  if (name == "bi") {
    policy_ = sd::MakeBiPolicy(pr);
  } else if (name == "bi-textbook") {
    policy_ = std::make_shared<sd::TablePolicy>("bi-textbook", pr.horizon, pr.num_states(),
                                                sd::MakeBiPolicy(pr)->table());
  } else if (name == "ola") {
    policy_ = sd::MakeOlaPolicy(pr);
  } else if (name == "neurosurgeon") {
    policy_ = sd::MakeNeurosurgeonPolicy(pr);
  } else if (name == "greedy") {
    policy_ = sd::MakeGreedyPolicy(pr);
  } else if (name == "best-fixed") {
    policy_ = sd::MakeBestFixedPolicy(pr);
  } else if (name == "local" || name == "all-local") {
    policy_ = sd::MakeAllLocalPolicy(pr);
  } else if (name == "edge" || name == "all-edge") {
    policy_ = sd::MakeAllEdgePolicy(pr);
  } else if (name.rfind("fixed:", 0) == 0) {
    // K names a boundary of the model (0..N); under a placement M < K the device offloads at M,
    // the furthest it can go, so K is clamped rather than refused.
    char* end = nullptr;
    const long k = std::strtol(name.c_str() + 6, &end, 10);
    if (name.size() == 6 || *end != '\0' || k < 0 || k > num_units_)
      return InvalidArgumentError("policy " + name + ": K must be in 0.." +
                                  std::to_string(num_units_));
    policy_ = sd::MakeFixedPolicy(pr, std::min(static_cast<int>(k), pr.horizon), name);
  } else {
    return InvalidArgumentError(
        "unknown policy '" + name +
        "' (bi, bi-textbook, ola, neurosurgeon, greedy, best-fixed, fixed:K, local, edge)");
  }
  predicted_.resize(pr.num_states());
  for (int s = 0; s < pr.num_states(); ++s) predicted_[s] = ExpectedCostFrom(pr, *policy_, s);
  return Status::Ok();
}

Result<std::shared_ptr<const LiveDecision>> LiveDecision::FromSeries(const sd::CostModel& cost,
                                                                     const sd::RateSeries& fit,
                                                                     bool markov,
                                                                     const LiveDecisionOptions& o,
                                                                     uint64_t generation) {
  std::string error;
  if (!o.IsValid(cost.num_units(), &error)) return InvalidArgumentError(error);
  std::shared_ptr<LiveDecision> d(new LiveDecision());
  d->scale_ = o.time_scale;
  d->generation_ = generation;
  d->num_units_ = cost.num_units();
  d->horizon_ = o.horizon == LiveDecisionOptions::kAllUnits ? cost.num_units() : o.horizon;
  sd::SeriesFitOptions fo;
  fo.num_states = o.num_states;
  fo.observe_window_s = o.observe_window_s / o.time_scale;
  fo.markov = markov;
  fo.allow_dead = true;
  Result<sd::SeriesModel> model =
      sd::SeriesModel::Fit(cost, ToWallTime(fit, o.time_scale), fo, fit.name);
  if (!model.ok()) return model.status();
  d->model_ = std::make_shared<const sd::SeriesModel>(std::move(*model));
  // The forced offload at M is the fitted stop row at M (expected transfer time, best wire
  // option), exactly the row the simulator's placement planner truncates with.
  const sd::StoppingProblem& full = d->model_->problem();
  d->problem_ = sd::Truncate(full, d->horizon_, full.stop_cost.row(d->horizon_));
  if (Status s = d->problem_.Validate(); !s.ok())
    return FailedPreconditionError(fit.name + ": placement M = " + std::to_string(d->horizon_) +
                                   " needs a finite forced offload at M in every state, and the "
                                   "fitted series cannot carry the tensor there (" +
                                   s.message() + ")");
  SPLITINFER_RETURN_IF_ERROR(d->MakePolicy(o.policy));
  return std::shared_ptr<const LiveDecision>(std::move(d));
}

Result<std::shared_ptr<const LiveDecision>> LiveDecision::FromCandidate(
    const sd::SplitCandidate& c, const LiveDecisionOptions& o, uint64_t generation) {
  if (!c.model || !c.problem || !c.policy)
    return InvalidArgumentError("robust candidate " + c.name + ": no series model");
  if (o.horizon != LiveDecisionOptions::kAllUnits && o.horizon != c.problem->horizon)
    return InvalidArgumentError("robust candidate " + c.name + ": a placed horizon M < N");
  if (!(o.time_scale > 0)) return InvalidArgumentError("time_scale must be > 0");
  // A two-window candidate reads the long-window rate from the scored series (TablePlan), so it
  // runs only where the device has one: the robust source on a series channel.
  std::shared_ptr<LiveDecision> d(new LiveDecision());
  d->scale_ = o.time_scale;
  d->generation_ = generation;
  d->num_units_ = c.problem->horizon;
  d->horizon_ = c.problem->horizon;
  d->model_ = c.model;
  d->problem_ = *c.problem;
  d->policy_ = c.policy;
  d->predicted_.resize(d->problem_.num_states());
  for (int s = 0; s < d->problem_.num_states(); ++s)
    d->predicted_[s] = ExpectedCostFrom(d->problem_, *d->policy_, s);
  return std::shared_ptr<const LiveDecision>(std::move(d));
}

Result<std::shared_ptr<const LiveDecision>> LiveDecision::FromLaw(const sd::CostModel& cost,
                                                                  const sd::ChannelLaw& law,
                                                                  const LiveDecisionOptions& o) {
  std::string error;
  if (!o.IsValid(cost.num_units(), &error)) return InvalidArgumentError(error);
  SPLITINFER_RETURN_IF_ERROR(law.Validate());
  std::shared_ptr<LiveDecision> d(new LiveDecision());
  d->scale_ = o.time_scale;
  d->num_units_ = cost.num_units();
  d->horizon_ = o.horizon == LiveDecisionOptions::kAllUnits ? cost.num_units() : o.horizon;
  // Emulated bit/s -> wall bit/s; an emulated second of the Markov epoch is 1/c wall seconds.
  d->law_ = law;
  d->law_.rate_bps *= o.time_scale;
  for (double& e : d->law_.edges_bps) e *= o.time_scale;
  d->law_.floor_rate_bps *= o.time_scale;
  if (!d->law_.iid) d->law_.epoch_s /= o.time_scale;
  // The problem of horizon M itself, not a truncation of horizon N: BuildProblem prices the
  // forced offload at M (outage states at the floor rate), as PlacementPlanner(cost, law) does.
  Result<sd::StoppingProblem> p = sd::BuildProblem(cost, d->law_, d->horizon_);
  if (!p.ok()) return p.status();
  d->problem_ = std::move(*p);
  SPLITINFER_RETURN_IF_ERROR(d->MakePolicy(o.policy));
  return std::shared_ptr<const LiveDecision>(std::move(d));
}

Result<std::shared_ptr<const LiveDecision>> LiveDecision::FromRayleigh(
    const sd::CostModel& cost, double snr_db, const LiveDecisionOptions& o) {
  sd::RayleighOptions ro;
  ro.snr_db = snr_db;
  ro.bandwidth_hz = o.bandwidth_hz;
  ro.num_states = o.num_states;
  ro.outage_prob = o.outage_prob;
  Result<sd::ChannelLaw> law = sd::DiscretizeRayleigh(ro);
  if (!law.ok()) return law.status().WithPrefix("rayleigh: ");
  return FromLaw(cost, *law, o);
}

sd::ModelProfile ProfileLocalModel(const SplitModel& model, int repeats, double slowdown) {
  c10::InferenceMode guard;
  using Clock = std::chrono::steady_clock;
  sd::ModelProfile p;
  p.model = model.name();
  p.input_bytes = model.input_bytes();
  std::vector<int64_t> shape{1};
  shape.insert(shape.end(), model.input_shape().begin(), model.input_shape().end());
  const at::Tensor input = torch::randn(shape);
  const size_t n = model.num_units();
  std::vector<std::vector<double>> ms(n);
  // Whole passes, unit by unit, with the idle time a slowed-down run sleeps after each unit: the
  // conditions of a live run (thread-pool wake-ups, cold caches after a sleep), so that the
  // profile prices what the live device then measures. Pass 0 is a warm-up.
  for (int r = 0; r <= std::max(1, repeats); ++r) {
    at::Tensor x = input;
    for (size_t u = 0; u < n; ++u) {
      const auto t = Clock::now();
      x = model.RunRange(x, u, u + 1);
      const auto took = Clock::now() - t;
      if (r > 0) ms[u].push_back(std::chrono::duration<double, std::milli>(took).count());
      if (slowdown > 1.0)
        std::this_thread::sleep_until(t +
                                      std::chrono::duration_cast<Clock::duration>(took * slowdown));
    }
  }
  for (size_t u = 0; u < n; ++u) {
    std::sort(ms[u].begin(), ms[u].end());
    const UnitInfo& info = model.unit(u);
    sd::UnitProfile up;
    up.name = info.name;
    up.time_ms = ms[u][ms[u].size() / 2];
    up.output_bytes = info.output_bytes;
    up.param_bytes = info.param_bytes;
    up.flops = info.flops;
    p.units.push_back(up);
  }
  return p;
}

}  // namespace splitinfer

#include "device/live_decision.h"

#include <algorithm>
#include <chrono>
#include <cmath>

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

Result<std::unique_ptr<LiveDecision>> LiveDecision::Create(const sd::CostModel& cost,
                                                           const sd::ChannelSpec& spec,
                                                           const std::vector<double>& observed,
                                                           const LiveDecisionOptions& o) {
  if (!(o.time_scale > 0)) return InvalidArgumentError("time scale must be > 0");
  std::unique_ptr<LiveDecision> d(new LiveDecision());
  d->scale_ = o.time_scale;
  using Kind = sd::ChannelSpec::Kind;
  Result<sd::ChannelLaw> law = InvalidArgumentError("no law");
  if (spec.kind == Kind::kRayleigh) {
    sd::RayleighOptions ro;
    ro.snr_db = spec.snr_db;
    ro.bandwidth_hz = o.bandwidth_hz;
    ro.num_states = o.num_states;
    ro.outage_prob = o.outage_prob;
    law = sd::DiscretizeRayleigh(ro);
  } else if (spec.kind == Kind::kTrace) {
    law = sd::DiscretizeEmpirical(observed, o.num_states);
  } else {
    law = sd::FitMarkov(observed, o.grid_s, o.num_states);
  }
  if (!law.ok()) return law.status().WithPrefix(spec.text + ": ");
  // Emulated bit/s -> wall bit/s; an emulated epoch lasts epoch / scale wall seconds.
  law->rate_bps *= o.time_scale;
  for (double& e : law->edges_bps) e *= o.time_scale;
  law->floor_rate_bps *= o.time_scale;
  law->epoch_s /= o.time_scale;
  d->law_ = std::move(*law);
  Result<sd::StoppingProblem> p = sd::BuildProblem(cost, d->law_, cost.num_units());
  if (!p.ok()) return p.status();
  d->problem_ = std::move(*p);
  const sd::StoppingProblem& pr = d->problem_;
  const std::string& name = o.policy;
  if (name == "bi") {
    d->policy_ = sd::MakeBiPolicy(pr);
  } else if (name == "ola") {
    d->policy_ = sd::MakeOlaPolicy(pr);
  } else if (name == "neurosurgeon") {
    d->policy_ = sd::MakeNeurosurgeonPolicy(pr);
  } else if (name == "greedy") {
    d->policy_ = sd::MakeGreedyPolicy(pr);
  } else if (name == "local") {
    d->policy_ = sd::MakeAllLocalPolicy(pr);
  } else if (name == "edge") {
    d->policy_ = sd::MakeAllEdgePolicy(pr);
  } else if (name.rfind("fixed:", 0) == 0) {
    char* end = nullptr;
    const long k = std::strtol(name.c_str() + 6, &end, 10);
    if (name.size() == 6 || *end != '\0' || k < 0 || k > pr.horizon)
      return InvalidArgumentError("policy " + name + ": K must be in 0.." +
                                  std::to_string(pr.horizon));
    d->policy_ = sd::MakeFixedPolicy(pr, static_cast<int>(k), name);
  } else {
    return InvalidArgumentError("unknown policy '" + name +
                                "' (bi, ola, neurosurgeon, greedy, fixed:K, local, edge)");
  }
  d->predicted_.resize(pr.num_states());
  for (int s = 0; s < pr.num_states(); ++s) d->predicted_[s] = ExpectedCostFrom(pr, *d->policy_, s);
  return d;
}

sd::ModelProfile ProfileLocalModel(const SplitModel& model, int repeats) {
  c10::InferenceMode guard;
  sd::ModelProfile p;
  p.model = model.name();
  p.input_bytes = model.input_bytes();
  std::vector<int64_t> shape{1};
  shape.insert(shape.end(), model.input_shape().begin(), model.input_shape().end());
  at::Tensor x = torch::randn(shape);
  for (size_t u = 0; u < model.num_units(); ++u) {
    at::Tensor y = model.RunRange(x, u, u + 1);  // warm-up
    std::vector<double> ms;
    for (int r = 0; r < std::max(1, repeats); ++r) {
      const auto t = std::chrono::steady_clock::now();
      y = model.RunRange(x, u, u + 1);
      ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count());
    }
    std::sort(ms.begin(), ms.end());
    const UnitInfo& info = model.unit(u);
    sd::UnitProfile up;
    up.name = info.name;
    up.time_ms = ms[ms.size() / 2];
    up.output_bytes = info.output_bytes;
    up.param_bytes = info.param_bytes;
    up.flops = info.flops;
    p.units.push_back(up);
    x = y;
  }
  return p;
}

}  // namespace splitinfer

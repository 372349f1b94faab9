#include "common/decision/placement_wire.h"

#include <chrono>
#include <cmath>
#include <string>

#include "common/decision/stopping.h"

namespace splitinfer::decision {
namespace {

bool Finite(double x) { return std::isfinite(x); }

Status FieldError(const std::string& field, const std::string& what) {
  return InvalidArgumentError("placement request: " + field + " " + what);
}

}  // namespace

void LawToWire(const ChannelLaw& law, wire::ChannelStats* out) {
  out->Clear();
  for (int s = 0; s < law.num_states(); ++s) {
    out->add_rate_bps(law.rate_bps(s));
    out->add_stationary(law.stationary(s));
  }
  for (double e : law.edges_bps) out->add_edges_bps(e);
  if (!law.iid) {
    for (int i = 0; i < law.num_states(); ++i)
      for (int j = 0; j < law.num_states(); ++j) out->add_transition(law.transition(i, j));
    out->set_epoch_s(law.epoch_s);
  }
  out->set_outage_states(static_cast<uint32_t>(law.outage_states));
  out->set_floor_rate_bps(law.floor_rate_bps);
}

Result<ChannelLaw> LawFromWire(const wire::ChannelStats& in) {
  const int k = in.rate_bps_size();
  if (k < 1 || k > kMaxWireStates)
    return FieldError("channel.rate_bps", "must list 1.." + std::to_string(kMaxWireStates) +
                                              " states, got " + std::to_string(k));
  if (in.stationary_size() != k)
    return FieldError("channel.stationary", "must have K = " + std::to_string(k) + " entries");
  if (in.edges_bps_size() != k - 1)
    return FieldError("channel.edges_bps", "must have K-1 = " + std::to_string(k - 1) + " entries");
  if (in.transition_size() != 0 && in.transition_size() != k * k)
    return FieldError("channel.transition", "must be empty (i.i.d.) or K x K");
  ChannelLaw law;
  law.rate_bps.resize(k);
  law.stationary.resize(k);
  for (int s = 0; s < k; ++s) {
    // A rate of 0 is a state that carries nothing (a trace's outage quantile): offloading
    // there costs +inf, which the solvers handle; ChannelLaw::Validate accepts it too.
    if (!Finite(in.rate_bps(s)) || in.rate_bps(s) < 0)
      return FieldError("channel.rate_bps", "must be finite and >= 0");
    if (s > 0 && in.rate_bps(s) < in.rate_bps(s - 1))
      return FieldError("channel.rate_bps", "must be ascending");
    if (!Finite(in.stationary(s))) return FieldError("channel.stationary", "must be finite");
    law.rate_bps(s) = in.rate_bps(s);
    law.stationary(s) = in.stationary(s);
  }
  for (int i = 0; i < k - 1; ++i) {
    if (!Finite(in.edges_bps(i)) || (i > 0 && in.edges_bps(i) < in.edges_bps(i - 1)))
      return FieldError("channel.edges_bps", "must be finite and ascending");
    law.edges_bps.push_back(in.edges_bps(i));
  }
  if (in.outage_states() >= static_cast<uint32_t>(k))
    return FieldError("channel.outage_states", "must be < K");
  law.outage_states = static_cast<int>(in.outage_states());
  if (!Finite(in.floor_rate_bps()) || in.floor_rate_bps() < 0)
    return FieldError("channel.floor_rate_bps", "must be finite and >= 0");
  law.floor_rate_bps = in.floor_rate_bps();
  law.iid = in.transition_size() == 0;
  if (!law.iid) {
    if (!Finite(in.epoch_s()) || in.epoch_s() <= 0)
      return FieldError("channel.epoch_s", "must be > 0 for a Markov law");
    law.epoch_s = in.epoch_s();
    law.transition.resize(k, k);
    for (int i = 0; i < k; ++i)
      for (int j = 0; j < k; ++j) {
        const double p = in.transition(i * k + j);
        if (!Finite(p)) return FieldError("channel.transition", "must be finite");
        law.transition(i, j) = p;
      }
  }
  Status st = law.Validate();
  if (!st.ok()) return st.WithPrefix("placement request: channel: ");
  return law;
}

void CostToWire(const CostOptions& o, const std::vector<double>& unit_time_ms,
                wire::DeviceProfile* out) {
  out->Clear();
  for (double t : unit_time_ms) out->add_unit_time_ms(t);
  out->set_device_slowdown(o.device_slowdown);
  out->set_edge_speedup(o.edge_speedup);
  out->set_p_tx_w(o.p_tx_w);
  out->set_p_rx_w(o.p_rx_w);
  out->set_device_power_w(o.device_power_w);
  out->set_w_energy(o.w_energy);
  out->set_w_time(o.w_time);
  out->set_downlink_bps(o.downlink_bps);
  out->set_edge_queue_ms(o.edge_queue_ms);
}

Result<CostOptions> CostFromWire(const wire::DeviceProfile& in) {
  CostOptions o;
  o.energy_model = EnergyModel::kPower;
  o.device_slowdown = in.device_slowdown();
  o.edge_speedup = in.edge_speedup();
  o.p_tx_w = in.p_tx_w();
  o.p_rx_w = in.p_rx_w();
  o.device_power_w = in.device_power_w();
  o.w_energy = in.w_energy();
  o.w_time = in.w_time();
  o.downlink_bps = in.downlink_bps();
  o.edge_queue_ms = in.edge_queue_ms();
  // CostOptions::IsValid rejects non-finite and out-of-range values, naming the field.
  std::string error;
  if (!o.IsValid(&error)) return FieldError("profile:", error);
  return o;
}

Result<wire::PlacementReply> PlanPlacementRequest(ModelProfile shape,
                                                  const wire::PlacementRequest& request) {
  const auto t0 = std::chrono::steady_clock::now();
  const int n = shape.num_units();
  if (n > kMaxWireUnits) return InvalidArgumentError("placement: model has too many units");
  if (request.profile().unit_time_ms_size() != n) {
    return FieldError("profile.unit_time_ms",
                      "must have one entry per unit (" + std::to_string(n) + "), got " +
                          std::to_string(request.profile().unit_time_ms_size()));
  }
  for (int i = 0; i < n; ++i) {
    const double t = request.profile().unit_time_ms(i);
    if (!Finite(t) || t < 0) return FieldError("profile.unit_time_ms", "must be finite and >= 0");
    shape.units[i].time_ms = t;
  }
  const double r = request.inferences_per_version();
  if (!Finite(r) || r <= 0) return FieldError("inferences_per_version", "must be > 0");
  if (request.storage_budget_bytes() > static_cast<uint64_t>(INT64_MAX))
    return FieldError("storage_budget_bytes", "is too large");
  auto options = CostFromWire(request.profile());
  if (!options.ok()) return options.status();
  auto law = LawFromWire(request.channel());
  if (!law.ok()) return law.status();
  auto cost = CostModel::Create(std::move(shape), *options);
  if (!cost.ok()) return cost.status().WithPrefix("placement: ");
  auto full = BuildProblem(*cost, *law, n);
  if (!full.ok()) return full.status().WithPrefix("placement: ");
  PlacementPlanner planner(*cost, std::move(*full), ForcedStopRows(*cost, *law));
  PlacementOptions po;
  po.inferences_per_version = r;
  if (request.storage_budget_bytes() > 0)
    po.storage_budget_bytes = static_cast<int64_t>(request.storage_budget_bytes());
  po.method = request.one_stage_lookahead() ? PlacementMethod::kOneStageLookAhead
                                            : PlacementMethod::kBackwardInduction;
  auto plan = planner.Plan(po);
  if (!plan.ok()) return plan.status();
  wire::PlacementReply reply;
  reply.set_code(wire::OK);
  reply.set_m(static_cast<uint32_t>(plan->best_m));
  reply.set_objective(plan->best_objective);
  reply.set_download_cost(plan->download_cost[plan->best_m]);
  reply.set_inference_cost(plan->inference_cost[plan->best_m]);
  reply.set_download_bytes(static_cast<uint64_t>(cost->PlacementBytes(plan->best_m)));
  for (double j : plan->objective) reply.add_objective_by_m(j);
  reply.set_planner_us(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
          .count()));
  return reply;
}

}  // namespace splitinfer::decision

// device_client --store: the placement loop (PlacementLoop, in the background) beside the
// inference loop (DeviceSession with PlacedPolicy), and the run's summary line.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <map>
#include <mutex>
#include <set>

#include "common/decision/channel.h"
#include "common/model_zoo.h"
#include "device/client_runs.h"
#include "device/placement_agent.h"
#include "device/placement_loop.h"

namespace splitinfer::runs {
namespace {

// ---- --store: placement, the slow loop beside the fast one ---------------------------------

json RoundJson(const Result<UpdateReport>& round, const PlacementAgent& agent) {
  json j{{"event", "placement"}};
  if (!round.ok()) {
    j["ok"] = false;
    j["error"] = round.status().ToString();
    return j;
  }
  const UpdateReport& u = *round;
  auto held = agent.Current();
  j["ok"] = true;
  j["changed"] = u.changed;
  j["version"] = held ? held->version : 0;
  j["m"] = held ? held->m : 0;
  j["from_version"] = u.from_version;
  j["from_m"] = u.from_m;
  j["bytes_downloaded"] = u.bytes_downloaded;
  j["chunks_downloaded"] = u.chunks_downloaded;
  j["chunks_refused"] = u.chunks_refused;
  j["chunks_resumed"] = u.chunks_resumed;
  j["reconnects"] = u.reconnects;
  j["interruptions"] = u.interruptions;
  j["download_s"] = u.download_s;
  j["download_energy_j"] = u.download_energy_j;
  j["download_cost"] = u.download_cost;
  j["predicted_download_cost"] = u.plan.download_cost();
  j["predicted_inference_cost"] = u.plan.inference_cost();
  j["planner_us"] = u.plan.planner_us();
  j["plan_ms"] = u.plan_ms;
  j["swap_ms"] = u.swap_ms;
  return j;
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size()))) - 1;
  return v[std::min(i, v.size() - 1)];
}

// What a --store run did, in one line: the inferences (each exactly once, none failed, none
// mixing versions), the versions in the order they ran, the inference time during a download
// against the time without one (inferences the edge did not answer are left out of both: their
// time is the local finish's), and what the placement rounds met.
struct PlacementTotals {
  std::mutex mu;
  uint64_t chunks_refused = 0, chunks_resumed = 0, interruptions = 0, failed_rounds = 0;
  uint64_t swaps = 0;
};

json RunSummary(const std::vector<InferenceRecord>& recs, int requested, PlacementTotals& totals) {
  std::set<uint64_t> ids;
  int failed = 0, mixed = 0, fallbacks = 0;
  bool in_order = true;
  std::vector<uint32_t> versions;
  std::vector<double> during, without;
  for (const InferenceRecord& r : recs) {
    ids.insert(r.id);
    failed += !r.ok;
    mixed += r.mixed();
    fallbacks += r.fallback.has_value();
    if (versions.empty() || versions.back() != r.version) {
      if (std::find(versions.begin(), versions.end(), r.version) != versions.end())
        in_order = false;  // an older version after a newer one
      else
        versions.push_back(r.version);
    }
    if (r.fallback) continue;
    (r.policy_fields.value("during_download", false) ? during : without).push_back(r.total_ms);
  }
  std::lock_guard<std::mutex> lock(totals.mu);
  const double p99_during = Percentile(during, 0.99), p99_without = Percentile(without, 0.99);
  return json{{"event", "summary"},
              {"submitted", requested},
              {"inferences", recs.size()},
              {"failed", failed},
              {"lost", requested - static_cast<int>(ids.size())},
              {"duplicates", static_cast<int>(recs.size() - ids.size())},
              {"mixed", mixed},
              {"versions", versions},
              {"versions_in_order", in_order},
              {"fallbacks", fallbacks},
              {"during_download", during.size()},
              {"p50_ms_during_download", Percentile(during, 0.5)},
              {"p99_ms_during_download", p99_during},
              {"p50_ms_without_download", Percentile(without, 0.5)},
              {"p99_ms_without_download", p99_without},
              {"p99_ratio_during_download",
               during.empty() || without.empty() ? json(nullptr) : json(p99_during / p99_without)},
              {"swaps", totals.swaps},
              {"chunks_refused", totals.chunks_refused},
              {"chunks_resumed", totals.chunks_resumed},
              {"interruptions", totals.interruptions},
              {"failed_rounds", totals.failed_rounds}};
}

}  // namespace

int RunPlaced(const DeviceClientOptions& o, EdgeClientOptions copts, RecordWriter& out) {
  if (o.server.empty()) return Fail(InvalidArgumentError("--store needs --server (the planner)"));
  // The cost model and the channel from a zoo model of the same architecture (unit times; the
  // weights do not matter), the units themselves from the edge.
  Result<std::shared_ptr<SplitModel>> shape_model = BuildZooModel(o.model, 1, o.zoo);
  if (!shape_model.ok()) return Fail(shape_model.status());
  Result<std::unique_ptr<LiveWorld>> world = BuildLiveWorld(o, **shape_model);
  if (!world.ok()) return Fail(world.status());
  LiveWorld& w = **world;
  if (o.policy.find(',') != std::string::npos || o.segments > 0 || o.law == "online")
    return Fail(InvalidArgumentError(
        "--store runs one policy on the placed units (no list, --segments or --law online)"));
  PlacementAgentOptions po;
  po.edge = copts;
  po.edge.client_name = "device_client/placement";
  po.model = o.model;
  po.store_root = o.store;
  po.profile = w.profile;
  po.cost = w.cost_options;
  po.codecs = w.codecs;
  po.live = w.lo;
  po.live.policy = o.policy;
  po.storage_budget_bytes = static_cast<int64_t>(o.storage_mb * 1e6);
  po.inferences_per_version = o.inferences_per_version;
  po.one_stage_lookahead = o.placement_ola;
  po.emulated_downlink_bps = o.no_downlink_pacing ? 0.0 : o.downlink_mbps * 1e6;
  // The law the planner prices: the i.i.d. law of the rate the device observes on the fitting
  // part (series), or the analytic Rayleigh law; the placed table is fitted like every other
  // live policy's (MakeTable), with horizon M.
  Result<sd::ChannelLaw> law = InvalidArgumentError("no law");
  if (w.is_series) {
    const size_t window =
        std::max<size_t>(1, static_cast<size_t>(std::lround(o.window_ms * 1e-3 / w.fit.dt_s)));
    law = sd::DiscretizeEmpirical(w.fit.ObservedRates(window), o.states);
  } else {
    sd::RayleighOptions ro;
    ro.snr_db = w.spec.snr_db;
    ro.bandwidth_hz = o.bandwidth_mhz * 1e6;
    ro.num_states = o.states;
    law = sd::DiscretizeRayleigh(ro);
  }
  if (!law.ok()) return Fail(law.status());
  po.law = std::move(*law);
  const LiveWorld* wp = &w;
  po.make_decision = [wp](const sd::CostModel& cost, const LiveDecisionOptions& lo) {
    return MakeTable(*wp, cost, lo);
  };
  std::string error;
  if (!po.IsValid(&error)) return Fail(InvalidArgumentError("placement: " + error));
  PlacementAgent agent(po);
  if (agent.LoadFromStore().ok()) {
    auto held = agent.Current();
    std::cerr << "device_client: the store holds " << held->model << "@" << held->version
              << " M=" << held->m << "\n";
  }
  PlacementTotals totals;
  PlacementLoop loop(&agent, std::chrono::milliseconds(std::lround(o.placement_period_s * 1e3)),
                     [&](const Result<UpdateReport>& round) {
                       {
                         std::lock_guard<std::mutex> lock(totals.mu);
                         totals.failed_rounds += !round.ok();
                         if (round.ok()) {
                           totals.swaps += round->changed;
                           totals.chunks_refused += round->chunks_refused;
                           totals.chunks_resumed += round->chunks_resumed;
                           totals.interruptions += round->interruptions;
                         }
                       }
                       json j = RoundJson(round, agent);
                       out.Write(j);
                       if (!o.json && (!round.ok() || round->changed))
                         std::cerr << "device_client: placement " << j.dump() << "\n";
                     });
  loop.Start();
  if (!loop.WaitForPlacement(std::chrono::milliseconds(std::lround(o.placement_wait_s * 1e3)))) {
    std::cerr << "device_client: no placement from the edge within " << o.placement_wait_s
              << " s\n";
    return 1;
  }
  copts.uplink_pacer = w.uplink.get();
  EdgeClient edge(copts);
  PlacedPolicy policy(o.policy, &agent, w.Context(), [&loop] { loop.Wake(); });
  std::unique_ptr<GoodputEstimator> goodput =
      o.csi == "estimated"
          ? std::make_unique<GoodputEstimator>(o.goodput_window, w.fallback_prior_bps)
          : nullptr;
  EmulatedUplinkView view(w.uplink.get(), goodput.get());
  Failures failures{o.verify};
  std::vector<InferenceRecord> recs;
  DeviceSession session(MakeSessionOptions(o, &w.cost_options), &edge, [&](InferenceRecord&& r) {
    out.Write(ToJson(r));
    failures.Add(r);
    r.output = at::Tensor();
    recs.push_back(std::move(r));
  });
  w.uplink->StartAt(w.run_start_s);
  int submitted = 0;
  for (; submitted < o.requests && !Stopping(); ++submitted) {
    const auto placed = agent.Current();
    Status st = session.Submit(policy, &view, RandomInput(*placed->net, o.seed, session.next_id()));
    if (!st.ok()) return Fail(st);
  }
  session.Drain();
  agent.Cancel();
  loop.Stop();
  edge.Close();
  const json summary = RunSummary(recs, submitted, totals);
  out.Write(summary);
  if (!o.json) {
    std::map<uint32_t, std::vector<InferenceRecord>> by_version;
    for (InferenceRecord& r : recs) by_version[r.version].push_back(std::move(r));
    for (auto& [version, group] : by_version)
      PrintPolicyRecords(o.policy + " on " + o.model + "@" + std::to_string(version), group, o);
    std::cout << summary.dump() << std::endl;
  }
  return failures.count == 0 ? 0 : 1;
}

}  // namespace splitinfer::runs

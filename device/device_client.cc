#include "device/device_client.h"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "common/decision/channel.h"
#include "common/handshake.h"
#include "common/model_zoo.h"
#include "common/torchscript_model.h"
#include "device/device_session.h"
#include "device/exit_policy.h"
#include "device/placement_agent.h"
#include "device/placement_loop.h"
#include "device/variant_policy.h"

namespace splitinfer {
namespace {

namespace sd = decision;
using json = nlohmann::json;

// SIGINT / SIGTERM: no new inference starts; those in flight finish, the records and the summary
// are written, and the program exits as after its last request.
std::atomic<bool> g_stop{false};
extern "C" void OnStopSignal(int) { g_stop.store(true); }
void InstallStopHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}
bool Stopping() { return g_stop.load(); }

int Fail(const Status& st) {
  std::cerr << "device_client: " << st.ToString() << "\n";
  return 2;
}

// Records to stdout (--json) and the ledger (--ledger), from the inference loop and the
// placement loop's thread alike: one line each, never interleaved.
class RecordWriter {
 public:
  RecordWriter(bool to_stdout, std::ofstream* ledger) : stdout_(to_stdout), ledger_(ledger) {}
  void Write(const json& j) {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string line = j.dump();
    if (stdout_) std::cout << line << std::endl;
    if (ledger_ != nullptr) *ledger_ << line << "\n" << std::flush;
  }

 private:
  std::mutex mu_;
  bool stdout_;
  std::ofstream* ledger_;
};

// Counts what the exit status reports: inferences without a result, and (--verify) results
// that differ from the local run.
struct Failures {
  bool verify = false;
  int count = 0;
  void Add(const InferenceRecord& r) {
    count += !r.ok;
    if (verify && r.verified)
      count += !(r.max_abs_diff >= 0 && r.max_abs_diff <= 1e-5 && r.top1_match);
  }
};

Result<EdgeClientOptions> MakeEdgeOptions(const DeviceClientOptions& o) {
  EdgeClientOptions c;
  c.connect_timeout = std::chrono::milliseconds(o.connect_timeout_ms);
  c.io_timeout = std::chrono::milliseconds(o.io_timeout_ms);
  if (!o.server.empty()) {
    std::vector<EdgeAddress> servers;
    Status st = ParseEdgeAddresses(o.server, &servers);
    if (!st.ok()) return st.WithPrefix("--server: ");
    c.host = servers.front().host;
    c.port = servers.front().port;
    c.fallbacks.assign(servers.begin() + 1, servers.end());
    c.failover_backoff = std::chrono::milliseconds(std::max(o.reconnect_ms, 100));
  }
  c.tls = o.tls || !o.tls_ca.empty() || !o.tls_server_name.empty();
  c.tls_ca_file = o.tls_ca;
  c.tls_server_name = o.tls_server_name;
  if (!o.auth_token_file.empty()) {
    auto token = ReadSecretFile(o.auth_token_file);
    if (!token.ok()) return token.status().WithPrefix("--auth-token-file: ");
    c.auth_token = *token;
  }
  return c;
}

SessionOptions MakeSessionOptions(const DeviceClientOptions& o, const sd::CostOptions* cost) {
  SessionOptions s;
  s.in_flight = o.in_flight;
  s.device_slowdown = o.device_slowdown;
  s.deadline_ms = o.deadline_ms;
  s.reconnect = std::chrono::milliseconds(o.reconnect_ms);
  s.verify = o.verify;
  s.has_edge = !o.server.empty();
  s.cost = cost;
  return s;
}

// The random input of inference `id`: different per inference, reproducible from --seed.
InferenceInput RandomInput(const SplitModel& model, uint64_t seed, uint64_t id) {
  torch::manual_seed(seed * 1000003 + id);
  std::vector<int64_t> shape{1};
  shape.insert(shape.end(), model.input_shape().begin(), model.input_shape().end());
  InferenceInput in;
  in.tensor = torch::randn(shape);
  return in;
}

Result<sd::CostOptions> MakeCostOptions(const DeviceClientOptions& o) {
  sd::CostOptions c;
  if (!o.cost_config.empty()) {
    Result<sd::CostOptions> loaded = sd::CostOptions::Load(o.cost_config);
    if (!loaded.ok()) return loaded.status();
    c = *loaded;
  }
  if (o.w_energy >= 0) c.w_energy = o.w_energy;
  if (o.w_time >= 0) c.w_time = o.w_time;
  if (o.edge_speedup > 0) c.edge_speedup = o.edge_speedup;
  if (o.min_agreement >= 0) c.min_agreement = o.min_agreement;
  if (o.fidelity_weight >= 0) c.fidelity_weight = o.fidelity_weight;
  c.downlink_bps = o.downlink_mbps * 1e6;
  std::string error;
  if (!c.IsValid(&error)) return InvalidArgumentError("cost options: " + error);
  return c;
}

// ---- --split: the fixed path --------------------------------------------------------------

int RunFixed(const DeviceClientOptions& o, std::shared_ptr<SplitModel> model, EdgeClient* client,
             RecordWriter& out) {
  const size_t n = model->num_units();
  Result<CodecSpec> codec = CodecSpec::Parse(o.codec);
  if (!codec.ok()) return Fail(codec.status().WithPrefix("--codec: "));
  std::vector<size_t> splits;
  if (o.split == "all") {
    for (size_t k = 0; k <= n; ++k) splits.push_back(k);
  } else {
    try {
      size_t pos = 0;
      const long k = std::stol(o.split, &pos);
      if (pos != o.split.size() || k < 0 || static_cast<size_t>(k) > n) throw std::out_of_range("");
      splits.push_back(static_cast<size_t>(k));
    } catch (const std::exception&) {
      std::cerr << "device_client: --split must be 'all' or a number in 0.." << n << " (" << o.model
                << " has " << n << " units), got '" << o.split << "'\n";
      return 2;
    }
  }
  if (!o.json) {
    std::printf("model %s@%u, %zu units, server %s, codec %s\n", model->name().c_str(),
                model->version(), n, o.server.empty() ? "(none)" : o.server.c_str(),
                codec->ToString().c_str());
    PrintTableHeader();
  }
  Failures failures{o.verify};
  std::vector<InferenceRecord> recs;
  DeviceSession session(MakeSessionOptions(o, nullptr), client, [&](InferenceRecord&& r) {
    out.Write(ToJson(r));
    failures.Add(r);
    recs.push_back(std::move(r));
  });
  for (size_t k : splits) {
    FixedSplitPolicy policy(model, static_cast<int>(k), *codec);
    recs.clear();
    for (int i = 0; i < o.requests && !Stopping(); ++i) {
      Status st = session.Submit(policy, nullptr, RandomInput(*model, o.seed, session.next_id()));
      if (!st.ok()) return Fail(st);
    }
    session.Drain();
    for (auto& r : recs) r.output = at::Tensor();
    if (!o.json) PrintSummaryRow(recs, o.verify);
  }
  return failures.count == 0 ? 0 : 1;
}

// ---- live splitting: the channel, the cost model, the policies ----------------------------

// What every live policy shares: the cost model of the device, the emulated uplink and the parts
// of its series the law is fitted on and the run (or replay) uses.
struct LiveWorld {
  sd::CostOptions cost_options;
  sd::ModelProfile profile;
  std::vector<sd::WireOption> codecs;
  std::optional<sd::CostModel> cost_model;
  std::vector<CodecSpec> option_codecs;  // per wire option
  sd::ChannelSpec spec;
  bool is_series = false, markov = false;
  sd::RateSeries fit;                  // the law's fitting part (emulated time)
  double run_start_s = 0;              // emulated time of the first inference
  std::vector<double> segment_starts;  // replay
  double fallback_prior_bps = 0;       // --csi estimated before any upload
  LiveDecisionOptions lo;
  std::unique_ptr<sd::ScoredSeries> scored;
  std::unique_ptr<UplinkEmulator> uplink;

  TableContext Context() const {
    TableContext c;
    c.option_codecs = option_codecs;
    c.cost_model = &*cost_model;
    c.scored = scored.get();
    c.emulated = &uplink->series();
    return c;
  }
};

Result<sd::ModelProfile> LoadOrMeasureProfile(const DeviceClientOptions& o,
                                              const SplitModel& model) {
  const ZooOptions defaults;
  const ZooOptions& zoo = o.zoo;
  const bool default_zoo =
      o.torchscript.empty() && zoo.input_size == defaults.input_size &&
      zoo.num_classes == defaults.num_classes && zoo.width_mult == defaults.width_mult &&
      zoo.mlp_width == defaults.mlp_width && zoo.mlp_layers == defaults.mlp_layers;
  const std::string zoo_profile = "data/profiles/" + o.model + ".json";
  if (o.profile == "local") return ProfileLocalModel(model, 5, o.device_slowdown);
  if (!o.profile.empty()) return sd::LoadProfile(o.profile);
  if (default_zoo && std::filesystem::exists(zoo_profile)) return sd::LoadProfile(zoo_profile);
  return ProfileLocalModel(model, 5, o.device_slowdown);
}

Result<std::unique_ptr<LiveWorld>> BuildLiveWorld(const DeviceClientOptions& o,
                                                  const SplitModel& model) {
  auto w = std::make_unique<LiveWorld>();
  Result<sd::ModelProfile> profile = LoadOrMeasureProfile(o, model);
  if (!profile.ok()) return profile.status();
  w->profile = std::move(*profile);
  Result<sd::CostOptions> cost = MakeCostOptions(o);
  if (!cost.ok()) return cost.status();
  w->cost_options = *cost;
  w->cost_options.device_slowdown = o.device_slowdown;
  if (!o.codecs.empty()) {
    Result<std::vector<sd::WireOption>> loaded =
        sd::LoadCodecProfile(o.codecs, w->profile.num_units());
    if (!loaded.ok()) return loaded.status();
    w->codecs = std::move(*loaded);
  }
  Result<sd::CostModel> cm = sd::CostModel::Create(w->profile, w->cost_options, w->codecs);
  if (!cm.ok()) return cm.status();
  w->cost_model = std::move(*cm);
  for (int c = 0; c < w->cost_model->num_wire_options(); ++c) {
    Result<CodecSpec> spec = CodecSpec::Parse(w->cost_model->WireOptionName(c));
    if (!spec.ok())
      return spec.status().WithPrefix(o.codecs + ": codec " + w->cost_model->WireOptionName(c) +
                                      ": ");
    w->option_codecs.push_back(*spec);
  }
  Result<sd::ChannelSpec> spec = sd::ChannelSpec::Parse(o.channel);
  if (!spec.ok()) return spec.status();
  w->spec = *spec;
  using Kind = sd::ChannelSpec::Kind;
  w->is_series = spec->kind != Kind::kRayleigh;
  w->markov = spec->kind == Kind::kMarkovFit || spec->kind == Kind::kGaussMarkov;
  if (o.law == "online" && (!w->is_series || o.csi != "perfect"))
    return InvalidArgumentError(
        "--law online learns from CSI reports: it needs a series channel (trace:, markov-fit:, "
        "gauss-markov:) and --csi perfect");
  if (o.segments > 0 && !w->is_series)
    return InvalidArgumentError(
        "--segments replays a rate series: use trace:, markov-fit: or gauss-markov:");
  if (o.segments > 0 && o.in_flight != 1)
    return InvalidArgumentError("--segments runs one inference at a time (--in-flight 1)");
  EmulatedSeriesOptions so;
  so.grid_s = o.grid_ms * 1e-3;
  so.bandwidth_hz = o.bandwidth_mhz * 1e6;
  so.seed = o.channel_seed;
  Result<sd::RateSeries> series = MakeEmulatedSeries(*spec, so);
  if (!series.ok()) return series.status();
  if (series->size() == 0) return InvalidArgumentError(o.channel + ": empty series");
  const size_t total = series->size();
  const double dt = series->dt_s;
  // The law's fitting part [0, cut) and the part the run (or the replay) uses [begin, total).
  size_t cut = total, begin = 0;
  if (w->is_series && o.law != "full") {
    cut = static_cast<size_t>(static_cast<double>(total) * o.fit_fraction);
    begin = cut;
    if (cut < 100 || total - cut < 100)
      return InvalidArgumentError(
          o.channel + ": series too short to fit the law on one part and run on another (" +
          std::to_string(total) + " steps of " + std::to_string(dt) + " s; try --law full)");
  }
  w->run_start_s = static_cast<double>(begin) * dt;
  for (int j = 0; j < o.segments; ++j)
    w->segment_starts.push_back(
        dt * static_cast<double>(begin + static_cast<size_t>((j + 0.5) * (total - begin) /
                                                             static_cast<double>(o.segments))));
  w->lo.num_states = o.states;
  w->lo.observe_window_s = o.window_ms * 1e-3;
  w->lo.bandwidth_hz = so.bandwidth_hz;
  w->lo.time_scale = o.time_scale;
  w->fit = series->Slice(0, cut);
  w->fallback_prior_bps = w->fit.MeanRate();
  if (w->is_series) {
    w->scored = std::make_unique<sd::ScoredSeries>(
        ToWallTime(*series, o.time_scale),
        std::max<size_t>(1, std::lround(o.window_ms / o.grid_ms)), 0);
  }
  w->uplink =
      std::make_unique<UplinkEmulator>(std::move(*series), o.time_scale, o.window_ms * 1e-3);
  w->uplink->set_max_frame_s(o.io_timeout_ms / 1000.0);
  return w;
}

// The table of policy `name` on the cost model `cost` (horizon as `lo` says).
Result<std::shared_ptr<const LiveDecision>> MakeTable(const LiveWorld& w, const sd::CostModel& cost,
                                                      const LiveDecisionOptions& lo) {
  return w.is_series ? LiveDecision::FromSeries(cost, w.fit, w.markov, lo)
                     : LiveDecision::FromRayleigh(cost, w.spec.snr_db, lo);
}

// Policies: one, or with --segments a list ("all": split_sim's standard set). A name with
// "@online" runs that policy on the online law (e.g. "all,bi@online").
Result<std::vector<std::string>> PolicyNames(const DeviceClientOptions& o) {
  std::vector<std::string> names;
  std::stringstream in(o.policy);
  for (std::string p; std::getline(in, p, ',');) {
    if (p == "all" && o.segments > 0)
      names.insert(names.end(), StandardPolicyNames().begin(), StandardPolicyNames().end());
    else if (!p.empty())
      names.push_back(p);
  }
  if (names.size() != 1 && o.segments == 0)
    return InvalidArgumentError("several policies need --segments (replay)");
  return names;
}

Result<std::unique_ptr<SplitPolicy>> MakeTablePolicy(const DeviceClientOptions& o,
                                                     const LiveWorld& w,
                                                     std::shared_ptr<SplitModel> model,
                                                     const std::string& run_name) {
  const size_t at = run_name.find("@online");
  const bool online_law = o.law == "online" || at != std::string::npos;
  if (at != std::string::npos && at + 7 != run_name.size())
    return InvalidArgumentError("policy " + run_name + ": only the suffix @online");
  if (online_law && (!w.is_series || o.csi != "perfect"))
    return InvalidArgumentError(
        "the online law learns from CSI reports: it needs a series channel (trace:, "
        "markov-fit:, gauss-markov:) and --csi perfect");
  LiveDecisionOptions lo = w.lo;
  lo.policy = run_name.substr(0, at);
  Result<std::shared_ptr<const LiveDecision>> d = MakeTable(w, *w.cost_model, lo);
  if (!d.ok()) return d.status();
  std::unique_ptr<DecisionSource> source;
  if (online_law) {
    Result<std::unique_ptr<DecisionSource>> src =
        MakeOnlineSource(*w.cost_model, lo, w.markov, o.online, *d, w.uplink->series());
    if (!src.ok()) return src.status();
    source = std::move(*src);
  } else {
    source = std::make_unique<FixedDecision>(std::move(*d));
  }
  return std::unique_ptr<SplitPolicy>(
      std::make_unique<TablePolicy>(run_name, std::move(model), std::move(source), w.Context()));
}

void PrintPolicyRecords(const std::string& name, const std::vector<InferenceRecord>& recs,
                        const DeviceClientOptions& o) {
  std::map<int, std::vector<InferenceRecord>> by_boundary;
  for (const InferenceRecord& r : recs) by_boundary[r.boundary].push_back(r);
  std::printf("policy %s:\n", name.c_str());
  PrintTableHeader();
  for (auto& [k, group] : by_boundary) PrintSummaryRow(group, o.verify);
  PrintPolicyLine(Summarize(name, recs), o.csi);
}

int RunLive(const DeviceClientOptions& o, std::shared_ptr<SplitModel> model,
            EdgeClientOptions copts, RecordWriter& out) {
  Result<std::unique_ptr<LiveWorld>> world = BuildLiveWorld(o, *model);
  if (!world.ok()) return Fail(world.status());
  LiveWorld& w = **world;
  Result<std::vector<std::string>> names = PolicyNames(o);
  if (!names.ok()) return Fail(names.status());
  std::vector<std::unique_ptr<SplitPolicy>> policies;
  for (const std::string& name : *names) {
    Result<std::unique_ptr<SplitPolicy>> p = MakeTablePolicy(o, w, model, name);
    if (!p.ok()) return Fail(p.status());
    policies.push_back(std::move(*p));
  }
  copts.uplink_pacer = w.uplink.get();
  EdgeClient paced(copts);  // request frames paced to the emulated uplink
  Failures failures{o.verify};
  std::map<std::string, std::vector<InferenceRecord>> recs;
  DeviceSession session(MakeSessionOptions(o, &w.cost_options), &paced, [&](InferenceRecord&& r) {
    out.Write(ToJson(r));
    failures.Add(r);
    r.output = at::Tensor();
    recs[r.policy].push_back(std::move(r));
  });
  std::vector<std::unique_ptr<GoodputEstimator>> goodputs;
  std::vector<std::unique_ptr<EmulatedUplinkView>> views;
  for (size_t p = 0; p < policies.size(); ++p) {
    goodputs.push_back(o.csi == "estimated" ? std::make_unique<GoodputEstimator>(
                                                  o.goodput_window, w.fallback_prior_bps)
                                            : nullptr);
    views.push_back(std::make_unique<EmulatedUplinkView>(w.uplink.get(), goodputs.back().get()));
  }
  if (o.segments > 0) {
    // Segment-major: every policy runs segment j before any runs j+1, so a drift in this
    // machine's speed during the replay reaches every policy alike.
    for (int j = 0; j < o.segments && !Stopping(); ++j) {
      for (size_t p = 0; p < policies.size(); ++p) {
        w.uplink->StartAt(w.segment_starts[static_cast<size_t>(j)]);
        InferenceInput in = RandomInput(*model, o.seed, session.next_id());
        in.segment = j;
        in.start_s = w.segment_starts[static_cast<size_t>(j)];
        Status st = session.Submit(*policies[p], views[p].get(), std::move(in));
        if (!st.ok()) return Fail(st);
        session.Drain();
      }
    }
  } else {
    w.uplink->StartAt(w.run_start_s);
    for (int i = 0; i < o.requests && !Stopping(); ++i) {
      Status st = session.Submit(*policies[0], views[0].get(),
                                 RandomInput(*model, o.seed, session.next_id()));
      if (!st.ok()) return Fail(st);
    }
    session.Drain();
  }
  paced.Close();
  if (!o.json) {
    std::vector<PolicySummary> summaries;
    for (const std::string& name : *names) {
      PrintPolicyRecords(name, recs[name], o);
      summaries.push_back(Summarize(name, recs[name]));
    }
    if (summaries.size() > 1) PrintComparison(summaries);
  }
  return failures.count == 0 ? 0 : 1;
}

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

// ---- --variants: model-variant selection ---------------------------------------------------

int RunVariants(const DeviceClientOptions& o, EdgeClientOptions copts, RecordWriter& out) {
  if (o.policy.find(',') != std::string::npos || o.segments > 0 || o.law == "online" ||
      o.placement())
    return Fail(InvalidArgumentError(
        "--variants runs one split policy per variant (no list, --segments, --law online or "
        "--store)"));
  Result<std::vector<sd::Variant>> known = sd::LoadVariants(o.variant_profiles);
  if (!known.ok()) return Fail(known.status());
  // NAME=FILE entries, served by the edge as digits_branchy@1, @2, ... in this order.
  std::vector<std::pair<sd::Variant, std::shared_ptr<SplitModel>>> variants;
  {
    std::stringstream in(o.variants);
    for (std::string entry; std::getline(in, entry, ',');) {
      const size_t eq = entry.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == entry.size())
        return Fail(InvalidArgumentError("--variants: '" + entry + "' is not NAME=WEIGHTS"));
      const std::string name = entry.substr(0, eq);
      auto it = std::find_if(known->begin(), known->end(),
                             [&](const sd::Variant& v) { return v.name == name; });
      if (it == known->end())
        return Fail(
            InvalidArgumentError("--variants: " + name + " is not in " + o.variant_profiles));
      auto model = exits::LoadBranchyModelAnyWidth(entry.substr(eq + 1),
                                                   static_cast<uint32_t>(variants.size() + 1));
      if (!model.ok()) return Fail(model.status().WithPrefix("--variants: " + name + ": "));
      variants.emplace_back(*it, std::move(*model));
    }
  }
  if (variants.empty()) return Fail(InvalidArgumentError("--variants: no variant given"));
  // The channel (and the device's cost options) once; each variant's table on its own profile.
  DeviceClientOptions channel_options = o;
  channel_options.profile = "local";  // a few passes of a small model: the table is per variant
  Result<std::unique_ptr<LiveWorld>> world = BuildLiveWorld(channel_options, *variants[0].second);
  if (!world.ok()) return Fail(world.status());
  LiveWorld& w = **world;
  std::vector<std::unique_ptr<sd::CostModel>> costs;
  std::vector<LiveVariant> arms;
  for (auto& [info, model] : variants) {
    Result<sd::CostModel> cost = sd::CostModel::Create(info.profile, w.cost_options);
    if (!cost.ok()) return Fail(cost.status().WithPrefix(info.name + ": "));
    costs.push_back(std::make_unique<sd::CostModel>(std::move(*cost)));
    LiveDecisionOptions lo = w.lo;
    lo.policy = o.policy;
    Result<std::shared_ptr<const LiveDecision>> d = MakeTable(w, *costs.back(), lo);
    if (!d.ok()) return Fail(d.status().WithPrefix(info.name + ": "));
    TableContext ctx = w.Context();
    ctx.option_codecs = {CodecSpec()};
    ctx.cost_model = costs.back().get();
    LiveVariant arm;
    arm.info = info;
    arm.policy = std::make_unique<TablePolicy>(o.policy + "@" + info.name, model,
                                               std::make_unique<FixedDecision>(std::move(*d)), ctx);
    arms.push_back(std::move(arm));
  }
  sd::DeviceContext context;
  context.slowdown = o.device_slowdown;
  context.uplink_bps = w.fit.MeanRate() * o.time_scale;
  context.energy_weight = o.qoe_energy_weight;
  context.latency_sensitivity = o.latency_sensitivity;
  sd::QoeOptions qoe;
  qoe.device_power_w = w.cost_options.DevicePowerW();
  // One device, one context: what tells the variants apart is what each realizes here (its
  // trained weights, this uplink), so a model per arm (disjoint LinUCB) with the optimistic
  // prior that makes every arm tried, with the knobs select_sim tuned for that policy.
  const sd::SelectSimOptions tuned;
  sd::BanditOptions bo;
  bo.policy = o.select == "linucb" ? sd::BanditPolicy::kLinUcb : sd::BanditPolicy::kEpsilonGreedy;
  bo.shared = false;
  bo.ridge = tuned.linucb_disjoint.ridge;
  bo.alpha = tuned.linucb_disjoint.alpha;
  bo.reward_offset = qoe.accuracy_scale;
  bo.epsilon = tuned.epsilon;
  bo.seed = o.seed;
  Result<std::unique_ptr<VariantPolicy>> policy =
      VariantPolicy::Create(std::move(arms), context, qoe, bo);
  if (!policy.ok()) return Fail(policy.status());
  // Inputs: held-out digits, drawn from --seed.
  auto digits = exits::LoadDigits(o.data);
  if (!digits.ok()) return Fail(digits.status());
  auto split = exits::SplitDigits(*digits, o.split_seed);
  if (!split.ok()) return Fail(split.status());
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int64_t> pick(0, split->test.size() - 1);

  copts.uplink_pacer = w.uplink.get();
  EdgeClient edge(copts);
  EmulatedUplinkView view(w.uplink.get(), nullptr);
  Failures failures{o.verify};
  struct Tally {
    int picks = 0, picks_late = 0, right = 0;
    double latency_ms = 0, qoe = 0;
  };
  std::map<std::string, Tally> tally;
  int done = 0;
  const int late_from = o.requests - o.requests / 5;  // the last 20%
  DeviceSession session(MakeSessionOptions(o, &w.cost_options), &edge, [&](InferenceRecord&& r) {
    out.Write(ToJson(r));
    failures.Add(r);
    Tally& t = tally[r.policy_fields.value("variant", std::string("?"))];
    ++t.picks;
    t.picks_late += done++ >= late_from;
    t.right += r.correct;
    t.latency_ms += r.priced.latency_s * 1e3;
    t.qoe += r.policy_fields.value("qoe", 0.0);
  });
  w.uplink->StartAt(w.run_start_s);
  for (int i = 0; i < o.requests && !Stopping(); ++i) {
    const int64_t s = pick(rng);
    InferenceInput in;
    in.tensor = exits::PrepareDigitsInput(split->test.images[s].unsqueeze(0), 32);
    in.label = split->test.labels[s].item<int64_t>();
    Status st = session.Submit(**policy, &view, std::move(in));
    if (!st.ok()) return Fail(st);
  }
  session.Drain();
  edge.Close();
  json rows = json::array();
  if (!o.json)
    std::printf("%-10s %6s %10s %9s %11s %9s\n", "variant", "picks", "last 20%", "accuracy",
                "latency ms", "mean QoE");
  for (size_t a = 0; a < (*policy)->num_arms(); ++a) {
    const std::string& name = (*policy)->arm(a).info.name;
    const Tally& t = tally[name];
    const double n = std::max(1, t.picks);
    rows.push_back({{"variant", name},
                    {"picks", t.picks},
                    {"picks_last_20pct", t.picks_late},
                    {"accuracy", t.right / n},
                    {"mean_latency_ms", t.latency_ms / n},
                    {"mean_qoe", t.qoe / n}});
    if (!o.json)
      std::printf("%-10s %6d %10d %9.3f %11.3f %9.3f\n", name.c_str(), t.picks, t.picks_late,
                  t.right / n, t.latency_ms / n, t.qoe / n);
  }
  out.Write(json{{"event", "summary"}, {"selector", (*policy)->name()}, {"variants", rows}});
  return failures.count == 0 ? 0 : 1;
}

// ---- --exits ------------------------------------------------------------------------------

int RunExits(const DeviceClientOptions& o, EdgeClient* client, RecordWriter& out) {
  if (o.weights.empty()) return Fail(InvalidArgumentError("--exits needs --weights"));
  if (o.channel.empty()) return Fail(InvalidArgumentError("--exits needs --channel"));
  ExitRunOptions x;
  x.weights = o.weights;
  x.data = o.data;
  x.split_seed = o.split_seed;
  x.stats = o.stats;
  x.profile = o.profile.empty() ? "data/profiles/digits_branchy.json" : o.profile;
  x.channel = o.channel;
  x.controllers = o.exits;
  x.episodes = o.requests;
  x.seed = o.seed;
  x.accuracy_weight = o.accuracy_weight;
  Result<sd::CostOptions> cost = MakeCostOptions(o);
  if (!cost.ok()) return Fail(cost.status());
  x.cost = *cost;
  x.cost.device_slowdown = o.device_slowdown;
  if (o.states_given) x.world.num_states = o.states;
  x.world.rate_scale = o.rate_scale;
  if (o.train_steps > 0) x.ddpg.train_steps = o.train_steps;
  Result<std::unique_ptr<ExitEpisodes>> episodes = ExitEpisodes::Create(x);
  if (!episodes.ok()) return Fail(episodes.status());
  Failures failures;
  const json summary =
      (*episodes)->Run(MakeSessionOptions(o, &x.cost), client, [&](InferenceRecord&& r) {
        out.Write(ToJson(r));
        failures.Add(r);
      });
  if (!o.summary_json.empty()) {
    std::ofstream f(o.summary_json);
    f << summary.dump(2) << "\n";
    if (!f) return Fail(InvalidArgumentError("cannot write " + o.summary_json));
  }
  return failures.count == 0 ? 0 : 1;
}

}  // namespace

int RunDeviceClient(const DeviceClientOptions& o) {
  if (o.threads > 0) torch::set_num_threads(o.threads);
  const int modes = !o.exits.empty() + !o.policy.empty() + o.split_given;
  if (modes != 1)
    return Fail(InvalidArgumentError(
        "give one of --split K, --policy P (with --channel; and --store for placement) or "
        "--exits CONTROLLERS"));
  if (!o.policy.empty() && o.channel.empty())
    return Fail(InvalidArgumentError("--policy needs --channel"));
  if (o.split_given && !o.channel.empty())
    return Fail(InvalidArgumentError("--channel needs --policy (or --exits)"));
  if (!o.codecs.empty() && o.policy.empty())
    return Fail(InvalidArgumentError("--codecs needs --policy"));
  if (o.codec != "fp32" && !o.split_given)
    return Fail(InvalidArgumentError(
        "--codec works with the fixed --split path; with --policy give --codecs FILE and the "
        "policy chooses the codec with the boundary"));
  std::string error;
  if (!o.zoo.IsValid(&error)) return Fail(InvalidArgumentError(error));
  Result<EdgeClientOptions> copts = MakeEdgeOptions(o);
  if (!copts.ok()) return Fail(copts.status());
  std::ofstream ledger;
  if (!o.ledger.empty()) {
    ledger.open(o.ledger);
    if (!ledger) return Fail(InvalidArgumentError("cannot write --ledger " + o.ledger));
  }
  RecordWriter out(o.json, ledger.is_open() ? &ledger : nullptr);
  EdgeClient client(*copts);
  EdgeClient* edge = o.server.empty() ? nullptr : &client;
  if (!o.exits.empty()) return RunExits(o, edge, out);
  InstallStopHandlers();
  if (o.placement()) return RunPlaced(o, *copts, out);
  if (!o.variants.empty()) return RunVariants(o, *copts, out);
  Result<std::shared_ptr<SplitModel>> model =
      o.torchscript.empty() ? BuildZooModel(o.model, o.version, o.zoo)
                            : LoadTorchScriptModel(o.torchscript, o.model, o.version, {});
  if (!model.ok()) return Fail(model.status());
  if (!o.policy.empty()) return RunLive(o, *model, *copts, out);
  return RunFixed(o, *model, edge, out);
}

}  // namespace splitinfer

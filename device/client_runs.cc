#include "device/client_runs.h"

#include <signal.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>

#include <torch/torch.h>

#include "device/robust_decision.h"

namespace splitinfer::runs {

namespace {
std::atomic<bool> g_stop{false};
extern "C" void OnStopSignal(int) { g_stop.store(true); }
}  // namespace

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

// ---- live splitting: the channel, the cost model, the policies ----------------------------

namespace {
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

}  // namespace

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

Result<std::shared_ptr<const LiveDecision>> MakeTable(const LiveWorld& w, const sd::CostModel& cost,
                                                      const LiveDecisionOptions& lo) {
  return w.is_series ? LiveDecision::FromSeries(cost, w.fit, w.markov, lo)
                     : LiveDecision::FromRayleigh(cost, w.spec.snr_db, lo);
}

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
  // bi is the robust splitter where it can learn: a series channel whose path the device sees
  // (perfect CSI), every unit placed, the prefix law. Elsewhere (rayleigh, estimated CSI, the
  // online law) bi is the textbook table, which is what the robust splitter is on a known law.
  const bool robust = lo.policy == "bi" && !online_law && w.is_series && o.csi == "perfect" &&
                      lo.horizon == LiveDecisionOptions::kAllUnits;
  if (robust) {
    Result<std::unique_ptr<DecisionSource>> src = MakeRobustSource(
        *w.cost_model, lo, w.markov, o.robust, w.Context(), w.fit, w.uplink->series());
    if (!src.ok()) return src.status();
    source = std::move(*src);
  } else if (online_law) {
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

}  // namespace splitinfer::runs

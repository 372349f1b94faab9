// device_placement: a device that stores only the units the edge's planner chose (issue 7).
//
//   device_placement --server 127.0.0.1:PORT --model resnet18 --store /tmp/dev
//       --channel rayleigh:snr_db=10 --downlink-mbps 50 --inferences-per-version 1000
//       --updates 3 --inferences 20
//
// For each of --updates rounds it waits until the edge names a version (or an M) it does not
// hold, downloads the units it lacks in verified chunks, swaps to the new version, and runs
// --inferences inferences on it over the emulated uplink (--channel), each split by the placed
// policy (horizon M). It prints one line per round: the version and M chosen, bytes, download
// time, energy and cost, and the mean inference cost after the swap, each beside the planner's
// prediction. --json writes the same as one JSON object per round.
#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <thread>

#include <torch/torch.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/cli_parse.h"
#include "common/decision/simulator.h"
#include "common/frame_io.h"
#include "common/log.h"
#include "common/zoo_cli.h"
#include "device/placement_agent.h"
#include "device/uplink_emulator.h"

using namespace splitinfer;
using json = nlohmann::json;
namespace sd = splitinfer::decision;

namespace {

// constant:MBPS, rayleigh:snr_db=X, trace:FILE -> the emulated uplink series and its law.
Status MakeChannel(const std::string& text, int states, double window_s, double bandwidth_hz,
                   uint64_t seed, sd::RateSeries* series, sd::ChannelLaw* law) {
  if (text.rfind("constant:", 0) == 0) {
    char* end = nullptr;
    const std::string v = text.substr(9);
    const double mbps = std::strtod(v.c_str(), &end);
    if (end == v.c_str() || *end != '\0' || !(mbps > 0) || !std::isfinite(mbps))
      return InvalidArgumentError("--channel " + text + ": expected constant:MBPS with MBPS > 0");
    series->name = text;
    series->dt_s = 0.005;
    series->rate_bps.assign(2000, mbps * 1e6);
    law->rate_bps = Eigen::VectorXd::Constant(1, mbps * 1e6);
    law->stationary = Eigen::VectorXd::Ones(1);
    law->edges_bps.clear();
    law->iid = true;
    return Status::Ok();
  }
  auto spec = sd::ChannelSpec::Parse(text);
  if (!spec.ok()) return spec.status();
  EmulatedSeriesOptions so;
  so.bandwidth_hz = bandwidth_hz;
  so.seed = seed;
  auto s = MakeEmulatedSeries(*spec, so);
  if (!s.ok()) return s.status();
  *series = std::move(*s);
  if (spec->kind == sd::ChannelSpec::Kind::kRayleigh) {
    sd::RayleighOptions ro;
    ro.snr_db = spec->snr_db;
    ro.bandwidth_hz = bandwidth_hz;
    ro.num_states = states;
    auto l = sd::DiscretizeRayleigh(ro);
    if (!l.ok()) return l.status();
    *law = std::move(*l);
    return Status::Ok();
  }
  // A trace: the i.i.d. law of the rate the device observes (its window), K quantile states.
  const size_t window =
      std::max<size_t>(1, static_cast<size_t>(std::lround(window_s / series->dt_s)));
  auto l = sd::DiscretizeEmpirical(series->ObservedRates(window), states);
  if (!l.ok()) return l.status();
  *law = std::move(*l);
  return Status::Ok();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "splitinfer device with model placement: plan, download verified units, swap, infer"};
  std::string server, store, channel = "rayleigh:snr_db=10", profile_path = "local", cost_config;
  std::string ledger_path, policy = "bi";
  PlacementAgentOptions o;
  o.model = "resnet18";
  ZooOptions zoo;
  double slowdown = 1.0, edge_speedup = 1.0, downlink_mbps = 50.0, storage_mb = 0.0;
  double w_energy = -1, w_time = -1, window_ms = 20.0, bandwidth_mhz = 10.0, wait_s = 60.0;
  int states = 16, updates = 1, inferences = 10, check_ms = 200, io_timeout_ms = 30000;
  bool no_pacing = false, as_json = false;
  uint64_t seed = 1;
  app.add_option("--server", server, "edge_server HOST:PORT")->required();
  app.add_option("--model", o.model, "zoo model name (as published in the edge's repository)");
  app.add_option("--store", store, "directory where this device keeps its units")->required();
  AddZooOptions(app, &zoo);
  app.add_option("--profile", profile_path,
                 "unit times: 'local' (measured here) or a profile JSON");
  app.add_option("--device-slowdown", slowdown, "the device is this much slower than this machine")
      ->check(CLI::Range(1.0, 1000.0));
  app.add_option("--edge-speedup", edge_speedup, "the edge is this much faster")
      ->check(CLI::Range(0.01, 1e4));
  app.add_option("--cost-config", cost_config, "cost options JSON (keys of CostOptions)");
  app.add_option("--w-energy", w_energy, "weight of a joule");
  app.add_option("--w-time", w_time, "weight of a second");
  app.add_option("--channel", channel, "uplink: constant:MBPS, rayleigh:snr_db=X or trace:FILE");
  app.add_option("--states", states, "K, channel states of the law")->check(CLI::Range(1, 64));
  app.add_option("--window-ms", window_ms, "the device observes the mean rate over this window");
  app.add_option("--bandwidth-mhz", bandwidth_mhz, "Shannon bandwidth of rayleigh channels");
  app.add_option("--channel-seed", seed, "seed of generated channels");
  app.add_option("--policy", policy, "split policy on the placed units (bi, ola, greedy, ...)");
  app.add_option("--downlink-mbps", downlink_mbps, "download rate: planned, and emulated")
      ->check(CLI::Range(0.001, 1e6));
  app.add_flag("--no-downlink-pacing", no_pacing, "download as fast as the connection goes");
  app.add_option("--storage-mb", storage_mb, "storage budget for units (0: unlimited)")
      ->check(CLI::Range(0.0, 1e9));
  app.add_option("--inferences-per-version", o.inferences_per_version, "R")
      ->check(CLI::Range(1e-6, 1e12));
  app.add_flag("--ola", o.one_stage_lookahead, "plan with one-stage look-ahead instead of BI");
  app.add_option("--updates", updates, "placement rounds to go through (each waits for a change)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--inferences", inferences, "inferences after each swap")
      ->check(CLI::Range(0, 1000000));
  app.add_option("--wait-s", wait_s, "give up waiting for a new version after this long");
  app.add_option("--check-every-ms", check_ms, "how often to ask the edge for a new placement")
      ->check(CLI::Range(1, 3600000));
  app.add_option("--io-timeout-ms", io_timeout_ms)->check(CLI::Range(1, 3600000));
  app.add_option("--ledger", ledger_path, "also write one JSON line per inference here");
  app.add_flag("--json", as_json, "one JSON object per round on stdout");
  SPLITINFER_CLI_PARSE(app, argc, argv);
  log::SetName("device");
  torch::set_num_threads(1);

  Status st = ParseHostPort(server, &o.edge.host, &o.edge.port);
  if (!st.ok()) {
    std::cerr << "device_placement: --server: " << st.message() << "\n";
    return 2;
  }
  o.edge.io_timeout = std::chrono::milliseconds(io_timeout_ms);
  o.edge.client_name = "device_placement";
  o.store_root = store;
  if (!cost_config.empty()) {
    auto c = sd::CostOptions::Load(cost_config);
    if (!c.ok()) {
      std::cerr << "device_placement: --cost-config: " << c.status() << "\n";
      return 2;
    }
    o.cost = *c;
  }
  if (w_energy >= 0) o.cost.w_energy = w_energy;
  if (w_time >= 0) o.cost.w_time = w_time;
  o.cost.device_slowdown = slowdown;
  o.cost.edge_speedup = edge_speedup;
  o.cost.downlink_bps = downlink_mbps * 1e6;
  o.emulated_downlink_bps = no_pacing ? 0.0 : o.cost.downlink_bps;
  o.storage_budget_bytes = static_cast<int64_t>(storage_mb * 1e6);
  o.live.policy = policy;
  o.live.num_states = states;
  o.live.observe_window_s = window_ms * 1e-3;

  // Unit times: measured here on a model of the same architecture (weights do not matter).
  if (profile_path == "local") {
    auto net = BuildZooModel(o.model, 1, zoo);
    if (!net.ok()) {
      std::cerr << "device_placement: " << net.status() << "\n";
      return 2;
    }
    o.profile = ProfileLocalModel(**net, 5, 1.0);
  } else {
    auto p = sd::LoadProfile(profile_path);
    if (!p.ok()) {
      std::cerr << "device_placement: --profile: " << p.status() << "\n";
      return 2;
    }
    o.profile = *p;
  }
  sd::RateSeries series;
  st = MakeChannel(channel, states, window_ms * 1e-3, bandwidth_mhz * 1e6, seed, &series, &o.law);
  if (!st.ok()) {
    std::cerr << "device_placement: --channel: " << st.message() << "\n";
    return 2;
  }
  std::string error;
  if (!o.IsValid(&error)) {
    std::cerr << "device_placement: " << error << "\n";
    return 2;
  }

  PlacementAgent agent(o);
  if (agent.LoadFromStore().ok()) {
    auto p = agent.Current();
    std::cerr << "device_placement: store holds " << p->model << "@" << p->version << " M=" << p->m
              << "\n";
  }
  std::ofstream ledger;
  if (!ledger_path.empty()) ledger.open(ledger_path);

  UplinkEmulator uplink(series, 1.0, window_ms * 1e-3);
  uplink.set_max_frame_s(io_timeout_ms / 1000.0);
  EdgeClientOptions eo = o.edge;
  eo.uplink_pacer = &uplink;
  eo.client_name = "device_placement/infer";
  EdgeClient edge(eo);
  uplink.Start();

  const sd::CostOptions& c = o.cost;
  if (!as_json) {
    std::cout << "round  version    M  bytes_MB  download_s  (pred)  energy_J  D(M)  (pred)"
                 "   mean_cost  (pred)  n  edge  planner_us\n";
  }
  int failures = 0;
  uint64_t request_id = 1;
  for (int round = 0; round < updates; ++round) {
    // Wait for a placement that differs from what is held (the first round takes any).
    const auto give_up = std::chrono::steady_clock::now() +
                         std::chrono::milliseconds(static_cast<int64_t>(wait_s * 1000));
    Result<UpdateReport> rep = InternalError("no round");
    for (;;) {
      rep = agent.Update();
      if (rep.ok() && (rep->changed || (round == 0 && agent.Current()))) break;
      if (!rep.ok()) std::cerr << "device_placement: " << rep.status() << "\n";
      if (std::chrono::steady_clock::now() > give_up) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(check_ms));
    }
    if (!rep.ok() || !agent.Current()) {
      std::cerr << "device_placement: round " << round << ": no new placement within " << wait_s
                << " s\n";
      return 1;
    }
    // Inferences on the new placement.
    auto placed = agent.Current();
    const double device_w = c.device_power_w;
    double cost_sum = 0;
    int n_ok = 0, n_edge = 0;
    for (int i = 0; i < inferences; ++i) {
      torch::manual_seed(1000003 * seed + request_id);
      std::vector<int64_t> shape{1};
      for (int64_t d : placed->net->input_shape()) shape.push_back(d);
      at::Tensor x = torch::randn(shape);
      auto r = RunPlaced(
          *placed, x, [&] { return uplink.ObservedRate(); }, &edge, slowdown, request_id++);
      if (!r.ok() && r.status().code() == StatusCode::kNotFound) {
        // The edge retired our version: re-plan, then run this inference on the new one.
        std::cerr << "device_placement: " << r.status().message() << "\n";
        if (agent.Update().ok()) placed = agent.Current();
        r = RunPlaced(
            *placed, x, [&] { return uplink.ObservedRate(); }, &edge, slowdown, request_id++);
      }
      if (!r.ok()) {
        ++failures;
        std::cerr << "device_placement: inference failed: " << r.status() << "\n";
        continue;
      }
      const double cost = (c.w_energy * device_w + c.w_time) * r->device_s +
                          (c.w_energy * c.p_tx_w + c.w_time) * r->send_s +
                          c.w_time * r->edge_wait_s;
      cost_sum += cost;
      ++n_ok;
      n_edge += r->on_edge;
      if (ledger.is_open()) {
        json rec{{"round", round},
                 {"version", r->version},
                 {"m", placed->m},
                 {"boundary", r->boundary},
                 {"on_edge", r->on_edge},
                 {"cost", cost},
                 {"device_s", r->device_s},
                 {"send_s", r->send_s},
                 {"edge_wait_s", r->edge_wait_s},
                 {"bytes_sent", r->bytes_sent}};
        ledger << rec.dump() << "\n";
      }
    }
    const UpdateReport& u = *rep;
    const double pred_download_s =
        8.0 * static_cast<double>(u.plan.download_bytes()) / std::max(1.0, c.downlink_bps);
    json row{{"round", round},
             {"version", placed->version},
             {"m", placed->m},
             {"units", placed->net->num_units()},
             {"changed", u.changed},
             {"bytes_downloaded", u.bytes_downloaded},
             {"planned_bytes", u.plan.download_bytes()},
             {"chunks_refused", u.chunks_refused},
             {"chunks_resumed", u.chunks_resumed},
             {"reconnects", u.reconnects},
             {"interruptions", u.interruptions},
             {"download_s", u.download_s},
             {"predicted_download_s", pred_download_s},
             {"download_energy_j", u.download_energy_j},
             {"download_cost", u.download_cost},
             {"predicted_download_cost", u.plan.download_cost()},
             {"mean_inference_cost", n_ok ? cost_sum / n_ok : NAN},
             {"predicted_inference_cost", u.plan.inference_cost()},
             {"objective", u.plan.objective()},
             {"inferences", n_ok},
             {"on_edge", n_edge},
             {"planner_us", u.plan.planner_us()},
             {"plan_ms", u.plan_ms},
             {"swap_ms", u.swap_ms}};
    if (as_json) {
      std::cout << row.dump() << std::endl;
    } else {
      std::cout << std::fixed << std::setprecision(3) << std::setw(5) << round << std::setw(9)
                << placed->version << std::setw(5) << placed->m << std::setw(10)
                << u.bytes_downloaded / 1e6 << std::setw(12) << u.download_s << std::setw(8)
                << pred_download_s << std::setw(10) << u.download_energy_j << std::setw(6)
                << u.download_cost << std::setw(8) << u.plan.download_cost() << std::setw(12)
                << (n_ok ? cost_sum / n_ok : NAN) << std::setw(8) << u.plan.inference_cost()
                << std::setw(3) << n_ok << std::setw(6) << n_edge << std::setw(12)
                << u.plan.planner_us() << std::endl;
    }
  }
  return failures == 0 ? 0 : 1;
}

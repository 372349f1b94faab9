// split_sim: scores the splitting policies of the decision core on one channel (issue 4).
//
//   split_sim --model resnet18 --channel rayleigh:snr_db=10 --policies all --episodes 10000
//             --seed 1 --json   (one command line)
//
// --model takes data/profiles/<model>.json when it exists (relative to the working directory),
// else the analytic profile of zoo_profiles.h; --profile FILE names a profile directly. Channel
// specs: rayleigh:snr_db=X, gauss-markov:snr_db=X,doppler_hz=Y, trace:<file>, markov-fit:<file>.
// JSON on stdout with --json, a table otherwise; progress goes to stderr.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <set>
#include <sstream>

#include <CLI/CLI.hpp>

#include "common/cli_parse.h"
#include "common/decision/robust_cli.h"
#include "common/decision/simulator.h"
#include "common/decision/zoo_profiles.h"

namespace sd = splitinfer::decision;

int main(int argc, char** argv) {
  CLI::App app{"Score device-edge splitting policies (BI, OLA, baselines, oracle) on a channel"};
  std::string model = "resnet18", profile_path, config_path, channel_text, policies = "all";
  sd::SimOptions sim;
  std::string pricing = "expected";
  double storage_mb = -1, slowdown = -1, edge_speedup = -1, w_energy = -1, w_time = -1;
  double downlink_mbps = -1, grid_ms = sim.grid_s * 1e3, window_ms = sim.observe_window_s * 1e3;
  double bandwidth_mhz = sim.bandwidth_hz / 1e6;
  bool json = false, quiet = false;
  app.add_option("--model", model, "zoo model (alexnet, vgg16, resnet18, mobilenetv2, mlp)");
  app.add_option("--profile", profile_path, "profile JSON written by profile_model");
  app.add_option("--config", config_path, "cost options JSON (keys of CostOptions)");
  app.add_option("--channel", channel_text,
                 "rayleigh:snr_db=X | gauss-markov:snr_db=X,doppler_hz=Y | trace:FILE | "
                 "markov-fit:FILE")
      ->required();
  app.add_option("--policies", policies,
                 "all, or a comma list of bi,bi-textbook,ola,greedy,neurosurgeon,best-fixed,"
                 "all-edge,all-local (the oracle is always shown; bi is the robust splitter)");
  app.add_option("--episodes", sim.episodes, "inferences simulated")
      ->check(CLI::Range(1, 100000000));
  app.add_option("--seed", sim.seed, "random seed");
  app.add_option("--states", sim.num_states, "K, channel states")->check(CLI::Range(1, 4096));
  app.add_option("--bandwidth-mhz", bandwidth_mhz,
                 "Shannon bandwidth (rayleigh, gauss-markov, UCC SNR)");
  app.add_option("--grid-ms", grid_ms, "rate-series step");
  app.add_option("--window-ms", window_ms, "observation window of the device");
  std::string ucc_column = "snr";
  app.add_option("--ucc-column", ucc_column,
                 "UCC 5G rate: snr (Shannon at --bandwidth-mhz), ul or dl (bitrate columns)")
      ->check(CLI::IsMember({"snr", "ul", "dl"}));
  double long_window_ms = 0;
  app.add_option("--long-window-ms", long_window_ms,
                 "> 0: the state pairs the short-window rate with the rate over this window");
  app.add_option("--long-states", sim.long_states, "states of the long-window rate")
      ->check(CLI::Range(1, 64));
  app.add_option("--fit-fraction", sim.fit_fraction, "share of a series used to fit");
  app.add_option("--rate-scale", sim.transfer_scale, "multiplies every trace rate");
  app.add_option("--pricing", pricing, "expected (transfer time learned per state) | instant")
      ->check(CLI::IsMember({"expected", "instant"}));
  app.add_option("--slowdown", slowdown, "device time / profile time (overrides --config)");
  app.add_option("--edge-speedup", edge_speedup, "profile time / edge time (overrides --config)");
  app.add_option("--w-energy", w_energy, "weight of a joule (overrides --config)");
  app.add_option("--w-time", w_time, "weight of a second (overrides --config)");
  app.add_option("--inferences-per-version", sim.placement.inferences_per_version,
                 "R, for the placement M*");
  app.add_option("--storage-mb", storage_mb, "device storage budget for the placement");
  app.add_option("--downlink-mbps", downlink_mbps, "placement download rate (overrides --config)");
  std::string codecs_path;
  double min_agreement = -1, fidelity_weight = -1;
  app.add_option("--codecs", codecs_path,
                 "codec profile JSON (codec_fidelity): the tensor may also be sent fp16/int8/"
                 "+zstd, the option chosen with the boundary");
  app.add_option("--min-agreement", min_agreement,
                 "codecs below this top-1 agreement with float32 are not used (overrides --config)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--fidelity-weight", fidelity_weight,
                 "cost per unit of lost top-1 agreement (overrides --config)")
      ->check(CLI::Range(0.0, 1e9));
  sd::AddRobustOptions(app, &sim.robust);
  app.add_flag("--json", json, "JSON on stdout");
  app.add_flag("--quiet", quiet, "no progress on stderr");
  SPLITINFER_CLI_PARSE(app, argc, argv);

  auto fail = [](const splitinfer::Status& s) {
    std::cerr << "split_sim: " << s << "\n";
    return 1;
  };
  // Profile.
  splitinfer::Result<sd::ModelProfile> profile = splitinfer::NotFoundError("no profile");
  if (!profile_path.empty()) {
    profile = sd::LoadProfile(profile_path);
  } else if (std::filesystem::exists("data/profiles/" + model + ".json")) {
    profile = sd::LoadProfile("data/profiles/" + model + ".json");
  } else {
    profile = sd::AnalyticProfile(model);
    if (profile.ok() && !quiet)
      std::cerr << "split_sim: no data/profiles/" << model << ".json, using the analytic profile\n";
  }
  if (!profile.ok()) return fail(profile.status());
  // Cost options.
  sd::CostOptions options;
  if (!config_path.empty()) {
    splitinfer::Result<sd::CostOptions> loaded = sd::CostOptions::Load(config_path);
    if (!loaded.ok()) return fail(loaded.status());
    options = *loaded;
  }
  if (slowdown >= 0) options.device_slowdown = slowdown;
  if (edge_speedup >= 0) options.edge_speedup = edge_speedup;
  if (w_energy >= 0) options.w_energy = w_energy;
  if (w_time >= 0) options.w_time = w_time;
  if (downlink_mbps >= 0) options.downlink_bps = downlink_mbps * 1e6;
  if (min_agreement >= 0) options.min_agreement = min_agreement;
  if (fidelity_weight >= 0) options.fidelity_weight = fidelity_weight;
  std::vector<sd::WireOption> codecs;
  if (!codecs_path.empty()) {
    splitinfer::Result<std::vector<sd::WireOption>> loaded =
        sd::LoadCodecProfile(codecs_path, profile->num_units());
    if (!loaded.ok()) return fail(loaded.status());
    codecs = std::move(*loaded);
  }
  splitinfer::Result<sd::CostModel> cost =
      sd::CostModel::Create(*profile, options, std::move(codecs));
  if (!cost.ok()) return fail(cost.status());
  // Channel and simulation.
  splitinfer::Result<sd::ChannelSpec> channel = sd::ChannelSpec::Parse(channel_text);
  if (!channel.ok()) return fail(channel.status());
  sim.bandwidth_hz = bandwidth_mhz * 1e6;
  sim.grid_s = grid_ms * 1e-3;
  sim.observe_window_s = window_ms * 1e-3;
  sim.long_window_s = long_window_ms * 1e-3;
  sim.ucc_column = ucc_column == "ul"   ? sd::UccColumn::kUplinkBitrate
                   : ucc_column == "dl" ? sd::UccColumn::kDownlinkBitrate
                                        : sd::UccColumn::kSnrShannon;
  sim.pricing = pricing == "instant" ? sd::Pricing::kInstantRate : sd::Pricing::kExpectedTransfer;
  if (storage_mb >= 0) sim.placement.storage_budget_bytes = static_cast<int64_t>(storage_mb * 1e6);
  if (!quiet && sim.episodes >= 20000)
    sim.progress = [](int done, int total) {
      std::fprintf(stderr, "\rsimulating %3d%%", static_cast<int>(100.0 * done / total));
      if (done == total) std::fprintf(stderr, "\n");
    };
  splitinfer::Result<sd::SimResult> result = sd::RunSimulation(*cost, *channel, sim);
  if (!result.ok()) return fail(result.status());
  // Policy filter (the oracle always stays).
  if (policies != "all") {
    std::set<std::string> keep = {"oracle"};
    std::stringstream ss(policies);
    std::string name;
    while (std::getline(ss, name, ',')) keep.insert(name);
    const std::set<std::string> known = {"oracle",     "bi",       "bi-textbook",
                                         "ola",        "greedy",   "neurosurgeon",
                                         "best-fixed", "all-edge", "all-local"};
    for (const std::string& k : keep)
      if (!known.count(k))
        return fail(splitinfer::InvalidArgumentError("unknown policy '" + k + "'"));
    std::vector<sd::PolicyStats> kept;
    for (const sd::PolicyStats& s : result->policies)
      if (keep.count(s.name)) kept.push_back(s);
    result->policies = kept;
  }
  if (json) {
    nlohmann::json j = sd::ToJson(*result);
    // The BI plan's two terms per M (null over the storage budget), so that a sweep can show
    // where M* steps (scripts/placement_sweep.sh); ToJson carries only their sum.
    auto finite = [](const std::vector<double>& v) {
      nlohmann::json a = nlohmann::json::array();
      for (double x : v) a.push_back(std::isfinite(x) ? nlohmann::json(x) : nlohmann::json());
      return a;
    };
    j["placement"]["inference_cost"] = finite(result->placement.inference_cost);
    j["placement"]["download_cost"] = finite(result->placement.download_cost);
    std::cout << j.dump(2) << "\n";
  } else
    std::cout << sd::ToTable(*result);
  return 0;
}

// exits_sim: scores the controllers over (exit thresholds, split point) of issue 9 on one rate
// series: optimal stopping with exits (os), the DDPG agent (rl), a common fixed threshold with the
// best fixed split (fixed) and the plain BI splitter without exits (bi).
//
//   exits_sim --stats data/exits/digits_branchy_stats.json
//             --profile data/profiles/digits_branchy.json --channel trace:data/traces/norway_car_7
//             --controllers os,rl,fixed,bi --episodes 20000 --seed 1 --accuracy-weight 0.01 --json
//
// The series is fitted on its first part and scored on the rest; the held-out samples are split
// in two: the first part calibrates os/fixed and trains rl, the rest is scored. JSON on stdout
// with --json, a table otherwise; progress goes to stderr.
#include <cmath>
#include <iomanip>
#include <iostream>
#include <limits>
#include <memory>
#include <sstream>

#include <CLI/CLI.hpp>

#include "common/cli_parse.h"
#include "common/decision/exits.h"
#include "common/decision/exits_factory.h"
#include "common/decision/exits_rl.h"

namespace sd = splitinfer::decision;

namespace {

nlohmann::json Num(double v) {
  if (std::isfinite(v)) return v;
  return nullptr;
}

nlohmann::json ThresholdsJson(const sd::Thresholds& t) {
  nlohmann::json j = nlohmann::json::array();
  for (size_t e = 0; e + 1 < t.size(); ++e) j.push_back(Num(t[e]));  // null: off
  return j;
}

int Fail(const splitinfer::Status& s) {
  std::cerr << "exits_sim: " << s.ToString() << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Score exit-threshold and split controllers (os, rl, fixed, bi) on a rate series"};
  std::string stats_path = "data/exits/digits_branchy_stats.json";
  std::string profile_path = "data/profiles/digits_branchy.json", config_path, channel_text;
  std::string controllers = "os,rl,fixed,bi", grid_text;
  int episodes = 20000;
  uint64_t seed = 1;
  double accuracy_weight = 0.01, fixed_threshold = std::numeric_limits<double>::quiet_NaN();
  double slowdown = -1, w_energy = -1, w_time = -1, edge_speedup = -1;
  bool json = false, per_state = false, cross_fit = false;
  sd::ExitWorldOptions wo;
  sd::DdpgOptions ddpg;
  app.add_option("--stats", stats_path, "exit statistics JSON (part A's schema)");
  app.add_option("--profile", profile_path, "per-unit profile JSON (profile_model schema)");
  app.add_option("--config", config_path, "cost options JSON (keys of CostOptions)");
  app.add_option("--channel", channel_text,
                 "trace:FILE (i.i.d. law) | markov-fit:FILE | gauss-markov:snr_db=X,doppler_hz=Y")
      ->required();
  app.add_option("--controllers", controllers, "comma list of os, rl, fixed, bi");
  app.add_option("--episodes", episodes, "inferences scored")->check(CLI::Range(1, 100000000));
  app.add_option("--seed", seed, "seed of the scoring draws and of the RL training");
  app.add_option("--accuracy-weight", accuracy_weight,
                 "cost of one wrong answer (cost units; seconds with the default weights)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--fixed-threshold", fixed_threshold,
                 "fix the common threshold of 'fixed' (default: best of the grid); > 1: off");
  app.add_option("--grid", grid_text, "threshold grid, comma list (default 0.5,...,0.99,off)");
  app.add_flag("--cross-fit", cross_fit,
               "two folds: calibrate on one half of the samples, score the other, swap, average");
  std::string error_text = "labels";
  app.add_option("--error-estimate", error_text,
                 "how os/fixed estimate wrong answers: labels (of the calibration samples) or "
                 "confidence (1 - conf of the answering head)")
      ->check(CLI::IsMember({"labels", "confidence"}));
  app.add_flag("--per-state", per_state,
               "os: thresholds chosen per channel state at boundary 0 (default: one vector)");
  app.add_option("--states", wo.num_states, "K, channel states")->check(CLI::Range(1, 1024));
  app.add_option("--rate-scale", wo.rate_scale, "multiplies every trace rate");
  app.add_option("--fit-fraction", wo.fit_fraction, "share of the series used to fit");
  app.add_option("--calib-fraction", wo.calib_fraction, "share of the samples used to fit");
  app.add_option("--slowdown", slowdown, "device time / profile time (overrides --config)");
  app.add_option("--edge-speedup", edge_speedup, "profile time / edge time (overrides --config)");
  app.add_option("--w-energy", w_energy, "weight of a joule (overrides --config)");
  app.add_option("--w-time", w_time, "weight of a second (overrides --config)");
  app.add_option("--train-steps", ddpg.train_steps, "rl: inferences simulated in training");
  app.add_option("--warmup", ddpg.warmup, "rl: random actions before learning");
  app.add_option("--hidden", ddpg.hidden, "rl: width of the two hidden layers");
  app.add_option("--gamma", ddpg.gamma, "rl: discount");
  app.add_option("--eval-every", ddpg.eval_every, "rl: snapshot check period (0: keep last)");
  app.add_flag("--json", json, "JSON on stdout");
  SPLITINFER_CLI_PARSE(app, argc, argv);

  std::vector<double> grid = sd::DefaultThresholdGrid();
  if (!grid_text.empty()) {
    grid.clear();
    std::istringstream in(grid_text);
    std::string item;
    while (std::getline(in, item, ',')) {
      if (item == "off") {
        grid.push_back(sd::kExitOff);
        continue;
      }
      char* end = nullptr;
      const double v = std::strtod(item.c_str(), &end);
      if (item.empty() || *end != '\0' || !(v >= 0))
        return Fail(splitinfer::InvalidArgumentError("--grid: bad value '" + item + "'"));
      grid.push_back(v > 1 ? sd::kExitOff : v);
    }
  }
  sd::CostOptions co;
  if (!config_path.empty()) {
    auto c = sd::CostOptions::Load(config_path);
    if (!c.ok()) return Fail(c.status());
    co = *c;
  }
  if (slowdown > 0) co.device_slowdown = slowdown;
  if (edge_speedup > 0) co.edge_speedup = edge_speedup;
  if (w_energy >= 0) co.w_energy = w_energy;
  if (w_time >= 0) co.w_time = w_time;
  auto profile = sd::LoadProfile(profile_path);
  if (!profile.ok()) return Fail(profile.status());
  auto cost = sd::CostModel::Create(*profile, co);
  if (!cost.ok()) return Fail(cost.status());
  auto stats = sd::LoadExitStats(stats_path);
  if (!stats.ok()) return Fail(stats.status());
  auto channel = sd::ChannelSpec::Parse(channel_text);
  if (!channel.ok()) return Fail(channel.status());
  wo.seed = seed;
  ddpg.seed = seed;
  int num_states = 0;
  size_t calib_samples = 0, eval_samples = 0;
  // One fold: build the world (calibration / scored samples), the controllers, score them.
  auto run_fold = [&](bool swap,
                      int fold_episodes) -> splitinfer::Result<std::vector<sd::ControllerStats>> {
    sd::ExitWorldOptions fo = wo;
    fo.swap_samples = swap;
    auto world = sd::BuildExitWorld(
        *cost, *stats, accuracy_weight, *channel, fo,
        error_text == "confidence" ? sd::ErrorEstimate::kConfidence : sd::ErrorEstimate::kLabels);
    if (!world.ok()) return world.status();
    const sd::ExitModel& model = *world->model;
    num_states = world->base.num_states();
    calib_samples += world->calib.size();
    eval_samples += world->eval.size();
    sd::ExitControllerOptions copts;
    copts.grid = grid;
    if (!std::isnan(fixed_threshold))
      copts.fixed_grid = std::vector<double>{fixed_threshold > 1 ? sd::kExitOff : fixed_threshold};
    copts.per_state = per_state;
    copts.ddpg = ddpg;
    copts.before_build = [&](const std::string& name) {
      if (name == "rl")
        std::cerr << "exits_sim: training DDPG (" << ddpg.train_steps << " steps) on "
                  << channel_text << "\n";
    };
    auto built = sd::MakeExitControllers(*world, controllers, copts);
    if (!built.ok()) return built.status();
    std::vector<nlohmann::json> info;
    std::vector<double> expected, train_s;
    std::vector<sd::ExitController*> ptrs;
    for (const sd::BuiltExitController& b : *built) {
      nlohmann::json extra;
      if (b.name == "os") {
        extra["combinations"] = b.os.combinations;
        for (const auto& t : b.os.thresholds) extra["thresholds"].push_back(ThresholdsJson(t));
      } else if (b.name == "fixed") {
        extra["threshold"] = Num(b.fixed.threshold);
        extra["boundary"] = b.fixed.boundary;
      } else if (b.name == "rl") {
        extra["updates"] = b.ddpg.updates;
        extra["best_eval_cost"] = b.ddpg.best_eval_cost;
        extra["best_eval_step"] = b.ddpg.best_eval_step;
        extra["train_steps"] = ddpg.train_steps;
      }
      info.push_back(extra);
      expected.push_back(b.expected_cost);
      train_s.push_back(b.name == "rl" ? b.ddpg.train_s : 0.0);
      ptrs.push_back(b.controller.get());
    }
    std::vector<sd::ControllerStats> r =
        sd::EvaluateControllers(model, *world->score, world->eval, ptrs, fold_episodes, seed);
    for (size_t i = 0; i < r.size(); ++i) {
      r[i].expected_cost = expected[i];
      r[i].train_s = train_s[i];
      r[i].extra = info[i];
    }
    return r;
  };
  std::vector<sd::ControllerStats> res;
  if (!cross_fit) {
    auto r = run_fold(false, episodes);
    if (!r.ok()) return Fail(r.status());
    res = std::move(*r);
  } else {
    // Two folds: calibrate on one half of the samples and score the other, then swap; the
    // figures are the means of the two folds (each scores episodes / 2 inferences).
    auto a = run_fold(false, std::max(1, episodes / 2));
    if (!a.ok()) return Fail(a.status());
    auto b = run_fold(true, std::max(1, episodes - episodes / 2));
    if (!b.ok()) return Fail(b.status());
    res = std::move(*a);
    for (size_t i = 0; i < res.size(); ++i) {
      sd::ControllerStats& x = res[i];
      const sd::ControllerStats& y = (*b)[i];
      x.accuracy = (x.accuracy + y.accuracy) / 2;
      x.mean_latency_ms = (x.mean_latency_ms + y.mean_latency_ms) / 2;
      x.mean_energy_mj = (x.mean_energy_mj + y.mean_energy_mj) / 2;
      x.mean_cost = (x.mean_cost + y.mean_cost) / 2;
      x.ci95 = std::sqrt(x.ci95 * x.ci95 + y.ci95 * y.ci95) / 2;
      x.share_local = (x.share_local + y.share_local) / 2;
      x.mean_offload_boundary = std::isnan(x.mean_offload_boundary) ? y.mean_offload_boundary
                                : std::isnan(y.mean_offload_boundary)
                                    ? x.mean_offload_boundary
                                    : (x.mean_offload_boundary + y.mean_offload_boundary) / 2;
      for (size_t e = 0; e < x.exit_counts.size(); ++e) x.exit_counts[e] += y.exit_counts[e];
      x.expected_cost = (x.expected_cost + y.expected_cost) / 2;
      x.train_s += y.train_s;
      x.extra = nlohmann::json{{"fold0", x.extra}, {"fold1", y.extra}};
    }
  }
  std::vector<double> expected, train_s;
  std::vector<nlohmann::json> info;
  for (const sd::ControllerStats& c : res) {
    expected.push_back(c.expected_cost);
    train_s.push_back(c.train_s);
    info.push_back(c.extra);
  }

  if (json) {
    nlohmann::json j;
    j["model"] = stats->model;
    j["channel"] = channel_text;
    j["accuracy_weight"] = accuracy_weight;
    j["episodes"] = episodes;
    j["seed"] = seed;
    j["num_states"] = num_states;
    j["cross_fit"] = cross_fit;
    j["error_estimate"] = error_text;
    j["calib_samples"] = calib_samples;
    j["eval_samples"] = eval_samples;
    j["cost_options"] = co.ToJson();
    for (size_t i = 0; i < res.size(); ++i) {
      const sd::ControllerStats& s = res[i];
      nlohmann::json c = {{"name", s.name},
                          {"accuracy", s.accuracy},
                          {"mean_latency_ms", s.mean_latency_ms},
                          {"mean_energy_mj", s.mean_energy_mj},
                          {"mean_cost", s.mean_cost},
                          {"ci95", s.ci95},
                          {"share_local", s.share_local},
                          {"mean_offload_boundary", Num(s.mean_offload_boundary)},
                          {"exit_counts", s.exit_counts},
                          {"expected_cost", Num(expected[i])},
                          {"train_s", train_s[i]},
                          {"info", info[i]}};
      j["controllers"].push_back(c);
    }
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << "model " << stats->model << ", channel " << channel_text << ", accuracy weight "
            << accuracy_weight << ", " << episodes << " inferences, K = " << num_states
            << (cross_fit ? ", two-fold cross-fit" : "") << "\n";
  std::cout << std::left << std::setw(8) << "ctrl" << std::right << std::setw(10) << "accuracy"
            << std::setw(14) << "latency ms" << std::setw(13) << "energy mJ" << std::setw(12)
            << "cost" << std::setw(11) << "+-95%" << std::setw(12) << "model E" << std::setw(9)
            << "local" << std::setw(10) << "train s"
            << "\n"
            << std::fixed;
  for (size_t i = 0; i < res.size(); ++i) {
    const sd::ControllerStats& s = res[i];
    std::cout << std::left << std::setw(8) << s.name << std::right << std::setprecision(4)
              << std::setw(10) << s.accuracy << std::setw(14) << s.mean_latency_ms << std::setw(13)
              << s.mean_energy_mj << std::setprecision(6) << std::setw(12) << s.mean_cost
              << std::setw(11) << s.ci95 << std::setw(12);
    if (std::isfinite(expected[i]))
      std::cout << expected[i];
    else
      std::cout << "-";
    std::cout << std::setprecision(1) << std::setw(8) << 100 * s.share_local << "%"
              << std::setprecision(2) << std::setw(10) << train_s[i] << "\n";
  }
  return 0;
}

// exits_client: the early-exit controllers of issue 9, live. A device process that runs
// digits_branchy (common/exits/) on held-out digits, decides per inference the exit thresholds
// and, unit by unit, whether to offload, with one of the controllers of common/decision/exits.h
// (os: optimal stopping with exits, rl: the DDPG agent, fixed: a common threshold and a fixed
// split, bi: the plain splitter without exits), and offloads to a real edge_server, which runs the
// rest of the chain with the same thresholds and says which exit answered.
//
//   edge_server --models digits_branchy=models/digits_branchy.pt --listen 127.0.0.1:0
//   exits_client --server 127.0.0.1:PORT --weights models/digits_branchy.pt
//                --channel trace:data/traces/norway_car_7 --controllers os,rl,fixed,bi
//                --episodes 300 --json-out ledger.jsonl --summary-json summary.json
//
// What is real and what is emulated: the units, the exit heads, their confidences and answers,
// the tensors sent and the edge's compute are real (device and edge on this machine); the
// device's slowness (--slowdown x the measured time of each unit and head) and the uplink (the
// transfer time of the boundary tensor on the trace, from the same path the simulator scores)
// are emulated, as in exits_sim, whose episodes (start step on the trace, held-out sample) this
// program draws the same way from --seed. Each inference also gets the simulator's figures for
// the same decisions (ExitModel::RunPlan), so live and simulated costs sit side by side.
//
// When the edge cannot be reached or the connection breaks, the device finishes the inference
// locally (completed_on "fallback_local"): no inference is lost.
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <c10/core/InferenceMode.h>
#include <torch/torch.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/cli_parse.h"
#include "common/decision/exits.h"
#include "common/decision/exits_factory.h"
#include "common/decision/exits_rl.h"
#include "common/decision/simulator.h"
#include "common/exits/branchy_model.h"
#include "common/exits/digits.h"
#include "common/log.h"
#include "common/status.h"
#include "device/edge_client.h"

namespace sd = splitinfer::decision;
namespace ex = splitinfer::exits;
using splitinfer::Result;
using splitinfer::Status;

namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

nlohmann::json Num(double v) {
  if (std::isfinite(v)) return v;
  return nullptr;
}

// The wire's thresholds (common/exits: > 1 disables) from a controller's (+inf disables).
std::vector<double> WireThresholds(const sd::Thresholds& t) {
  std::vector<double> out(t.size());
  for (size_t e = 0; e < t.size(); ++e) out[e] = t[e] <= 1.0 ? t[e] : ex::kExitDisabled;
  return out;
}

struct Options {
  std::string server;
  std::string weights;
  std::string data = "data/digits/digits.csv.gz";
  uint64_t split_seed = 1;  // the data split the stats were made on (train_exits --seed)
  std::string stats = "data/exits/digits_branchy_stats.json";
  std::string profile = "data/profiles/digits_branchy.json";
  std::string channel;
  std::string controllers = "os,rl,fixed,bi";
  int episodes = 200;
  uint64_t seed = 1;
  double accuracy_weight = 0.01;
  double slowdown = -1, edge_speedup = -1, w_energy = -1, w_time = -1;
  std::string config;
  int io_timeout_ms = 5000;
  std::string json_out;
  std::string summary_json;
  sd::ExitWorldOptions world;
  sd::DdpgOptions ddpg;
};

// What one live inference did.
struct LiveOutcome {
  sd::InferenceOutcome outcome;  // latency, energy, cost as measured (device time x slowdown)
  std::string completed_on;      // device_exit | device_final | edge | fallback_local
  double device_s = 0.0, transfer_s = 0.0, edge_s = 0.0;
  std::string fallback;
};

class LiveRunner {
 public:
  LiveRunner(const Options& o, std::shared_ptr<ex::BranchyModel> model, const sd::ExitWorld& world,
             std::unique_ptr<splitinfer::EdgeClient> client)
      : o_(o), model_(std::move(model)), world_(world), client_(std::move(client)) {
    const sd::CostModel& cost = world_.model->cost();
    power_w_ = cost.DeviceEnergy(1) / cost.DeviceTime(1);
    slowdown_ = cost.options().device_slowdown;
  }

  LiveOutcome Run(const at::Tensor& image, int64_t label, const sd::ChannelPath& path,
                  sd::ExitController& controller, uint64_t request_id) {
    c10::InferenceMode guard;
    const sd::CostOptions& co = world_.model->cost().options();
    const int n = static_cast<int>(model_->num_units());
    const int ne = static_cast<int>(model_->num_exits());
    const sd::Thresholds& t = controller.Begin({0, path.state[0], path.rate_bps[0]});
    const std::vector<double> wire_t = WireThresholds(t);
    LiveOutcome r;
    r.outcome.offload_boundary = -1;
    at::Tensor x = ex::PrepareDigitsInput(image.unsqueeze(0), model_->options().input_size);
    at::Tensor logits;
    int answered = -1;
    for (int l = 0; l <= n && answered < 0; ++l) {
      if (l > 0) {
        auto t0 = Clock::now();
        x = model_->RunRange(x, static_cast<size_t>(l - 1), static_cast<size_t>(l));
        r.device_s += SecondsSince(t0) * slowdown_;
        const int e = ExitAt(l);
        if (e >= 0 && e < ne - 1 && sd::ExitActive(t, e, ne)) {
          t0 = Clock::now();
          auto head = model_->RunExit(static_cast<size_t>(e), x);
          const float conf =
              ex::BranchyModel::Confidence(*head, ex::ConfidenceKind::kMaxSoftmax).item<float>();
          r.device_s += SecondsSince(t0) * slowdown_;
          if (conf >= wire_t[e]) {
            answered = e;
            logits = *head;
            r.completed_on = "device_exit";
            break;
          }
        }
        if (l == n) {
          answered = ne - 1;
          logits = x;
          r.completed_on = "device_final";
          break;
        }
      }
      const double tx = path.transfer_s[l];
      if (!std::isfinite(tx)) continue;
      if (!controller.Offload({l, path.state[l], path.rate_bps[l]})) continue;
      r.outcome.offload_boundary = l;
      r.transfer_s = tx;
      Status st = Offload(x, l, wire_t, request_id, &logits, &answered, &r.edge_s);
      if (st.ok()) {
        r.completed_on = "edge";
      } else {
        // The edge is gone or refused: the device finishes from boundary l with the same
        // thresholds (and pays for the transfer it attempted).
        r.fallback = st.ToString();
        const auto t0 = Clock::now();
        auto rest = model_->RunWithExits(x, static_cast<size_t>(l), static_cast<size_t>(n), wire_t,
                                         ex::ConfidenceKind::kMaxSoftmax);
        r.device_s += SecondsSince(t0) * slowdown_;
        if (!rest.ok()) {
          std::cerr << "exits_client: local fallback failed: " << rest.status() << "\n";
          std::exit(1);
        }
        answered = rest->exit >= 0 ? rest->exit : ne - 1;
        logits = rest->tensor;
        r.completed_on = "fallback_local";
      }
      break;
    }
    sd::InferenceOutcome& out = r.outcome;
    out.exit = answered;
    out.correct = logits.argmax(1).item<int64_t>() == label;
    out.latency_s = r.device_s + r.transfer_s + r.edge_s;
    out.energy_j = power_w_ * r.device_s + co.p_tx_w * r.transfer_s;
    out.cost = co.w_energy * out.energy_j + co.w_time * out.latency_s +
               (out.correct ? 0.0 : world_.model->accuracy_weight());
    controller.Feedback(out);
    last_thresholds_ = t;
    return r;
  }

  const sd::Thresholds& last_thresholds() const { return last_thresholds_; }

 private:
  int ExitAt(int boundary) const {
    for (size_t e = 0; e < model_->num_exits(); ++e)
      if (static_cast<int>(model_->exit_after_unit(e)) == boundary) return static_cast<int>(e);
    return -1;
  }

  Status Offload(const at::Tensor& x, int boundary, const std::vector<double>& thresholds,
                 uint64_t request_id, at::Tensor* logits, int* exit, double* edge_s) {
    if (!client_->Reusable()) {
      client_->Close();
      Status st = client_->Connect();
      if (!st.ok()) return st;
    }
    splitinfer::wire::InferRequest req;
    req.set_request_id(request_id);
    req.set_model(model_->name());
    req.set_model_version(model_->version());
    req.set_boundary(static_cast<uint32_t>(boundary));
    for (double v : thresholds) req.add_exit_thresholds(static_cast<float>(v));
    req.set_exit_confidence(splitinfer::wire::EXIT_MAX_SOFTMAX);
    Status st = client_->SendRequest(req, x.contiguous());
    if (!st.ok()) {
      client_->Close();
      return st;
    }
    auto reply = client_->ReadReply();
    if (!reply.ok()) {
      client_->Close();
      return reply.status();
    }
    if (!reply->status.ok()) return reply->status;
    if (reply->request_id != request_id) {
      client_->Close();
      return splitinfer::InternalError("reply for request " + std::to_string(reply->request_id) +
                                       ", expected " + std::to_string(request_id));
    }
    *logits = reply->output;
    *exit = static_cast<int>(reply->exit_index);
    *edge_s = static_cast<double>(reply->edge_compute_us + reply->queue_us) * 1e-6;
    return Status::Ok();
  }

  const Options& o_;
  std::shared_ptr<ex::BranchyModel> model_;
  const sd::ExitWorld& world_;
  std::unique_ptr<splitinfer::EdgeClient> client_;
  double power_w_ = 0.0, slowdown_ = 1.0;
  sd::Thresholds last_thresholds_;
};

// The controllers named in `names`, fitted as exits_sim fits them (sd::MakeExitControllers: os
// and fixed on the calibration samples, rl trained on the fit part of the series).
Result<std::vector<std::unique_ptr<sd::ExitController>>> MakeControllers(
    const sd::ExitWorld& world, const std::string& names, const sd::DdpgOptions& ddpg,
    std::vector<nlohmann::json>* info) {
  sd::ExitControllerOptions options;
  options.ddpg = ddpg;
  auto built = sd::MakeExitControllers(world, names, options);
  if (!built.ok()) return built.status();
  std::vector<std::unique_ptr<sd::ExitController>> out;
  for (sd::BuiltExitController& b : *built) {
    nlohmann::json j;
    if (b.name == "rl") {
      j["train_s"] = b.ddpg.train_s;
      j["train_steps"] = ddpg.train_steps;
    } else {
      j["expected_cost"] = Num(b.expected_cost);
      if (b.name == "fixed") {
        j["threshold"] = Num(b.fixed.threshold);
        j["boundary"] = b.fixed.boundary;
      }
    }
    j["name"] = b.name;
    info->push_back(std::move(j));
    out.push_back(std::move(b.controller));
  }
  if (out.empty()) return splitinfer::InvalidArgumentError("no controllers given");
  return out;
}

int Fail(const Status& s) {
  std::cerr << "exits_client: " << s.ToString() << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Early-exit controllers live against an edge_server (issue 9)"};
  Options o;
  app.add_option("--server", o.server, "HOST:PORT of an edge_server serving digits_branchy")
      ->required();
  app.add_option("--weights", o.weights, "digits_branchy weights (build/bin/train_exits --out)")
      ->required();
  app.add_option("--data", o.data, "the digits file (data/digits/digits.csv.gz)");
  app.add_option("--split-seed", o.split_seed, "seed of the train/test split (train_exits --seed)");
  app.add_option("--stats", o.stats, "exit statistics JSON the controllers are fitted on");
  app.add_option("--profile", o.profile, "per-unit profile JSON");
  app.add_option("--config", o.config, "cost options JSON (keys of CostOptions)");
  app.add_option("--channel", o.channel, "trace:FILE | markov-fit:FILE | gauss-markov:...")
      ->required();
  app.add_option("--controllers", o.controllers, "comma list of os, rl, fixed, bi");
  app.add_option("--episodes", o.episodes, "inferences per controller")
      ->check(CLI::Range(1, 1000000));
  app.add_option("--seed", o.seed, "seed of the episode draws and of the RL training");
  app.add_option("--accuracy-weight", o.accuracy_weight, "cost of one wrong answer")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--slowdown", o.slowdown, "device time / measured time (overrides --config)");
  app.add_option("--edge-speedup", o.edge_speedup, "for the controllers' edge times");
  app.add_option("--w-energy", o.w_energy, "weight of a joule (overrides --config)");
  app.add_option("--w-time", o.w_time, "weight of a second (overrides --config)");
  app.add_option("--states", o.world.num_states, "K, channel states")->check(CLI::Range(1, 1024));
  app.add_option("--rate-scale", o.world.rate_scale, "multiplies every trace rate");
  app.add_option("--train-steps", o.ddpg.train_steps, "rl: inferences simulated in training");
  app.add_option("--io-timeout-ms", o.io_timeout_ms, "deadline of each exchange with the edge")
      ->check(CLI::Range(1, 600000));
  app.add_option("--json-out", o.json_out, "one JSON line per inference into this file");
  app.add_option("--summary-json", o.summary_json, "per-controller summary as JSON");
  SPLITINFER_CLI_PARSE(app, argc, argv);
  splitinfer::log::SetName("exits_client");
  at::set_num_threads(1);

  // The model and the held-out samples, in the order of the stats.
  auto model = ex::LoadBranchyModel(o.weights);
  if (!model.ok()) return Fail(model.status());
  auto all = ex::LoadDigits(o.data);
  if (!all.ok()) return Fail(all.status());
  auto split = ex::SplitDigits(*all, o.split_seed);
  if (!split.ok()) return Fail(split.status());

  sd::CostOptions co;
  if (!o.config.empty()) {
    auto c = sd::CostOptions::Load(o.config);
    if (!c.ok()) return Fail(c.status());
    co = *c;
  }
  if (o.slowdown > 0) co.device_slowdown = o.slowdown;
  if (o.edge_speedup > 0) co.edge_speedup = o.edge_speedup;
  if (o.w_energy >= 0) co.w_energy = o.w_energy;
  if (o.w_time >= 0) co.w_time = o.w_time;
  auto profile = sd::LoadProfile(o.profile);
  if (!profile.ok()) return Fail(profile.status());
  auto cost = sd::CostModel::Create(*profile, co);
  if (!cost.ok()) return Fail(cost.status());
  auto stats = sd::LoadExitStats(o.stats);
  if (!stats.ok()) return Fail(stats.status());
  if (static_cast<int64_t>(stats->samples.size()) != split->test.size()) {
    return Fail(splitinfer::InvalidArgumentError(
        o.stats + " has " + std::to_string(stats->samples.size()) +
        " samples, the held-out split of " + o.data + " (seed " + std::to_string(o.split_seed) +
        ") has " + std::to_string(split->test.size())));
  }
  for (size_t i = 0; i < stats->samples.size(); ++i) {
    if (stats->samples[i].label != split->test.labels[static_cast<int64_t>(i)].item<int64_t>()) {
      return Fail(splitinfer::InvalidArgumentError(
          "held-out sample " + std::to_string(i) + " has another label in " + o.stats +
          ": the stats were made on another split (--split-seed)"));
    }
  }
  auto channel = sd::ChannelSpec::Parse(o.channel);
  if (!channel.ok()) return Fail(channel.status());
  o.world.seed = o.seed;
  o.ddpg.seed = o.seed;
  auto world = sd::BuildExitWorld(*cost, *stats, o.accuracy_weight, *channel, o.world);
  if (!world.ok()) return Fail(world.status());
  std::vector<nlohmann::json> info;
  auto controllers = MakeControllers(*world, o.controllers, o.ddpg, &info);
  if (!controllers.ok()) return Fail(controllers.status());

  splitinfer::EdgeClientOptions eo;
  if (Status ps = splitinfer::ParseHostPort(o.server, &eo.host, &eo.port); !ps.ok()) {
    return Fail(ps);
  }
  eo.io_timeout = std::chrono::milliseconds(o.io_timeout_ms);
  eo.client_name = "exits_client";
  auto client = std::make_unique<splitinfer::EdgeClient>(eo);
  if (Status cs = client->Connect(); !cs.ok()) {
    std::cerr << "exits_client: edge not reachable (" << cs
              << "); inferences that offload finish locally\n";
  }
  LiveRunner runner(o, *model, *world, std::move(client));

  std::ofstream ledger;
  if (!o.json_out.empty()) {
    ledger.open(o.json_out);
    if (!ledger) return Fail(splitinfer::InvalidArgumentError("cannot write " + o.json_out));
  }
  const sd::ExitStats& es = world->model->stats();
  nlohmann::json summary = nlohmann::json::array();
  uint64_t request_id = 0;
  std::cout << "controller | accuracy | latency ms | energy mJ | cost | sim cost (same decisions) "
               "| on device | on edge | fallback\n";
  for (size_t c = 0; c < controllers->size(); ++c) {
    sd::ExitController& controller = *(*controllers)[c];
    // The episodes of exits_sim's EvaluateControllers: start step, then sample, from one stream.
    std::mt19937_64 rng(o.seed);
    std::uniform_int_distribution<size_t> start(0, world->score->size() - 1);
    std::uniform_int_distribution<size_t> pick(0, world->eval.size() - 1);
    double sum_cost = 0, sum_sim = 0, sum_lat = 0, sum_en = 0, right = 0;
    int on_device = 0, on_edge = 0, fallback = 0;
    std::vector<int> exit_counts(es.num_exits(), 0);
    for (int ep = 0; ep < o.episodes; ++ep) {
      const sd::ChannelPath path = world->score->At(start(rng));
      const sd::ExitSample* sample = world->eval[pick(rng)];
      const int64_t index = sample - es.samples.data();
      const LiveOutcome r =
          runner.Run(split->test.images[index], sample->label, path, controller, ++request_id);
      const sd::ExitPlan plan{runner.last_thresholds(), r.outcome.offload_boundary >= 0
                                                            ? r.outcome.offload_boundary
                                                            : world->model->num_units()};
      const sd::InferenceOutcome sim = world->model->RunPlan(*sample, path, plan);
      sum_cost += r.outcome.cost;
      sum_sim += sim.cost;
      sum_lat += r.outcome.latency_s;
      sum_en += r.outcome.energy_j;
      right += r.outcome.correct ? 1 : 0;
      on_device += r.completed_on.rfind("device", 0) == 0;
      on_edge += r.completed_on == "edge";
      fallback += r.completed_on == "fallback_local";
      ++exit_counts[r.outcome.exit];
      if (ledger) {
        nlohmann::json j{
            {"controller", controller.name()},
            {"episode", ep},
            {"sample", index},
            {"label", sample->label},
            {"exit", r.outcome.exit},
            {"exit_after_unit", es.exits[r.outcome.exit].after_unit},
            {"correct", r.outcome.correct},
            {"completed_on", r.completed_on},
            {"offload_boundary", r.outcome.offload_boundary},
            {"device_ms", 1e3 * r.device_s},
            {"transfer_ms", 1e3 * r.transfer_s},
            {"edge_ms", 1e3 * r.edge_s},
            {"latency_ms", 1e3 * r.outcome.latency_s},
            {"energy_mj", 1e3 * r.outcome.energy_j},
            {"cost", r.outcome.cost},
            {"sim_exit", sim.exit},
            {"sim_cost", sim.cost},
            {"fallback", r.fallback.empty() ? nlohmann::json() : nlohmann::json(r.fallback)}};
        ledger << j.dump() << "\n";
      }
    }
    const double n = o.episodes;
    nlohmann::json s = info[c];
    s["controller"] = controller.name();
    s["episodes"] = o.episodes;
    s["accuracy"] = right / n;
    s["mean_latency_ms"] = 1e3 * sum_lat / n;
    s["mean_energy_mj"] = 1e3 * sum_en / n;
    s["mean_cost"] = sum_cost / n;
    s["sim_mean_cost"] = sum_sim / n;
    s["on_device"] = on_device;
    s["on_edge"] = on_edge;
    s["fallback_local"] = fallback;
    s["exit_counts"] = exit_counts;
    summary.push_back(s);
    std::printf("%s | %.4f | %.3f | %.3f | %.5f | %.5f | %d | %d | %d\n", controller.name().c_str(),
                right / n, 1e3 * sum_lat / n, 1e3 * sum_en / n, sum_cost / n, sum_sim / n,
                on_device, on_edge, fallback);
  }
  if (!o.summary_json.empty()) {
    std::ofstream f(o.summary_json);
    f << nlohmann::json{{"channel", o.channel},
                        {"seed", o.seed},
                        {"accuracy_weight", o.accuracy_weight},
                        {"controllers", summary}}
             .dump(2)
      << "\n";
    if (!f) return Fail(splitinfer::InvalidArgumentError("cannot write " + o.summary_json));
  }
  return 0;
}

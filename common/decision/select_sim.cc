// select_sim: model-variant selection by a contextual bandit on a simulated device population
// (issue 10 items 3-4).
//
//   select_sim --variants data/variants/digits_variants.json --devices 200 --rounds 20000
//              --seed 1 --checkpoints 1000,5000,10000,20000 --json   (one command line)
//
// Each round a device of the population arrives; LinUCB (shared and disjoint), epsilon-greedy and
// the best common variant pick a variant from the same context and get the same noisy QoE draw.
// Prints cumulative expected regret vs the per-device oracle and vs the best common variant at
// each checkpoint, then the placement planner's M* for the variant LinUCB picks on a few devices
// (--plan-devices). JSON on stdout with --json, tables otherwise.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/decision/bandit.h"

namespace sd = splitinfer::decision;

int main(int argc, char** argv) {
  CLI::App app{"Contextual-bandit model-variant selection on a simulated device population"};
  std::string variants_path = "data/variants/digits_variants.json";
  std::string checkpoints_text;
  sd::SelectSimOptions so;
  int plan_devices = 5;
  bool json = false;
  app.add_option("--variants", variants_path, "variants JSON (scripts/make_variants.sh)");
  app.add_option("--devices", so.devices, "population size")->check(CLI::Range(1, 10000000));
  app.add_option("--rounds", so.rounds, "T, arrivals")->check(CLI::Range(1, 100000000));
  app.add_option("--seed", so.seed, "seeds the population, arrivals, noise and epsilon-greedy");
  app.add_option("--alpha", so.alpha, "LinUCB width multiplier");
  app.add_option("--ridge", so.ridge, "ridge lambda");
  app.add_option("--epsilon", so.epsilon, "epsilon-greedy rate");
  app.add_option("--optimistic", so.optimistic,
                 "bandit reward offset = the QoE ceiling (prior optimistic), else 0");
  app.add_option("--noise-sd", so.qoe.noise_sd, "QoE feedback noise (points)");
  app.add_option("--checkpoints", checkpoints_text, "comma list of rounds (default: 10 even)");
  app.add_option("--plan-devices", plan_devices, "devices shown with their placement M*")
      ->check(CLI::Range(0, 1000));
  app.add_flag("--json", json, "JSON on stdout");
  CLI11_PARSE(app, argc, argv);

  if (checkpoints_text.empty()) {
    for (int i = 1; i <= 10; ++i)
      so.checkpoints.push_back(static_cast<int>(static_cast<int64_t>(so.rounds) * i / 10));
    so.checkpoints.erase(std::remove(so.checkpoints.begin(), so.checkpoints.end(), 0),
                         so.checkpoints.end());
  } else {
    std::stringstream ss(checkpoints_text);
    std::string item;
    try {
      while (std::getline(ss, item, ',')) so.checkpoints.push_back(std::stoi(item));
    } catch (const std::exception&) {
      std::cerr << "select_sim: bad --checkpoints '" << checkpoints_text << "'\n";
      return 2;
    }
  }
  splitinfer::Result<std::vector<sd::Variant>> arms = sd::LoadVariants(variants_path);
  if (!arms.ok()) {
    std::cerr << "select_sim: " << arms.status() << "\n";
    return 1;
  }
  const std::vector<sd::DeviceContext> devices = sd::SampleDevices(so.devices, so.seed);
  splitinfer::Result<sd::SelectSimResult> r = sd::RunSelectSim(*arms, devices, so);
  if (!r.ok()) {
    std::cerr << "select_sim: " << r.status() << "\n";
    return 1;
  }

  // The link to placement: the shared LinUCB as the run left it picks a variant for the first
  // devices of the population, and the planner places that variant on each.
  nlohmann::json plans = nlohmann::json::array();
  {
    sd::LinUcb& bandit = *r->linucb;
    Eigen::MatrixXd x;
    // Shown: the first device of each oracle variant, then the first devices, up to plan_devices.
    std::vector<int> shown;
    std::vector<bool> arm_seen(arms->size(), false);
    const int nd = static_cast<int>(devices.size());
    for (int i = 0; i < nd && static_cast<int>(shown.size()) < plan_devices; ++i)
      if (!arm_seen[r->oracle_arm[i]]) {
        arm_seen[r->oracle_arm[i]] = true;
        shown.push_back(i);
      }
    for (int i = 0; i < nd && static_cast<int>(shown.size()) < plan_devices; ++i)
      if (std::find(shown.begin(), shown.end(), i) == shown.end()) shown.push_back(i);
    std::sort(shown.begin(), shown.end());
    for (int i : shown) {
      const sd::DeviceContext& d = devices[i];
      sd::JointFeatures(d, *arms, &x);
      const int a = *bandit.Select(x);
      splitinfer::Result<sd::VariantPlacement> p = sd::PlanForVariant((*arms)[a], d);
      if (!p.ok()) {
        std::cerr << "select_sim: " << p.status() << "\n";
        return 1;
      }
      plans.push_back({{"device", i},
                       {"slowdown", d.slowdown},
                       {"uplink_mbps", d.uplink_bps / 1e6},
                       {"latency_sensitivity", d.latency_sensitivity},
                       {"energy_weight", d.energy_weight},
                       {"chosen", p->variant},
                       {"oracle", (*arms)[r->oracle_arm[i]].name},
                       {"num_units", p->num_units},
                       {"best_m", p->plan.best_m},
                       {"objective", p->plan.best_objective}});
    }
  }

  nlohmann::json j = r->ToJson(*arms);
  j["variants"] = variants_path;
  j["devices"] = so.devices;
  j["rounds"] = so.rounds;
  j["seed"] = so.seed;
  j["alpha"] = so.alpha;
  j["ridge"] = so.ridge;
  j["epsilon"] = so.epsilon;
  j["optimistic"] = so.optimistic;
  j["noise_sd"] = so.qoe.noise_sd;
  j["placement"] = plans;
  if (json) {
    std::cout << j.dump(1) << "\n";
    return 0;
  }
  std::printf("%d devices, %d rounds, seed %llu; best common variant %s\n", so.devices, so.rounds,
              static_cast<unsigned long long>(so.seed), (*arms)[r->common_arm].name.c_str());
  std::printf("cumulative regret vs the per-device oracle (vs the best common variant)\n");
  std::printf("%10s", "round");
  for (const sd::PolicyTrace& p : r->policies) std::printf(" %24s", p.name.c_str());
  std::printf("\n");
  for (size_t c = 0; c < r->checkpoints.size(); ++c) {
    std::printf("%10d", r->checkpoints[c]);
    for (const sd::PolicyTrace& p : r->policies)
      std::printf(" %11.1f (%10.1f)", p.regret_oracle[c], p.regret_common[c]);
    std::printf("\n");
  }
  std::printf("%10s", "us/round");
  for (const sd::PolicyTrace& p : r->policies) std::printf(" %24.2f", p.mean_decision_us);
  std::printf("\nplacement of the variant LinUCB picks:\n");
  for (const nlohmann::json& p : plans)
    std::printf("  device %d (slowdown %.1f, uplink %.1f Mbit/s): %s (oracle %s), M* = %d of %d\n",
                p["device"].get<int>(), p["slowdown"].get<double>(), p["uplink_mbps"].get<double>(),
                p["chosen"].get<std::string>().c_str(), p["oracle"].get<std::string>().c_str(),
                p["best_m"].get<int>(), p["num_units"].get<int>());
  return 0;
}

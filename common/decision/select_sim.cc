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
//
// Many seeds (--seeds 1-20, or 1,2,5): one run per seed, each with its own population, arrivals
// and noise; prints every seed's regret at T and the mean / median / min / max / sd over the
// seeds per policy (--curves adds every seed's regret curves to the JSON).
//
// Tuning grid: --ridge, --alpha and --optimistic take comma lists (applied to every policy);
// more than one configuration runs every one on the seeds and picks, for each policy, the one
// with its lowest mean regret at T over the seeds; the tuning seeds must be disjoint from the
// seeds reported (docs/selection.md uses 101-110 to tune and 1-20 to report), e.g.
//   select_sim --seeds 101-110 --ridge 1,0.1,0.01,0.001 --alpha 0.5,1,2,4 --optimistic false,true
//
// Exit status: 0 done, 1 a run failed (bad variants file), 2 a bad command line (an option that
// is not a number, "5x", descending checkpoints, ...).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/decision/bandit.h"

namespace sd = splitinfer::decision;

namespace {

// One point of the command line's grid: what is not given keeps each policy's own default.
struct Config {
  std::optional<double> ridge, alpha;
  std::optional<bool> optimistic;
  void ApplyTo(sd::SelectSimOptions* o) const {
    for (sd::PolicyParams* p : {&o->linucb, &o->linucb_disjoint, &o->eps_greedy}) {
      if (ridge) p->ridge = *ridge;
      if (alpha) p->alpha = *alpha;
      if (optimistic) p->optimistic = *optimistic;
    }
  }
};

nlohmann::json ParamsJson(const sd::PolicyParams& p) {
  return {{"ridge", p.ridge}, {"alpha", p.alpha}, {"optimistic", p.optimistic}};
}
nlohmann::json ParamsJson(const sd::SelectSimOptions& o) {
  return {{"linucb", ParamsJson(o.linucb)},
          {"linucb_disjoint", ParamsJson(o.linucb_disjoint)},
          {"eps_greedy", ParamsJson(o.eps_greedy)}};
}
std::string ParamsText(const sd::PolicyParams& p) {
  char buf[96];
  std::snprintf(buf, sizeof(buf), "ridge %g, alpha %g, optimistic %s", p.ridge, p.alpha,
                p.optimistic ? "on" : "off");
  return buf;
}

splitinfer::Result<std::vector<bool>> ParseBoolList(const std::string& text) {
  std::vector<bool> out;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? comma : comma - start);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (item == "true" || item == "1" || item == "on")
      out.push_back(true);
    else if (item == "false" || item == "0" || item == "off")
      out.push_back(false);
    else
      return splitinfer::InvalidArgumentError("--optimistic: '" + item + "' in '" + text +
                                              "' is not true or false");
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// The shared LinUCB as run `r` left it picks a variant for devices of the population, and the
// planner places that variant on each. Shown: the first device of each oracle variant, then the
// first devices, up to plan_devices.
splitinfer::Result<nlohmann::json> Placements(const sd::SelectSimResult& r,
                                              const std::vector<sd::Variant>& arms,
                                              const std::vector<sd::DeviceContext>& devices,
                                              int plan_devices) {
  nlohmann::json plans = nlohmann::json::array();
  sd::LinUcb bandit = *r.linucb;
  Eigen::MatrixXd x;
  std::vector<int> shown;
  std::vector<bool> arm_seen(arms.size(), false);
  const int nd = static_cast<int>(devices.size());
  for (int i = 0; i < nd && static_cast<int>(shown.size()) < plan_devices; ++i)
    if (!arm_seen[r.oracle_arm[i]]) {
      arm_seen[r.oracle_arm[i]] = true;
      shown.push_back(i);
    }
  for (int i = 0; i < nd && static_cast<int>(shown.size()) < plan_devices; ++i)
    if (std::find(shown.begin(), shown.end(), i) == shown.end()) shown.push_back(i);
  std::sort(shown.begin(), shown.end());
  for (int i : shown) {
    const sd::DeviceContext& d = devices[i];
    sd::JointFeatures(d, arms, &x);
    const int a = *bandit.Select(x);
    splitinfer::Result<sd::VariantPlacement> p = sd::PlanForVariant(arms[a], d);
    if (!p.ok()) return p.status();
    plans.push_back({{"device", i},
                     {"slowdown", d.slowdown},
                     {"uplink_mbps", d.uplink_bps / 1e6},
                     {"latency_sensitivity", d.latency_sensitivity},
                     {"energy_weight", d.energy_weight},
                     {"chosen", p->variant},
                     {"oracle", arms[r.oracle_arm[i]].name},
                     {"num_units", p->num_units},
                     {"best_m", p->plan.best_m},
                     {"objective", p->plan.best_objective}});
  }
  return plans;
}

void PrintPlacements(const nlohmann::json& plans) {
  std::printf("placement of the variant LinUCB picks:\n");
  for (const nlohmann::json& p : plans)
    std::printf("  device %d (slowdown %.1f, uplink %.1f Mbit/s): %s (oracle %s), M* = %d of %d\n",
                p["device"].get<int>(), p["slowdown"].get<double>(), p["uplink_mbps"].get<double>(),
                p["chosen"].get<std::string>().c_str(), p["oracle"].get<std::string>().c_str(),
                p["best_m"].get<int>(), p["num_units"].get<int>());
}

void PrintStatsRow(const char* label, const std::vector<sd::SeedStats>& s,
                   double sd::SeedStats::*field) {
  std::printf("%8s %10s", label, "");
  for (const sd::SeedStats& x : s) std::printf(" %16.1f", x.*field);
  std::printf("\n");
}

// Per-seed regret at T and its distribution over the seeds.
void PrintMultiSeed(const sd::MultiSeedResult& m, int rounds) {
  std::printf("regret at T = %d vs the per-device oracle\n", rounds);
  std::printf("%8s %10s", "seed", "common");
  for (const std::string& n : m.policies) std::printf(" %16s", n.c_str());
  std::printf("\n");
  for (size_t i = 0; i < m.seeds.size(); ++i) {
    std::printf("%8llu %10s", static_cast<unsigned long long>(m.seeds[i]), m.common_arm[i].c_str());
    for (size_t p = 0; p < m.policies.size(); ++p) std::printf(" %16.1f", m.regret_oracle[p][i]);
    std::printf("\n");
  }
  std::vector<sd::SeedStats> s;
  for (size_t p = 0; p < m.policies.size(); ++p) s.push_back(m.RegretStats(p));
  PrintStatsRow("mean", s, &sd::SeedStats::mean);
  PrintStatsRow("median", s, &sd::SeedStats::median);
  PrintStatsRow("min", s, &sd::SeedStats::min);
  PrintStatsRow("max", s, &sd::SeedStats::max);
  PrintStatsRow("sd", s, &sd::SeedStats::sd);
  std::vector<sd::SeedStats> common, qoe;
  for (size_t p = 0; p < m.policies.size(); ++p) {
    common.push_back(*sd::SummarizeSeeds(m.regret_common[p]));
    qoe.push_back(*sd::SummarizeSeeds(m.mean_qoe[p]));
  }
  std::printf("regret at T vs the best common variant, mean over seeds\n");
  PrintStatsRow("mean", common, &sd::SeedStats::mean);
  std::printf("regret over the 2nd half / the 1st half, median over seeds\n");
  std::printf("%8s %10s", "median", "");
  for (size_t p = 0; p < m.policies.size(); ++p) {
    std::vector<double> f;
    for (double x : m.late_ratio[p])
      if (std::isfinite(x)) f.push_back(x);
    splitinfer::Result<sd::SeedStats> st = sd::SummarizeSeeds(f);
    std::printf(" %16.3f", st.ok() ? st->median : std::nan(""));
  }
  std::printf("\nmean expected QoE per inference, mean over seeds (oracle %.2f)\n",
              sd::SummarizeSeeds(m.oracle_mean_qoe)->mean);
  std::printf("%8s %10s", "mean", "");
  for (const sd::SeedStats& x : qoe) std::printf(" %16.2f", x.mean);
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Contextual-bandit model-variant selection on a simulated device population"};
  std::string variants_path = "data/variants/digits_variants.json";
  std::string checkpoints_text, seeds_text, alpha_text, ridge_text, optimistic_text;
  std::string json_out;
  sd::SelectSimOptions so;
  int plan_devices = 5;
  bool json = false, curves = false;
  app.add_option("--variants", variants_path, "variants JSON (scripts/make_variants.sh)");
  app.add_option("--devices", so.devices, "population size")->check(CLI::Range(1, 10000000));
  app.add_option("--rounds", so.rounds, "T, arrivals")->check(CLI::Range(1, 100000000));
  CLI::Option* seed_opt =
      app.add_option("--seed", so.seed, "seeds the population, arrivals, noise and epsilon-greedy");
  app.add_option("--seeds", seeds_text,
                 "many seeds: N, A-B or a comma list of them (1-20, 1,2,5); per-seed regret at T "
                 "and its mean / median / min / max over the seeds")
      ->excludes(seed_opt);
  const std::string defaults = "linucb " + ParamsText(so.linucb) + "; linucb_disjoint " +
                               ParamsText(so.linucb_disjoint) + "; eps_greedy " +
                               ParamsText(so.eps_greedy);
  app.add_option("--ridge", ridge_text,
                 "ridge lambda for every policy (default: each policy's tuned value, " + defaults +
                     "); a comma list makes a tuning grid");
  app.add_option("--alpha", alpha_text,
                 "LinUCB width multiplier for every policy (default: each policy's own); a comma "
                 "list makes a tuning grid");
  app.add_option("--optimistic", optimistic_text,
                 "bandit reward offset = the QoE ceiling (prior optimistic), else 0, for every "
                 "policy: true, false or false,true (grid); default: each policy's own");
  app.add_option("--epsilon", so.epsilon, "epsilon-greedy rate");
  app.add_option("--noise-sd", so.qoe.noise_sd, "QoE feedback noise (points)");
  app.add_option("--checkpoints", checkpoints_text, "comma list of rounds (default: 10 even)");
  app.add_option("--plan-devices", plan_devices, "devices shown with their placement M*")
      ->check(CLI::Range(0, 1000));
  app.add_flag("--curves", curves, "with --seeds and --json: every seed's regret curves (runs)");
  app.add_flag("--json", json, "JSON on stdout");
  app.add_option("--json-out", json_out,
                 "also write the JSON, compact, into this file (tables on stdout)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  auto usage_error = [](const std::string& what) {
    std::cerr << "select_sim: " << what << "\n";
    return 2;
  };

  // Lists: every item a whole number, refused otherwise ("5x" is not 5).
  if (checkpoints_text.empty()) {
    for (int i = 1; i <= 10; ++i)
      so.checkpoints.push_back(static_cast<int>(static_cast<int64_t>(so.rounds) * i / 10));
    so.checkpoints.erase(std::remove(so.checkpoints.begin(), so.checkpoints.end(), 0),
                         so.checkpoints.end());
  } else {
    splitinfer::Result<std::vector<int>> cps = sd::ParseIntList(checkpoints_text, "--checkpoints");
    if (!cps.ok()) return usage_error(cps.status().message());
    so.checkpoints = std::move(*cps);
  }
  std::vector<uint64_t> seeds = {so.seed};
  if (!seeds_text.empty()) {
    splitinfer::Result<std::vector<uint64_t>> s = sd::ParseSeedList(seeds_text);
    if (!s.ok()) return usage_error(s.status().message());
    seeds = std::move(*s);
  }
  std::vector<std::optional<double>> alphas = {std::nullopt}, ridges = {std::nullopt};
  std::vector<std::optional<bool>> optimistic = {std::nullopt};
  if (!alpha_text.empty()) {
    splitinfer::Result<std::vector<double>> v = sd::ParseDoubleList(alpha_text, "--alpha");
    if (!v.ok()) return usage_error(v.status().message());
    alphas.assign(v->begin(), v->end());
  }
  if (!ridge_text.empty()) {
    splitinfer::Result<std::vector<double>> v = sd::ParseDoubleList(ridge_text, "--ridge");
    if (!v.ok()) return usage_error(v.status().message());
    ridges.assign(v->begin(), v->end());
  }
  if (!optimistic_text.empty()) {
    splitinfer::Result<std::vector<bool>> v = ParseBoolList(optimistic_text);
    if (!v.ok()) return usage_error(v.status().message());
    optimistic.assign(v->begin(), v->end());
  }
  std::vector<Config> configs;
  for (const auto& r : ridges)
    for (const auto& a : alphas)
      for (const auto& o : optimistic) configs.push_back({r, a, o});
  // Every configuration is checked before anything runs: a bad value is a usage error.
  for (const Config& c : configs) {
    sd::SelectSimOptions o = so;
    c.ApplyTo(&o);
    std::string error;
    if (!o.IsValid(&error)) return usage_error(error);
  }

  splitinfer::Result<std::vector<sd::Variant>> arms = sd::LoadVariants(variants_path);
  if (!arms.ok()) {
    std::cerr << "select_sim: " << arms.status() << "\n";
    return 1;
  }
  // JSON: on stdout with --json (instead of the tables), into --json-out's file (beside them).
  auto emit = [&](const nlohmann::json& j) -> int {
    if (!json_out.empty()) {
      std::ofstream f(json_out);
      f << j.dump() << "\n";  // compact: the data files of select.sh
      f.close();
      if (!f) {
        std::cerr << "select_sim: cannot write " << json_out << "\n";
        return 1;
      }
    }
    if (json) std::cout << j.dump(1) << "\n";
    return 0;
  };
  auto describe = [&](nlohmann::json* j) {
    (*j)["variants"] = variants_path;
    (*j)["devices"] = so.devices;
    (*j)["rounds"] = so.rounds;
    (*j)["epsilon"] = so.epsilon;
    (*j)["noise_sd"] = so.qoe.noise_sd;
  };

  // A tuning grid: every configuration (applied to every policy) on every seed; for each policy,
  // the configuration with its lowest mean regret at T over the seeds (ties: the first in grid
  // order, ridge then alpha then optimistic as given).
  if (configs.size() > 1) {
    nlohmann::json grid = nlohmann::json::array();
    std::vector<sd::MultiSeedResult> results;
    std::vector<sd::SelectSimOptions> applied;
    for (const Config& c : configs) {
      sd::SelectSimOptions o = so;
      c.ApplyTo(&o);
      splitinfer::Result<sd::MultiSeedResult> m = sd::RunSelectSeeds(*arms, o, seeds, false);
      if (!m.ok()) {
        std::cerr << "select_sim: " << m.status() << "\n";
        return 1;
      }
      nlohmann::json g = m->ToJson(*arms);
      g["params"] = ParamsJson(o.linucb);  // the same for every policy here
      grid.push_back(std::move(g));
      results.push_back(std::move(*m));
      applied.push_back(o);
    }
    const std::vector<std::string>& names = results[0].policies;
    std::vector<size_t> best(names.size(), 0);
    for (size_t p = 0; p < names.size(); ++p)
      for (size_t i = 1; i < configs.size(); ++i)
        if (results[i].RegretStats(p).mean < results[best[p]].RegretStats(p).mean) best[p] = i;
    sd::SelectSimOptions chosen = so;
    chosen.linucb = applied[best[0]].linucb;
    chosen.linucb_disjoint = applied[best[1]].linucb_disjoint;
    chosen.eps_greedy = applied[best[2]].eps_greedy;
    {
      nlohmann::json j;
      describe(&j);
      j["seeds"] = seeds;
      j["criterion"] = "per policy, the lowest mean regret at T vs the oracle over the seeds";
      j["chosen"] = ParamsJson(chosen);
      j["defaults"] = ParamsJson(so);
      j["grid"] = grid;
      if (const int rc = emit(j)) return rc;
      if (json) return 0;
    }
    std::printf("tuning grid: %zu configurations x %zu seeds, %d devices, %d rounds\n",
                configs.size(), seeds.size(), so.devices, so.rounds);
    std::printf(
        "regret at T vs the per-device oracle over the seeds: mean / median / max "
        "(* = the policy's lowest mean)\n");
    std::printf("%8s %6s %5s", "ridge", "alpha", "opt");
    for (const std::string& n : names) std::printf(" %29s", n.c_str());
    std::printf("\n");
    for (size_t i = 0; i < configs.size(); ++i) {
      const sd::PolicyParams& p = applied[i].linucb;
      std::printf("%8g %6g %5s", p.ridge, p.alpha, p.optimistic ? "on" : "off");
      for (size_t k = 0; k < names.size(); ++k) {
        const sd::SeedStats s = results[i].RegretStats(k);
        std::printf(" %c%9.1f %8.1f %9.1f", best[k] == i && names[k] != "common" ? '*' : ' ',
                    s.mean, s.median, s.max);
      }
      std::printf("\n");
    }
    std::printf("chosen per policy (lowest mean regret at T over the seeds):\n");
    std::printf("  linucb:          %s\n", ParamsText(chosen.linucb).c_str());
    std::printf("  linucb_disjoint: %s\n", ParamsText(chosen.linucb_disjoint).c_str());
    std::printf("  eps_greedy:      %s (alpha unused)\n", ParamsText(chosen.eps_greedy).c_str());
    std::printf(
        "defaults now:\n  linucb:          %s\n  linucb_disjoint: %s\n"
        "  eps_greedy:      %s\n",
        ParamsText(so.linucb).c_str(), ParamsText(so.linucb_disjoint).c_str(),
        ParamsText(so.eps_greedy).c_str());
    auto same = [](const sd::PolicyParams& a, const sd::PolicyParams& b, bool alpha_used) {
      return a.ridge == b.ridge && a.optimistic == b.optimistic &&
             (!alpha_used || a.alpha == b.alpha);
    };
    const bool match = same(chosen.linucb, so.linucb, true) &&
                       same(chosen.linucb_disjoint, so.linucb_disjoint, true) &&
                       same(chosen.eps_greedy, so.eps_greedy, false);
    std::printf("defaults match the tuned choice: %s\n", match ? "yes" : "NO");
    return 0;
  }

  configs[0].ApplyTo(&so);

  // Many seeds: per-seed regret at T and its distribution; the placement of the first seed.
  if (!seeds_text.empty()) {
    splitinfer::Result<sd::MultiSeedResult> m = sd::RunSelectSeeds(*arms, so, seeds, true);
    if (!m.ok()) {
      std::cerr << "select_sim: " << m.status() << "\n";
      return 1;
    }
    splitinfer::Result<nlohmann::json> plans =
        Placements(m->runs[0], *arms, sd::SampleDevices(so.devices, seeds[0]), plan_devices);
    if (!plans.ok()) {
      std::cerr << "select_sim: " << plans.status() << "\n";
      return 1;
    }
    {
      if (!curves) m->runs.clear();
      nlohmann::json j = m->ToJson(*arms);
      describe(&j);
      j["params"] = ParamsJson(so);
      j["placement_seed"] = seeds[0];
      j["placement"] = *plans;
      if (const int rc = emit(j)) return rc;
      if (json) return 0;
    }
    std::printf("%zu seeds (%s), %d devices, %d rounds\n", seeds.size(), seeds_text.c_str(),
                so.devices, so.rounds);
    std::printf("linucb: %s; linucb_disjoint: %s; eps_greedy: %s\n", ParamsText(so.linucb).c_str(),
                ParamsText(so.linucb_disjoint).c_str(), ParamsText(so.eps_greedy).c_str());
    PrintMultiSeed(*m, so.rounds);
    if (!plans->empty()) {
      std::printf("seed %llu: ", static_cast<unsigned long long>(seeds[0]));
      PrintPlacements(*plans);
    }
    return 0;
  }

  const std::vector<sd::DeviceContext> devices = sd::SampleDevices(so.devices, so.seed);
  splitinfer::Result<sd::SelectSimResult> r = sd::RunSelectSim(*arms, devices, so);
  if (!r.ok()) {
    std::cerr << "select_sim: " << r.status() << "\n";
    return 1;
  }
  splitinfer::Result<nlohmann::json> plans = Placements(*r, *arms, devices, plan_devices);
  if (!plans.ok()) {
    std::cerr << "select_sim: " << plans.status() << "\n";
    return 1;
  }

  nlohmann::json j = r->ToJson(*arms);
  describe(&j);
  j["seed"] = so.seed;
  j["params"] = ParamsJson(so);
  j["placement"] = *plans;
  if (const int rc = emit(j)) return rc;
  if (json) return 0;
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
  std::printf("\n");
  PrintPlacements(*plans);
  return 0;
}

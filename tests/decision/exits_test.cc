// Early exits with a split point (issue 9, part B): the stats parser, the exit-aware stopping
// problem, the optimal-stopping, fixed and DDPG controllers.
#include "common/decision/exits.h"

#include <cmath>
#include <filesystem>
#include <random>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/decision/exits_rl.h"

namespace sd = splitinfer::decision;

namespace {

// A 4-unit branchy chain: exits after units 1, 2, 3 and the final classifier after unit 4. The
// input is larger than the early tensors, so the best split moves with the rate.
sd::ModelProfile SyntheticProfile() {
  sd::ModelProfile p;
  p.model = "synthetic_branchy";
  p.input_bytes = 24000;
  p.units = {{"u1", 1.0, 16000, 1000, -1, {}},
             {"u2", 1.0, 6000, 1000, -1, {}},
             {"u3", 1.0, 1500, 1000, -1, {}},
             {"u4", 0.5, 40, 1000, -1, {}}};
  return p;
}

// Samples with a difficulty d ~ U(0, 1): exit e answers right iff d < acc_e (so a sample right at
// an exit is right at every later one), its confidence falls with d and rises with e.
sd::ExitStats SyntheticStats(int samples, uint64_t seed, double final_head_ms = 0.0) {
  const double acc[4] = {0.55, 0.72, 0.86, 0.95};
  sd::ExitStats st;
  st.model = "synthetic_branchy";
  st.dataset = "synthetic";
  st.seed = static_cast<int64_t>(seed);
  st.train_size = 1000;
  st.test_size = samples;
  st.num_units = 4;
  for (int e = 0; e < 4; ++e)
    st.exits.push_back({e, e + 1, 100, 1000, e == 3 ? final_head_ms : 0.05, acc[e]});
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  for (int i = 0; i < samples; ++i) {
    sd::ExitSample s;
    s.label = i % 10;
    const double d = u(rng);
    for (int e = 0; e < 4; ++e) {
      const bool right = d < acc[e];
      const double c =
          std::clamp(0.25 + 0.75 * (1 - d) * (0.75 + 0.08 * e) + 0.1 * (u(rng) - 0.5), 0.1, 1.0);
      s.conf.push_back(c);
      s.entropy.push_back(1 - c);
      s.pred.push_back(right ? s.label : (s.label + 1) % 10);
    }
    st.samples.push_back(std::move(s));
  }
  return st;
}

sd::CostModel SyntheticCost() {
  sd::CostOptions o;
  o.device_slowdown = 10.0;
  o.edge_speedup = 4.0;
  return *sd::CostModel::Create(SyntheticProfile(), o);
}

std::string TracePath(const std::string& name) {
  return std::string(SPLITINFER_SOURCE_DIR) + "/data/traces/" + name;
}

sd::ExitWorld World(double accuracy_weight, const std::string& channel, double final_head_ms = 0,
                    int samples = 600) {
  static const sd::CostModel cost = SyntheticCost();
  sd::ExitWorldOptions wo;
  wo.gauss_markov_duration_s = 600.0;
  auto ch = sd::ChannelSpec::Parse(channel);
  EXPECT_TRUE(ch.ok()) << ch.status().ToString();
  auto w =
      sd::BuildExitWorld(cost, SyntheticStats(samples, 7, final_head_ms), accuracy_weight, *ch, wo);
  EXPECT_TRUE(w.ok()) << w.status().ToString();
  return std::move(*w);
}

std::string Err(const std::string& text) {
  auto r = sd::ParseExitStatsText(text, "f.json");
  return r.ok() ? "" : r.status().ToString();
}

TEST(ExitsParseTest, RoundTripAndErrors) {
  const sd::ExitStats st = SyntheticStats(20, 1);
  const nlohmann::json good = st.ToJson();
  auto back = sd::ParseExitStats(good, "good");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->num_exits(), 4);
  EXPECT_EQ(back->samples.size(), 20u);
  EXPECT_EQ(back->samples[3].pred, st.samples[3].pred);

  auto with = [&](auto edit) {
    nlohmann::json j = good;
    edit(j);
    return Err(j.dump());
  };
  EXPECT_NE(Err("{not json").find("f.json"), std::string::npos);
  EXPECT_NE(with([](nlohmann::json& j) { j.erase("num_units"); }).find("missing key 'num_units'"),
            std::string::npos);
  EXPECT_NE(with([](nlohmann::json& j) {
              j["exits"][1].erase("head_time_ms");
            }).find("exits[1]: missing key 'head_time_ms'"),
            std::string::npos);
  // A sample with the wrong number of exits.
  EXPECT_NE(with([](nlohmann::json& j) {
              j["samples"][5]["exits"].erase(0);
            }).find("samples[5].exits: expected 4 entries"),
            std::string::npos);
  // Non-finite / out of range values (JSON has no NaN: a string or an out-of-range number).
  EXPECT_NE(with([](nlohmann::json& j) {
              j["samples"][2]["exits"][1]["conf"] = 1.5;
            }).find("samples[2].exits[1].conf: must be in [0, 1]"),
            std::string::npos);
  EXPECT_NE(with([](nlohmann::json& j) {
              j["samples"][2]["exits"][1]["entropy"] = "nan";
            }).find("entropy: expected a number"),
            std::string::npos);
  EXPECT_NE(Err("{\"model\":\"m\",\"dataset\":\"d\",\"seed\":1,\"train_size\":1,\"test_size\":1,"
                "\"num_units\":2,\"exits\":[{\"index\":0,\"after_unit\":2,\"head_param_bytes\":0,"
                "\"head_flops\":0,\"head_time_ms\":1e999,\"test_accuracy\":0.5}],\"samples\":[]}")
                .find("f.json"),
            std::string::npos);
  // Exits out of order, and a last exit that is not the final classifier.
  EXPECT_NE(
      with([](nlohmann::json& j) { j["exits"][2]["after_unit"] = 1; }).find("increasing units"),
      std::string::npos);
  EXPECT_NE(with([](nlohmann::json& j) { j["num_units"] = 5; }).find("must sit after unit"),
            std::string::npos);
  EXPECT_NE(with([](nlohmann::json& j) { j["exits"][0]["index"] = 3; }).find("index: expected 0"),
            std::string::npos);
  EXPECT_NE(with([](nlohmann::json& j) {
              j["samples"] = nlohmann::json::array();
            }).find("samples: expected a non-empty array"),
            std::string::npos);
  EXPECT_FALSE(sd::LoadExitStats("/nonexistent/stats.json").ok());
  // The profile and the stats must agree on N.
  sd::ExitStats three = SyntheticStats(10, 1);
  three.num_units = 3;
  three.exits.pop_back();
  EXPECT_FALSE(sd::ExitModel::Create(SyntheticCost(), three, 0.0).ok());
  EXPECT_FALSE(sd::ExitModel::Create(SyntheticCost(), st, -1.0).ok());
}

// Thresholds off and no accuracy term: the exit-aware problem is the plain one, so BI on it gives
// the existing BI's value function and expected cost.
TEST(ExitsOsTest, OffThresholdsEqualPlainBi) {
  for (const std::string& ch :
       {"trace:" + TracePath("norway_car_7"), std::string("gauss-markov:snr_db=10,doppler_hz=2")}) {
    const sd::ExitWorld w = World(0.0, ch);
    const sd::Thresholds off(4, sd::kExitOff);
    auto p = w.model->Fold(w.base, w.calib, off);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    const sd::BiSolution a = sd::SolveBackwardInduction(w.base);
    const sd::BiSolution b = sd::SolveBackwardInduction(*p);
    EXPECT_NEAR(a.expected_cost, b.expected_cost, 1e-12 * a.expected_cost) << ch;
    EXPECT_TRUE(a.value.isApprox(b.value, 1e-12)) << ch;
    EXPECT_EQ(a.stop, b.stop) << ch;
    double bi = 0;
    auto c = sd::MakePlainBiController(*w.model, w.base, w.calib, &bi);
    ASSERT_TRUE(c.ok());
    EXPECT_NEAR(bi, a.expected_cost, 1e-12 * a.expected_cost);
    // The OS controller restricted to "off" is plain BI.
    sd::OsControllerInfo info;
    auto os = sd::MakeOsController(*w.model, w.base, w.calib, {sd::kExitOff}, true, &info);
    ASSERT_TRUE(os.ok());
    EXPECT_NEAR(info.expected_cost, a.expected_cost, 1e-12 * a.expected_cost);
  }
}

// The fold is exact: the simulated mean cost of a policy on paths drawn from a law equals the
// fold's expected cost. Checked on the plan "fixed split k, thresholds t" against a direct average
// over every calibration sample on the same channel paths.
TEST(ExitsOsTest, FoldMatchesDirectAverageOnLocalPlan) {
  const sd::ExitWorld w = World(0.02, "gauss-markov:snr_db=10,doppler_hz=2");
  const sd::Thresholds t = {0.7, 0.9, sd::kExitOff, sd::kExitOff};
  auto p = w.model->Fold(w.base, w.calib, t);
  ASSERT_TRUE(p.ok());
  // All-local: no channel involved, so the fold's value is exact for the samples.
  auto local = sd::MakeAllLocalPolicy(*p);
  const double folded = sd::ExactExpectedCost(*p, *local);
  const sd::ChannelPath path = w.fit->At(0);
  double direct = 0;
  for (const sd::ExitSample* s : w.calib)
    direct += w.model->RunPlan(*s, path, sd::ExitPlan{t, 4}).cost;
  direct /= static_cast<double>(w.calib.size());
  EXPECT_NEAR(folded, direct, 1e-12);
}

// Cross-fitting: swap_samples exchanges the calibration and the scored halves.
TEST(ExitsWorldTest, SwapSamples) {
  const sd::CostModel cost = SyntheticCost();
  const sd::ExitStats st = SyntheticStats(101, 3);
  auto ch = sd::ChannelSpec::Parse("gauss-markov:snr_db=10,doppler_hz=2");
  ASSERT_TRUE(ch.ok());
  sd::ExitWorldOptions wo;
  wo.gauss_markov_duration_s = 100.0;
  auto a = sd::BuildExitWorld(cost, st, 0.0, *ch, wo);
  wo.swap_samples = true;
  auto b = sd::BuildExitWorld(cost, st, 0.0, *ch, wo);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->calib.size() + a->eval.size(), 101u);
  ASSERT_EQ(a->calib.size(), b->eval.size());
  for (size_t i = 0; i < a->calib.size(); ++i)
    EXPECT_EQ(a->calib[i] - &a->model->stats().samples[0],
              b->eval[i] - &b->model->stats().samples[0]);
  wo.calib_fraction = 1.0;
  EXPECT_FALSE(sd::BuildExitWorld(cost, st, 0.0, *ch, wo).ok());
  auto rayleigh = sd::ChannelSpec::Parse("rayleigh:snr_db=10");
  wo.calib_fraction = 0.5;
  EXPECT_FALSE(sd::BuildExitWorld(cost, st, 0.0, *rayleigh, wo).ok());
}

// ErrorEstimate::kConfidence prices a wrong answer at 1 - conf of the answering head.
TEST(ExitsOsTest, ConfidenceErrorEstimate) {
  const sd::CostModel cost = SyntheticCost();
  const sd::ExitStats st = SyntheticStats(200, 11);
  auto m = sd::ExitModel::Create(cost, st, 0.5, sd::ErrorEstimate::kConfidence);
  ASSERT_TRUE(m.ok());
  const sd::ExitWorld w = World(0.0, "gauss-markov:snr_db=10,doppler_hz=2");
  std::vector<const sd::ExitSample*> samples;
  for (const sd::ExitSample& s : m->stats().samples) samples.push_back(&s);
  const sd::Thresholds t = {0.8, sd::kExitOff, 0.9, sd::kExitOff};
  auto p = m->Fold(w.base, samples, t);
  ASSERT_TRUE(p.ok());
  const double folded = sd::ExactExpectedCost(*p, *sd::MakeAllLocalPolicy(*p));
  double direct = 0;
  const sd::ChannelPath path = w.fit->At(0);
  for (const sd::ExitSample* s : samples) {
    const sd::InferenceOutcome o = m->RunPlan(*s, path, sd::ExitPlan{t, 4});
    direct += o.latency_s + 0.5 * (1.0 - s->conf[o.exit]);
  }
  EXPECT_NEAR(folded, direct / static_cast<double>(samples.size()), 1e-12);
}

// OS minimizes over a superset of the fixed-threshold grid (every common threshold x every fixed
// split), so its expected cost is at most each grid point's.
TEST(ExitsOsTest, OsBeatsEveryFixedGridPoint) {
  for (double aw : {0.0, 0.01, 0.05}) {
    const sd::ExitWorld w = World(aw, "markov-fit:" + TracePath("norway_tram_1"));
    for (bool per_state : {false, true}) {
      sd::OsControllerInfo oi;
      auto os = sd::MakeOsController(*w.model, w.base, w.calib, sd::DefaultThresholdGrid(),
                                     per_state, &oi);
      ASSERT_TRUE(os.ok());
      EXPECT_EQ(oi.combinations, 512);
      for (double th : sd::DefaultThresholdGrid()) {
        sd::Thresholds t(4, th);
        auto p = w.model->Fold(w.base, w.calib, t);
        ASSERT_TRUE(p.ok());
        for (int k = 0; k <= 4; ++k) {
          const double v = sd::ExactExpectedCost(*p, *sd::MakeFixedPolicy(*p, k, "f"));
          EXPECT_LE(oi.expected_cost, v + 1e-12) << "aw " << aw << " th " << th << " k " << k;
        }
      }
      sd::FixedControllerInfo fi;
      ASSERT_TRUE(
          sd::MakeFixedController(*w.model, w.base, w.calib, sd::DefaultThresholdGrid(), &fi).ok());
      EXPECT_LE(oi.expected_cost, fi.expected_cost + 1e-12);
    }
  }
}

// Looser thresholds: lower latency, no higher accuracy (all local, one common threshold).
TEST(ExitsTradeOffTest, LooserThresholdsAreFasterAndNoMoreAccurate) {
  const sd::ExitWorld w = World(0.0, "gauss-markov:snr_db=10,doppler_hz=2");
  const sd::ChannelPath path = w.fit->At(0);
  double last_lat = 0, last_acc = 0;
  bool first = true;
  for (double th : {0.99, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5}) {
    sd::Thresholds t(4, th);
    double lat = 0, acc = 0;
    for (const sd::ExitSample* s : w.eval) {
      const sd::InferenceOutcome o = w.model->RunPlan(*s, path, sd::ExitPlan{t, 4});
      lat += o.latency_s;
      acc += o.correct;
    }
    if (!first) {
      EXPECT_LT(lat, last_lat) << th;
      EXPECT_LE(acc, last_acc) << th;
    }
    first = false;
    last_lat = lat;
    last_acc = acc;
  }
}

// The same on part A's real statistics, when they are in the tree.
TEST(ExitsTradeOffTest, RealDigitsStats) {
  const std::string dir = std::string(SPLITINFER_SOURCE_DIR) + "/data/";
  if (!std::filesystem::exists(dir + "exits/digits_branchy_stats.json") ||
      !std::filesystem::exists(dir + "profiles/digits_branchy.json"))
    GTEST_SKIP() << "no data/exits/digits_branchy_stats.json yet";
  auto st = sd::LoadExitStats(dir + "exits/digits_branchy_stats.json");
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  auto prof = sd::LoadProfile(dir + "profiles/digits_branchy.json");
  ASSERT_TRUE(prof.ok()) << prof.status().ToString();
  auto cost = sd::CostModel::Create(*prof, sd::CostOptions());
  ASSERT_TRUE(cost.ok());
  auto m = sd::ExitModel::Create(*cost, *st, 0.0);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  sd::ChannelPath path;
  const int n = m->num_units();
  path.state.assign(n + 1, 0);
  path.rate_bps.assign(n + 1, 1e6);
  path.transfer_s.assign(n + 1, 0.01);
  double last_lat = 1e300;
  for (double th : {0.999, 0.99, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5}) {
    sd::Thresholds t(m->num_exits(), th);
    double lat = 0;
    for (const sd::ExitSample& s : st->samples)
      lat += m->RunPlan(s, path, sd::ExitPlan{t, n}).latency_s;
    EXPECT_LE(lat, last_lat) << th;
    last_lat = lat;
  }
}

std::vector<sd::ControllerStats> TrainAndScore(const sd::ExitWorld& w, uint64_t seed,
                                               sd::DdpgReport* rep, std::vector<double>* weights) {
  sd::DdpgOptions o;
  o.seed = seed;
  o.train_steps = 4000;
  o.warmup = 500;
  o.eval_every = 500;
  o.eval_episodes = 400;
  auto rl = sd::TrainDdpg(w, o, rep);
  EXPECT_TRUE(rl.ok()) << rl.status().ToString();
  for (const auto& m : (*rl)->actor().weight)
    weights->insert(weights->end(), m.data(), m.data() + m.size());
  sd::FixedControllerInfo fi;
  auto fixed = sd::MakeFixedController(*w.model, w.base, w.calib, sd::DefaultThresholdGrid(), &fi);
  EXPECT_TRUE(fixed.ok());
  return sd::EvaluateControllers(*w.model, *w.score, w.eval, {rl->get(), fixed->get()}, 4000, 3);
}

// DDPG: the same seed gives bitwise the same weights and figures; on a channel that changes
// (correlated Rayleigh fading with long fades) it beats the best common fixed threshold with the
// best fixed split.
TEST(ExitsRlTest, ReproducibleAndBeatsFixedOnChangingChannel) {
  const sd::ExitWorld w = World(0.02, "gauss-markov:snr_db=6,doppler_hz=1");
  sd::DdpgReport r1, r2;
  std::vector<double> w1, w2;
  // Training neither depends on nor moves LibTorch's global generator, and restores the thread
  // count.
  const int threads = at::get_num_threads();
  torch::manual_seed(42);
  const at::Tensor want = torch::rand({4});
  torch::manual_seed(42);
  const auto a = TrainAndScore(w, 5, &r1, &w1);
  EXPECT_TRUE(torch::equal(torch::rand({4}), want));
  EXPECT_EQ(at::get_num_threads(), threads);
  torch::manual_seed(7);
  const auto b = TrainAndScore(w, 5, &r2, &w2);
  ASSERT_EQ(w1.size(), w2.size());
  EXPECT_EQ(w1, w2);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].mean_cost, b[0].mean_cost);
  EXPECT_EQ(a[0].accuracy, b[0].accuracy);
  EXPECT_EQ(a[0].mean_latency_ms, b[0].mean_latency_ms);
  EXPECT_EQ(r1.best_eval_cost, r2.best_eval_cost);
  std::cout << "rl cost " << a[0].mean_cost << " acc " << a[0].accuracy << " lat "
            << a[0].mean_latency_ms << " | fixed cost " << a[1].mean_cost << " acc "
            << a[1].accuracy << " lat " << a[1].mean_latency_ms << " | train " << r1.train_s
            << " s\n";
  EXPECT_LT(a[0].mean_cost, a[1].mean_cost);
}

}  // namespace

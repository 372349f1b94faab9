#include "common/decision/bandit.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace splitinfer::decision {
namespace {

// A synthetic variant: a two-unit chain whose figures follow (accuracy, time_ms).
Variant MakeVariant(const std::string& name, double accuracy, double time_ms, int64_t flops) {
  Variant v;
  v.name = name;
  v.kind = "full";
  v.accuracy = accuracy;
  v.time_ms = time_ms;
  v.flops = flops;
  v.param_bytes = flops / 10;
  v.profile.model = name;
  v.profile.input_bytes = 4096;
  auto unit = [](const char* unit_name, double ms, int64_t out, int64_t params, int64_t f) {
    UnitProfile u;
    u.name = unit_name;
    u.time_ms = ms;
    u.output_bytes = out;
    u.param_bytes = params;
    u.flops = f;
    return u;
  };
  v.profile.units = {unit("a", time_ms / 2, 2048, v.param_bytes / 2, flops / 2),
                     unit("b", time_ms / 2, 40, v.param_bytes - v.param_bytes / 2, flops / 2)};
  return v;
}

// A stationary synthetic family: a trade-off between accuracy and time, no arm dominates.
std::vector<Variant> TradeOffArms() {
  return {MakeVariant("tiny", 0.85, 0.03, 50'000), MakeVariant("small", 0.93, 0.07, 200'000),
          MakeVariant("mid", 0.97, 0.15, 600'000), MakeVariant("big", 0.99, 0.60, 3'000'000)};
}

// Exact figures of RegretGrowsSublinearlyOnAStationaryPopulation (the tuned defaults: shared LinUCB
// ridge 0.001, alpha 0.5).
constexpr double kLinFirst = 136.17517946354286;
constexpr double kLinTotal = 136.52572095231909;
constexpr double kCommonTotal = 21187.945494745687;

SelectSimOptions SimOptions(int rounds) {
  SelectSimOptions o;
  o.devices = 100;
  o.rounds = rounds;
  o.seed = 7;
  o.checkpoints = {rounds / 2, rounds};
  return o;
}

const PolicyTrace& Policy(const SelectSimResult& r, const std::string& name) {
  for (const PolicyTrace& p : r.policies)
    if (p.name == name) return p;
  ADD_FAILURE() << "no policy " << name;
  return r.policies.front();
}

TEST(BanditTest, RegretGrowsSublinearlyOnAStationaryPopulation) {
  const std::vector<Variant> arms = TradeOffArms();
  const SelectSimOptions o = SimOptions(6000);
  Result<SelectSimResult> r = RunSelectSim(arms, SampleDevices(o.devices, o.seed), o);
  ASSERT_TRUE(r.ok()) << r.status();
  // The population is heterogeneous: the oracle uses more than one arm.
  std::vector<int> used(arms.size(), 0);
  for (int a : r->oracle_arm) used[a] = 1;
  EXPECT_GE(used[0] + used[1] + used[2] + used[3], 2);
  for (const char* name : {"linucb", "linucb_disjoint"}) {
    const PolicyTrace& p = Policy(*r, name);
    const double first = p.regret_oracle[0];
    const double second = p.regret_oracle[1] - p.regret_oracle[0];
    EXPECT_GT(first, 0) << name;
    EXPECT_LT(second, 0.25 * first) << name << ": regret over the second half vs the first";
    // Far below always playing the best common variant.
    EXPECT_LT(p.regret_oracle[1], 0.2 * Policy(*r, "common").regret_oracle[1]) << name;
  }
  // The common model's regret is linear in T: the same per round in both halves (within 10%).
  const PolicyTrace& c = Policy(*r, "common");
  EXPECT_NEAR(c.regret_oracle[1] - c.regret_oracle[0], c.regret_oracle[0],
              0.1 * c.regret_oracle[0]);
  // Exact figures (seed 7, this population; x86-64 with libstdc++ and Eigen 3.4).
  const PolicyTrace& lin = Policy(*r, "linucb");
  EXPECT_NEAR(lin.regret_oracle[0], kLinFirst, 1e-6);
  EXPECT_NEAR(lin.regret_oracle[1], kLinTotal, 1e-6);
  EXPECT_NEAR(c.regret_oracle[1], kCommonTotal, 1e-6);
}

TEST(BanditTest, FindsTheBestArmWhenOneDominates) {
  // "best" is the most accurate and the fastest: every device's oracle arm.
  std::vector<Variant> arms = {
      MakeVariant("slow_bad", 0.80, 0.50, 2'000'000), MakeVariant("best", 0.98, 0.05, 100'000),
      MakeVariant("mid", 0.90, 0.20, 800'000), MakeVariant("slow_good", 0.97, 0.80, 4'000'000)};
  const SelectSimOptions o = SimOptions(3000);
  Result<SelectSimResult> r = RunSelectSim(arms, SampleDevices(o.devices, o.seed), o);
  ASSERT_TRUE(r.ok()) << r.status();
  for (int a : r->oracle_arm) EXPECT_EQ(a, 1);
  EXPECT_EQ(r->common_arm, 1);
  for (const char* name : {"linucb", "linucb_disjoint", "eps_greedy"}) {
    const PolicyTrace& p = Policy(*r, name);
    int64_t last = 0;
    for (int64_t n : p.picks_last) last += n;
    ASSERT_EQ(last, o.rounds / 5);
    EXPECT_GE(static_cast<double>(p.picks_last[1]) / static_cast<double>(last), 0.9) << name;
  }
}

TEST(BanditTest, ReproducibleFromTheSeed) {
  const std::vector<Variant> arms = TradeOffArms();
  SelectSimOptions o = SimOptions(1000);
  Result<SelectSimResult> a = RunSelectSim(arms, SampleDevices(o.devices, o.seed), o);
  Result<SelectSimResult> b = RunSelectSim(arms, SampleDevices(o.devices, o.seed), o);
  ASSERT_TRUE(a.ok() && b.ok());
  for (size_t i = 0; i < a->policies.size(); ++i) {
    EXPECT_EQ(a->policies[i].regret_oracle, b->policies[i].regret_oracle);
    EXPECT_EQ(a->policies[i].picks, b->policies[i].picks);
  }
  o.seed = 8;
  Result<SelectSimResult> c = RunSelectSim(arms, SampleDevices(o.devices, o.seed), o);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(a->policies[0].regret_oracle, c->policies[0].regret_oracle);
}

TEST(BanditTest, ShermanMorrisonEqualsTheDirectRidgeSolution) {
  for (bool shared : {true, false}) {
    BanditOptions bo;
    bo.num_arms = 3;
    bo.dim = 4;
    bo.ridge = 0.5;
    bo.shared = shared;
    Result<LinUcb> b = LinUcb::Create(bo);
    ASSERT_TRUE(b.ok());
    Eigen::MatrixXd gram = 0.5 * Eigen::MatrixXd::Identity(4, 4);
    Eigen::VectorXd xy = Eigen::VectorXd::Zero(4);
    for (int t = 0; t < 50; ++t) {
      Eigen::VectorXd x(4);
      x << 1.0, std::sin(t), std::cos(0.3 * t), 0.01 * t;
      const int arm = shared ? t % 3 : 1;
      const double y = 2.0 * x(1) - x(2) + 0.5;
      ASSERT_TRUE(b->Update(arm, x, y).ok());
      gram += x * x.transpose();
      xy += y * x;
    }
    const Eigen::VectorXd direct = gram.ldlt().solve(xy);
    EXPECT_LT((b->Theta(1) - direct).norm(), 1e-9) << "shared " << shared;
  }
}

// After many rank-1 updates on the simulator's features (ridge 0.001, QoE ~95), the
// Sherman-Morrison model still predicts what the direct ridge solution predicts.
TEST(BanditTest, ShermanMorrisonStaysAccurateOverLongRuns) {
  const std::vector<Variant> arms = TradeOffArms();
  const std::vector<DeviceContext> devices = SampleDevices(100, 5);
  BanditOptions bo;
  bo.num_arms = static_cast<int>(arms.size());
  bo.dim = kJointDim;
  bo.ridge = 0.001;
  Result<LinUcb> b = LinUcb::Create(bo);
  ASSERT_TRUE(b.ok());
  Eigen::MatrixXd gram = 0.001 * Eigen::MatrixXd::Identity(kJointDim, kJointDim);
  Eigen::VectorXd xy = Eigen::VectorXd::Zero(kJointDim);
  Eigen::MatrixXd x;
  const QoeOptions q;
  for (int t = 0; t < 20000; ++t) {
    const DeviceContext& d = devices[t % devices.size()];
    JointFeatures(d, arms, &x);
    const int a = t % bo.num_arms;  // round robin: every arm observed
    const double y = ExpectedQoe(arms[a], d, q);
    ASSERT_TRUE(b->Update(a, x.row(a).transpose(), y).ok());
    gram += x.row(a).transpose() * x.row(a);
    xy += y * x.row(a).transpose();
  }
  const Eigen::VectorXd direct = gram.ldlt().solve(xy);
  double worst = 0, model_error = 0;
  for (const DeviceContext& d : devices) {
    JointFeatures(d, arms, &x);
    worst = std::max(worst, (x * (b->Theta(0) - direct)).cwiseAbs().maxCoeff());
    // The model is well specified: predictions equal the expected QoE up to the ridge's bias.
    for (int a = 0; a < bo.num_arms; ++a)
      model_error =
          std::max(model_error, std::abs(x.row(a).dot(b->Theta(0)) - ExpectedQoe(arms[a], d, q)));
  }
  EXPECT_LT(worst, 1e-5);
  EXPECT_LT(model_error, 0.1) << "QoE points";
  std::printf("Sherman-Morrison vs direct: %.3g; model vs expected QoE: %.3g points\n", worst,
              model_error);
}

// Rewards far above the ridge prior's 0: a disjoint LinUCB with a small width never tries an arm
// whose prediction starts at 0; with the QoE ceiling as reward offset it does, and keeps the
// better one.
TEST(BanditTest, RewardOffsetMakesThePriorOptimistic) {
  for (double offset : {0.0, 100.0}) {
    BanditOptions bo;
    bo.num_arms = 2;
    bo.dim = 1;
    bo.shared = false;
    bo.alpha = 1;
    bo.ridge = 1;
    bo.reward_offset = offset;
    Result<LinUcb> b = LinUcb::Create(bo);
    ASSERT_TRUE(b.ok());
    const Eigen::MatrixXd x = Eigen::MatrixXd::Ones(2, 1);
    std::vector<int> picks(2, 0);
    for (int t = 0; t < 200; ++t) {
      const int a = *b->Select(x);
      ++picks[a];
      ASSERT_TRUE(b->Update(a, Eigen::VectorXd::Ones(1), a == 0 ? 90.0 : 95.0).ok());
    }
    if (offset == 0) {
      EXPECT_EQ(picks[1], 0);  // arm 0 first (tie), then its estimate ~90 beats arm 1's bonus
    } else {
      EXPECT_GE(picks[1], 190);
      EXPECT_NEAR(b->Theta(1)(0) + offset, 95.0, 0.5);
    }
  }
}

TEST(BanditTest, RejectsBadInputs) {
  BanditOptions bo;
  bo.num_arms = 0;
  bo.dim = 3;
  EXPECT_EQ(LinUcb::Create(bo).status().code(), StatusCode::kInvalidArgument);  // no arms
  bo.num_arms = 2;
  bo.ridge = 0;
  EXPECT_EQ(LinUcb::Create(bo).status().code(), StatusCode::kInvalidArgument);
  bo.ridge = 1;
  bo.alpha = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(LinUcb::Create(bo).status().code(), StatusCode::kInvalidArgument);
  bo.alpha = 1;
  Result<LinUcb> b = LinUcb::Create(bo);
  ASSERT_TRUE(b.ok());
  // Context dimension mismatch, in Select and in Update.
  EXPECT_EQ(b->Select(Eigen::MatrixXd::Ones(2, 4)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(b->Select(Eigen::MatrixXd::Ones(3, 3)).status().code(), StatusCode::kInvalidArgument);
  Eigen::MatrixXd nan_features = Eigen::MatrixXd::Ones(2, 3);
  nan_features(1, 2) = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(b->Select(nan_features).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(b->Update(0, Eigen::VectorXd::Ones(4), 1.0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(b->Update(2, Eigen::VectorXd::Ones(3), 1.0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(b->Update(-1, Eigen::VectorXd::Ones(3), 1.0).code(), StatusCode::kInvalidArgument);
  // NaN and infinite feedback are rejected and leave the model as it was.
  EXPECT_EQ(b->Update(0, Eigen::VectorXd::Ones(3), std::numeric_limits<double>::quiet_NaN()).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(b->Update(0, Eigen::VectorXd::Ones(3), std::numeric_limits<double>::infinity()).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(b->updates(), 0);
  EXPECT_TRUE(b->Theta(0).isZero());
  EXPECT_TRUE(b->Update(0, Eigen::VectorXd::Ones(3), 1.0).ok());
  // The simulator: no arms, no devices, a bad device, bad checkpoints.
  const std::vector<DeviceContext> devices = SampleDevices(5, 1);
  SelectSimOptions o = SimOptions(100);
  EXPECT_EQ(RunSelectSim({}, devices, o).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(RunSelectSim(TradeOffArms(), {}, o).status().code(), StatusCode::kInvalidArgument);
  std::vector<DeviceContext> bad = devices;
  bad[2].slowdown = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(RunSelectSim(TradeOffArms(), bad, o).status().code(), StatusCode::kInvalidArgument);
  o.checkpoints = {50, 20};
  EXPECT_EQ(RunSelectSim(TradeOffArms(), devices, o).status().code(), StatusCode::kInvalidArgument);
  // Variants JSON: empty list, a missing field, an accuracy out of range.
  EXPECT_FALSE(ParseVariants(nlohmann::json::parse(R"({"variants": []})"), "t").ok());
  EXPECT_FALSE(ParseVariants(nlohmann::json::parse(R"({"variants": [{"name": "a"}]})"), "t").ok());
  nlohmann::json j = nlohmann::json::parse(
      R"({"variants": [{"name": "a", "accuracy": 1.5, "flops": 10, "param_bytes": 4,
          "time_ms": 0.1, "profile": {"input_bytes": 4, "units": [{"time_ms_median": 0.1,
          "output_bytes": 40, "param_bytes": 4, "flops": 10}]}}]})");
  Result<std::vector<Variant>> v = ParseVariants(j, "t");
  EXPECT_EQ(v.status().code(), StatusCode::kInvalidArgument);
  j["variants"][0]["accuracy"] = 0.9;
  EXPECT_TRUE(ParseVariants(j, "t").ok());
}

// Many seeds: each seed's figures are those of a single-seed run with that seed (its own
// population), and the summary is the mean / median / min / max / sd of them.
TEST(BanditTest, MultiSeedSummaryOnATinyCase) {
  const std::vector<Variant> arms = TradeOffArms();
  SelectSimOptions o = SimOptions(300);
  o.devices = 20;
  const std::vector<uint64_t> seeds = {3, 1, 2};
  Result<MultiSeedResult> m = RunSelectSeeds(arms, o, seeds, /*keep_runs=*/true);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->seeds, seeds);
  ASSERT_EQ(m->policies.size(), 4u);
  ASSERT_EQ(m->runs.size(), 3u);
  for (size_t p = 0; p < m->policies.size(); ++p) {
    std::vector<double> finals;
    for (size_t i = 0; i < seeds.size(); ++i) {
      SelectSimOptions one = o;
      one.seed = seeds[i];
      Result<SelectSimResult> r = RunSelectSim(arms, SampleDevices(o.devices, seeds[i]), one);
      ASSERT_TRUE(r.ok());
      const PolicyTrace& t = r->policies[p];
      EXPECT_EQ(t.name, m->policies[p]);
      EXPECT_EQ(m->regret_oracle[p][i], t.regret_oracle.back()) << t.name << " seed " << seeds[i];
      EXPECT_EQ(m->regret_common[p][i], t.regret_common.back());
      EXPECT_EQ(m->mean_qoe[p][i], t.mean_qoe);
      if (t.regret_oracle_half > 0) {
        EXPECT_DOUBLE_EQ(m->late_ratio[p][i],
                         (t.regret_oracle.back() - t.regret_oracle_half) / t.regret_oracle_half);
      }
      finals.push_back(t.regret_oracle.back());
    }
    std::vector<double> sorted = finals;
    std::sort(sorted.begin(), sorted.end());
    const SeedStats s = m->RegretStats(p);
    EXPECT_DOUBLE_EQ(s.mean, (finals[0] + finals[1] + finals[2]) / 3) << m->policies[p];
    EXPECT_EQ(s.median, sorted[1]);
    EXPECT_EQ(s.min, sorted[0]);
    EXPECT_EQ(s.max, sorted[2]);
  }
  // The JSON carries the same summary.
  const nlohmann::json j = m->ToJson(arms);
  ASSERT_EQ(j["summary"].size(), 4u);
  EXPECT_EQ(j["summary"][0]["name"], "linucb");
  EXPECT_DOUBLE_EQ(j["summary"][0]["regret_oracle"]["median"].get<double>(),
                   m->RegretStats(0).median);
  EXPECT_EQ(j["per_seed"][1]["seed"], 1);
  EXPECT_EQ(j["runs"].size(), 3u);

  // SummarizeSeeds by hand: an even count takes the mean of the two middle values.
  Result<SeedStats> st = SummarizeSeeds({3, 1, 2, 10});
  ASSERT_TRUE(st.ok());
  EXPECT_DOUBLE_EQ(st->mean, 4.0);
  EXPECT_DOUBLE_EQ(st->median, 2.5);
  EXPECT_EQ(st->min, 1.0);
  EXPECT_EQ(st->max, 10.0);
  EXPECT_DOUBLE_EQ(st->sd, std::sqrt(50.0 / 3.0));
  EXPECT_EQ(SummarizeSeeds({7})->sd, 0.0);
  EXPECT_EQ(SummarizeSeeds({}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(RunSelectSeeds(arms, o, {}, false).status().code(), StatusCode::kInvalidArgument);
}

// select_sim's numeric lists: "5x" is not 5.
TEST(BanditTest, CommandLineListsRefuseBadNumbers) {
  EXPECT_EQ(ParseIntList("5x", "--checkpoints").status().code(), StatusCode::kInvalidArgument);
  for (const char* bad : {"", "1,,2", "1,", "x", "2.5", "1e3", "+3", "99999999999", "0x10"})
    EXPECT_FALSE(ParseIntList(bad, "--checkpoints").ok()) << "'" << bad << "'";
  Result<std::vector<int>> ok = ParseIntList("1000, 5000,20000", "--checkpoints");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(*ok, (std::vector<int>{1000, 5000, 20000}));
  EXPECT_NE(ParseIntList("5x", "--checkpoints").status().message().find("'5x'"), std::string::npos);

  for (const char* bad : {"1x", "", "nan", "inf", "0x1p3", "1e999", "1,,2", "1.0.0"})
    EXPECT_FALSE(ParseDoubleList(bad, "--alpha").ok()) << "'" << bad << "'";
  Result<std::vector<double>> d = ParseDoubleList("0.5, 1,2e-3", "--alpha");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, (std::vector<double>{0.5, 1.0, 0.002}));

  Result<std::vector<uint64_t>> s = ParseSeedList("101-103,7");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s, (std::vector<uint64_t>{101, 102, 103, 7}));
  for (const char* bad : {"5x", "3-1", "1,1", "1-3,2", "1-", "-1", "", "0-999999", "1--2"})
    EXPECT_FALSE(ParseSeedList(bad).ok()) << "'" << bad << "'";
}

// The chosen variant's profile is what the placement planner prices: PlanForVariant equals a
// planner built by hand from that profile and the device's options, and differs across variants.
TEST(BanditTest, ChosenVariantFeedsThePlacementPlanner) {
  const std::vector<Variant> arms = TradeOffArms();
  DeviceContext d;
  d.slowdown = 40;
  d.uplink_bps = 5e6;
  d.latency_sensitivity = 0.2;
  d.energy_weight = 0.05;
  // Pick with a trained bandit, then place the pick.
  BanditOptions bo;
  bo.num_arms = static_cast<int>(arms.size());
  bo.dim = kJointDim;
  bo.ridge = 0.001;
  bo.alpha = 1;
  Result<LinUcb> b = LinUcb::Create(bo);
  ASSERT_TRUE(b.ok());
  const QoeOptions q;
  Eigen::MatrixXd x;
  const std::vector<DeviceContext> pop = SampleDevices(50, 3);
  for (int t = 0; t < 2000; ++t) {
    JointFeatures(pop[t % 50], arms, &x);
    const int a = *b->Select(x);
    ASSERT_TRUE(b->Update(a, x.row(a).transpose(), ExpectedQoe(arms[a], pop[t % 50], q)).ok());
  }
  JointFeatures(d, arms, &x);
  const int chosen = *b->Select(x);
  int oracle = 0;
  for (int a = 1; a < 4; ++a)
    if (ExpectedQoe(arms[a], d, q) > ExpectedQoe(arms[oracle], d, q)) oracle = a;
  EXPECT_EQ(chosen, oracle);

  Result<VariantPlacement> p = PlanForVariant(arms[chosen], d);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->variant, arms[chosen].name);
  EXPECT_EQ(p->num_units, 2);
  EXPECT_EQ(p->total_param_bytes, arms[chosen].param_bytes);
  CostOptions co;
  co.device_slowdown = d.slowdown;
  co.w_energy = d.energy_weight / d.latency_sensitivity;
  Result<CostModel> cost = CostModel::Create(arms[chosen].profile, co);
  ASSERT_TRUE(cost.ok());
  RayleighOptions ro;
  ro.bandwidth_hz = d.uplink_bps / 2.91;
  Result<PlacementPlan> direct = PlacementPlanner(*cost, *DiscretizeRayleigh(ro)).Plan({});
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(p->plan.best_m, direct->best_m);
  ASSERT_EQ(p->plan.objective.size(), direct->objective.size());
  for (size_t m = 0; m < direct->objective.size(); ++m)
    EXPECT_DOUBLE_EQ(p->plan.objective[m], direct->objective[m]);
  // Another variant gives another plan (its own profile is priced).
  Result<VariantPlacement> other = PlanForVariant(arms[(chosen + 2) % 4], d);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->plan.objective, p->plan.objective);
  // A bad device is rejected.
  d.uplink_bps = 0;
  EXPECT_EQ(PlanForVariant(arms[0], d).status().code(), StatusCode::kInvalidArgument);
}

// The committed variants file parses and every profile is a valid cost model.
TEST(BanditTest, CommittedVariantsLoad) {
  const std::string path =
      std::string(SPLITINFER_SOURCE_DIR) + "/data/variants/digits_variants.json";
  if (!std::ifstream(path)) GTEST_SKIP() << "no " << path;
  Result<std::vector<Variant>> v = LoadVariants(path);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_GE(v->size(), 4u);
  for (const Variant& var : *v) {
    EXPECT_TRUE(CostModel::Create(var.profile, CostOptions{}).ok()) << var.name;
    EXPECT_GT(var.accuracy, 0.1) << var.name;
  }
}

}  // namespace
}  // namespace splitinfer::decision

#include "common/decision/simulator.h"

#include <cmath>

#include <gtest/gtest.h>

#include "common/decision/zoo_profiles.h"

namespace splitinfer::decision {
namespace {

const std::string kLocal = SPLITINFER_SOURCE_DIR "/data/traces";

CostModel Cost(const std::string& model, double slowdown) {
  CostOptions o;
  o.device_slowdown = slowdown;
  return *CostModel::Create(*AnalyticProfile(model), o);
}

TEST(ChannelSpecTest, ParsesTheIssueExamples) {
  Result<ChannelSpec> r = ChannelSpec::Parse("rayleigh:snr_db=10");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->kind, ChannelSpec::Kind::kRayleigh);
  EXPECT_DOUBLE_EQ(r->snr_db, 10);
  Result<ChannelSpec> g = ChannelSpec::Parse("gauss-markov:snr_db=3,doppler_hz=50");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_DOUBLE_EQ(g->doppler_hz, 50);
  Result<ChannelSpec> t = ChannelSpec::Parse("markov-fit:a/b.up");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->path, "a/b.up");
  EXPECT_FALSE(ChannelSpec::Parse("rayleigh:snr=10").ok());
  EXPECT_FALSE(ChannelSpec::Parse("rayleigh:doppler_hz=10").ok());
  EXPECT_FALSE(ChannelSpec::Parse("rayleigh:snr_db=abc").ok());
  EXPECT_FALSE(ChannelSpec::Parse("trace:").ok());
  // Analytic channels need every parameter: no spec runs on silent defaults.
  for (const char* bad :
       {"rayleigh", "rayleigh:", "gauss-markov", "gauss-markov:", "gauss-markov:snr_db=3",
        "gauss-markov:doppler_hz=5", "rayleigh:snr_db=3,snr_db=4", "rayleigh:snr_db=3,"}) {
    Result<ChannelSpec> r = ChannelSpec::Parse(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  Result<ChannelSpec> empty = ChannelSpec::Parse("gauss-markov:");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("snr_db=X,doppler_hz=Y"), std::string::npos)
      << empty.status();
  EXPECT_FALSE(ChannelSpec::Parse("awgn:snr_db=1").ok());
}

void ExpectSane(const SimResult& r) {
  ASSERT_FALSE(r.policies.empty());
  EXPECT_EQ(r.policies[0].name, "oracle");
  for (const PolicyStats& s : r.policies) {
    EXPECT_TRUE(std::isfinite(s.mean_cost)) << s.name;
    EXPECT_GE(s.ratio_to_oracle, 1.0 - 1e-12) << s.name;  // the oracle wins on every path
    EXPECT_GE(s.mean_boundary, 0);
    EXPECT_LE(s.mean_boundary, r.num_units);
  }
  EXPECT_LE(r.placement.best_m, r.num_units);
  EXPECT_NO_THROW(ToJson(r).dump());
  EXPECT_NE(ToTable(r).find("oracle"), std::string::npos);
}

class RayleighSimTest : public ::testing::TestWithParam<double> {};

TEST_P(RayleighSimTest, MonteCarloMatchesExactModelCost) {
  const CostModel cost = Cost("resnet18", 10);
  SimOptions o;
  o.episodes = 4000;
  o.seed = 3;
  Result<SimResult> r =
      RunSimulation(cost, *ChannelSpec::Parse("rayleigh:snr_db=" + std::to_string(GetParam())), o);
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectSane(*r);
  // On its own law the simulated mean of every policy agrees with its exact expected cost.
  for (const PolicyStats& s : r->policies) {
    if (!std::isfinite(s.model_expected_cost)) continue;
    EXPECT_NEAR(s.mean_cost, s.model_expected_cost, 5 * s.ci95 + 1e-9) << s.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Snr, RayleighSimTest, ::testing::Values(-5.0, 10.0, 25.0));

TEST(SeriesSimTest, TraceAndGaussMarkovRun) {
  const CostModel cost = Cost("mobilenetv2", 10);
  SimOptions o;
  o.episodes = 1000;
  o.gauss_markov_duration_s = 120;
  int ticks = 0;
  o.progress = [&](int, int) { ++ticks; };
  for (const std::string& spec :
       {std::string("gauss-markov:snr_db=5,doppler_hz=10"), "trace:" + kLocal + "/norway_tram_1",
        "markov-fit:" + kLocal + "/B_2020.02.14_09.38.22.csv"}) {
    Result<SimResult> r = RunSimulation(cost, *ChannelSpec::Parse(spec), o);
    ASSERT_TRUE(r.ok()) << r.status();
    ExpectSane(*r);
  }
  EXPECT_EQ(ticks, 60);
}

TEST(SeriesSimTest, LongWindowMakesProductStates) {
  const CostModel cost = Cost("resnet18", 10);
  SimOptions o;
  o.episodes = 1000;
  o.num_states = 4;
  o.long_window_s = 0.5;
  o.long_states = 3;
  Result<SimResult> r =
      RunSimulation(cost, *ChannelSpec::Parse("markov-fit:" + kLocal + "/norway_car_7"), o);
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectSane(*r);
  EXPECT_EQ(r->num_states, 12);
  EXPECT_TRUE(r->markov);
  o.long_states = 0;
  EXPECT_FALSE(
      RunSimulation(cost, *ChannelSpec::Parse("trace:" + kLocal + "/norway_car_7"), o).ok());
}

TEST(SeriesSimTest, ErrorsNameTheProblem) {
  const CostModel cost = Cost("alexnet", 10);
  SimOptions o;
  Result<SimResult> r = RunSimulation(cost, *ChannelSpec::Parse("trace:/no/such/file.up"), o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  o.fit_fraction = 1.5;
  std::string error;
  EXPECT_FALSE(o.IsValid(&error));
  EXPECT_NE(error.find("fit_fraction"), std::string::npos);
}

}  // namespace
}  // namespace splitinfer::decision

#include "device/live_decision.h"

#include <cmath>

#include <gtest/gtest.h>

namespace splitinfer {
namespace {

namespace sd = decision;

// Four equal units: 10 ms each in the profile, 1 MB input shrinking to 1 KB after the last.
sd::CostModel Cost() {
  sd::ModelProfile p;
  p.model = "toy";
  p.input_bytes = 1000000;
  for (int i = 0; i < 4; ++i) {
    sd::UnitProfile u;
    u.name = "u" + std::to_string(i);
    u.time_ms = 10.0;
    u.output_bytes = 1000000 >> (3 * (i + 1));
    p.units.push_back(u);
  }
  sd::CostOptions o;
  o.device_slowdown = 4.0;  // 40 ms per unit here, 10 ms on the edge
  return *sd::CostModel::Create(p, o);
}

// A series of `steps` 5 ms steps cycling through `rates`, each held for `hold` steps.
sd::RateSeries Series(const std::vector<double>& rates, size_t hold = 400, size_t steps = 4000) {
  sd::RateSeries s;
  s.name = "test";
  s.dt_s = 0.005;
  for (size_t i = 0; i < steps; ++i) s.rate_bps.push_back(rates[(i / hold) % rates.size()]);
  return s;
}

TEST(LiveDecisionTest, EveryPolicyNameBuildsAndBadOnesFail) {
  const sd::CostModel cost = Cost();
  const sd::RateSeries series = Series({1e6, 1e7, 1e8, 1e9});
  for (std::string name : {"bi", "ola", "neurosurgeon", "greedy", "best-fixed", "fixed:0",
                           "fixed:4", "local", "edge", "all-local", "all-edge"}) {
    LiveDecisionOptions o;
    o.policy = name;
    o.num_states = 4;
    for (bool markov : {false, true}) {
      auto d = LiveDecision::FromSeries(cost, series, markov, o);
      ASSERT_TRUE(d.ok()) << name << ": " << d.status();
      EXPECT_EQ((*d)->horizon(), 4);
      ASSERT_NE((*d)->series_model(), nullptr);
    }
    auto r = LiveDecision::FromRayleigh(cost, 10.0, o);
    ASSERT_TRUE(r.ok()) << name << ": " << r.status();
    EXPECT_EQ((*r)->series_model(), nullptr);
  }
  for (std::string name : {"fixed:5", "fixed:", "fixed:x", "nope"}) {
    LiveDecisionOptions o;
    o.policy = name;
    EXPECT_FALSE(LiveDecision::FromSeries(cost, series, false, o).ok()) << name;
  }
  for (const std::string& name : StandardPolicyNames()) {
    LiveDecisionOptions o;
    o.policy = name;
    auto d = LiveDecision::FromSeries(cost, series, true, o);
    ASSERT_TRUE(d.ok()) << name;
    EXPECT_EQ((*d)->policy_name(), name);
  }
}

TEST(LiveDecisionTest, BiOffloadsOnAFastChannelAndKeepsWorkOnASlowOne) {
  const sd::CostModel cost = Cost();
  LiveDecisionOptions o;
  o.num_states = 2;
  for (bool markov : {false, true}) {
    auto d = LiveDecision::FromSeries(cost, Series({1e5, 1e10}), markov, o);
    ASSERT_TRUE(d.ok()) << d.status();
    const int fast = (*d)->StateOf(1e10), slow = (*d)->StateOf(1e5);
    EXPECT_NE(fast, slow);
    EXPECT_TRUE((*d)->Stop(0, fast, fast));
    EXPECT_FALSE((*d)->Stop(0, slow, slow));
    // The prediction from the fast state is the price of stopping at once.
    EXPECT_NEAR((*d)->PredictedCost(fast), (*d)->PathPrice(0, fast), 1e-12);
  }
}

TEST(LiveDecisionTest, MatchesTheSimulatorsSeriesModel) {
  // The live table is the one split_sim builds: same problem from the same series and options.
  const sd::CostModel cost = Cost();
  const sd::RateSeries series = Series({2e6, 3e7, 5e5, 8e7}, 37);
  LiveDecisionOptions o;
  o.num_states = 4;
  auto d = LiveDecision::FromSeries(cost, series, true, o);
  ASSERT_TRUE(d.ok()) << d.status();
  sd::SeriesFitOptions fo;
  fo.num_states = 4;
  fo.observe_window_s = 0.02;
  auto m = sd::SeriesModel::Fit(cost, series, fo, "test");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE((*d)->problem().stop_cost.isApprox(m->problem().stop_cost));
  ASSERT_EQ((*d)->problem().transition.size(), m->problem().transition.size());
  for (size_t l = 0; l < m->problem().transition.size(); ++l)
    EXPECT_TRUE((*d)->problem().transition[l].isApprox(m->problem().transition[l])) << l;
}

TEST(LiveDecisionTest, TimeScaleMakesTheLinkFasterInWallTime) {
  const sd::CostModel cost = Cost();
  LiveDecisionOptions o;
  o.num_states = 1;
  auto d1 = LiveDecision::FromSeries(cost, Series({8e6}), false, o);
  o.time_scale = 10.0;
  auto d10 = LiveDecision::FromSeries(cost, Series({8e6}), false, o);
  ASSERT_TRUE(d1.ok() && d10.ok());
  // Sending 1 MB at 8 Mbit/s: 1 s; ten times faster in wall time at scale 10.
  EXPECT_NEAR((*d1)->PathPrice(0, 0), 1.0 + cost.EdgeTime(0), 1e-9);
  EXPECT_NEAR((*d10)->PathPrice(0, 0), 0.1 + cost.EdgeTime(0), 1e-9);
  // An emulated observation maps to the same state at either scale.
  EXPECT_EQ((*d1)->StateOf(8e6), (*d10)->StateOf(8e6));
}

TEST(LiveDecisionTest, DeadChannelNeverOffloads) {
  const sd::CostModel cost = Cost();
  LiveDecisionOptions o;
  auto d = LiveDecision::FromSeries(cost, Series({0.0}), true, o);
  ASSERT_TRUE(d.ok()) << d.status();
  for (int l = 0; l < 4; ++l) EXPECT_FALSE((*d)->Stop(l, 0, 0)) << l;
  EXPECT_NEAR((*d)->PredictedCost(0), cost.CumulativeContinueCost(4), 1e-12);
}

TEST(LiveDecisionTest, ExpectedCostFromMatchesTheBiValue) {
  const sd::CostModel cost = Cost();
  sd::RayleighOptions ro;
  ro.num_states = 6;
  auto law = sd::DiscretizeRayleigh(ro);
  ASSERT_TRUE(law.ok());
  auto p = sd::BuildProblem(cost, *law, 4);
  ASSERT_TRUE(p.ok());
  const sd::BiSolution bi = sd::SolveBackwardInduction(*p);
  auto policy = sd::MakeBiPolicy(*p);
  double mixed = 0;
  for (int s = 0; s < p->num_states(); ++s) {
    const double c = ExpectedCostFrom(*p, *policy, s);
    EXPECT_NEAR(c, bi.value(0, s), 1e-9 * std::max(1.0, c)) << s;
    mixed += p->initial(s) * c;
  }
  EXPECT_NEAR(mixed, bi.expected_cost, 1e-9 * std::max(1.0, mixed));
}

}  // namespace
}  // namespace splitinfer

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

sd::ChannelSpec Trace() { return *sd::ChannelSpec::Parse("trace:unused"); }

TEST(LiveDecisionTest, EveryPolicyNameBuildsAndBadOnesFail) {
  const sd::CostModel cost = Cost();
  const std::vector<double> rates{1e6, 1e7, 1e8, 1e9};
  for (std::string name :
       {"bi", "ola", "neurosurgeon", "greedy", "fixed:0", "fixed:4", "local", "edge"}) {
    LiveDecisionOptions o;
    o.policy = name;
    o.num_states = 4;
    auto d = LiveDecision::Create(cost, Trace(), rates, o);
    ASSERT_TRUE(d.ok()) << name << ": " << d.status();
    EXPECT_EQ((*d)->horizon(), 4);
  }
  for (std::string name : {"fixed:5", "fixed:", "fixed:x", "nope"}) {
    LiveDecisionOptions o;
    o.policy = name;
    EXPECT_FALSE(LiveDecision::Create(cost, Trace(), rates, o).ok()) << name;
  }
}

TEST(LiveDecisionTest, BiOffloadsOnAFastChannelAndKeepsWorkOnASlowOne) {
  const sd::CostModel cost = Cost();
  LiveDecisionOptions o;
  o.num_states = 2;
  auto d = LiveDecision::Create(cost, Trace(), {1e5, 1e10}, o);
  ASSERT_TRUE(d.ok()) << d.status();
  const int fast = (*d)->StateOf(1e10), slow = (*d)->StateOf(1e5);
  EXPECT_NE(fast, slow);
  EXPECT_TRUE((*d)->Stop(0, fast, fast));
  EXPECT_FALSE((*d)->Stop(0, slow, slow));
  // The prediction from the fast state is the price of stopping at once.
  EXPECT_NEAR((*d)->PredictedCost(fast), (*d)->PathPrice(0, fast), 1e-12);
}

TEST(LiveDecisionTest, TimeScaleMakesTheLinkFasterInWallTime) {
  const sd::CostModel cost = Cost();
  LiveDecisionOptions o;
  o.num_states = 1;
  auto d1 = LiveDecision::Create(cost, Trace(), {8e6}, o);
  o.time_scale = 10.0;
  auto d10 = LiveDecision::Create(cost, Trace(), {8e6}, o);
  ASSERT_TRUE(d1.ok() && d10.ok());
  // Sending 1 MB at 8 Mbit/s: 1 s; ten times faster in wall time at scale 10.
  EXPECT_NEAR((*d1)->PathPrice(0, 0), 1.0 + cost.EdgeTime(0), 1e-9);
  EXPECT_NEAR((*d10)->PathPrice(0, 0), 0.1 + cost.EdgeTime(0), 1e-9);
}

TEST(LiveDecisionTest, DeadChannelNeverOffloads) {
  const sd::CostModel cost = Cost();
  LiveDecisionOptions o;
  auto d = LiveDecision::Create(cost, Trace(), {0.0, 0.0, 0.0}, o);
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

#include "device/live_decision.h"

#include <cmath>
#include <random>
#include <tuple>

#include <gtest/gtest.h>

#include "common/decision/placement.h"
#include "common/decision/zoo_profiles.h"

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

// Placement (issue 7): the device never runs beyond the placed M.

constexpr int kAll = LiveDecisionOptions::kAllUnits;

// A sticky Markov law on the Rayleigh states (a slow channel: one step per 5 ms).
sd::ChannelLaw MarkovRayleigh(int k) {
  sd::RayleighOptions ro;
  ro.num_states = k;
  ro.snr_db = 0.0;
  ro.bandwidth_hz = 20e6;
  sd::ChannelLaw law = *sd::DiscretizeRayleigh(ro);
  law.iid = false;
  law.epoch_s = 0.005;
  law.transition = Eigen::MatrixXd::Constant(k, k, 0.2 / k);
  law.transition.diagonal().array() += 0.8;
  return law;
}

sd::RayleighOptions RayleighFor(const LiveDecisionOptions& o, double snr_db) {
  sd::RayleighOptions ro;
  ro.snr_db = snr_db;
  ro.bandwidth_hz = o.bandwidth_hz;
  ro.num_states = o.num_states;
  ro.outage_prob = o.outage_prob;
  return ro;
}

// Expected cost from boundary 0 under the problem's initial law (the planner's figure).
double MixedPredicted(const LiveDecision& d) {
  double c = 0.0;
  for (int s = 0; s < d.problem().num_states(); ++s)
    c += d.problem().initial(s) * d.PredictedCost(s);
  return c;
}

enum class Source { kSeriesIid, kSeriesMarkov, kRayleigh, kMarkovLaw };

Result<std::shared_ptr<const LiveDecision>> Make(Source src, const sd::CostModel& cost,
                                                 const LiveDecisionOptions& o) {
  const sd::RateSeries series = Series({2e6, 3e7, 5e5, 8e7}, 37);
  switch (src) {
    case Source::kSeriesIid:
      return LiveDecision::FromSeries(cost, series, false, o);
    case Source::kSeriesMarkov:
      return LiveDecision::FromSeries(cost, series, true, o);
    case Source::kRayleigh:
      return LiveDecision::FromRayleigh(cost, 0.0, o);
    case Source::kMarkovLaw:
      return LiveDecision::FromLaw(cost, MarkovRayleigh(o.num_states), o);
  }
  return InternalError("unreachable");
}

// horizon = M for M in {all (N), 0, 1, N/2, N-1, N}, over every channel source.
class LiveHorizonTest : public ::testing::TestWithParam<std::tuple<int, Source>> {};

TEST_P(LiveHorizonTest, NoPolicyRunsBeyondTheHorizon) {
  const auto [m_opt, src] = GetParam();
  const sd::CostModel cost = Cost();
  const int n = cost.num_units(), m = m_opt == kAll ? n : m_opt;
  for (std::string name : {"bi", "ola", "neurosurgeon", "greedy", "best-fixed", "fixed:0",
                           "fixed:3", "fixed:4", "local", "edge"}) {
    LiveDecisionOptions o;
    o.policy = name;
    o.num_states = 4;
    o.horizon = m_opt;
    auto d = Make(src, cost, o);
    ASSERT_TRUE(d.ok()) << name << ": " << d.status();
    EXPECT_EQ((*d)->horizon(), m) << name;
    EXPECT_EQ((*d)->problem().horizon, m) << name;
    EXPECT_EQ((*d)->num_units(), n);
    const int k = (*d)->problem().num_states();
    for (int l = m; l <= n + 1; ++l)
      for (int s = 0; s < k; ++s)
        for (int f = 0; f < k; ++f) EXPECT_TRUE((*d)->Stop(l, s, f)) << name << " l=" << l;
    // Every prediction prices a path that ends by M.
    for (int s = 0; s < k; ++s) EXPECT_TRUE(std::isfinite((*d)->PredictedCost(s))) << name;
    if (name == "local") {
      // All-local runs every placed unit and offloads at M (stays local only when M = N).
      for (int l = 0; l < m; ++l)
        for (int s = 0; s < k; ++s) EXPECT_FALSE((*d)->Stop(l, s, s)) << l;
    }
    if (name == "fixed:4" || name == "fixed:3") {
      // K is clamped to M: the device offloads at min(K, M) unless the channel forbids it there.
      const int target = std::min(name == "fixed:4" ? 4 : 3, m);
      for (int l = 0; l < target; ++l)
        for (int s = 0; s < k; ++s) EXPECT_FALSE((*d)->Stop(l, s, s)) << name << " l=" << l;
    }
  }
}

TEST_P(LiveHorizonTest, BiPredictionIsThePlannersInferenceCost) {
  const auto [m_opt, src] = GetParam();
  const sd::CostModel cost = Cost();
  const int n = cost.num_units(), m = m_opt == kAll ? n : m_opt;
  LiveDecisionOptions o;
  o.num_states = 4;
  o.horizon = m_opt;
  auto d = Make(src, cost, o);
  ASSERT_TRUE(d.ok()) << d.status();
  // The planner the simulator runs for the same channel: truncation of the fitted series
  // problem, or every M built from the law.
  std::unique_ptr<sd::PlacementPlanner> planner;
  sd::ChannelLaw law;
  if (src == Source::kSeriesIid || src == Source::kSeriesMarkov) {
    const sd::StoppingProblem& full = (*d)->series_model()->problem();
    planner = std::make_unique<sd::PlacementPlanner>(cost, full, full.stop_cost);
  } else {
    law = src == Source::kRayleigh ? *sd::DiscretizeRayleigh(RayleighFor(o, 0.0))
                                   : MarkovRayleigh(o.num_states);
    planner = std::make_unique<sd::PlacementPlanner>(cost, law);
    // Below M the table is BI's on the horizon-M problem itself.
    auto p = sd::BuildProblem(cost, law, m);
    ASSERT_TRUE(p.ok());
    auto bi = sd::MakeBiPolicy(*p);
    for (int l = 0; l < m; ++l)
      for (int s = 0; s < p->num_states(); ++s)
        EXPECT_EQ((*d)->Stop(l, s, s), bi->StopAt(l, s)) << l << " " << s;
  }
  sd::PlacementOptions po;
  Result<sd::PlacementPlan> plan = planner->Plan(po);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const double want = plan->inference_cost[m];
  EXPECT_NEAR(MixedPredicted(**d), want, 1e-9 * want) << "M = " << m;
}

// "M3_Rayleigh": readable names in ctest's list instead of gtest's byte dumps.
std::string HorizonCaseName(const ::testing::TestParamInfo<std::tuple<int, Source>>& info) {
  static const char* kSource[] = {"SeriesIid", "SeriesMarkov", "Rayleigh", "MarkovLaw"};
  const int m = std::get<0>(info.param);
  return (m < 0 ? std::string("Mall") : "M" + std::to_string(m)) + "_" +
         kSource[static_cast<int>(std::get<1>(info.param))];
}

INSTANTIATE_TEST_SUITE_P(
    Placements, LiveHorizonTest,
    ::testing::Combine(::testing::Values(kAll, 0, 1, 2, 3, 4),
                       ::testing::Values(Source::kSeriesIid, Source::kSeriesMarkov,
                                         Source::kRayleigh, Source::kMarkovLaw)),
    HorizonCaseName);

TEST(LiveDecisionTest, HorizonOutsideTheModelIsRejected) {
  const sd::CostModel cost = Cost();
  for (int m : {-2, 5, 100}) {
    LiveDecisionOptions o;
    o.horizon = m;
    for (auto d : {LiveDecision::FromSeries(cost, Series({1e6, 1e7}), true, o),
                   LiveDecision::FromRayleigh(cost, 10.0, o),
                   LiveDecision::FromLaw(cost, MarkovRayleigh(4), o)}) {
      ASSERT_FALSE(d.ok()) << m;
      EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
      EXPECT_NE(d.status().message().find("horizon"), std::string::npos) << d.status();
    }
  }
  std::string error;
  LiveDecisionOptions o;
  o.horizon = 5;
  EXPECT_FALSE(o.IsValid(4, &error));
  EXPECT_NE(error.find("0..N = 4"), std::string::npos) << error;
  o.horizon = 4;
  EXPECT_TRUE(o.IsValid(4, &error));
}

TEST(LiveDecisionTest, DeadSeriesCannotBePlacedShort) {
  // With nothing getting through, a forced offload at M < N has no finite price: refused, while
  // M = N (run everything locally) still works.
  const sd::CostModel cost = Cost();
  LiveDecisionOptions o;
  o.horizon = 2;
  auto d = LiveDecision::FromSeries(cost, Series({0.0}), true, o);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kFailedPrecondition) << d.status();
  o.horizon = 4;
  EXPECT_TRUE(LiveDecision::FromSeries(cost, Series({0.0}), true, o).ok());
}

TEST(LiveDecisionTest, FromLawScalesRatesLikeFromRayleigh) {
  const sd::CostModel cost = Cost();
  LiveDecisionOptions o;
  o.num_states = 6;
  o.time_scale = 5.0;
  o.horizon = 3;
  auto a = LiveDecision::FromRayleigh(cost, 3.0, o);
  auto b = LiveDecision::FromLaw(cost, *sd::DiscretizeRayleigh(RayleighFor(o, 3.0)), o);
  ASSERT_TRUE(a.ok() && b.ok());
  // (Exact: outage entries are 1e300, which isApprox's norms overflow on.)
  EXPECT_TRUE(((*a)->problem().stop_cost.array() == (*b)->problem().stop_cost.array()).all());
  EXPECT_TRUE((*a)->law().rate_bps.isApprox((*b)->law().rate_bps));
  EXPECT_EQ((*a)->StateOf(2e6), (*b)->StateOf(2e6));
  // Markov: the epoch is emulated time too, so the chain mixes per wall second c times faster.
  sd::ChannelLaw law = MarkovRayleigh(4);
  o.num_states = 4;
  auto m5 = LiveDecision::FromLaw(cost, law, o);
  ASSERT_TRUE(m5.ok()) << m5.status();
  EXPECT_NEAR((*m5)->law().epoch_s, law.epoch_s / 5.0, 1e-15);
  law.iid = false;
  law.transition = Eigen::MatrixXd::Constant(3, 3, 1.0 / 3);  // wrong size
  EXPECT_FALSE(LiveDecision::FromLaw(cost, law, o).ok());
}

// SPEC section 4 on the live path: for the equal-width MLP the closed-form M* placed as the
// live horizon gives the closed form's inference cost (the simulator's numbers).
TEST(LiveDecisionTest, EqualWidthMlpClosedFormOnTheLivePath) {
  sd::AnalyticProfileOptions ao;
  ao.mlp_width = 1024;
  ao.mlp_layers = 8;
  sd::CostOptions co;
  co.device_slowdown = 2000.0;
  co.w_energy = 0.2;
  const sd::CostModel cost = *sd::CostModel::Create(*sd::AnalyticProfile("mlp", ao), co);
  std::mt19937_64 rng(11);
  std::exponential_distribution<double> h(1.0);
  std::vector<double> r(20000);
  for (double& x : r) x = sd::ShannonRate(1e6, sd::DbToLinear(-5.0), h(rng));
  const sd::ChannelLaw law = *sd::DiscretizeEmpirical(r, 16);
  int interior = 0;
  for (double rr : {1.0, 1e2, 1e4, 1e6, 1e8}) {
    sd::PlacementOptions po;
    po.inferences_per_version = rr;
    Result<sd::PlacementPlan> closed = sd::MlpClosedFormPlacement(cost, law, po);
    ASSERT_TRUE(closed.ok()) << closed.status();
    const int m = closed->best_m;
    interior += m > 0 && m < cost.num_units();
    LiveDecisionOptions o;
    o.horizon = m;
    auto d = LiveDecision::FromLaw(cost, law, o);
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ((*d)->horizon(), m);
    const double want = closed->inference_cost[m];
    EXPECT_NEAR(MixedPredicted(**d), want, 1e-9 * want) << "R = " << rr << " M* = " << m;
  }
  EXPECT_GT(interior, 0);
}

}  // namespace
}  // namespace splitinfer

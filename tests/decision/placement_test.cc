#include "common/decision/placement.h"

#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <tuple>

#include <gtest/gtest.h>

#include "common/decision/zoo_profiles.h"

namespace splitinfer::decision {
namespace {

CostModel MlpCost(double slowdown, double queue_ms) {
  AnalyticProfileOptions ao;
  ao.mlp_width = 1024;
  ao.mlp_layers = 8;
  CostOptions o;
  o.device_slowdown = slowdown;
  o.edge_queue_ms = queue_ms;
  o.w_energy = 0.2;
  return *CostModel::Create(*AnalyticProfile("mlp", ao), o);
}

// An i.i.d. law without outage: Rayleigh samples binned by quantiles.
ChannelLaw SampledRayleigh(double snr_db, double bandwidth_hz, int k, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> h(1.0);
  std::vector<double> r(20000);
  for (double& x : r) x = ShannonRate(bandwidth_hz, DbToLinear(snr_db), h(rng));
  return *DiscretizeEmpirical(r, k);
}

// The closed form equals the numeric BI placement over a sweep of R.
class MlpClosedFormTest : public ::testing::TestWithParam<std::tuple<double, double, double>> {};

TEST_P(MlpClosedFormTest, EqualsNumericOptimumOverSweepOfR) {
  const auto [slowdown, snr_db, queue_ms] = GetParam();
  const CostModel cost = MlpCost(slowdown, queue_ms);
  const ChannelLaw law = SampledRayleigh(snr_db, 1e6, 16, 11);
  PlacementPlanner planner(cost, law);
  std::set<int> seen;
  for (double log_r = 0.0; log_r <= 8.0; log_r += 0.125) {
    PlacementOptions po;
    po.inferences_per_version = std::pow(10.0, log_r);
    Result<PlacementPlan> numeric = planner.Plan(po);
    Result<PlacementPlan> closed = MlpClosedFormPlacement(cost, law, po);
    ASSERT_TRUE(numeric.ok()) << numeric.status();
    ASSERT_TRUE(closed.ok()) << closed.status();
    for (int m = 0; m <= cost.num_units(); ++m)
      EXPECT_NEAR(closed->objective[m], numeric->objective[m], 1e-12 * numeric->objective[m])
          << "M = " << m << " R = " << po.inferences_per_version;
    EXPECT_EQ(closed->best_m, numeric->best_m) << "R = " << po.inferences_per_version;
    seen.insert(numeric->best_m);
  }
  EXPECT_GE(seen.size(), 2u);  // the sweep crosses at least one breakpoint
  EXPECT_TRUE(seen.count(0));  // R = 1: downloading never pays
}

INSTANTIATE_TEST_SUITE_P(Sweep, MlpClosedFormTest,
                         ::testing::Combine(::testing::Values(10.0, 200.0, 2000.0),
                                            ::testing::Values(-5.0, 10.0),
                                            ::testing::Values(0.0, 3.0)));

TEST(MlpClosedFormTest, InteriorOptimumAppears) {
  // A slow device and a poor channel: a few units on the device buy new channel draws.
  const CostModel cost = MlpCost(2000.0, 0.0);
  const ChannelLaw law = SampledRayleigh(-5.0, 1e6, 16, 11);
  std::set<int> seen;
  for (double log_r = 0.0; log_r <= 8.0; log_r += 0.125) {
    PlacementOptions po;
    po.inferences_per_version = std::pow(10.0, log_r);
    seen.insert(MlpClosedFormPlacement(cost, law, po)->best_m);
  }
  bool interior = false;
  for (int m : seen) interior |= m > 0 && m < cost.num_units();
  EXPECT_TRUE(interior) << "optima seen: " << seen.size();
}

TEST(MlpClosedFormTest, RejectsUnequalChainsAndOutageLaws) {
  const CostModel resnet = *CostModel::Create(*AnalyticProfile("resnet18"), CostOptions());
  const ChannelLaw law = SampledRayleigh(0, 1e6, 8, 1);
  EXPECT_FALSE(MlpClosedFormPlacement(resnet, law, {}).ok());
  RayleighOptions ro;
  EXPECT_FALSE(MlpClosedFormPlacement(MlpCost(10, 0), *DiscretizeRayleigh(ro), {}).ok());
}

TEST(PlacementPlannerTest, BudgetOlaAndValidation) {
  const CostModel cost = *CostModel::Create(*AnalyticProfile("resnet18"), CostOptions());
  RayleighOptions ro;
  ro.snr_db = 5;
  ro.bandwidth_hz = 5e6;
  const ChannelLaw law = *DiscretizeRayleigh(ro);
  PlacementPlanner planner(cost, law);
  PlacementOptions po;
  po.inferences_per_version = 1e6;
  po.storage_budget_bytes = cost.PlacementBytes(4);
  Result<PlacementPlan> bi = planner.Plan(po);
  ASSERT_TRUE(bi.ok()) << bi.status();
  EXPECT_EQ(bi->feasible, 5);
  EXPECT_LE(bi->best_m, 4);
  EXPECT_TRUE(std::isinf(bi->objective[5]));
  po.method = PlacementMethod::kOneStageLookAhead;
  Result<PlacementPlan> ola = planner.Plan(po);
  ASSERT_TRUE(ola.ok());
  for (int m = 0; m <= 4; ++m) EXPECT_LE(bi->objective[m], ola->objective[m] + 1e-12);
  po.inferences_per_version = -1;
  std::string error;
  EXPECT_FALSE(po.IsValid(&error));
  EXPECT_NE(error.find("inferences_per_version"), std::string::npos);
  EXPECT_FALSE(planner.Plan(po).ok());
}

}  // namespace
}  // namespace splitinfer::decision

namespace splitinfer::decision {
namespace {

// The fast path (truncating the full problem) gives the same objective as building every M.
TEST(PlacementPlannerTest, TruncationEqualsRebuilding) {
  const CostModel cost = *CostModel::Create(*AnalyticProfile("resnet18"), CostOptions());
  RayleighOptions ro;
  ro.snr_db = 0;
  ChannelLaw law = *DiscretizeRayleigh(ro);  // has an outage state
  for (bool markov : {false, true}) {
    if (markov) {
      law.iid = false;
      law.epoch_s = 0.05;
      law.transition =
          Eigen::MatrixXd::Constant(law.num_states(), law.num_states(), 0.5 / law.num_states());
      law.transition.diagonal().array() += 0.5;
    }
    PlacementPlanner slow(cost, law);
    PlacementPlanner fast(cost, *BuildProblem(cost, law, cost.num_units()),
                          ForcedStopRows(cost, law));
    for (double r : {1.0, 1e3, 1e6}) {
      PlacementOptions po;
      po.inferences_per_version = r;
      const PlacementPlan a = *slow.Plan(po), b = *fast.Plan(po);
      for (int m = 0; m <= cost.num_units(); ++m)
        EXPECT_NEAR(a.objective[m], b.objective[m], 1e-12 * a.objective[m]) << m;
      EXPECT_EQ(a.best_m, b.best_m);
      po.method = PlacementMethod::kOneStageLookAhead;
      const PlacementPlan c = *slow.Plan(po), d = *fast.Plan(po);
      for (int m = 0; m <= cost.num_units(); ++m)
        EXPECT_NEAR(c.objective[m], d.objective[m], 1e-12 * c.objective[m]) << m;
    }
  }
}

}  // namespace
}  // namespace splitinfer::decision

namespace splitinfer::decision {
namespace {

// Brute force over every M, zoo model and law: the plan's inference cost is BI's value of the
// problem built for that M (and the exact cost of its BI policy), the objective adds D(M)/R, and
// best_m is the argmin. The live device (LiveDecision with horizon M) predicts the same
// inference_cost[M] (tests/device/live_decision_test.cc).
class PlacementBruteForceTest
    : public ::testing::TestWithParam<std::tuple<std::string, bool, double>> {};

TEST_P(PlacementBruteForceTest, PlanIsTheArgminOfSolvedProblems) {
  const auto [model, markov, r] = GetParam();
  CostOptions co;
  co.device_slowdown = 10.0;
  const CostModel cost = *CostModel::Create(*AnalyticProfile(model), co);
  RayleighOptions ro;
  ro.num_states = 8;
  ro.snr_db = 5;
  ChannelLaw law = *DiscretizeRayleigh(ro);
  if (markov) {
    law.iid = false;
    law.epoch_s = 0.01;
    law.transition = Eigen::MatrixXd::Constant(8, 8, 0.3 / 8);
    law.transition.diagonal().array() += 0.7;
  }
  PlacementOptions po;
  po.inferences_per_version = r;
  po.storage_budget_bytes = cost.PlacementBytes(cost.num_units() - 1);  // the last unit never fits
  Result<PlacementPlan> plan = PlacementPlanner(cost, law).Plan(po);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const int n = cost.num_units();
  double best = std::numeric_limits<double>::infinity();
  int best_m = -1;
  for (int m = 0; m < n; ++m) {
    Result<StoppingProblem> p = BuildProblem(cost, law, m);
    ASSERT_TRUE(p.ok()) << p.status();
    const double v = SolveBackwardInduction(*p).expected_cost;
    EXPECT_NEAR(plan->inference_cost[m], v, 1e-12 * v) << "M = " << m;
    EXPECT_NEAR(ExactExpectedCost(*p, *MakeBiPolicy(*p)), v, 1e-9 * v) << "M = " << m;
    const double j = cost.DownloadCost(m) / r + v;
    EXPECT_NEAR(plan->objective[m], j, 1e-12 * j) << "M = " << m;
    if (j < best) best = j, best_m = m;
  }
  EXPECT_TRUE(std::isinf(plan->objective[n]));  // over the budget
  EXPECT_EQ(plan->feasible, n);
  EXPECT_EQ(plan->best_m, best_m);
  EXPECT_DOUBLE_EQ(plan->best_objective, best);
}

INSTANTIATE_TEST_SUITE_P(Zoo, PlacementBruteForceTest,
                         ::testing::Combine(::testing::Values("resnet18", "vgg16", "mobilenetv2",
                                                              "alexnet"),
                                            ::testing::Bool(), ::testing::Values(1.0, 1e3, 1e6)));

}  // namespace
}  // namespace splitinfer::decision

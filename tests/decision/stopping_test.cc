#include "common/decision/stopping.h"

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <tuple>

#include <gtest/gtest.h>

#include "common/decision/zoo_profiles.h"

namespace splitinfer::decision {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct RandomSpec {
  int k = 3, h = 4;
  bool iid = true;
  bool outage = false;  // state 0 forbids offloading before the horizon
  bool local_end = true;
};

Eigen::VectorXd RandomDistribution(int k, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0.05, 1.0);
  Eigen::VectorXd p(k);
  for (int i = 0; i < k; ++i) p(i) = u(rng);
  return p / p.sum();
}

StoppingProblem RandomProblem(const RandomSpec& spec, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  StoppingProblem p;
  p.horizon = spec.h;
  p.iid = spec.iid;
  p.initial = RandomDistribution(spec.k, rng);
  p.continue_cost.resize(spec.h);
  for (int l = 0; l < spec.h; ++l) p.continue_cost(l) = 0.05 + 0.5 * u(rng);
  p.stop_cost.resize(spec.h + 1, spec.k);
  for (int l = 0; l <= spec.h; ++l)
    for (int s = 0; s < spec.k; ++s) p.stop_cost(l, s) = 3.0 * u(rng);
  if (spec.local_end) p.stop_cost.row(spec.h).setConstant(spec.h * 0.3 * u(rng));
  if (spec.outage)
    for (int l = 0; l < spec.h; ++l) p.stop_cost(l, 0) = kInf;
  if (!spec.iid)
    for (int l = 0; l < spec.h; ++l) {
      Eigen::MatrixXd q(spec.k, spec.k);
      for (int s = 0; s < spec.k; ++s) q.row(s) = RandomDistribution(spec.k, rng).transpose();
      p.transition.push_back(q);
    }
  EXPECT_TRUE(p.Validate().ok()) << p.Validate();
  return p;
}

// Optimum over all history-dependent rules: expectimax over the tree of every state path, using
// the full history (no Markov shortcut).
double HistoryOptimum(const StoppingProblem& p) {
  std::function<double(std::vector<int>&)> value = [&](std::vector<int>& hist) {
    const int l = static_cast<int>(hist.size()) - 1, s = hist.back();
    if (l == p.horizon) return p.stop_cost(l, s);
    double cont = p.continue_cost(l);
    for (int n = 0; n < p.num_states(); ++n) {
      const double q = p.iid ? p.initial(n) : p.transition[l](s, n);
      hist.push_back(n);
      cont += q * value(hist);
      hist.pop_back();
    }
    return std::min(p.stop_cost(l, s), cont);
  };
  double total = 0;
  for (int s0 = 0; s0 < p.num_states(); ++s0) {
    std::vector<int> hist = {s0};
    total += p.initial(s0) * value(hist);
  }
  return total;
}

// K = 3, H = 4: BI's exact cost equals the minimum over all 2^(H K) = 4096 deterministic Markov
// stopping rules, each evaluated exactly, and the expectimax over every history.
class BruteForceTest : public ::testing::TestWithParam<std::tuple<bool, bool, uint64_t>> {};

TEST_P(BruteForceTest, BiEqualsEnumerationOfAllStoppingRules) {
  RandomSpec spec;
  spec.iid = std::get<0>(GetParam());
  spec.outage = std::get<1>(GetParam());
  spec.local_end = std::get<2>(GetParam()) % 2 == 0;
  const StoppingProblem p = RandomProblem(spec, std::get<2>(GetParam()));
  const BiSolution bi = SolveBackwardInduction(p);
  const int bits = p.horizon * p.num_states();
  double best = kInf;
  for (uint32_t mask = 0; mask < (1u << bits); ++mask) {
    std::vector<uint8_t> table(bits);
    for (int b = 0; b < bits; ++b) table[b] = (mask >> b) & 1;
    best = std::min(best, ExactExpectedCost(p, TablePolicy("rule", p.horizon, 3, table)));
  }
  EXPECT_NEAR(bi.expected_cost, best, 1e-12);
  EXPECT_NEAR(bi.expected_cost, HistoryOptimum(p), 1e-12);
  EXPECT_NEAR(ExactExpectedCost(p, *MakeBiPolicy(p)), bi.expected_cost, 1e-12);
  EXPECT_TRUE(std::isfinite(bi.expected_cost));
}

INSTANTIATE_TEST_SUITE_P(K3H4, BruteForceTest,
                         ::testing::Combine(::testing::Bool(), ::testing::Bool(),
                                            ::testing::Values(1u, 2u, 3u, 4u)));

// Randomized problems: BI <= every other policy, oracle <= BI, OLA = BI at H-1.
class RandomizedTest : public ::testing::TestWithParam<uint64_t> {};

TEST_P(RandomizedTest, BiBeatsEveryPolicyAndOracleBeatsBi) {
  std::mt19937_64 rng(GetParam());
  RandomSpec spec;
  spec.k = 2 + static_cast<int>(rng() % 5);
  spec.h = 1 + static_cast<int>(rng() % 7);
  spec.iid = rng() % 2 == 0;
  spec.outage = rng() % 3 == 0;
  spec.local_end = rng() % 2 == 0;
  const StoppingProblem p = RandomProblem(spec, GetParam() * 7919);
  const BiSolution bi = SolveBackwardInduction(p);
  for (const auto& policy : MakeStandardPolicies(p)) {
    const double c = ExactExpectedCost(p, *policy);
    EXPECT_TRUE(std::isfinite(c)) << policy->name();
    EXPECT_LE(bi.expected_cost, c + 1e-12) << policy->name();
  }
  Result<double> oracle = ExactOracleCost(p);
  ASSERT_TRUE(oracle.ok()) << oracle.status();
  EXPECT_LE(*oracle, bi.expected_cost + 1e-12);
  // OLA and BI coincide at the last boundary.
  auto ola = MakeOlaPolicy(p);
  auto bip = MakeBiPolicy(p);
  for (int s = 0; s < p.num_states(); ++s)
    EXPECT_EQ(ola->StopAt(p.horizon - 1, s), bip->StopAt(p.horizon - 1, s)) << "state " << s;
}

INSTANTIATE_TEST_SUITE_P(Seeds, RandomizedTest, ::testing::Range<uint64_t>(1, 41));

// Monotone case: a static channel (identity transitions), constant C and stop costs convex in l
// (S_l - S_{l+1} non-increasing), so once stopping beats one more step it always does.
class MonotoneTest : public ::testing::TestWithParam<uint64_t> {};

TEST_P(MonotoneTest, OlaEqualsBiEverywhere) {
  std::mt19937_64 rng(GetParam());
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const int k = 4, h = 8;
  StoppingProblem p;
  p.horizon = h;
  p.iid = false;
  p.initial = RandomDistribution(k, rng);
  p.continue_cost = Eigen::VectorXd::Constant(h, 0.2 + 0.3 * u(rng));
  p.stop_cost.resize(h + 1, k);
  for (int s = 0; s < k; ++s) {
    const double a = 1 + 9 * u(rng), decay = 0.2 + u(rng), b = 0.1 * u(rng);
    for (int l = 0; l <= h; ++l) p.stop_cost(l, s) = a * std::exp(-decay * l) + b * l;
  }
  p.transition.assign(h, Eigen::MatrixXd::Identity(k, k));
  ASSERT_TRUE(p.Validate().ok());
  auto ola = MakeOlaPolicy(p);
  auto bi = MakeBiPolicy(p);
  EXPECT_EQ(ola->table(), bi->table());
  EXPECT_NEAR(ExactExpectedCost(p, *ola), SolveBackwardInduction(p).expected_cost, 1e-12);
}

INSTANTIATE_TEST_SUITE_P(Seeds, MonotoneTest, ::testing::Range<uint64_t>(1, 11));

// A static channel (identity Markov matrix) makes BI's choice the Neurosurgeon choice.
class StaticChannelTest : public ::testing::TestWithParam<uint64_t> {};

TEST_P(StaticChannelTest, BiCoincidesWithNeurosurgeon) {
  RandomSpec spec;
  spec.k = 5;
  spec.h = 6;
  spec.iid = false;
  spec.outage = GetParam() % 2 == 0;
  StoppingProblem p = RandomProblem(spec, GetParam());
  p.transition.assign(p.horizon, Eigen::MatrixXd::Identity(spec.k, spec.k));
  auto bi = MakeBiPolicy(p);
  auto ns = MakeNeurosurgeonPolicy(p);
  for (int s = 0; s < spec.k; ++s) {
    int stop_bi = p.horizon;
    for (int l = 0; l < p.horizon; ++l)
      if (bi->StopAt(l, s)) {
        stop_bi = l;
        break;
      }
    EXPECT_EQ(stop_bi, ns->PlannedBoundary(s)) << "state " << s;
  }
  EXPECT_NEAR(ExactExpectedCost(p, *ns), SolveBackwardInduction(p).expected_cost, 1e-12);
}

INSTANTIATE_TEST_SUITE_P(Seeds, StaticChannelTest, ::testing::Range<uint64_t>(1, 11));

CostModel ResNetCost(double slowdown) {
  CostOptions o;
  o.device_slowdown = slowdown;
  Result<CostModel> m = CostModel::Create(*AnalyticProfile("resnet18"), o);
  EXPECT_TRUE(m.ok()) << m.status();
  return *m;
}

// Rayleigh: every value is finite at any SNR and placement, outage states never offload before
// the horizon, and a forced offload in an outage is priced at the floor rate.
class RayleighStoppingTest : public ::testing::TestWithParam<double> {};

TEST_P(RayleighStoppingTest, FiniteCostsAndOutageHandling) {
  const CostModel cost = ResNetCost(10.0);
  RayleighOptions ro;
  ro.snr_db = GetParam();
  ro.num_states = 32;
  Result<ChannelLaw> law = DiscretizeRayleigh(ro);
  ASSERT_TRUE(law.ok());
  for (int m = 0; m <= cost.num_units(); ++m) {
    Result<StoppingProblem> p = BuildProblem(cost, *law, m);
    ASSERT_TRUE(p.ok()) << p.status();
    const BiSolution bi = SolveBackwardInduction(*p);
    ASSERT_TRUE(bi.value.allFinite()) << "M = " << m;
    ASSERT_TRUE(std::isfinite(bi.expected_cost));
    for (int l = 0; l < m; ++l) EXPECT_FALSE(bi.stop[l * law->num_states() + 0]);
    for (const auto& policy : MakeStandardPolicies(*p)) {
      const double c = ExactExpectedCost(*p, *policy);
      EXPECT_TRUE(std::isfinite(c)) << policy->name() << " M = " << m;
      EXPECT_LE(bi.expected_cost, c + 1e-9) << policy->name();
    }
    if (m < cost.num_units()) {
      EXPECT_DOUBLE_EQ(p->stop_cost(m, 0), cost.StopCostAtRate(m, law->floor_rate_bps));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(SnrSweep, RayleighStoppingTest,
                         ::testing::Values(-20.0, -5.0, 0.0, 10.0, 25.0));

// The closed-form OLA threshold of SPEC section 3 reproduces the numeric OLA table on an i.i.d.
// Rayleigh channel priced at the instantaneous rate.
TEST(OlaClosedFormTest, ThresholdMatchesNumericTable) {
  const CostModel cost = ResNetCost(3.0);
  RayleighOptions ro;
  ro.snr_db = 5.0;
  ro.num_states = 64;
  const ChannelLaw law = *DiscretizeRayleigh(ro);
  const StoppingProblem p = *BuildProblem(cost, law, cost.num_units());
  auto ola = MakeOlaPolicy(p);
  const int k = law.num_states();
  Eigen::VectorXd w = p.stop_cost.row(p.horizon).transpose();
  int stops = 0;
  for (int l = p.horizon - 1; l >= 0; --l) {
    const double look = p.continue_cost(l) + p.initial.dot(w);
    const double tau = OlaShannonGainThreshold(cost.TransferWeight(), cost.Bits(l), ro.bandwidth_hz,
                                               DbToLinear(ro.snr_db), look,
                                               cost.options().w_time * cost.EdgeTime(l));
    const double r_tau =
        std::isinf(tau) ? kInf : ShannonRate(ro.bandwidth_hz, DbToLinear(ro.snr_db), tau);
    for (int s = 1; s < k; ++s) {
      EXPECT_EQ(ola->StopAt(l, s), law.rate_bps(s) >= r_tau) << "l " << l << " s " << s;
      stops += ola->StopAt(l, s);
    }
    Eigen::VectorXd here(k);
    for (int s = 0; s < k; ++s) here(s) = p.Allowed(l, s) ? p.stop_cost(l, s) : look;
    w = here;
  }
  EXPECT_GT(stops, 0);
}

TEST(EpisodeTest, PolicyAndOracleCostsOnAPath) {
  RandomSpec spec;
  const StoppingProblem p = RandomProblem(spec, 5);
  Episode e;
  e.state = {0, 1, 2, 1, 0};
  e.stop_cost = {5.0, 0.1, 4.0, 4.0, 4.0};
  int b = -1;
  const double oracle = OracleEpisodeCost(p, e, &b);
  EXPECT_EQ(b, 1);
  EXPECT_DOUBLE_EQ(oracle, p.continue_cost(0) + 0.1);
  auto edge = MakeAllEdgePolicy(p);
  EXPECT_DOUBLE_EQ(EpisodeCost(p, *edge, e, &b), 5.0);
  EXPECT_EQ(b, 0);
  auto local = MakeAllLocalPolicy(p);
  EXPECT_DOUBLE_EQ(EpisodeCost(p, *local, e, &b), p.continue_cost.sum() + 4.0);
  EXPECT_EQ(b, 4);
}

TEST(ValidateTest, RejectsForbiddenHorizonAndBadRows) {
  StoppingProblem p = RandomProblem(RandomSpec(), 9);
  p.stop_cost(p.horizon, 1) = kInf;
  EXPECT_FALSE(p.Validate().ok());
  p = RandomProblem(RandomSpec{3, 4, false}, 9);
  p.transition[1](0, 0) += 0.5;
  EXPECT_FALSE(p.Validate().ok());
}

}  // namespace
}  // namespace splitinfer::decision

namespace splitinfer::decision {
namespace {

// On an i.i.d. law the BI and OLA tables are one rate threshold per boundary.
TEST(RateThresholdTest, IidTablesAreThresholds) {
  CostOptions o;
  o.device_slowdown = 5;
  const CostModel cost = *CostModel::Create(*AnalyticProfile("mobilenetv2"), o);
  RayleighOptions ro;
  ro.snr_db = 5;
  ro.num_states = 64;
  const ChannelLaw law = *DiscretizeRayleigh(ro);
  const StoppingProblem p = *BuildProblem(cost, law, cost.num_units());
  std::mt19937_64 rng(2);
  std::exponential_distribution<double> h(1.0);
  for (const auto& policy : {MakeBiPolicy(p), MakeOlaPolicy(p), MakeGreedyPolicy(p)}) {
    Result<std::vector<double>> tau = RateThresholds(*policy, law, p.horizon);
    ASSERT_TRUE(tau.ok()) << policy->name() << ": " << tau.status();
    int stops = 0;
    for (int i = 0; i < 20000; ++i) {
      const double r = ShannonRate(ro.bandwidth_hz, DbToLinear(ro.snr_db), h(rng));
      const int l = i % p.horizon;
      ASSERT_EQ(policy->StopAt(l, law.StateOf(r)), r >= (*tau)[l]) << policy->name();
      stops += r >= (*tau)[l];
    }
    EXPECT_GT(stops, 0) << policy->name();
  }
  // A table that stops in a low state but not in a higher one is no threshold.
  std::vector<uint8_t> odd(static_cast<size_t>(p.horizon) * law.num_states(), 0);
  odd[3] = 1;
  EXPECT_EQ(RateThresholds(TablePolicy("odd", p.horizon, law.num_states(), odd), law, p.horizon)
                .status()
                .code(),
            StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace splitinfer::decision

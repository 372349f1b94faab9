#include "common/decision/placement_wire.h"

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "common/decision/zoo_profiles.h"

namespace splitinfer::decision {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

ChannelLaw RayleighLaw(int k = 16) {
  RayleighOptions o;
  o.snr_db = 5.0;
  o.bandwidth_hz = 2e6;
  o.num_states = k;
  o.outage_prob = 0.02;
  auto law = DiscretizeRayleigh(o);
  EXPECT_TRUE(law.ok()) << law.status();
  return *law;
}

// A Markov law fitted on an AR(1) walk of the log rate (rates stay > 0: no zero-rate state).
ChannelLaw MarkovLaw(int k = 8) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> w(0.0, 0.2);
  std::vector<double> rates(20000);
  double x = 0.0;
  for (double& r : rates) {
    x = 0.95 * x + w(rng);
    r = 2e6 * std::exp(x);
  }
  auto law = FitMarkov(rates, 0.01, k);
  EXPECT_TRUE(law.ok()) << law.status();
  return *law;
}

void ExpectSameLaw(const ChannelLaw& a, const ChannelLaw& b) {
  ASSERT_EQ(a.num_states(), b.num_states());
  for (int s = 0; s < a.num_states(); ++s) {
    EXPECT_EQ(a.rate_bps(s), b.rate_bps(s)) << "state " << s;
    EXPECT_EQ(a.stationary(s), b.stationary(s)) << "state " << s;
  }
  EXPECT_EQ(a.edges_bps, b.edges_bps);
  EXPECT_EQ(a.outage_states, b.outage_states);
  EXPECT_EQ(a.floor_rate_bps, b.floor_rate_bps);
  EXPECT_EQ(a.iid, b.iid);
  EXPECT_EQ(a.epoch_s, b.epoch_s);
  ASSERT_EQ(a.transition.rows(), b.transition.rows());
  ASSERT_EQ(a.transition.cols(), b.transition.cols());
  EXPECT_TRUE(a.transition == b.transition);
}

TEST(LawWireTest, IidRayleighWithOutageRoundTrips) {
  const ChannelLaw law = RayleighLaw();
  ASSERT_EQ(law.outage_states, 1);
  ASSERT_GT(law.floor_rate_bps, 0.0);
  wire::ChannelStats w;
  LawToWire(law, &w);
  EXPECT_EQ(w.transition_size(), 0);  // i.i.d.: no matrix on the wire
  auto back = LawFromWire(w);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameLaw(law, *back);
}

TEST(LawWireTest, MarkovRoundTrips) {
  const ChannelLaw law = MarkovLaw();
  ASSERT_FALSE(law.iid);
  ASSERT_GE(law.num_states(), 4);
  wire::ChannelStats w;
  LawToWire(law, &w);
  EXPECT_EQ(w.transition_size(), law.num_states() * law.num_states());
  auto back = LawFromWire(w);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameLaw(law, *back);
}

TEST(LawWireTest, LawToWireClearsWhatWasThere) {
  wire::ChannelStats w;
  LawToWire(MarkovLaw(), &w);
  const ChannelLaw iid = RayleighLaw(4);
  LawToWire(iid, &w);
  auto back = LawFromWire(w);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameLaw(iid, *back);
}

// A valid 3-state Markov law on the wire, then one field broken per case.
wire::ChannelStats ValidMarkovWire() {
  wire::ChannelStats w;
  for (double r : {1e5, 1e6, 5e6}) w.add_rate_bps(r);
  for (double p : {0.2, 0.3, 0.5}) w.add_stationary(p);
  for (double e : {4e5, 2e6}) w.add_edges_bps(e);
  for (double p : {0.8, 0.2, 0.0, 0.1, 0.8, 0.1, 0.0, 0.3, 0.7}) w.add_transition(p);
  w.set_epoch_s(0.01);
  w.set_outage_states(1);
  w.set_floor_rate_bps(5e4);
  return w;
}

struct BadLawCase {
  std::string name;
  std::function<void(wire::ChannelStats*)> mutate;
  std::string field;  // the message must name it
};

class LawFromWireRejectsTest : public ::testing::TestWithParam<BadLawCase> {};

TEST(LawFromWireRejectsTest, BaselineIsValid) {
  auto law = LawFromWire(ValidMarkovWire());
  ASSERT_TRUE(law.ok()) << law.status();
  EXPECT_FALSE(law->iid);
  EXPECT_EQ(law->num_states(), 3);
  EXPECT_EQ(law->outage_states, 1);
}

TEST_P(LawFromWireRejectsTest, NamesTheField) {
  wire::ChannelStats w = ValidMarkovWire();
  GetParam().mutate(&w);
  auto law = LawFromWire(w);
  ASSERT_FALSE(law.ok()) << GetParam().name << " was accepted";
  EXPECT_EQ(law.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(law.status().message().find(GetParam().field), std::string::npos)
      << law.status().message();
}

void SetRate(wire::ChannelStats* w, int s, double v) { w->set_rate_bps(s, v); }

INSTANTIATE_TEST_SUITE_P(
    Cases, LawFromWireRejectsTest,
    ::testing::Values(
        BadLawCase{"NoStates", [](wire::ChannelStats* w) { w->Clear(); }, "rate_bps"},
        BadLawCase{"TooManyStates",
                   [](wire::ChannelStats* w) {
                     w->Clear();
                     const int k = kMaxWireStates + 1;
                     for (int s = 0; s < k; ++s) {
                       w->add_rate_bps(1e5 * (s + 1));
                       w->add_stationary(1.0 / k);
                       if (s > 0) w->add_edges_bps(1e5 * s + 5e4);
                     }
                   },
                   "rate_bps"},
        BadLawCase{"StationaryCount", [](wire::ChannelStats* w) { w->add_stationary(0.0); },
                   "stationary"},
        BadLawCase{"StationaryNotSummingToOne",
                   [](wire::ChannelStats* w) { w->set_stationary(2, 0.6); }, "stationary"},
        BadLawCase{"StationaryNegative",
                   [](wire::ChannelStats* w) {
                     w->set_stationary(0, -0.1);
                     w->set_stationary(2, 0.8);
                   },
                   "stationary"},
        BadLawCase{"StationaryNaN", [](wire::ChannelStats* w) { w->set_stationary(1, kNaN); },
                   "stationary"},
        BadLawCase{"NegativeRate", [](wire::ChannelStats* w) { SetRate(w, 0, -1.0); }, "rate_bps"},
        BadLawCase{"NaNRate", [](wire::ChannelStats* w) { SetRate(w, 1, kNaN); }, "rate_bps"},
        BadLawCase{"InfRate", [](wire::ChannelStats* w) { SetRate(w, 2, kInf); }, "rate_bps"},
        BadLawCase{"DescendingRates", [](wire::ChannelStats* w) { SetRate(w, 2, 5e5); },
                   "rate_bps"},
        BadLawCase{"EdgesCount", [](wire::ChannelStats* w) { w->add_edges_bps(9e6); }, "edges_bps"},
        BadLawCase{"EdgesDescending", [](wire::ChannelStats* w) { w->set_edges_bps(1, 1e5); },
                   "edges_bps"},
        BadLawCase{"EdgeNaN", [](wire::ChannelStats* w) { w->set_edges_bps(0, kNaN); },
                   "edges_bps"},
        BadLawCase{"TransitionNotKxK", [](wire::ChannelStats* w) { w->add_transition(0.0); },
                   "transition"},
        BadLawCase{"TransitionRowNotDistribution",
                   [](wire::ChannelStats* w) { w->set_transition(4, 0.5); }, "transition"},
        BadLawCase{"TransitionNegative",
                   [](wire::ChannelStats* w) {
                     w->set_transition(0, 1.1);
                     w->set_transition(1, -0.1);
                   },
                   "transition"},
        BadLawCase{"TransitionNaN", [](wire::ChannelStats* w) { w->set_transition(8, kNaN); },
                   "transition"},
        BadLawCase{"MarkovZeroEpoch", [](wire::ChannelStats* w) { w->set_epoch_s(0.0); },
                   "epoch_s"},
        BadLawCase{"MarkovNegativeEpoch", [](wire::ChannelStats* w) { w->set_epoch_s(-1.0); },
                   "epoch_s"},
        BadLawCase{"MarkovNaNEpoch", [](wire::ChannelStats* w) { w->set_epoch_s(kNaN); },
                   "epoch_s"},
        BadLawCase{"OutageStatesEqualK", [](wire::ChannelStats* w) { w->set_outage_states(3); },
                   "outage_states"},
        BadLawCase{"OutageStatesHuge",
                   [](wire::ChannelStats* w) { w->set_outage_states(0xFFFFFFFFu); },
                   "outage_states"},
        BadLawCase{"OutageWithZeroFloor", [](wire::ChannelStats* w) { w->set_floor_rate_bps(0.0); },
                   "floor"},
        BadLawCase{"NegativeFloor", [](wire::ChannelStats* w) { w->set_floor_rate_bps(-1.0); },
                   "floor_rate_bps"},
        BadLawCase{"NaNFloor", [](wire::ChannelStats* w) { w->set_floor_rate_bps(kNaN); },
                   "floor_rate_bps"}),
    [](const ::testing::TestParamInfo<BadLawCase>& info) { return info.param.name; });

TEST(LawFromWireTest, IidIgnoresEpochAndAcceptsNoOutageWithZeroFloor) {
  wire::ChannelStats w = ValidMarkovWire();
  w.clear_transition();
  w.set_epoch_s(0.0);  // meaningless for an i.i.d. law
  w.set_outage_states(0);
  w.set_floor_rate_bps(0.0);
  auto law = LawFromWire(w);
  ASSERT_TRUE(law.ok()) << law.status();
  EXPECT_TRUE(law->iid);
  EXPECT_EQ(law->outage_states, 0);
}

// A state that carries nothing (a trace's quantile of zero samples, as DiscretizeEmpirical makes
// it) is a law a device may really hold: offloading there is priced +inf, not refused.
TEST(LawFromWireTest, AcceptsAZeroRateState) {
  wire::ChannelStats w = ValidMarkovWire();
  w.set_rate_bps(0, 0.0);
  auto law = LawFromWire(w);
  ASSERT_TRUE(law.ok()) << law.status();
  EXPECT_EQ(law->rate_bps(0), 0.0);
}

TEST(LawFromWireTest, AcceptsExactlyMaxStates) {
  wire::ChannelStats w;
  const int k = kMaxWireStates;
  for (int s = 0; s < k; ++s) {
    w.add_rate_bps(1e5 * (s + 1));
    w.add_stationary(1.0 / k);
    if (s > 0) w.add_edges_bps(1e5 * s + 5e4);
  }
  auto law = LawFromWire(w);
  ASSERT_TRUE(law.ok()) << law.status();
  EXPECT_EQ(law->num_states(), k);
}

// ---- Cost options ----

wire::DeviceProfile ValidProfile() {
  CostOptions o;
  o.w_energy = 0.3;
  wire::DeviceProfile p;
  CostToWire(o, {1.0, 2.0}, &p);
  return p;
}

TEST(CostWireTest, RoundTripsWhatTravels) {
  CostOptions o;
  o.device_slowdown = 7.5;
  o.edge_speedup = 3.0;
  o.p_tx_w = 0.9;
  o.p_rx_w = 0.4;
  o.device_power_w = 3.5;
  o.w_energy = 0.25;
  o.w_time = 2.0;
  o.downlink_bps = 20e6;
  o.edge_queue_ms = 1.5;
  wire::DeviceProfile p;
  CostToWire(o, {0.5, 1.5, 2.5}, &p);
  ASSERT_EQ(p.unit_time_ms_size(), 3);
  EXPECT_EQ(p.unit_time_ms(2), 2.5);
  auto back = CostFromWire(p);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->device_slowdown, o.device_slowdown);
  EXPECT_EQ(back->edge_speedup, o.edge_speedup);
  EXPECT_EQ(back->p_tx_w, o.p_tx_w);
  EXPECT_EQ(back->p_rx_w, o.p_rx_w);
  EXPECT_EQ(back->device_power_w, o.device_power_w);
  EXPECT_EQ(back->w_energy, o.w_energy);
  EXPECT_EQ(back->w_time, o.w_time);
  EXPECT_EQ(back->downlink_bps, o.downlink_bps);
  EXPECT_EQ(back->edge_queue_ms, o.edge_queue_ms);
  EXPECT_TRUE(back->energy_model == EnergyModel::kPower);
}

// Each field with a value CostOptions::IsValid refuses (NaN and inf always; negatives; zero where
// the rule is "> 0").
struct BadCostCase {
  std::string name;
  std::function<void(wire::DeviceProfile*, double)> set;
  std::vector<double> bad;
  bool zero_ok;  // whether 0 is accepted for this field
};

class CostFromWireRejectsTest : public ::testing::TestWithParam<BadCostCase> {};

TEST_P(CostFromWireRejectsTest, RefusesBadValues) {
  const BadCostCase& c = GetParam();
  for (double v : c.bad) {
    wire::DeviceProfile p = ValidProfile();
    c.set(&p, v);
    auto o = CostFromWire(p);
    ASSERT_FALSE(o.ok()) << c.name << " = " << v << " accepted";
    EXPECT_EQ(o.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(o.status().message().find("profile"), std::string::npos) << o.status();
    if (std::isfinite(v)) {
      EXPECT_NE(o.status().message().find(c.name), std::string::npos) << o.status();
    }
  }
  wire::DeviceProfile p = ValidProfile();
  c.set(&p, 0.0);
  EXPECT_EQ(CostFromWire(p).ok(), c.zero_ok) << c.name << " = 0";
}

#define SETTER(field) [](wire::DeviceProfile* p, double v) { p->set_##field(v); }

INSTANTIATE_TEST_SUITE_P(
    Fields, CostFromWireRejectsTest,
    ::testing::Values(
        BadCostCase{"device_slowdown", SETTER(device_slowdown), {kNaN, kInf, -1.0}, false},
        BadCostCase{"edge_speedup", SETTER(edge_speedup), {kNaN, -kInf, -2.0}, false},
        BadCostCase{"p_tx_w", SETTER(p_tx_w), {kNaN, kInf, -0.5}, false},
        BadCostCase{"p_rx_w", SETTER(p_rx_w), {kNaN, kInf, -0.5}, true},
        BadCostCase{"device_power_w", SETTER(device_power_w), {kNaN, kInf, -1.0}, true},
        BadCostCase{"w_energy", SETTER(w_energy), {kNaN, kInf, -0.1}, true},
        BadCostCase{"w_time", SETTER(w_time), {kNaN, kInf, -0.1}, true},
        BadCostCase{"downlink_bps", SETTER(downlink_bps), {kNaN, kInf, -1e6}, false},
        BadCostCase{"edge_queue_ms", SETTER(edge_queue_ms), {kNaN, kInf, -1.0}, true}),
    [](const ::testing::TestParamInfo<BadCostCase>& info) { return info.param.name; });

#undef SETTER

TEST(CostFromWireTest, RefusesBothWeightsZero) {
  wire::DeviceProfile p = ValidProfile();
  p.set_w_energy(0.0);
  p.set_w_time(0.0);
  auto o = CostFromWire(p);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.status().message().find("w_time"), std::string::npos) << o.status();
}

TEST(CostFromWireTest, AnEmptyProfileIsRefused) {
  // Every double 0 (a device that sent no profile): p_tx_w = 0 and both weights 0.
  EXPECT_FALSE(CostFromWire(wire::DeviceProfile()).ok());
}

// ---- The planner on a request ----

ModelProfile MlpShape(int layers) {
  AnalyticProfileOptions ao;
  ao.mlp_width = 256;
  ao.mlp_layers = layers;
  auto p = AnalyticProfile("mlp", ao);
  EXPECT_TRUE(p.ok()) << p.status();
  return *p;
}

CostOptions TestCost() {
  CostOptions o;
  o.device_slowdown = 4.0;
  o.w_energy = 0.2;
  o.edge_queue_ms = 0.5;
  o.downlink_bps = 20e6;
  return o;
}

std::vector<double> UnitTimes(int n) {
  std::vector<double> t(n);
  for (int i = 0; i < n; ++i) t[i] = 0.05 + 0.01 * (i % 5);
  return t;
}

wire::PlacementRequest MakeRequest(const ModelProfile& shape, const CostOptions& cost,
                                   const ChannelLaw& law, double r, uint64_t budget, bool ola) {
  wire::PlacementRequest q;
  q.set_model(shape.model);
  CostToWire(cost, UnitTimes(shape.num_units()), q.mutable_profile());
  LawToWire(law, q.mutable_channel());
  q.set_inferences_per_version(r);
  q.set_storage_budget_bytes(budget);
  q.set_one_stage_lookahead(ola);
  return q;
}

// The plan computed directly: the request's unit times in the shape, PlacementPlanner(cost, law).
PlacementPlan DirectPlan(ModelProfile shape, const CostOptions& options, const ChannelLaw& law,
                         double r, int64_t budget, bool ola, CostModel* cost_out = nullptr) {
  const std::vector<double> t = UnitTimes(shape.num_units());
  for (int i = 0; i < shape.num_units(); ++i) shape.units[i].time_ms = t[i];
  auto cost = CostModel::Create(shape, options);
  EXPECT_TRUE(cost.ok()) << cost.status();
  PlacementPlanner planner(*cost, law);
  PlacementOptions po;
  po.inferences_per_version = r;
  if (budget > 0) po.storage_budget_bytes = budget;
  po.method = ola ? PlacementMethod::kOneStageLookAhead : PlacementMethod::kBackwardInduction;
  auto plan = planner.Plan(po);
  EXPECT_TRUE(plan.ok()) << plan.status();
  if (cost_out) *cost_out = *cost;
  return *plan;
}

void ExpectNear(double a, double b, const std::string& what) {
  if (std::isinf(a) || std::isinf(b)) {
    EXPECT_EQ(a, b) << what;
  } else {
    EXPECT_NEAR(a, b, 1e-9 * std::max(1.0, std::abs(b))) << what;
  }
}

// (Markov law?, OLA?, R)
class PlanPlacementRequestTest : public ::testing::TestWithParam<std::tuple<bool, bool, double>> {};

TEST_P(PlanPlacementRequestTest, EqualsThePlannerRunDirectly) {
  const auto [markov, ola, r] = GetParam();
  const ModelProfile shape = MlpShape(12);
  const ChannelLaw law = markov ? MarkovLaw() : RayleighLaw();
  const CostOptions options = TestCost();
  auto reply = PlanPlacementRequest(shape, MakeRequest(shape, options, law, r, 0, ola));
  ASSERT_TRUE(reply.ok()) << reply.status();
  CostModel cost = *CostModel::Create(shape, options);
  const PlacementPlan plan = DirectPlan(shape, options, law, r, 0, ola, &cost);
  EXPECT_EQ(reply->code(), wire::OK);
  EXPECT_EQ(static_cast<int>(reply->m()), plan.best_m);
  ExpectNear(reply->objective(), plan.best_objective, "objective");
  ExpectNear(reply->download_cost(), plan.download_cost[plan.best_m], "download cost");
  ExpectNear(reply->inference_cost(), plan.inference_cost[plan.best_m], "inference cost");
  EXPECT_EQ(reply->download_bytes(), static_cast<uint64_t>(cost.PlacementBytes(plan.best_m)));
  ASSERT_EQ(reply->objective_by_m_size(), shape.num_units() + 1);
  for (int m = 0; m <= shape.num_units(); ++m)
    ExpectNear(reply->objective_by_m(m), plan.objective[m], "J(" + std::to_string(m) + ")");
}

INSTANTIATE_TEST_SUITE_P(LawMethodR, PlanPlacementRequestTest,
                         ::testing::Combine(::testing::Bool(), ::testing::Bool(),
                                            ::testing::Values(1.0, 100.0, 1e6)));

// A slow uplink and a large R: every unit is worth storing (BI), so a budget binds.
TEST(PlanPlacementRequestTest, HonoursTheStorageBudget) {
  const ModelProfile shape = MlpShape(12);
  const int n = shape.num_units();
  ChannelLaw slow;
  slow.rate_bps = Eigen::VectorXd::Constant(1, 1e5);
  slow.stationary = Eigen::VectorXd::Ones(1);
  const CostOptions options = TestCost();
  for (bool ola : {false, true}) {
    auto free = PlanPlacementRequest(shape, MakeRequest(shape, options, slow, 1e9, 0, ola));
    ASSERT_TRUE(free.ok()) << free.status();
    // (OLA is myopic here: one more unit then a stop never beats stopping at 0, so only BI
    // stores every unit.)
    if (!ola) {
      ASSERT_EQ(static_cast<int>(free->m()), n) << "test premise: unconstrained M* = N";
    }
    CostModel cost = *CostModel::Create(shape, options);
    const int64_t budget = cost.PlacementBytes(n / 2) + 1;  // units 1..n/2 fit, n/2+1 does not
    ASSERT_LT(budget, cost.PlacementBytes(n / 2 + 1));
    auto capped = PlanPlacementRequest(
        shape, MakeRequest(shape, options, slow, 1e9, static_cast<uint64_t>(budget), ola));
    ASSERT_TRUE(capped.ok()) << capped.status();
    EXPECT_LE(static_cast<int>(capped->m()), n / 2);
    EXPECT_LE(capped->download_bytes(), static_cast<uint64_t>(budget));
    for (int m = n / 2 + 1; m <= n; ++m)
      EXPECT_TRUE(std::isinf(capped->objective_by_m(m))) << "M = " << m << " over the budget";
    const PlacementPlan plan = DirectPlan(shape, options, slow, 1e9, budget, ola);
    EXPECT_EQ(static_cast<int>(capped->m()), plan.best_m);
    ExpectNear(capped->objective(), plan.best_objective, "objective");
  }
}

TEST(PlanPlacementRequestTest, FillsPlannerTime) {
  const ModelProfile shape = MlpShape(100);  // big enough to take more than a microsecond
  auto reply =
      PlanPlacementRequest(shape, MakeRequest(shape, TestCost(), MarkovLaw(16), 100.0, 0, false));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_GT(reply->planner_us(), 0u);
  EXPECT_LT(reply->planner_us(), 60u * 1000 * 1000);
}

TEST(PlanPlacementRequestTest, RefusesUnitTimesOfTheWrongCount) {
  const ModelProfile shape = MlpShape(6);
  for (int delta : {-1, 1}) {
    wire::PlacementRequest q = MakeRequest(shape, TestCost(), RayleighLaw(), 10.0, 0, false);
    if (delta < 0) {
      q.mutable_profile()->mutable_unit_time_ms()->RemoveLast();
    } else {
      q.mutable_profile()->add_unit_time_ms(1.0);
    }
    auto reply = PlanPlacementRequest(shape, q);
    ASSERT_FALSE(reply.ok());
    EXPECT_EQ(reply.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(reply.status().message().find("unit_time_ms"), std::string::npos) << reply.status();
  }
}

TEST(PlanPlacementRequestTest, RefusesBadUnitTimes) {
  const ModelProfile shape = MlpShape(6);
  for (double t : {-1.0, kNaN, kInf}) {
    wire::PlacementRequest q = MakeRequest(shape, TestCost(), RayleighLaw(), 10.0, 0, false);
    q.mutable_profile()->set_unit_time_ms(2, t);
    auto reply = PlanPlacementRequest(shape, q);
    ASSERT_FALSE(reply.ok()) << "unit time " << t;
    EXPECT_NE(reply.status().message().find("unit_time_ms"), std::string::npos) << reply.status();
  }
}

TEST(PlanPlacementRequestTest, RefusesBadR) {
  const ModelProfile shape = MlpShape(6);
  for (double r : {0.0, -5.0, kNaN, kInf, -kInf}) {
    auto reply =
        PlanPlacementRequest(shape, MakeRequest(shape, TestCost(), RayleighLaw(), r, 0, false));
    ASSERT_FALSE(reply.ok()) << "R = " << r;
    EXPECT_EQ(reply.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(reply.status().message().find("inferences_per_version"), std::string::npos)
        << reply.status();
  }
}

TEST(PlanPlacementRequestTest, RefusesABudgetBeyondInt64) {
  const ModelProfile shape = MlpShape(6);
  auto reply = PlanPlacementRequest(
      shape, MakeRequest(shape, TestCost(), RayleighLaw(), 10.0,
                         static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + 1, false));
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.status().message().find("storage_budget_bytes"), std::string::npos)
      << reply.status();
}

TEST(PlanPlacementRequestTest, PassesOnLawAndProfileErrors) {
  const ModelProfile shape = MlpShape(6);
  wire::PlacementRequest q = MakeRequest(shape, TestCost(), RayleighLaw(), 10.0, 0, false);
  q.mutable_channel()->set_outage_states(99);
  auto reply = PlanPlacementRequest(shape, q);
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.status().message().find("outage_states"), std::string::npos) << reply.status();

  q = MakeRequest(shape, TestCost(), RayleighLaw(), 10.0, 0, false);
  q.mutable_profile()->set_downlink_bps(-1.0);
  reply = PlanPlacementRequest(shape, q);
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.status().message().find("downlink_bps"), std::string::npos) << reply.status();
}

}  // namespace
}  // namespace splitinfer::decision

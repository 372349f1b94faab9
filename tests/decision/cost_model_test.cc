#include "common/decision/cost_model.h"

#include <cmath>

#include <gtest/gtest.h>

#include "common/decision/zoo_profiles.h"

namespace splitinfer::decision {
namespace {

const char* kProfile = R"({"model":"tiny","version":1,"input_shape":[3,4,4],"input_bytes":1000,
 "compute_device":"cpu","threads":1,"host":"h","date":"d","repeats":20,
 "units":[
  {"index":1,"name":"a","output_shape":[10],"output_bytes":2000,"param_bytes":100,"flops":10,
   "time_ms_median":1.0,"time_ms_p10":0.9,"time_ms_p90":1.1},
  {"index":2,"name":"b","output_shape":[5],"output_bytes":500,"param_bytes":300,"flops":10,
   "time_ms_median":3.0,"time_ms_p10":2.9,"time_ms_p90":3.1}]})";

TEST(ProfileJsonTest, ParsesTheProfilerSchema) {
  Result<ModelProfile> p = ParseProfileJson(kProfile, "tiny.json");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->model, "tiny");
  ASSERT_EQ(p->num_units(), 2);
  EXPECT_EQ(p->BoundaryBytes(0), 1000);
  EXPECT_EQ(p->BoundaryBytes(2), 500);
  EXPECT_DOUBLE_EQ(p->units[1].time_ms, 3.0);
  EXPECT_EQ(p->units[0].param_bytes, 100);
}

TEST(ProfileJsonTest, RejectsBrokenProfilesNamingTheFile) {
  std::string missing = kProfile;
  missing.replace(missing.find("\"output_bytes\":500"), 18, "\"outputbytes\":500");
  Result<ModelProfile> p = ParseProfileJson(missing, "tiny.json");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("tiny.json"), std::string::npos);
  std::string negative = kProfile;
  negative.replace(negative.find("\"time_ms_median\":3.0"), 20, "\"time_ms_median\":-3");
  p = ParseProfileJson(negative, "tiny.json");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("time_ms"), std::string::npos) << p.status();
  EXPECT_FALSE(ParseProfileJson("{", "x.json").ok());
}

TEST(CostOptionsTest, IsValidNamesTheBadValue) {
  CostOptions o;
  std::string error;
  EXPECT_TRUE(o.IsValid(&error)) << error;
  o.p_tx_w = -1;
  EXPECT_FALSE(o.IsValid(&error));
  EXPECT_NE(error.find("p_tx_w"), std::string::npos);
  o = CostOptions();
  o.edge_speedup = 0;
  EXPECT_FALSE(o.IsValid(&error));
  EXPECT_NE(error.find("edge_speedup"), std::string::npos);
  o = CostOptions();
  o.w_time = 0;
  EXPECT_FALSE(o.IsValid(&error));
  EXPECT_NE(error.find("w_time"), std::string::npos);
}

TEST(CostOptionsTest, FromJsonRejectsUnknownKeysAndBadValues) {
  Result<CostOptions> o = CostOptions::FromJson({{"p_tx_w", 1.0}, {"energy_model", "cmos"}});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_DOUBLE_EQ(o->p_tx_w, 1.0);
  EXPECT_EQ(o->energy_model, EnergyModel::kCmos);
  Result<CostOptions> round = CostOptions::FromJson(o->ToJson());
  ASSERT_TRUE(round.ok()) << round.status();
  Result<CostOptions> unknown = CostOptions::FromJson({{"p_txw", 1.0}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("p_txw"), std::string::npos);
  Result<CostOptions> bad = CostOptions::FromJson({{"device_slowdown", -2}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("device_slowdown"), std::string::npos);
  Result<CostOptions> type = CostOptions::FromJson({{"kappa", "big"}});
  ASSERT_FALSE(type.ok());
  EXPECT_NE(type.status().message().find("kappa"), std::string::npos);
}

TEST(CostModelTest, HandTableNumbers) {
  Result<ModelProfile> p = ParseProfileJson(kProfile, "tiny.json");
  ASSERT_TRUE(p.ok());
  CostOptions o;
  o.device_slowdown = 2.0;
  o.edge_speedup = 4.0;
  o.w_energy = 0.5;
  o.w_time = 1.0;
  o.device_power_w = 3.0;
  o.p_tx_w = 1.0;
  o.downlink_bps = 8000.0;
  Result<CostModel> m = CostModel::Create(*p, o);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_DOUBLE_EQ(m->DeviceTime(1), 0.002);
  EXPECT_DOUBLE_EQ(m->DeviceEnergy(2), 0.018);
  EXPECT_DOUBLE_EQ(m->ContinueCost(2), 0.5 * 0.018 + 0.006);
  EXPECT_DOUBLE_EQ(m->EdgeTime(0), 0.001);
  EXPECT_DOUBLE_EQ(m->EdgeTime(1), 0.00075);
  EXPECT_DOUBLE_EQ(m->EdgeTime(2), 0.0);
  // S_1(r) = (w_E P_tx + w_T) 8 s_1 / r + w_T T_edge(1).
  EXPECT_DOUBLE_EQ(m->StopCostAtRate(1, 16000.0), 1.5 * 1.0 + 0.00075);
  EXPECT_DOUBLE_EQ(m->StopCostAtRate(2, 1.0), 0.0);
  EXPECT_DOUBLE_EQ(m->CumulativeContinueCost(2), m->ContinueCost(1) + m->ContinueCost(2));
  EXPECT_DOUBLE_EQ(m->DownloadCost(2), (0.5 * 0.3 + 1.0) * 8 * 400 / 8000.0);
  o.energy_model = EnergyModel::kCmos;
  o.kappa = 1e-27;
  o.device_freq_hz = 1e9;
  m = CostModel::Create(*p, o);
  ASSERT_TRUE(m.ok());
  EXPECT_NEAR(m->DeviceEnergy(1), 1e-27 * 1e27 * 0.002, 1e-15);
}

TEST(AnalyticProfileTest, ZooUnitCountsAndKnownFlops) {
  struct Case {
    const char* name;
    int units;
    double gmacs;  // published multiply-add counts
  };
  for (const Case& c : {Case{"alexnet", 8, 0.714}, Case{"vgg16", 16, 15.47},
                        Case{"resnet18", 10, 1.814}, Case{"mobilenetv2", 20, 0.30}}) {
    Result<ModelProfile> p = AnalyticProfile(c.name);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->num_units(), c.units) << c.name;
    double flops = 0;
    for (const UnitProfile& u : p->units) flops += u.flops;
    EXPECT_NEAR(flops / 2e9 / c.gmacs, 1.0, 0.05) << c.name;
    EXPECT_EQ(p->input_bytes, 602112);
    EXPECT_EQ(p->units.back().output_bytes, 4000) << c.name;
  }
  Result<ModelProfile> r = AnalyticProfile("resnet18");
  EXPECT_EQ(r->units[0].flops, 236027904);
  EXPECT_EQ(r->units[0].output_bytes, 802816);
  EXPECT_EQ(AnalyticProfile("nope").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace splitinfer::decision

// The one realized-cost formula (docs/live.md, "The ledger"): each part priced as the cost model
// prices it, and the total equal to w_E energy + w_T latency + penalty.
namespace splitinfer::decision {
namespace {

TEST(PriceInferenceTest, PricesEachPartAndSumsThem) {
  CostOptions o;
  o.w_energy = 0.5;
  o.w_time = 2.0;
  o.p_tx_w = 0.8;
  o.device_power_w = 3.0;
  InferenceSpend s;
  s.device_s = 0.1;  // device_j unset: 3 W x 0.1 s
  s.upload_s = 0.2;
  s.edge_queue_s = 0.01;
  s.edge_compute_s = 0.02;
  s.download_s = 0.03;
  s.penalty = 0.25;
  const PricedInference p = PriceInference(o, s);
  EXPECT_DOUBLE_EQ(p.energy_j, 0.3 + 0.8 * 0.2);
  EXPECT_DOUBLE_EQ(p.latency_s, 0.1 + 0.2 + 0.06);
  EXPECT_DOUBLE_EQ(p.device, 0.5 * 0.3 + 2.0 * 0.1);
  EXPECT_DOUBLE_EQ(p.transfer, (0.5 * 0.8 + 2.0) * 0.2);
  EXPECT_DOUBLE_EQ(p.edge, 2.0 * 0.06);
  EXPECT_DOUBLE_EQ(p.penalty, 0.25);
  EXPECT_NEAR(p.total, p.device + p.transfer + p.edge + p.penalty, 1e-15);
  EXPECT_NEAR(p.total, 0.5 * p.energy_j + 2.0 * p.latency_s + 0.25, 1e-12);
  // A simulator's own energy figure is used as given.
  s.device_j = 1.0;
  EXPECT_DOUBLE_EQ(PriceInference(o, s).energy_j, 1.0 + 0.8 * 0.2);
}

// A device that runs every unit here costs what the cost model says a local inference costs.
TEST(PriceInferenceTest, AllLocalEqualsTheCostModelsContinueCosts) {
  CostOptions o;
  o.w_energy = 0.3;
  o.energy_model = EnergyModel::kCmos;
  ModelProfile prof;
  prof.model = "t";
  prof.input_bytes = 100;
  for (int l = 0; l < 3; ++l) {
    UnitProfile u;
    u.name = "u" + std::to_string(l);
    u.time_ms = 1.0 + l;
    u.output_bytes = 10;
    prof.units.push_back(u);
  }
  auto cost = CostModel::Create(prof, o);
  ASSERT_TRUE(cost.ok()) << cost.status();
  InferenceSpend s;
  for (int l = 1; l <= 3; ++l) s.device_s += cost->DeviceTime(l);
  EXPECT_NEAR(PriceInference(o, s).total, cost->CumulativeContinueCost(3), 1e-12);
}

}  // namespace
}  // namespace splitinfer::decision

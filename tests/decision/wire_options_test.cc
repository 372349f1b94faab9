// Wire options (issue 6): the boundary and the codec of the split tensor chosen together.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "common/decision/cost_model.h"
#include "common/decision/simulator.h"
#include "common/decision/stopping.h"

namespace splitinfer::decision {
namespace {

// Four units of 50 ms on the device (10 ms profiled, 5x slower), 1 MB input, outputs of 800, 400,
// 200 KB and 4 KB (the classifier's logits).
ModelProfile Profile() {
  ModelProfile p;
  p.model = "toy";
  p.input_bytes = 1000000;
  const int64_t out[] = {800000, 400000, 200000, 4000};
  for (int i = 0; i < 4; ++i) {
    UnitProfile u;
    u.name = "u" + std::to_string(i + 1);
    u.time_ms = 10.0;
    u.output_bytes = out[i];
    p.units.push_back(u);
  }
  return p;
}

CostOptions Options() {
  CostOptions o;
  o.device_slowdown = 5.0;
  o.edge_speedup = 10.0;
  return o;
}

// int8 + zstd: a tenth of the float32 bytes at boundaries 0..2, 1 ms to encode, 0.5 ms to decode,
// 99.5% top-1 agreement; fp16: half the bytes, 98% agreement.
std::vector<WireOption> Codecs() {
  WireOption int8;
  int8.name = "int8+zstd";
  WireOption fp16;
  fp16.name = "fp16";
  const ModelProfile p = Profile();
  for (int k = 0; k < 4; ++k) {
    const double raw = static_cast<double>(p.BoundaryBytes(k));
    int8.bytes.push_back(raw / 10);
    int8.encode_ms.push_back(1.0);
    int8.decode_ms.push_back(0.5);
    int8.top1_agreement.push_back(0.995);
    fp16.bytes.push_back(raw / 2);
    fp16.encode_ms.push_back(0.2);
    fp16.decode_ms.push_back(0.2);
    fp16.top1_agreement.push_back(0.98);
  }
  return {int8, fp16};
}

// A constant channel: one state at `rate`.
ChannelLaw Constant(double rate) {
  ChannelLaw law;
  law.rate_bps = Eigen::VectorXd::Constant(1, rate);
  law.stationary = Eigen::VectorXd::Ones(1);
  return law;
}

TEST(WireOptionsTest, Int8MakesBiOffloadWhereFloat32KeepsEverythingLocal) {
  // 8 Mbit/s: float32 takes 1 s at boundary 0 and 0.2 s at boundary 3, more than running the
  // remaining units here (0.2 s from boundary 0, 0.05 s from boundary 3); int8+zstd sends
  // boundary 0 in 0.1 s, and with 5 ms of encoding and 4 ms on the edge that beats 0.2 s.
  const ChannelLaw law = Constant(8e6);
  auto plain = CostModel::Create(Profile(), Options());
  ASSERT_TRUE(plain.ok()) << plain.status();
  auto p32 = BuildProblem(*plain, law, 4);
  ASSERT_TRUE(p32.ok()) << p32.status();
  auto bi32 = MakeBiPolicy(*p32);
  for (int l = 0; l < 4; ++l) EXPECT_FALSE(bi32->Stop(l, 0, 0)) << "float32 offloads at " << l;
  EXPECT_TRUE(p32->stop_option.empty());  // float32 only

  auto coded = CostModel::Create(Profile(), Options(), Codecs());
  ASSERT_TRUE(coded.ok()) << coded.status();
  ASSERT_EQ(coded->num_wire_options(), 3);
  auto p8 = BuildProblem(*coded, law, 4);
  ASSERT_TRUE(p8.ok()) << p8.status();
  auto bi8 = MakeBiPolicy(*p8);
  int stop = 4;
  for (int l = 0; l < 4 && stop == 4; ++l)
    if (bi8->Stop(l, 0, 0)) stop = l;
  ASSERT_LT(stop, 4) << "int8 should make BI offload";
  EXPECT_EQ(coded->WireOptionName(p8->StopOption(stop, 0)), "int8+zstd");
  EXPECT_LT(SolveBackwardInduction(*p8).expected_cost, SolveBackwardInduction(*p32).expected_cost);
}

TEST(WireOptionsTest, MinAgreementAndFidelityWeightGateTheCodecs) {
  CostOptions o = Options();
  o.min_agreement = 0.99;  // fp16 (98%) is out, int8+zstd (99.5%) stays
  auto cost = CostModel::Create(Profile(), o, Codecs());
  ASSERT_TRUE(cost.ok());
  EXPECT_TRUE(cost->OptionAllowed(0, 0));
  EXPECT_TRUE(cost->OptionAllowed(0, 1));
  EXPECT_FALSE(cost->OptionAllowed(0, 2));
  EXPECT_TRUE(std::isinf(cost->StopCostForTransfer(0, 0.1, 2)));
  o.min_agreement = 1.0;  // only float32
  auto strict = CostModel::Create(Profile(), o, Codecs());
  ASSERT_TRUE(strict.ok());
  for (double rate : {1e5, 1e7, 1e9}) EXPECT_EQ(strict->BestOptionAtRate(0, rate), 0) << rate;
  // The coding overhead: w_T (encode x slowdown + decode / speedup) + weight (1 - agreement).
  o.min_agreement = 0.0;
  o.fidelity_weight = 2.0;
  auto weighted = CostModel::Create(Profile(), o, Codecs());
  ASSERT_TRUE(weighted.ok());
  EXPECT_NEAR(weighted->OptionOverhead(1, 1), 1e-3 * 5.0 + 0.5e-3 / 10.0 + 2.0 * 0.005, 1e-12);
  EXPECT_EQ(weighted->OptionOverhead(1, 0), 0.0);
  EXPECT_NEAR(weighted->OptionBits(1, 1), 8.0 * 80000, 1e-9);
  // At a very fast rate bytes hardly matter: float32 (no coding) wins.
  EXPECT_EQ(weighted->BestOptionAtRate(0, 1e12), 0);
}

TEST(WireOptionsTest, PoliciesPayTheOptionTheirTableChose) {
  auto cost = CostModel::Create(Profile(), Options(), Codecs());
  ASSERT_TRUE(cost.ok());
  auto p = BuildProblem(*cost, Constant(8e6), 4);
  ASSERT_TRUE(p.ok());
  auto edge = MakeAllEdgePolicy(*p);
  Episode e;
  e.state.assign(5, 0);
  e.stop_cost.assign(5, 0.0);
  e.option_cost.assign(5, std::vector<double>{3.0, 1.0, 2.0});
  for (int l = 0; l < 5; ++l) e.stop_cost[l] = 1.0;  // the best option's cost
  const int chosen = p->StopOption(0, 0);
  int b = -1;
  EXPECT_DOUBLE_EQ(EpisodeCost(*p, *edge, e, &b), e.option_cost[0][chosen]);
  EXPECT_EQ(b, 0);
  EXPECT_DOUBLE_EQ(OracleEpisodeCost(*p, e, &b), 1.0);
}

TEST(WireOptionsTest, SeriesModelPricesEveryOptionAndSimulatorReportsThem) {
  auto cost = CostModel::Create(Profile(), Options(), Codecs());
  ASSERT_TRUE(cost.ok());
  RateSeries s;
  s.dt_s = 0.005;
  for (int i = 0; i < 20000; ++i) s.rate_bps.push_back(i % 400 < 200 ? 2e6 : 50e6);
  SeriesFitOptions fo;
  fo.num_states = 2;
  auto m = SeriesModel::Fit(*cost, s, fo, "test");
  ASSERT_TRUE(m.ok()) << m.status();
  const int slow = m->StateOf(2e6), fast = m->StateOf(50e6);
  ASSERT_NE(slow, fast);
  // On the slow state float32 never pays at boundary 0; int8+zstd does.
  EXPECT_EQ(cost->WireOptionName(m->problem().StopOption(0, slow)), "int8+zstd");
  const ScoredSeries scored(s, m->window(), 0);
  const Episode e = scored.EpisodeAt(*cost, *m, 10);
  ASSERT_EQ(e.option_cost.size(), 5u);
  for (int l = 0; l < 4; ++l) {
    double best = std::numeric_limits<double>::infinity();
    for (double v : e.option_cost[l]) best = std::min(best, v);
    EXPECT_DOUBLE_EQ(e.stop_cost[l], best) << l;
  }
}

TEST(CodecProfileTest, ParsesAndRejectsBadEntries) {
  const int n = 4;
  auto ok = ParseCodecProfile(nlohmann::json::parse(R"({"model": "toy", "codecs": [
      {"name": "fp32", "boundaries": [{"k": 0, "bytes": 1}]},
      {"name": "int8", "boundaries": [{"k": 0, "bytes": 10, "encode_ms": 1, "decode_ms": 2,
                                       "top1_agreement": 0.99}, {"k": 3, "bytes": 5}]}]})"),
                              n, "p.json");
  ASSERT_TRUE(ok.ok()) << ok.status();
  ASSERT_EQ(ok->size(), 1u);  // fp32 is built in
  EXPECT_EQ((*ok)[0].name, "int8");
  EXPECT_EQ((*ok)[0].bytes[0], 10);
  EXPECT_TRUE(std::isnan((*ok)[0].bytes[1]));  // not measured: not allowed
  auto cost = CostModel::Create(Profile(), Options(), *ok);
  ASSERT_TRUE(cost.ok());
  EXPECT_TRUE(cost->OptionAllowed(0, 1));
  EXPECT_FALSE(cost->OptionAllowed(1, 1));
  for (
      const char* bad : {
          R"({"codecs": [{"name": "a", "boundaries": [{"k": 4, "bytes": 1}]}]})",
          R"({"codecs": [{"name": "a", "boundaries": [{"k": 0, "bytes": -1}]}]})",
          R"({"codecs": [{"name": "a", "boundaries": [{"k": 0, "bytes": 1, "top1_agreement": 2}]}]})",
          R"({"codecs": [{"name": "a", "boundaries": []}, {"name": "a", "boundaries": []}]})",
          R"({"codecs": [{"boundaries": []}]})",
          R"({"nope": 1})",
      }) {
    auto r = ParseCodecProfile(nlohmann::json::parse(bad), n, "p.json");
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find("p.json"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace splitinfer::decision

// Runs the profile_model binary: its JSON carries the kernel shapes of every zoo unit (issue 10's
// predictor features) and loads back through the cost model's parser; the averaged samples of
// --min-sample-ms are recorded; bad options exit 2.

#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/decision/cost_model.h"

#include "tests/run_command.h"

namespace {

std::string RunProfileModel(const std::string& args, int* rc) {
  return splitinfer::test_support::RunCommand(
      std::string(PROFILE_MODEL_BIN) + " " + args + " 2>/dev/null", rc);
}

TEST(ProfileModelTest, JsonCarriesKernelShapesThatLoadBack) {
  int rc = 0;
  const std::string out = RunProfileModel(
      "--model mobilenetv2 --input-size 32 --width-mult 0.25 --repeats 2 --warmup 1 --device cpu "
      "--json",
      &rc);
  ASSERT_EQ(rc, 0) << out;
  const nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_FALSE(j.contains("min_sample_ms"));
  const nlohmann::json& units = j.at("units");
  ASSERT_GT(units.size(), 3u);
  for (const auto& u : units) {
    ASSERT_TRUE(u.contains("layers")) << u["name"];
    // The layers' FLOPs add up to the unit's.
    int64_t flops = 0;
    for (const auto& l : u["layers"]) {
      ASSERT_EQ(l.size(), 8u);
      const int64_t in = l[1], out_c = l[2], k = l[3], g = l[5], h = l[6], w = l[7];
      flops += 2 * (in / g) * k * k * out_c * h * w;
    }
    EXPECT_EQ(flops, u["flops"].get<int64_t>()) << u["name"];
  }
  // The first inverted-residual block: expand 1x1, depthwise 3x3 (groups = channels), project.
  const nlohmann::json& block = units[2]["layers"];
  ASSERT_EQ(block.size(), 3u);
  EXPECT_EQ(block[1][3], 3);
  EXPECT_EQ(block[1][5], block[1][1]);
  splitinfer::Result<splitinfer::decision::ModelProfile> p =
      splitinfer::decision::ParseProfileJson(out, "profile_model");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->units[2].layers.size(), 3u);
  EXPECT_TRUE(p->units[2].layers[1].depthwise());
}

TEST(ProfileModelTest, MinSampleMsIsRecorded) {
  int rc = 0;
  const std::string out = RunProfileModel(
      "--model mlp --mlp-width 64 --mlp-layers 2 --repeats 2 --warmup 1 --min-sample-ms 2 "
      "--device cpu --json",
      &rc);
  ASSERT_EQ(rc, 0) << out;
  const nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_EQ(j["min_sample_ms"], 2.0);
  for (const auto& u : j["units"]) {
    EXPECT_GT(u["time_ms_median"].get<double>(), 0.0);
    EXPECT_EQ(u["layers"][0][0], "linear");
  }
}

TEST(ProfileModelTest, BadOptionsExitTwo) {
  int rc = 0;
  RunProfileModel("--model mlp --min-sample-ms 2 --warmup 0", &rc);
  EXPECT_EQ(rc, 2);
  RunProfileModel("--model mlp --min-sample-ms -1", &rc);
  EXPECT_EQ(rc, 2);
  RunProfileModel("--model no-such-model", &rc);
  EXPECT_EQ(rc, 2);
}

}  // namespace

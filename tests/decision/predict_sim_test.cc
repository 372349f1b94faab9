// Runs the predict_sim binary (issue 10, items 1-2) on the committed profiles and on bad input.
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/run_command.h"

namespace {

const std::string kData = SPLITINFER_SOURCE_DIR "/data/unit_profiles";

// Runs predict_sim with `args`; returns stdout and sets *rc to the exit code (-1 on failure).
std::string RunPredictSim(const std::string& args, int* rc) {
  return splitinfer::test_support::RunCommand(
      std::string(PREDICT_SIM_BIN) + " " + args + " 2>/dev/null", rc);
}

TEST(PredictSimTest, JsonOnTheCommittedProfiles) {
  int rc = 0;
  const std::string out = RunPredictSim("--dir " + kData + " --json", &rc);
  ASSERT_EQ(rc, 0) << out;
  const nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_EQ(j["proxy"], "t1");
  EXPECT_EQ(j["calibration_units"], 5);
  EXPECT_TRUE(j["kernel_features"].get<bool>());
  ASSERT_EQ(j["devices"].size(), 3u);  // t1, t1q50, t2
  for (const auto& d : j["devices"]) {
    SCOPED_TRACE(d["device"].get<std::string>());
    EXPECT_EQ(d["calibration_units"].size(), 5u);
    EXPECT_EQ(d["type_calibration_units"].size(), 5u);
    for (const char* row : {"own-log", "own-linear", "own-log+kernel", "proxy-raw",
                            "proxy+5cal-scale", "proxy+5cal-affine", "proxy+5cal-type"}) {
      ASSERT_TRUE(d["errors"].contains(row)) << row;
      EXPECT_EQ(d["errors"][row]["n"], 85) << row;
      EXPECT_GT(d["errors"][row]["median_rel"].get<double>(), 0.0) << row;
    }
    EXPECT_EQ(d["calibration_sweep"].size(), 6u);
    ASSERT_EQ(d["decision_cost_ratio"].size(), 5u);  // the five *_w1_s224 models
    for (const auto& [model, r] : d["decision_cost_ratio"].items())
      for (const char* col : {"own-log", "proxy+scale", "proxy+type"})
        EXPECT_GE(r[col].get<double>(), 1.0 - 1e-9) << model << " " << col;
  }
}

TEST(PredictSimTest, BadOptionsAndMissingDataExitTwo) {
  int rc = 0;
  RunPredictSim("--dir " + kData + " --calib 0", &rc);
  EXPECT_EQ(rc, 2);
  RunPredictSim("--dir " + kData + " --every 1", &rc);
  EXPECT_EQ(rc, 2);
  RunPredictSim("--dir " + kData + " --proxy no-such-device", &rc);
  EXPECT_EQ(rc, 2);
  RunPredictSim("--dir /no/such/dir", &rc);
  EXPECT_EQ(rc, 2);
  RunPredictSim("--no-such-flag", &rc);
  EXPECT_EQ(rc, 2);
}

TEST(PredictSimTest, TruncatedProfileIsAnErrorNotACrash) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("predict_sim_test_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir / "t1");
  std::filesystem::copy_file(kData + "/t1/alexnet_w1_s224.json", dir / "t1" / "a.json");
  {
    std::ifstream in(kData + "/t1/vgg16_w1_s224.json");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(dir / "t1" / "b.json") << text.substr(0, text.size() / 2);
  }
  int rc = 0;
  RunPredictSim("--dir " + dir.string(), &rc);
  EXPECT_EQ(rc, 1);
  std::filesystem::remove_all(dir);
}

}  // namespace

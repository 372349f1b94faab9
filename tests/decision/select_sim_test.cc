// Runs the select_sim binary (path from CMake, $<TARGET_FILE:select_sim>): bad command lines exit
// 2 with a message, a tiny many-seed run prints the per-seed table and the summary over seeds,
// and its JSON summary agrees with its per-seed figures.

#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/run_command.h"

namespace {

const std::string kVariants =
    std::string("--variants ") + SPLITINFER_SOURCE_DIR + "/data/variants/digits_variants.json ";

// Runs select_sim with `args`; returns stdout (and stderr when `with_stderr`), sets *rc to the
// exit status.
std::string RunSelectSim(const std::string& args, int* rc, bool with_stderr = false) {
  return splitinfer::test_support::RunCommand(std::string(SELECT_SIM_BIN) + " " + kVariants + args +
                                                  (with_stderr ? " 2>&1" : " 2>/dev/null"),
                                              rc);
}

TEST(SelectSimCliTest, BadNumbersExitTwo) {
  for (const char* args :
       {"--checkpoints 5x", "--checkpoints 10,,20", "--checkpoints 20,10", "--seeds 1-x",
        "--seeds 3-1", "--seeds 1,1", "--alpha 1x", "--alpha 0.5,nan", "--ridge 0", "--ridge -1",
        "--optimistic maybe", "--seed 2x", "--rounds 10x", "--seed 1 --seeds 2-3"}) {
    int rc = 0;
    const std::string out = RunSelectSim(std::string(args) + " --rounds 100", &rc, true);
    EXPECT_EQ(rc, 2) << args << ": " << out;
    EXPECT_FALSE(out.empty()) << args << ": no message";
  }
  int rc = 0;
  const std::string out = RunSelectSim("--checkpoints 5x --rounds 100", &rc, true);
  EXPECT_NE(out.find("'5x'"), std::string::npos) << out;
}

TEST(SelectSimCliTest, ManySeedsPrintTheSummary) {
  int rc = 0;
  const std::string out =
      RunSelectSim("--seeds 1-3 --devices 30 --rounds 400 --plan-devices 0", &rc);
  ASSERT_EQ(rc, 0) << out;
  for (const char* row : {"mean", "median", "min", "max", "linucb_disjoint", "eps_greedy"})
    EXPECT_NE(out.find(row), std::string::npos) << row << " in\n" << out;
  for (const char* seed : {"\n       1 ", "\n       2 ", "\n       3 "})
    EXPECT_NE(out.find(seed), std::string::npos) << out;
}

TEST(SelectSimCliTest, ManySeedsJsonSummaryMatchesItsSeeds) {
  int rc = 0;
  const std::string out =
      RunSelectSim("--seeds 4,2,9 --devices 30 --rounds 400 --plan-devices 1 --json", &rc);
  ASSERT_EQ(rc, 0) << out;
  const nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  ASSERT_EQ(j["seeds"], nlohmann::json({4, 2, 9}));
  ASSERT_EQ(j["per_seed"].size(), 3u);
  EXPECT_FALSE(j.contains("runs"));  // only with --curves
  EXPECT_EQ(j["placement"].size(), 1u);
  for (const auto& s : j["summary"]) {
    const std::string name = s["name"];
    std::vector<double> v;
    for (const auto& p : j["per_seed"]) v.push_back(p["regret_oracle"][name].get<double>());
    std::sort(v.begin(), v.end());
    EXPECT_DOUBLE_EQ(s["regret_oracle"]["min"].get<double>(), v[0]) << name;
    EXPECT_DOUBLE_EQ(s["regret_oracle"]["median"].get<double>(), v[1]) << name;
    EXPECT_DOUBLE_EQ(s["regret_oracle"]["max"].get<double>(), v[2]) << name;
    EXPECT_NEAR(s["regret_oracle"]["mean"].get<double>(), (v[0] + v[1] + v[2]) / 3, 1e-9) << name;
  }
  // A single seed of the same setting gives the same figure as its entry.
  const std::string one = RunSelectSim("--seed 2 --devices 30 --rounds 400 --json", &rc);
  ASSERT_EQ(rc, 0);
  const nlohmann::json o = nlohmann::json::parse(one, nullptr, false);
  ASSERT_FALSE(o.is_discarded());
  EXPECT_EQ(o["policies"][0]["regret_oracle"].back(), j["per_seed"][1]["regret_oracle"]["linucb"]);
}

TEST(SelectSimCliTest, TuningGridChoosesPerPolicy) {
  int rc = 0;
  const std::string out = RunSelectSim(
      "--seeds 1,2 --devices 20 --rounds 300 --ridge 1,0.001 --alpha 1 --optimistic false --json",
      &rc);
  ASSERT_EQ(rc, 0) << out;
  const nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  ASSERT_EQ(j["grid"].size(), 2u);
  for (const char* p : {"linucb", "linucb_disjoint", "eps_greedy"}) {
    ASSERT_TRUE(j["chosen"].contains(p)) << p;
    // The chosen configuration is the grid point with the policy's lowest mean regret.
    double best = 1e300, chosen_ridge = 0;
    for (const auto& g : j["grid"])
      for (const auto& s : g["summary"])
        if (s["name"] == p && s["regret_oracle"]["mean"].get<double>() < best) {
          best = s["regret_oracle"]["mean"].get<double>();
          chosen_ridge = g["params"]["ridge"].get<double>();
        }
    EXPECT_EQ(j["chosen"][p]["ridge"].get<double>(), chosen_ridge) << p;
  }
}

}  // namespace

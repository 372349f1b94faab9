// Runs the split_sim binary with the command line of issue 4 and checks its JSON.

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/run_command.h"

namespace {

// Runs `args` through split_sim; returns stdout and sets *rc.
std::string RunSim(const std::string& args, int* rc) {
  return splitinfer::test_support::RunCommand(
      std::string(SPLITINFER_BIN_DIR) + "/split_sim " + args + " 2>/dev/null", rc);
}

TEST(SplitSimTest, JsonForTheIssueCommandLine) {
  int rc = 0;
  const std::string out = RunSim(
      "--model resnet18 --channel rayleigh:snr_db=10 --policies all --episodes 500 --seed 1 "
      "--json",
      &rc);
  ASSERT_EQ(rc, 0) << out;
  const nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_EQ(j["model"], "resnet18");
  ASSERT_EQ(j["policies"].size(), 9u);  // oracle, bi (robust), bi-textbook, ola, ... all-local
  EXPECT_EQ(j["policies"][0]["name"], "oracle");
  for (const auto& p : j["policies"]) {
    EXPECT_GE(p["ratio_to_oracle"].get<double>(), 1.0 - 1e-12) << p["name"];
    EXPECT_TRUE(p.contains("ci95"));
    EXPECT_TRUE(p.contains("mean_boundary"));
    EXPECT_TRUE(p.contains("share_local"));
    EXPECT_TRUE(p.contains("share_edge"));
  }
  EXPECT_TRUE(j["placement"].contains("best_m"));
}

TEST(SplitSimTest, TableAndPolicyFilterAndTrace) {
  int rc = 0;
  const std::string out = RunSim("--model alexnet --channel markov-fit:" SPLITINFER_SOURCE_DIR
                                 "/data/traces/norway_tram_1 --policies bi,greedy --episodes 300",
                                 &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("oracle"), std::string::npos);
  EXPECT_NE(out.find("greedy"), std::string::npos);
  EXPECT_EQ(out.find("all-local"), std::string::npos);
  EXPECT_NE(out.find("placement: M* ="), std::string::npos);
}

TEST(SplitSimTest, BadArgumentsFail) {
  int rc = 0;
  RunSim("--channel rayleigh:snr=10 --episodes 10", &rc);
  EXPECT_NE(rc, 0);
  RunSim("--model nosuchmodel --channel rayleigh:snr_db=10 --episodes 10", &rc);
  EXPECT_NE(rc, 0);
  RunSim("--channel rayleigh:snr_db=10 --policies bi,magic --episodes 10", &rc);
  EXPECT_NE(rc, 0);
}

// Trace files are read only when they are regular files of a bounded size: /dev/zero used to
// eat memory without end, a FIFO to block forever, a directory to read as "no samples".
TEST(SplitSimTest, TraceMustBeABoundedRegularFile) {
  const std::string fifo = ::testing::TempDir() + "split_sim_fifo_" + std::to_string(getpid());
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const std::pair<std::string, std::string> cases[] = {
      {"trace:/dev/zero", "is a character device, not a regular file"},
      {"markov-fit:/dev/zero", "is a character device, not a regular file"},
      {"trace:/tmp", "is a directory, not a regular file"},
      {"trace:" + fifo, "is a FIFO, not a regular file"},
      {"gauss-markov:", "needs its parameters"},
      {"rayleigh:", "needs its parameters"},
  };
  for (const auto& [channel, message] : cases) {
    SCOPED_TRACE(channel);
    int rc = 0;
    const std::string out = splitinfer::test_support::RunCommand(
        std::string(SPLITINFER_BIN_DIR) + "/split_sim --model resnet18 --episodes 10 --channel '" +
            channel + "' 2>&1",
        &rc);
    EXPECT_NE(rc, 0) << out;
    EXPECT_NE(out.find(message), std::string::npos) << out;
  }
  std::remove(fifo.c_str());
}

TEST(SplitSimTest, BadOptionsExitTwo) {
  int rc = 0;
  for (const char* args : {"--no-such-flag", "--episodes many", "--channel"}) {
    RunSim(args, &rc);
    EXPECT_EQ(rc, 2) << args;  // CLI11's own codes (105, 109, ...) before
  }
  RunSim("--help", &rc);
  EXPECT_EQ(rc, 0);
}

}  // namespace

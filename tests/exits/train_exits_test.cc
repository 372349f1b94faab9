// Tests of the committed exit statistics and profile (data/exits/digits_branchy_stats.json,
// data/profiles/digits_branchy.json) against the schema part B reads, and of the train_exits
// tool writing that schema (a one-epoch run into a temporary folder).
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

using json = nlohmann::ordered_json;

const std::string kSource = SPLITINFER_SOURCE_DIR;
const std::string kTool = std::string(SPLITINFER_BIN_DIR) + "/train_exits";

json Read(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  return json::parse(f, nullptr, /*allow_exceptions=*/false);
}

std::vector<std::string> Keys(const json& j) {
  std::vector<std::string> k;
  for (auto it = j.begin(); it != j.end(); ++it) k.push_back(it.key());
  return k;
}

// The stats schema, exactly (keys in order), and its internal consistency.
void CheckStats(const json& s, int64_t want_test_size) {
  ASSERT_TRUE(s.is_object());
  EXPECT_EQ(Keys(s), (std::vector<std::string>{"model", "dataset", "seed", "train_size",
                                               "test_size", "num_units", "exits", "samples"}));
  EXPECT_EQ(s["model"], "digits_branchy");
  EXPECT_EQ(s["dataset"], "digits (UCI, sklearn copy)");
  EXPECT_EQ(s["train_size"].get<int64_t>() + s["test_size"].get<int64_t>(), 1797);
  EXPECT_EQ(s["test_size"].get<int64_t>(), want_test_size);
  EXPECT_EQ(s["num_units"], 5);
  const json& exits = s["exits"];
  ASSERT_EQ(exits.size(), 4u);
  const std::vector<int> after = {1, 2, 3, 5};
  for (size_t e = 0; e < exits.size(); ++e) {
    EXPECT_EQ(Keys(exits[e]),
              (std::vector<std::string>{"index", "after_unit", "head_param_bytes", "head_flops",
                                        "head_time_ms", "test_accuracy"}));
    EXPECT_EQ(exits[e]["index"], e);
    EXPECT_EQ(exits[e]["after_unit"], after[e]);
    EXPECT_GE(exits[e]["head_time_ms"].get<double>(), 0.0);
    EXPECT_EQ(exits[e]["head_flops"].get<int64_t>() == 0, e == 3) << e;
  }
  const json& samples = s["samples"];
  ASSERT_EQ(samples.size(), static_cast<size_t>(want_test_size));
  std::vector<int64_t> right(4, 0);
  std::set<int> labels;
  for (const json& x : samples) {
    ASSERT_EQ(Keys(x), (std::vector<std::string>{"label", "exits"}));
    labels.insert(x["label"].get<int>());
    ASSERT_EQ(x["exits"].size(), 4u);
    for (size_t e = 0; e < 4; ++e) {
      const json& v = x["exits"][e];
      ASSERT_EQ(Keys(v), (std::vector<std::string>{"conf", "entropy", "pred"}));
      const double conf = v["conf"], entropy = v["entropy"];
      EXPECT_GE(conf, 0.1 - 1e-6);
      EXPECT_LE(conf, 1.0);
      EXPECT_GE(entropy, 0.0);
      EXPECT_LE(entropy, 1.0);
      const int pred = v["pred"];
      EXPECT_TRUE(pred >= 0 && pred <= 9);
      right[e] += pred == x["label"].get<int>() ? 1 : 0;
    }
  }
  EXPECT_EQ(labels.size(), 10u);
  for (size_t e = 0; e < 4; ++e) {
    EXPECT_NEAR(exits[e]["test_accuracy"].get<double>(),
                static_cast<double>(right[e]) / static_cast<double>(want_test_size), 1e-6);
  }
}

void CheckProfile(const json& p) {
  ASSERT_TRUE(p.is_object());
  EXPECT_EQ(Keys(p), (std::vector<std::string>{"model", "version", "input_shape", "input_bytes",
                                               "compute_device", "threads", "host", "date",
                                               "repeats", "units"}));
  EXPECT_EQ(p["model"], "digits_branchy");
  EXPECT_EQ(p["input_bytes"], 4096);
  ASSERT_EQ(p["units"].size(), 5u);
  const std::vector<int64_t> bytes = {8192, 4096, 2048, 1024, 40};
  for (size_t i = 0; i < 5; ++i) {
    const json& u = p["units"][i];
    EXPECT_EQ(Keys(u), (std::vector<std::string>{"index", "name", "output_shape", "output_bytes",
                                                 "param_bytes", "flops", "time_ms_median",
                                                 "time_ms_p10", "time_ms_p90"}));
    EXPECT_EQ(u["index"], i + 1);
    EXPECT_EQ(u["output_bytes"], bytes[i]);
    EXPECT_GT(u["time_ms_median"].get<double>(), 0.0);
  }
}

TEST(TrainExitsTest, CommittedStatsAndProfileFollowTheSchema) {
  const json s = Read(kSource + "/data/exits/digits_branchy_stats.json");
  CheckStats(s, 360);
  EXPECT_EQ(s["seed"], 1);
  // The figures docs/exits.md states.
  EXPECT_NEAR(s["exits"][3]["test_accuracy"].get<double>(), 0.988889, 1e-6);
  EXPECT_NEAR(s["exits"][0]["test_accuracy"].get<double>(), 0.911111, 1e-6);
  CheckProfile(Read(kSource + "/data/profiles/digits_branchy.json"));
}

TEST(TrainExitsTest, ToolWritesTheSchema) {
  const std::string dir = ::testing::TempDir() + "/train_exits_test";
  const std::string cmd = "mkdir -p '" + dir + "' && '" + kTool + "' --data '" + kSource +
                          "/data/digits/digits.csv.gz' --seed 3 --epochs 1 --repeats 2 --out '" +
                          dir + "/w.pt' --stats-out '" + dir + "/stats.json' --profile-out '" +
                          dir + "/profile.json' > '" + dir + "/log.txt' 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const json s = Read(dir + "/stats.json");
  CheckStats(s, 360);
  EXPECT_EQ(s["seed"], 3);
  CheckProfile(Read(dir + "/profile.json"));
  // --load skips training and reproduces the statistics from the weights file.
  const std::string again = "'" + kTool + "' --data '" + kSource +
                            "/data/digits/digits.csv.gz' --seed 3 --load '" + dir +
                            "/w.pt' --repeats 2 --stats-out '" + dir + "/stats2.json' > /dev/null";
  ASSERT_EQ(std::system(again.c_str()), 0) << again;
  EXPECT_EQ(Read(dir + "/stats2.json")["samples"], s["samples"]);
  // A missing data file is a bad option (exit code 2) naming the file.
  const std::string bad =
      "'" + kTool + "' --data '" + dir + "/nope.csv.gz' > '" + dir + "/bad.txt' 2>&1";
  EXPECT_EQ(WEXITSTATUS(std::system(bad.c_str())), 2);
  std::ifstream f(dir + "/bad.txt");
  const std::string out((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_NE(out.find("nope.csv.gz"), std::string::npos) << out;
}

}  // namespace

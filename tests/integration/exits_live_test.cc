// Early exits through the real edge_server (issue 9): the edge evaluates the exits after the
// split with the request's thresholds and says which exit answered; with exits disabled (or no
// thresholds) it gives the plain split path's outputs; bad exit requests are refused and the
// server keeps serving; device_client --exits drives every controller live and loses no inference,
// with or without an edge.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "common/exits/branchy_model.h"
#include "common/exits/digits.h"
#include "device/edge_client.h"
#include "tests/integration/child_process.h"

namespace splitinfer {
namespace {

using exits::BranchyModel;
using exits::ConfidenceKind;
using testing::ChildProcess;
using testing::EdgeServerProcess;
using namespace std::chrono_literals;

const std::string kSource = SPLITINFER_SOURCE_DIR;
const std::string kBin = SPLITINFER_BIN_DIR;
const std::string kDigits = kSource + "/data/digits/digits.csv.gz";

// digits_branchy trained by train_exits, once per build directory (a file lock keeps concurrent
// test processes from training it twice). With the defaults (width 8, its epochs, seed 1): the
// weights the committed data/exits/digits_branchy_stats.json was made from.
std::string TrainedWeights(int width = 0, int epochs = 0) {
  const std::string dir = EXITS_LIVE_CACHE_DIR;
  std::filesystem::create_directories(dir);
  const std::string path = width == 0 ? dir + "/digits_branchy_defaults.pt"
                                      : dir + "/digits_branchy_w" + std::to_string(width) + "_e" +
                                            std::to_string(epochs) + ".pt";
  const int lock = open((dir + "/lock").c_str(), O_CREAT | O_RDWR, 0644);
  EXPECT_GE(lock, 0);
  flock(lock, LOCK_EX);
  if (!std::filesystem::exists(path)) {
    const std::string tmp = path + ".tmp";
    std::vector<std::string> args{kBin + "/train_exits", "--data", kDigits, "--out", tmp};
    if (width > 0) {
      args.insert(args.end(),
                  {"--width", std::to_string(width), "--epochs", std::to_string(epochs)});
    }
    ChildProcess train(args);
    train.ReadAll(300s);
    EXPECT_EQ(train.Wait(), 0) << "train_exits failed";
    std::filesystem::rename(tmp, path);
  }
  flock(lock, LOCK_UN);
  close(lock);
  return path;
}

std::shared_ptr<BranchyModel> Load(const std::string& weights) {
  auto m = exits::LoadBranchyModel(weights);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *m : nullptr;
}

at::Tensor HeldOut(int64_t first, int64_t count) {
  auto all = exits::LoadDigits(kDigits);
  EXPECT_TRUE(all.ok()) << all.status();
  auto split = exits::SplitDigits(*all, 1);
  EXPECT_TRUE(split.ok()) << split.status();
  return exits::PrepareDigitsInput(split->test.images.narrow(0, first, count), 32);
}

std::unique_ptr<EdgeClient> Connect(int port) {
  EdgeClientOptions o;
  o.port = static_cast<uint16_t>(port);
  o.io_timeout = 10s;
  auto client = std::make_unique<EdgeClient>(o);
  Status st = client->Connect();
  EXPECT_TRUE(st.ok()) << st;
  return client;
}

wire::InferRequest Request(uint64_t id, const std::string& model, uint32_t boundary,
                           const std::vector<double>& thresholds) {
  wire::InferRequest r;
  r.set_request_id(id);
  r.set_model(model);
  r.set_model_version(1);
  r.set_boundary(boundary);
  for (double t : thresholds) r.add_exit_thresholds(static_cast<float>(t));
  return r;
}

Result<InferResult> Exchange(EdgeClient& client, const wire::InferRequest& req,
                             const at::Tensor& x) {
  Status st = client.SendRequest(req, x);
  if (!st.ok()) return st;
  return client.ReadReply();
}

class ExitsLiveTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { weights_ = new std::string(TrainedWeights()); }
  static void TearDownTestSuite() { delete weights_; }
  static const std::string& weights() { return *weights_; }
  static std::string* weights_;
};
std::string* ExitsLiveTest::weights_ = nullptr;

TEST_F(ExitsLiveTest, EdgeExitsMatchTheLocalRunAndDisabledExitsThePlainPath) {
  EdgeServerProcess server({"--models", "digits_branchy=" + weights() + ",mlp", "--cpu"});
  ASSERT_GT(server.port(), 0) << server.first_line();
  auto conn = Connect(server.port());
  EdgeClient& client = *conn;
  ASSERT_TRUE(client.connected());
  std::map<std::string, std::vector<uint32_t>> exits_of;
  for (const auto& m : client.server_info().models()) {
    exits_of[m.name()] = {m.exit_after_units().begin(), m.exit_after_units().end()};
  }
  EXPECT_EQ(exits_of["digits_branchy"], (std::vector<uint32_t>{1, 2, 3, 5}));
  EXPECT_TRUE(exits_of["mlp"].empty());

  const auto model = Load(weights());
  c10::InferenceMode guard;
  const at::Tensor inputs = HeldOut(0, 12);
  const std::vector<std::vector<double>> threshold_sets = {
      {exits::kExitDisabled, exits::kExitDisabled, exits::kExitDisabled, exits::kExitDisabled},
      {0.9, 0.9, 0.9, 0.0},
      {0.99, 0.6, 0.99, 0.0},
      {0.0, 0.0, 0.0, 0.0}};
  uint64_t id = 0;
  int exits_before_final = 0;
  for (int64_t i = 0; i < inputs.size(0); ++i) {
    const at::Tensor x0 = inputs.narrow(0, i, 1);
    for (uint32_t k = 0; k <= 5; ++k) {
      SCOPED_TRACE("sample " + std::to_string(i) + ", boundary " + std::to_string(k));
      const at::Tensor xk = model->RunRange(x0, 0, k);
      const at::Tensor plain = model->RunRange(xk, k, 5);
      // No thresholds: the plain split path, no exit named.
      auto r = Exchange(client, Request(++id, "digits_branchy", k, {}), xk);
      ASSERT_TRUE(r.ok()) << r.status();
      ASSERT_TRUE(r->status.ok()) << r->status;
      EXPECT_TRUE(torch::allclose(r->output, plain, 1e-5, 1e-6));
      EXPECT_EQ(r->exit_after_unit, 0u);
      for (size_t s = 0; s < threshold_sets.size(); ++s) {
        const auto& t = threshold_sets[s];
        auto want = model->RunWithExits(xk, k, 5, t, ConfidenceKind::kMaxSoftmax);
        ASSERT_TRUE(want.ok()) << want.status();
        const uint32_t want_exit = want->exit >= 0 ? static_cast<uint32_t>(want->exit) : 3u;
        auto got = Exchange(client, Request(++id, "digits_branchy", k, t), xk);
        ASSERT_TRUE(got.ok()) << got.status();
        ASSERT_TRUE(got->status.ok()) << got->status;
        EXPECT_EQ(got->exit_index, want_exit) << "threshold set " << s;
        EXPECT_EQ(got->exit_after_unit, model->exit_after_unit(want_exit));
        EXPECT_TRUE(torch::allclose(got->output, want->tensor, 1e-5, 1e-6)) << "set " << s;
        if (s == 0) {
          // Every exit disabled: the plain path's outputs, answered by the final classifier.
          EXPECT_TRUE(torch::allclose(got->output, plain, 1e-5, 1e-6));
          EXPECT_EQ(got->exit_index, 3u);
        }
        if (s == 3 && k < 5) {
          // Threshold 0: the first exit after the split always answers.
          size_t first = 0;
          while (model->exit_after_unit(first) <= k) ++first;
          EXPECT_EQ(got->exit_index, first);
        }
        exits_before_final += got->exit_index < 3;
      }
    }
  }
  EXPECT_GT(exits_before_final, 0) << "no early exit answered on the edge";
}

TEST_F(ExitsLiveTest, BadExitRequestsAreRefusedAndTheServerKeepsServing) {
  EdgeServerProcess server({"--models", "digits_branchy=" + weights() + ",mlp", "--cpu"});
  ASSERT_GT(server.port(), 0) << server.first_line();
  auto conn = Connect(server.port());
  EdgeClient& client = *conn;
  const auto model = Load(weights());
  c10::InferenceMode guard;
  const at::Tensor x2 = model->RunRange(HeldOut(0, 1), 0, 2);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  struct Case {
    std::string what;
    wire::InferRequest req;
    std::string message;
  };
  std::vector<Case> cases;
  cases.push_back({"3 thresholds for 4 exits", Request(1, "digits_branchy", 2, {0.9, 0.9, 0.9}),
                   "has 4 exits, got 3"});
  cases.push_back({"NaN", Request(2, "digits_branchy", 2, {0.9, nan, 0.9, 0}), "not finite"});
  cases.push_back({"inf", Request(3, "digits_branchy", 2, {0.9, 0.9, inf, 0}), "not finite"});
  {
    wire::InferRequest r = Request(4, "digits_branchy", 2, {0.9, 0.9, 0.9, 0});
    r.set_exit_confidence(static_cast<wire::ExitConfidence>(7));
    cases.push_back({"unknown confidence", r, "unknown exit_confidence"});
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    auto r = Exchange(client, c.req, x2);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status.code(), StatusCode::kInvalidArgument) << r->status;
    EXPECT_NE(r->status.message().find(c.message), std::string::npos) << r->status;
    // The connection and the server go on: a good request right after.
    auto good = Exchange(client, Request(100, "digits_branchy", 2, {0.9, 0.9, 0.9, 0}), x2);
    ASSERT_TRUE(good.ok()) << good.status();
    EXPECT_TRUE(good->status.ok()) << good->status;
  }
  // Thresholds for a model without exits.
  std::vector<int64_t> mlp_shape{1};
  for (const auto& m : client.server_info().models()) {
    if (m.name() == "mlp")
      mlp_shape.insert(mlp_shape.end(), m.input_shape().begin(), m.input_shape().end());
  }
  ASSERT_GT(mlp_shape.size(), 1u);
  const at::Tensor mlp_in = torch::randn(mlp_shape);
  auto r = Exchange(client, Request(5, "mlp", 0, {0.9}), mlp_in);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status.code(), StatusCode::kInvalidArgument) << r->status;
  EXPECT_NE(r->status.message().find("has no early exits"), std::string::npos) << r->status;
}

TEST_F(ExitsLiveTest, DigitsBranchyNeedsReadableWeights) {
  {
    EdgeServerProcess server({"--models", "digits_branchy"});
    EXPECT_EQ(server.port(), 0);
    EXPECT_NE(server.process().Wait(), 0);
  }
  const std::string bad = ::testing::TempDir() + "/not_weights.pt";
  std::ofstream(bad) << "not a torch archive";
  EdgeServerProcess server({"--models", "digits_branchy=" + bad});
  EXPECT_EQ(server.port(), 0);
  EXPECT_NE(server.process().Wait(), 0);
}

std::vector<nlohmann::json> ReadLedger(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::vector<std::string> ClientArgs(const std::string& server, const std::string& weights,
                                    const std::string& ledger, const std::string& summary,
                                    int episodes) {
  return {kBin + "/device_client",
          "--exits",
          "os,fixed,bi,rl",
          "--server",
          server,
          "--weights",
          weights,
          "--data",
          kDigits,
          "--stats",
          kSource + "/data/exits/digits_branchy_stats.json",
          "--profile",
          kSource + "/data/profiles/digits_branchy.json",
          "--channel",
          "trace:" + kSource + "/data/traces/norway_car_7",
          "--train-steps",
          "1500",
          "--device-slowdown",
          "100",
          "--accuracy-weight",
          "0.1",
          "--requests",
          std::to_string(episodes),
          "--io-timeout-ms",
          "3000",
          "--ledger",
          ledger,
          "--summary-json",
          summary};
}

TEST_F(ExitsLiveTest, DeviceClientRunsEveryExitControllerAgainstTheEdge) {
  EdgeServerProcess server({"--models", "digits_branchy=" + weights(), "--cpu"});
  ASSERT_GT(server.port(), 0) << server.first_line();
  const std::string ledger = ::testing::TempDir() + "/exits_ledger.jsonl";
  const std::string summary = ::testing::TempDir() + "/exits_summary.json";
  constexpr int kEpisodes = 80;
  ChildProcess client(ClientArgs(server.address(), weights(), ledger, summary, kEpisodes));
  const auto table = client.ReadAll(240s);
  ASSERT_EQ(client.Wait(), 0);
  const auto recs = ReadLedger(ledger);
  ASSERT_EQ(recs.size(), 4u * kEpisodes);
  std::map<std::string, int> per_controller, same_exit;
  int on_edge = 0, early_exits = 0;
  for (const auto& r : recs) {
    const std::string c = r["controller"];
    ++per_controller[c];
    const std::string on = r["completed_on"];
    EXPECT_TRUE(on == "edge" || on == "device_exit" || on == "local") << r.dump();
    on_edge += on == "edge";
    early_exits += r["exit"].get<int>() < 3;
    // The live exit is the one the simulator's statistics predict for this sample (the same
    // weights made them), whether it answered on the device or on the edge.
    same_exit[c] += r["exit"] == r["sim_exit"];
    EXPECT_GE(r["latency_ms"].get<double>(), 0.0);
  }
  for (const auto& [c, n] : per_controller) {
    EXPECT_EQ(n, kEpisodes) << c;
    EXPECT_GE(same_exit[c], kEpisodes * 95 / 100) << c;
  }
  EXPECT_GT(on_edge, 0);
  EXPECT_GT(early_exits, 0);
  std::ifstream in(summary);
  const nlohmann::json s = nlohmann::json::parse(in);
  ASSERT_EQ(s["controllers"].size(), 4u);
  for (const auto& c : s["controllers"]) {
    EXPECT_GE(c["accuracy"].get<double>(), 0.85) << c.dump();
    EXPECT_EQ(c["on_device"].get<int>() + c["on_edge"].get<int>(), kEpisodes) << c.dump();
    EXPECT_EQ(c["fallback_local"].get<int>(), 0) << c.dump();
  }
}

TEST_F(ExitsLiveTest, DeviceClientExitsFinishLocallyWithoutAnEdge) {
  // Nobody listens on this port: every offload falls back, and every inference completes.
  const int port = [] {
    EdgeServerProcess s({"--models", "mlp"});
    return s.port();
  }();
  ASSERT_GT(port, 0);
  const std::string ledger = ::testing::TempDir() + "/exits_ledger_noedge.jsonl";
  const std::string summary = ::testing::TempDir() + "/exits_summary_noedge.json";
  constexpr int kEpisodes = 30;
  ChildProcess client(
      ClientArgs("127.0.0.1:" + std::to_string(port), weights(), ledger, summary, kEpisodes));
  client.ReadAll(240s);
  ASSERT_EQ(client.Wait(), 0);
  const auto recs = ReadLedger(ledger);
  ASSERT_EQ(recs.size(), 4u * kEpisodes);
  int fallbacks = 0;
  for (const auto& r : recs) {
    const std::string on = r["completed_on"];
    EXPECT_NE(on, "edge") << r.dump();
    fallbacks += on == "fallback_local";
    EXPECT_EQ(r["exit"], r["sim_exit"]) << r.dump();
  }
  EXPECT_GT(fallbacks, 0);
}

// Model-variant selection live: two widths of digits_branchy on the edge (@1, @2), the device
// picks one per inference with LinUCB from the QoE each inference realized (a correct answer is
// worth 100 points, a millisecond 0.1), offloads it to the edge at boundary 0 (the all-edge
// policy: the edge must run the version of the variant chosen), and loses nothing. The narrow,
// briefly trained variant answers worse; the bandit ends on the variant that did better.
TEST_F(ExitsLiveTest, DeviceClientSelectsAVariantPerInferenceFromRealizedQoe) {
  const std::string narrow = TrainedWeights(2, 1);
  EdgeServerProcess server(
      {"--models", "digits_branchy@1=" + narrow + ",digits_branchy@2=" + weights(), "--cpu"});
  ASSERT_GT(server.port(), 0) << server.first_line();
  const std::string ledger = ::testing::TempDir() + "/variants_ledger.jsonl";
  constexpr int kInferences = 80;
  ChildProcess client({kBin + "/device_client",
                       "--server",
                       server.address(),
                       "--policy",
                       "edge",
                       "--channel",
                       "trace:" + kSource + "/data/traces/norway_car_7",
                       "--variants",
                       "w2=" + narrow + ",w8=" + weights(),
                       "--variant-profiles",
                       kSource + "/data/variants/digits_variants.json",
                       "--data",
                       kDigits,
                       "--requests",
                       std::to_string(kInferences),
                       "--device-slowdown",
                       "3",
                       "--ledger",
                       ledger,
                       "--json"});
  client.ReadAll(240s);
  ASSERT_EQ(client.Wait(), 0);
  std::map<std::string, int> picks, right;
  std::map<std::string, double> qoe;
  int records = 0, on_edge = 0;
  nlohmann::json summary;
  std::vector<std::string> order;
  for (const auto& r : ReadLedger(ledger)) {
    if (r.value("event", "") == "summary") {
      summary = r;
      continue;
    }
    ++records;
    EXPECT_TRUE(r["ok"].get<bool>()) << r.dump();
    const std::string v = r["variant"];
    EXPECT_TRUE(v == "w2" || v == "w8") << r.dump();
    EXPECT_EQ(r["version"].get<int>(), v == "w2" ? 1 : 2) << r.dump();
    if (r["completed_on"] == "edge") {
      ++on_edge;
      EXPECT_EQ(r["edge_version"], r["version"]) << r.dump();
    }
    ++picks[v];
    right[v] += r["correct"].get<bool>();
    qoe[v] += r["qoe"].get<double>();
    order.push_back(v);
  }
  ASSERT_EQ(records, kInferences);
  EXPECT_EQ(on_edge, kInferences);
  ASSERT_GT(picks["w2"], 0) << "the bandit never tried w2";
  ASSERT_GT(picks["w8"], 0) << "the bandit never tried w8";
  const std::string better = qoe["w8"] / picks["w8"] >= qoe["w2"] / picks["w2"] ? "w8" : "w2";
  EXPECT_EQ(better, "w8") << "w2 accuracy " << 1.0 * right["w2"] / picks["w2"] << ", w8 "
                          << 1.0 * right["w8"] / picks["w8"];
  int late_better = 0;
  for (size_t i = order.size() - kInferences / 5; i < order.size(); ++i)
    late_better += order[i] == better;
  EXPECT_GE(late_better, kInferences / 10) << "the last 20% should mostly pick " << better;
  ASSERT_TRUE(summary.contains("variants")) << "no summary line";
  int total = 0;
  for (const auto& v : summary["variants"]) total += v["picks"].get<int>();
  EXPECT_EQ(total, kInferences);
}

}  // namespace
}  // namespace splitinfer

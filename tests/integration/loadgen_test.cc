// loadgen, the real binary, against the real edge_server: every request accounted for exactly
// once (sent = ok + errors + lost), and its bounds (loopback only, device count, duration).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <thread>

#include "tests/integration/child_process.h"
#include "tests/integration/edge_harness.h"
#include "tests/integration/test_models.h"

namespace splitinfer {
namespace {

using json = nlohmann::json;
using testing::ChildProcess;
using testing::EdgeServerProcess;
using namespace std::chrono_literals;

std::vector<std::string> LoadgenArgs(const std::string& server, std::vector<std::string> extra) {
  std::vector<std::string> args{std::string(SPLITINFER_BIN_DIR) + "/loadgen", "--server", server,
                                "--model", "mlp"};
  for (auto& a : testing::SmallZooArgs()) args.push_back(a);
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::vector<std::string> ServerArgs() {
  std::vector<std::string> a{"--models", "mlp", "--cpu"};
  for (auto& z : testing::SmallZooArgs()) a.push_back(z);
  return a;
}

// Runs loadgen to the end; its one JSON line (null when there is none) and exit code.
std::pair<json, int> RunLoadgen(std::vector<std::string> args) {
  ChildProcess p(std::move(args));
  auto lines = p.ReadAll(120s);
  const int rc = p.Wait();
  json j;
  for (auto& l : lines) {
    auto parsed = json::parse(l, nullptr, /*allow_exceptions=*/false);
    if (!parsed.is_discarded()) j = std::move(parsed);
  }
  return {j, rc};
}

void ExpectBalanced(const json& j) {
  const uint64_t sent = j["sent"], ok = j["ok"], errors = j["errors"], lost = j["lost"];
  EXPECT_EQ(sent, ok + errors + lost) << j.dump();
  EXPECT_TRUE(j["balanced"].get<bool>());
  uint64_t by_code = 0;
  for (auto& [code, n] : j["errors_by_code"].items()) by_code += n.get<uint64_t>();
  EXPECT_EQ(by_code, errors);
}

TEST(LoadgenTest, SixteenDevicesClosedLoopAllAnswered) {
  EdgeServerProcess server(ServerArgs());
  ASSERT_GT(server.port(), 0) << server.first_line();
  auto [j, rc] = RunLoadgen(LoadgenArgs(
      server.address(), {"--devices", "16", "--duration", "2s", "--split", "2", "--json",
                         "--server-pid", std::to_string(server.process().pid())}));
  ASSERT_EQ(rc, 0);
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["connected"], 16);
  EXPECT_GT(j["ok"].get<uint64_t>(), 0u);
  EXPECT_EQ(j["errors"], 0);
  EXPECT_EQ(j["lost"], 0);
  EXPECT_EQ(j["connection_failures"], 0);
  ExpectBalanced(j);
  EXPECT_GT(j["throughput_rps"].get<double>(), 0);
  const auto& lat = j["latency_ms"];
  EXPECT_EQ(lat["samples"], j["ok"]);
  EXPECT_LE(lat["p50"].get<double>(), lat["p99"].get<double>());
  EXPECT_LE(lat["p99"].get<double>(), lat["p999"].get<double>());
  EXPECT_LE(lat["p999"].get<double>(), lat["max"].get<double>());
  EXPECT_EQ(j["server_rss_source"], "proc");
  EXPECT_GT(j["server_rss_bytes"]["before"].get<uint64_t>(), 0u);
  EXPECT_GT(j["server_rss_bytes"]["end"].get<uint64_t>(), 0u);
}

TEST(LoadgenTest, OpenLoopRateAndMaxRequestsBoundWhatIsSent) {
  EdgeServerProcess server(ServerArgs());
  ASSERT_GT(server.port(), 0) << server.first_line();
  {
    // 20 devices at 10/s for 1 s: about 200 requests, never more than one per due time.
    auto [j, rc] =
        RunLoadgen(LoadgenArgs(server.address(), {"--devices", "20", "--rate-per-device", "10/s",
                                                  "--duration", "1s", "--split", "3", "--json"}));
    ASSERT_EQ(rc, 0);
    EXPECT_GT(j["ok"].get<uint64_t>(), 0u);
    EXPECT_LE(j["sent"].get<uint64_t>(), 20u * 11u);
    EXPECT_EQ(j["errors"], 0);
    EXPECT_EQ(j["server_rss_source"], "n/a");
    EXPECT_TRUE(j["server_rss_bytes"]["before"].is_null());
    ExpectBalanced(j);
  }
  {
    auto [j, rc] = RunLoadgen(
        LoadgenArgs(server.address(), {"--devices", "8", "--in-flight", "4", "--max-requests",
                                       "100", "--duration", "20s", "--split", "0", "--json"}));
    ASSERT_EQ(rc, 0);
    EXPECT_EQ(j["sent"], 100);
    EXPECT_EQ(j["ok"], 100);
    ExpectBalanced(j);
    EXPECT_LT(j["window_s"].get<double>(), 20.0);  // stopped by the count, not the clock
  }
}

TEST(LoadgenTest, ServerKilledMidRunEveryRequestStillCountedOnce) {
  harness::FaultServer server(ServerArgs());
  ASSERT_GT(server.port(), 0) << server.log();
  ChildProcess lg(
      LoadgenArgs(server.address(), {"--devices", "16", "--in-flight", "2", "--duration", "6s",
                                     "--split", "1", "--json", "--io-timeout-ms", "2000"}));
  // Killed once every device is connected and requests flow (loadgen's start-up takes a while
  // on a busy machine): mid-run, not before it.
  EXPECT_EQ(harness::WaitForMetric(
                server.admin_port(), "splitinfer_edge_connected_devices",
                [](double v) { return v >= 16; }, 60s),
            16);
  std::this_thread::sleep_for(500ms);
  server.process().Kill(SIGKILL);
  auto lines = lg.ReadAll(60s);
  ASSERT_EQ(lg.Wait(), 0);
  ASSERT_FALSE(lines.empty());
  const json j = json::parse(lines.back());
  EXPECT_GT(j["ok"].get<uint64_t>(), 0u);
  EXPECT_GT(j["connection_failures"].get<uint64_t>(), 0u);
  ExpectBalanced(j);
}

TEST(LoadgenTest, ModelBuiltWithOtherOptionsIsRefused) {
  EdgeServerProcess server(ServerArgs());
  ASSERT_GT(server.port(), 0) << server.first_line();
  // The server's mlp is 64 wide; this loadgen builds a 32-wide one.
  auto [j, rc] =
      RunLoadgen({std::string(SPLITINFER_BIN_DIR) + "/loadgen", "--server", server.address(),
                  "--model", "mlp", "--mlp-width", "32", "--mlp-layers", "6", "--devices", "2",
                  "--duration", "1s", "--split", "1", "--json"});
  EXPECT_EQ(rc, 1);
  EXPECT_EQ(j["connected"], 0);
  EXPECT_EQ(j["sent"], 0);
  EXPECT_EQ(j["connection_failures"], 2);
  for (auto& [why, n] : j["connection_failures_by_reason"].items()) {
    EXPECT_NE(why.find("FAILED_PRECONDITION"), std::string::npos) << why;
  }
}

TEST(LoadgenTest, BoundsAndNonLoopbackServersAreRefused) {
  // Nothing listens on these: the refusal must come before any connection attempt.
  for (const std::string server :
       {"192.0.2.1:9", "10.0.0.1:9", "[2001:db8::1]:9", "example.com:9", "0.0.0.0:9"}) {
    auto [j, rc] = RunLoadgen(LoadgenArgs(server, {"--split", "1", "--duration", "1s"}));
    EXPECT_EQ(rc, 2) << server;
    EXPECT_TRUE(j.is_null()) << server;
  }
  const std::string loop = "127.0.0.1:9";
  EXPECT_EQ(RunLoadgen(LoadgenArgs(loop, {"--split", "1", "--devices", "4097"})).second, 2);
  EXPECT_EQ(RunLoadgen(LoadgenArgs(loop, {"--split", "1", "--devices", "0"})).second, 2);
  EXPECT_EQ(RunLoadgen(LoadgenArgs(loop, {"--split", "1", "--duration", "11m"})).second, 2);
  EXPECT_EQ(RunLoadgen(LoadgenArgs(loop, {"--split", "1", "--duration", "-1s"})).second, 2);
  EXPECT_EQ(RunLoadgen(LoadgenArgs(loop, {"--split", "1", "--max-requests", "0"})).second, 2);
  EXPECT_EQ(RunLoadgen(LoadgenArgs(loop, {"--split", "7"})).second, 2);  // mlp has 6 units
  EXPECT_EQ(RunLoadgen(LoadgenArgs(loop, {"--split", "1", "--admin", "192.0.2.1:80"})).second, 2);
  // A loopback address other than 127.0.0.1 is accepted (nobody listens: no device connects).
  EXPECT_EQ(RunLoadgen(LoadgenArgs("127.0.0.2:9", {"--split", "1", "--duration", "1s",
                                                   "--connect-timeout-ms", "500"}))
                .second,
            1);
}

}  // namespace
}  // namespace splitinfer

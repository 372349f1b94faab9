// device_client, the real binary, against the real edge_server: results verified at every split,
// and no inference lost when the edge is unreachable or killed mid-run.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include "common/frame_io.h"
#include "device/edge_client.h"
#include "tests/integration/child_process.h"
#include "tests/integration/test_models.h"
#include "tests/run_command.h"

namespace splitinfer {
namespace {

using json = nlohmann::json;
using testing::ChildProcess;
using testing::EdgeServerProcess;
using namespace std::chrono_literals;

std::vector<std::string> ClientArgs(const std::string& server, std::vector<std::string> extra) {
  std::vector<std::string> args{std::string(SPLITINFER_BIN_DIR) + "/device_client", "--json"};
  if (!server.empty()) {
    args.push_back("--server");
    args.push_back(server);
  }
  for (auto& a : testing::SmallZooArgs()) args.push_back(a);
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::vector<json> ParseRecords(const std::vector<std::string>& lines) {
  std::vector<json> out;
  for (auto& l : lines) {
    auto j = json::parse(l, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(j.is_discarded()) << "not JSON: " << l;
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  return out;
}

uint16_t ClosedPort() {
  asio::io_context io;
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();  // closed when `a` goes out of scope
}

TEST(DeviceClientTest, EverySplitVerifiedThroughTheEdge) {
  std::vector<std::string> sargs{"--models", "mlp,resnet18", "--cpu"};
  for (auto& a : testing::SmallZooArgs()) sargs.push_back(a);
  EdgeServerProcess server(sargs);
  ASSERT_GT(server.port(), 0) << server.first_line();

  for (std::string model : {"mlp", "resnet18"}) {
    ChildProcess client(ClientArgs(
        server.address(), {"--model", model, "--split", "all", "--requests", "2", "--verify"}));
    auto recs = ParseRecords(client.ReadAll(120s));
    EXPECT_EQ(client.Wait(), 0);
    const size_t units = model == "mlp" ? 6 : 10;
    ASSERT_EQ(recs.size(), 2 * (units + 1)) << model;
    for (auto& r : recs) {
      SCOPED_TRACE(r.dump());
      EXPECT_TRUE(r["ok"].get<bool>());
      EXPECT_LE(r["max_abs_diff"].get<double>(), 1e-5);
      EXPECT_TRUE(r["top1_match"].get<bool>());
      EXPECT_TRUE(r["fallback"].is_null());
      const size_t split = r["split"].get<size_t>();
      EXPECT_EQ(r["completed_on"], split == units ? "local" : "edge");
      if (split < units) {
        EXPECT_GT(r["bytes_sent"].get<uint64_t>(), 0u);
        EXPECT_GT(r["edge_ms"].get<double>(), 0.0);
        EXPECT_GE(r["total_ms"].get<double>(),
                  r["device_ms"].get<double>() + r["edge_ms"].get<double>());
      }
    }
  }
}

TEST(DeviceClientTest, UnreachableEdgeCompletesLocally) {
  ChildProcess client(
      ClientArgs("127.0.0.1:" + std::to_string(ClosedPort()),
                 {"--model", "mlp", "--split", "2", "--requests", "5", "--verify"}));
  auto recs = ParseRecords(client.ReadAll(60s));
  EXPECT_EQ(client.Wait(), 0);
  ASSERT_EQ(recs.size(), 5u);
  for (auto& r : recs) {
    EXPECT_TRUE(r["ok"].get<bool>());
    EXPECT_EQ(r["completed_on"], "fallback_local");
    EXPECT_NE(r["fallback"].get<std::string>().find("unreachable"), std::string::npos);
    EXPECT_LE(r["max_abs_diff"].get<double>(), 1e-5);
  }
}

TEST(DeviceClientTest, KillingTheServerMidRunLosesNoInference) {
  std::vector<std::string> sargs{"--models", "resnet18", "--cpu"};
  for (auto& a : testing::SmallZooArgs()) sargs.push_back(a);
  auto server = std::make_unique<EdgeServerProcess>(sargs);
  ASSERT_GT(server->port(), 0) << server->first_line();

  constexpr int kRequests = 600;
  ChildProcess client(
      ClientArgs(server->address(), {"--model", "resnet18", "--split", "3", "--requests",
                                     std::to_string(kRequests), "--in-flight", "4", "--verify"}));
  std::vector<std::string> lines;
  for (int i = 0; i < 10; ++i) {
    auto line = client.ReadLine(60s);
    ASSERT_TRUE(line.has_value()) << "client stopped early";
    lines.push_back(*line);
  }
  server->process().Kill(SIGKILL);  // the edge vanishes with requests in flight
  for (auto& l : client.ReadAll(300s)) lines.push_back(l);
  EXPECT_EQ(client.Wait(), 0);

  auto recs = ParseRecords(lines);
  std::map<uint64_t, int> seen;
  int on_edge = 0, fallback = 0;
  for (auto& r : recs) {
    seen[r["request_id"].get<uint64_t>()]++;
    EXPECT_TRUE(r["ok"].get<bool>()) << r.dump();
    EXPECT_LE(r["max_abs_diff"].get<double>(), 1e-5) << r.dump();
    on_edge += r["completed_on"] == "edge";
    fallback += r["completed_on"] == "fallback_local";
  }
  ASSERT_EQ(seen.size(), static_cast<size_t>(kRequests));
  for (auto& [id, n] : seen) {
    EXPECT_GE(id, 1u);
    EXPECT_LE(id, static_cast<uint64_t>(kRequests));
    EXPECT_EQ(n, 1) << "request " << id;
  }
  EXPECT_GE(on_edge, 10);
  EXPECT_GT(fallback, 0);
}

TEST(EdgeServerLifecycleTest, SigtermStopsCleanlyWithConnectionsOpen) {
  std::vector<std::string> sargs{"--models", "mlp", "--cpu"};
  for (auto& a : testing::SmallZooArgs()) sargs.push_back(a);
  EdgeServerProcess server(sargs);
  ASSERT_GT(server.port(), 0) << server.first_line();
  EdgeClientOptions o;
  o.port = static_cast<uint16_t>(server.port());
  EdgeClient idle(o), busy(o);
  ASSERT_TRUE(idle.Connect().ok());
  ASSERT_TRUE(busy.Connect().ok());
  wire::InferRequest req;
  req.set_request_id(1);
  req.set_model("mlp");
  ASSERT_TRUE(busy.SendRequest(req, at::zeros({1, 64})).ok());
  ASSERT_TRUE(busy.ReadReply().ok());

  const auto t0 = std::chrono::steady_clock::now();
  server.process().Kill(SIGTERM);
  EXPECT_EQ(server.process().Wait(), 0);  // exit status 0: a clean stop, not a crash
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  // The connections were closed by the server, not left hanging.
  auto r = idle.ReadReply();
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status();
}

TEST(DeviceClientTest, BadArgumentsGetAClearError) {
  ChildProcess client(ClientArgs("", {"--model", "mlp", "--split", "99"}));
  EXPECT_TRUE(client.ReadAll(30s).empty());
  EXPECT_EQ(client.Wait(), 2);
  ChildProcess unknown(ClientArgs("", {"--model", "nosuch", "--split", "0"}));
  EXPECT_EQ(unknown.Wait(), 2);
}

// device_client --config: the documented example loads, the command line overrides it, and a
// bad file stops the client with the file, line and key named.
TEST(DeviceClientConfigTest, ExampleLoadsAndTheCommandLineOverridesIt) {
  const std::string bin = std::string(SPLITINFER_BIN_DIR) + "/device_client";
  const std::string example =
      std::string(SPLITINFER_SOURCE_DIR) + "/device/device_client.example.toml";
  int rc = -1;
  std::string out = test_support::RunCommand(
      bin + " --config '" + example + "' --server 10.0.0.9:7070 --print-config 2>&1", &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("server=\"10.0.0.9:7070\""), std::string::npos) << out;  // the flag won
  EXPECT_NE(out.find("policy=\"bi\""), std::string::npos) << out;             // from the file
  EXPECT_NE(out.find("in-flight=1"), std::string::npos) << out;

  // The example, run for real against an edge: every option from the file but the address, the
  // trace's absolute path and the small test zoo.
  std::vector<std::string> sargs{"--models", "resnet18", "--cpu"};
  for (auto& a : testing::SmallZooArgs()) sargs.push_back(a);
  EdgeServerProcess server(sargs);
  ASSERT_GT(server.port(), 0) << server.first_line();
  ChildProcess client(
      ClientArgs(server.address(), {"--config", example, "--requests", "3", "--channel",
                                    "markov-fit:" + std::string(SPLITINFER_SOURCE_DIR) +
                                        "/data/traces/B_2020.02.14_09.38.22.csv"}));
  auto recs = ParseRecords(client.ReadAll(120s));
  EXPECT_EQ(client.Wait(), 0);
  ASSERT_EQ(recs.size(), 3u);
  for (auto& r : recs) {
    EXPECT_EQ(r["policy"], "bi") << r.dump();
    EXPECT_TRUE(r["ok"].get<bool>()) << r.dump();
  }

  // Bad files: each names the file and line, exit 2, nothing runs.
  const std::string dir = ::testing::TempDir();
  const std::pair<std::string, std::string> bad[] = {
      {"in-flight = 1.5\n", ":1: in-flight = 1.5: not an integer"},
      {"model = \"resnet18\n", ":1:"},
      {"# a comment\nservr = \"127.0.0.1:7070\"\n", ":2: unknown option 'servr'"},
      {"\nin-flight = 0\n", "line 2)"},
      {"verify = \"yes\"\n", "needs true or false"},
  };
  int i = 0;
  for (const auto& [text, message] : bad) {
    const std::string path =
        dir + "device_client_bad_" + std::to_string(getpid()) + "_" + std::to_string(i++) + ".toml";
    std::ofstream(path) << text;
    out = test_support::RunCommand(bin + " --config '" + path + "' --model mlp 2>&1", &rc);
    EXPECT_EQ(rc, 2) << text << out;
    EXPECT_NE(out.find(message), std::string::npos) << text << out;
    EXPECT_NE(out.find(path), std::string::npos) << text << out;
    std::remove(path.c_str());
  }
  out = test_support::RunCommand(bin + " --config /dev/zero --model mlp 2>&1", &rc);
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("not a regular file"), std::string::npos) << out;
}

}  // namespace
}  // namespace splitinfer

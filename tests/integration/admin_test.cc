// The admin HTTP endpoint (--admin-listen) and the graceful drain of a real edge_server on
// 127.0.0.1 (device and admin ports 0): /healthz, /readyz, /metrics in Prometheus text format
// whose counters move by exactly what the test did, 404/405, bounded requests, and SIGTERM
// draining the requests already received (or dropping them past --drain-timeout-s).
#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "device/edge_client.h"
#include "tests/integration/child_process.h"
#include "tests/integration/test_models.h"

namespace splitinfer {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using testing::ChildProcess;
using testing::SmallZooArgs;
using namespace std::chrono_literals;

struct HttpResponse {
  int status = -1;  // -1: no response (refused, closed)
  std::string body;
};

// One HTTP/1.1 request with Boost.Beast (blocking: the server answers or closes).
HttpResponse HttpRequest(int port, http::verb method, const std::string& target,
                         const std::string& extra_header_value = "") {
  HttpResponse out;
  try {
    boost::asio::io_context io;
    boost::asio::ip::tcp::socket socket(io);
    socket.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)});
    http::request<http::empty_body> req{method, target, 11};
    req.set(http::field::host, "127.0.0.1");
    if (!extra_header_value.empty()) req.set("X-Padding", extra_header_value);
    http::write(socket, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(socket, buffer, res);
    out.status = static_cast<int>(res.result_int());
    out.body = res.body();
  } catch (const std::exception&) {
    out.status = -1;
  }
  return out;
}

HttpResponse Get(int port, const std::string& target) {
  return HttpRequest(port, http::verb::get, target);
}

// Parses Prometheus text format: every sample line is `name{labels} value` or `name value`,
// every sample's family has # HELP and # TYPE before it. Returns "name{labels}" -> value.
std::map<std::string, double> ParseMetrics(const std::string& text) {
  std::map<std::string, double> samples;
  std::set<std::string> help, type;
  const std::regex sample_re(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$)");
  const std::regex comment_re(R"(^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$)");
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::smatch m;
    if (line[0] == '#') {
      EXPECT_TRUE(std::regex_match(line, m, comment_re)) << "bad comment line: " << line;
      if (m.size() < 3) continue;
      (m[1] == "HELP" ? help : type).insert(m[2]);
      if (m[1] == "TYPE") {
        EXPECT_TRUE(m[3] == "counter" || m[3] == "gauge" || m[3] == "histogram") << line;
      }
      continue;
    }
    EXPECT_TRUE(std::regex_match(line, m, sample_re)) << "bad sample line: " << line;
    if (m.size() < 4) continue;
    std::string family = m[1];
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string s(suffix);
      if (!type.count(family) && family.size() > s.size() &&
          family.compare(family.size() - s.size(), s.size(), s) == 0) {
        family.resize(family.size() - s.size());
      }
    }
    EXPECT_TRUE(help.count(family)) << "no # HELP before " << line;
    EXPECT_TRUE(type.count(family)) << "no # TYPE before " << line;
    EXPECT_EQ(family.rfind("splitinfer_edge_", 0), 0u) << line;
    double value = 0;
    const std::string v = m[3];
    if (v == "+Inf") {
      value = HUGE_VAL;
    } else {
      size_t used = 0;
      value = std::stod(v, &used);
      EXPECT_EQ(used, v.size()) << line;
    }
    samples[std::string(m[1]) + std::string(m[2])] = value;
  }
  return samples;
}

std::map<std::string, double> Scrape(int admin_port) {
  auto res = Get(admin_port, "/metrics");
  EXPECT_EQ(res.status, 200);
  return ParseMetrics(res.body);
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// edge_server with --admin-listen 127.0.0.1:0, stderr (its log) into a file the test reads.
class AdminServerProcess {
 public:
  explicit AdminServerProcess(const std::vector<std::string>& extra)
      : log_path_(::testing::TempDir() + "admin_test_" + std::to_string(getpid()) + "_" +
                  std::to_string(counter_++) + ".log"),
        proc_(MakeArgs(extra, log_path_)) {
    if (auto line = proc_.ReadLine(120s); line && line->rfind("listening 127.0.0.1:", 0) == 0) {
      port_ = std::stoi(line->substr(std::string("listening 127.0.0.1:").size()));
    }
    if (auto line = proc_.ReadLine(10s); line && line->rfind("admin 127.0.0.1:", 0) == 0) {
      admin_port_ = std::stoi(line->substr(std::string("admin 127.0.0.1:").size()));
    }
  }
  ~AdminServerProcess() { std::remove(log_path_.c_str()); }

  int port() const { return port_; }
  int admin_port() const { return admin_port_; }
  ChildProcess& process() { return proc_; }
  std::string log() const { return ReadFile(log_path_); }

 private:
  static std::vector<std::string> MakeArgs(const std::vector<std::string>& extra,
                                           const std::string& log_path) {
    // exec: the shell becomes edge_server, so signals to the child's pid reach the server.
    std::string cmd = "exec '" + std::string(SPLITINFER_BIN_DIR) +
                      "/edge_server' --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0";
    for (const auto& a : extra) cmd += " '" + a + "'";
    cmd += " 2>'" + log_path + "'";
    return {"/bin/sh", "-c", cmd};
  }
  static inline int counter_ = 0;
  std::string log_path_;
  ChildProcess proc_;
  int port_ = 0;
  int admin_port_ = 0;
};

std::vector<std::string> MlpArgs() {
  std::vector<std::string> args{"--models", "mlp", "--cpu"};
  for (auto& a : SmallZooArgs()) args.push_back(a);
  return args;
}

class AdminTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new AdminServerProcess(MlpArgs()); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_GT(server_->port(), 0) << "edge_server did not start";
    ASSERT_GT(server_->admin_port(), 0) << "edge_server printed no admin line";
  }
  static AdminServerProcess* server_;
};
AdminServerProcess* AdminTest::server_ = nullptr;

TEST_F(AdminTest, HealthAndReadiness) {
  auto health = Get(server_->admin_port(), "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "ok\n");
  auto ready = Get(server_->admin_port(), "/readyz");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.body, "ready\n");
}

TEST_F(AdminTest, UnknownPathIs404AndOtherMethodsAre405) {
  EXPECT_EQ(Get(server_->admin_port(), "/nope").status, 404);
  EXPECT_EQ(Get(server_->admin_port(), "/").status, 404);
  EXPECT_EQ(HttpRequest(server_->admin_port(), http::verb::post, "/healthz").status, 405);
  EXPECT_EQ(HttpRequest(server_->admin_port(), http::verb::delete_, "/metrics").status, 405);
}

TEST_F(AdminTest, OversizeHeaderIsRefusedAndTheServerGoesOn) {
  auto res =
      HttpRequest(server_->admin_port(), http::verb::get, "/healthz", std::string(64 * 1024, 'a'));
  // 431, or the connection closed before the whole header was sent: either way no 200.
  EXPECT_TRUE(res.status == 431 || res.status == -1) << res.status;
  EXPECT_EQ(Get(server_->admin_port(), "/healthz").status, 200);
}

TEST_F(AdminTest, IdleAdminConnectionsCannotExhaustTheServer) {
  boost::asio::io_context io;
  std::vector<boost::asio::ip::tcp::socket> idle;
  for (int i = 0; i < 64; ++i) {
    idle.emplace_back(io);
    boost::system::error_code ec;
    idle.back().connect(
        {boost::asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(server_->admin_port())},
        ec);
  }
  // The device side is unaffected while the admin connections are held.
  EdgeClientOptions opts;
  opts.port = static_cast<uint16_t>(server_->port());
  EdgeClient client(opts);
  ASSERT_TRUE(client.Connect().ok());
  wire::InferRequest req;
  req.set_request_id(1);
  req.set_model("mlp");
  req.set_boundary(0);
  ASSERT_TRUE(client.SendRequest(req, torch::randn({1, 64})).ok());
  auto reply = client.ReadReply();
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_TRUE(reply->status.ok()) << reply->status;
  client.Close();
  idle.clear();
  // Once they are gone (closed by us, or by the server's read timeout), admin answers again.
  int status = -1;
  for (int i = 0; i < 100 && status != 200; ++i) {
    status = Get(server_->admin_port(), "/healthz").status;
    if (status != 200) std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(status, 200);
}

TEST_F(AdminTest, MetricsCountExactlyWhatHappened) {
  const auto before = Scrape(server_->admin_port());
  ASSERT_TRUE(before.count("splitinfer_edge_requests_total{code=\"OK\"}"));

  EdgeClientOptions opts;
  opts.port = static_cast<uint16_t>(server_->port());
  EdgeClient client(opts);
  ASSERT_TRUE(client.Connect().ok());
  constexpr int kOk = 5;
  const at::Tensor x = torch::randn({2, 64});
  const double body_bytes = static_cast<double>(x.nbytes());
  for (int i = 0; i < kOk; ++i) {
    wire::InferRequest req;
    req.set_request_id(10 + i);
    req.set_model("mlp");
    req.set_boundary(0);
    ASSERT_TRUE(client.SendRequest(req, x).ok());
    auto reply = client.ReadReply();
    ASSERT_TRUE(reply.ok()) << reply.status();
    ASSERT_TRUE(reply->status.ok()) << reply->status;
  }
  wire::InferRequest unknown;
  unknown.set_request_id(99);
  unknown.set_model("no_such_model");
  unknown.set_boundary(0);
  ASSERT_TRUE(client.SendRequest(unknown, x).ok());
  auto reply = client.ReadReply();
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->status.code(), StatusCode::kNotFound) << reply->status;

  const auto during = Scrape(server_->admin_port());
  EXPECT_EQ(during.at("splitinfer_edge_connected_devices"), 1);
  client.Close();
  const auto after = Scrape(server_->admin_port());
  auto delta = [&](const std::string& key) {
    EXPECT_TRUE(after.count(key)) << key;
    return after.count(key) ? after.at(key) - before.at(key) : -1;
  };
  EXPECT_EQ(delta("splitinfer_edge_requests_total{code=\"OK\"}"), kOk);
  EXPECT_EQ(delta("splitinfer_edge_requests_total{code=\"NOT_FOUND\"}"), 1);
  EXPECT_EQ(delta("splitinfer_edge_connections_accepted_total"), 1);
  EXPECT_GE(delta("splitinfer_edge_bytes_in_total"), (kOk + 1) * body_bytes);
  EXPECT_GE(delta("splitinfer_edge_bytes_out_total"), kOk * 2 * 10 * 4.0);  // the logits
  EXPECT_EQ(delta("splitinfer_edge_stage_latency_seconds_count{stage=\"compute\"}"), kOk);
  EXPECT_EQ(delta("splitinfer_edge_stage_latency_seconds_count{stage=\"queue\"}"), kOk);
  EXPECT_EQ(delta("splitinfer_edge_stage_latency_seconds_count{stage=\"total\"}"), kOk);
  EXPECT_EQ(delta("splitinfer_edge_stage_latency_seconds_bucket{stage=\"total\",le=\"+Inf\"}"),
            kOk);
  EXPECT_EQ(delta("splitinfer_edge_stage_latency_seconds_count{stage=\"decode\"}"), 0);
  EXPECT_GT(delta("splitinfer_edge_stage_latency_seconds_sum{stage=\"compute\"}"), 0);
  EXPECT_EQ(after.at("splitinfer_edge_in_flight_requests"), 0);
  EXPECT_EQ(after.at("splitinfer_edge_model_versions"), 1);
  // The device connection closes asynchronously after client.Close().
  double connected = after.at("splitinfer_edge_connected_devices");
  for (int i = 0; i < 100 && connected != 0; ++i) {
    std::this_thread::sleep_for(20ms);
    connected = Scrape(server_->admin_port()).at("splitinfer_edge_connected_devices");
  }
  EXPECT_EQ(connected, 0);
}

// ---- drain -------------------------------------------------------------------------------

// A ResNet-18 at 224x224 on one CPU thread: each request (a batch of two) takes a fraction of a
// second, so several pipelined ones keep the server busy for seconds.
std::vector<std::string> SlowArgs(const std::string& drain_timeout_s) {
  return {"--models",
          "resnet18",
          "--cpu",
          "--input-size",
          "224",
          "--compute-threads",
          "1",
          "--intra-op-threads",
          "1",
          "--drain-timeout-s",
          drain_timeout_s};
}

constexpr int kSlowRequests = 6;

// Sends kSlowRequests pipelined requests and waits until the server has received them all.
void SendSlowRequests(EdgeClient* client, int admin_port) {
  const at::Tensor x = torch::randn({2, 3, 224, 224});
  for (int i = 0; i < kSlowRequests; ++i) {
    wire::InferRequest req;
    req.set_request_id(100 + i);
    req.set_model("resnet18");
    req.set_boundary(0);
    ASSERT_TRUE(client->SendRequest(req, x).ok());
  }
  double in_flight = 0;
  for (int i = 0; i < 500 && in_flight < kSlowRequests; ++i) {
    in_flight = Scrape(admin_port).at("splitinfer_edge_in_flight_requests");
    if (in_flight < kSlowRequests) std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(in_flight, kSlowRequests) << "the server did not receive every request";
}

TEST(AdminDrainTest, SigtermAnswersEveryReceivedRequestThenExits) {
  AdminServerProcess server(SlowArgs("60"));
  ASSERT_GT(server.port(), 0);
  ASSERT_GT(server.admin_port(), 0);
  EdgeClientOptions opts;
  opts.port = static_cast<uint16_t>(server.port());
  opts.io_timeout = 60s;
  EdgeClient client(opts);
  ASSERT_TRUE(client.Connect().ok());
  ASSERT_NO_FATAL_FAILURE(SendSlowRequests(&client, server.admin_port()));

  server.process().Kill(SIGTERM);
  // Readiness turns 503 while the received requests are still being computed.
  auto ready = Get(server.admin_port(), "/readyz");
  for (int i = 0; i < 100 && ready.status == 200; ++i) {
    std::this_thread::sleep_for(5ms);
    ready = Get(server.admin_port(), "/readyz");
  }
  EXPECT_EQ(ready.status, 503);
  EXPECT_NE(ready.body.find("draining"), std::string::npos) << ready.body;
  EXPECT_EQ(Get(server.admin_port(), "/healthz").status, 200);
  // A request sent after the drain began is refused (the device runs it locally).
  wire::InferRequest late;
  late.set_request_id(999);
  late.set_model("resnet18");
  late.set_boundary(0);
  ASSERT_TRUE(client.SendRequest(late, torch::randn({1, 3, 224, 224})).ok());

  std::set<uint64_t> ok_ids;
  bool late_refused = false;
  for (int i = 0; i < kSlowRequests + 1; ++i) {
    auto reply = client.ReadReply();
    ASSERT_TRUE(reply.ok()) << "reply " << i << ": " << reply.status();
    if (reply->request_id == 999) {
      EXPECT_EQ(reply->status.code(), StatusCode::kUnavailable) << reply->status;
      late_refused = true;
    } else {
      EXPECT_TRUE(reply->status.ok()) << reply->status;
      ok_ids.insert(reply->request_id);
    }
  }
  EXPECT_EQ(ok_ids.size(), static_cast<size_t>(kSlowRequests)) << "a received request was lost";
  EXPECT_TRUE(late_refused);
  EXPECT_EQ(server.process().Wait(), 0);
  const std::string log = server.log();
  EXPECT_NE(log.find("drain: " + std::to_string(kSlowRequests) +
                     " request(s) completed during the drain, 0 dropped on 0 connection(s)"),
            std::string::npos)
      << log;
}

TEST(AdminDrainTest, DrainDeadlineDropsWhatIsLeftAndSaysSo) {
  AdminServerProcess server(SlowArgs("0.05"));
  ASSERT_GT(server.port(), 0);
  ASSERT_GT(server.admin_port(), 0);
  EdgeClientOptions opts;
  opts.port = static_cast<uint16_t>(server.port());
  opts.io_timeout = 60s;
  EdgeClient client(opts);
  ASSERT_TRUE(client.Connect().ok());
  ASSERT_NO_FATAL_FAILURE(SendSlowRequests(&client, server.admin_port()));
  server.process().Kill(SIGTERM);
  EXPECT_EQ(server.process().Wait(), 0);
  const std::string log = server.log();
  const std::regex drain_re(
      R"(drain: (\d+) request\(s\) completed during the drain, (\d+) dropped on (\d+) connection)");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(log, m, drain_re)) << log;
  const int completed = std::stoi(m[1]), dropped = std::stoi(m[2]);
  EXPECT_GE(dropped, 1);
  EXPECT_EQ(completed + dropped, kSlowRequests);
  EXPECT_EQ(std::stoi(m[3]), 1);
  EXPECT_NE(log.find("deadline passed"), std::string::npos) << log;
}

TEST(AdminDrainTest, SecondSignalStopsAtOnce) {
  AdminServerProcess server(SlowArgs("600"));
  ASSERT_GT(server.port(), 0);
  ASSERT_GT(server.admin_port(), 0);
  EdgeClientOptions opts;
  opts.port = static_cast<uint16_t>(server.port());
  opts.io_timeout = 60s;
  EdgeClient client(opts);
  ASSERT_TRUE(client.Connect().ok());
  ASSERT_NO_FATAL_FAILURE(SendSlowRequests(&client, server.admin_port()));
  const auto t0 = std::chrono::steady_clock::now();
  server.process().Kill(SIGTERM);
  std::this_thread::sleep_for(50ms);
  server.process().Kill(SIGINT);
  EXPECT_EQ(server.process().Wait(), 0);
  // Far less than the 600 s drain deadline (at most the computation running when it stopped).
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s);
  const std::string log = server.log();
  EXPECT_NE(log.find("aborted by a second signal"), std::string::npos) << log;
}

}  // namespace
}  // namespace splitinfer

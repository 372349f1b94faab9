// Admission and drain against the real edge_server (docs/security.md, "Admission" and "Drain").
// Each test reproduces a way a slow, idle or hostile client used to hold the edge, or a drain
// used to lose work, and asserts what a real device_client gets now:
//   - 300 idle connections with a valid Hello no longer lock devices out: the newcomer evicts
//     the connection idle longest; every request of a real device runs on the edge;
//   - one address holds at most --max-connections-per-address slots;
//   - a Hello dribbled out byte by byte gets no HelloReply after the handshake deadline;
//   - with a token, silent (unauthenticated) connections hold at most --max-pending-handshakes
//     slots and a device with the token is still served;
//   - while the server is nearly full, idle connections are closed after
//     --crowded-idle-timeout-s;
//   - two requests in flight with one id: the second is refused, not computed twice;
//   - SIGTERM during a device_client --in-flight 8 run: every reply the server computed reaches
//     the device (GoAway, then FIN after the last reply).
#include <sys/resource.h>

#include <regex>

#include <torch/torch.h>

#include "common/tensor_wire.h"
#include "device/edge_client.h"
#include "tests/integration/edge_harness.h"

namespace splitinfer {
namespace {

using namespace harness;

std::vector<std::string> Args(std::vector<std::string> extra) { return ServerArgs(extra); }

// A device_client run of `n` requests at boundary 3, verified against a local run.
std::vector<std::string> DeviceArgs(int n, int in_flight = 2) {
  return {"--model",
          "resnet18",
          "--split",
          "3",
          "--requests",
          std::to_string(n),
          "--verify",
          "--threads",
          "1",
          "--in-flight",
          std::to_string(in_flight),
          "--deadline-ms",
          "10000"};
}

double Evicted(const std::map<std::string, double>& m, const std::string& reason) {
  return Metric(m, "splitinfer_edge_connections_evicted_total{reason=\"" + reason + "\"}");
}

// Raises the soft fd limit to `want` (the server, started after, inherits it).
void RaiseFdLimit(rlim_t want) {
  rlimit lim{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &lim), 0);
  if (lim.rlim_cur >= want) return;
  rlimit raised = lim;
  raised.rlim_cur = lim.rlim_max == RLIM_INFINITY ? want : std::min<rlim_t>(want, lim.rlim_max);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &raised), 0);
}

// ---- idle connections at the connection limit ------------------------------------------------

// The lock-out: 300 connections that say Hello and then nothing, against the default limit of
// 256 (per-address cap off: all come from 127.0.0.1, as in the report). Before eviction the
// device got "RESOURCE_EXHAUSTED: handshake refused: server has its maximum of 256
// connections" for the whole idle timeout and ran everything locally.
TEST(AdmissionTest, ThreeHundredIdleHellosDoNotLockOutADevice) {
  RaiseFdLimit(2048);
  FaultServer server(Args({"--max-connections-per-address", "0"}));
  ASSERT_GT(server.port(), 0);
  ASSERT_GT(server.admin_port(), 0);
  asio::io_context io;
  std::vector<tcp::socket> idle;
  idle.reserve(300);
  // 50 at a time: fewer than --max-pending-handshakes (64) are ever in their handshake at once.
  const int opened = OpenIdle(io, server.port(), 300, &idle, 50);
  EXPECT_EQ(opened, 300) << "every idle connection got its HelloReply";
  EXPECT_LE(WaitForMetric(server.admin_port(), "splitinfer_edge_connected_devices",
                          [](double v) { return v <= 256; }),
            256);

  DeviceRun device(server.address(), DeviceArgs(30));
  EXPECT_EQ(device.Join(), 0);
  const LedgerCounts c = CheckExactlyOnce(device.Records(), 30, "device among 300 idle");
  EXPECT_EQ(c.edge, 30) << "the device was locked out";
  const auto m = Scrape(server.admin_port());
  EXPECT_EQ(Metric(m, "splitinfer_edge_connections_rejected_total"), 0);
  // 300 idle + 1 device into 256 slots: at least 45 idle ones made room.
  EXPECT_GE(Evicted(m, "idle_at_limit"), 45);
  std::printf(
      "[admission] 300 idle Hellos + 1 device on 256 slots: %d/30 requests on the edge, "
      "%.0f idle connections evicted, 0 refused\n",
      c.edge, Evicted(m, "idle_at_limit"));
  for (auto& s : idle) {
    boost::system::error_code ignored;
    s.close(ignored);
  }
}

// One address holds at most --max-connections-per-address slots: its own idle connections make
// room for its newcomers, and another address is not affected.
TEST(AdmissionTest, PerAddressCapEvictsThatAddresssIdleConnections) {
  FaultServer server(Args({"--max-connections-per-address", "8"}));
  ASSERT_GT(server.port(), 0);
  asio::io_context io;
  std::vector<tcp::socket> idle;
  idle.reserve(20);
  // 20 idle connections from 127.0.0.2, one at a time (each evicts the oldest beyond 8).
  int opened = 0;
  for (int i = 0; i < 20; ++i) opened += OpenIdle(io, server.port(), 1, &idle, 1, "127.0.0.2");
  EXPECT_EQ(opened, 20);
  EXPECT_EQ(WaitForMetric(server.admin_port(), "splitinfer_edge_connected_devices",
                          [](double v) { return v == 8; }),
            8);
  DeviceRun device(server.address(), DeviceArgs(10));
  EXPECT_EQ(device.Join(), 0);
  EXPECT_EQ(CheckExactlyOnce(device.Records(), 10, "device from another address").edge, 10);
  const auto m = Scrape(server.admin_port());
  EXPECT_EQ(Evicted(m, "per_address"), 12);
  EXPECT_EQ(Metric(m, "splitinfer_edge_connections_rejected_total"), 0);
}

// ---- the handshake deadline ------------------------------------------------------------------

// A Hello sent in three pieces, each within the io timeout of the one before, but the whole
// after the handshake deadline: the server closes without a HelloReply at the deadline. Before,
// each read phase re-armed its own timer and the reply came at about 3 x the spacing.
TEST(AdmissionTest, DribbledHelloIsCutAtTheHandshakeDeadline) {
  FaultServer server(Args({"--handshake-timeout-ms", "1500"}));
  ASSERT_GT(server.port(), 0);
  wire::Hello h;
  h.set_protocol_version(kProtocolVersion);
  h.set_client_name("dribbler");
  const OutgoingFrame hello = MakeFrame(MessageType::kHello, h);
  BlockingConnection c;
  const auto t0 = Clock::now();
  ASSERT_TRUE(c.Connect("127.0.0.1", server.port(), 5s).ok());
  ASSERT_TRUE(c.WriteRaw(hello.header.data(), 1, 1s).ok());
  std::this_thread::sleep_for(900ms);
  ASSERT_TRUE(c.WriteRaw(hello.header.data() + 1, hello.header.size() - 1, 1s).ok());
  std::this_thread::sleep_for(900ms);
  (void)c.WriteRaw(hello.meta.data(), hello.meta.size(), 1s);  // may fail: already closed
  FrameHeader header;
  std::string meta;
  Status st = c.ReadHeaderAndMeta(FrameLimits{}, 10s, &header, &meta);
  const double ms = MsSince(t0);
  EXPECT_FALSE(st.ok()) << "a HelloReply came " << ms << " ms after connect";
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st;  // closed by the server, not our timeout
  EXPECT_LT(ms, 3000) << "closed after " << ms << " ms (deadline 1500 ms)";
  EXPECT_EQ(WaitForMetric(server.admin_port(), "splitinfer_edge_handshake_timeouts_total",
                          [](double v) { return v >= 1; }),
            1);
}

// With a token, connections that never authenticate hold at most --max-pending-handshakes
// slots (each for at most the handshake deadline, made long here), and a device with the token
// is served on the edge.
TEST(AdmissionTest, UnauthenticatedPeersHoldOnlyTheirShareOfSlots) {
  const std::string token_path =
      ::testing::TempDir() + "admission_token_" + std::to_string(getpid());
  std::ofstream(token_path) << "s3cret-token\n";
  FaultServer server(
      Args({"--auth-token-file", token_path, "--max-connections", "16", "--max-pending-handshakes",
            "4", "--max-connections-per-address", "0", "--handshake-timeout-ms", "30000"}));
  ASSERT_GT(server.port(), 0);
  std::vector<std::unique_ptr<BlockingConnection>> silent;
  for (int i = 0; i < 40; ++i) silent.push_back(RawConnect(server.port(), /*hello=*/false));
  std::this_thread::sleep_for(1200ms);  // the silent ones are now old enough to be evicted
  EXPECT_LE(Metric(Scrape(server.admin_port()), "splitinfer_edge_connected_devices"), 4);
  DeviceRun device(server.address(), [&] {
    auto a = DeviceArgs(10);
    a.insert(a.end(), {"--auth-token-file", token_path});
    return a;
  }());
  EXPECT_EQ(device.Join(), 0);
  EXPECT_EQ(CheckExactlyOnce(device.Records(), 10, "device with the token").edge, 10);
  const auto m = Scrape(server.admin_port());
  EXPECT_GE(Evicted(m, "pending_handshake"), 1);
  std::remove(token_path.c_str());
}

// While at least 3/4 of the slots are open, a connection idle for --crowded-idle-timeout-s is
// closed; below that, idle connections stay (up to --idle-timeout-s).
TEST(AdmissionTest, NearlyFullServerClosesLongIdleConnections) {
  FaultServer server(Args({"--max-connections", "8", "--max-connections-per-address", "0",
                           "--crowded-idle-timeout-s", "1"}));
  ASSERT_GT(server.port(), 0);
  asio::io_context io;
  std::vector<tcp::socket> few, many;
  ASSERT_EQ(OpenIdle(io, server.port(), 5, &few, 5), 5);  // 5 of 8: below 3/4
  std::this_thread::sleep_for(2500ms);
  EXPECT_EQ(Metric(Scrape(server.admin_port()), "splitinfer_edge_connected_devices"), 5);
  ASSERT_EQ(OpenIdle(io, server.port(), 1, &many, 1), 1);  // 6 of 8: crowded
  // The five idle for over a second go at the next sweep; then 1 of 8 is open, no longer
  // crowded, and the newest stays.
  EXPECT_EQ(WaitForMetric(
                server.admin_port(), "splitinfer_edge_connected_devices",
                [](double v) { return v == 1; }, 10s),
            1);
  std::this_thread::sleep_for(2s);
  const auto m = Scrape(server.admin_port());
  EXPECT_EQ(Metric(m, "splitinfer_edge_connected_devices"), 1);
  EXPECT_EQ(Evicted(m, "crowded_idle"), 5);
}

// ---- duplicate request ids -------------------------------------------------------------------

// Two requests with the same id in flight on one connection: the first is computed, the second
// refused INVALID_ARGUMENT without being computed (before, both ran and the device could not
// tell the replies apart).
TEST(AdmissionTest, DuplicateInFlightIdIsRefused) {
  FaultServer server(Args({"--compute-threads", "1"}));
  ASSERT_GT(server.port(), 0);
  auto c = RawConnect(server.port(), /*hello=*/true);
  torch::manual_seed(1);
  const at::Tensor x = torch::randn({1, 3, 64, 64});
  for (int i = 0; i < 2; ++i) {
    wire::InferRequest req = Request(7, 0);
    ASSERT_TRUE(FillTensorMeta(x, req.mutable_tensor()).ok());
    ASSERT_TRUE(c->WriteFrame(MakeTensorFrame(MessageType::kInferRequest, req, x), 5s).ok());
  }
  int ok = 0, refused = 0;
  for (int i = 0; i < 2; ++i) {
    FrameHeader header;
    std::string meta;
    ASSERT_TRUE(c->ReadHeaderAndMeta(FrameLimits{}, 30s, &header, &meta).ok());
    ASSERT_EQ(header.type, MessageType::kInferReply);
    wire::InferReply reply;
    ASSERT_TRUE(ParseMeta(meta, &reply).ok());
    std::string body(header.body_len, '\0');
    ASSERT_TRUE(c->ReadExact(body.data(), body.size(), 30s).ok());
    EXPECT_EQ(reply.request_id(), 7u);
    if (reply.code() == wire::OK) ++ok;
    if (reply.code() == wire::INVALID_ARGUMENT) {
      ++refused;
      EXPECT_NE(reply.message().find("already in flight"), std::string::npos) << reply.message();
    }
  }
  EXPECT_EQ(ok, 1);
  EXPECT_EQ(refused, 1);
  const auto m = Scrape(server.admin_port());
  EXPECT_EQ(Metric(m, "splitinfer_edge_batched_requests_total"), 1) << "computed twice";
}

// ---- the drain -------------------------------------------------------------------------------

// SIGTERM while a device_client runs with 8 requests in flight: the server says GoAway, answers
// what it received, writes every reply and half-closes; the device reads them all before it
// moves the rest to local compute. What the server computed is what the device received from
// the edge (before: e.g. 19 computed, 15 received, the rest "write: Broken pipe" and recomputed
// locally).
TEST(AdmissionTest, SigtermDrainDeliversEveryComputedReply) {
  FaultServer server(Args({"--drain-timeout-s", "30"}));
  ASSERT_GT(server.port(), 0);
  DeviceRun device(server.address(), DeviceArgs(200, 8));
  const auto give_up = Clock::now() + 120s;
  while (device.edge_lines() < 20 && !device.done() && Clock::now() < give_up) {
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_GE(device.edge_lines(), 20) << "the device did not get going";
  server.process().Kill(SIGTERM);
  EXPECT_EQ(device.Join(), 0);
  EXPECT_EQ(server.process().Wait(), 0);
  const LedgerCounts c = CheckExactlyOnce(device.Records(), 200, "device during the drain");
  const std::string log = server.log();
  std::smatch m;
  const std::regex stopped_re(R"(stopped: (\d+) requests ok)");
  ASSERT_TRUE(std::regex_search(log, m, stopped_re)) << log;
  const int computed = std::stoi(m[1]);
  EXPECT_EQ(c.edge, computed) << "replies computed by the edge but not received by the device";
  // Requests the device sent before its GoAway arrived, read by the server after it had
  // half-closed, get no reply: never computed (computed == received above), they run locally.
  // At most one window of them.
  EXPECT_LE(c.lost_in_flight, 8);
  EXPECT_GT(c.fallback, 0) << "the rest ran locally after the edge went away";
  const std::regex drain_re(
      R"(drain: (\d+) request\(s\) completed during the drain, (\d+) dropped)");
  ASSERT_TRUE(std::regex_search(log, m, drain_re)) << log;
  EXPECT_EQ(std::stoi(m[2]), 0) << log;
  std::printf(
      "[drain] SIGTERM under --in-flight 8: %d computed by the edge, %d received from it, "
      "%d run locally, %d lost in flight\n",
      computed, c.edge, c.fallback, c.lost_in_flight);
}

}  // namespace
}  // namespace splitinfer

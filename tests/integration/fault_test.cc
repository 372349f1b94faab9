// Fault injection against the real edge_server and device_client (issue 8, "What must hold").
// The server runs as a child process on 127.0.0.1 (port 0, admin endpoint on port 0); faults are
// made by this test: SIGKILL while requests are queued and batched, a seeded TCP proxy that cuts
// connections after a random number of bytes in either direction, peers that stall mid-frame,
// garbage and oversize frames, and 1000 idle connections. What is asserted:
//   - every inference completes exactly once: each request id appears once in each
//     device_client's ledger, ok, and equal to a whole local run (--verify);
//   - a stalled or broken peer is closed by the server (io timeout, or at once for a broken
//     frame) while well-behaved clients meanwhile get every request answered by the edge within
//     their deadline;
//   - 1000 idle connections cost bounded server memory and do not stop a good client.
// Randomness is seeded; timing assertions are the deadlines themselves, with generous margins.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "common/frame.h"
#include "common/frame_io.h"
#include "common/model_zoo.h"
#include "common/tensor_wire.h"
#include "device/edge_client.h"
#include "tests/integration/child_process.h"
#include "tests/integration/edge_harness.h"
#include "tests/integration/test_models.h"

namespace splitinfer {
namespace {

using namespace harness;

// ---- 1. SIGKILL mid-batch ---------------------------------------------------------------------

// Four devices, four requests in flight each, against a server that batches (one compute
// thread, batches of up to 8): the server is killed while requests are queued or computing.
// Every inference completes exactly once, on the edge before the kill or locally after it, and
// the requests that were in flight at the kill are among the local ones.
TEST(FaultTest, KillMidBatchLosesNoInferenceOnAnyDevice) {
  FaultServer server(ServerArgs({"--compute-threads", "1", "--max-batch-size", "8",
                                 "--max-batch-delay-us", "5000", "--max-in-flight", "16"}));
  ASSERT_GT(server.port(), 0);
  ASSERT_GT(server.admin_port(), 0);
  constexpr int kDevices = 4, kRequests = 200;
  std::vector<std::unique_ptr<DeviceRun>> devices;
  for (int d = 0; d < kDevices; ++d) {
    devices.push_back(std::make_unique<DeviceRun>(
        server.address(),
        std::vector<std::string>{"--model", "resnet18", "--split", "3", "--requests",
                                 std::to_string(kRequests), "--in-flight", "4", "--verify",
                                 "--seed", std::to_string(11 + d), "--threads", "1",
                                 "--reconnect-ms", "50", "--io-timeout-ms", "10000"}));
  }
  // Every device has had some inferences answered by the edge...
  const auto give_up = Clock::now() + 60s;
  auto all_started = [&] {
    for (auto& d : devices)
      if (d->edge_lines() < 8) return false;
    return true;
  };
  while (!all_started() && Clock::now() < give_up) std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(all_started()) << "the devices did not get going";
  // ...and the server holds requests it received and has not answered (queued or computing).
  std::map<std::string, double> at_kill;
  // Preferably while some wait in the batch queue (up to 1.5 s of scrapes), else with at least 2
  // received and unanswered.
  const auto prefer_until = Clock::now() + 1500ms;
  for (int i = 0; i < 100000; ++i) {
    at_kill = Scrape(server.admin_port());
    if (Metric(at_kill, "splitinfer_edge_batch_queue_depth") >= 1) break;
    if (Clock::now() > prefer_until && Metric(at_kill, "splitinfer_edge_in_flight_requests") >= 2)
      break;
  }
  server.process().Kill(SIGKILL);
  server.process().Wait();
  const double in_flight = Metric(at_kill, "splitinfer_edge_in_flight_requests");
  EXPECT_GE(in_flight, 1) << "the kill did not land while requests were in the server";
  std::printf(
      "[kill] at the kill: %g requests in flight, %g queued for a batch, %g batches of "
      "%g requests so far\n",
      in_flight, Metric(at_kill, "splitinfer_edge_batch_queue_depth"),
      Metric(at_kill, "splitinfer_edge_batches_total"),
      Metric(at_kill, "splitinfer_edge_batched_requests_total"));

  int lost = 0, edge = 0, local = 0;
  for (int d = 0; d < kDevices; ++d) {
    EXPECT_EQ(devices[d]->Join(), 0) << "device " << d;
    const LedgerCounts c =
        CheckExactlyOnce(devices[d]->Records(), kRequests, "device " + std::to_string(d));
    EXPECT_GE(c.edge, 8);
    EXPECT_GT(c.fallback, 0) << "device " << d << " finished before the kill";
    lost += c.lost_in_flight;
    edge += c.edge;
    local += c.fallback;
  }
  // The requests in flight at the kill were finished locally, each once.
  EXPECT_GE(lost, 1);
  std::printf(
      "[kill] %d devices x %d inferences: %d on the edge, %d local (%d of them in flight "
      "at the kill)\n",
      kDevices, kRequests, edge, local, lost);
}

// The edge comes back on the same port after a SIGKILL: every inference still completes
// exactly once, and every device, having fallen back locally meanwhile, reconnects and finishes
// inferences on the edge again. (--io-timeout-ms 3000 bounds any read that waits on a dead
// connection; SendFailureFinishesTheOtherInFlightRequestsAtOnce covers the send side.)
TEST(FaultTest, DevicesReturnToARestartedEdge) {
  const std::vector<std::string> args =
      ServerArgs({"--compute-threads", "1", "--max-batch-size", "8"});
  auto server = std::make_unique<FaultServer>(args);
  ASSERT_GT(server->port(), 0);
  const int port = server->port();
  constexpr int kDevices = 3, kRequests = 200;
  std::vector<std::unique_ptr<DeviceRun>> devices;
  for (int d = 0; d < kDevices; ++d) {
    devices.push_back(std::make_unique<DeviceRun>(
        server->address(),
        std::vector<std::string>{"--model", "resnet18", "--split", "3", "--requests",
                                 std::to_string(kRequests), "--in-flight", "4", "--verify",
                                 "--seed", std::to_string(31 + d), "--threads", "1",
                                 "--reconnect-ms", "50", "--io-timeout-ms", "3000"}));
  }
  const auto give_up = Clock::now() + 60s;
  auto all_started = [&] {
    for (auto& d : devices)
      if (d->edge_lines() < 8) return false;
    return true;
  };
  while (!all_started() && Clock::now() < give_up) std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(all_started()) << "the devices did not get going";
  server->process().Kill(SIGKILL);
  server->process().Wait();
  const auto t_kill = Clock::now();
  server = std::make_unique<FaultServer>(args, port);
  ASSERT_EQ(server->port(), port) << "the edge did not come back on port " << port;
  const double down_ms = MsSince(t_kill);

  int edge = 0, local = 0, timed_out = 0;
  for (int d = 0; d < kDevices; ++d) {
    EXPECT_EQ(devices[d]->Join(), 0) << "device " << d;
    const auto recs = devices[d]->Records();
    const LedgerCounts c = CheckExactlyOnce(recs, kRequests, "device " + std::to_string(d));
    edge += c.edge;
    local += c.fallback;
    // In completion order: on the edge, then local while it was down, then on the edge again.
    bool fell_back = false, back_on_edge = false;
    for (auto& r : recs) {
      if (r["completed_on"] == "fallback_local") fell_back = true;
      if (fell_back && r["completed_on"] == "edge") back_on_edge = true;
    }
    for (auto& r : recs) timed_out += r["fallback"].dump().find("timed out") != std::string::npos;
    EXPECT_TRUE(fell_back) << "device " << d;
    EXPECT_TRUE(back_on_edge) << "device " << d << " never returned to the restarted edge";
  }
  std::printf(
      "[restart] edge down %.0f ms (SIGKILL to listening again); %d devices x %d "
      "inferences: %d on the edge, %d local (%d after an io timeout)\n",
      down_ms, kDevices, kRequests, edge, local, timed_out);
}

// ---- 2. connections cut at random points ------------------------------------------------------

// A TCP proxy on loopback between device_client and edge_server that cuts every connection
// after a random number of bytes (seeded) in one direction, chosen at random: device->edge
// (mid-Hello, mid-header, mid-body) or edge->device (mid-HelloReply, mid-reply). A cut closes
// both sides at once.
class CuttingProxy {
 public:
  struct Plan {
    uint64_t seed = 1;
    uint64_t max_up_bytes = 100000;  // device -> edge budget, uniform in [0, max]
    uint64_t max_down_bytes = 2000;  // edge -> device budget, uniform in [0, max]
    // Connection i < script.size() is cut device->edge after script[i] bytes instead; with
    // `random_after_script` false the connections after the script are never cut.
    std::vector<uint64_t> script;
    bool random_after_script = true;
  };

  CuttingProxy(uint16_t upstream_port, Plan plan)
      : upstream_port_(upstream_port),
        plan_(plan),
        rng_(plan.seed),
        acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    Accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~CuttingProxy() {
    io_.stop();
    thread_.join();
  }

  uint16_t port() const { return port_; }
  int connections() const { return connections_.load(); }
  int cuts_up() const { return cuts_[0].load(); }
  int cuts_down() const { return cuts_[1].load(); }

 private:
  struct Pipe : std::enable_shared_from_this<Pipe> {
    Pipe(asio::io_context& io, CuttingProxy* owner) : down(io), up(io), proxy(owner) {}
    tcp::socket down;  // to the device
    tcp::socket up;    // to the edge
    CuttingProxy* proxy;
    uint64_t left[2] = {UINT64_MAX, UINT64_MAX};  // [0] device->edge, [1] edge->device
    std::array<std::array<char, 16384>, 2> buf;
    bool closed = false;

    tcp::socket& From(int dir) { return dir == 0 ? down : up; }
    tcp::socket& To(int dir) { return dir == 0 ? up : down; }

    void Pump(int dir) {
      From(dir).async_read_some(
          asio::buffer(buf[dir]),
          [self = shared_from_this(), dir](boost::system::error_code ec, size_t n) {
            if (self->closed) return;
            if (ec) return self->Close();
            const bool cut = n >= self->left[dir];
            if (cut) n = static_cast<size_t>(self->left[dir]);
            self->left[dir] -= n;
            asio::async_write(self->To(dir), asio::buffer(self->buf[dir].data(), n),
                              [self, dir, cut](boost::system::error_code ec, size_t) {
                                if (self->closed) return;
                                if (ec) return self->Close();
                                if (cut) {
                                  self->proxy->cuts_[dir]++;
                                  return self->Close();
                                }
                                self->Pump(dir);
                              });
          });
    }
    void Close() {
      closed = true;
      boost::system::error_code ignored;
      down.close(ignored);
      up.close(ignored);
    }
  };

  void Accept() {
    auto pipe = std::make_shared<Pipe>(io_, this);
    acceptor_.async_accept(pipe->down, [this, pipe](boost::system::error_code ec) {
      if (ec) return;
      const size_t index = static_cast<size_t>(connections_++);
      if (index < plan_.script.size()) {
        pipe->left[0] = plan_.script[index];
      } else if (plan_.random_after_script) {
        const int dir = std::uniform_int_distribution<int>(0, 1)(rng_);
        pipe->left[dir] = std::uniform_int_distribution<uint64_t>(
            0, dir == 0 ? plan_.max_up_bytes : plan_.max_down_bytes)(rng_);
      }
      pipe->up.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), upstream_port_),
                             [pipe](boost::system::error_code ec) {
                               if (ec) return pipe->Close();
                               pipe->Pump(0);
                               pipe->Pump(1);
                             });
      Accept();
    });
  }

  uint16_t upstream_port_;
  Plan plan_;
  std::mt19937_64 rng_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<int> connections_{0};
  std::array<std::atomic<int>, 2> cuts_{};
};

TEST(FaultTest, ConnectionsCutAtRandomPointsLoseNoInference) {
  FaultServer server(ServerArgs({"--compute-threads", "1", "--max-batch-size", "4"}));
  ASSERT_GT(server.port(), 0);
  // The request at boundary 3 is a 1x16x16x16 float tensor: 16 KiB of body, about 16.5 KiB a
  // frame; a reply (10 logits) is about 100 bytes. Budgets up to ~6 requests or ~20 replies.
  CuttingProxy::Plan plan;
  plan.seed = 20261125;
  plan.max_up_bytes = 100000;
  plan.max_down_bytes = 2000;
  CuttingProxy proxy(server.port(), plan);
  constexpr int kDevices = 3, kRequests = 120;
  const auto t0 = Clock::now();
  std::vector<std::unique_ptr<DeviceRun>> devices;
  for (int d = 0; d < kDevices; ++d) {
    devices.push_back(std::make_unique<DeviceRun>(
        "127.0.0.1:" + std::to_string(proxy.port()),
        std::vector<std::string>{"--model", "resnet18", "--split", "3", "--requests",
                                 std::to_string(kRequests), "--in-flight", "3", "--verify",
                                 "--seed", std::to_string(21 + d), "--threads", "1",
                                 "--reconnect-ms", "10", "--io-timeout-ms", "3000"}));
  }
  int edge = 0, local = 0, lost = 0;
  double max_total_ms = 0;
  for (int d = 0; d < kDevices; ++d) {
    EXPECT_EQ(devices[d]->Join(), 0) << "device " << d;
    const LedgerCounts c =
        CheckExactlyOnce(devices[d]->Records(), kRequests, "device " + std::to_string(d));
    edge += c.edge;
    local += c.fallback;
    lost += c.lost_in_flight;
    max_total_ms = std::max(max_total_ms, c.max_total_ms);
  }
  const double took_s = MsSince(t0) / 1000;
  std::printf(
      "[cut] %d connections through the proxy, %d cut device->edge, %d cut edge->device; "
      "%d inferences: %d on the edge, %d local (%d in flight at a cut); slowest %.0f ms; "
      "%.1f s\n",
      proxy.connections(), proxy.cuts_up(), proxy.cuts_down(), kDevices * kRequests, edge, local,
      lost, max_total_ms, took_s);
  EXPECT_GE(proxy.cuts_up(), 5);
  EXPECT_GE(proxy.cuts_down(), 5);
  EXPECT_GT(edge, 0);
  EXPECT_GT(lost, 0);
  // The server survived every cut and still serves a direct client.
  ASSERT_TRUE(server.alive());
  EdgeClientOptions o;
  o.port = server.port();
  EdgeClient client(o);
  ASSERT_TRUE(client.Connect().ok());
  ASSERT_TRUE(client.SendRequest(Request(1, 3), torch::randn({1, 16, 16, 16})).ok());
  auto reply = client.ReadReply();
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_TRUE(reply->status.ok()) << reply->status;
}

// A cut costs a reconnect, not an io timeout.
// Scenario: 3 requests in flight; the proxy cuts the first connection in the middle of request
// 2, with bytes of it unread, so the device gets a reset. The device's slowdown leaves the reset
// time to arrive before it writes request 3, whose write then fails ("send failed").
// device_client (Runner::Start, the `!st.ok()` branch after SendRequest) must then finish
// requests 1 and 2, sent on that dead connection, locally at once ("edge lost: ..."), as
// ReadOne() does when a read fails. Before the fix they stayed in `pending_` and waited for the
// next connection's io timeout (measured 4.7-4.9 s with --io-timeout-ms 4000; 30 s by default).
TEST(FaultTest, SendFailureFinishesTheOtherInFlightRequestsAtOnce) {
  FaultServer server(ServerArgs({}));
  ASSERT_GT(server.port(), 0);
  CuttingProxy::Plan plan;
  // Hello (~40 bytes) + request 1 (16,450 bytes) + about half of request 2.
  plan.script = {25000};
  plan.random_after_script = false;
  CuttingProxy proxy(server.port(), plan);
  constexpr int kRequests = 8, kIoTimeoutMs = 4000;
  DeviceRun device("127.0.0.1:" + std::to_string(proxy.port()),
                   {"--model", "resnet18", "--split", "3", "--requests", std::to_string(kRequests),
                    "--in-flight", "3", "--verify", "--threads", "1", "--device-slowdown", "20",
                    "--reconnect-ms", "0", "--io-timeout-ms", std::to_string(kIoTimeoutMs)});
  EXPECT_EQ(device.Join(), 0);
  const auto recs = device.Records();
  const LedgerCounts c = CheckExactlyOnce(recs, kRequests, "device");
  EXPECT_EQ(proxy.cuts_up(), 1);
  EXPECT_GE(c.lost_in_flight, 1);
  for (auto& r : recs) {
    EXPECT_LT(r["total_ms"].get<double>(), kIoTimeoutMs / 2.0)
        << "an inference waited for an io timeout after its connection was gone: " << r.dump();
  }
}

// ---- 3. peers stalled mid-frame -----------------------------------------------------------------

// The reference for the in-process good client: the same zoo model as the server's.
std::shared_ptr<SplitModel> LocalModel() {
  auto m = BuildZooModel("resnet18", 1, testing::SmallZoo());
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *m : nullptr;
}

struct GoodClientResult {
  int requests = 0, ok_on_edge = 0, wrong = 0;
  double max_ms = 0;
  std::vector<double> latencies_ms;
};

// A well-behaved device in this process: one request at a time at boundary 3 with a deadline,
// each checked against the local run, until `stop` (and at least `min_requests`).
GoodClientResult RunGoodClient(uint16_t port, const SplitModel& model, uint32_t deadline_ms,
                               const std::atomic<bool>& stop, int min_requests) {
  GoodClientResult out;
  EdgeClientOptions o;
  o.port = port;
  o.io_timeout = 30s;
  EdgeClient client(o);
  Status st = client.Connect();
  EXPECT_TRUE(st.ok()) << st;
  if (!st.ok()) return out;
  c10::InferenceMode guard;
  for (uint64_t id = 1; !stop.load() || out.requests < min_requests; ++id) {
    torch::manual_seed(1000 + id);
    const at::Tensor x = torch::randn({1, 3, 64, 64});
    const at::Tensor boundary = model.RunRange(x, 0, 3);
    const at::Tensor want = model.RunRange(boundary, 3, model.num_units());
    const auto t = Clock::now();
    ++out.requests;
    st = client.SendRequest(Request(id, 3, deadline_ms), boundary);
    EXPECT_TRUE(st.ok()) << st;
    if (!st.ok()) break;
    auto reply = client.ReadReply();
    const double ms = MsSince(t);
    EXPECT_TRUE(reply.ok()) << reply.status();
    if (!reply.ok()) break;
    out.latencies_ms.push_back(ms);
    out.max_ms = std::max(out.max_ms, ms);
    EXPECT_EQ(reply->request_id, id);
    EXPECT_TRUE(reply->status.ok()) << "request " << id << ": " << reply->status;
    if (!reply->status.ok()) continue;
    ++out.ok_on_edge;
    if (!torch::allclose(reply->output, want, 1e-4, 1e-5)) ++out.wrong;
  }
  return out;
}

TEST(FaultTest, StalledPeersAreClosedAndDoNotDelayOthers) {
  constexpr int kIoTimeoutMs = 1000;
  constexpr uint32_t kDeadlineMs = 2000;
  FaultServer server(ServerArgs({"--io-timeout-ms", std::to_string(kIoTimeoutMs)}));
  ASSERT_GT(server.port(), 0);
  auto model = LocalModel();
  ASSERT_TRUE(model);

  std::atomic<bool> stop{false};
  GoodClientResult good;
  std::thread good_thread(
      [&] { good = RunGoodClient(server.port(), *model, kDeadlineMs, stop, 20); });
  struct StopAndJoin {  // also when an ASSERT below returns early
    std::atomic<bool>& stop;
    std::thread& thread;
    ~StopAndJoin() {
      stop = true;
      if (thread.joinable()) thread.join();
    }
  } stop_and_join{stop, good_thread};

  // Stalled peers, opened while the good client runs: half a Hello; after the handshake, half a
  // header; a whole header and metadata and half the body. Then silence.
  struct Stalled {
    std::unique_ptr<BlockingConnection> conn;
    std::string kind;
    Clock::time_point stalled_at;
  };
  std::vector<Stalled> stalled;
  const at::Tensor t = torch::randn({1, 16, 16, 16});
  for (int i = 0; i < 8; ++i) {
    Stalled s;
    const int kind = i % 3;
    s.conn = RawConnect(server.port(), /*hello=*/kind != 0);
    if (kind == 0) {
      wire::Hello h;
      h.set_protocol_version(kProtocolVersion);
      OutgoingFrame f = MakeFrame(MessageType::kHello, h);
      s.stalled_at = Clock::now();
      ASSERT_TRUE(s.conn->WriteRaw(f.header.data(), 10, 5s).ok());
      s.kind = "half a Hello header";
    } else {
      wire::InferRequest req = Request(100 + i, 3);
      ASSERT_TRUE(FillTensorMeta(t, req.mutable_tensor()).ok());
      OutgoingFrame f = MakeTensorFrame(MessageType::kInferRequest, req, t);
      if (kind == 1) {
        s.stalled_at = Clock::now();
        ASSERT_TRUE(s.conn->WriteRaw(f.header.data(), kFrameHeaderSize / 2, 5s).ok());
        s.kind = "half a request header";
      } else {
        ASSERT_TRUE(s.conn->WriteRaw(f.header.data(), f.header.size(), 5s).ok());
        ASSERT_TRUE(s.conn->WriteRaw(f.meta.data(), f.meta.size(), 5s).ok());
        s.stalled_at = Clock::now();  // before the last bytes: the server's timer starts later
        ASSERT_TRUE(s.conn->WriteRaw(f.body, f.body_size / 2, 5s).ok());
        s.kind = "half a request body";
      }
    }
    stalled.push_back(std::move(s));
  }
  // Each is closed by the server once its io timeout passes, not before, and not much after.
  std::vector<std::thread> watchers;
  std::vector<double> closed_after_ms(stalled.size(), -1);
  std::vector<Status> how(stalled.size());
  for (size_t i = 0; i < stalled.size(); ++i) {
    watchers.emplace_back([&, i] {
      how[i] = ReadUntilClosed(*stalled[i].conn, 10s);
      closed_after_ms[i] = MsSince(stalled[i].stalled_at);
    });
  }
  for (auto& w : watchers) w.join();
  std::this_thread::sleep_for(300ms);  // the good client goes on a little after the closes
  stop = true;
  good_thread.join();  // (stop_and_join then has nothing left to do)

  double min_close = 1e9, max_close = 0;
  for (size_t i = 0; i < stalled.size(); ++i) {
    SCOPED_TRACE(stalled[i].kind);
    EXPECT_EQ(how[i].code(), StatusCode::kUnavailable) << how[i];  // closed by the server
    EXPECT_GE(closed_after_ms[i], kIoTimeoutMs);
    EXPECT_LE(closed_after_ms[i], kIoTimeoutMs + 4000.0);
    min_close = std::min(min_close, closed_after_ms[i]);
    max_close = std::max(max_close, closed_after_ms[i]);
  }
  // Every request of the good client was answered by the edge, correctly, within its deadline.
  EXPECT_GE(good.requests, 20);
  EXPECT_EQ(good.ok_on_edge, good.requests);
  EXPECT_EQ(good.wrong, 0);
  EXPECT_LT(good.max_ms, kDeadlineMs);
  std::vector<double> sorted = good.latencies_ms;
  std::sort(sorted.begin(), sorted.end());
  std::printf(
      "[stall] %zu stalled peers closed %.0f-%.0f ms after they stalled (io timeout %d "
      "ms); good client meanwhile: %d requests, all on the edge, p50 %.1f ms, max %.1f ms "
      "(deadline %u ms)\n",
      stalled.size(), min_close, max_close, kIoTimeoutMs, good.requests,
      sorted.empty() ? 0.0 : sorted[sorted.size() / 2], good.max_ms, kDeadlineMs);
}

// ---- 4. garbage and oversize frames beside good traffic ---------------------------------------

// One bad connection of kind `kind` (seeded garbage where random). Returns how it ended.
Status SendBadFrame(uint16_t port, int kind, std::mt19937_64& rng, std::string* what) {
  auto random_bytes = [&](size_t n) {
    std::string s(n, '\0');
    for (auto& ch : s) ch = static_cast<char>(rng());
    return s;
  };
  const bool hello = kind != 0 && kind != 5;
  auto c = RawConnect(port, hello);
  if (!c->is_open()) return UnavailableError("connect failed");
  FrameHeader h;
  std::string bytes;
  switch (kind) {
    case 0:  // random bytes instead of a Hello
      *what = "random bytes before the Hello";
      bytes = random_bytes(24 + rng() % 1000);
      break;
    case 1: {  // bad magic
      *what = "bad magic";
      HeaderBytes b = EncodeHeader(FrameHeader{});
      b[0] = 'X';
      bytes.assign(b.begin(), b.end());
      break;
    }
    case 2: {  // body length of 512 GiB
      *what = "oversize body length";
      h.type = MessageType::kInferRequest;
      h.body_len = uint64_t{1} << 39;
      HeaderBytes b = EncodeHeader(h);
      bytes.assign(b.begin(), b.end());
      break;
    }
    case 3: {  // metadata length over the limit
      *what = "oversize metadata length";
      h.type = MessageType::kInferRequest;
      h.meta_len = 16u << 20;
      HeaderBytes b = EncodeHeader(h);
      bytes.assign(b.begin(), b.end());
      break;
    }
    case 4: {  // a well-framed request whose metadata is random bytes
      *what = "garbage metadata";
      const std::string meta = random_bytes(64 + rng() % 200);
      h.type = MessageType::kInferRequest;
      h.meta_len = static_cast<uint32_t>(meta.size());
      HeaderBytes b = EncodeHeader(h);
      bytes.assign(b.begin(), b.end());
      bytes += meta;
      break;
    }
    case 5: {  // a valid request before the Hello
      *what = "request before the Hello";
      const at::Tensor t = torch::randn({1, 16, 16, 16});
      wire::InferRequest req = Request(7, 3);
      EXPECT_TRUE(FillTensorMeta(t, req.mutable_tensor()).ok());
      OutgoingFrame f = MakeTensorFrame(MessageType::kInferRequest, req, t);
      bytes.assign(f.header.begin(), f.header.end());
      bytes += f.meta;
      bytes.append(static_cast<const char*>(f.body), f.body_size);
      break;
    }
    case 6: {  // the shape says 16 KiB, the body length 1 KiB
      *what = "body that does not match its shape";
      const at::Tensor t = torch::randn({1, 16, 16, 16});
      wire::InferRequest req = Request(8, 3);
      EXPECT_TRUE(FillTensorMeta(t, req.mutable_tensor()).ok());
      h.type = MessageType::kInferRequest;
      h.meta_len = static_cast<uint32_t>(req.ByteSizeLong());
      h.body_len = 1024;
      HeaderBytes b = EncodeHeader(h);
      bytes.assign(b.begin(), b.end());
      bytes += req.SerializeAsString();
      bytes += random_bytes(1024);
      break;
    }
    default: {  // a header of a type only servers send
      *what = "server-only message type";
      h.type = MessageType::kFetchChunk;
      HeaderBytes b = EncodeHeader(h);
      bytes.assign(b.begin(), b.end());
      break;
    }
  }
  Status st = c->WriteRaw(bytes.data(), bytes.size(), 5s);
  // The server may close while we still write (it answers the header at once): not a failure.
  if (!st.ok() && st.code() != StatusCode::kUnavailable) return st;
  return ReadUntilClosed(*c, 5s);
}

TEST(FaultTest, GarbageFramesAreRefusedWhileAGoodClientRuns) {
  FaultServer server(ServerArgs({"--io-timeout-ms", "3000", "--max-body-mb", "1"}));
  ASSERT_GT(server.port(), 0);
  ASSERT_GT(server.admin_port(), 0);
  const auto before = Scrape(server.admin_port());
  constexpr uint32_t kDeadlineMs = 3000;
  DeviceRun good(server.address(), {"--model", "resnet18", "--split", "3", "--requests", "150",
                                    "--in-flight", "2", "--verify", "--seed", "41", "--threads",
                                    "1", "--deadline-ms", std::to_string(kDeadlineMs)});
  const auto give_up = Clock::now() + 60s;
  while (good.lines() < 5 && !good.done() && Clock::now() < give_up)
    std::this_thread::sleep_for(5ms);
  ASSERT_GE(good.lines(), 5) << "the good client did not start";

  // Bad connections from 3 threads until the good client is done (at least 16, at most 1500
  // each, 1 ms apart).
  constexpr int kKinds = 8;
  std::mutex mu;
  std::map<std::string, int> closed_by_kind, not_closed_by_kind;
  std::vector<std::thread> bad;
  std::atomic<int> bad_total{0};
  for (int b = 0; b < 3; ++b) {
    bad.emplace_back([&, b] {
      std::mt19937_64 rng(777 + b);
      for (int i = 0; i < 16 || !good.done(); ++i) {
        std::string what;
        Status st = SendBadFrame(server.port(), (i + b) % kKinds, rng, &what);
        ++bad_total;
        // Closed by the server (EOF, or a reset when it closed with our bytes unread).
        const bool closed = st.code() == StatusCode::kUnavailable;
        {
          std::lock_guard<std::mutex> lock(mu);
          (closed ? closed_by_kind : not_closed_by_kind)[what]++;
        }
        if (!closed) ADD_FAILURE() << what << ": not closed by the server: " << st;
        if (i >= 1500) break;
        std::this_thread::sleep_for(1ms);
      }
    });
  }
  for (auto& t : bad) t.join();
  EXPECT_EQ(good.Join(), 0);
  const LedgerCounts c = CheckExactlyOnce(good.Records(), 150, "good client");
  EXPECT_EQ(c.edge, 150) << "a good request was not served by the edge";
  const auto after = Scrape(server.admin_port());
  EXPECT_GE(Metric(after, "splitinfer_edge_frames_rejected_total") -
                Metric(before, "splitinfer_edge_frames_rejected_total"),
            bad_total.load() * 0.9);
  EXPECT_GE(Metric(after, "splitinfer_edge_requests_total{code=\"OK\"}"), 150);
  EXPECT_TRUE(server.alive());
  std::string kinds;
  for (auto& [k, n] : closed_by_kind) kinds += " " + k + ": " + std::to_string(n) + ";";
  std::printf(
      "[garbage] %d bad connections closed by the server (%s) while the good client ran "
      "150 requests, all on the edge, slowest %.1f ms (deadline %u ms)\n",
      bad_total.load(), kinds.c_str(), c.max_total_ms, kDeadlineMs);
}

// ---- 5. 1000 idle connections -----------------------------------------------------------------

TEST(FaultTest, ThousandIdleConnectionsCostBoundedMemory) {
  constexpr int kIdle = 1000;
  // This process holds 1000 sockets, the server 1000 more: raise the soft fd limit (the server,
  // started after, inherits it).
  rlimit lim{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &lim), 0);
  const rlim_t want = 4096;
  if (lim.rlim_cur < want) {
    if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < 2 * kIdle + 200) {
      GTEST_SKIP() << "RLIMIT_NOFILE hard limit " << lim.rlim_max << " is too low";
    }
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max == RLIM_INFINITY ? want : std::min<rlim_t>(want, lim.rlim_max);
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &raised), 0);
  }
  // All from 127.0.0.1, 100 handshakes at a time, held idle: admission's per-address cap,
  // handshake cap and crowded-idle limit are lifted (admission_test covers them).
  FaultServer server(
      ServerArgs({"--max-connections", "1100", "--max-connections-per-address", "0",
                  "--max-pending-handshakes", "1100", "--crowded-idle-timeout-s", "3600"}));
  ASSERT_GT(server.port(), 0);
  ASSERT_GT(server.admin_port(), 0);
  const pid_t pid = server.process().pid();
  // Warm up: one inference through the edge so that the model's buffers are allocated.
  {
    DeviceRun warm(server.address(), {"--model", "resnet18", "--split", "3", "--requests", "5",
                                      "--verify", "--threads", "1"});
    ASSERT_EQ(warm.Join(), 0);
  }
  ASSERT_EQ(WaitForMetric(server.admin_port(), "splitinfer_edge_connected_devices",
                          [](double v) { return v == 0; }),
            0);
  const uint64_t rss_before = RssBytes(pid);
  ASSERT_GT(rss_before, 0u);

  asio::io_context io;
  std::vector<tcp::socket> idle;
  idle.reserve(kIdle);
  const auto t0 = Clock::now();
  const int opened = OpenIdle(io, server.port(), kIdle, &idle);
  const double open_ms = MsSince(t0);
  ASSERT_EQ(opened, kIdle);
  EXPECT_EQ(WaitForMetric(server.admin_port(), "splitinfer_edge_connected_devices",
                          [](double v) { return v == kIdle; }),
            kIdle);
  const uint64_t rss_idle = RssBytes(pid);

  // A good client still works, every request on the edge, while the 1000 are held.
  DeviceRun good(server.address(),
                 {"--model", "resnet18", "--split", "3", "--requests", "30", "--in-flight", "2",
                  "--verify", "--threads", "1", "--deadline-ms", "5000"});
  EXPECT_EQ(good.Join(), 0);
  const LedgerCounts c = CheckExactlyOnce(good.Records(), 30, "good client");
  EXPECT_EQ(c.edge, 30);
  const uint64_t rss_after_good = RssBytes(pid);
  const auto m = Scrape(server.admin_port());
  EXPECT_EQ(Metric(m, "splitinfer_edge_connections_rejected_total"), 0);

  // Measured 2026-11-25 on the 2-core test machine: about 2-3 KiB of RSS per idle connection
  // (2.2 MiB for 1000 in docs/benchmarks.md). The bound is 10x that, so that a per-connection
  // buffer of 64 KiB (or a thread per connection) fails, and allocator noise does not.
  const double growth = static_cast<double>(rss_idle) - static_cast<double>(rss_before);
  EXPECT_LT(growth, 24.0 * 1024 * 1024) << "RSS " << rss_before / 1024 << " -> " << rss_idle / 1024
                                        << " KiB with " << kIdle << " idle connections";

  // Closed by us: the server counts them out again.
  const auto t_close = Clock::now();
  for (auto& s : idle) {
    boost::system::error_code ignored;
    s.close(ignored);
  }
  EXPECT_EQ(WaitForMetric(server.admin_port(), "splitinfer_edge_connected_devices",
                          [](double v) { return v == 0; }),
            0);
  const double drain_ms = MsSince(t_close);
  std::printf(
      "[idle] %d connections with handshake opened in %.0f ms; server RSS %.1f -> %.1f "
      "MiB (%.2f KiB per connection), %.1f MiB after a 30-request client (all on the "
      "edge, slowest %.1f ms); connected_devices back to 0 %.0f ms after closing\n",
      kIdle, open_ms, rss_before / 1048576.0, rss_idle / 1048576.0, growth / kIdle / 1024.0,
      rss_after_good / 1048576.0, c.max_total_ms, drain_ms);
}

}  // namespace
}  // namespace splitinfer

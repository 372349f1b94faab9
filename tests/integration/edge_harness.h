// Helpers of the integration tests that drive the real edge_server and device_client as child
// processes: the server with its admin endpoint, /metrics scrapes, device_client runs whose JSON
// ledger is checked for exactly-once completion, and raw peers (fault_test, admission_test).
#pragma once

#include <signal.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "common/frame.h"
#include "common/frame_io.h"
#include "tests/integration/child_process.h"
#include "tests/integration/test_models.h"

namespace splitinfer::harness {

namespace beast = boost::beast;
namespace http = beast::http;
using json = nlohmann::json;
using testing::ChildProcess;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

inline double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// ---- the server ------------------------------------------------------------------------------

// edge_server with --admin-listen 127.0.0.1:0; stderr (its log) goes to a file.
class FaultServer {
 public:
  // `port` 0: any free port.
  explicit FaultServer(const std::vector<std::string>& extra, int port = 0)
      : log_path_(::testing::TempDir() + "fault_test_" + std::to_string(getpid()) + "_" +
                  std::to_string(counter_++) + ".log"),
        proc_(MakeArgs(extra, log_path_, port)) {
    if (auto line = proc_.ReadLine(120s); line && line->rfind("listening 127.0.0.1:", 0) == 0) {
      port_ = std::stoi(line->substr(std::string("listening 127.0.0.1:").size()));
    }
    if (auto line = proc_.ReadLine(10s); line && line->rfind("admin 127.0.0.1:", 0) == 0) {
      admin_port_ = std::stoi(line->substr(std::string("admin 127.0.0.1:").size()));
    }
  }
  ~FaultServer() { std::remove(log_path_.c_str()); }

  uint16_t port() const { return static_cast<uint16_t>(port_); }
  int admin_port() const { return admin_port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  ChildProcess& process() { return proc_; }
  std::string log() const { return ReadFile(log_path_); }
  bool alive() const { return kill(proc_.pid(), 0) == 0; }

 private:
  static std::vector<std::string> MakeArgs(const std::vector<std::string>& extra,
                                           const std::string& log_path, int port) {
    // exec: the shell becomes edge_server, so signals to the child's pid reach the server.
    std::string cmd = "exec '" + std::string(SPLITINFER_BIN_DIR) +
                      "/edge_server' --listen 127.0.0.1:" + std::to_string(port) +
                      " --admin-listen 127.0.0.1:0";
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

inline std::vector<std::string> ServerArgs(std::vector<std::string> extra) {
  std::vector<std::string> args{"--models", "resnet18", "--cpu", "--intra-op-threads", "1"};
  for (auto& a : testing::SmallZooArgs()) args.push_back(a);
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// GET /metrics, as "name{labels}" -> value (admin_test checks the format itself). Empty when
// the admin endpoint does not answer.
inline std::map<std::string, double> Scrape(int admin_port) {
  std::map<std::string, double> samples;
  try {
    boost::asio::io_context io;
    boost::asio::ip::tcp::socket socket(io);
    socket.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(admin_port)});
    http::request<http::empty_body> req{http::verb::get, "/metrics", 11};
    req.set(http::field::host, "127.0.0.1");
    http::write(socket, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(socket, buffer, res);
    std::istringstream in(res.body());
    for (std::string line; std::getline(in, line);) {
      if (line.empty() || line[0] == '#') continue;
      const size_t sp = line.rfind(' ');
      if (sp == std::string::npos) continue;
      samples[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
    }
  } catch (const std::exception&) {
    samples.clear();
  }
  return samples;
}

inline double Metric(const std::map<std::string, double>& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? -1 : it->second;
}

// Polls the metric until pred(value) or the timeout; returns the last value.
template <typename Pred>
inline double WaitForMetric(int admin_port, const std::string& key, Pred pred,
                            std::chrono::milliseconds timeout = 10s) {
  const auto give_up = Clock::now() + timeout;
  double v = Metric(Scrape(admin_port), key);
  while (!pred(v) && Clock::now() < give_up) {
    std::this_thread::sleep_for(20ms);
    v = Metric(Scrape(admin_port), key);
  }
  return v;
}

// VmRSS of a process in bytes (0 when unreadable).
inline uint64_t RssBytes(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;  // kB
  }
  return 0;
}

// ---- device_client runs ----------------------------------------------------------------------

// One device_client run whose stdout (one JSON record per inference) is read on its own thread,
// so that several run at once without filling their pipes.
class DeviceRun {
 public:
  DeviceRun(const std::string& server, std::vector<std::string> extra) {
    std::vector<std::string> args{std::string(SPLITINFER_BIN_DIR) + "/device_client", "--json",
                                  "--server", server};
    for (auto& a : testing::SmallZooArgs()) args.push_back(a);
    args.insert(args.end(), extra.begin(), extra.end());
    proc_ = std::make_unique<ChildProcess>(args);
    reader_ = std::thread([this] {
      while (auto line = proc_->ReadLine(180s)) {
        if (line->find("\"completed_on\":\"edge\"") != std::string::npos) ++edge_lines_;
        std::lock_guard<std::mutex> lock(mu_);
        lines_.push_back(std::move(*line));
        ++lines_count_;
      }
      exit_code_ = proc_->Wait();
      done_ = true;
    });
  }
  ~DeviceRun() {
    if (reader_.joinable()) {
      proc_->Kill(SIGKILL);
      reader_.join();
    }
  }

  int lines() const { return lines_count_.load(); }
  int edge_lines() const { return edge_lines_.load(); }
  bool done() const { return done_.load(); }
  // Waits for the client to exit; returns its exit code.
  int Join() {
    if (reader_.joinable()) reader_.join();
    return exit_code_;
  }
  std::vector<json> Records() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<json> out;
    for (auto& l : lines_) {
      auto j = json::parse(l, nullptr, /*allow_exceptions=*/false);
      EXPECT_FALSE(j.is_discarded()) << "not JSON: " << l;
      if (!j.is_discarded()) out.push_back(std::move(j));
    }
    return out;
  }

 private:
  std::unique_ptr<ChildProcess> proc_;
  std::thread reader_;
  std::mutex mu_;
  std::vector<std::string> lines_;
  std::atomic<int> lines_count_{0}, edge_lines_{0};
  std::atomic<bool> done_{false};
  int exit_code_ = -1;
};

struct LedgerCounts {
  int edge = 0;
  int fallback = 0;
  int lost_in_flight = 0;  // fallbacks of requests sent whose connection then failed
  int unreachable = 0;
  int refused = 0;
  double max_total_ms = 0;
};

// Every request id 1..n exactly once, ok, and equal to a whole local run (--verify).
inline LedgerCounts CheckExactlyOnce(const std::vector<json>& recs, int n, const std::string& who) {
  SCOPED_TRACE(who);
  LedgerCounts c;
  std::map<uint64_t, int> seen;
  for (auto& r : recs) {
    seen[r["request_id"].get<uint64_t>()]++;
    EXPECT_TRUE(r["ok"].get<bool>()) << r.dump();
    EXPECT_GE(r["max_abs_diff"].get<double>(), 0.0) << r.dump();
    EXPECT_LE(r["max_abs_diff"].get<double>(), 1e-5) << r.dump();
    EXPECT_TRUE(r["top1_match"].get<bool>()) << r.dump();
    const std::string on = r["completed_on"];
    EXPECT_TRUE(on == "edge" || on == "fallback_local") << r.dump();
    c.edge += on == "edge";
    if (on == "fallback_local") {
      ++c.fallback;
      const std::string why = r["fallback"];
      if (why.rfind("edge lost", 0) == 0 || why.rfind("send failed", 0) == 0) ++c.lost_in_flight;
      if (why.rfind("edge unreachable", 0) == 0) ++c.unreachable;
      if (why.rfind("edge refused", 0) == 0) ++c.refused;
    } else {
      EXPECT_TRUE(r["fallback"].is_null()) << r.dump();
    }
    c.max_total_ms = std::max(c.max_total_ms, r["total_ms"].get<double>());
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(n)) << "an inference is missing";
  for (auto& [id, count] : seen) {
    EXPECT_GE(id, 1u);
    EXPECT_LE(id, static_cast<uint64_t>(n));
    EXPECT_EQ(count, 1) << "request " << id << " completed " << count << " times";
  }
  return c;
}

// ---- raw peers -------------------------------------------------------------------------------

// A raw connection with the Hello handshake done (or not).
inline std::unique_ptr<BlockingConnection> RawConnect(uint16_t port, bool hello) {
  auto c = std::make_unique<BlockingConnection>();
  Status st = c->Connect("127.0.0.1", port, 5s);
  EXPECT_TRUE(st.ok()) << st;
  if (!st.ok() || !hello) return c;
  wire::Hello h;
  h.set_protocol_version(kProtocolVersion);
  h.set_client_name("fault_test");
  EXPECT_TRUE(c->WriteFrame(MakeFrame(MessageType::kHello, h), 5s).ok());
  FrameHeader header;
  std::string meta;
  st = c->ReadHeaderAndMeta(FrameLimits{}, 5s, &header, &meta);
  EXPECT_TRUE(st.ok()) << st;
  EXPECT_EQ(header.type, MessageType::kHelloReply);
  return c;
}

// Reads (and discards) until the peer closes. Returns kUnavailable at EOF, or the read error
// (kDeadlineExceeded when nothing ended the connection within `timeout`); *frames counts whole
// frames read before the close.
inline Status ReadUntilClosed(BlockingConnection& c, std::chrono::milliseconds timeout,
                              int* frames = nullptr) {
  const auto give_up = Clock::now() + timeout;
  FrameLimits limits;
  while (true) {
    const auto left = give_up - Clock::now();
    if (left <= Clock::duration::zero()) return DeadlineExceededError("not closed");
    FrameHeader header;
    std::string meta;
    Status st = c.ReadHeaderAndMeta(limits, left, &header, &meta);
    if (!st.ok()) return st;
    std::string body(header.body_len, '\0');
    st = c.ReadExact(body.data(), body.size(), give_up - Clock::now());
    if (!st.ok()) return st;
    if (frames) ++*frames;
  }
}

inline wire::InferRequest Request(uint64_t id, uint32_t boundary, uint32_t deadline_ms = 0) {
  wire::InferRequest req;
  req.set_request_id(id);
  req.set_model("resnet18");
  req.set_model_version(1);
  req.set_boundary(boundary);
  req.set_deadline_ms(deadline_ms);
  return req;
}

// Opens `n` connections and does the Hello handshake on each (a connection without one is closed
// after the 5 s handshake timeout), `batch` at a time, from `from` (a local address such as
// 127.0.0.2; empty: the system's choice). Returns how many completed.
inline int OpenIdle(asio::io_context& io, uint16_t port, int n, std::vector<tcp::socket>* out,
                    int batch = 100, const std::string& from = "") {
  int done = 0;
  wire::Hello h;
  h.set_protocol_version(kProtocolVersion);
  h.set_client_name("idle");
  const OutgoingFrame hello = MakeFrame(MessageType::kHello, h);
  struct Conn {
    tcp::socket* s;
    HeaderBytes header;
    std::vector<char> rest;
  };
  out->reserve(out->size() + static_cast<size_t>(n));  // the handlers hold pointers into *out
  for (int start = 0; start < n; start += batch) {
    const int end = std::min(n, start + batch);
    std::vector<std::shared_ptr<Conn>> conns;
    for (int i = start; i < end; ++i) {
      out->emplace_back(io);
      if (!from.empty()) {
        boost::system::error_code ec;
        out->back().open(tcp::v4(), ec);
        if (!ec) out->back().bind(tcp::endpoint(asio::ip::make_address(from), 0), ec);
        EXPECT_FALSE(ec) << "bind to " << from << ": " << ec.message();
      }
      conns.push_back(std::make_shared<Conn>(Conn{&out->back(), {}, {}}));
    }
    for (auto& c : conns) {
      c->s->async_connect(
          tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
          [c, &hello, &done](boost::system::error_code ec) {
            if (ec) return;
            std::array<asio::const_buffer, 2> bufs{asio::buffer(hello.header),
                                                   asio::buffer(hello.meta)};
            asio::async_write(*c->s, bufs, [c, &done](boost::system::error_code ec, size_t) {
              if (ec) return;
              asio::async_read(
                  *c->s, asio::buffer(c->header), [c, &done](boost::system::error_code ec, size_t) {
                    if (ec) return;
                    auto h = DecodeHeader(c->header.data(), c->header.size(), FrameLimits{});
                    if (!h.ok() || h->type != MessageType::kHelloReply) return;
                    c->rest.resize(h->meta_len + h->body_len);
                    asio::async_read(*c->s, asio::buffer(c->rest),
                                     [c, &done](boost::system::error_code ec, size_t) {
                                       if (!ec) ++done;
                                     });
                  });
            });
          });
    }
    io.restart();
    io.run_for(20s);
  }
  return done;
}

}  // namespace splitinfer::harness

// loadgen: N simulated devices against one edge_server on loopback (issue 8, item 5).
//
//   loadgen --server 127.0.0.1:PORT --devices 128 --duration 30s --model mlp --split 2
//           [--in-flight 1] [--rate-per-device 0] [--server-pid PID | --admin 127.0.0.1:APORT]
//           [zoo options, the same as the server's] [--json]
//
// Each device is one TCP connection with its own Hello handshake and request loop, all driven
// asynchronously by one io_context on --threads threads (not a thread per device). Every
// connect, handshake, write and awaited reply has a deadline (steady_timer); the read a device
// keeps posted while it awaits nothing (open loop, between requests) has none, since nothing is
// late then (the server's idle timeout, or the end of the run, closes it). A device sends the
// tensor at boundary K, computed once here from the zoo model built with the server's options
// (units 1..K on a random input), so the server runs units K+1..N for real.
//
// Phases: (1) every device connects and shakes hands; (2) for --duration (or until
// --max-requests) each device keeps --in-flight requests outstanding (closed loop), or sends
// --rate-per-device requests per second (open loop: a request due while the device is at its
// in-flight bound is sent as soon as a slot frees, and counted as deferred); (3) no new requests,
// the outstanding ones get up to --io-timeout-ms to be answered.
//
// Accounting: a request is "sent" once its frame write starts; it then ends as exactly one of
// ok (an OK reply), error (a reply with another code, counted by code) or lost (its connection
// failed or its reply did not come in time). sent == ok + errors + lost is checked and printed.
// Latency is request written -> reply fully read, for ok replies, exact percentiles of the
// sorted samples (memory bounded by --max-requests). Throughput is ok replies read during the
// load window divided by its length.
//
// Server memory: VmRSS (and VmHWM) of --server-pid from /proc, or the
// process_resident_memory_bytes metric from --admin's /metrics when the server exports it;
// otherwise n/a. Read before connecting, once every device is connected, at the end of the
// load window (connections still open) and after they are closed.
//
// Loopback only: --server (and --admin) must be literal loopback addresses (127.0.0.0/8, ::1)
// or "localhost". Exit codes: 0 the run happened (errors are in the report), 1 nothing could
// run (no device connected, model mismatch), 2 bad arguments.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <torch/torch.h>
#include <CLI/CLI.hpp>
#include <boost/asio.hpp>
#include <nlohmann/json.hpp>

#include "common/frame.h"
#include "common/frame_io.h"
#include "common/log.h"
#include "common/model_zoo.h"
#include "common/tensor_wire.h"
#include "common/zoo_cli.h"

using namespace splitinfer;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

namespace {

constexpr int kMaxDevices = 4096;
constexpr double kMaxDurationS = 600;
constexpr uint64_t kMaxRequestsBound = 20'000'000;  // 80 MB of latency samples at most

struct LoadgenOptions {
  std::string host;
  uint16_t port = 0;
  int devices = 1;
  double duration_s = 10;
  uint64_t max_requests = 10'000'000;
  uint32_t in_flight = 1;
  double rate_per_device = 0;  // requests/s; 0 = closed loop
  std::string model = "mlp";
  uint32_t model_version = 0;
  uint32_t split = 0;
  int threads = 2;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds io_timeout{10000};
  FrameLimits limits;  // applied to replies
};

// Parses "30s", "500ms", "2m", "1.5" (seconds).
std::optional<double> ParseDurationS(const std::string& s) {
  double scale = 1;
  std::string num = s;
  auto ends_with = [&](const char* suf) {
    const size_t n = std::strlen(suf);
    return num.size() > n && num.compare(num.size() - n, n, suf) == 0;
  };
  if (ends_with("ms")) {
    scale = 1e-3;
    num.resize(num.size() - 2);
  } else if (ends_with("s")) {
    num.resize(num.size() - 1);
  } else if (ends_with("m")) {
    scale = 60;
    num.resize(num.size() - 1);
  }
  try {
    size_t used = 0;
    const double v = std::stod(num, &used);
    if (used != num.size() || !std::isfinite(v) || v <= 0) return std::nullopt;
    return v * scale;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// Parses "20/s" or "20" (requests per second, >= 0).
std::optional<double> ParseRate(std::string s) {
  if (s.size() > 2 && s.compare(s.size() - 2, 2, "/s") == 0) s.resize(s.size() - 2);
  try {
    size_t used = 0;
    const double v = std::stod(s, &used);
    if (used != s.size() || !std::isfinite(v) || v < 0) return std::nullopt;
    return v;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// Accepts only literal loopback addresses (and "localhost", taken as 127.0.0.1).
Status CheckLoopback(std::string* host) {
  if (*host == "localhost") *host = "127.0.0.1";
  error_code ec;
  const auto addr = asio::ip::make_address(*host, ec);
  if (ec) {
    return InvalidArgumentError("'" + *host +
                                "' is not a literal IP address; loadgen only targets loopback "
                                "(127.0.0.0/8 or ::1)");
  }
  if (!addr.is_loopback()) {
    return InvalidArgumentError(*host +
                                " is not a loopback address; loadgen only targets loopback "
                                "(127.0.0.0/8 or ::1), never another machine");
  }
  return Status::Ok();
}

// ---- server memory ------------------------------------------------------------------------

struct RssSample {
  std::optional<uint64_t> rss_bytes;
  std::optional<uint64_t> hwm_bytes;  // peak RSS (proc only)
};

// VmRSS and VmHWM of `pid` from /proc/<pid>/status.
RssSample ReadProcRss(int pid) {
  RssSample s;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    auto field = [&](const char* name) -> std::optional<uint64_t> {
      if (line.rfind(name, 0) != 0) return std::nullopt;
      std::istringstream v(line.substr(std::strlen(name)));
      uint64_t kb = 0;
      if (v >> kb) return kb * 1024;
      return std::nullopt;
    };
    if (auto v = field("VmRSS:")) s.rss_bytes = v;
    if (auto v = field("VmHWM:")) s.hwm_bytes = v;
  }
  return s;
}

// GET /metrics from the admin endpoint (2 s deadline, 4 MiB at most) and read
// process_resident_memory_bytes when the server exports it.
RssSample ReadMetricsRss(const std::string& host, uint16_t port) {
  RssSample s;
  asio::io_context io;
  tcp::socket sock(io);
  std::string response;
  std::array<char, 16384> chunk;
  error_code result = asio::error::would_block;
  const std::string request =
      "GET /metrics HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n";
  std::function<void(const error_code&, size_t)> on_read = [&](const error_code& ec, size_t n) {
    response.append(chunk.data(), n);
    if (ec || response.size() > (4u << 20)) {
      result = ec;
      return;
    }
    sock.async_read_some(asio::buffer(chunk), on_read);
  };
  sock.async_connect(tcp::endpoint(asio::ip::make_address(host), port), [&](const error_code& ec) {
    if (ec) {
      result = ec;
      return;
    }
    asio::async_write(sock, asio::buffer(request), [&](const error_code& ec2, size_t) {
      if (ec2) {
        result = ec2;
        return;
      }
      sock.async_read_some(asio::buffer(chunk), on_read);
    });
  });
  io.run_for(std::chrono::seconds(2));
  if (!io.stopped()) return s;  // timed out
  std::istringstream lines(response);
  std::string line;
  while (std::getline(lines, line)) {
    const std::string name = "process_resident_memory_bytes ";
    if (line.rfind(name, 0) == 0) {
      try {
        s.rss_bytes = static_cast<uint64_t>(std::stod(line.substr(name.size())));
      } catch (const std::exception&) {
      }
    }
  }
  return s;
}

// ---- the devices --------------------------------------------------------------------------

class Device;

// What one device saw. Written only from its strand; read by main after the threads joined.
struct DeviceReport {
  bool connected = false;
  uint64_t sent = 0;
  uint64_t ok = 0;
  uint64_t ok_in_window = 0;
  uint64_t lost = 0;
  uint64_t deferred = 0;
  std::map<std::string, uint64_t> errors_by_code;
  std::string failure;  // why the connection ended early ("" = it did not)
  std::vector<uint32_t> latency_us;
};

// Shared by every device: the request, the run's phases and its clock.
class Run {
 public:
  Run(asio::io_context& io, LoadgenOptions opts, wire::InferRequest request_template,
      at::Tensor tensor, std::vector<int64_t> expected_input_shape, uint32_t expected_units)
      : io_(io),
        opts_(std::move(opts)),
        template_(std::move(request_template)),
        tensor_(std::make_shared<at::Tensor>(std::move(tensor))),
        expected_input_shape_(std::move(expected_input_shape)),
        expected_units_(expected_units),
        stop_timer_(io) {}

  asio::io_context& io() { return io_; }
  const LoadgenOptions& opts() const { return opts_; }

  OutgoingFrame MakeRequest(uint64_t id) const {
    wire::InferRequest req = template_;
    req.set_request_id(id);
    return MakeFrame(MessageType::kInferRequest, req, tensor_->data_ptr(), tensor_->nbytes(),
                     std::shared_ptr<const void>(tensor_, tensor_->data_ptr()));
  }
  size_t request_bytes() const { return tensor_->nbytes(); }

  // kFailedPrecondition unless the server serves the model with the shape built here.
  Status CheckServer(const wire::HelloReply& hello) const {
    for (const auto& m : hello.models()) {
      if (m.name() != opts_.model) continue;
      if (opts_.model_version != 0 && m.version() != opts_.model_version) continue;
      std::vector<int64_t> shape(m.input_shape().begin(), m.input_shape().end());
      if (shape != expected_input_shape_ || m.num_units() != expected_units_) {
        return FailedPreconditionError(
            "the server's " + opts_.model + " has input " + ShapeString(shape) + " and " +
            std::to_string(m.num_units()) +
            " units; built here: " + ShapeString(expected_input_shape_) + " and " +
            std::to_string(expected_units_) + " units (pass the server's zoo options)");
      }
      return Status::Ok();
    }
    return FailedPreconditionError(
        "the server does not serve " + opts_.model +
        (opts_.model_version ? "@" + std::to_string(opts_.model_version) : std::string()));
  }

  // Phase 1 -> 2: called by each device when its handshake has ended (either way).
  void HandshakeDone() {
    std::lock_guard<std::mutex> lock(mu_);
    if (++handshakes_done_ == static_cast<int>(devices_.size())) handshakes_cv_.notify_all();
  }
  void WaitHandshakes() {
    std::unique_lock<std::mutex> lock(mu_);
    handshakes_cv_.wait(lock,
                        [&] { return handshakes_done_ == static_cast<int>(devices_.size()); });
  }

  // Starts the load window and its stop timer.
  void StartLoad();
  // Ends the load window (duration passed, or --max-requests reached). Idempotent.
  void StopLoad();
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }
  Clock::time_point window_begin() const { return window_begin_; }
  Clock::time_point window_end() const { return window_end_.load(); }

  // Reserves one request against --max-requests; false when the budget is spent.
  bool TakeRequest() {
    if (taken_.fetch_add(1, std::memory_order_relaxed) < opts_.max_requests) return true;
    StopLoad();
    return false;
  }

  std::function<void()> on_stop;  // runs once, on an I/O thread, when the window ends

  std::vector<std::shared_ptr<Device>> devices_;

 private:
  asio::io_context& io_;
  const LoadgenOptions opts_;
  const wire::InferRequest template_;
  const std::shared_ptr<at::Tensor> tensor_;
  const std::vector<int64_t> expected_input_shape_;
  const uint32_t expected_units_;
  asio::steady_timer stop_timer_;
  std::mutex mu_;
  std::condition_variable handshakes_cv_;
  int handshakes_done_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> taken_{0};
  Clock::time_point window_begin_;
  std::atomic<Clock::time_point> window_end_{Clock::time_point::max()};
};

// One simulated device: a connection, its handshake and its request loop. Owned through
// shared_from_this(); every handler runs on its strand.
class Device : public std::enable_shared_from_this<Device> {
 public:
  Device(Run* run, int index)
      : run_(run),
        index_(index),
        strand_(asio::make_strand(run->io())),
        socket_(strand_),
        connect_timer_(strand_),
        write_timer_(strand_),
        read_timer_(strand_),
        send_timer_(strand_),
        rng_(static_cast<uint64_t>(index) * 0x9E3779B97F4A7C15ull + 1) {}

  const DeviceReport& report() const { return report_; }

  void Connect() {
    asio::dispatch(strand_, [self = shared_from_this()] { self->DoConnect(); });
  }
  void StartLoad() {
    asio::dispatch(strand_, [self = shared_from_this()] { self->DoStartLoad(); });
  }
  void StopLoad() {
    asio::dispatch(strand_, [self = shared_from_this()] { self->DoStopLoad(); });
  }
  // Closes the connection of a device that took no part (or is done). Idempotent.
  void Close() {
    asio::dispatch(strand_, [self = shared_from_this()] { self->Shutdown(); });
  }

 private:
  const LoadgenOptions& opts() const { return run_->opts(); }

  // Arms `timer` for `after`; on expiry fails the connection with `what` (unless cancelled).
  void Arm(asio::steady_timer& timer, Clock::duration after, const char* what) {
    timer.expires_after(after);
    timer.async_wait([self = shared_from_this(), &timer, what](const error_code& ec) {
      // A wait that expired just as its timer was re-armed (or its operation completed and
      // cancelled it) is not a timeout: the current deadline is still ahead.
      if (ec == asio::error::operation_aborted || timer.expiry() > Clock::now()) return;
      self->Fail(std::string(what) + " timed out");
    });
  }

  // Ends the wait on `timer`: pushes its expiry out of reach so that a wait already completed
  // but not yet handled is seen as stale (cancel() alone cannot reach that one).
  static void Disarm(asio::steady_timer& timer) { timer.expires_at(Clock::time_point::max()); }

  void DoConnect() {
    const tcp::endpoint ep(asio::ip::make_address(opts().host), opts().port);
    Arm(connect_timer_, opts().connect_timeout, "connect");
    socket_.async_connect(ep, [self = shared_from_this()](const error_code& ec) {
      Disarm(self->connect_timer_);
      if (ec) return self->Fail("connect: " + ec.message());
      error_code ignored;
      self->socket_.set_option(tcp::no_delay(true), ignored);
      self->SendHello();
    });
  }

  void SendHello() {
    wire::Hello hello;
    hello.set_protocol_version(kProtocolVersion);
    hello.set_client_name("loadgen-" + std::to_string(index_));
    auto frame = std::make_shared<OutgoingFrame>(MakeFrame(MessageType::kHello, hello));
    Arm(connect_timer_, opts().io_timeout, "handshake");
    asio::async_write(socket_, FrameBuffers(*frame),
                      [self = shared_from_this(), frame](const error_code& ec, size_t) {
                        if (ec) return self->Fail("handshake write: " + ec.message());
                        self->ReadHeader(/*handshake=*/true);
                      });
  }

  void ReadHeader(bool handshake) {
    asio::async_read(socket_, asio::buffer(header_),
                     [self = shared_from_this(), handshake](const error_code& ec, size_t) {
                       if (ec) {
                         return self->Fail(std::string(handshake ? "handshake read: " : "read: ") +
                                           (ec == asio::error::eof ? "server closed the connection"
                                                                   : ec.message()));
                       }
                       self->OnHeader(handshake);
                     });
  }

  void OnHeader(bool handshake) {
    auto h = DecodeHeader(header_.data(), header_.size(), opts().limits);
    if (!h.ok()) return Fail("bad frame header: " + h.status().message());
    frame_ = *h;
    meta_.resize(frame_.meta_len);
    body_.resize(static_cast<size_t>(frame_.body_len));
    std::array<asio::mutable_buffer, 2> bufs{asio::buffer(meta_), asio::buffer(body_)};
    asio::async_read(socket_, bufs,
                     [self = shared_from_this(), handshake](const error_code& ec, size_t) {
                       if (ec) return self->Fail(std::string("read: ") + ec.message());
                       if (handshake) {
                         self->OnHelloReply();
                       } else {
                         self->OnReply();
                       }
                     });
  }

  void OnHelloReply() {
    Disarm(connect_timer_);
    if (frame_.type == MessageType::kError) {
      wire::ErrorReply err;
      (void)ParseMeta(meta_, &err);  // a malformed ErrorReply still ends the connection
      return Fail(std::string("handshake refused: ") + StatusCodeName(FromWireCode(err.code())) +
                  ": " + err.message());
    }
    if (frame_.type != MessageType::kHelloReply) {
      return Fail(std::string("handshake: got ") + MessageTypeName(frame_.type));
    }
    wire::HelloReply hello;
    Status st = ParseMeta(meta_, &hello);
    if (st.ok() && hello.code() != wire::OK) {
      st = Status(FromWireCode(hello.code()), "handshake refused: " + hello.message());
    }
    if (st.ok()) st = run_->CheckServer(hello);
    if (!st.ok()) return Fail(st.ToString());
    in_flight_ = opts().in_flight;
    if (hello.max_in_flight() > 0) in_flight_ = std::min(in_flight_, hello.max_in_flight());
    report_.connected = true;
    handshake_done_ = true;
    run_->HandshakeDone();
    ReadHeader(/*handshake=*/false);  // replies are read for as long as the connection lives
  }

  void DoStartLoad() {
    if (closed_) return;
    if (opts().rate_per_device > 0) {
      // Open loop: a random phase so that devices do not send in lockstep.
      std::uniform_real_distribution<double> phase(0, 1.0 / opts().rate_per_device);
      next_due_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(phase(rng_)));
      ScheduleDue();
    } else {
      Pump();  // closed loop: a request whenever a slot is free
    }
  }

  void ScheduleDue() {
    send_timer_.expires_at(next_due_);
    send_timer_.async_wait([self = shared_from_this()](const error_code& ec) {
      if (ec || self->closed_ || self->run_->stopping()) return;
      self->next_due_ += std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(1.0 / self->opts().rate_per_device));
      if (self->outstanding_.size() + self->due_ >= self->in_flight_) ++self->report_.deferred;
      ++self->due_;
      self->Pump();
      self->ScheduleDue();
    });
  }

  void DoStopLoad() {
    send_timer_.cancel();
    due_ = 0;
    if (outstanding_.empty() && !writing_) Shutdown();
  }

  bool closed_loop() const { return opts().rate_per_device <= 0; }

  // Writes the next request when one is due (always, in a closed loop), no write is in progress
  // and a slot is free.
  void Pump() {
    if (closed_ || writing_ || run_->stopping()) return;
    if (outstanding_.size() >= in_flight_ || (!closed_loop() && due_ == 0)) return;
    if (!run_->TakeRequest()) return;
    if (!closed_loop()) --due_;
    const uint64_t id = next_id_++;
    auto frame = std::make_shared<OutgoingFrame>(run_->MakeRequest(id));
    outstanding_[id] = Clock::now();  // refined to the write's completion below
    ++report_.sent;
    writing_ = true;
    if (outstanding_.size() == 1) Arm(read_timer_, opts().io_timeout, "reply");
    Arm(write_timer_, opts().io_timeout, "request write");
    asio::async_write(socket_, FrameBuffers(*frame),
                      [self = shared_from_this(), frame, id](const error_code& ec, size_t) {
                        self->writing_ = false;
                        Disarm(self->write_timer_);
                        if (ec) return self->Fail("request write: " + ec.message());
                        auto it = self->outstanding_.find(id);
                        if (it != self->outstanding_.end()) it->second = Clock::now();
                        self->Pump();
                        if (self->run_->stopping() && self->outstanding_.empty()) {
                          self->Shutdown();
                        }
                      });
  }

  void OnReply() {
    const auto now = Clock::now();
    if (frame_.type == MessageType::kError) {
      wire::ErrorReply err;
      (void)ParseMeta(meta_, &err);  // a malformed ErrorReply still ends the connection
      return Fail(std::string("server closed the connection: ") +
                  StatusCodeName(FromWireCode(err.code())) + ": " + err.message());
    }
    if (frame_.type != MessageType::kInferReply) {
      return Fail(std::string("expected InferReply, got ") + MessageTypeName(frame_.type));
    }
    wire::InferReply reply;
    Status st = ParseMeta(meta_, &reply);
    if (!st.ok()) return Fail(st.ToString());
    auto it = outstanding_.find(reply.request_id());
    if (it == outstanding_.end()) {
      return Fail("reply to unknown request id " + std::to_string(reply.request_id()));
    }
    if (reply.code() == wire::OK) {
      st = ValidateTensorMeta(reply.tensor(), frame_.body_len, opts().limits);
      if (!st.ok()) return Fail("reply tensor: " + st.message());
      ++report_.ok;
      if (now <= run_->window_end()) ++report_.ok_in_window;
      const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now - it->second);
      report_.latency_us.push_back(static_cast<uint32_t>(
          std::min<int64_t>(us.count(), std::numeric_limits<uint32_t>::max())));
    } else {
      ++report_.errors_by_code[StatusCodeName(FromWireCode(reply.code()))];
    }
    outstanding_.erase(it);
    if (outstanding_.empty()) {
      Disarm(read_timer_);
    } else {
      Arm(read_timer_, opts().io_timeout, "reply");
    }
    Pump();
    if (run_->stopping() && outstanding_.empty() && !writing_) return Shutdown();
    ReadHeader(/*handshake=*/false);
  }

  // The connection ended early: every outstanding request is lost.
  void Fail(const std::string& why) {
    if (closed_) return;
    report_.failure = why;
    report_.lost += outstanding_.size();
    outstanding_.clear();
    const bool was_handshaking = !handshake_done_;
    Shutdown();
    if (was_handshaking) run_->HandshakeDone();
  }

  void Shutdown() {
    if (closed_) return;
    closed_ = true;
    report_.lost += outstanding_.size();  // only non-zero if closed with replies pending
    outstanding_.clear();
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    connect_timer_.cancel();
    write_timer_.cancel();
    read_timer_.cancel();
    send_timer_.cancel();
  }

  Run* run_;
  const int index_;
  asio::strand<asio::io_context::executor_type> strand_;
  tcp::socket socket_;
  asio::steady_timer connect_timer_;  // connect, then the handshake
  asio::steady_timer write_timer_;    // the request frame being written
  asio::steady_timer read_timer_;     // armed while replies are awaited
  asio::steady_timer send_timer_;     // open loop: the next request's due time
  std::mt19937_64 rng_;

  HeaderBytes header_{};
  FrameHeader frame_;
  std::string meta_;
  std::vector<uint8_t> body_;

  bool handshake_done_ = false;
  bool closed_ = false;
  bool writing_ = false;
  uint32_t in_flight_ = 1;
  uint32_t due_ = 0;  // requests due but not yet written
  uint64_t next_id_ = 1;
  Clock::time_point next_due_;
  std::unordered_map<uint64_t, Clock::time_point> outstanding_;  // id -> written at
  DeviceReport report_;
};

void Run::StartLoad() {
  window_begin_ = Clock::now();
  stop_timer_.expires_after(
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opts_.duration_s)));
  stop_timer_.async_wait([this](const error_code& ec) {
    if (!ec) StopLoad();
  });
  for (auto& d : devices_) d->StartLoad();
}

void Run::StopLoad() {
  if (stopping_.exchange(true)) return;
  window_end_ = Clock::now();
  asio::post(io_, [this] {
    stop_timer_.cancel();
    if (on_stop) on_stop();
    for (auto& d : devices_) d->StopLoad();
  });
}

// ---- report -------------------------------------------------------------------------------

double Percentile(const std::vector<uint32_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  // Nearest rank: the smallest sample with at least q of the samples at or below it.
  const size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)] / 1000.0;
}

nlohmann::json RssJson(const std::optional<uint64_t>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

std::string MiB(const std::optional<uint64_t>& v) {
  if (!v) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(*v) / (1 << 20));
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"loadgen: N simulated devices against an edge_server on loopback"};
  LoadgenOptions opts;
  std::string server;
  std::string duration = "10s";
  std::string rate = "0";
  std::string admin;
  int server_pid = 0;
  int connect_timeout_ms = static_cast<int>(opts.connect_timeout.count());
  int io_timeout_ms = static_cast<int>(opts.io_timeout.count());
  bool json = false;
  ZooOptions zoo;
  std::string log_level = "warn";

  app.add_option("--server", server, "HOST:PORT of the edge_server (loopback only)")->required();
  app.add_option("--devices", opts.devices, "simulated devices, one connection each")
      ->check(CLI::Range(1, kMaxDevices));
  app.add_option("--duration", duration, "length of the load window: 30s, 500ms, 2m (max 10m)");
  app.add_option("--max-requests", opts.max_requests, "stop after this many requests in all")
      ->check(CLI::Range(uint64_t{1}, kMaxRequestsBound));
  app.add_option("--model", opts.model, "zoo model the server serves");
  app.add_option("--model-version", opts.model_version, "0: the newest the server has");
  app.add_option("--split", opts.split, "boundary k: units 1..k run here once, k+1..N on the edge")
      ->required();
  app.add_option("--in-flight", opts.in_flight, "outstanding requests per device")
      ->check(CLI::Range(1, 4096));
  app.add_option("--rate-per-device", rate,
                 "requests per second per device, e.g. 5/s (0: closed loop)");
  app.add_option("--threads", opts.threads, "I/O threads driving every device")
      ->check(CLI::Range(1, 64));
  app.add_option("--connect-timeout-ms", connect_timeout_ms, "connect deadline per device")
      ->check(CLI::Range(1, 600000));
  app.add_option("--io-timeout-ms", io_timeout_ms,
                 "deadline of each write, of the handshake and of each awaited reply")
      ->check(CLI::Range(1, 600000));
  app.add_option("--server-pid", server_pid, "read the server's RSS from /proc/PID/status")
      ->check(CLI::PositiveNumber);
  app.add_option("--admin", admin,
                 "HOST:PORT of the server's admin endpoint; its /metrics gives the RSS when it "
                 "exports process_resident_memory_bytes (loopback only)");
  app.add_flag("--json", json, "print one JSON object instead of the text report");
  app.add_option("--log-level", log_level)
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  AddZooOptions(app, &zoo);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  log::SetName("loadgen");
  log::SetLevel(log_level);

  auto usage_error = [](const std::string& m) {
    std::cerr << "loadgen: " << m << "\n";
    return 2;
  };
  Status st = ParseHostPort(server, &opts.host, &opts.port);
  if (!st.ok()) return usage_error("--server: " + st.message());
  st = CheckLoopback(&opts.host);
  if (!st.ok()) return usage_error("--server: " + st.message());
  if (opts.port == 0) return usage_error("--server: port 0");
  std::string admin_host;
  uint16_t admin_port = 0;
  if (!admin.empty()) {
    st = ParseHostPort(admin, &admin_host, &admin_port);
    if (st.ok()) st = CheckLoopback(&admin_host);
    if (!st.ok()) return usage_error("--admin: " + st.message());
  }
  const auto dur = ParseDurationS(duration);
  if (!dur || *dur > kMaxDurationS) {
    return usage_error(
        "--duration: expected a positive time of at most 10m (30s, 500ms, 2m), got '" + duration +
        "'");
  }
  opts.duration_s = *dur;
  const auto r = ParseRate(rate);
  if (!r || *r > 100000) {
    return usage_error("--rate-per-device: expected R/s with 0 <= R <= 100000, got '" + rate + "'");
  }
  opts.rate_per_device = *r;
  opts.connect_timeout = std::chrono::milliseconds(connect_timeout_ms);
  opts.io_timeout = std::chrono::milliseconds(io_timeout_ms);
  std::string error;
  if (!zoo.IsValid(&error)) return usage_error(error);

  // One file descriptor per device: raise the soft limit to the hard one when it is short.
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 &&
      lim.rlim_cur < static_cast<rlim_t>(opts.devices) + 64) {
    lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, static_cast<rlim_t>(opts.devices) + 64);
    setrlimit(RLIMIT_NOFILE, &lim);
  }

  // The tensor at boundary k, computed once: units 1..k on a random input.
  torch::set_num_threads(1);
  auto model = BuildZooModel(opts.model, opts.model_version ? opts.model_version : 1, zoo);
  if (!model.ok()) return usage_error("--model: " + model.status().ToString());
  const size_t n_units = (*model)->num_units();
  if (opts.split > n_units) {
    return usage_error("--split " + std::to_string(opts.split) + " is past " + opts.model + "'s " +
                       std::to_string(n_units) + " units");
  }
  at::Tensor tensor;
  {
    c10::InferenceMode guard;
    torch::manual_seed(1);
    std::vector<int64_t> shape{1};
    shape.insert(shape.end(), (*model)->input_shape().begin(), (*model)->input_shape().end());
    auto out = (*model)->RunRangeChecked(torch::randn(shape), 0, opts.split);
    if (!out.ok()) return usage_error(out.status().ToString());
    tensor = out->contiguous();
  }
  wire::InferRequest request;
  request.set_model(opts.model);
  request.set_model_version(opts.model_version);
  request.set_boundary(opts.split);
  st = FillTensorMeta(tensor, request.mutable_tensor());
  if (!st.ok()) return usage_error(st.ToString());

  auto read_rss = [&]() -> RssSample {
    if (server_pid > 0) return ReadProcRss(server_pid);
    if (!admin.empty()) return ReadMetricsRss(admin_host, admin_port);
    return {};
  };
  const std::string rss_source = server_pid > 0 ? "proc" : (!admin.empty() ? "metrics" : "n/a");

  asio::io_context io;
  auto work = asio::make_work_guard(io);
  Run run(io, opts, request, tensor, (*model)->input_shape(), static_cast<uint32_t>(n_units));
  for (int i = 0; i < opts.devices; ++i) run.devices_.push_back(std::make_shared<Device>(&run, i));

  const RssSample rss_before = read_rss();
  RssSample rss_end;
  run.on_stop = [&] { rss_end = read_rss(); };

  std::vector<std::thread> threads;
  for (int t = 0; t < opts.threads; ++t) threads.emplace_back([&io] { io.run(); });

  // Phase 1: every device connects and shakes hands (each bounded by its deadlines).
  const auto t_connect = Clock::now();
  for (auto& d : run.devices_) d->Connect();
  run.WaitHandshakes();
  const double connect_s = std::chrono::duration<double>(Clock::now() - t_connect).count();
  const RssSample rss_connected = read_rss();
  int connected = 0;
  for (auto& d : run.devices_) connected += d->report().connected ? 1 : 0;  // set before Done

  // Phase 2 and 3: the load window, then the drain of outstanding replies.
  if (connected > 0) {
    run.StartLoad();
  } else {
    run.StopLoad();
    for (auto& d : run.devices_) d->Close();
  }
  work.reset();
  for (auto& t : threads) t.join();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let the server close them
  const RssSample rss_after = read_rss();

  // Aggregate.
  DeviceReport total;
  std::map<std::string, uint64_t> failures;
  for (auto& d : run.devices_) {
    const DeviceReport& rep = d->report();
    total.sent += rep.sent;
    total.ok += rep.ok;
    total.ok_in_window += rep.ok_in_window;
    total.lost += rep.lost;
    total.deferred += rep.deferred;
    for (const auto& [code, n] : rep.errors_by_code) total.errors_by_code[code] += n;
    if (!rep.failure.empty()) {
      // Group by the reason's text before any number-specific detail.
      ++failures[rep.failure.substr(0, std::min<size_t>(rep.failure.size(), 240))];
    }
    total.latency_us.insert(total.latency_us.end(), rep.latency_us.begin(), rep.latency_us.end());
  }
  uint64_t errors = 0;
  for (const auto& [code, n] : total.errors_by_code) errors += n;
  uint64_t connection_failures = 0;
  for (const auto& [why, n] : failures) connection_failures += n;
  std::sort(total.latency_us.begin(), total.latency_us.end());
  const double window_s =
      connected > 0 ? std::chrono::duration<double>(run.window_end() - run.window_begin()).count()
                    : 0;
  const double throughput = window_s > 0 ? total.ok_in_window / window_s : 0;
  const bool balanced = total.sent == total.ok + errors + total.lost;
  double mean_ms = 0;
  for (uint32_t v : total.latency_us) mean_ms += v / 1000.0;
  if (!total.latency_us.empty()) mean_ms /= static_cast<double>(total.latency_us.size());

  if (json) {
    nlohmann::json j;
    j["server"] = opts.host + ":" + std::to_string(opts.port);
    j["model"] = opts.model;
    j["split"] = opts.split;
    j["request_bytes"] = run.request_bytes();
    j["devices"] = opts.devices;
    j["connected"] = connected;
    j["threads"] = opts.threads;
    j["in_flight"] = opts.in_flight;
    j["rate_per_device"] = opts.rate_per_device;
    j["connect_s"] = connect_s;
    j["window_s"] = window_s;
    j["sent"] = total.sent;
    j["ok"] = total.ok;
    j["errors"] = errors;
    j["errors_by_code"] = total.errors_by_code;
    j["lost"] = total.lost;
    j["balanced"] = balanced;
    j["deferred"] = total.deferred;
    j["connection_failures"] = connection_failures;
    j["connection_failures_by_reason"] = failures;
    j["throughput_rps"] = throughput;
    j["latency_ms"] = {
        {"samples", total.latency_us.size()},        {"mean", mean_ms},
        {"p50", Percentile(total.latency_us, 0.50)}, {"p90", Percentile(total.latency_us, 0.90)},
        {"p99", Percentile(total.latency_us, 0.99)}, {"p999", Percentile(total.latency_us, 0.999)},
        {"max", Percentile(total.latency_us, 1.0)}};
    j["server_rss_source"] = rss_source;
    j["server_rss_bytes"] = {{"before", RssJson(rss_before.rss_bytes)},
                             {"connected", RssJson(rss_connected.rss_bytes)},
                             {"end", RssJson(rss_end.rss_bytes)},
                             {"after_close", RssJson(rss_after.rss_bytes)},
                             {"peak", RssJson(rss_after.hwm_bytes)}};
    std::cout << j.dump() << std::endl;
  } else {
    std::printf(
        "loadgen: %d device(s) (%d connected in %.2f s) -> %s:%u, %s split %u (%zu bytes "
        "up), in-flight %u, %s, %d I/O thread(s)\n",
        opts.devices, connected, connect_s, opts.host.c_str(), opts.port, opts.model.c_str(),
        opts.split, run.request_bytes(), opts.in_flight,
        opts.rate_per_device > 0
            ? (std::to_string(opts.rate_per_device) + " req/s per device").c_str()
            : "closed loop",
        opts.threads);
    std::printf("window     %.2f s\n", window_s);
    std::printf("throughput %.1f requests/s\n", throughput);
    std::printf(
        "latency    p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  p999 %.3f ms  max %.3f ms  "
        "(%zu samples)\n",
        Percentile(total.latency_us, 0.5), Percentile(total.latency_us, 0.9),
        Percentile(total.latency_us, 0.99), Percentile(total.latency_us, 0.999),
        Percentile(total.latency_us, 1.0), total.latency_us.size());
    std::printf("requests   sent %llu = ok %llu + errors %llu + lost %llu  (%s)\n",
                static_cast<unsigned long long>(total.sent),
                static_cast<unsigned long long>(total.ok), static_cast<unsigned long long>(errors),
                static_cast<unsigned long long>(total.lost),
                balanced ? "balanced" : "NOT BALANCED");
    if (total.deferred) {
      std::printf(
          "deferred   %llu requests were due while their device was at its in-flight "
          "bound\n",
          static_cast<unsigned long long>(total.deferred));
    }
    for (const auto& [code, n] : total.errors_by_code) {
      std::printf("error      %s: %llu\n", code.c_str(), static_cast<unsigned long long>(n));
    }
    std::printf("connection failures %llu\n", static_cast<unsigned long long>(connection_failures));
    for (const auto& [why, n] : failures) {
      std::printf("  %llu x %s\n", static_cast<unsigned long long>(n), why.c_str());
    }
    std::printf(
        "server RSS (%s): before %s, connected %s, end of load %s, after close %s, "
        "peak %s\n",
        rss_source.c_str(), MiB(rss_before.rss_bytes).c_str(), MiB(rss_connected.rss_bytes).c_str(),
        MiB(rss_end.rss_bytes).c_str(), MiB(rss_after.rss_bytes).c_str(),
        MiB(rss_after.hwm_bytes).c_str());
  }
  if (!balanced) return 1;
  return connected > 0 ? 0 : 1;
}

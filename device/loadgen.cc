#include "device/loadgen.h"

#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include <c10/core/InferenceMode.h>
#include <torch/torch.h>
#include <boost/asio.hpp>

#include "common/frame_io.h"
#include "common/tensor_wire.h"
#include "device/async_edge_client.h"

namespace splitinfer {

using Clock = std::chrono::steady_clock;
using boost::system::error_code;

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

namespace {

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

// ---- the run ------------------------------------------------------------------------------

// Shared by every device: the request, the run's phases and its clock.
class Run final : public AsyncLoad {
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

  OutgoingFrame MakeRequest(uint64_t id) const override {
    wire::InferRequest req = template_;
    req.set_request_id(id);
    return MakeFrame(MessageType::kInferRequest, req, tensor_->data_ptr(), tensor_->nbytes(),
                     std::shared_ptr<const void>(tensor_, tensor_->data_ptr()));
  }
  size_t request_bytes() const { return tensor_->nbytes(); }

  // kFailedPrecondition unless the server serves the model with the shape built here.
  Status CheckServer(const wire::HelloReply& hello) const override {
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
  void HandshakeDone() override {
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
  bool stopping() const override { return stopping_.load(std::memory_order_acquire); }
  Clock::time_point window_begin() const { return window_begin_; }
  Clock::time_point window_end() const override { return window_end_.load(); }

  // Reserves one request against --max-requests; false when the budget is spent.
  bool TakeRequest() override {
    if (taken_.fetch_add(1, std::memory_order_relaxed) < opts_.max_requests) return true;
    StopLoad();
    return false;
  }

  std::function<void()> on_stop;  // runs once, on an I/O thread, when the window ends

  std::vector<std::shared_ptr<AsyncEdgeConnection>> devices_;

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

Result<LoadgenReport> RunLoadgen(const LoadgenOptions& opts) {
  // One file descriptor per device: raise the soft limit to the hard one when it is short.
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 &&
      lim.rlim_cur < static_cast<rlim_t>(opts.devices) + 64) {
    lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, static_cast<rlim_t>(opts.devices) + 64);
    setrlimit(RLIMIT_NOFILE, &lim);
  }

  // The tensor at boundary k, computed once: units 1..k on a random input.
  torch::set_num_threads(1);
  auto model = BuildZooModel(opts.model, opts.model_version ? opts.model_version : 1, opts.zoo);
  if (!model.ok()) return model.status().WithPrefix("--model: ");
  const size_t n_units = (*model)->num_units();
  if (opts.split > n_units) {
    return InvalidArgumentError("--split " + std::to_string(opts.split) + " is past " + opts.model +
                                "'s " + std::to_string(n_units) + " units");
  }
  at::Tensor tensor;
  {
    c10::InferenceMode guard;
    torch::manual_seed(1);
    std::vector<int64_t> shape{1};
    shape.insert(shape.end(), (*model)->input_shape().begin(), (*model)->input_shape().end());
    auto out = (*model)->RunRangeChecked(torch::randn(shape), 0, opts.split);
    if (!out.ok()) return out.status();
    tensor = out->contiguous();
  }
  wire::InferRequest request;
  request.set_model(opts.model);
  request.set_model_version(opts.model_version);
  request.set_boundary(opts.split);
  SPLITINFER_RETURN_IF_ERROR(FillTensorMeta(tensor, request.mutable_tensor()));

  auto read_rss = [&]() -> RssSample {
    if (opts.server_pid > 0) return ReadProcRss(opts.server_pid);
    if (opts.admin_port != 0) return ReadMetricsRss(opts.admin_host, opts.admin_port);
    return {};
  };
  const std::string rss_source =
      opts.server_pid > 0 ? "proc" : (opts.admin_port != 0 ? "metrics" : "n/a");

  asio::io_context io;
  auto work = asio::make_work_guard(io);
  Run run(io, opts, request, tensor, (*model)->input_shape(), static_cast<uint32_t>(n_units));
  for (int i = 0; i < opts.devices; ++i) {
    AsyncConnectionOptions co;
    co.host = opts.host;
    co.port = opts.port;
    co.client_name = "loadgen-" + std::to_string(i);
    co.connect_timeout = opts.connect_timeout;
    co.io_timeout = opts.io_timeout;
    co.in_flight = opts.in_flight;
    co.rate_per_device = opts.rate_per_device;
    co.limits = opts.limits;
    co.seed = static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull + 1;
    run.devices_.push_back(std::make_shared<AsyncEdgeConnection>(io, &run, co));
  }

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
  ConnectionReport total;
  std::map<std::string, uint64_t> failures;
  for (auto& d : run.devices_) {
    const ConnectionReport& rep = d->report();
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
  LoadgenReport report;
  report.json = std::move(j);
  report.connected = connected;
  report.balanced = balanced;
  return report;
}

void PrintLoadgenReport(const nlohmann::json& j) {
  auto mib = [](const nlohmann::json& v) {
    return v.is_number() ? MiB(v.get<uint64_t>()) : std::string("n/a");
  };
  const double rate = j["rate_per_device"].get<double>();
  std::printf(
      "loadgen: %d device(s) (%d connected in %.2f s) -> %s, %s split %u (%zu bytes up), "
      "in-flight %u, %s, %d I/O thread(s)\n",
      j["devices"].get<int>(), j["connected"].get<int>(), j["connect_s"].get<double>(),
      j["server"].get<std::string>().c_str(), j["model"].get<std::string>().c_str(),
      j["split"].get<uint32_t>(), j["request_bytes"].get<size_t>(), j["in_flight"].get<uint32_t>(),
      rate > 0 ? (std::to_string(rate) + " req/s per device").c_str() : "closed loop",
      j["threads"].get<int>());
  const nlohmann::json& l = j["latency_ms"];
  std::printf("window     %.2f s\n", j["window_s"].get<double>());
  std::printf("throughput %.1f requests/s\n", j["throughput_rps"].get<double>());
  std::printf(
      "latency    p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  p999 %.3f ms  max %.3f ms  "
      "(%zu samples)\n",
      l["p50"].get<double>(), l["p90"].get<double>(), l["p99"].get<double>(),
      l["p999"].get<double>(), l["max"].get<double>(), l["samples"].get<size_t>());
  std::printf("requests   sent %llu = ok %llu + errors %llu + lost %llu  (%s)\n",
              j["sent"].get<unsigned long long>(), j["ok"].get<unsigned long long>(),
              j["errors"].get<unsigned long long>(), j["lost"].get<unsigned long long>(),
              j["balanced"].get<bool>() ? "balanced" : "NOT BALANCED");
  if (j["deferred"].get<uint64_t>() > 0) {
    std::printf("deferred   %llu requests were due while their device was at its in-flight bound\n",
                j["deferred"].get<unsigned long long>());
  }
  for (const auto& [code, n] : j["errors_by_code"].items())
    std::printf("error      %s: %llu\n", code.c_str(), n.get<unsigned long long>());
  std::printf("connection failures %llu\n", j["connection_failures"].get<unsigned long long>());
  for (const auto& [why, n] : j["connection_failures_by_reason"].items())
    std::printf("  %llu x %s\n", n.get<unsigned long long>(), why.c_str());
  const nlohmann::json& r = j["server_rss_bytes"];
  std::printf("server RSS (%s): before %s, connected %s, end of load %s, after close %s, peak %s\n",
              j["server_rss_source"].get<std::string>().c_str(), mib(r["before"]).c_str(),
              mib(r["connected"]).c_str(), mib(r["end"]).c_str(), mib(r["after_close"]).c_str(),
              mib(r["peak"]).c_str());
}

}  // namespace splitinfer

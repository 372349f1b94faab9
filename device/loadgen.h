// loadgen's run: N simulated devices (AsyncEdgeConnection, device/async_edge_client.h) against
// one edge_server on loopback, driven by one io_context on a few threads; see
// device/loadgen_main.cc for the phases, the accounting and the report.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/frame.h"
#include "common/model_zoo.h"
#include "common/status.h"

namespace splitinfer {

inline constexpr int kMaxLoadgenDevices = 4096;
inline constexpr double kMaxLoadgenDurationS = 600;
inline constexpr uint64_t kMaxLoadgenRequests = 20'000'000;  // 80 MB of latency samples at most

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
  ZooOptions zoo;      // the model the server serves, built here for the tensor at the split
  // The server's memory: VmRSS of this pid from /proc, or process_resident_memory_bytes from
  // the admin endpoint's /metrics; neither: n/a.
  int server_pid = 0;
  std::string admin_host;
  uint16_t admin_port = 0;
};

// Parses "30s", "500ms", "2m", "1.5" (seconds).
std::optional<double> ParseDurationS(const std::string& s);
// Parses "20/s" or "20" (requests per second, >= 0).
std::optional<double> ParseRate(std::string s);
// Accepts only literal loopback addresses (and "localhost", taken as 127.0.0.1).
Status CheckLoopback(std::string* host);

// The run's report, as `loadgen --json` prints it; connected and balanced decide the exit code.
struct LoadgenReport {
  nlohmann::json json;
  int connected = 0;
  bool balanced = true;
};

// Builds the tensor at the split (units 1..split of the zoo model on a random input), connects
// every device, runs the load window and drains. kInvalidArgument for a model or split that
// cannot be built; everything the server does is in the report.
Result<LoadgenReport> RunLoadgen(const LoadgenOptions& options);

// The report in text form.
void PrintLoadgenReport(const nlohmann::json& report);

}  // namespace splitinfer

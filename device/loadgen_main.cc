// loadgen: N simulated devices against one edge_server on loopback.
//
//   loadgen --server 127.0.0.1:PORT --devices 128 --duration 30s --model mlp --split 2
//           [--in-flight 1] [--rate-per-device 0] [--server-pid PID | --admin 127.0.0.1:APORT]
//           [zoo options, the same as the server's] [--json]
//
// Each device is one AsyncEdgeConnection (device/async_edge_client.h: its own Hello handshake and
// request loop, the handshake and reply parsing of the blocking EdgeClient), all driven
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
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "common/frame_io.h"
#include "common/log.h"
#include "common/zoo_cli.h"
#include "device/loadgen.h"

using namespace splitinfer;

int main(int argc, char** argv) {
  CLI::App app{"loadgen: N simulated devices against an edge_server on loopback"};
  LoadgenOptions opts;
  std::string server;
  std::string duration = "10s";
  std::string rate = "0";
  std::string admin;
  int connect_timeout_ms = static_cast<int>(opts.connect_timeout.count());
  int io_timeout_ms = static_cast<int>(opts.io_timeout.count());
  bool json = false;
  std::string log_level = "warn";

  app.add_option("--server", server, "HOST:PORT of the edge_server (loopback only)")->required();
  app.add_option("--devices", opts.devices, "simulated devices, one connection each")
      ->check(CLI::Range(1, kMaxLoadgenDevices));
  app.add_option("--duration", duration, "length of the load window: 30s, 500ms, 2m (max 10m)");
  app.add_option("--max-requests", opts.max_requests, "stop after this many requests in all")
      ->check(CLI::Range(uint64_t{1}, kMaxLoadgenRequests));
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
  app.add_option("--server-pid", opts.server_pid, "read the server's RSS from /proc/PID/status")
      ->check(CLI::PositiveNumber);
  app.add_option("--admin", admin,
                 "HOST:PORT of the server's admin endpoint; its /metrics gives the RSS when it "
                 "exports process_resident_memory_bytes (loopback only)");
  app.add_flag("--json", json, "print one JSON object instead of the text report");
  app.add_option("--log-level", log_level)
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  AddZooOptions(app, &opts.zoo);
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
  if (!admin.empty()) {
    st = ParseHostPort(admin, &opts.admin_host, &opts.admin_port);
    if (st.ok()) st = CheckLoopback(&opts.admin_host);
    if (!st.ok()) return usage_error("--admin: " + st.message());
  }
  const auto dur = ParseDurationS(duration);
  if (!dur || *dur > kMaxLoadgenDurationS) {
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
  if (!opts.zoo.IsValid(&error)) return usage_error(error);

  Result<LoadgenReport> report = RunLoadgen(opts);
  if (!report.ok()) return usage_error(report.status().ToString());
  if (json) {
    std::cout << report->json.dump() << std::endl;
  } else {
    PrintLoadgenReport(report->json);
  }
  if (!report->balanced) return 1;
  return report->connected > 0 ? 0 : 1;
}

// AdminHttpServer: the operations endpoint of edge_server (--admin-listen), over Boost.Beast.
//
//   GET /healthz -> 200 "ok" while the process runs
//   GET /readyz  -> 200 "ready", or 503 with the reason the readiness callback gives
//   GET /metrics -> 200, Prometheus text format 0.0.4 from the metrics callback
//   other paths -> 404; methods other than GET -> 405
//
// It runs its own io_context on its own thread, not the device server's: health and metrics must
// answer while the device I/O threads are saturated and while EdgeServer drains and stops (the
// probe that watches a drain must outlive it). It can not starve the device side: one thread,
// at most `max_connections` admin connections (more are closed at once), request header and
// body bounded by `header_limit` / `body_limit` (Beast's parser; over it: 431 or 413 and close),
// and a whole request must arrive within `read_timeout`. One request per connection
// (Connection: close): scrapers and probes open one per call anyway.
//
// Start(), port() and Stop() may be called from any thread; Stop() is idempotent and the
// destructor calls it. The callbacks run on the admin thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/status.h"

namespace splitinfer {

struct AdminHttpOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0 = any free port; port() tells which
  uint32_t max_connections = 16;
  uint32_t header_limit = 8192;                   // bytes of request line + headers
  uint32_t body_limit = 8192;                     // bytes of request body (GETs carry none)
  std::chrono::milliseconds read_timeout{5000};   // the whole request
  std::chrono::milliseconds write_timeout{5000};  // the whole response

  bool IsValid(std::string* error) const;
};

struct AdminHandlers {
  // Empty string = ready; otherwise the reason for a 503.
  std::function<std::string()> not_ready_reason;
  std::function<std::string()> metrics_text;
};

class AdminHttpServer {
 public:
  AdminHttpServer(AdminHttpOptions options, AdminHandlers handlers);
  ~AdminHttpServer();
  AdminHttpServer(const AdminHttpServer&) = delete;
  AdminHttpServer& operator=(const AdminHttpServer&) = delete;

  // Binds, listens and starts the thread. Returns once the port is bound.
  Status Start();
  uint16_t port() const { return port_; }
  void Stop();

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
  uint16_t port_ = 0;
};

}  // namespace splitinfer

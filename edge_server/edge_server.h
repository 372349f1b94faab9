// EdgeServer: accepts device connections on TCP and finishes split inferences.
//
// Threads: `io_threads` run the Asio io_context (accept, read, write); `compute_threads` run
// the model units, so a long inference never holds an I/O thread. Each connection is a Session
// (edge_server.cc) owned through shared_from_this() with its own strand; every read and write
// has a deadline; a connection has at most `max_in_flight` requests outstanding, and reading
// from it pauses while it is at that bound (back-pressure through TCP, not memory).
//
// Errors: a frame that breaks framing (bad magic, oversize lengths, malformed metadata, a body
// that does not match its dtype/shape) gets an ErrorReply or an InferReply with the code and the
// connection is closed. A well-framed request that cannot be served (unknown model or version,
// a boundary out of range, a tensor that does not fit unit k+1, deadline passed) gets an
// InferReply with the code and the connection stays open. Other connections are never affected.
//
// Start(), port(), Stop() and Wait() may be called from any thread; Stop() is idempotent.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio.hpp>

#include "common/frame.h"
#include "common/status.h"
#include "edge_server/metrics.h"
#include "edge_server/model_registry.h"

namespace splitinfer {

struct EdgeServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0 = any free port; port() tells which
  int io_threads = 1;
  int compute_threads = 1;
  FrameLimits limits;
  std::chrono::milliseconds handshake_timeout{5000};  // connect to HelloReply
  std::chrono::milliseconds idle_timeout{120000};     // no frame started for this long: close
  std::chrono::milliseconds io_timeout{10000};        // finish a started frame, or one write
  uint32_t max_in_flight = 16;                        // per connection
  uint32_t default_deadline_ms = 30000;               // when a request gives none
  uint32_t max_connections = 256;
  // Admission (docs/security.md, "Admission"). A newcomer at a full server evicts, rather than
  // is refused by, a connection that holds a slot without using it: first the oldest connection
  // still in its handshake after a second, then the connection idle longest (nothing in
  // flight); it is refused only when every slot is busy. Connections that have not completed
  // the Hello (with a token: not authenticated) hold at most max_pending_handshakes slots, and
  // one address at most max_connections_per_address (0: no cap; a newcomer past it evicts that
  // address's own idle connection). While the server is at least 3/4 full, a connection idle
  // for crowded_idle_timeout is closed.
  uint32_t max_connections_per_address = 64;
  uint32_t max_pending_handshakes = 64;
  std::chrono::milliseconds crowded_idle_timeout{10000};
  // Drain: once a connection's last reply is written the server half-closes it and waits this
  // long for the device to close its side (so that nothing it sent late resets the replies).
  std::chrono::milliseconds drain_linger{2000};
  // Requests received and not yet answered, over all connections; past it a request gets
  // RESOURCE_EXHAUSTED ("server overloaded") at once. 0 = unlimited.
  uint32_t max_global_in_flight = 4096;
  // Dynamic batching (issue 8): requests for the same model version and boundary that arrive
  // within max_batch_delay of the first run as one batch of up to max_batch_size requests.
  // 1 = off: every request runs alone as soon as a compute thread is free.
  uint32_t max_batch_size = 1;
  std::chrono::microseconds max_batch_delay{2000};
  std::string server_name = "splitinfer-edge";
  // TLS on the device port (both set: every connection must handshake TLS 1.2+; both empty:
  // plain TCP). PEM files: the certificate chain (leaf first) and its private key.
  std::string tls_cert_file;
  std::string tls_key_file;
  // A shared secret every Hello must carry (empty: none). A missing or wrong one is refused
  // with UNAUTHENTICATED before anything else is read. Use it with TLS.
  std::string auth_token;
  // Fault injection for tests of the placement download (issue 7); 0 = off. The first N chunks
  // the server sends have one byte flipped; the connection serving chunk number N is dropped
  // (once per server) instead of sending it.
  uint32_t fault_corrupt_chunks = 0;
  uint32_t fault_drop_after_chunks = 0;

  bool IsValid(std::string* error) const;
};

// Counters for tests and logs. Monotonic.
struct EdgeServerStats {
  std::atomic<uint64_t> connections_accepted{0};
  std::atomic<uint64_t> connections_rejected{0};
  std::atomic<uint64_t> requests_ok{0};
  std::atomic<uint64_t> requests_failed{0};
  std::atomic<uint64_t> frames_rejected{0};
  std::atomic<uint64_t> placements{0};
  std::atomic<uint64_t> chunks_served{0};
  std::atomic<uint64_t> chunk_bytes_served{0};
  std::atomic<uint64_t> tls_handshake_failures{0};
  std::atomic<uint64_t> auth_failures{0};  // Hellos refused UNAUTHENTICATED
};

// Hot-path metrics beside EdgeServerStats (edge_server/metrics.h; exported by MetricsText()).
// An inference request is "in flight" from the moment its body has been read until its reply
// has been written (or dropped with its connection).
struct EdgeServerMetrics {
  static constexpr size_t kCodes = 17;           // wire::StatusCode values are < 17
  std::array<Counter, kCodes> requests_by_code;  // InferReplies sent, by wire::StatusCode
  Counter bytes_in;                              // frame bytes read (header + meta + body)
  Counter bytes_out;                             // frame bytes written
  Counter refused_draining;                      // requests refused because a drain had begun
  Counter refused_overloaded;                    // requests refused at max_global_in_flight
  // Admission (EdgeServerOptions): connections closed to make room, by why.
  Counter evicted_idle;               // idle longest when a newcomer found the server full
  Counter evicted_pending_handshake;  // oldest unfinished handshake (full, or too many of them)
  Counter evicted_per_address;        // idle connection of an address at its cap
  Counter evicted_crowded_idle;       // idle past crowded_idle_timeout while 3/4 full
  Counter rejected_per_address;       // newcomers refused: their address at its cap, all busy
  Counter handshake_timeouts;         // no accepted Hello within handshake_timeout of accept
  Counter go_aways;                   // GoAway frames sent (drain or eviction)
  Gauge connected_devices;
  Gauge in_flight;
  Histogram queue_wait = MakeLatencyHistogram();  // receipt to compute start
  Histogram decode = MakeLatencyHistogram();      // encoded bodies only
  Histogram compute = MakeLatencyHistogram();     // units k+1..N
  Histogram total = MakeLatencyHistogram();       // receipt to reply queued (computed requests)
  Counter batches;           // batches run (a request running alone counts as a batch of 1)
  Counter batched_requests;  // requests in them: batched_requests / batches = mean batch size
  Gauge batch_queue_depth;   // requests waiting for their batch to fill or its delay to pass
};

// What a drain did (EdgeServer::Drain).
struct DrainResult {
  uint64_t completed = 0;            // replies written during the drain
  uint64_t dropped = 0;              // requests received but unanswered at its end
  uint64_t dropped_connections = 0;  // connections those dropped requests were on
  bool deadline_passed = false;
  bool aborted = false;  // AbortDrain() cut it short
  std::chrono::milliseconds took{0};
};

class EdgeServer {
 public:
  EdgeServer(EdgeServerOptions options, std::shared_ptr<const ModelRegistry> models);
  ~EdgeServer();
  EdgeServer(const EdgeServer&) = delete;
  EdgeServer& operator=(const EdgeServer&) = delete;

  // Binds, listens and starts the threads. Returns once the port is bound.
  Status Start();
  // The bound port (valid after Start()).
  uint16_t port() const { return port_; }
  // Stops accepting, closes every connection, drains the compute pool, joins the threads.
  void Stop();
  // Blocks until Stop() has finished (from another thread or a signal handler).
  void Wait();

  // Graceful shutdown, first half: stops accepting, turns NotReadyReason() non-empty, refuses
  // requests that arrive from now on (UNAVAILABLE: the device finishes them locally), and waits
  // until every request already received has its reply written, `deadline` passes, or
  // AbortDrain() is called. Connections stay open; Stop() closes them (and what is left).
  DrainResult Drain(std::chrono::milliseconds deadline);
  // Ends a Drain() in progress at once (a second signal). Any thread.
  void AbortDrain();
  // Empty when ready (started, not draining or stopping, at least one model); else why not.
  std::string NotReadyReason() const;
  // Prometheus text format 0.0.4 of the stats and metrics (names under splitinfer_edge_).
  std::string MetricsText() const;

  const EdgeServerStats& stats() const { return stats_; }
  const EdgeServerMetrics& metrics() const { return metrics_; }

  class Impl;  // public so that the session (in the .cc) can reach it

 private:
  // Before impl_: sessions destroyed with impl_'s io_context still count into them.
  EdgeServerStats stats_;
  EdgeServerMetrics metrics_;
  std::unique_ptr<Impl> impl_;
  uint16_t port_ = 0;
};

}  // namespace splitinfer

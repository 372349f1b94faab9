// AsyncEdgeConnection: one device's connection to an edge_server driven asynchronously (Asio),
// so that one process can hold thousands of them on a few threads (loadgen). The handshake and
// the reading of replies are the blocking EdgeClient's (device/edge_protocol.h); what differs
// is who decides when a request goes out: an AsyncLoad (the run the connection belongs to).
//
// A connection: connect and handshake (one deadline each), then, once started, requests written
// whenever the load allows (closed loop: while fewer than in_flight are outstanding; open loop:
// at rate_per_device per second, a request due while at the in-flight bound waits for a slot
// and is counted as deferred). Every write and every awaited reply has a deadline; a connection
// that fails loses what it had outstanding (counted). Every handler runs on the connection's
// strand; its report is read once the io_context's threads have joined.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio.hpp>

#include "common/frame.h"
#include "common/frame_io.h"
#include "common/status.h"
#include "splitinfer.pb.h"

namespace splitinfer {

struct AsyncConnectionOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string client_name = "async-device";
  std::chrono::milliseconds connect_timeout{5000};  // connect, and the handshake's reply
  std::chrono::milliseconds io_timeout{10000};      // each write, each awaited reply
  uint32_t in_flight = 1;      // at most this many outstanding (and the server's bound)
  double rate_per_device = 0;  // open loop: requests per second; 0: closed loop
  FrameLimits limits;          // applied to replies
  uint64_t seed = 1;           // the open loop's random phase
};

// What drives the connections of one run. Called from the connections' strands (thread-safe).
class AsyncLoad {
 public:
  virtual ~AsyncLoad() = default;
  // Reserves one request; false when the run's budget is spent (the run then stops).
  virtual bool TakeRequest() = 0;
  // The frame of request `id`.
  virtual OutgoingFrame MakeRequest(uint64_t id) const = 0;
  // Whether the server serves what the run sends (kFailedPrecondition otherwise).
  virtual Status CheckServer(const wire::HelloReply& hello) const = 0;
  // A connection's handshake ended, either way.
  virtual void HandshakeDone() = 0;
  // No new request may start.
  virtual bool stopping() const = 0;
  // Replies read up to this time count in the load window.
  virtual std::chrono::steady_clock::time_point window_end() const = 0;
};

// What one connection saw.
struct ConnectionReport {
  bool connected = false;
  uint64_t sent = 0;
  uint64_t ok = 0;
  uint64_t ok_in_window = 0;
  uint64_t lost = 0;
  uint64_t deferred = 0;
  std::map<std::string, uint64_t> errors_by_code;
  std::string failure;               // why the connection ended early ("" = it did not)
  std::vector<uint32_t> latency_us;  // request written -> reply read, OK replies
};

class AsyncEdgeConnection : public std::enable_shared_from_this<AsyncEdgeConnection> {
 public:
  AsyncEdgeConnection(asio::io_context& io, AsyncLoad* load, AsyncConnectionOptions options);

  const ConnectionReport& report() const { return report_; }
  void Connect();
  void StartLoad();
  void StopLoad();
  // Closes the connection (one that took no part, or is done). Idempotent.
  void Close();

 private:
  using Clock = std::chrono::steady_clock;

  void Arm(asio::steady_timer& timer, Clock::duration after, const char* what);
  static void Disarm(asio::steady_timer& timer) { timer.expires_at(Clock::time_point::max()); }
  void DoConnect();
  void SendHello();
  void ReadHeader(bool handshake);
  void OnHeader(bool handshake);
  void OnHelloReply();
  void DoStartLoad();
  void ScheduleDue();
  void DoStopLoad();
  bool closed_loop() const { return options_.rate_per_device <= 0; }
  void Pump();
  void OnReply();
  void Fail(const std::string& why);
  void Shutdown();

  AsyncLoad* load_;
  const AsyncConnectionOptions options_;
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
  bool going_away_ = false;  // a GoAway came: nothing new is written here
  uint32_t in_flight_ = 1;
  uint32_t due_ = 0;  // requests due but not yet written
  uint64_t next_id_ = 1;
  Clock::time_point next_due_;
  std::unordered_map<uint64_t, Clock::time_point> outstanding_;  // id -> written at
  ConnectionReport report_;
};

}  // namespace splitinfer

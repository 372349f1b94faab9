// DeviceSession: the device's inference loop, written once for every mode of device_client.
//
// One inference (docs/live.md): the policy gives a plan (device/split_policy.h); the device runs
// units 1, 2, ... and after each observes the uplink and asks the plan whether to stop (an early
// exit may answer on the way); at the stop k it encodes the tensor with the plan's codec, sends
// it to the edge and reads the answer; when the edge cannot be reached, refuses, or vanishes
// with the request in flight, the device finishes units k+1..N itself from the tensor it kept.
// Data flows one way: input -> units 1..k -> codec -> connection -> reply -> record (the ledger
// line, device/inference_record.h), priced by decision::PriceInference.
//
// Several inferences may be in flight on the connection (in_flight); each is finished exactly
// once, by the edge or here. --device-slowdown X: every piece of device work (units, exit heads,
// encoding, the local finish) takes X times its measured time (the difference is slept), so one
// machine stands in for a slower board.
//
// Not thread-safe: one thread owns a session (and its EdgeClient).
#pragma once

#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <ATen/ATen.h>

#include "common/codec.h"
#include "common/decision/cost_model.h"
#include "device/edge_client.h"
#include "device/inference_record.h"
#include "device/split_policy.h"

namespace splitinfer {

struct SessionOptions {
  int in_flight = 1;  // requests outstanding at once on the connection
  double device_slowdown = 1.0;
  uint32_t deadline_ms = 0;                  // edge deadline per request (0: the server's default)
  std::chrono::milliseconds reconnect{500};  // wait after a failed connect before the next try
  bool verify = false;                       // compare each result with a local run
  bool has_edge = true;                      // false: no edge configured, everything runs here
  // Prices each record (decision::PriceInference); null: records carry times only.
  const decision::CostOptions* cost = nullptr;
};

struct InferenceInput {
  at::Tensor tensor;   // [1, ...input shape]
  int64_t label = -1;  // known class (early-exit evaluation): the record says if it matched
  int segment = -1;    // replay segment
  // Replay: the emulated time the segment starts at (the uplink was just set there); NaN: now.
  double start_s = std::numeric_limits<double>::quiet_NaN();
};

class DeviceSession {
 public:
  using Sink = std::function<void(InferenceRecord&&)>;

  // `client` may be null when options.has_edge is false. Records reach `sink` as inferences
  // complete (in completion order).
  DeviceSession(SessionOptions options, EdgeClient* client, Sink sink);
  ~DeviceSession();  // inferences still in flight are dropped: Drain() first
  DeviceSession(const DeviceSession&) = delete;
  DeviceSession& operator=(const DeviceSession&) = delete;

  // The id the next inference gets (inputs are seeded from it).
  uint64_t next_id() const { return next_id_; }
  // Runs one inference with `policy` over `uplink` (null: no channel, e.g. a fixed split). An
  // error only when the policy has nothing to run (e.g. no version placed yet): no inference
  // was started.
  Status Submit(SplitPolicy& policy, UplinkView* uplink, InferenceInput input);
  // Waits for every inference in flight to finish.
  void Drain();

 private:
  struct Pending;

  void Stopped(std::unique_ptr<Pending> inf, at::Tensor x);
  at::Tensor RunUnits(Pending& inf, at::Tensor x, int from, int to);
  template <typename F>
  auto DeviceWork(Pending& inf, F&& work);
  bool EnsureConnected(const SplitModel& model, std::string* why);
  void CheckServerModel(const SplitModel& model);
  void ReadOne();
  void OnConnectionLost(const Status& st);
  void FinishLocally(Pending& inf, const std::string& reason);
  void Finish(Pending& inf, const at::Tensor& output, const char* where, const InferResult* edge,
              const std::optional<std::string>& fallback, int exit = -1, int exit_after_unit = -1);
  void Verify(Pending& inf, const at::Tensor& output);

  SessionOptions options_;
  EdgeClient* client_;
  Sink sink_;
  std::map<uint64_t, std::shared_ptr<Pending>> pending_;  // shared_ptr: Pending is private
  uint64_t next_id_ = 1;
  bool leave_after_replies_ = false;  // the server said UNAVAILABLE (see ReadOne)
  bool warned_model_ = false;
  std::chrono::steady_clock::time_point next_connect_{};
  std::string last_error_ = "not connected";
};

}  // namespace splitinfer

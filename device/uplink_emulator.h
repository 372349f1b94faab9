// UplinkEmulator: the device's uplink as an emulated channel whose capacity follows a rate series
// (a fading model or a measured trace), in emulated time = time_scale x wall time since Start().
//
// It paces the device's request frames (a WritePacer, hooked into BlockingConnection::WriteFrame
// through EdgeClientOptions::uplink_pacer): a frame starts on the link when the link is free
// (BeginFrame: max(now, end of the previous frame)), its chunks follow without gaps, and before
// each chunk goes on the socket Acquire() sleeps until the emulated link would have finished
// carrying it. Time lost between chunks (the write itself, sleep overshoot) is made up by the
// next chunk, not added to the transfer, so the transfer time of s bytes is the time the series
// needs to carry 8 s bits from the moment the send starts, scaled back to wall time.
// ObservedRate() is the state a device with perfect CSI sees: the series' mean rate over the
// last `observe_window_s` of emulated time.
//
// Thread safety: one thread (the one that owns the EdgeClient) uses an UplinkEmulator.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/decision/simulator.h"
#include "common/decision/trace.h"
#include "common/frame_io.h"
#include "common/status.h"

namespace splitinfer {

struct EmulatedSeriesOptions {
  double grid_s = 0.005;       // step of the series
  double bandwidth_hz = 10e6;  // Shannon channels
  double duration_s = 600.0;   // rayleigh and gauss-markov series length (then it wraps)
  uint64_t seed = 1;
  decision::UccColumn ucc_column = decision::UccColumn::kSnrShannon;
};

// The rate series a channel spec (decision::ChannelSpec, the split_sim specs) stands for:
// trace:<file> and markov-fit:<file> load the trace; gauss-markov generates the correlated
// Rayleigh series; rayleigh draws a fresh i.i.d. gain at every grid step.
Result<decision::RateSeries> MakeEmulatedSeries(const decision::ChannelSpec& spec,
                                                const EmulatedSeriesOptions& options);

class UplinkEmulator final : public WritePacer {
 public:
  using Clock = std::chrono::steady_clock;

  UplinkEmulator(decision::RateSeries series, double time_scale, double observe_window_s,
                 size_t chunk_bytes = 8 * 1024);

  // Emulated time 0 is now.
  void Start();
  // Emulated time `t` is now, and the link is free (replay: each segment starts at its offset).
  // Only between frames.
  void StartAt(double t);
  double NowEmulated() const;
  // Perfect CSI: mean rate (bit/s, emulated time) over the observation window ending now.
  double ObservedRate() const;
  // Emulated seconds the series needs to carry `bits` starting at emulated time `t`
  // (+infinity when it carries nothing). The series wraps around.
  double TransferSeconds(double t, double bits) const;
  double time_scale() const { return time_scale_; }
  const decision::RateSeries& series() const { return series_; }

  // A frame whose emulated transfer would take longer than this (wall seconds; 0: no bound) is
  // refused with kDeadlineExceeded at the chunk that would cross it, instead of holding the
  // device: device_client sets it to --io-timeout-ms, the bound on every socket operation.
  void set_max_frame_s(double s) { max_frame_s_ = s; }

  size_t ChunkBytes() const override { return chunk_bytes_; }
  void BeginFrame() override;
  Status Acquire(size_t bytes) override;

 private:
  size_t StepAt(double t) const;

  decision::RateSeries series_;
  std::vector<double> observed_;  // ObservedRates(window) of the series
  std::vector<double> prefix_;    // prefix_[i]: bits carried by steps [0, i)
  double time_scale_;
  size_t chunk_bytes_;
  Clock::time_point t0_;
  double link_free_at_ = 0.0;  // emulated time the link finishes the last granted chunk
  double frame_start_ = 0.0;   // emulated time the current frame started on the link
  double max_frame_s_ = 0.0;
};

// --csi estimated: the rate the device infers from the goodput of its own recent uploads (bytes
// over the measured send time), as the harmonic mean of the last `window` samples, i.e. total
// bits over total time. Before the first upload it answers `prior_bps` (the law's mean rate).
// A device that stops offloading stops measuring: the estimate then goes stale (docs/live.md).
// Not thread-safe: the thread that sends owns it.
class GoodputEstimator {
 public:
  GoodputEstimator(size_t window, double prior_bps) : window_(window), prior_(prior_bps) {}
  void Add(double bits, double seconds);
  double RateBps() const;
  size_t samples() const { return bits_.size(); }

 private:
  size_t window_;
  double prior_;
  std::vector<double> bits_, seconds_;  // the last `window_` uploads, oldest first
};

}  // namespace splitinfer

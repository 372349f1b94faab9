#include "device/uplink_emulator.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <thread>

#include "common/decision/channel.h"

namespace splitinfer {

namespace sd = decision;

Result<sd::RateSeries> MakeEmulatedSeries(const sd::ChannelSpec& spec,
                                          const EmulatedSeriesOptions& o) {
  using Kind = sd::ChannelSpec::Kind;
  switch (spec.kind) {
    case Kind::kTrace:
    case Kind::kMarkovFit: {
      sd::UccOptions uo;
      uo.dt_s = o.grid_s;
      uo.bandwidth_hz = o.bandwidth_hz;
      uo.column = o.ucc_column;
      return sd::LoadTrace(spec.path, uo);
    }
    case Kind::kGaussMarkov: {
      sd::GaussMarkovOptions g;
      g.snr_db = spec.snr_db;
      g.doppler_hz = spec.doppler_hz;
      g.dt_s = o.grid_s;
      g.duration_s = o.duration_s;
      g.bandwidth_hz = o.bandwidth_hz;
      g.seed = o.seed;
      return sd::GenerateGaussMarkov(g);
    }
    case Kind::kRayleigh: {
      sd::RateSeries s;
      s.name = spec.text;
      s.dt_s = o.grid_s;
      const size_t n = std::max<size_t>(1, std::lround(o.duration_s / o.grid_s));
      std::mt19937_64 rng(o.seed);
      std::exponential_distribution<double> gain(1.0);
      const double snr = sd::DbToLinear(spec.snr_db);
      s.rate_bps.resize(n);
      for (double& r : s.rate_bps) r = sd::ShannonRate(o.bandwidth_hz, snr, gain(rng));
      return s;
    }
  }
  return InvalidArgumentError("unknown channel kind");
}

UplinkEmulator::UplinkEmulator(sd::RateSeries series, double time_scale, double observe_window_s,
                               size_t chunk_bytes)
    : series_(std::move(series)), time_scale_(time_scale), chunk_bytes_(chunk_bytes) {
  const size_t window =
      std::max<size_t>(1, std::lround(observe_window_s / std::max(series_.dt_s, 1e-9)));
  observed_ = series_.ObservedRates(window);
  prefix_.assign(series_.size() + 1, 0.0);
  for (size_t i = 0; i < series_.size(); ++i)
    prefix_[i + 1] = prefix_[i] + series_.rate_bps[i] * series_.dt_s;
  Start();
}

void UplinkEmulator::Start() { StartAt(0.0); }

void UplinkEmulator::StartAt(double t) {
  t0_ = Clock::now() -
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(t / time_scale_));
  link_free_at_ = t;
}

double UplinkEmulator::NowEmulated() const {
  return time_scale_ * std::chrono::duration<double>(Clock::now() - t0_).count();
}

size_t UplinkEmulator::StepAt(double t) const {
  return static_cast<size_t>(std::floor(t / series_.dt_s)) % series_.size();
}

double UplinkEmulator::ObservedRate() const {
  if (observed_.empty()) return 0.0;
  return observed_[StepAt(NowEmulated())];
}

double UplinkEmulator::TransferSeconds(double t, double bits) const {
  const size_t n = series_.size();
  const double dt = series_.dt_s;
  if (n == 0 || bits <= 0) return 0.0;
  const double cycle_bits = prefix_[n];
  if (!(cycle_bits > 0)) return std::numeric_limits<double>::infinity();
  double elapsed = 0.0;
  size_t i = StepAt(t);
  // The rest of the current step.
  double left = dt * (std::floor(t / dt) + 1) - t;
  double cap = series_.rate_bps[i] * left;
  if (cap >= bits) return series_.rate_bps[i] > 0 ? bits / series_.rate_bps[i] : 0.0;
  bits -= cap;
  elapsed += left;
  i = (i + 1) % n;
  // Whole cycles.
  const double cycles = std::floor(bits / cycle_bits);
  elapsed += cycles * dt * static_cast<double>(n);
  bits -= cycles * cycle_bits;
  // Whole steps, then the fraction of the last one.
  while (true) {
    const double r = series_.rate_bps[i];
    if (r * dt >= bits) return elapsed + (bits > 0 ? bits / r : 0.0);
    bits -= r * dt;
    elapsed += dt;
    i = (i + 1) % n;
  }
}

void UplinkEmulator::BeginFrame() {
  link_free_at_ = std::max(link_free_at_, NowEmulated());
  frame_start_ = link_free_at_;
}

Status UplinkEmulator::Acquire(size_t bytes) {
  // The chunks of one frame follow each other on the link without gaps: the device holds the
  // whole tensor, so time lost between chunks (the socket write, sleep overshoot) is the
  // emulator's, not the channel's, and the next chunk makes it up.
  const double start = link_free_at_;
  const double took = TransferSeconds(start, 8.0 * static_cast<double>(bytes));
  if (!std::isfinite(took))
    return UnavailableError("emulated uplink carries nothing (dead channel)");
  const double frame_wall_s = (start + took - frame_start_) / time_scale_;
  if (max_frame_s_ > 0 && frame_wall_s > max_frame_s_)
    return DeadlineExceededError("emulated uplink: the frame would take over " +
                                 std::to_string(max_frame_s_) +
                                 " s on this channel (the I/O timeout)");
  link_free_at_ = start + took;
  std::this_thread::sleep_until(t0_ +
                                std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(link_free_at_ / time_scale_)));
  return Status::Ok();
}

void GoodputEstimator::Add(double bits, double seconds) {
  if (!(seconds > 0) || !(bits > 0)) return;
  bits_.push_back(bits);
  seconds_.push_back(seconds);
  if (bits_.size() > window_) {
    bits_.erase(bits_.begin());
    seconds_.erase(seconds_.begin());
  }
}

double GoodputEstimator::RateBps() const {
  if (bits_.empty()) return prior_;
  double b = 0, t = 0;
  for (size_t i = 0; i < bits_.size(); ++i) b += bits_[i], t += seconds_[i];
  return b / t;
}

}  // namespace splitinfer

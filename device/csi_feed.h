// The CSI reports a device's modem delivers while it runs: the rates of the emulated series up to
// an emulated time, each grid step once and at most one window back (older reports would leave
// the re-fitter's ring before a fit sees them, and a replay's jump between segments must not
// splice two distant parts of the trace). What the background re-fitters of
// --law online (device/split_policy.cc) and of the robust splitter (device/robust_decision.cc)
// observe.
//
// Thread safety: not thread-safe; one DecisionSource drives it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>

#include "common/decision/trace.h"

namespace splitinfer {

class CsiFeed {
 public:
  // `emulated` is copied (the uplink owns its own); rates reach the observer in wall time
  // (x time_scale), the unit the re-fitters fit in.
  CsiFeed(decision::RateSeries emulated, double time_scale, size_t window_steps)
      : series_(std::move(emulated)), scale_(time_scale), window_steps_(window_steps) {}

  // observe(wall-time bit/s) for every step after the last one fed, up to emulated time t.
  template <typename Observe>
  void Until(double emulated_s, Observe&& observe) {
    if (series_.size() == 0) return;
    const int64_t step = static_cast<int64_t>(std::floor(emulated_s / series_.dt_s));
    const int64_t from = std::max(next_step_, step - static_cast<int64_t>(window_steps_) + 1);
    const int64_t n = static_cast<int64_t>(series_.size());
    for (int64_t i = std::max<int64_t>(from, 0); i <= step; ++i)
      observe(series_.rate_bps[static_cast<size_t>(i % n)] * scale_);
    next_step_ = std::max(next_step_, step + 1);
  }

  const decision::RateSeries& series() const { return series_; }

 private:
  const decision::RateSeries series_;
  double scale_;
  size_t window_steps_;
  int64_t next_step_ = 0;
};

}  // namespace splitinfer

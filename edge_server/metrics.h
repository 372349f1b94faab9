// Metrics of the edge server in Prometheus text format 0.0.4 (served by admin_http.h).
//
// Counter, Gauge and Histogram are plain atomics with relaxed ordering: the hot path (a session's
// strand, a compute thread) adds without a lock, and a scrape reads each value once. A scrape may
// see a histogram's buckets and its count a few observations apart; Prometheus tolerates that,
// and nothing here is used for control. Histogram buckets are fixed at construction (no
// allocation after it). prometheus-cpp is not in the Debian packages this project builds from,
// and the few metric kinds needed here fit in this file.
//
// MetricsText writes families: every family gets its # HELP and # TYPE lines, then its samples.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace splitinfer {

class Counter {
 public:
  void Add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Add(int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  void Set(int64_t n) { value_.store(n, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Observations in microseconds, exported in seconds. `bounds_us` are the upper bounds of the
// buckets (ascending); the +Inf bucket is implicit.
class Histogram {
 public:
  static constexpr size_t kMaxBuckets = 24;
  explicit Histogram(std::initializer_list<uint64_t> bounds_us);

  void ObserveMicros(uint64_t us);

  size_t num_bounds() const { return num_bounds_; }
  uint64_t bound_us(size_t i) const { return bounds_[i]; }
  // Observations <= bound i (not cumulative); i == num_bounds() is the overflow (+Inf only).
  uint64_t bucket(size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  uint64_t sum_us() const { return sum_us_.load(std::memory_order_relaxed); }

 private:
  std::array<uint64_t, kMaxBuckets> bounds_{};
  size_t num_bounds_ = 0;
  std::array<std::atomic<uint64_t>, kMaxBuckets + 1> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_us_{0};
};

// Latency buckets of the edge server, 100 us .. 10 s.
Histogram MakeLatencyHistogram();

// Writes Prometheus text format 0.0.4. Names must match [a-zA-Z_:][a-zA-Z0-9_:]*; label values
// are escaped here.
class MetricsText {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;

  void Counter(const std::string& name, const std::string& help, uint64_t value);
  // One family, one sample per label set.
  void LabeledCounter(const std::string& name, const std::string& help,
                      const std::vector<std::pair<Labels, uint64_t>>& samples);
  void Gauge(const std::string& name, const std::string& help, double value);
  void Histogram(const std::string& name, const std::string& help, const splitinfer::Histogram& h);
  // Several histograms in one family, told apart by `label`="value".
  void LabeledHistograms(
      const std::string& name, const std::string& help, const std::string& label,
      const std::vector<std::pair<std::string, const splitinfer::Histogram*>>& histograms);

  const std::string& text() const { return out_; }

 private:
  void Family(const std::string& name, const std::string& help, const char* type);
  void Sample(const std::string& name, const Labels& labels, const std::string& value);
  void HistogramSamples(const std::string& name, const Labels& base,
                        const splitinfer::Histogram& h);

  std::string out_;
};

// The content type of MetricsText::text().
inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace splitinfer

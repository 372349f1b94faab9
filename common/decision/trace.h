// Rate time series and the parsers of the real traces in ../shared/traces (SPEC section 6).
//
// Every trace becomes a RateSeries: a rate in bit/s held constant over each step of a uniform
// time grid. Mahimahi delivery opportunities are counted per grid step; Norway HSDPA logs and UCC
// 5G CSVs (irregular, ~1 s) are resampled by holding the last value across gaps. Parsers reject a
// malformed file with "<file>:<line>: <what>" in the Status message.
//
// Thread safety: plain values; const methods may be called from any thread.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace splitinfer::decision {

struct RateSeries {
  std::string name;
  double dt_s = 0.01;            // grid step (seconds)
  std::vector<double> rate_bps;  // rate over [i dt, (i+1) dt)

  size_t size() const { return rate_bps.size(); }
  double duration_s() const { return dt_s * static_cast<double>(rate_bps.size()); }
  double MeanRate() const;
  // Steps [begin, end) as a series of its own (used to fit on one part and score on another).
  RateSeries Slice(size_t begin, size_t end) const;
  // Causal moving average over `window` steps ending at each step (the rate a device "observes"
  // at the end of step i from the last `window` steps; shorter at the start).
  std::vector<double> ObservedRates(size_t window) const;
};

// Time (seconds) to push `bits` through the series starting at the beginning of step `start`,
// treating the series as cyclic (mm-link wraps a trace the same way). +infinity when the series
// carries no bits at all.
class TransferClock {
 public:
  explicit TransferClock(const RateSeries& series);
  double TransferTime(size_t start, double bits) const;

 private:
  double dt_;
  std::vector<double> rate_;
  std::vector<double> prefix_;  // prefix_[i] = bits delivered in steps [0, i)
};

// Mahimahi: one integer millisecond timestamp per line, one 1500-byte delivery opportunity each.
Result<RateSeries> ParseMahimahi(const std::string& text, const std::string& file_name,
                                 double dt_s = 0.01);
// Pensieve-cooked Norway HSDPA: "time_s<TAB>Mbps" per line; the last value is held across gaps.
Result<RateSeries> ParseNorway(const std::string& text, const std::string& file_name,
                               double dt_s = 0.01);

// UCC 5G CSV: which column turns into a rate.
enum class UccColumn { kUplinkBitrate, kDownlinkBitrate, kSnrShannon };
struct UccOptions {
  UccColumn column = UccColumn::kSnrShannon;
  double bandwidth_hz = 10e6;  // for kSnrShannon: r = B log2(1 + 10^(SNR/10))
  double dt_s = 0.01;
};
Result<RateSeries> ParseUcc(const std::string& text, const std::string& file_name,
                            const UccOptions& options = {});

enum class TraceKind { kMahimahi, kNorway, kUcc };
// Kind from the file name: *.up/*.down -> Mahimahi, *.csv -> UCC, anything else -> Norway.
TraceKind GuessTraceKind(const std::string& path);
// A data file (trace, profile, codec table): regular files of at most kMaxDataFileBytes only
// (common/bounded_file.h); errors name the file.
Result<std::string> ReadFile(const std::string& path);
// Reads and parses by GuessTraceKind; UCC uses `ucc` (dt_s of `ucc` is used for every kind).
Result<RateSeries> LoadTrace(const std::string& path, const UccOptions& ucc = {});

}  // namespace splitinfer::decision

#include "common/decision/trace.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <numeric>
#include <sstream>

#include "common/bounded_file.h"

namespace splitinfer::decision {
namespace {

Status LineError(const std::string& file, size_t line, const std::string& what) {
  return InvalidArgumentError(file + ":" + std::to_string(line) + ": " + what);
}

// Strict number parse: the whole token must be a finite number.
bool ParseDouble(const std::string& token, double* out) {
  if (token.empty()) return false;
  const char* begin = token.c_str();
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(begin, &end);
  if (errno != 0 || end != begin + token.size() || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  std::string line;
  std::istringstream in(text);
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

// Samples (t, value) with non-decreasing t, resampled to a grid by holding the last value.
RateSeries HoldResample(const std::string& name, const std::vector<double>& t,
                        const std::vector<double>& v, double dt) {
  RateSeries out;
  out.name = name;
  out.dt_s = dt;
  if (t.empty()) return out;
  const double t0 = t.front();
  // The last sample holds for the median gap between samples (about one logging period).
  std::vector<double> gaps;
  for (size_t i = 1; i < t.size(); ++i) gaps.push_back(t[i] - t[i - 1]);
  double tail = dt;
  if (!gaps.empty()) {
    std::nth_element(gaps.begin(), gaps.begin() + gaps.size() / 2, gaps.end());
    tail = std::max(dt, gaps[gaps.size() / 2]);
  }
  const size_t n = static_cast<size_t>(std::ceil((t.back() - t0 + tail) / dt - 1e-9));
  out.rate_bps.resize(n);
  size_t j = 0;
  for (size_t i = 0; i < n; ++i) {
    const double ti = t0 + static_cast<double>(i) * dt;
    while (j + 1 < t.size() && t[j + 1] <= ti + 1e-9) ++j;
    out.rate_bps[i] = v[j];
  }
  return out;
}

// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// "YYYY.MM.DD_HH.MM.SS" -> seconds since the epoch (local time, no zone: only differences count).
bool ParseUccTimestamp(const std::string& s, double* out) {
  int y, mo, d, h, mi, se;
  char tail;
  if (std::sscanf(s.c_str(), "%4d.%2d.%2d_%2d.%2d.%2d%c", &y, &mo, &d, &h, &mi, &se, &tail) != 6)
    return false;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60 || h < 0 || mi < 0 ||
      se < 0)
    return false;
  *out = static_cast<double>(DaysFromCivil(y, mo, d)) * 86400.0 + h * 3600.0 + mi * 60.0 + se;
  return true;
}

std::vector<std::string> SplitCsv(const std::string& line) {
  std::vector<std::string> out;
  std::string cell;
  std::istringstream in(line);
  while (std::getline(in, cell, ',')) out.push_back(Trim(cell));
  if (!line.empty() && line.back() == ',') out.push_back("");
  return out;
}

}  // namespace

double RateSeries::MeanRate() const {
  if (rate_bps.empty()) return 0.0;
  return std::accumulate(rate_bps.begin(), rate_bps.end(), 0.0) /
         static_cast<double>(rate_bps.size());
}

RateSeries RateSeries::Slice(size_t begin, size_t end) const {
  RateSeries out;
  out.name = name;
  out.dt_s = dt_s;
  end = std::min(end, rate_bps.size());
  begin = std::min(begin, end);
  out.rate_bps.assign(rate_bps.begin() + static_cast<std::ptrdiff_t>(begin),
                      rate_bps.begin() + static_cast<std::ptrdiff_t>(end));
  return out;
}

std::vector<double> RateSeries::ObservedRates(size_t window) const {
  window = std::max<size_t>(window, 1);
  std::vector<double> out(rate_bps.size());
  double sum = 0.0;
  for (size_t i = 0; i < rate_bps.size(); ++i) {
    sum += rate_bps[i];
    if (i >= window) sum -= rate_bps[i - window];
    out[i] = sum / static_cast<double>(std::min(i + 1, window));
  }
  return out;
}

TransferClock::TransferClock(const RateSeries& series)
    : dt_(series.dt_s), rate_(series.rate_bps), prefix_(series.size() + 1, 0.0) {
  for (size_t i = 0; i < rate_.size(); ++i) prefix_[i + 1] = prefix_[i] + rate_[i] * dt_;
}

double TransferClock::TransferTime(size_t start, double bits) const {
  const size_t n = rate_.size();
  const double total = prefix_[n];
  if (n == 0 || total <= 0.0) return std::numeric_limits<double>::infinity();
  if (bits <= 0.0) return 0.0;
  start %= n;
  const double cycle_s = dt_ * static_cast<double>(n);
  // Whole cycles first, then the remainder from `start`, wrapping once at most.
  double cycles = std::floor(bits / total);
  double rem = bits - cycles * total;
  if (rem <= 0.0) {  // an exact multiple: the last cycle ends where it began
    cycles -= 1.0;
    rem = total;
  }
  double t = cycles * cycle_s;
  double target = prefix_[start] + rem;
  if (target > prefix_[n]) {
    t += dt_ * static_cast<double>(n - start);
    target -= prefix_[n];
    start = 0;
  }
  // First j > start with prefix_[j] >= target; the transfer ends inside step j-1.
  auto it = std::lower_bound(prefix_.begin() + static_cast<std::ptrdiff_t>(start) + 1,
                             prefix_.end(), target);
  const size_t j = static_cast<size_t>(it - prefix_.begin());
  const size_t step = j - 1;
  // Whole steps start..step-1, then the seconds step `step` needs for the rest.
  t += dt_ * static_cast<double>(step - start) + (target - prefix_[step]) / rate_[step];
  return t;
}

Result<RateSeries> ParseMahimahi(const std::string& text, const std::string& file_name,
                                 double dt_s) {
  if (!(dt_s >= 0.001)) return InvalidArgumentError(file_name + ": dt_s must be >= 1 ms");
  std::vector<int64_t> ms;
  size_t line_no = 0;
  for (const std::string& raw : SplitLines(text)) {
    ++line_no;
    const std::string line = Trim(raw);
    if (line.empty()) continue;
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(line.c_str(), &end, 10);
    if (errno != 0 || end != line.c_str() + line.size() || v < 0)
      return LineError(file_name, line_no,
                       "expected a non-negative integer millisecond, got '" + line + "'");
    if (!ms.empty() && v < ms.back())
      return LineError(file_name, line_no, "timestamp " + line + " goes back in time");
    ms.push_back(v);
  }
  if (ms.empty()) return InvalidArgumentError(file_name + ": no delivery opportunities");
  RateSeries out;
  out.name = file_name;
  out.dt_s = dt_s;
  const double duration_s = static_cast<double>(ms.back() + 1) / 1000.0;
  const size_t n = static_cast<size_t>(std::ceil(duration_s / dt_s - 1e-9));
  out.rate_bps.assign(n, 0.0);
  const double bits_per_opportunity = 1500.0 * 8.0;
  for (int64_t m : ms) {
    size_t bin = static_cast<size_t>((static_cast<double>(m) / 1000.0) / dt_s + 1e-9);
    bin = std::min(bin, n - 1);
    out.rate_bps[bin] += bits_per_opportunity / dt_s;
  }
  return out;
}

Result<RateSeries> ParseNorway(const std::string& text, const std::string& file_name, double dt_s) {
  if (!(dt_s > 0.0)) return InvalidArgumentError(file_name + ": dt_s must be > 0");
  std::vector<double> t, v;
  size_t line_no = 0;
  for (const std::string& raw : SplitLines(text)) {
    ++line_no;
    const std::string line = Trim(raw);
    if (line.empty()) continue;
    std::istringstream in(line);
    std::string a, b, extra;
    in >> a >> b;
    double ta, mbps;
    if (!ParseDouble(a, &ta) || !ParseDouble(b, &mbps) || (in >> extra))
      return LineError(file_name, line_no, "expected 'time_s<TAB>Mbps', got '" + line + "'");
    if (ta < 0.0 || mbps < 0.0)
      return LineError(file_name, line_no, "negative time or throughput in '" + line + "'");
    if (!t.empty() && ta < t.back())
      return LineError(file_name, line_no, "time " + a + " goes back in time");
    t.push_back(ta);
    v.push_back(mbps * 1e6);
  }
  if (t.empty()) return InvalidArgumentError(file_name + ": no samples");
  return HoldResample(file_name, t, v, dt_s);
}

Result<RateSeries> ParseUcc(const std::string& text, const std::string& file_name,
                            const UccOptions& options) {
  if (!(options.dt_s > 0.0)) return InvalidArgumentError(file_name + ": dt_s must be > 0");
  if (options.column == UccColumn::kSnrShannon && !(options.bandwidth_hz > 0.0))
    return InvalidArgumentError(file_name + ": bandwidth_hz must be > 0");
  const std::vector<std::string> lines = SplitLines(text);
  if (lines.empty()) return InvalidArgumentError(file_name + ":1: empty file, expected a header");
  const std::vector<std::string> header = SplitCsv(lines[0]);
  const char* wanted = options.column == UccColumn::kUplinkBitrate     ? "UL_bitrate"
                       : options.column == UccColumn::kDownlinkBitrate ? "DL_bitrate"
                                                                       : "SNR";
  auto col_of = [&](const std::string& name) -> int {
    auto it = std::find(header.begin(), header.end(), name);
    return it == header.end() ? -1 : static_cast<int>(it - header.begin());
  };
  const int ts_col = col_of("Timestamp");
  const int val_col = col_of(wanted);
  if (ts_col < 0 || val_col < 0)
    return LineError(file_name, 1,
                     std::string("header lacks 'Timestamp' or '") + wanted + "' column");
  std::vector<double> t, v;
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t line_no = i + 1;
    if (Trim(lines[i]).empty()) continue;
    const std::vector<std::string> cells = SplitCsv(lines[i]);
    if (cells.size() != header.size())
      return LineError(file_name, line_no,
                       "expected " + std::to_string(header.size()) + " columns, got " +
                           std::to_string(cells.size()));
    double ts;
    if (!ParseUccTimestamp(cells[ts_col], &ts))
      return LineError(file_name, line_no, "bad Timestamp '" + cells[ts_col] + "'");
    if (!t.empty() && ts < t.back())
      return LineError(file_name, line_no, "Timestamp " + cells[ts_col] + " goes back in time");
    const std::string& cell = cells[val_col];
    if (cell == "-") continue;  // missing value: the previous one is held
    double x;
    if (!ParseDouble(cell, &x))
      return LineError(file_name, line_no, std::string("bad ") + wanted + " '" + cell + "'");
    double rate;
    if (options.column == UccColumn::kSnrShannon) {
      rate = options.bandwidth_hz * std::log2(1.0 + std::pow(10.0, x / 10.0));
    } else {
      if (x < 0.0) return LineError(file_name, line_no, std::string("negative ") + wanted);
      rate = x * 1e3;  // kbit/s
    }
    if (!t.empty() && ts == t.back()) {  // a duplicated second: keep the later row
      v.back() = rate;
      continue;
    }
    t.push_back(ts);
    v.push_back(rate);
  }
  if (t.empty()) return InvalidArgumentError(file_name + ": no usable rows");
  return HoldResample(file_name, t, v, options.dt_s);
}

TraceKind GuessTraceKind(const std::string& path) {
  auto ends_with = [&](const std::string& s) {
    return path.size() >= s.size() && path.compare(path.size() - s.size(), s.size(), s) == 0;
  };
  if (ends_with(".up") || ends_with(".down")) return TraceKind::kMahimahi;
  if (ends_with(".csv")) return TraceKind::kUcc;
  return TraceKind::kNorway;
}

Result<std::string> ReadFile(const std::string& path) {
  return ReadBoundedFile(path, kMaxDataFileBytes, "file");
}

Result<RateSeries> LoadTrace(const std::string& path, const UccOptions& ucc) {
  Result<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  switch (GuessTraceKind(path)) {
    case TraceKind::kMahimahi:
      return ParseMahimahi(*text, path, ucc.dt_s);
    case TraceKind::kUcc:
      return ParseUcc(*text, path, ucc);
    case TraceKind::kNorway:
      break;
  }
  return ParseNorway(*text, path, ucc.dt_s);
}

}  // namespace splitinfer::decision

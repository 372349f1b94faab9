#include "edge_server/metrics.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace splitinfer {
namespace {

std::string FormatDouble(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string Seconds(uint64_t us) { return FormatDouble(static_cast<double>(us) / 1e6); }

std::string EscapeLabel(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// HELP text escapes backslash and newline only.
std::string EscapeHelp(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

Histogram::Histogram(std::initializer_list<uint64_t> bounds_us) {
  // A programming error, found by the first test that builds the server.
  if (bounds_us.size() > kMaxBuckets || !std::is_sorted(bounds_us.begin(), bounds_us.end())) {
    throw std::invalid_argument("histogram bounds: at most 24, ascending");
  }
  for (uint64_t b : bounds_us) bounds_[num_bounds_++] = b;
}

void Histogram::ObserveMicros(uint64_t us) {
  const auto end = bounds_.begin() + static_cast<std::ptrdiff_t>(num_bounds_);
  const size_t i =
      static_cast<size_t>(std::lower_bound(bounds_.begin(), end, us) - bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_us_.fetch_add(us, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

Histogram MakeLatencyHistogram() {
  return Histogram({100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
                    1000000, 2500000, 5000000, 10000000});
}

void MetricsText::Family(const std::string& name, const std::string& help, const char* type) {
  out_ += "# HELP " + name + " " + EscapeHelp(help) + "\n";
  out_ += "# TYPE " + name + " " + type + "\n";
}

void MetricsText::Sample(const std::string& name, const Labels& labels, const std::string& value) {
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i) out_ += ',';
      out_ += labels[i].first + "=\"" + EscapeLabel(labels[i].second) + "\"";
    }
    out_ += '}';
  }
  out_ += ' ' + value + '\n';
}

void MetricsText::Counter(const std::string& name, const std::string& help, uint64_t value) {
  Family(name, help, "counter");
  Sample(name, {}, std::to_string(value));
}

void MetricsText::LabeledCounter(const std::string& name, const std::string& help,
                                 const std::vector<std::pair<Labels, uint64_t>>& samples) {
  Family(name, help, "counter");
  for (const auto& [labels, value] : samples) Sample(name, labels, std::to_string(value));
}

void MetricsText::Gauge(const std::string& name, const std::string& help, double value) {
  Family(name, help, "gauge");
  Sample(name, {}, FormatDouble(value));
}

void MetricsText::HistogramSamples(const std::string& name, const Labels& base,
                                   const splitinfer::Histogram& h) {
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= h.num_bounds(); ++i) {
    cumulative += h.bucket(i);
    Labels labels = base;
    labels.emplace_back("le", i < h.num_bounds() ? Seconds(h.bound_us(i)) : "+Inf");
    Sample(name + "_bucket", labels, std::to_string(cumulative));
  }
  Sample(name + "_sum", base, Seconds(h.sum_us()));
  // _count equals the +Inf bucket: both come from the same bucket reads.
  Sample(name + "_count", base, std::to_string(cumulative));
}

void MetricsText::Histogram(const std::string& name, const std::string& help,
                            const splitinfer::Histogram& h) {
  Family(name, help, "histogram");
  HistogramSamples(name, {}, h);
}

void MetricsText::LabeledHistograms(
    const std::string& name, const std::string& help, const std::string& label,
    const std::vector<std::pair<std::string, const splitinfer::Histogram*>>& histograms) {
  Family(name, help, "histogram");
  for (const auto& [value, h] : histograms) HistogramSamples(name, {{label, value}}, *h);
}

}  // namespace splitinfer

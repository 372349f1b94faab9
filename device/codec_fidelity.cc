#include "device/codec_fidelity.h"

#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <limits>
#include <set>
#include <sstream>
#include <utility>

#include "common/frame.h"

namespace splitinfer {
namespace {

// Median of unsorted values, interpolating between the two middle ones (numpy's default).
double Median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double Round(double v, int decimals) {
  const double p = std::pow(10.0, decimals);
  return std::round(v * p) / p;
}

std::string Format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string Format(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  return buf;
}

std::string Trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

// Parses a non-negative decimal integer that is the whole of `s`.
bool ParseIndex(const std::string& s, long long* out) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos) return false;
  try {
    *out = std::stoll(s);
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

std::string BoundaryName(const SplitModel& m, size_t k) {
  return k == 0 ? "input" : m.unit(k - 1).name;
}

int64_t BoundaryBytes(const SplitModel& m, size_t k) {
  int64_t n = 4;
  for (int64_t d : m.boundary_shape(k)) n *= d;
  return n;
}

// What one (codec, boundary) cell accumulates over the inputs.
struct Cell {
  std::vector<double> encode_ms, decode_ms;
  double body = 0, meta = 0;
  int agree = 0, n = 0;
  double max_err = 0, sum_mean_err = 0, feature_max = 0, feature_sum_mean = 0;
  bool available = true;
  std::string reason;
};

}  // namespace

Result<std::vector<CodecSpec>> ParseCodecList(const std::string& text) {
  std::vector<CodecSpec> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item = Trim(item);
    if (item.empty()) continue;
    Result<CodecSpec> spec = CodecSpec::Parse(item);
    if (!spec.ok()) return spec.status();
    for (const CodecSpec& seen : out) {
      if (seen == *spec) return InvalidArgumentError("codec " + item + " is named twice");
    }
    out.push_back(*spec);
  }
  if (out.empty()) return InvalidArgumentError("--codecs names no codec");
  return out;
}

Result<std::vector<size_t>> ParseBoundaries(const std::string& text, const SplitModel& model) {
  const size_t n = model.num_units();
  std::vector<size_t> out;
  if (Trim(text) == "all") {
    for (size_t k = 0; k < n; ++k) out.push_back(k);
    return out;
  }
  const std::string range = "boundaries 0.." + std::to_string(n - 1) + " of " + model.name() +
                            " (N = " + std::to_string(n) +
                            " units; at k = N nothing is sent) can be measured";
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item = Trim(item);
    if (item.empty()) continue;
    long long lo = 0, hi = 0;
    const size_t dash = item.find('-', 1);
    const bool ok = dash == std::string::npos ? ParseIndex(item, &lo) && (hi = lo, true)
                                              : ParseIndex(item.substr(0, dash), &lo) &&
                                                    ParseIndex(item.substr(dash + 1), &hi);
    if (!ok) {
      return InvalidArgumentError("boundary '" + item +
                                  "' is not a number k or a range A-B (or 'all'); " + range);
    }
    if (lo > hi) return InvalidArgumentError("boundary range '" + item + "' is empty");
    if (static_cast<unsigned long long>(hi) >= n) {
      return InvalidArgumentError("boundary " + std::to_string(hi) + " is out of range: " + range);
    }
    for (long long k = lo; k <= hi; ++k) out.push_back(static_cast<size_t>(k));
  }
  if (out.empty()) return InvalidArgumentError("--boundaries names no boundary");
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Result<FidelityReport> MeasureFidelity(const SplitModel& model,
                                       const std::vector<at::Tensor>& inputs,
                                       const FidelityOptions& o) {
  using Clock = std::chrono::steady_clock;
  const size_t n_units = model.num_units();
  if (o.codecs.empty()) return InvalidArgumentError("no codec to measure");
  if (o.boundaries.empty()) return InvalidArgumentError("no boundary to measure");
  if (o.repeats < 1 || o.warmup < 0) return InvalidArgumentError("repeats must be >= 1");
  if (inputs.empty()) return InvalidArgumentError("no input to measure on");
  for (size_t i = 0; i < o.boundaries.size(); ++i) {
    if (o.boundaries[i] >= n_units || (i > 0 && o.boundaries[i] <= o.boundaries[i - 1]))
      return InvalidArgumentError("boundaries must increase and lie in [0, N)");
  }
  if (!model.device().is_cpu()) return InvalidArgumentError("the model must be on the CPU");
  for (const at::Tensor& x : inputs) {
    SPLITINFER_RETURN_IF_ERROR(model.CheckBoundaryInput(0, x.sizes()));
    if (x.size(0) != 1 || x.scalar_type() != at::kFloat || !x.device().is_cpu())
      return InvalidArgumentError("inputs must be one float32 CPU sample each");
  }

  const size_t nc = o.codecs.size(), nb = o.boundaries.size();
  std::vector<std::vector<Cell>> cells(nc, std::vector<Cell>(nb));
  const FrameLimits limits;
  const CodecSpec raw_spec;
  FidelityReport report;
  report.inputs = static_cast<int>(inputs.size());
  report.features.resize(nb);
  for (size_t b = 0; b < nb; ++b) report.features[b].k = o.boundaries[b];
  std::set<int64_t> classes;
  double output_abs = 0;
  std::vector<double> margins;

  try {
    c10::InferenceMode guard;
    for (const at::Tensor& x : inputs) {
      const at::Tensor y = model.RunRange(x, 0, n_units);
      const int64_t top1 = y.reshape({-1}).argmax().item<int64_t>();
      classes.insert(top1);
      output_abs += y.abs().mean().item<double>();
      if (y.numel() >= 2) {
        const at::Tensor top2 = std::get<0>(y.reshape({-1}).topk(2));
        margins.push_back(top2[0].item<double>() - top2[1].item<double>());
      }

      at::Tensor h = x;
      size_t at_k = 0;
      for (size_t b = 0; b < nb; ++b) {
        const size_t k = o.boundaries[b];
        if (k != at_k) h = model.RunRange(h, at_k, k).contiguous();
        at_k = k;
        FeatureStats& fs = report.features[b];
        const at::Tensor habs = h.abs();
        fs.abs_max = std::max(fs.abs_max, habs.max().item<double>());
        fs.abs_mean += habs.mean().item<double>();
        fs.zero_fraction += (h == 0).sum().item<double>() / static_cast<double>(h.numel());
        // Tails already run for this input at k, keyed by their (bit-exact) input.
        std::vector<std::pair<at::Tensor, at::Tensor>> tails{{h, y}};
        Result<Encoded> raw = Encode(h, raw_spec);
        if (!raw.ok()) return raw.status();
        const double raw_meta = static_cast<double>(raw->meta.ByteSizeLong());

        for (size_t c = 0; c < nc; ++c) {
          Cell& cell = cells[c][b];
          if (!cell.available) continue;
          Result<Encoded> e = InvalidArgumentError("not run");
          Result<at::Tensor> d = InvalidArgumentError("not run");
          for (int r = 0; r < o.warmup + o.repeats; ++r) {
            const Clock::time_point t0 = Clock::now();
            e = Encode(h, o.codecs[c]);
            const Clock::time_point t1 = Clock::now();
            if (!e.ok()) break;
            d = Decode(*e, limits);
            const Clock::time_point t2 = Clock::now();
            if (!d.ok()) {
              return InternalError("codec " + o.codecs[c].ToString() + " at boundary " +
                                   std::to_string(k) + ": a freshly encoded tensor fails to " +
                                   "decode: " + d.status().ToString());
            }
            if (r >= o.warmup) {
              cell.encode_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
              cell.decode_ms.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
            }
          }
          if (!e.ok()) {
            cell.available = false;
            cell.reason = e.status().message();
            continue;
          }
          cell.body += static_cast<double>(e->body_bytes());
          cell.meta += std::max(0.0, static_cast<double>(e->meta.ByteSizeLong()) - raw_meta);

          const at::Tensor hd = d->view(h.sizes());
          const at::Tensor fdiff = (hd - h).abs();
          cell.feature_max = std::max(cell.feature_max, fdiff.max().item<double>());
          cell.feature_sum_mean += fdiff.mean().item<double>();

          at::Tensor yd;
          for (const auto& t : tails) {
            if (at::equal(t.first, hd)) {
              yd = t.second;
              ++report.tail_runs_reused;
              break;
            }
          }
          if (!yd.defined()) {
            yd = model.RunRange(hd, k, n_units);
            tails.emplace_back(hd, yd);
            ++report.tail_runs;
          }
          if (yd.reshape({-1}).argmax().item<int64_t>() == top1) ++cell.agree;
          const at::Tensor ydiff = (yd - y).abs();
          cell.max_err = std::max(cell.max_err, ydiff.max().item<double>());
          cell.sum_mean_err += ydiff.mean().item<double>();
          ++cell.n;
        }
      }
    }
  } catch (const std::exception& ex) {
    return InternalError("running " + model.name() + ": " + ex.what());
  }

  report.distinct_top1 = static_cast<int>(classes.size());
  for (FeatureStats& fs : report.features) {
    fs.abs_mean /= static_cast<double>(inputs.size());
    fs.zero_fraction /= static_cast<double>(inputs.size());
  }
  report.output_mean_abs = output_abs / static_cast<double>(inputs.size());
  if (!margins.empty()) {
    report.top1_margin_min = *std::min_element(margins.begin(), margins.end());
    report.top1_margin_median = Median(margins);
  }
  for (size_t c = 0; c < nc; ++c) {
    CodecFidelity cf;
    cf.name = o.codecs[c].ToString();
    for (size_t b = 0; b < nb; ++b) {
      const Cell& cell = cells[c][b];
      BoundaryFidelity f;
      f.k = o.boundaries[b];
      f.raw_bytes = BoundaryBytes(model, f.k);
      f.available = cell.available;
      f.unavailable_reason = cell.reason;
      if (cell.available && cell.n > 0) {
        const double n = static_cast<double>(cell.n);
        f.body_bytes = cell.body / n;
        f.meta_bytes = cell.meta / n;
        f.bytes = f.body_bytes + f.meta_bytes;
        f.ratio = static_cast<double>(f.raw_bytes) / f.bytes;
        f.encode_ms = Median(cell.encode_ms);
        f.decode_ms = Median(cell.decode_ms);
        const double mb = static_cast<double>(f.raw_bytes) / 1e6;
        f.encode_mbps = f.encode_ms > 0 ? mb / (f.encode_ms / 1e3) : 0.0;
        f.decode_mbps = f.decode_ms > 0 ? mb / (f.decode_ms / 1e3) : 0.0;
        f.agree = cell.agree;
        f.top1_agreement = cell.agree / n;
        f.max_abs_err = cell.max_err;
        f.mean_abs_err = cell.sum_mean_err / n;
        f.feature_max_abs_err = cell.feature_max;
        f.feature_mean_abs_err = cell.feature_sum_mean / n;
      }
      cf.boundaries.push_back(std::move(f));
    }
    report.codecs.push_back(std::move(cf));
  }
  return report;
}

double CodecShareOfSavedTime(const BoundaryFidelity& b, double rate_bps) {
  const double saved_s = (static_cast<double>(b.raw_bytes) - b.bytes) * 8.0 / rate_bps;
  if (!(saved_s > 0)) return std::numeric_limits<double>::infinity();
  return (b.encode_ms + b.decode_ms) / 1e3 / saved_s;
}

nlohmann::ordered_json FidelityJson(const SplitModel& model, const FidelityReport& report,
                                    const FidelityContext& ctx) {
  nlohmann::ordered_json j;
  j["model"] = model.name();
  j["version"] = model.version();
  j["input_size"] = ctx.input_size;
  j["input_shape"] = model.input_shape();
  j["num_units"] = model.num_units();
  j["inputs"] = report.inputs;
  j["images"] = ctx.images;
  j["image_files"] = ctx.image_files;
  j["distinct_top1"] = report.distinct_top1;
  j["output_mean_abs"] = report.output_mean_abs;
  j["top1_margin"] = {{"min", report.top1_margin_min}, {"median", report.top1_margin_median}};
  j["repeats"] = ctx.repeats;
  j["warmup"] = ctx.warmup;
  j["threads"] = ctx.threads;
  j["machine"] = {{"host", ctx.host}, {"cpu", ctx.cpu}, {"cores", ctx.cores}};
  j["date"] = ctx.date;
  j["features"] = nlohmann::ordered_json::array();
  for (const FeatureStats& fs : report.features) {
    j["features"].push_back(nlohmann::ordered_json{{"k", fs.k},
                                                   {"unit", BoundaryName(model, fs.k)},
                                                   {"abs_max", fs.abs_max},
                                                   {"abs_mean", fs.abs_mean},
                                                   {"zero_fraction", Round(fs.zero_fraction, 4)}});
  }
  j["codecs"] = nlohmann::ordered_json::array();
  for (const CodecFidelity& c : report.codecs) {
    nlohmann::ordered_json jc;
    jc["name"] = c.name;
    jc["boundaries"] = nlohmann::ordered_json::array();
    jc["unavailable"] = nlohmann::ordered_json::array();
    for (const BoundaryFidelity& b : c.boundaries) {
      if (!b.available) {
        jc["unavailable"].push_back({{"k", b.k}, {"reason", b.unavailable_reason}});
        continue;
      }
      jc["boundaries"].push_back(
          nlohmann::ordered_json{{"k", b.k},
                                 {"unit", BoundaryName(model, b.k)},
                                 {"shape", model.boundary_shape(b.k)},
                                 {"bytes", Round(b.bytes, 1)},
                                 {"body_bytes", Round(b.body_bytes, 1)},
                                 {"meta_bytes", Round(b.meta_bytes, 1)},
                                 {"raw_bytes", b.raw_bytes},
                                 {"ratio", Round(b.ratio, 4)},
                                 {"encode_ms", Round(b.encode_ms, 4)},
                                 {"decode_ms", Round(b.decode_ms, 4)},
                                 {"encode_mbps", Round(b.encode_mbps, 1)},
                                 {"decode_mbps", Round(b.decode_mbps, 1)},
                                 {"top1_agreement", b.top1_agreement},
                                 {"max_abs_err", b.max_abs_err},
                                 {"mean_abs_err", b.mean_abs_err},
                                 {"feature_max_abs_err", b.feature_max_abs_err},
                                 {"feature_mean_abs_err", b.feature_mean_abs_err}});
    }
    j["codecs"].push_back(std::move(jc));
  }
  return j;
}

std::string FidelityTable(const SplitModel& model, const FidelityReport& r,
                          const FidelityContext& ctx) {
  std::string s;
  s += Format("%s v%u, input %s, %d inputs: %s\n", model.name().c_str(), model.version(),
              ShapeString(model.input_shape()).c_str(), r.inputs, ctx.images.c_str());
  s += Format(
      "reference: %d distinct top-1 classes, mean |output| %.4g, top-1 margin min %.4g median "
      "%.4g; CPU, %d thread%s, %d repeats after %d warm-up; tails run %d, reused %d "
      "(bit-identical decode)\n",
      r.distinct_top1, r.output_mean_abs, r.top1_margin_min, r.top1_margin_median, ctx.threads,
      ctx.threads == 1 ? "" : "s", ctx.repeats, ctx.warmup, r.tail_runs, r.tail_runs_reused);
  size_t uw = 5, sw = 5;
  for (size_t k = 0; k < model.num_units(); ++k) {
    uw = std::max(uw, BoundaryName(model, k).size());
    sw = std::max(sw, ShapeString(model.boundary_shape(k)).size());
  }
  const int iu = static_cast<int>(uw), is = static_cast<int>(sw);
  s += Format("\nfloat32 tensor at each boundary\n%3s  %-*s  %-*s  %10s  %10s  %7s\n", "k", iu,
              "unit", is, "shape", "max |h|", "mean |h|", "zeros");
  for (const FeatureStats& fs : r.features) {
    s += Format("%3zu  %-*s  %-*s  %10.3g  %10.3g  %6.1f%%\n", fs.k, iu,
                BoundaryName(model, fs.k).c_str(), is,
                ShapeString(model.boundary_shape(fs.k)).c_str(), fs.abs_max, fs.abs_mean,
                100.0 * fs.zero_fraction);
  }
  for (const CodecFidelity& c : r.codecs) {
    s += "\n" + c.name + "\n";
    s += Format("%3s  %-*s  %-*s  %10s  %11s  %7s  %8s  %8s  %8s  %8s  %6s  %10s  %10s  %9s\n", "k",
                iu, "unit", is, "shape", "fp32 B", "bytes", "ratio", "enc ms", "dec ms", "enc MB/s",
                "dec MB/s", "top-1", "max err", "mean err", "%saved10M");
    for (const BoundaryFidelity& b : c.boundaries) {
      const std::string unit = BoundaryName(model, b.k);
      const std::string shape = ShapeString(model.boundary_shape(b.k));
      if (!b.available) {
        s += Format("%3zu  %-*s  %-*s  %10lld  unavailable: %s\n", b.k, iu, unit.c_str(), is,
                    shape.c_str(), static_cast<long long>(b.raw_bytes),
                    b.unavailable_reason.c_str());
        continue;
      }
      const double share = CodecShareOfSavedTime(b, 10e6);
      const std::string share_s = std::isfinite(share) ? Format("%.2f%%", 100.0 * share) : "-";
      s += Format(
          "%3zu  %-*s  %-*s  %10lld  %11.1f  %7.3f  %8.3f  %8.3f  %8.0f  %8.0f  %6.3f  %10.3g  "
          "%10.3g  %9s\n",
          b.k, iu, unit.c_str(), is, shape.c_str(), static_cast<long long>(b.raw_bytes), b.bytes,
          b.ratio, b.encode_ms, b.decode_ms, b.encode_mbps, b.decode_mbps, b.top1_agreement,
          b.max_abs_err, b.mean_abs_err, share_s.c_str());
    }
  }
  s += "\nbytes: body + codec metadata beyond a float32 frame (mean); %saved10M: (encode + "
       "decode) / transfer time saved at 10 Mbit/s (target < 5%)\n";
  return s;
}

}  // namespace splitinfer

// profile_model: measures each split unit of a model alone, on its real input, and prints what
// the cost model needs per unit (output shape and bytes, parameter bytes, FLOPs, time).
//
//   profile_model --model resnet18 [--version 1] [--input-size 224] [--width-mult 1]
//                 [--num-classes 1000] [--repeats 20] [--warmup 3] [--threads 1]
//                 [--min-sample-ms 0] [--json]
//   profile_model --torchscript FILE [--input-shape 3,224,224] [--model NAME] ...
//
// The input is one sample (batch 1) of seeded N(0, 1) values. Unit i runs on the output of
// units 1..i-1 for that input; each timed run is RunRange(x, i-1, i) followed by a device
// synchronisation, after --warmup untimed runs. Times are wall-clock milliseconds; the JSON
// reports the median and the 10th and 90th percentiles (linear interpolation between ranks).
// --min-sample-ms T makes each timed sample r back-to-back runs lasting >= T ms (r from the
// warm-up runs) and records their mean: under a CPU bandwidth limit (a cgroup quota, the CPU
// throttle of scripts/make_unit_profiles.sh) one short run either fits in the quota or waits out
// the period, and only an average over several periods measures the throttled speed.
//
// Exit codes: 0 ok, 2 bad options (including an unknown model or an input it cannot take),
// 1 anything else. Single-threaded: LibTorch's intra-op pool gets --threads threads.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/host_info.h"
#include "common/model_zoo.h"
#include "common/split_model.h"
#include "common/torchscript_model.h"
#include "common/zoo_cli.h"

namespace splitinfer {
namespace {

constexpr int kExitBadOptions = 2;
constexpr int kExitFailure = 1;

struct ProfileOptions {
  std::string model;
  uint32_t version = 1;
  ZooOptions zoo;
  std::string torchscript;
  std::vector<int64_t> input_shape;
  int repeats = 20;
  int warmup = 3;
  int threads = 1;
  double min_sample_ms = 0.0;
  std::string device = "auto";
  bool json = false;
};

struct UnitTiming {
  double median_ms = 0, p10_ms = 0, p90_ms = 0;
};

// q-quantile of sorted values, interpolating linearly between ranks (numpy's default).
double Quantile(const std::vector<double>& sorted, double q) {
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (pos - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

UnitTiming TimeUnit(const SplitModel& model, size_t unit, const at::Tensor& x,
                    const ProfileOptions& o, at::Tensor* output) {
  using Clock = std::chrono::steady_clock;
  const at::Device device = model.device();
  const Clock::time_point warm_start = Clock::now();
  for (int i = 0; i < o.warmup; ++i) model.RunRange(x, unit, unit + 1);
  SynchronizeDevice(device);
  int runs = 1;  // per timed sample
  if (o.min_sample_ms > 0.0) {
    const double warm_ms =
        std::chrono::duration<double, std::milli>(Clock::now() - warm_start).count();
    const double per_run = o.warmup > 0 ? warm_ms / o.warmup : 0.0;
    runs = per_run > 0.0 ? static_cast<int>(std::ceil(o.min_sample_ms / per_run)) : 1;
    runs = std::clamp(runs, 1, 100000);
  }
  std::vector<double> ms;
  for (int i = 0; i < o.repeats; ++i) {
    const Clock::time_point start = Clock::now();
    for (int r = 0; r < runs; ++r) *output = model.RunRange(x, unit, unit + 1);
    SynchronizeDevice(device);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count() / runs);
  }
  std::sort(ms.begin(), ms.end());
  return {Quantile(ms, 0.5), Quantile(ms, 0.1), Quantile(ms, 0.9)};
}

// Rounds to 4 decimals (0.1 microsecond); dividing (not multiplying by 1e-4) keeps the shortest
// decimal form, so 0.1137 prints as 0.1137.
double Round4(double v) { return std::round(v * 1e4) / 1e4; }

// Keys in the documented order (ordered_json keeps insertion order).
nlohmann::ordered_json ToJson(const SplitModel& m, const std::vector<UnitTiming>& t,
                              const ProfileOptions& o) {
  nlohmann::ordered_json j;
  j["model"] = m.name();
  j["version"] = m.version();
  j["input_shape"] = m.input_shape();
  j["input_bytes"] = m.input_bytes();
  j["compute_device"] = DeviceName(m.device());
  j["threads"] = o.threads;
  if (const double cpus = CgroupCpuLimit(); cpus > 0) j["cpu_limit"] = cpus;
  j["host"] = HostName();
  j["date"] = NowUtcIso8601();
  j["repeats"] = o.repeats;
  if (o.min_sample_ms > 0.0) j["min_sample_ms"] = o.min_sample_ms;
  j["units"] = nlohmann::ordered_json::array();
  for (size_t i = 0; i < m.num_units(); ++i) {
    const UnitInfo& u = m.unit(i);
    nlohmann::ordered_json unit{{"index", i + 1},
                                {"name", u.name},
                                {"output_shape", u.output_shape},
                                {"output_bytes", u.output_bytes},
                                {"param_bytes", u.param_bytes},
                                {"flops", u.flops},
                                {"time_ms_median", Round4(t[i].median_ms)},
                                {"time_ms_p10", Round4(t[i].p10_ms)},
                                {"time_ms_p90", Round4(t[i].p90_ms)}};
    // Kernel shapes (the zoo knows them; a TorchScript model does not): one compact row per
    // layer, [kind, in, out, kernel, stride, groups, out_h, out_w].
    if (!u.layers.empty()) {
      unit["layers"] = nlohmann::ordered_json::array();
      for (const LayerShape& l : u.layers)
        unit["layers"].push_back(
            nlohmann::ordered_json::array({LayerKindName(l.kind), l.in_channels, l.out_channels,
                                           l.kernel, l.stride, l.groups, l.out_h, l.out_w}));
    }
    j["units"].push_back(std::move(unit));
  }
  return j;
}

void PrintTable(const SplitModel& m, const std::vector<UnitTiming>& t, const ProfileOptions& o) {
  std::printf("%s v%u  input %s (%lld bytes)  %s, %d thread%s, %d repeats after %d warm-up\n",
              m.name().c_str(), m.version(), ShapeString(m.input_shape()).c_str(),
              static_cast<long long>(m.input_bytes()), DeviceName(m.device()).c_str(), o.threads,
              o.threads == 1 ? "" : "s", o.repeats, o.warmup);
  size_t name_w = 4, shape_w = 12;
  for (const UnitInfo& u : m.units()) {
    name_w = std::max(name_w, u.name.size());
    shape_w = std::max(shape_w, ShapeString(u.output_shape).size());
  }
  const int nw = static_cast<int>(name_w), sw = static_cast<int>(shape_w);
  std::printf("%3s  %-*s  %-*s  %12s  %12s  %10s  %10s  %9s  %9s\n", "#", nw, "unit", sw,
              "output shape", "out bytes", "param bytes", "MFLOPs", "median ms", "p10 ms",
              "p90 ms");
  int64_t params = 0, flops = 0;
  double total_ms = 0;
  bool flops_known = true;
  for (size_t i = 0; i < m.num_units(); ++i) {
    const UnitInfo& u = m.unit(i);
    char mflops[32] = "-";
    if (u.flops >= 0) std::snprintf(mflops, sizeof(mflops), "%.2f", u.flops / 1e6);
    std::printf("%3zu  %-*s  %-*s  %12lld  %12lld  %10s  %10.3f  %9.3f  %9.3f\n", i + 1, nw,
                u.name.c_str(), sw, ShapeString(u.output_shape).c_str(),
                static_cast<long long>(u.output_bytes), static_cast<long long>(u.param_bytes),
                mflops, t[i].median_ms, t[i].p10_ms, t[i].p90_ms);
    params += u.param_bytes;
    flops += u.flops;
    flops_known = flops_known && u.flops >= 0;
    total_ms += t[i].median_ms;
  }
  char mflops[32] = "-";
  if (flops_known) std::snprintf(mflops, sizeof(mflops), "%.2f", flops / 1e6);
  std::printf("%3s  %-*s  %-*s  %12s  %12lld  %10s  %10.3f\n", "", nw, "total", sw, "", "",
              static_cast<long long>(params), mflops, total_ms);
}

int Run(const ProfileOptions& o, bool model_given) {
  Result<std::shared_ptr<SplitModel>> built = Status(StatusCode::kUnknown, "not built");
  if (!o.torchscript.empty()) {
    const std::string name =
        model_given ? o.model : std::filesystem::path(o.torchscript).stem().string();
    built = LoadTorchScriptModel(o.torchscript, name, o.version, o.input_shape);
  } else {
    built = BuildZooModel(o.model, o.version, o.zoo);
  }
  if (!built.ok()) {
    std::cerr << "profile_model: " << built.status() << "\n";
    const StatusCode code = built.status().code();
    return code == StatusCode::kInvalidArgument || code == StatusCode::kNotFound ? kExitBadOptions
                                                                                 : kExitFailure;
  }
  std::shared_ptr<SplitModel> model = *built;

  at::Device device = PreferredDevice();
  if (o.device == "cpu") device = at::Device(at::kCPU);
  if (o.device == "cuda") {
    if (!PreferredDevice().is_cuda()) {
      std::cerr << "profile_model: --device cuda but no CUDA device is available\n";
      return kExitBadOptions;
    }
    device = at::Device(at::kCUDA, 0);
  }

  std::vector<UnitTiming> timings;
  try {
    model->To(device);
    std::vector<int64_t> shape{1};
    shape.insert(shape.end(), model->input_shape().begin(), model->input_shape().end());
    at::Generator gen = at::detail::createCPUGenerator(1);
    at::Tensor x = at::randn(shape, gen).to(device);
    for (size_t i = 0; i < model->num_units(); ++i) {
      at::Tensor y;
      timings.push_back(TimeUnit(*model, i, x, o, &y));
      x = y;
    }
  } catch (const std::exception& e) {
    std::cerr << "profile_model: running " << model->name() << ": " << e.what() << "\n";
    return kExitFailure;
  }

  if (o.json) {
    std::cout << ToJson(*model, timings, o).dump(2) << "\n";
  } else {
    PrintTable(*model, timings, o);
  }
  return 0;
}

}  // namespace
}  // namespace splitinfer

int main(int argc, char** argv) {
  using splitinfer::ProfileOptions;
  ProfileOptions o;
  CLI::App app{"Profiles each split unit of a model: shapes, sizes, FLOPs and time."};
  auto* model_opt = app.add_option("--model", o.model,
                                   "zoo model (alexnet, vgg16, resnet18, mobilenetv2, mlp); "
                                   "with --torchscript, the name to report");
  app.add_option("--version", o.version, "model version (seeds the zoo weights)")->default_val(1);
  splitinfer::AddZooOptions(app, &o.zoo);
  auto* ts_opt = app.add_option("--torchscript", o.torchscript,
                                "TorchScript file whose top-level children are the units");
  app.add_option("--input-shape", o.input_shape,
                 "with --torchscript: input shape without batch, e.g. 3,224,224 (default: "
                 "the file's splitinfer_input_shape attribute)")
      ->delimiter(',')
      ->needs(ts_opt)
      ->check(CLI::PositiveNumber);
  app.add_option("--repeats", o.repeats, "timed runs per unit")
      ->default_val(20)
      ->check(CLI::Range(1, 1000000));
  app.add_option("--warmup", o.warmup, "untimed runs per unit before timing")
      ->default_val(3)
      ->check(CLI::Range(0, 1000000));
  app.add_option("--min-sample-ms", o.min_sample_ms,
                 "each timed sample: back-to-back runs lasting at least this long, averaged "
                 "(needs --warmup >= 1)")
      ->check(CLI::Range(0.0, 60000.0));
  app.add_option("--threads", o.threads, "LibTorch intra-op threads")
      ->default_val(1)
      ->check(CLI::Range(1, 1024));
  app.add_option("--device", o.device, "auto (CUDA when available), cpu or cuda")
      ->default_val("auto")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_flag("--json", o.json, "print JSON (the schema of data/profiles/*.json)");
  try {
    app.parse(argc, argv);
    if (model_opt->count() == 0 && ts_opt->count() == 0) {
      throw CLI::ValidationError("one of --model or --torchscript is required");
    }
    if (o.min_sample_ms > 0.0 && o.warmup < 1)
      throw CLI::ValidationError("--min-sample-ms needs --warmup >= 1 (it sizes the samples)");
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : splitinfer::kExitBadOptions;
  }
  at::set_num_threads(o.threads);
  return splitinfer::Run(o, model_opt->count() > 0);
}

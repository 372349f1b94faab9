// Exit statistics and profile JSON (see stats.h).
#include "common/exits/stats.h"

#include <ATen/CPUGeneratorImpl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <string>

#include <torch/torch.h>

#include "common/host_info.h"

namespace splitinfer {
namespace exits {
namespace {

double Quantile(const std::vector<double>& sorted, double q) {
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (pos - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

double Round(double v, double scale) { return std::round(v * scale) / scale; }

}  // namespace

Timing TimeRuns(const std::function<void()>& run, int repeats, int warmup,
                const at::Device& device) {
  using Clock = std::chrono::steady_clock;
  for (int i = 0; i < warmup; ++i) run();
  SynchronizeDevice(device);
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) {
    const Clock::time_point start = Clock::now();
    run();
    SynchronizeDevice(device);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::sort(ms.begin(), ms.end());
  return {Quantile(ms, 0.5), Quantile(ms, 0.1), Quantile(ms, 0.9)};
}

Result<BranchyProfile> ProfileBranchy(const BranchyModel& model, int repeats, int warmup) {
  if (repeats < 1 || warmup < 0) return InvalidArgumentError("repeats >= 1, warmup >= 0");
  BranchyProfile p;
  p.repeats = repeats;
  try {
    c10::InferenceMode guard;
    std::vector<int64_t> shape{1};
    shape.insert(shape.end(), model.input_shape().begin(), model.input_shape().end());
    at::Generator gen = at::detail::createCPUGenerator(1);
    at::Tensor x = at::rand(shape, gen).to(model.device());
    std::vector<at::Tensor> boundary{x};
    for (size_t i = 0; i < model.num_units(); ++i) {
      at::Tensor y;
      p.units.push_back(
          TimeRuns([&] { y = model.RunRange(x, i, i + 1); }, repeats, warmup, model.device()));
      x = y;
      boundary.push_back(x);
    }
    for (size_t e = 0; e < model.num_exits(); ++e) {
      if (e + 1 == model.num_exits()) {
        p.heads.push_back(Timing{});
        continue;
      }
      const at::Tensor& b = boundary[model.exit_after_unit(e)];
      Status st;
      p.heads.push_back(
          TimeRuns([&] { st = model.RunExit(e, b).status(); }, repeats, warmup, model.device()));
      SPLITINFER_RETURN_IF_ERROR(st);
    }
  } catch (const std::exception& e) {
    return InternalError(std::string("profiling digits_branchy: ") + e.what());
  }
  return p;
}

nlohmann::ordered_json ExitStatsJson(const BranchyModel& model, const DigitsSplit& split,
                                     uint64_t seed, const std::vector<at::Tensor>& test_logits,
                                     const BranchyProfile& profile) {
  nlohmann::ordered_json j;
  j["model"] = model.name();
  j["dataset"] = "digits (UCI, sklearn copy)";
  j["seed"] = seed;
  j["train_size"] = split.train.size();
  j["test_size"] = split.test.size();
  j["num_units"] = model.num_units();
  j["exits"] = nlohmann::ordered_json::array();
  std::vector<at::Tensor> conf, entropy, pred;
  for (size_t e = 0; e < model.num_exits(); ++e) {
    const ExitInfo& info = model.exit(e);
    j["exits"].push_back(nlohmann::ordered_json{
        {"index", e},
        {"after_unit", info.after_unit},
        {"head_param_bytes", info.param_bytes},
        {"head_flops", info.flops},
        {"head_time_ms", Round(profile.heads.at(e).median_ms, 1e4)},
        {"test_accuracy", Round(Accuracy(test_logits[e], split.test.labels), 1e6)}});
    conf.push_back(BranchyModel::Confidence(test_logits[e], ConfidenceKind::kMaxSoftmax)
                       .to(at::kDouble)
                       .contiguous());
    entropy.push_back(BranchyModel::NormalizedEntropy(test_logits[e]).to(at::kDouble).contiguous());
    pred.push_back(test_logits[e].argmax(1).contiguous());
  }
  j["samples"] = nlohmann::ordered_json::array();
  const at::Tensor labels = split.test.labels.contiguous();
  for (int64_t i = 0; i < split.test.size(); ++i) {
    nlohmann::ordered_json s;
    s["label"] = labels.data_ptr<int64_t>()[i];
    s["exits"] = nlohmann::ordered_json::array();
    for (size_t e = 0; e < model.num_exits(); ++e) {
      s["exits"].push_back(
          nlohmann::ordered_json{{"conf", Round(conf[e].data_ptr<double>()[i], 1e6)},
                                 {"entropy", Round(entropy[e].data_ptr<double>()[i], 1e6)},
                                 {"pred", pred[e].data_ptr<int64_t>()[i]}});
    }
    j["samples"].push_back(std::move(s));
  }
  return j;
}

nlohmann::ordered_json ProfileJson(const BranchyModel& m, const BranchyProfile& p, int threads) {
  nlohmann::ordered_json j;
  j["model"] = m.name();
  j["version"] = m.version();
  j["input_shape"] = m.input_shape();
  j["input_bytes"] = m.input_bytes();
  j["compute_device"] = DeviceName(m.device());
  j["threads"] = threads;
  j["host"] = HostName();
  j["date"] = NowUtcIso8601();
  j["repeats"] = p.repeats;
  j["units"] = nlohmann::ordered_json::array();
  for (size_t i = 0; i < m.num_units(); ++i) {
    const UnitInfo& u = m.unit(i);
    j["units"].push_back(
        nlohmann::ordered_json{{"index", i + 1},
                               {"name", u.name},
                               {"output_shape", u.output_shape},
                               {"output_bytes", u.output_bytes},
                               {"param_bytes", u.param_bytes},
                               {"flops", u.flops},
                               {"time_ms_median", Round(p.units[i].median_ms, 1e4)},
                               {"time_ms_p10", Round(p.units[i].p10_ms, 1e4)},
                               {"time_ms_p90", Round(p.units[i].p90_ms, 1e4)}});
  }
  return j;
}

ExitPolicyResult EvaluateExitPolicy(const BranchyModel& model,
                                    const std::vector<at::Tensor>& logits, const at::Tensor& labels,
                                    const std::vector<double>& thresholds, ConfidenceKind kind) {
  ExitPolicyResult r;
  const size_t exits = model.num_exits();
  r.exit_counts.assign(exits, 0);
  const int64_t n = labels.size(0);
  if (n == 0 || logits.size() != exits || thresholds.size() != exits) return r;
  std::vector<at::Tensor> conf, pred;
  for (size_t e = 0; e < exits; ++e) {
    conf.push_back(BranchyModel::Confidence(logits[e], kind).to(at::kDouble).contiguous());
    pred.push_back(logits[e].argmax(1).contiguous());
  }
  const at::Tensor l = labels.contiguous();
  int64_t right = 0;
  double depth = 0;
  for (int64_t i = 0; i < n; ++i) {
    size_t e = 0;
    while (e + 1 < exits && !(conf[e].data_ptr<double>()[i] >= thresholds[e])) ++e;
    ++r.exit_counts[e];
    depth += static_cast<double>(model.exit_after_unit(e));
    right += pred[e].data_ptr<int64_t>()[i] == l.data_ptr<int64_t>()[i] ? 1 : 0;
  }
  r.accuracy = static_cast<double>(right) / static_cast<double>(n);
  r.mean_exit_unit = depth / static_cast<double>(n);
  return r;
}

}  // namespace exits
}  // namespace splitinfer

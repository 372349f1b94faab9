// Per-sample exit statistics and the per-unit profile of a trained BranchyModel, as JSON for the
// exit-aware controllers (common/decision/) and the cost model. Schemas: docs/exits.md
// (data/exits/digits_branchy_stats.json) and profile_model's (data/profiles/*.json).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "common/exits/branchy_model.h"
#include "common/exits/digits.h"
#include "common/exits/train.h"
#include "common/status.h"

namespace splitinfer {
namespace exits {

// Wall-clock milliseconds of one sample (batch 1) through each unit alone and each exit head
// alone (the final exit's head is the identity: 0), median and 10th/90th percentiles of
// `repeats` runs after `warmup`, on the model's device with the current intra-op threads.
struct Timing {
  double median_ms = 0, p10_ms = 0, p90_ms = 0;
};
// `run` timed `repeats` times after `warmup` untimed calls, each followed by a synchronisation of
// `device`: the median and the 10th / 90th percentiles (linear interpolation between ranks).
Timing TimeRuns(const std::function<void()>& run, int repeats, int warmup,
                const at::Device& device = at::kCPU);
struct BranchyProfile {
  std::vector<Timing> units;
  std::vector<Timing> heads;
  int repeats = 0;
};
Result<BranchyProfile> ProfileBranchy(const BranchyModel& model, int repeats, int warmup);

// {"model", "dataset", "seed", "train_size", "test_size", "num_units", "exits": [...],
//  "samples": [{"label", "exits": [{"conf", "entropy", "pred"}, ...]}, ...]} for the test split;
// test_logits from EvaluateExits on split.test. conf = max softmax, entropy = normalized entropy,
// both rounded to 6 decimals.
nlohmann::ordered_json ExitStatsJson(const BranchyModel& model, const DigitsSplit& split,
                                     uint64_t seed, const std::vector<at::Tensor>& test_logits,
                                     const BranchyProfile& profile);

// profile_model's JSON for the chain without heads (model, version, input_shape, input_bytes,
// compute_device, threads, host, date, repeats, units[index, name, output_shape, output_bytes,
// param_bytes, flops, time_ms_median, time_ms_p10, time_ms_p90]).
nlohmann::ordered_json ProfileJson(const BranchyModel& model, const BranchyProfile& profile,
                                   int threads);

// What a common exit policy gives on a labelled set, offline from every exit's logits: each
// sample answers at the first exit whose confidence >= thresholds[e] (the last exit always
// answers, whatever its threshold).
struct ExitPolicyResult {
  double accuracy = 0;
  double mean_exit_unit = 0;         // mean after_unit of the answering exit ("depth")
  std::vector<int64_t> exit_counts;  // samples answered per exit
};
ExitPolicyResult EvaluateExitPolicy(const BranchyModel& model,
                                    const std::vector<at::Tensor>& logits, const at::Tensor& labels,
                                    const std::vector<double>& thresholds, ConfidenceKind kind);

}  // namespace exits
}  // namespace splitinfer

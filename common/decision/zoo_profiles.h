// Analytic profiles of the zoo models (alexnet, vgg16, resnet18, mobilenetv2, mlp) for when no
// measured profile (data/profiles/<model>.json from profile_model) is at hand: output bytes,
// parameter bytes and FLOPs counted from the architectures in common/model_zoo.h at 224x224 input
// and 1000 classes, and a time from the FLOPs at an assumed workstation throughput. Measured
// profiles replace these wherever they exist.
#pragma once

#include <string>
#include <vector>

#include "common/decision/cost_model.h"
#include "common/status.h"

namespace splitinfer::decision {

struct AnalyticProfileOptions {
  double flops_per_s = 100e9;  // workstation throughput the times are derived from
  double unit_overhead_ms = 0.05;
  int mlp_width = 1024;
  int mlp_layers = 8;
};

const std::vector<std::string>& AnalyticProfileNames();
// kNotFound for a name outside AnalyticProfileNames().
Result<ModelProfile> AnalyticProfile(const std::string& model,
                                     const AnalyticProfileOptions& options = {});

}  // namespace splitinfer::decision

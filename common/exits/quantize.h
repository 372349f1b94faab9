// Int8 post-training quantization of a trained BranchyModel, run on LibTorch's real int8 CPU
// kernels (issue 10, item 3: a quantized member of the bandit's variant family). See
// docs/selection.md, "The variants".
//
// Recipe (static PTQ, no retraining):
//   - each conv's batch norm is folded into the conv (w' = w g / sqrt(v + eps),
//     b' = beta - mean g / sqrt(v + eps)), so a conv unit is conv + relu + max-pool;
//   - weights (conv and linear) are quantized per output channel, symmetric int8:
//     scale_c = max|w_c| / 127, q = clamp(round(w / scale_c), -127, 127); biases stay float32
//     (the int8 kernels requantize them to int32 at input scale x weight scale);
//   - activations are quantized per tensor, asymmetric uint8, at every point where a tensor
//     enters or leaves an int8 kernel: the model input, each conv unit's output (after relu, so
//     its range starts at 0), each exit head's logits and the classifier's logits. Ranges are
//     the min/max over the calibration set (the TRAINING split only; the range is widened to
//     include 0): scale = (max - min) / 255, zero point = round(-min / scale);
//   - execution: quantize the float input, then quantized::conv2d_relu, quantized max-pool,
//     quantized adaptive avg-pool (heads) and quantized::linear all on quint8 tensors, and
//     dequantize the logits (float32 [n, 10]) at the exits.
//
// The int8 kernels are LibTorch's: the quantized engine is ONEDNN on x86 (FBGEMM is not in
// Debian's LibTorch 1.13.1), else QNNPACK. at::globalContext().setQEngine is process-wide;
// QuantizeBranchy sets it to the chosen engine before packing the weights.
//
// Thread safety: an Int8BranchyModel is immutable once built; its Run* methods may run
// concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "common/exits/branchy_model.h"
#include "common/exits/digits.h"
#include "common/exits/stats.h"
#include "common/status.h"

namespace splitinfer {
namespace exits {

// Symmetric per-output-channel int8 weights: q [out, ...] int8 in [-127, 127] and
// scale [out] float64 (> 0), w ~ q * scale[c]. A channel that is all zeros gets scale 1 (its q
// is exactly 0).
struct Int8Weight {
  at::Tensor q;      // int8, the weight's shape
  at::Tensor scale;  // float64 [out]
};
// Errors: kInvalidArgument for an undefined, non-float, 0-d or empty tensor or a non-finite
// weight.
Result<Int8Weight> QuantizeWeightPerChannel(const at::Tensor& w);
// q * scale[c] as float32, the weight's shape.
at::Tensor DequantizeWeight(const Int8Weight& w);

// Per-tensor asymmetric uint8 parameters of an activation: x ~ (q - zero_point) * scale.
struct ActivationQParams {
  double scale = 1.0;
  int64_t zero_point = 0;
  double min = 0, max = 0;  // the calibrated range (before widening to include 0)
};
// From a calibrated range [min, max] (widened to include 0). Errors: kInvalidArgument for a
// non-finite bound, min > max, or a zero range (min == max == 0: nothing to scale; `what`
// names the tensor in the message).
Result<ActivationQParams> ChooseActivationQParams(double min, double max, const std::string& what);

struct QuantizeOptions {
  // "auto" (ONEDNN when LibTorch has it, else QNNPACK), "onednn", "qnnpack" or "fbgemm".
  std::string engine = "auto";
  int64_t calibration_batch = 256;  // samples per calibration forward pass
};

class Int8BranchyModel {
 public:
  struct Impl;
  explicit Int8BranchyModel(std::unique_ptr<Impl> impl);
  ~Int8BranchyModel();

  const std::string& name() const;    // "digits_branchy_int8"
  const std::string& engine() const;  // "onednn" or "qnnpack" (the kernels that run it)
  size_t num_units() const;
  size_t num_exits() const;
  size_t exit_after_unit(size_t e) const;
  int64_t input_size() const;  // H = W of the float model input

  // Bytes of what the int8 model stores per unit / exit head: int8 weights (1 byte each),
  // float32 biases (the folded batch norm for the convs), one float32 scale per output channel,
  // and 8 bytes (float32 scale + int32 zero point) per calibrated activation the unit or head
  // quantizes to (unit 1 also the input's).
  int64_t unit_param_bytes(size_t i) const;  // i in [0, num_units())
  int64_t head_param_bytes(size_t e) const;  // 0 for the final exit
  // Bytes of one sample's boundary tensor after unit i: quint8, one byte per element (the
  // classifier's output is dequantized: 10 float32 logits, 40 bytes).
  int64_t unit_output_bytes(size_t i) const;
  // The calibrated activation quantization points, in order: "input", "unit1".."unit4",
  // "exit0".."exit2", "classifier".
  const std::vector<std::pair<std::string, ActivationQParams>>& activations() const;
  int64_t calibration_samples() const;

  // Float input [n,1,H,W] (PrepareDigitsInput) -> quint8 with the input's parameters.
  at::Tensor QuantizeInput(const at::Tensor& x) const;
  // Unit i (0-based) on a quint8 boundary tensor: quint8 out (the classifier's: quint8 logits).
  at::Tensor RunUnit(size_t i, const at::Tensor& q) const;
  // Head of exit e (not the last) on the quint8 boundary tensor at exit_after_unit(e):
  // quint8 logits [n, 10].
  at::Tensor RunHead(size_t e, const at::Tensor& q) const;
  // Float logits [n, 10] of every exit for a float input [n,1,H,W], the chain run once on int8
  // kernels. Errors: kInvalidArgument for a bad input; kInternal when LibTorch throws.
  Result<std::vector<at::Tensor>> ForwardAllExits(const at::Tensor& x) const;

 private:
  std::unique_ptr<Impl> impl_;
};

// Quantizes a trained `model` (CPU, eval mode; read, not modified) with activation ranges
// calibrated on `calibration` (images [n,1,8,8] as LoadDigits gives them: pass the TRAINING
// split). Errors: kInvalidArgument for a null or untrained model (every batch norm's
// num_batches_tracked is 0: it was never trained nor loaded from a trained file), an empty
// calibration set, a zero calibrated range, an unknown engine or non-finite weights;
// kUnimplemented when LibTorch has no int8 engine named; kInternal when LibTorch throws.
Result<std::shared_ptr<Int8BranchyModel>> QuantizeBranchy(BranchyModel* model,
                                                          const DigitsData& calibration,
                                                          const QuantizeOptions& options = {});

// Float logits of every exit for images [n,1,8,8] (like EvaluateExits).
Result<std::vector<at::Tensor>> EvaluateInt8Exits(const Int8BranchyModel& model,
                                                  const DigitsData& data);

// Per-unit and per-head times of one sample on the int8 kernels, as ProfileBranchy measures
// the float model: unit 1 includes quantizing the float input, the classifier dequantizing its
// logits, each head dequantizing its logits; units 2..4 run quint8 to quint8.
Result<BranchyProfile> ProfileInt8Branchy(const Int8BranchyModel& model, int repeats, int warmup);

// The same schemas as ExitStatsJson and ProfileJson (stats.h), filled from the int8 model:
// "model" "digits_branchy_int8", head_param_bytes / param_bytes / output_bytes of the int8
// model, its logits and times; then one extra key, "quantization" (engine, scheme, calibration
// set and size, activation ranges, "time_source").
nlohmann::ordered_json Int8ExitStatsJson(const BranchyModel& float_model,
                                         const Int8BranchyModel& model, const DigitsSplit& split,
                                         uint64_t seed, const std::vector<at::Tensor>& test_logits,
                                         const BranchyProfile& profile);
nlohmann::ordered_json Int8ProfileJson(const BranchyModel& float_model,
                                       const Int8BranchyModel& model, const BranchyProfile& profile,
                                       int threads);
nlohmann::ordered_json QuantizationJson(const Int8BranchyModel& model);

}  // namespace exits
}  // namespace splitinfer

// BranchyModel: a SplitModel (a chain of units, boundary k = units 1..k ran) with early-exit
// heads after chosen units, in the manner of BranchyNet (Teerapittayanon et al., ICPR 2016) and
// EdgeML's 4-exit network. See docs/exits.md.
//
// digits_branchy (the only architecture so far), for the 8x8 digits upsampled to 32x32
// (PrepareDigitsInput); c = options.width (default 8):
//   unit 1 conv1       conv3x3(1->c)   + bn + relu + max-pool 2  -> [c,16,16]
//   unit 2 conv2       conv3x3(c->2c)  + bn + relu + max-pool 2  -> [2c,8,8]
//   unit 3 conv3       conv3x3(2c->4c) + bn + relu + max-pool 2  -> [4c,4,4]
//   unit 4 conv4       conv3x3(4c->8c) + bn + relu + max-pool 2  -> [8c,2,2]
//   unit 5 classifier  flatten + linear(32c -> 10)               -> [10] (the final exit)
// Exits 0, 1, 2 sit after units 1, 2, 3: each head is adaptive avg-pool to 2x2, flatten and
// linear(4C -> 10) on its unit's [C,H,W] output. Exit 3 is the final classifier itself (after
// unit 5; its head is the identity). Each exit's logits are [n, 10].
//
// Weights come from a seed (LibTorch's default init, drawn from the global CPU generator seeded
// with it under a process-wide lock, whose previous state is then restored) and are then
// trained (train.h) or loaded (LoadWeights). Training draws nothing from LibTorch's generators.
//
// Thread safety: like SplitModel once trained and in eval mode (RunRange, RunExit,
// RunWithExits may run concurrently). Training (train.h) needs exclusive use.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "common/split_model.h"
#include "common/status.h"

namespace torch {
namespace nn {
class Module;
}
}  // namespace torch

namespace splitinfer {
namespace exits {

// How sure an exit is of its answer. Both are "higher is surer", in [0, 1]:
//   kMaxSoftmax  max_i softmax(logits)_i                   (in [1/C, 1])
//   kEntropy     1 - H(softmax(logits)) / log(C)            (1 - normalized entropy)
enum class ConfidenceKind { kMaxSoftmax, kEntropy };
const char* ConfidenceKindName(ConfidenceKind kind);  // "max_softmax", "entropy"

// An exit answers when its confidence >= its threshold. Any threshold > 1 disables an exit
// (confidence never exceeds 1); this is the conventional value. A threshold <= 0 makes an
// exit always answer.
constexpr double kExitDisabled = 2.0;

struct BranchyOptions {
  uint64_t seed = 1;        // weight init before training
  int64_t width = 8;        // c in the table above
  int64_t input_size = 32;  // H = W of the model input (PrepareDigitsInput's output)
  uint32_t version = 1;     // the SplitModel version (variants of the task served side by side)
};

struct ExitInfo {
  size_t after_unit = 0;    // 1-based unit after which the exit sits (its input boundary)
  int64_t param_bytes = 0;  // head parameters (0 for the final exit)
  int64_t flops = 0;        // head multiply-adds x 2, one sample (0 for the final exit)
};

// What RunWithExits returns: either an exit answered (exit >= 0; tensor = its logits [n, 10],
// boundary = its after_unit) or none did (exit == -1; tensor = the boundary tensor at `to`,
// boundary = to).
struct ExitOutcome {
  int exit = -1;
  size_t boundary = 0;
  at::Tensor tensor;
};

class BranchyModel final : public SplitModel {
 public:
  ~BranchyModel() override;

  size_t num_exits() const { return exits_.size(); }
  const ExitInfo& exit(size_t e) const { return exits_.at(e); }
  // 1-based unit index after which exit e sits; the last exit is after unit N.
  size_t exit_after_unit(size_t e) const { return exits_.at(e).after_unit; }
  const BranchyOptions& options() const { return options_; }

  at::Tensor RunRange(const at::Tensor& x, size_t from, size_t to) const override;
  void To(const at::Device& device) override;

  // Logits [n, 10] of exit e from the boundary tensor at exit_after_unit(e) (for the last exit
  // that tensor is already the logits and is returned as is). Errors: kInvalidArgument for a bad
  // e or tensor shape; kInternal when LibTorch throws.
  Result<at::Tensor> RunExit(size_t e, const at::Tensor& boundary_tensor) const;

  // Runs units from+1..to on x (like RunRangeChecked) and, after each unit u in (from, to] that
  // carries an exit e with thresholds[e] <= 1, evaluates that exit: when the confidence of
  // every sample of the batch is >= thresholds[e], it stops there and returns the exit's
  // logits. Otherwise returns the boundary tensor at `to`. With every exit disabled the result
  // is bitwise the one of RunRange(x, from, to). thresholds: one per exit.
  // Errors: as RunRangeChecked, plus kInvalidArgument for a wrong number of thresholds or a NaN.
  Result<ExitOutcome> RunWithExits(const at::Tensor& x, size_t from, size_t to,
                                   const std::vector<double>& thresholds,
                                   ConfidenceKind kind) const;

  // Logits of every exit for a batch, running the chain once (size num_exits(), exits in
  // order). Not under InferenceMode: training calls it with autograd on; callers that only
  // evaluate hold c10::InferenceMode (or torch::NoGradGuard) themselves. Throws what LibTorch
  // throws.
  std::vector<at::Tensor> ForwardAllExits(const at::Tensor& x) const;

  // Confidence of each row of logits [n, C] (see ConfidenceKind): float32 [n].
  static at::Tensor Confidence(const at::Tensor& logits, ConfidenceKind kind);
  // H(softmax(logits)) / log(C) per row, in [0, 1]: float32 [n].
  static at::Tensor NormalizedEntropy(const at::Tensor& logits);

  // Parameters and buffers of units and heads, by name ("unit1.0.weight", "exit0.2.bias", ...),
  // with torch::serialize archives. LoadWeights needs a file written for the same architecture
  // and width: kNotFound when it cannot be read, kInvalidArgument when it does not fit.
  Status SaveWeights(const std::string& path) const;
  Status LoadWeights(const std::string& path);

  // The whole network as one module (units "unit1".."unitN", heads "exit0"..): for training
  // (train()/eval(), parameters()). Mutating it while others run the model is a data race.
  torch::nn::Module& module();
  // Re-reads parameter bytes into the unit and exit infos and puts the model in eval mode
  // (after training or loading).
  void Freeze();

 private:
  struct Net;
  friend Result<std::shared_ptr<BranchyModel>> BuildBranchyModel(const BranchyOptions& options);
  BranchyModel(const BranchyOptions& options);
  at::Tensor RunHead(size_t e, const at::Tensor& y) const;

  BranchyOptions options_;
  std::vector<ExitInfo> exits_;
  std::shared_ptr<Net> net_;
};

// Builds digits_branchy (version 1) on the CPU in eval mode with weights from options.seed.
// Errors: kInvalidArgument for width < 1 or an input_size not a multiple of 16 in [16, 256].
Result<std::shared_ptr<BranchyModel>> BuildBranchyModel(const BranchyOptions& options);

// BuildBranchyModel(options) then LoadWeights(path): the trained model from a train_exits --out
// file (device and edge load the same file to hold the same weights). Errors: as both.
Result<std::shared_ptr<BranchyModel>> LoadBranchyModel(const std::string& path,
                                                       const BranchyOptions& options = {});

// The weights of `path` whichever width they were trained at (train_exits --width: tried among
// 1, 2, 4, ..., 64), as `version`: the variants of the task an edge serves side by side
// (digits_branchy@V=FILE) and a device selects among (device_client --variants).
Result<std::shared_ptr<BranchyModel>> LoadBranchyModelAnyWidth(const std::string& path,
                                                               uint32_t version = 1);

// The model input from DigitsData::images [n,1,8,8]: bilinear upsampling (align_corners
// false) to [n,1,size,size]. It stands in for the 32x32 NIST bitmaps the 8x8 counts were made
// from, and gives boundary 0 a realistic size (4 KB at 32x32: half of boundary 1, as much as
// boundary 2, more than boundaries 3..5).
at::Tensor PrepareDigitsInput(const at::Tensor& images, int64_t size);

}  // namespace exits
}  // namespace splitinfer

// Training and evaluation of a BranchyModel on the digits (see docs/exits.md).
//
// Recipe (BranchyNet's joint loss): the loss of a batch is the weighted sum over exits of the
// cross-entropy of each exit's logits, all exits trained together; Adam, mini-batches of the
// training set in an order drawn each epoch from a SplitMix64 stream of the seed. The caller
// sets LibTorch to one intra-op thread (at::set_num_threads(1)) for bitwise reproducibility:
// with the same seed, data and thread count, two runs give the same weights bit for bit.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "common/exits/branchy_model.h"
#include "common/exits/digits.h"
#include "common/status.h"

namespace splitinfer {
namespace exits {

struct TrainOptions {
  uint64_t seed = 1;  // batch order (the weights' init seed is BranchyOptions::seed)
  int epochs = 15;
  int64_t batch_size = 32;
  double learning_rate = 1e-2;
  std::vector<double> exit_weights;  // one per exit; empty = all 1
  int64_t max_samples = 0;           // > 0: train on the first max_samples only (short tests)
};

struct TrainReport {
  std::vector<double> epoch_loss;  // mean joint loss per epoch
  double seconds = 0;              // wall-clock training time
};

// Trains `model` in place on `train` (images [n,1,8,8] as LoadDigits gives them; they are
// upsampled with PrepareDigitsInput) and leaves it frozen in eval mode. Errors:
// kInvalidArgument for bad options; kInternal when LibTorch throws.
Result<TrainReport> TrainBranchy(BranchyModel* model, const DigitsData& train,
                                 const TrainOptions& options);

// Logits of every exit ([n, 10] each) for images [n,1,8,8], in eval mode without autograd.
Result<std::vector<at::Tensor>> EvaluateExits(const BranchyModel& model, const DigitsData& data);

// Fraction of rows of logits [n, C] whose argmax equals labels [n].
double Accuracy(const at::Tensor& logits, const at::Tensor& labels);

}  // namespace exits
}  // namespace splitinfer

// Training and evaluation of a BranchyModel (see train.h).
#include "common/exits/train.h"

#include <chrono>
#include <numeric>

#include <torch/torch.h>

namespace splitinfer {
namespace exits {
namespace {

// SplitMix64, as in digits.cc: the batch order is the same on every machine.
uint64_t SplitMix64Next(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

Result<TrainReport> TrainBranchy(BranchyModel* model, const DigitsData& train,
                                 const TrainOptions& o) {
  if (model == nullptr) return InvalidArgumentError("no model to train");
  if (o.epochs < 0 || o.batch_size < 1 || !(o.learning_rate > 0)) {
    return InvalidArgumentError("bad training options (epochs >= 0, batch >= 1, lr > 0)");
  }
  std::vector<double> weights = o.exit_weights;
  if (weights.empty()) weights.assign(model->num_exits(), 1.0);
  if (weights.size() != model->num_exits()) {
    return InvalidArgumentError(std::to_string(weights.size()) + " exit weights for " +
                                std::to_string(model->num_exits()) + " exits");
  }
  int64_t n = train.size();
  if (o.max_samples > 0) n = std::min(n, o.max_samples);
  if (n < 2) return InvalidArgumentError("too few training samples");

  TrainReport report;
  const auto start = std::chrono::steady_clock::now();
  try {
    const at::Tensor inputs =
        PrepareDigitsInput(train.images.slice(0, 0, n), model->options().input_size).contiguous();
    const at::Tensor labels = train.labels.slice(0, 0, n).contiguous();
    torch::nn::Module& net = model->module();
    net.train();
    torch::optim::Adam optimizer(net.parameters(), torch::optim::AdamOptions(o.learning_rate));
    uint64_t rng = o.seed;
    std::vector<int64_t> order(static_cast<size_t>(n));
    for (int epoch = 0; epoch < o.epochs; ++epoch) {
      std::iota(order.begin(), order.end(), 0);
      for (size_t i = order.size(); i > 1; --i) {
        std::swap(order[i - 1], order[SplitMix64Next(&rng) % i]);
      }
      const at::Tensor perm = torch::tensor(order, torch::kInt64);
      double loss_sum = 0;
      int64_t batches = 0;
      for (int64_t b = 0; b < n;) {
        // A last batch of one sample would make batch norm's variance undefined: fold it in.
        int64_t end = std::min(n, b + o.batch_size);
        if (n - end == 1) end = n;
        const at::Tensor idx = perm.slice(0, b, end);
        const at::Tensor x = inputs.index_select(0, idx);
        const at::Tensor y = labels.index_select(0, idx);
        optimizer.zero_grad();
        const std::vector<at::Tensor> logits = model->ForwardAllExits(x);
        at::Tensor loss = torch::zeros({}, torch::kFloat32);
        for (size_t e = 0; e < logits.size(); ++e) {
          loss = loss + weights[e] * torch::nn::functional::cross_entropy(logits[e], y);
        }
        loss.backward();
        optimizer.step();
        loss_sum += loss.item<double>();
        ++batches;
        b = end;
      }
      report.epoch_loss.push_back(batches ? loss_sum / static_cast<double>(batches) : 0.0);
    }
  } catch (const std::exception& e) {
    model->Freeze();
    return InternalError(std::string("training digits_branchy: ") + e.what());
  }
  model->Freeze();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

Result<std::vector<at::Tensor>> EvaluateExits(const BranchyModel& model, const DigitsData& data) {
  try {
    c10::InferenceMode guard;
    const at::Tensor x =
        PrepareDigitsInput(data.images, model.options().input_size).to(model.device());
    std::vector<at::Tensor> logits = model.ForwardAllExits(x);
    for (at::Tensor& l : logits) l = l.to(at::kCPU);
    return logits;
  } catch (const std::exception& e) {
    return InternalError(std::string("evaluating digits_branchy: ") + e.what());
  }
}

double Accuracy(const at::Tensor& logits, const at::Tensor& labels) {
  if (labels.numel() == 0) return 0.0;
  const at::Tensor right = logits.argmax(1).eq(labels.to(logits.device())).sum();
  return static_cast<double>(right.item<int64_t>()) / static_cast<double>(labels.numel());
}

}  // namespace exits
}  // namespace splitinfer

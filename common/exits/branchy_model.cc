// BranchyModel (see branchy_model.h).
#include "common/exits/branchy_model.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <stdexcept>
#include <utility>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "common/exits/digits.h"

namespace splitinfer {
namespace exits {
namespace {

constexpr int64_t kHeadPool = 2;  // exit heads average-pool to 2x2

int64_t ParamBytes(torch::nn::Module& m) {
  int64_t bytes = 0;
  for (const torch::Tensor& p : m.parameters()) bytes += p.numel() * p.element_size();
  for (const torch::Tensor& b : m.buffers()) bytes += b.numel() * b.element_size();
  return bytes;
}

// Seeds LibTorch's global CPU generator for the modules' default init and puts its previous
// state back afterwards, so that a build leaves the global stream as it found it. A process-wide
// lock keeps two builds in two threads from interleaving; other code drawing from the global
// generator during a build would still disturb it.
class ScopedGlobalSeed {
 public:
  explicit ScopedGlobalSeed(uint64_t seed)
      : lock_(Mutex()), gen_(at::detail::getDefaultCPUGenerator()) {
    std::lock_guard<std::mutex> g(gen_.mutex());
    saved_ = gen_.get_state();
    gen_.set_current_seed(seed);  // what torch::manual_seed does to the CPU generator
  }
  ~ScopedGlobalSeed() {
    std::lock_guard<std::mutex> g(gen_.mutex());
    gen_.set_state(saved_);
  }

 private:
  static std::mutex& Mutex() {
    static std::mutex m;
    return m;
  }
  std::lock_guard<std::mutex> lock_;
  at::Generator gen_;
  at::Tensor saved_;
};

}  // namespace

const char* ConfidenceKindName(ConfidenceKind kind) {
  return kind == ConfidenceKind::kMaxSoftmax ? "max_softmax" : "entropy";
}

// Units and heads as registered submodules of one module, so that parameters(), train(),
// eval(), to() and the archives see everything.
struct BranchyModel::Net : torch::nn::Module {
  std::vector<torch::nn::Sequential> units;
  std::vector<torch::nn::Sequential> heads;  // one per exit but the last
};

BranchyModel::BranchyModel(const BranchyOptions& options)
    : SplitModel("digits_branchy", options.version),
      options_(options),
      net_(std::make_shared<Net>()) {}

BranchyModel::~BranchyModel() = default;

torch::nn::Module& BranchyModel::module() { return *net_; }

Result<std::shared_ptr<BranchyModel>> BuildBranchyModel(const BranchyOptions& o) {
  if (o.width < 1 || o.width > 1024) {
    return InvalidArgumentError("digits_branchy width " + std::to_string(o.width) +
                                " is not in [1, 1024]");
  }
  if (o.input_size < 16 || o.input_size > 256 || o.input_size % 16 != 0) {
    return InvalidArgumentError("digits_branchy input size " + std::to_string(o.input_size) +
                                " is not a multiple of 16 in [16, 256]");
  }
  std::shared_ptr<BranchyModel> m(new BranchyModel(o));
  BranchyModel::Net& net = *m->net_;
  const std::vector<size_t> exit_units = {1, 2, 3};  // plus the final one after unit 5
  try {
    ScopedGlobalSeed seed(o.seed);
    int64_t channels = 1, side = o.input_size;
    const char* names[] = {"conv1", "conv2", "conv3", "conv4"};
    for (int i = 0; i < 4; ++i) {
      const int64_t out = o.width << i;
      torch::nn::Sequential unit(
          torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, out, 3).padding(1).bias(false)),
          torch::nn::BatchNorm2d(out), torch::nn::ReLU(torch::nn::ReLUOptions().inplace(true)),
          torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2).stride(2)));
      UnitInfo info;
      info.name = names[i];
      info.flops = 2 * channels * 9 * out * side * side;
      m->units_.push_back(info);
      net.units.push_back(net.register_module("unit" + std::to_string(i + 1), unit));
      channels = out;
      side /= 2;
      if (std::find(exit_units.begin(), exit_units.end(), static_cast<size_t>(i + 1)) !=
          exit_units.end()) {
        const int64_t features = channels * kHeadPool * kHeadPool;
        torch::nn::Sequential head(
            torch::nn::AdaptiveAvgPool2d(torch::nn::AdaptiveAvgPool2dOptions(kHeadPool)),
            torch::nn::Flatten(), torch::nn::Linear(features, kDigitsClasses));
        ExitInfo e;
        e.after_unit = static_cast<size_t>(i + 1);
        e.flops = 2 * features * kDigitsClasses;
        m->exits_.push_back(e);
        net.heads.push_back(net.register_module("exit" + std::to_string(net.heads.size()), head));
      }
    }
    const int64_t features = channels * side * side;
    torch::nn::Sequential classifier(torch::nn::Flatten(),
                                     torch::nn::Linear(features, kDigitsClasses));
    UnitInfo info;
    info.name = "classifier";
    info.flops = 2 * features * kDigitsClasses;
    m->units_.push_back(info);
    net.units.push_back(net.register_module("unit5", classifier));
    ExitInfo last;
    last.after_unit = m->units_.size();
    m->exits_.push_back(last);
    m->Freeze();
    m->ProbeShapes({1, o.input_size, o.input_size});
  } catch (const std::exception& e) {
    return InternalError(std::string("building digits_branchy: ") + e.what());
  }
  return m;
}

void BranchyModel::Freeze() {
  net_->eval();
  for (size_t i = 0; i < units_.size(); ++i) units_[i].param_bytes = ParamBytes(*net_->units[i]);
  for (size_t e = 0; e + 1 < exits_.size(); ++e) {
    exits_[e].param_bytes = ParamBytes(*net_->heads[e]);
  }
}

at::Tensor BranchyModel::RunRange(const at::Tensor& x, size_t from, size_t to) const {
  TORCH_CHECK(from <= to && to <= net_->units.size(), "bad range (", from, ", ", to, "] of ",
              name_);
  c10::InferenceMode guard;
  at::Tensor y = x;
  for (size_t i = from; i < to; ++i) {
    torch::nn::Sequential unit = net_->units[i];  // a shared_ptr copy: forward() is non-const
    y = unit->forward(y);
  }
  return y;
}

void BranchyModel::To(const at::Device& device) {
  net_->to(device);
  device_ = device;
}

at::Tensor BranchyModel::RunHead(size_t e, const at::Tensor& y) const {
  if (e + 1 == exits_.size()) return y;
  torch::nn::Sequential head = net_->heads[e];
  return head->forward(y);
}

std::vector<at::Tensor> BranchyModel::ForwardAllExits(const at::Tensor& x) const {
  std::vector<at::Tensor> logits;
  at::Tensor y = x;
  size_t e = 0;
  for (size_t i = 0; i < net_->units.size(); ++i) {
    torch::nn::Sequential unit = net_->units[i];
    y = unit->forward(y);
    while (e < exits_.size() && exits_[e].after_unit == i + 1) logits.push_back(RunHead(e++, y));
  }
  return logits;
}

Result<at::Tensor> BranchyModel::RunExit(size_t e, const at::Tensor& boundary_tensor) const {
  if (e >= exits_.size()) {
    return InvalidArgumentError("exit " + std::to_string(e) + " of " + name_ +
                                " is out of range [0, " + std::to_string(exits_.size()) + ")");
  }
  if (!boundary_tensor.defined() || boundary_tensor.scalar_type() != at::kFloat) {
    return InvalidArgumentError("input of exit " + std::to_string(e) + " of " + name_ +
                                " must be a defined float32 tensor");
  }
  SPLITINFER_RETURN_IF_ERROR(CheckBoundaryInput(exits_[e].after_unit, boundary_tensor.sizes()));
  try {
    c10::InferenceMode guard;
    return RunHead(e, boundary_tensor.to(device_));
  } catch (const std::exception& ex) {
    return InternalError("running exit " + std::to_string(e) + " of " + name_ + ": " + ex.what());
  }
}

Result<ExitOutcome> BranchyModel::RunWithExits(const at::Tensor& x, size_t from, size_t to,
                                               const std::vector<double>& thresholds,
                                               ConfidenceKind kind) const {
  if (thresholds.size() != exits_.size()) {
    return InvalidArgumentError(name_ + " has " + std::to_string(exits_.size()) + " exits, got " +
                                std::to_string(thresholds.size()) + " thresholds");
  }
  for (double t : thresholds) {
    if (std::isnan(t)) return InvalidArgumentError("exit threshold is NaN");
  }
  SPLITINFER_RETURN_IF_ERROR(CheckRangeInput(x, from, to));
  try {
    c10::InferenceMode guard;
    at::Tensor y = x.to(device_);
    for (size_t i = from; i < to; ++i) {
      torch::nn::Sequential unit = net_->units[i];
      y = unit->forward(y);
      for (size_t e = 0; e < exits_.size(); ++e) {
        if (exits_[e].after_unit != i + 1 || !(thresholds[e] <= 1.0)) continue;
        at::Tensor logits = RunHead(e, y);
        const double min_conf = Confidence(logits, kind).min().item<double>();
        if (min_conf >= thresholds[e]) {
          ExitOutcome out;
          out.exit = static_cast<int>(e);
          out.boundary = i + 1;
          out.tensor = logits;
          return out;
        }
      }
    }
    ExitOutcome out;
    out.boundary = to;
    out.tensor = y;
    return out;
  } catch (const std::exception& e) {
    return InternalError("running " + name_ + " units " + std::to_string(from + 1) + ".." +
                         std::to_string(to) + " with exits: " + e.what());
  }
}

at::Tensor BranchyModel::NormalizedEntropy(const at::Tensor& logits) {
  const at::Tensor logp = torch::log_softmax(logits.to(at::kFloat), 1);
  const at::Tensor h = -(logp.exp() * logp).sum(1);
  return (h / std::log(static_cast<double>(logits.size(1)))).clamp(0.0, 1.0);
}

at::Tensor BranchyModel::Confidence(const at::Tensor& logits, ConfidenceKind kind) {
  if (kind == ConfidenceKind::kEntropy) return 1.0 - NormalizedEntropy(logits);
  return std::get<0>(torch::softmax(logits.to(at::kFloat), 1).max(1));
}

Status BranchyModel::SaveWeights(const std::string& path) const {
  try {
    torch::serialize::OutputArchive archive;
    net_->save(archive);
    archive.save_to(path);
  } catch (const std::exception& e) {
    return InternalError("saving " + name_ + " weights to " + path + ": " + e.what());
  }
  return Status::Ok();
}

Status BranchyModel::LoadWeights(const std::string& path) {
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
  } catch (const std::exception& e) {
    return NotFoundError("reading " + name_ + " weights from " + path + ": " + e.what());
  }
  // Load into a fresh net of the same shape first, so that a file that does not fit leaves
  // this model untouched.
  try {
    auto fresh = BuildBranchyModel(options_);
    if (!fresh.ok()) return fresh.status();
    (*fresh)->net_->load(archive);
    torch::NoGradGuard no_grad;
    const auto src_p = (*fresh)->net_->named_parameters();
    const auto src_b = (*fresh)->net_->named_buffers();
    auto copy = [&](const std::string& key, at::Tensor dst, const at::Tensor& src) {
      if (!src.sizes().equals(dst.sizes())) {
        throw std::runtime_error(key + " has shape " + ShapeString(src.sizes()) + ", want " +
                                 ShapeString(dst.sizes()));
      }
      dst.copy_(src);
    };
    for (auto& p : net_->named_parameters()) copy(p.key(), p.value(), src_p[p.key()]);
    for (auto& b : net_->named_buffers()) copy(b.key(), b.value(), src_b[b.key()]);
  } catch (const std::exception& e) {
    return InvalidArgumentError("weights in " + path + " do not fit " + name_ + " (width " +
                                std::to_string(options_.width) + "): " + e.what());
  }
  Freeze();
  return Status::Ok();
}

Result<std::shared_ptr<BranchyModel>> LoadBranchyModel(const std::string& path,
                                                       const BranchyOptions& options) {
  Result<std::shared_ptr<BranchyModel>> m = BuildBranchyModel(options);
  if (!m.ok()) return m;
  SPLITINFER_RETURN_IF_ERROR((*m)->LoadWeights(path));
  return m;
}

Result<std::shared_ptr<BranchyModel>> LoadBranchyModelAnyWidth(const std::string& path,
                                                               uint32_t version) {
  if (version < 1) return InvalidArgumentError("digits_branchy version must be >= 1");
  BranchyOptions o;
  o.version = version;
  Status first;
  for (int64_t width : {8, 4, 16, 2, 32, 1, 64}) {
    o.width = width;
    Result<std::shared_ptr<BranchyModel>> m = LoadBranchyModel(path, o);
    if (m.ok()) return m;
    if (m.status().code() != StatusCode::kInvalidArgument) return m.status();  // unreadable
    if (first.ok()) first = m.status();
  }
  return InvalidArgumentError(path + ": weights of no digits_branchy width in 1..64 (" +
                              first.message() + ")");
}

at::Tensor PrepareDigitsInput(const at::Tensor& images, int64_t size) {
  namespace F = torch::nn::functional;
  return F::interpolate(images, F::InterpolateFuncOptions()
                                    .size(std::vector<int64_t>{size, size})
                                    .mode(torch::kBilinear)
                                    .align_corners(false));
}

}  // namespace exits
}  // namespace splitinfer

// The built-in model zoo (see model_zoo.h).
//
// Each architecture is written once, as a function over a ChainBuilder. The builder tracks the
// [C,H,W] (or [F]) shape of one sample layer by layer, counts each unit's FLOPs analytically
// and, unless it runs in shapes-only mode, creates the LibTorch modules. The shapes-only mode
// validates options cheaply and finds the smallest input size a network accepts.
//
// FLOPs count convolutions (2 * Cin/groups * kh * kw * Cout * Hout * Wout) and linear layers
// (2 * in * out) only. Biases, batch norm, activations, pooling and residual additions are left
// out: together they are well under 1% of the total for these networks.
//
// Weights: torchvision's schemes (conv: kaiming, fan_out, ReLU gain; linear: std 0.01; batch
// norm: weight 1, bias 0, default running statistics), but drawn as *uniform* values with the
// same variance from a private SplitMix64 stream seeded by (name, version). Integer arithmetic
// plus one float multiply per value gives the same bits on every machine (x86 with or without
// AVX2, ARM), whereas torch's normal_() runs a SIMD Box-Muller whose last bits depend on the CPU
// and which uses the process-global generator that other threads may draw from. The module
// constructors still draw LibTorch's default init from the global generator; those values are
// overwritten.
#include "common/model_zoo.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <sstream>
#include <utility>

#include <torch/torch.h>

namespace splitinfer {
namespace {

// --- Modules that Sequential cannot express -------------------------------------------------

// ResNet basic block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).
class BasicBlockImpl : public torch::nn::Module {
 public:
  BasicBlockImpl(torch::nn::Conv2d conv1, torch::nn::BatchNorm2d bn1, torch::nn::Conv2d conv2,
                 torch::nn::BatchNorm2d bn2, torch::nn::Sequential downsample)
      : conv1_(register_module("conv1", conv1)),
        bn1_(register_module("bn1", bn1)),
        conv2_(register_module("conv2", conv2)),
        bn2_(register_module("bn2", bn2)),
        downsample_(std::move(downsample)) {
    if (!downsample_.is_empty()) register_module("downsample", downsample_);
  }

  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor out = torch::relu(bn1_(conv1_(x)));
    out = bn2_(conv2_(out));
    out += downsample_.is_empty() ? x : downsample_->forward(x);
    return torch::relu_(out);
  }

 private:
  torch::nn::Conv2d conv1_;
  torch::nn::BatchNorm2d bn1_;
  torch::nn::Conv2d conv2_;
  torch::nn::BatchNorm2d bn2_;
  torch::nn::Sequential downsample_;
};
TORCH_MODULE(BasicBlock);

// MobileNetV2 inverted residual: body(x) (+ x when stride 1 and channels match).
class InvertedResidualImpl : public torch::nn::Module {
 public:
  InvertedResidualImpl(torch::nn::Sequential body, bool residual)
      : body_(register_module("conv", body)), residual_(residual) {}

  torch::Tensor forward(torch::Tensor x) {
    return residual_ ? x + body_->forward(x) : body_->forward(x);
  }

 private:
  torch::nn::Sequential body_;
  bool residual_;
};
TORCH_MODULE(InvertedResidual);

// --- ChainBuilder -----------------------------------------------------------------------------

// Builds one model unit by unit. Layer methods check the current sample shape, advance it, add
// the layer's FLOPs to the current unit and return the module (an empty holder in shapes-only
// mode or after the first error). The first error sticks; later calls do nothing.
class ChainBuilder {
 public:
  ChainBuilder(std::string model, std::vector<int64_t> input_shape, bool shapes_only)
      : model_(std::move(model)), shape_(std::move(input_shape)), shapes_only_(shapes_only) {}

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  // True when modules are being created (not shapes-only and no error so far).
  bool assembling() const { return !shapes_only_ && ok(); }

  const std::vector<int64_t>& shape() const { return shape_; }
  void set_shape(std::vector<int64_t> shape) { shape_ = std::move(shape); }

  void BeginUnit(std::string name) {
    CloseUnit();
    UnitInfo info;
    info.name = std::move(name);
    info.flops = 0;
    infos_.push_back(std::move(info));
    modules_.push_back(shapes_only_ ? torch::nn::Sequential(nullptr) : torch::nn::Sequential());
  }

  // Appends a module to the current unit.
  template <typename ModuleHolder>
  void Add(ModuleHolder module) {
    if (assembling()) modules_.back()->push_back(std::move(module));
  }

  torch::nn::Conv2d Conv(int64_t out, int64_t kernel, int64_t stride, int64_t pad,
                         int64_t groups = 1, bool bias = false) {
    if (!RequireImage("conv")) return nullptr;
    const int64_t in = shape_[0];
    if (in % groups != 0 || out % groups != 0) {
      Fail("conv groups " + std::to_string(groups) + " do not divide channels " +
           std::to_string(in) + " -> " + std::to_string(out));
      return nullptr;
    }
    int64_t h = 0, w = 0;
    if (!Window("conv", kernel, stride, pad, &h, &w)) return nullptr;
    infos_.back().flops += 2 * (in / groups) * kernel * kernel * out * h * w;
    infos_.back().layers.push_back(
        LayerShape{LayerShape::Kind::kConv, in, out, kernel, stride, groups, h, w});
    shape_ = {out, h, w};
    if (!assembling()) return nullptr;
    return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel)
                                 .stride(stride)
                                 .padding(pad)
                                 .groups(groups)
                                 .bias(bias));
  }

  torch::nn::BatchNorm2d BatchNorm() {
    if (!RequireImage("batch norm") || !assembling()) return nullptr;
    return torch::nn::BatchNorm2d(shape_[0]);
  }

  torch::nn::MaxPool2d MaxPool(int64_t kernel, int64_t stride, int64_t pad = 0) {
    if (!RequireImage("max-pool")) return nullptr;
    int64_t h = 0, w = 0;
    if (!Window("max-pool", kernel, stride, pad, &h, &w)) return nullptr;
    shape_ = {shape_[0], h, w};
    if (!assembling()) return nullptr;
    return torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(kernel).stride(stride).padding(pad));
  }

  torch::nn::AdaptiveAvgPool2d AdaptiveAvgPool(int64_t size) {
    if (!RequireImage("adaptive avg-pool")) return nullptr;
    shape_ = {shape_[0], size, size};
    if (!assembling()) return nullptr;
    return torch::nn::AdaptiveAvgPool2d(torch::nn::AdaptiveAvgPool2dOptions(size));
  }

  torch::nn::Flatten Flatten() {
    if (!ok()) return nullptr;
    int64_t n = 1;
    for (int64_t d : shape_) n *= d;
    shape_ = {n};
    if (!assembling()) return nullptr;
    return torch::nn::Flatten();
  }

  torch::nn::Linear Linear(int64_t out) {
    if (!ok()) return nullptr;
    if (shape_.size() != 1) {
      Fail("linear layer needs a flat input, got " + ShapeString(shape_));
      return nullptr;
    }
    const int64_t in = shape_[0];
    infos_.back().flops += 2 * in * out;
    infos_.back().layers.push_back(LayerShape{LayerShape::Kind::kLinear, in, out, 1, 1, 1, 1, 1});
    shape_ = {out};
    if (!assembling()) return nullptr;
    return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(true));
  }

  // Ends the last unit. The results are valid only when ok().
  void Finish() { CloseUnit(); }
  std::vector<torch::nn::Sequential>& modules() { return modules_; }
  std::vector<UnitInfo>& infos() { return infos_; }
  // Output shape of each unit as tracked here (a cross-check for the probed shapes).
  const std::vector<std::vector<int64_t>>& unit_shapes() const { return unit_shapes_; }

 private:
  void CloseUnit() {
    if (unit_shapes_.size() < infos_.size()) unit_shapes_.push_back(shape_);
  }

  void Fail(const std::string& why) {
    if (!ok()) return;
    const std::string unit = infos_.empty() ? "input" : infos_.back().name;
    error_ = model_ + " unit " + unit + ": " + why;
  }

  bool RequireImage(const char* layer) {
    if (!ok()) return false;
    if (shape_.size() != 3) {
      Fail(std::string(layer) + " needs a [C,H,W] input, got " + ShapeString(shape_));
      return false;
    }
    return true;
  }

  // Output size of a kernel x kernel window with floor rounding, as Conv2d/MaxPool2d compute it.
  bool Window(const char* layer, int64_t kernel, int64_t stride, int64_t pad, int64_t* h,
              int64_t* w) {
    const int64_t in_h = shape_[1], in_w = shape_[2];
    if (in_h + 2 * pad < kernel || in_w + 2 * pad < kernel) {
      Fail(std::string(layer) + " " + std::to_string(kernel) + "x" + std::to_string(kernel) +
           " (padding " + std::to_string(pad) + ") needs at least " +
           std::to_string(kernel - 2 * pad) + "x" + std::to_string(kernel - 2 * pad) +
           " input, got " + std::to_string(in_h) + "x" + std::to_string(in_w));
      return false;
    }
    *h = (in_h + 2 * pad - kernel) / stride + 1;
    *w = (in_w + 2 * pad - kernel) / stride + 1;
    return true;
  }

  std::string model_;
  std::vector<int64_t> shape_;
  bool shapes_only_;
  std::string error_;
  std::vector<torch::nn::Sequential> modules_;
  std::vector<UnitInfo> infos_;
  std::vector<std::vector<int64_t>> unit_shapes_;
};

// --- Architectures ----------------------------------------------------------------------------

int64_t Scaled(int64_t channels, double width_mult) {
  return std::max<int64_t>(1, std::llround(static_cast<double>(channels) * width_mult));
}

// torchvision's _make_divisible: round to the nearest multiple of `divisor`, never below it and
// never more than 10% below v.
int64_t MakeDivisible(double v, int64_t divisor = 8) {
  int64_t rounded = static_cast<int64_t>(v + divisor / 2.0) / divisor * divisor;
  rounded = std::max(divisor, rounded);
  if (rounded < 0.9 * v) rounded += divisor;
  return rounded;
}

torch::nn::ReLU Relu() { return torch::nn::ReLU(torch::nn::ReLUOptions().inplace(true)); }
torch::nn::ReLU6 Relu6() { return torch::nn::ReLU6(torch::nn::ReLU6Options().inplace(true)); }

// The AlexNet/VGG classifier: adaptive average pool to pool x pool, then fc6, fc7 (width
// 4096 x width_mult, ReLU) and fc8, one unit each.
void AddFcHead(ChainBuilder& b, const ZooOptions& o, int64_t pool) {
  const int64_t hidden = Scaled(4096, o.width_mult);
  b.BeginUnit("fc6");
  b.Add(b.AdaptiveAvgPool(pool));
  b.Add(b.Flatten());
  b.Add(b.Linear(hidden));
  b.Add(Relu());
  b.BeginUnit("fc7");
  b.Add(b.Linear(hidden));
  b.Add(Relu());
  b.BeginUnit("fc8");
  b.Add(b.Linear(o.num_classes));
}

// torchvision.models.alexnet: conv1..conv5 (pools fused into conv1, conv2, conv5), fc6..fc8.
void BuildAlexNet(ChainBuilder& b, const ZooOptions& o) {
  const double m = o.width_mult;
  struct Conv {
    const char* name;
    int64_t out, kernel, stride, pad;
    bool pool;
  };
  const Conv convs[] = {{"conv1", 64, 11, 4, 2, true},
                        {"conv2", 192, 5, 1, 2, true},
                        {"conv3", 384, 3, 1, 1, false},
                        {"conv4", 256, 3, 1, 1, false},
                        {"conv5", 256, 3, 1, 1, true}};
  for (const Conv& c : convs) {
    b.BeginUnit(c.name);
    b.Add(b.Conv(Scaled(c.out, m), c.kernel, c.stride, c.pad, 1, /*bias=*/true));
    b.Add(Relu());
    if (c.pool) b.Add(b.MaxPool(3, 2));
  }
  AddFcHead(b, o, /*pool=*/6);
}

// torchvision.models.vgg16 (configuration D, no batch norm): 13 conv units named conv<stage>_<i>
// with each stage's max-pool fused into its last conv, then fc6..fc8.
void BuildVgg16(ChainBuilder& b, const ZooOptions& o) {
  const double m = o.width_mult;
  const int64_t stages[5][2] = {{64, 2}, {128, 2}, {256, 3}, {512, 3}, {512, 3}};
  for (int s = 0; s < 5; ++s) {
    for (int64_t i = 0; i < stages[s][1]; ++i) {
      b.BeginUnit("conv" + std::to_string(s + 1) + "_" + std::to_string(i + 1));
      b.Add(b.Conv(Scaled(stages[s][0], m), 3, 1, 1, 1, /*bias=*/true));
      b.Add(Relu());
      if (i + 1 == stages[s][1]) b.Add(b.MaxPool(2, 2));
    }
  }
  AddFcHead(b, o, /*pool=*/7);
}

void AddBasicBlock(ChainBuilder& b, int64_t planes, int64_t stride) {
  if (!b.ok()) return;
  const std::vector<int64_t> in = b.shape();
  torch::nn::Conv2d conv1 = b.Conv(planes, 3, stride, 1);
  torch::nn::BatchNorm2d bn1 = b.BatchNorm();
  torch::nn::Conv2d conv2 = b.Conv(planes, 3, 1, 1);
  torch::nn::BatchNorm2d bn2 = b.BatchNorm();
  torch::nn::Sequential downsample(nullptr);
  if (b.ok() && (stride != 1 || in[0] != planes)) {
    // The 1x1 shortcut gives the same H, W as the 3x3 path: (H - 1) / stride + 1.
    const std::vector<int64_t> out = b.shape();
    b.set_shape(in);
    torch::nn::Conv2d conv = b.Conv(planes, 1, stride, 0);
    torch::nn::BatchNorm2d bn = b.BatchNorm();
    if (b.assembling()) downsample = torch::nn::Sequential(conv, bn);
    b.set_shape(out);
  }
  if (b.assembling()) b.Add(BasicBlock(conv1, bn1, conv2, bn2, downsample));
}

// torchvision.models.resnet18: stem, layer1.0 .. layer4.1, head.
void BuildResNet18(ChainBuilder& b, const ZooOptions& o) {
  const double m = o.width_mult;
  b.BeginUnit("stem");
  b.Add(b.Conv(Scaled(64, m), 7, 2, 3));
  b.Add(b.BatchNorm());
  b.Add(Relu());
  b.Add(b.MaxPool(3, 2, 1));
  const int64_t planes[4] = {64, 128, 256, 512};
  for (int layer = 0; layer < 4; ++layer) {
    for (int block = 0; block < 2; ++block) {
      b.BeginUnit("layer" + std::to_string(layer + 1) + "." + std::to_string(block));
      AddBasicBlock(b, Scaled(planes[layer], m), layer > 0 && block == 0 ? 2 : 1);
    }
  }
  b.BeginUnit("head");
  b.Add(b.AdaptiveAvgPool(1));
  b.Add(b.Flatten());
  b.Add(b.Linear(o.num_classes));
}

// Conv + BN + ReLU6 appended to `body` (or to the current unit when body is empty).
void AddConvBnRelu6(ChainBuilder& b, torch::nn::Sequential& body, int64_t out, int64_t kernel,
                    int64_t stride, int64_t groups = 1) {
  torch::nn::Conv2d conv = b.Conv(out, kernel, stride, (kernel - 1) / 2, groups);
  torch::nn::BatchNorm2d bn = b.BatchNorm();
  if (!b.assembling()) return;
  if (body.is_empty()) {
    b.Add(conv);
    b.Add(bn);
    b.Add(Relu6());
  } else {
    body->push_back(conv);
    body->push_back(bn);
    body->push_back(Relu6());
  }
}

void AddInvertedResidual(ChainBuilder& b, int64_t out, int64_t stride, int64_t expand) {
  if (!b.ok()) return;
  const int64_t in = b.shape()[0];
  const int64_t hidden = in * expand;
  torch::nn::Sequential body =
      b.assembling() ? torch::nn::Sequential() : torch::nn::Sequential(nullptr);
  if (expand != 1) AddConvBnRelu6(b, body, hidden, 1, 1);
  AddConvBnRelu6(b, body, hidden, 3, stride, hidden);  // depthwise
  torch::nn::Conv2d project = b.Conv(out, 1, 1, 0);
  torch::nn::BatchNorm2d bn = b.BatchNorm();
  if (!b.assembling()) return;
  body->push_back(project);
  body->push_back(bn);
  b.Add(InvertedResidual(body, stride == 1 && in == out));
}

// torchvision.models.mobilenet_v2: stem, block1..block17, conv_last, head.
void BuildMobileNetV2(ChainBuilder& b, const ZooOptions& o) {
  const double m = o.width_mult;
  torch::nn::Sequential none(nullptr);
  b.BeginUnit("stem");
  AddConvBnRelu6(b, none, MakeDivisible(32 * m), 3, 2);
  // t (expansion), c (channels), n (repeats), s (first stride), as in torchvision.
  const int64_t settings[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                                  {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  int block = 0;
  for (const auto& s : settings) {
    for (int64_t i = 0; i < s[2]; ++i) {
      b.BeginUnit("block" + std::to_string(++block));
      AddInvertedResidual(b, MakeDivisible(s[1] * m), i == 0 ? s[3] : 1, s[0]);
    }
  }
  b.BeginUnit("conv_last");
  AddConvBnRelu6(b, none, MakeDivisible(1280 * std::max(1.0, m)), 1, 1);
  b.BeginUnit("head");
  b.Add(b.AdaptiveAvgPool(1));
  b.Add(b.Flatten());
  b.Add(b.Linear(o.num_classes));
}

// fc1..fcL: Linear(width, width) + ReLU, no ReLU after the last. num_classes is not used.
void BuildMlp(ChainBuilder& b, const ZooOptions& o) {
  for (int64_t i = 0; i < o.mlp_layers; ++i) {
    b.BeginUnit("fc" + std::to_string(i + 1));
    b.Add(b.Linear(o.mlp_width));
    if (i + 1 < o.mlp_layers) b.Add(Relu());
  }
}

struct ZooEntry {
  const char* name;
  void (*build)(ChainBuilder&, const ZooOptions&);
  bool image_input;
};

const ZooEntry kZoo[] = {{"alexnet", BuildAlexNet, true},
                         {"vgg16", BuildVgg16, true},
                         {"resnet18", BuildResNet18, true},
                         {"mobilenetv2", BuildMobileNetV2, true},
                         {"mlp", BuildMlp, false}};

std::vector<int64_t> InputShape(const ZooEntry& e, const ZooOptions& o, int64_t input_size) {
  if (!e.image_input) return {o.mlp_width};
  return {3, input_size, input_size};
}

// --- Weights ----------------------------------------------------------------------------------

uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// SplitMix64 (Steele, Lea, Flood 2014): a tiny, well-mixed, portable 64-bit stream.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Fills a contiguous float CPU tensor with U[-bound, bound): 24 random bits per value.
  void FillUniform(const torch::Tensor& t, double bound) {
    TORCH_CHECK(t.is_contiguous() && t.scalar_type() == torch::kFloat && t.device().is_cpu());
    const float fbound = static_cast<float>(bound);
    float* p = t.data_ptr<float>();
    for (int64_t i = 0, n = t.numel(); i < n; ++i) {
      const float u = static_cast<float>(Next() >> 40) * 0x1p-24f;  // exact, in [0, 1)
      p[i] = (2.0f * u - 1.0f) * fbound;                            // 2u - 1 is exact too
    }
  }

 private:
  uint64_t state_;
};

void InitWeights(const std::vector<torch::nn::Sequential>& units, uint64_t seed) {
  torch::NoGradGuard no_grad;
  SplitMix64 rng(seed);
  for (const torch::nn::Sequential& unit : units) {
    for (const std::shared_ptr<torch::nn::Module>& m : unit->modules(/*include_self=*/false)) {
      if (auto* conv = m->as<torch::nn::Conv2d>()) {
        // kaiming_normal_(mode="fan_out", nonlinearity="relu"): std = sqrt(2 / fan_out); a
        // uniform with the same variance has bound sqrt(3) * std = sqrt(6 / fan_out).
        const torch::Tensor& w = conv->weight;
        const double fan_out = static_cast<double>(w.size(0) * w.size(2) * w.size(3));
        rng.FillUniform(w, std::sqrt(6.0 / fan_out));
        if (conv->bias.defined()) conv->bias.zero_();
      } else if (auto* fc = m->as<torch::nn::Linear>()) {
        rng.FillUniform(fc->weight, 0.01 * std::sqrt(3.0));  // std 0.01
        fc->bias.zero_();
      } else if (auto* bn = m->as<torch::nn::BatchNorm2d>()) {
        bn->weight.fill_(1.0);
        bn->bias.zero_();
        bn->running_mean.zero_();
        bn->running_var.fill_(1.0);
      }
    }
  }
}

int64_t ParamBytes(const torch::nn::Sequential& unit) {
  int64_t bytes = 0;
  for (const torch::Tensor& p : unit->parameters()) bytes += p.numel() * p.element_size();
  for (const torch::Tensor& b : unit->buffers()) bytes += b.numel() * b.element_size();
  return bytes;
}

// --- The model --------------------------------------------------------------------------------

// A zoo model: one torch::nn::Sequential per unit. Immutable after Init() except To().
class ZooModel final : public SplitModel {
 public:
  ZooModel(std::string name, uint32_t version, std::vector<torch::nn::Sequential> modules,
           std::vector<UnitInfo> infos)
      : SplitModel(std::move(name), version), modules_(std::move(modules)) {
    units_ = std::move(infos);
    for (size_t i = 0; i < modules_.size(); ++i) {
      modules_[i]->eval();
      units_[i].param_bytes = ParamBytes(modules_[i]);
    }
  }

  // Probes the shapes and checks them against the builder's bookkeeping (which the FLOPs
  // counts rest on).
  Status Init(const std::vector<int64_t>& input_shape,
              const std::vector<std::vector<int64_t>>& expected) {
    try {
      ProbeShapes(input_shape);
    } catch (const std::exception& e) {
      return InternalError("probing " + name_ + ": " + e.what());
    }
    for (size_t i = 0; i < units_.size(); ++i) {
      if (units_[i].output_shape != expected[i]) {
        return InternalError(name_ + " unit " + units_[i].name + " outputs " +
                             ShapeString(units_[i].output_shape) + " but the builder expected " +
                             ShapeString(expected[i]));
      }
    }
    return Status::Ok();
  }

  at::Tensor RunRange(const at::Tensor& x, size_t from, size_t to) const override {
    TORCH_CHECK(from <= to && to <= modules_.size(), "bad range (", from, ", ", to, "] of ", name_);
    c10::InferenceMode guard;
    at::Tensor y = x;
    for (size_t i = from; i < to; ++i) {
      torch::nn::Sequential unit = modules_[i];  // a shared_ptr copy: forward() is non-const
      y = unit->forward(y);
    }
    return y;
  }

  void To(const at::Device& device) override {
    for (torch::nn::Sequential& unit : modules_) unit->to(device);
    device_ = device;
  }

  const torch::nn::Sequential& module(size_t i) const { return modules_.at(i); }

 private:
  std::vector<torch::nn::Sequential> modules_;
};

}  // namespace

bool ZooOptions::IsValid(std::string* error) const {
  auto fail = [error](const std::string& why) {
    if (error != nullptr) *error = why;
    return false;
  };
  if (input_size < 1 || input_size > 4096) {
    return fail("input_size " + std::to_string(input_size) + " is not in [1, 4096]");
  }
  if (num_classes < 1 || num_classes > 1000000) {
    return fail("num_classes " + std::to_string(num_classes) + " is not in [1, 1000000]");
  }
  if (!(width_mult > 0.0 && width_mult <= 16.0)) {
    return fail("width_mult " + std::to_string(width_mult) + " is not in (0, 16]");
  }
  if (mlp_width < 1 || mlp_width > 65536) {
    return fail("mlp_width " + std::to_string(mlp_width) + " is not in [1, 65536]");
  }
  if (mlp_layers < 1 || mlp_layers > 1024) {
    return fail("mlp_layers " + std::to_string(mlp_layers) + " is not in [1, 1024]");
  }
  return true;
}

const std::vector<std::string>& ZooModelNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const ZooEntry& e : kZoo) v.push_back(e.name);
    return v;
  }();
  return names;
}

Result<std::shared_ptr<SplitModel>> BuildZooModel(const std::string& name, uint32_t version,
                                                  const ZooOptions& options) {
  std::string why;
  if (!options.IsValid(&why)) return InvalidArgumentError("zoo options for " + name + ": " + why);
  const ZooEntry* entry = nullptr;
  for (const ZooEntry& e : kZoo) {
    if (name == e.name) entry = &e;
  }
  if (entry == nullptr) {
    std::string known;
    for (const std::string& n : ZooModelNames()) known += (known.empty() ? "" : ", ") + n;
    return NotFoundError("unknown zoo model '" + name + "' (known: " + known + ")");
  }

  // Shapes first: cheap, and on failure it finds the smallest input that works.
  ChainBuilder dry(name, InputShape(*entry, options, options.input_size), /*shapes_only=*/true);
  entry->build(dry, options);
  if (!dry.ok()) {
    for (int64_t size = options.input_size + 1; entry->image_input && size <= 4096; ++size) {
      ChainBuilder probe(name, InputShape(*entry, options, size), /*shapes_only=*/true);
      entry->build(probe, options);
      if (probe.ok()) {
        return InvalidArgumentError(name + " needs input_size >= " + std::to_string(size) +
                                    ", got " + std::to_string(options.input_size) + " (" +
                                    dry.error() + ")");
      }
    }
    return InvalidArgumentError(dry.error());
  }

  std::shared_ptr<ZooModel> model;
  ChainBuilder b(name, InputShape(*entry, options, options.input_size), /*shapes_only=*/false);
  try {
    entry->build(b, options);
    b.Finish();
    if (!b.ok()) return InternalError(b.error());
    const uint64_t seed =
        options.seed != 0 ? options.seed : Fnv1a(name + "@" + std::to_string(version));
    InitWeights(b.modules(), seed);
    model = std::make_shared<ZooModel>(name, version, b.modules(), b.infos());
  } catch (const std::exception& e) {
    return InternalError("building " + name + ": " + e.what());
  }
  SPLITINFER_RETURN_IF_ERROR(
      model->Init(InputShape(*entry, options, options.input_size), b.unit_shapes()));
  return std::shared_ptr<SplitModel>(std::move(model));
}

Result<std::vector<UnitTensor>> ZooUnitTensors(const SplitModel& model, size_t i) {
  const auto* zoo = dynamic_cast<const ZooModel*>(&model);
  if (zoo == nullptr) return InvalidArgumentError(model.name() + " is not a zoo model");
  if (i >= zoo->num_units()) {
    return InvalidArgumentError("unit " + std::to_string(i) + " of " + model.name() + " (" +
                                std::to_string(zoo->num_units()) + " units)");
  }
  std::vector<UnitTensor> out;
  const torch::nn::Sequential& unit = zoo->module(i);
  for (const auto& p : unit->named_parameters()) out.push_back({p.key(), p.value(), false});
  for (const auto& b : unit->named_buffers()) out.push_back({b.key(), b.value(), true});
  return out;
}

}  // namespace splitinfer

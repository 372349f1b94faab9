// Int8 post-training quantization of a BranchyModel on LibTorch's int8 kernels (see quantize.h).
#include "common/exits/quantize.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/native/quantized/PackedParams.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <utility>

#include <torch/torch.h>

namespace splitinfer {
namespace exits {
namespace {

using ConvPacked = c10::intrusive_ptr<ConvPackedParamsBase<2>>;
using LinearPacked = c10::intrusive_ptr<LinearPackedParamsBase>;

constexpr int64_t kHeadPool = 2;  // as in branchy_model.cc

// The quantized ops through the dispatcher (the same ones a TorchScript int8 model calls).
struct Ops {
  c10::TypedOperatorHandle<ConvPacked(at::Tensor, c10::optional<at::Tensor>, c10::List<int64_t>,
                                      c10::List<int64_t>, c10::List<int64_t>, int64_t)>
      conv_prepack;
  c10::TypedOperatorHandle<at::Tensor(at::Tensor, const ConvPacked&, double, int64_t)> conv_relu;
  c10::TypedOperatorHandle<LinearPacked(at::Tensor, c10::optional<at::Tensor>)> linear_prepack;
  c10::TypedOperatorHandle<at::Tensor(at::Tensor, const LinearPacked&, double, int64_t)> linear;

  static const Ops& Get() {
    static const Ops ops = [] {
      auto& d = c10::Dispatcher::singleton();
      return Ops{d.findSchemaOrThrow("quantized::conv2d_prepack", "")
                     .typed<ConvPacked(at::Tensor, c10::optional<at::Tensor>, c10::List<int64_t>,
                                       c10::List<int64_t>, c10::List<int64_t>, int64_t)>(),
                 d.findSchemaOrThrow("quantized::conv2d_relu", "new")
                     .typed<at::Tensor(at::Tensor, const ConvPacked&, double, int64_t)>(),
                 d.findSchemaOrThrow("quantized::linear_prepack", "")
                     .typed<LinearPacked(at::Tensor, c10::optional<at::Tensor>)>(),
                 d.findSchemaOrThrow("quantized::linear", "")
                     .typed<at::Tensor(at::Tensor, const LinearPacked&, double, int64_t)>()};
    }();
    return ops;
  }
};

struct QConv {
  Int8Weight weight;
  at::Tensor bias;  // float32, the folded batch norm
  ConvPacked packed;
  ActivationQParams out;
};

struct QLinear {
  Int8Weight weight;
  at::Tensor bias;  // float32
  LinearPacked packed;
  ActivationQParams out;
};

at::Tensor ToQuantizedWeight(const Int8Weight& w) {
  return at::_make_per_channel_quantized_tensor(
      w.q, w.scale, at::zeros({w.scale.size(0)}, at::kLong), /*axis=*/0);
}

int64_t WeightBytes(const Int8Weight& w, const at::Tensor& bias) {
  // int8 weights + float32 biases + one float32 scale per output channel.
  return w.q.numel() + bias.numel() * 4 + w.scale.numel() * 4;
}
constexpr int64_t kActivationBytes = 8;  // float32 scale + int32 zero point

// Running min/max of a tensor over calibration batches.
struct Range {
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  void Add(const at::Tensor& t) {
    min = std::min(min, t.min().item<double>());
    max = std::max(max, t.max().item<double>());
  }
};

const char* EngineName(at::QEngine e) {
  switch (e) {
    case at::QEngine::ONEDNN:
      return "onednn";
    case at::QEngine::QNNPACK:
      return "qnnpack";
    case at::QEngine::FBGEMM:
      return "fbgemm";
    default:
      return "none";
  }
}

Result<at::QEngine> ChooseEngine(const std::string& name) {
  const std::vector<at::QEngine>& supported = at::globalContext().supportedQEngines();
  auto has = [&](at::QEngine e) {
    return std::find(supported.begin(), supported.end(), e) != supported.end();
  };
  std::string list;
  for (at::QEngine e : supported) {
    if (e == at::QEngine::NoQEngine) continue;
    list += (list.empty() ? "" : ", ") + std::string(EngineName(e));
  }
  if (list.empty()) list = "none";
  if (name == "auto") {
    for (at::QEngine e : {at::QEngine::ONEDNN, at::QEngine::FBGEMM, at::QEngine::QNNPACK}) {
      if (has(e)) return e;
    }
    return UnimplementedError("this LibTorch has no int8 engine (supported: " + list + ")");
  }
  at::QEngine want;
  if (name == "onednn") {
    want = at::QEngine::ONEDNN;
  } else if (name == "qnnpack") {
    want = at::QEngine::QNNPACK;
  } else if (name == "fbgemm") {
    want = at::QEngine::FBGEMM;
  } else {
    return InvalidArgumentError("unknown int8 engine '" + name +
                                "' (auto, onednn, qnnpack or fbgemm)");
  }
  if (!has(want)) {
    return UnimplementedError("int8 engine " + name +
                              " is not in this LibTorch (supported: " + list + ")");
  }
  return want;
}

double Round(double v, double scale) { return std::round(v * scale) / scale; }

}  // namespace

Result<Int8Weight> QuantizeWeightPerChannel(const at::Tensor& w) {
  if (!w.defined() || !w.is_floating_point() || w.dim() < 1 || w.numel() == 0) {
    return InvalidArgumentError("int8 weight quantization needs a non-empty float tensor");
  }
  const at::Tensor wd = w.detach().to(at::kCPU, at::kDouble).contiguous();
  if (!at::isfinite(wd).all().item<bool>()) {
    return InvalidArgumentError("int8 weight quantization: the weight has a NaN or infinity");
  }
  const int64_t out = wd.size(0);
  at::Tensor amax = wd.abs().reshape({out, -1}).amax(1);
  at::Tensor scale = amax / 127.0;
  scale = at::where(amax > 0, scale, at::ones_like(scale));  // an all-zero channel: q = 0
  std::vector<int64_t> bshape(static_cast<size_t>(wd.dim()), 1);
  bshape[0] = out;
  const at::Tensor q = at::round(wd / scale.reshape(bshape)).clamp(-127, 127).to(at::kChar);
  return Int8Weight{q, scale};
}

at::Tensor DequantizeWeight(const Int8Weight& w) {
  std::vector<int64_t> bshape(static_cast<size_t>(w.q.dim()), 1);
  bshape[0] = w.q.size(0);
  return (w.q.to(at::kDouble) * w.scale.reshape(bshape)).to(at::kFloat);
}

Result<ActivationQParams> ChooseActivationQParams(double min, double max, const std::string& what) {
  if (!std::isfinite(min) || !std::isfinite(max)) {
    return InvalidArgumentError("calibrated range of " + what + " is not finite (" +
                                std::to_string(min) + ", " + std::to_string(max) + ")");
  }
  if (min > max) {
    return InvalidArgumentError("calibrated range of " + what + " is empty (min " +
                                std::to_string(min) + " > max " + std::to_string(max) + ")");
  }
  const double lo = std::min(min, 0.0), hi = std::max(max, 0.0);
  if (!(hi - lo > 0)) {
    return InvalidArgumentError("calibrated range of " + what +
                                " is zero (every calibration value is 0): no int8 scale fits it");
  }
  ActivationQParams p;
  p.min = min;
  p.max = max;
  p.scale = (hi - lo) / 255.0;
  p.zero_point = std::clamp<int64_t>(std::llround(-lo / p.scale), 0, 255);
  return p;
}

struct Int8BranchyModel::Impl {
  std::string name = "digits_branchy_int8";
  std::string engine;
  int64_t input_size = 32;
  ActivationQParams input;
  std::vector<QConv> convs;        // units 1..4
  std::vector<QLinear> heads;      // exits 0..2
  QLinear classifier;              // unit 5
  std::vector<size_t> exit_after;  // per exit
  std::vector<int64_t> unit_bytes, head_bytes, output_bytes;
  std::vector<std::pair<std::string, ActivationQParams>> activations;
  int64_t calibration_samples = 0;
};

Int8BranchyModel::Int8BranchyModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Int8BranchyModel::~Int8BranchyModel() = default;

const std::string& Int8BranchyModel::name() const { return impl_->name; }
const std::string& Int8BranchyModel::engine() const { return impl_->engine; }
size_t Int8BranchyModel::num_units() const { return impl_->convs.size() + 1; }
size_t Int8BranchyModel::num_exits() const { return impl_->exit_after.size(); }
size_t Int8BranchyModel::exit_after_unit(size_t e) const { return impl_->exit_after.at(e); }
int64_t Int8BranchyModel::input_size() const { return impl_->input_size; }
int64_t Int8BranchyModel::unit_param_bytes(size_t i) const { return impl_->unit_bytes.at(i); }
int64_t Int8BranchyModel::head_param_bytes(size_t e) const { return impl_->head_bytes.at(e); }
int64_t Int8BranchyModel::unit_output_bytes(size_t i) const { return impl_->output_bytes.at(i); }
const std::vector<std::pair<std::string, ActivationQParams>>& Int8BranchyModel::activations()
    const {
  return impl_->activations;
}
int64_t Int8BranchyModel::calibration_samples() const { return impl_->calibration_samples; }

at::Tensor Int8BranchyModel::QuantizeInput(const at::Tensor& x) const {
  return at::quantize_per_tensor(x, impl_->input.scale, impl_->input.zero_point, at::kQUInt8);
}

at::Tensor Int8BranchyModel::RunUnit(size_t i, const at::Tensor& q) const {
  const Ops& ops = Ops::Get();
  if (i < impl_->convs.size()) {
    const QConv& c = impl_->convs[i];
    const at::Tensor y = ops.conv_relu.call(q, c.packed, c.out.scale, c.out.zero_point);
    return at::max_pool2d(y, {2, 2}, {2, 2}, {0, 0}, {1, 1}, false);
  }
  TORCH_CHECK(i == impl_->convs.size(), "unit ", i + 1, " of ", impl_->name, " out of range");
  const QLinear& l = impl_->classifier;
  return ops.linear.call(q.reshape({q.size(0), -1}), l.packed, l.out.scale, l.out.zero_point);
}

at::Tensor Int8BranchyModel::RunHead(size_t e, const at::Tensor& q) const {
  TORCH_CHECK(e < impl_->heads.size(), "exit ", e, " of ", impl_->name, " has no head");
  const QLinear& l = impl_->heads[e];
  const at::Tensor p = at::adaptive_avg_pool2d(q, {kHeadPool, kHeadPool});
  return Ops::Get().linear.call(p.reshape({p.size(0), -1}), l.packed, l.out.scale,
                                l.out.zero_point);
}

Result<std::vector<at::Tensor>> Int8BranchyModel::ForwardAllExits(const at::Tensor& x) const {
  const int64_t s = impl_->input_size;
  if (!x.defined() || x.scalar_type() != at::kFloat || x.dim() != 4 || x.size(1) != 1 ||
      x.size(2) != s || x.size(3) != s || x.size(0) < 1) {
    return InvalidArgumentError(impl_->name + " needs a float32 input [n,1," + std::to_string(s) +
                                "," + std::to_string(s) + "] with n >= 1");
  }
  try {
    c10::InferenceMode guard;
    std::vector<at::Tensor> logits;
    at::Tensor q = QuantizeInput(x.to(at::kCPU).contiguous());
    size_t e = 0;
    for (size_t i = 0; i < num_units(); ++i) {
      q = RunUnit(i, q);
      while (e < num_exits() && impl_->exit_after[e] == i + 1) {
        logits.push_back(e + 1 == num_exits() ? q.dequantize() : RunHead(e, q).dequantize());
        ++e;
      }
    }
    return logits;
  } catch (const std::exception& ex) {
    return InternalError("running " + impl_->name + ": " + ex.what());
  }
}

Result<std::shared_ptr<Int8BranchyModel>> QuantizeBranchy(BranchyModel* model,
                                                          const DigitsData& calibration,
                                                          const QuantizeOptions& options) {
  if (model == nullptr) return InvalidArgumentError("no model to quantize");
  if (model->device() != at::Device(at::kCPU)) {
    return InvalidArgumentError("int8 quantization runs on the CPU; the model is on " +
                                DeviceName(model->device()));
  }
  if (!calibration.images.defined() || calibration.size() == 0) {
    return InvalidArgumentError("int8 calibration needs at least one sample (got none)");
  }
  if (options.calibration_batch < 1) {
    return InvalidArgumentError("calibration batch must be >= 1");
  }
  Result<at::QEngine> engine = ChooseEngine(options.engine);
  if (!engine.ok()) return engine.status();

  auto impl = std::make_unique<Int8BranchyModel::Impl>();
  impl->engine = EngineName(*engine);
  impl->input_size = model->options().input_size;
  for (size_t e = 0; e < model->num_exits(); ++e)
    impl->exit_after.push_back(model->exit_after_unit(e));

  // The layers, checked against digits_branchy's layout (branchy_model.cc).
  torch::nn::Module& net = model->module();
  std::vector<std::shared_ptr<torch::nn::SequentialImpl>> units, heads;
  for (const auto& child : net.named_children()) {
    auto seq = std::dynamic_pointer_cast<torch::nn::SequentialImpl>(child.value());
    if (!seq) return InvalidArgumentError("unexpected module " + child.key() + " in the model");
    (child.key().rfind("unit", 0) == 0 ? units : heads).push_back(seq);
  }
  if (units.size() != 5 || heads.size() != 3 || model->num_exits() != 4) {
    return InvalidArgumentError(
        "int8 quantization knows digits_branchy's 5 units and 3 heads; "
        "the model has " +
        std::to_string(units.size()) + " units and " + std::to_string(heads.size()) + " heads");
  }

  try {
    c10::InferenceMode guard;
    // Untrained: batch norm never saw a batch (a trained or loaded model has counted them).
    int64_t tracked = 0;
    for (const auto& b : net.named_buffers()) {
      if (b.key().find("num_batches_tracked") != std::string::npos) {
        tracked += b.value().item<int64_t>();
      }
    }
    if (tracked == 0) {
      return InvalidArgumentError(
          "the model is untrained (no batch norm has seen a batch): train or load weights before "
          "quantizing it");
    }

    // Calibration on the float model: per-tensor ranges of the input, each unit's output,
    // each head's logits. A conv unit's output is relu then max-pool: max-pool keeps the max
    // and the range is widened to 0 anyway, so its range is the one of the relu output the
    // int8 conv produces.
    std::vector<Range> unit_ranges(units.size()), head_ranges(heads.size());
    Range input_range;
    const int64_t n = calibration.size();
    for (int64_t b = 0; b < n; b += options.calibration_batch) {
      const int64_t end = std::min(n, b + options.calibration_batch);
      at::Tensor y = PrepareDigitsInput(calibration.images.slice(0, b, end), impl->input_size);
      input_range.Add(y);
      size_t e = 0;
      for (size_t i = 0; i < units.size(); ++i) {
        y = units[i]->forward(y);
        unit_ranges[i].Add(y);
        if (e < heads.size() && impl->exit_after[e] == i + 1) {
          head_ranges[e].Add(heads[e]->forward(y));
          ++e;
        }
      }
    }
    impl->calibration_samples = n;
    auto qparams = [&](const Range& r, const std::string& what) {
      return ChooseActivationQParams(r.min, r.max, what);
    };
    Result<ActivationQParams> in = qparams(input_range, "the model input");
    if (!in.ok()) return in.status();
    impl->input = *in;
    impl->activations.emplace_back("input", *in);

    at::globalContext().setQEngine(*engine);
    const Ops& ops = Ops::Get();
    // Conv units: fold batch norm, quantize, pack.
    for (size_t i = 0; i + 1 < units.size(); ++i) {
      auto conv = units[i]->ptr(0)->as<torch::nn::Conv2dImpl>();
      auto bn = units[i]->ptr(1)->as<torch::nn::BatchNorm2dImpl>();
      if (conv == nullptr || bn == nullptr) {
        return InvalidArgumentError("unit " + std::to_string(i + 1) + " is not conv + batch norm");
      }
      const at::Tensor inv_std = (bn->running_var + bn->options.eps()).rsqrt();
      const at::Tensor g = bn->weight * inv_std;
      const at::Tensor w = conv->weight * g.reshape({-1, 1, 1, 1});
      QConv qc;
      qc.bias = (bn->bias - bn->running_mean * g).contiguous();
      Result<Int8Weight> qw = QuantizeWeightPerChannel(w);
      if (!qw.ok())
        return Status(qw.status().code(),
                      "unit " + std::to_string(i + 1) + ": " + qw.status().message());
      qc.weight = *qw;
      const std::string what = "unit " + std::to_string(i + 1) + "'s output";
      Result<ActivationQParams> out = qparams(unit_ranges[i], what);
      if (!out.ok()) return out.status();
      qc.out = *out;
      qc.packed =
          ops.conv_prepack.call(ToQuantizedWeight(qc.weight), qc.bias, {1, 1}, {1, 1}, {1, 1}, 1);
      impl->activations.emplace_back("unit" + std::to_string(i + 1), qc.out);
      impl->unit_bytes.push_back(WeightBytes(qc.weight, qc.bias) + kActivationBytes +
                                 (i == 0 ? kActivationBytes : 0));
      impl->output_bytes.push_back(model->unit(i).output_bytes / 4);  // float32 -> quint8
      impl->convs.push_back(std::move(qc));
    }
    auto quantize_linear = [&](torch::nn::SequentialImpl& seq, size_t index, const Range& range,
                               const std::string& what) -> Result<QLinear> {
      auto lin = seq.ptr(index)->as<torch::nn::LinearImpl>();
      if (lin == nullptr) return InvalidArgumentError(what + " is not a linear layer");
      QLinear ql;
      ql.bias = lin->bias.contiguous();
      Result<Int8Weight> qw = QuantizeWeightPerChannel(lin->weight);
      if (!qw.ok()) return Status(qw.status().code(), what + ": " + qw.status().message());
      ql.weight = *qw;
      Result<ActivationQParams> out = qparams(range, what + "'s logits");
      if (!out.ok()) return out.status();
      ql.out = *out;
      ql.packed = ops.linear_prepack.call(ToQuantizedWeight(ql.weight), ql.bias);
      return ql;
    };
    for (size_t e = 0; e < heads.size(); ++e) {
      const std::string name = "exit" + std::to_string(e);
      Result<QLinear> ql =
          quantize_linear(*heads[e], 2, head_ranges[e], "exit " + std::to_string(e));
      if (!ql.ok()) return ql.status();
      impl->head_bytes.push_back(WeightBytes(ql->weight, ql->bias) + kActivationBytes);
      impl->heads.push_back(std::move(*ql));
    }
    impl->head_bytes.push_back(0);  // the final exit is the classifier itself
    for (size_t e = 0; e < heads.size(); ++e) {
      impl->activations.emplace_back("exit" + std::to_string(e), impl->heads[e].out);
    }
    Result<QLinear> cls = quantize_linear(*units.back(), 1, unit_ranges.back(), "the classifier");
    if (!cls.ok()) return cls.status();
    impl->classifier = std::move(*cls);
    impl->activations.emplace_back("classifier", impl->classifier.out);
    impl->unit_bytes.push_back(WeightBytes(impl->classifier.weight, impl->classifier.bias) +
                               kActivationBytes);
    impl->output_bytes.push_back(model->unit(units.size() - 1).output_bytes);  // float logits
  } catch (const std::exception& ex) {
    return InternalError(std::string("quantizing digits_branchy: ") + ex.what());
  }
  return std::make_shared<Int8BranchyModel>(std::move(impl));
}

Result<std::vector<at::Tensor>> EvaluateInt8Exits(const Int8BranchyModel& model,
                                                  const DigitsData& data) {
  if (!data.images.defined() || data.size() == 0) {
    return InvalidArgumentError("no samples to evaluate");
  }
  at::Tensor x;
  try {
    c10::InferenceMode guard;
    x = PrepareDigitsInput(data.images, model.input_size()).contiguous();
  } catch (const std::exception& e) {
    return InternalError(std::string("preparing the digits input: ") + e.what());
  }
  return model.ForwardAllExits(x);
}

Result<BranchyProfile> ProfileInt8Branchy(const Int8BranchyModel& model, int repeats, int warmup) {
  if (repeats < 1 || warmup < 0) return InvalidArgumentError("repeats >= 1, warmup >= 0");
  BranchyProfile p;
  p.repeats = repeats;
  try {
    c10::InferenceMode guard;
    at::Generator gen = at::detail::createCPUGenerator(1);
    const at::Tensor x = at::rand({1, 1, model.input_size(), model.input_size()}, gen);
    std::vector<at::Tensor> boundary;  // quint8 boundary tensors after units 1..N-1
    at::Tensor q;
    for (size_t i = 0; i < model.num_units(); ++i) {
      at::Tensor y;
      if (i == 0) {
        p.units.push_back(
            TimeRuns([&] { y = model.RunUnit(0, model.QuantizeInput(x)); }, repeats, warmup));
      } else if (i + 1 == model.num_units()) {
        p.units.push_back(TimeRuns([&] { y = model.RunUnit(i, q).dequantize(); }, repeats, warmup));
      } else {
        p.units.push_back(TimeRuns([&] { y = model.RunUnit(i, q); }, repeats, warmup));
      }
      q = y;
      boundary.push_back(q);
    }
    for (size_t e = 0; e < model.num_exits(); ++e) {
      if (e + 1 == model.num_exits()) {
        p.heads.push_back(Timing{});
        continue;
      }
      const at::Tensor& b = boundary.at(model.exit_after_unit(e) - 1);
      at::Tensor y;
      p.heads.push_back(TimeRuns([&] { y = model.RunHead(e, b).dequantize(); }, repeats, warmup));
    }
  } catch (const std::exception& e) {
    return InternalError(std::string("profiling digits_branchy_int8: ") + e.what());
  }
  return p;
}

nlohmann::ordered_json QuantizationJson(const Int8BranchyModel& model) {
  nlohmann::ordered_json q;
  q["engine"] = model.engine();
  q["weights"] = "int8, symmetric, per output channel (batch norm folded into the convs)";
  q["activations"] = "uint8, asymmetric, per tensor, min/max calibration";
  q["calibration"] = "training split";
  q["calibration_samples"] = model.calibration_samples();
  q["ranges"] = nlohmann::ordered_json::array();
  for (const auto& a : model.activations()) {
    q["ranges"].push_back(nlohmann::ordered_json{{"tensor", a.first},
                                                 {"min", Round(a.second.min, 1e6)},
                                                 {"max", Round(a.second.max, 1e6)},
                                                 {"scale", a.second.scale},
                                                 {"zero_point", a.second.zero_point}});
  }
  q["time_source"] = "int8 kernels (LibTorch quantized::conv2d_relu / quantized::linear, " +
                     model.engine() + " engine)";
  return q;
}

nlohmann::ordered_json Int8ExitStatsJson(const BranchyModel& float_model,
                                         const Int8BranchyModel& model, const DigitsSplit& split,
                                         uint64_t seed, const std::vector<at::Tensor>& test_logits,
                                         const BranchyProfile& profile) {
  nlohmann::ordered_json j = ExitStatsJson(float_model, split, seed, test_logits, profile);
  j["model"] = model.name();
  for (size_t e = 0; e < model.num_exits(); ++e) {
    j["exits"][e]["head_param_bytes"] = model.head_param_bytes(e);
  }
  j["quantization"] = QuantizationJson(model);
  return j;
}

nlohmann::ordered_json Int8ProfileJson(const BranchyModel& float_model,
                                       const Int8BranchyModel& model, const BranchyProfile& profile,
                                       int threads) {
  nlohmann::ordered_json j = ProfileJson(float_model, profile, threads);
  j["model"] = model.name();
  for (size_t i = 0; i < model.num_units(); ++i) {
    j["units"][i]["output_bytes"] = model.unit_output_bytes(i);
    j["units"][i]["param_bytes"] = model.unit_param_bytes(i);
  }
  j["quantization"] = QuantizationJson(model);
  return j;
}

}  // namespace exits
}  // namespace splitinfer

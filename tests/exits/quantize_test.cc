// Tests of the int8 post-training quantization of BranchyModel (common/exits/quantize.h):
// per-channel weight rounding within half a step, activation parameters, the int8 kernels
// against the scheme computed in float, bad inputs, determinism, and on the real held-out digits
// the int8 model's accuracy against the float model it came from.
#include "common/exits/quantize.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "common/exits/digits.h"
#include "common/exits/train.h"
#include "tests/exits/trained_model.h"

namespace splitinfer {
namespace exits {
namespace {

// The int8 model's held-out accuracy may differ from the float model's by at most this much at
// the final exit (and at most kExitDrop at the early exits). Real run (train_exits defaults:
// seed 1, 15 epochs, Adam lr 0.01, batch 32, width 8, 1 thread; calibrated on the 1437 training
// digits; onednn kernels; AMD EPYC VM with AVX-512 VNNI, LibTorch 1.13.1, 2026-11-26): float
// exits 0.9111 / 0.9611 / 0.9944 / 0.9889, int8 0.9111 / 0.9556 / 0.9944 / 0.9889 on the 360
// held-out digits (the final exit: 356/360 both). The bounds leave room for another CPU's
// rounding of the training.
constexpr double kFinalDrop = 0.01;  // 3.6 of 360 samples
constexpr double kExitDrop = 0.02;
constexpr double kFinalAccuracyFloor = 0.97;

class QuantizeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { at::set_num_threads(1); }

  static std::shared_ptr<BranchyModel> Untrained(uint64_t seed = 1) {
    return test_support::UntrainedBranchy(seed);
  }

  static DigitsSplit Split() { return test_support::DigitsSplitSeed1(); }

  // The model trained with train_exits' defaults (seed 1), cached under the build directory and
  // shared by the exits tests (tests/exits/trained_model.h).
  static std::shared_ptr<BranchyModel> Trained() {
    return test_support::CachedTrainedBranchy(EXITS_TEST_CACHE_DIR);
  }
};

TEST_F(QuantizeTest, WeightRoundingWithinHalfAStep) {
  at::Generator gen = at::detail::createCPUGenerator(5);
  std::vector<at::Tensor> weights = {at::randn({16, 8, 3, 3}, gen), at::randn({10, 64}, gen) * 0.01,
                                     at::rand({4, 1, 3, 3}, gen) - 0.5};
  // A channel of zeros and a channel with one outlier.
  at::Tensor w = at::randn({3, 20}, gen);
  w[0].zero_();
  w[2][7] = 50.0;
  weights.push_back(w);
  for (const at::Tensor& t : weights) {
    Result<Int8Weight> q = QuantizeWeightPerChannel(t);
    ASSERT_TRUE(q.ok()) << q.status();
    ASSERT_EQ(q->q.scalar_type(), at::kChar);
    ASSERT_EQ(q->q.sizes(), t.sizes());
    ASSERT_EQ(q->scale.numel(), t.size(0));
    EXPECT_LE(q->q.abs().max().item<int>(), 127);
    const at::Tensor wd = t.to(at::kDouble).reshape({t.size(0), -1});
    const at::Tensor err =
        (wd - DequantizeWeight(*q).to(at::kDouble).reshape({t.size(0), -1})).abs();
    for (int64_t c = 0; c < t.size(0); ++c) {
      const double scale = q->scale[c].item<double>();
      ASSERT_GT(scale, 0);
      // Half a step, plus the float32 rounding of the dequantized value.
      const double bound = scale / 2 * (1 + 1e-9) + 1e-6 * wd[c].abs().max().item<double>();
      EXPECT_LE(err[c].max().item<double>(), bound) << "channel " << c;
      if (wd[c].abs().max().item<double>() > 0) {
        EXPECT_EQ(q->q.reshape({t.size(0), -1})[c].abs().max().item<int>(), 127) << c;
      } else {
        EXPECT_EQ(q->q.reshape({t.size(0), -1})[c].abs().max().item<int>(), 0) << c;
      }
    }
  }
  // The outlier channel: the outlier itself is exact, the rest within 50/254.
  Result<Int8Weight> q = QuantizeWeightPerChannel(w);
  ASSERT_TRUE(q.ok());
  EXPECT_DOUBLE_EQ(q->scale[2].item<double>(), 50.0 / 127);
  EXPECT_EQ(q->q[2][7].item<int>(), 127);

  EXPECT_EQ(QuantizeWeightPerChannel(at::Tensor()).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(QuantizeWeightPerChannel(at::zeros({0, 3})).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(QuantizeWeightPerChannel(at::ones({2, 2}, at::kInt)).status().code(),
            StatusCode::kInvalidArgument);
  at::Tensor nan = at::ones({2, 2});
  nan[1][1] = std::nan("");
  EXPECT_EQ(QuantizeWeightPerChannel(nan).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(QuantizeTest, ActivationParameters) {
  Result<ActivationQParams> p = ChooseActivationQParams(0, 2.55, "t");
  ASSERT_TRUE(p.ok());
  EXPECT_NEAR(p->scale, 0.01, 1e-15);
  EXPECT_EQ(p->zero_point, 0);
  p = ChooseActivationQParams(-1, 1, "t");
  ASSERT_TRUE(p.ok());
  EXPECT_NEAR(p->scale, 2.0 / 255, 1e-15);
  EXPECT_EQ(p->zero_point, 128);             // round(127.5)
  p = ChooseActivationQParams(0.5, 3, "t");  // widened to include 0
  ASSERT_TRUE(p.ok());
  EXPECT_NEAR(p->scale, 3.0 / 255, 1e-15);
  EXPECT_EQ(p->zero_point, 0);
  EXPECT_DOUBLE_EQ(p->min, 0.5);
  p = ChooseActivationQParams(-4, -2, "t");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->zero_point, 255);

  Status zero = ChooseActivationQParams(0, 0, "unit 3's output").status();
  EXPECT_EQ(zero.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(zero.message().find("unit 3's output"), std::string::npos) << zero;
  EXPECT_NE(zero.message().find("zero"), std::string::npos) << zero;
  EXPECT_EQ(ChooseActivationQParams(std::nan(""), 1, "t").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ChooseActivationQParams(0, INFINITY, "t").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ChooseActivationQParams(2, 1, "t").status().code(), StatusCode::kInvalidArgument);
}

TEST_F(QuantizeTest, BadInputsGiveClearErrors) {
  const DigitsSplit split = Split();
  // No model.
  Status st = QuantizeBranchy(nullptr, split.train).status();
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st;
  // Untrained: batch norm never saw a batch.
  std::shared_ptr<BranchyModel> untrained = Untrained();
  st = QuantizeBranchy(untrained.get(), split.train).status();
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st;
  EXPECT_NE(st.message().find("untrained"), std::string::npos) << st;

  std::shared_ptr<BranchyModel> m = Trained();
  // Empty calibration set.
  DigitsData empty;
  st = QuantizeBranchy(m.get(), empty).status();
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st;
  DigitsData none{split.train.images.slice(0, 0, 0), split.train.labels.slice(0, 0, 0)};
  st = QuantizeBranchy(m.get(), none).status();
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st;
  // Zero-range calibration: blank images give an input range of exactly [0, 0].
  DigitsData blank{at::zeros({16, 1, 8, 8}), at::zeros({16}, at::kLong)};
  st = QuantizeBranchy(m.get(), blank).status();
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st;
  EXPECT_NE(st.message().find("zero"), std::string::npos) << st;
  EXPECT_NE(st.message().find("input"), std::string::npos) << st;
  // Engines.
  QuantizeOptions o;
  o.engine = "tensorrt";
  EXPECT_EQ(QuantizeBranchy(m.get(), split.train, o).status().code(), StatusCode::kInvalidArgument);
  o = QuantizeOptions{};
  o.calibration_batch = 0;
  EXPECT_EQ(QuantizeBranchy(m.get(), split.train, o).status().code(), StatusCode::kInvalidArgument);
  // Bad inputs to the int8 model.
  Result<std::shared_ptr<Int8BranchyModel>> q = QuantizeBranchy(m.get(), split.train);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ((*q)->ForwardAllExits(at::Tensor()).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*q)->ForwardAllExits(at::rand({1, 1, 16, 16})).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ((*q)->ForwardAllExits(at::rand({1, 3, 32, 32})).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ((*q)->ForwardAllExits(at::rand({1, 1, 32, 32}, at::kDouble)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(EvaluateInt8Exits(**q, empty).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ProfileInt8Branchy(**q, 0, 0).status().code(), StatusCode::kInvalidArgument);
}

// Structure and bytes of the int8 model at width 8.
TEST_F(QuantizeTest, StructureAndBytes) {
  std::shared_ptr<BranchyModel> m = Trained();
  const DigitsSplit split = Split();
  Result<std::shared_ptr<Int8BranchyModel>> r = QuantizeBranchy(m.get(), split.train);
  ASSERT_TRUE(r.ok()) << r.status();
  const Int8BranchyModel& q = **r;
  EXPECT_EQ(q.name(), "digits_branchy_int8");
  EXPECT_TRUE(q.engine() == "onednn" || q.engine() == "qnnpack" || q.engine() == "fbgemm");
  ASSERT_EQ(q.num_units(), 5u);
  ASSERT_EQ(q.num_exits(), 4u);
  EXPECT_EQ(q.calibration_samples(), split.train.size());
  // Conv unit: c_out*c_in*9 int8 weights + c_out float biases + c_out float scales + 8 bytes of
  // output parameters (+ 8 of input parameters for unit 1).
  const std::vector<int64_t> cin = {1, 8, 16, 32}, cout = {8, 16, 32, 64};
  for (size_t i = 0; i < 4; ++i) {
    const int64_t want = cout[i] * cin[i] * 9 + cout[i] * 8 + 8 + (i == 0 ? 8 : 0);
    EXPECT_EQ(q.unit_param_bytes(i), want) << i;
    EXPECT_LT(q.unit_param_bytes(i), m->unit(i).param_bytes) << i;
    EXPECT_EQ(q.unit_output_bytes(i), m->unit(i).output_bytes / 4) << i;
  }
  EXPECT_EQ(q.unit_param_bytes(4), 256 * 10 + 10 * 8 + 8);
  EXPECT_EQ(q.unit_output_bytes(4), 40);
  const std::vector<int64_t> features = {32, 64, 128};
  for (size_t e = 0; e < 3; ++e) {
    EXPECT_EQ(q.head_param_bytes(e), features[e] * 10 + 10 * 8 + 8) << e;
  }
  EXPECT_EQ(q.head_param_bytes(3), 0);
  // The whole int8 model is between a quarter and a third of the float model's bytes.
  int64_t fbytes = 0, qbytes = 0;
  for (size_t i = 0; i < 5; ++i) fbytes += m->unit(i).param_bytes, qbytes += q.unit_param_bytes(i);
  EXPECT_LT(qbytes * 3, fbytes);
  EXPECT_GT(qbytes * 4, fbytes);
  // Activation points: input, 4 units, 3 heads, classifier; post-relu ranges start at 0.
  ASSERT_EQ(q.activations().size(), 9u);
  EXPECT_EQ(q.activations().front().first, "input");
  EXPECT_EQ(q.activations().back().first, "classifier");
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_GE(q.activations()[i].second.min, 0) << q.activations()[i].first;
    EXPECT_EQ(q.activations()[i].second.zero_point, 0) << q.activations()[i].first;
  }
  // Profile: every unit and head timed.
  Result<BranchyProfile> p = ProfileInt8Branchy(q, 3, 1);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->units.size(), 5u);
  ASSERT_EQ(p->heads.size(), 4u);
  for (const Timing& t : p->units) EXPECT_GT(t.median_ms, 0);
  EXPECT_EQ(p->heads[3].median_ms, 0);
}

// The int8 kernels compute the scheme: unit 1 on the int8 path equals, within one output step,
// the float convolution of the dequantized input and weights plus the folded bias, relu and
// max-pool, requantized with the unit's output parameters.
TEST_F(QuantizeTest, Int8KernelsMatchTheSchemeInFloat) {
  std::shared_ptr<BranchyModel> m = Trained();
  const DigitsSplit split = Split();
  Result<std::shared_ptr<Int8BranchyModel>> r = QuantizeBranchy(m.get(), split.train);
  ASSERT_TRUE(r.ok()) << r.status();
  const Int8BranchyModel& q = **r;
  c10::InferenceMode guard;
  const at::Tensor x = PrepareDigitsInput(split.test.images.slice(0, 0, 20), 32).contiguous();
  const at::Tensor qx = q.QuantizeInput(x);
  const at::Tensor y = q.RunUnit(0, qx).dequantize();
  // The folded conv in float from the model's own parameters.
  auto& net = m->module();
  const auto params = net.named_parameters();
  const auto buffers = net.named_buffers();
  const at::Tensor g = params["unit1.1.weight"] * (buffers["unit1.1.running_var"] + 1e-5).rsqrt();
  const at::Tensor wf = params["unit1.0.weight"] * g.reshape({-1, 1, 1, 1});
  const at::Tensor bf = params["unit1.1.bias"] - buffers["unit1.1.running_mean"] * g;
  Result<Int8Weight> qw = QuantizeWeightPerChannel(wf);
  ASSERT_TRUE(qw.ok());
  const at::Tensor ref = at::max_pool2d(
      at::relu(at::conv2d(qx.dequantize(), DequantizeWeight(*qw), bf, 1, 1)), {2, 2}, {2, 2});
  const double step = q.activations()[1].second.scale;
  const double out_max = q.activations()[1].second.scale * 255;
  const at::Tensor diff = (y - ref.clamp(0, out_max)).abs();
  EXPECT_LE(diff.max().item<double>(), step * 1.01) << "step " << step;
  EXPECT_LE(diff.mean().item<double>(), step * 0.3);
}

// On the real held-out digits: the int8 model stays within kFinalDrop of the float model at the
// final exit (and kExitDrop at the early ones).
TEST_F(QuantizeTest, HeldOutAccuracyCloseToFloat) {
  std::shared_ptr<BranchyModel> m = Trained();
  const DigitsSplit split = Split();
  Result<std::vector<at::Tensor>> fl = EvaluateExits(*m, split.test);
  ASSERT_TRUE(fl.ok()) << fl.status();
  Result<std::shared_ptr<Int8BranchyModel>> q = QuantizeBranchy(m.get(), split.train);
  ASSERT_TRUE(q.ok()) << q.status();
  Result<std::vector<at::Tensor>> ql = EvaluateInt8Exits(**q, split.test);
  ASSERT_TRUE(ql.ok()) << ql.status();
  ASSERT_EQ(ql->size(), 4u);
  for (size_t e = 0; e < 4; ++e) {
    ASSERT_EQ((*ql)[e].sizes(), (std::vector<int64_t>{split.test.size(), 10}));
    EXPECT_EQ((*ql)[e].scalar_type(), at::kFloat);
    const double fa = Accuracy((*fl)[e], split.test.labels);
    const double qa = Accuracy((*ql)[e], split.test.labels);
    std::printf("exit %zu: float %.4f int8 %.4f\n", e, fa, qa);
    EXPECT_NEAR(qa, fa, e == 3 ? kFinalDrop : kExitDrop) << "exit " << e;
    // Logits agree in argmax on most samples.
    const double agree =
        (*ql)[e].argmax(1).eq((*fl)[e].argmax(1)).to(at::kDouble).mean().item<double>();
    EXPECT_GE(agree, 0.97) << "exit " << e;
  }
  EXPECT_GE(Accuracy((*ql)[3], split.test.labels), kFinalAccuracyFloor);
}

// Same model and calibration: bitwise the same int8 model and logits; the calibration set
// matters (another set gives other ranges).
TEST_F(QuantizeTest, Deterministic) {
  std::shared_ptr<BranchyModel> m = Trained();
  const DigitsSplit split = Split();
  Result<std::shared_ptr<Int8BranchyModel>> a = QuantizeBranchy(m.get(), split.train);
  Result<std::shared_ptr<Int8BranchyModel>> b = QuantizeBranchy(m.get(), split.train);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ((*a)->activations().size(), (*b)->activations().size());
  for (size_t i = 0; i < (*a)->activations().size(); ++i) {
    EXPECT_EQ((*a)->activations()[i].second.scale, (*b)->activations()[i].second.scale);
    EXPECT_EQ((*a)->activations()[i].second.zero_point, (*b)->activations()[i].second.zero_point);
  }
  Result<std::vector<at::Tensor>> la = EvaluateInt8Exits(**a, split.test);
  Result<std::vector<at::Tensor>> lb = EvaluateInt8Exits(**b, split.test);
  Result<std::vector<at::Tensor>> la2 = EvaluateInt8Exits(**a, split.test);
  ASSERT_TRUE(la.ok() && lb.ok() && la2.ok());
  for (size_t e = 0; e < la->size(); ++e) {
    EXPECT_TRUE(at::equal((*la)[e], (*lb)[e])) << e;
    EXPECT_TRUE(at::equal((*la)[e], (*la2)[e])) << e;
  }
  // Calibration batch size does not change min/max ranges.
  QuantizeOptions o;
  o.calibration_batch = 100;
  Result<std::shared_ptr<Int8BranchyModel>> c = QuantizeBranchy(m.get(), split.train, o);
  ASSERT_TRUE(c.ok());
  for (size_t i = 0; i < (*a)->activations().size(); ++i) {
    EXPECT_FLOAT_EQ((*a)->activations()[i].second.scale, (*c)->activations()[i].second.scale);
  }
  // Another calibration set (the first 50 training digits): other ranges.
  DigitsData few{split.train.images.slice(0, 0, 50), split.train.labels.slice(0, 0, 50)};
  Result<std::shared_ptr<Int8BranchyModel>> d = QuantizeBranchy(m.get(), few);
  ASSERT_TRUE(d.ok());
  bool differs = false;
  for (size_t i = 1; i < (*a)->activations().size(); ++i) {
    differs |= (*a)->activations()[i].second.scale != (*d)->activations()[i].second.scale;
  }
  EXPECT_TRUE(differs);
}

}  // namespace
}  // namespace exits
}  // namespace splitinfer

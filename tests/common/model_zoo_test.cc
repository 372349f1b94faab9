// Tests of the model zoo (common/model_zoo.h) and the SplitModel checks (common/split_model.h):
// split equivalence at every boundary, deterministic weights, shapes, FLOPs, parameter counts
// against torchvision, and the errors for bad names, sizes and inputs.
#include "common/model_zoo.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <ostream>
#include <set>
#include <string>
#include <vector>

namespace splitinfer {
namespace {

struct ZooCase {
  std::string name;
  ZooOptions options;
  size_t num_units;
};

std::ostream& operator<<(std::ostream& os, const ZooCase& c) { return os << c.name; }

ZooOptions Small(int64_t input_size) {
  ZooOptions o;
  o.input_size = input_size;
  o.width_mult = 0.25;
  o.num_classes = 10;
  o.mlp_width = 64;
  o.mlp_layers = 6;
  return o;
}

std::vector<ZooCase> SmallCases() {
  return {{"alexnet", Small(63), 8},
          {"vgg16", Small(32), 16},
          {"resnet18", Small(40), 10},
          {"mobilenetv2", Small(48), 20},
          {"mlp", Small(32), 6}};
}

std::vector<int64_t> WithBatch(int64_t batch, const std::vector<int64_t>& shape) {
  std::vector<int64_t> v{batch};
  v.insert(v.end(), shape.begin(), shape.end());
  return v;
}

at::Tensor RandomInput(const SplitModel& m, int64_t batch, uint64_t seed = 7) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return at::randn(WithBatch(batch, m.input_shape()), gen);
}

std::shared_ptr<SplitModel> MustBuild(const std::string& name, uint32_t version,
                                      const ZooOptions& o) {
  Result<std::shared_ptr<SplitModel>> r = BuildZooModel(name, version, o);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : nullptr;
}

class ZooModelTest : public ::testing::TestWithParam<ZooCase> {
 protected:
  void SetUp() override {
    model_ = MustBuild(GetParam().name, 1, GetParam().options);
    ASSERT_NE(model_, nullptr);
  }
  std::shared_ptr<SplitModel> model_;
};

TEST_P(ZooModelTest, HasTheDocumentedUnits) {
  EXPECT_EQ(model_->num_units(), GetParam().num_units);
  std::set<std::string> names;
  for (const UnitInfo& u : model_->units()) {
    EXPECT_FALSE(u.name.empty());
    EXPECT_TRUE(names.insert(u.name).second) << "duplicate unit name " << u.name;
    EXPECT_GT(u.flops, 0) << u.name;
    EXPECT_GT(u.param_bytes, 0) << u.name;
  }
  EXPECT_EQ(model_->name(), GetParam().name);
  EXPECT_EQ(model_->version(), 1u);
  EXPECT_TRUE(model_->device().is_cpu());
}

TEST_P(ZooModelTest, SplitAtEveryBoundaryGivesTheSameOutput) {
  const size_t n = model_->num_units();
  const at::Tensor x = RandomInput(*model_, 2);
  const at::Tensor want = model_->RunRange(x, 0, n);
  ASSERT_EQ(want.dim(), 2);
  EXPECT_TRUE(want.isfinite().all().item<bool>());
  EXPECT_GT(want.std().item<double>(), 0.0);  // random weights, yet not a constant output
  const double scale = std::max(1.0, want.abs().max().item<double>());
  for (size_t k = 0; k <= n; ++k) {
    const at::Tensor mid = model_->RunRange(x, 0, k);
    const at::Tensor got = model_->RunRange(mid, k, n);
    EXPECT_LE((got - want).abs().max().item<double>(), 1e-5 * scale) << "k = " << k;
    EXPECT_TRUE(at::equal(got.argmax(1), want.argmax(1))) << "k = " << k;
  }
}

TEST_P(ZooModelTest, BoundaryShapesMatchActualOutputs) {
  at::Tensor x = RandomInput(*model_, 3);
  EXPECT_EQ(model_->input_bytes(), x.numel() / 3 * 4);
  for (size_t k = 0; k <= model_->num_units(); ++k) {
    if (k > 0) {
      x = model_->RunRange(x, k - 1, k);
      const UnitInfo& u = model_->unit(k - 1);
      EXPECT_EQ(u.output_shape, model_->boundary_shape(k)) << u.name;
      EXPECT_EQ(u.output_bytes, x.numel() / 3 * 4) << u.name;
    }
    EXPECT_EQ(x.sizes().vec(), WithBatch(3, model_->boundary_shape(k))) << "k = " << k;
  }
  EXPECT_EQ(model_->boundary_shape(model_->num_units()).size(), 1u);
}

TEST_P(ZooModelTest, SameVersionGivesBitIdenticalOutputs) {
  std::shared_ptr<SplitModel> again = MustBuild(GetParam().name, 1, GetParam().options);
  ASSERT_NE(again, nullptr);
  const at::Tensor x = RandomInput(*model_, 2);
  const size_t n = model_->num_units();
  EXPECT_TRUE(at::equal(model_->RunRange(x, 0, n), again->RunRange(x, 0, n)));
}

TEST_P(ZooModelTest, OtherVersionOrSeedGivesOtherWeights) {
  const at::Tensor x = RandomInput(*model_, 2);
  const size_t n = model_->num_units();
  const at::Tensor want = model_->RunRange(x, 0, n);
  std::shared_ptr<SplitModel> v2 = MustBuild(GetParam().name, 2, GetParam().options);
  ASSERT_NE(v2, nullptr);
  EXPECT_FALSE(at::equal(want, v2->RunRange(x, 0, n)));
  ZooOptions seeded = GetParam().options;
  seeded.seed = 12345;
  std::shared_ptr<SplitModel> s = MustBuild(GetParam().name, 1, seeded);
  ASSERT_NE(s, nullptr);
  EXPECT_FALSE(at::equal(want, s->RunRange(x, 0, n)));
}

TEST_P(ZooModelTest, CheckedRunRejectsWrongShapesAndBoundaries) {
  const size_t n = model_->num_units();
  const at::Tensor x = RandomInput(*model_, 2);
  // The model input fed at a later boundary is rejected wherever the shape there differs
  // (every boundary of the CNNs; none of the MLP's, whose units keep [N,64]).
  for (size_t k = 1; k <= n; ++k) {
    if (model_->boundary_shape(k) == model_->input_shape()) continue;
    Status s = model_->CheckBoundaryInput(k, x.sizes());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << "k = " << k;
    Result<at::Tensor> r = model_->RunRangeChecked(x, k, n);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << "k = " << k;
  }
  EXPECT_EQ(model_->CheckBoundaryInput(n + 1, x.sizes()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(model_->RunRangeChecked(x, 0, n + 1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(model_->RunRangeChecked(x.to(at::kDouble), 0, n).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(model_->RunRangeChecked(x[0], 0, n).status().code(),  // no batch dimension
            StatusCode::kInvalidArgument);
  EXPECT_EQ(model_->RunRangeChecked(at::Tensor(), 0, n).status().code(),
            StatusCode::kInvalidArgument);

  Result<at::Tensor> ok = model_->RunRangeChecked(x, 0, n);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE(at::equal(*ok, model_->RunRange(x, 0, n)));
}

INSTANTIATE_TEST_SUITE_P(AllModels, ZooModelTest, ::testing::ValuesIn(SmallCases()),
                         [](const ::testing::TestParamInfo<ZooCase>& info) {
                           return info.param.name;
                         });

// The weight stream is part of the wire contract: a device and an edge built from different
// commits or on different CPUs must agree. Feeding the identity matrix through a one-layer MLP
// reads its weights back exactly (y = I W^T + 0). The expected values were computed
// independently (SplitMix64 seeded with FNV-1a("mlp@1"), 24-bit uniforms scaled to
// 0.01 * sqrt(3), in numpy float32).
TEST(ModelZooTest, WeightStreamIsPinned) {
  ZooOptions o;
  o.mlp_width = 4;
  o.mlp_layers = 1;
  std::shared_ptr<SplitModel> m = MustBuild("mlp", 1, o);
  ASSERT_NE(m, nullptr);
  const at::Tensor w = m->RunRange(at::eye(4), 0, 1).t().contiguous();  // w[i][j] = W[i][j]
  const float want[16] = {-0x1.efabf2p-8f, -0x1.724a2cp-7f, -0x1.0e765ep-7f, 0x1.9157a0p-8f,
                          -0x1.07215ap-6f, 0x1.532b4ap-11f, -0x1.cde59ep-8f, -0x1.3443cep-8f,
                          -0x1.0f91a2p-6f, 0x1.31c92ep-8f,  0x1.da0c98p-8f,  -0x1.027c2cp-8f,
                          -0x1.97e014p-7f, -0x1.22cb52p-7f, 0x1.5ee688p-8f,  -0x1.f9d968p-7f};
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(w.data_ptr<float>()[i], want[i]) << "weight " << i;
  }
}

TEST(ModelZooTest, NamesListTheFiveModels) {
  EXPECT_EQ(ZooModelNames(),
            (std::vector<std::string>{"alexnet", "vgg16", "resnet18", "mobilenetv2", "mlp"}));
}

TEST(ModelZooTest, UnknownModelIsNotFound) {
  Result<std::shared_ptr<SplitModel>> r = BuildZooModel("resnet152", 1, Small(32));
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("resnet152"), std::string::npos) << r.status();
}

TEST(ModelZooTest, TooSmallInputIsInvalidArgumentAndNamesTheMinimum) {
  Result<std::shared_ptr<SplitModel>> r = BuildZooModel("alexnet", 1, Small(62));
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("input_size >= 63"), std::string::npos) << r.status();
  r = BuildZooModel("vgg16", 1, Small(31));
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("input_size >= 32"), std::string::npos) << r.status();
  // ResNet and MobileNetV2 pad every window, so even a 1x1 input goes through.
  EXPECT_TRUE(BuildZooModel("resnet18", 1, Small(1)).ok());
  EXPECT_TRUE(BuildZooModel("mobilenetv2", 1, Small(1)).ok());
}

TEST(ModelZooTest, BadOptionsAreInvalidArgument) {
  ZooOptions o = Small(32);
  o.width_mult = 0;
  EXPECT_EQ(BuildZooModel("resnet18", 1, o).status().code(), StatusCode::kInvalidArgument);
  o = Small(32);
  o.num_classes = 0;
  EXPECT_EQ(BuildZooModel("resnet18", 1, o).status().code(), StatusCode::kInvalidArgument);
  o = Small(0);
  EXPECT_EQ(BuildZooModel("resnet18", 1, o).status().code(), StatusCode::kInvalidArgument);
  o = Small(32);
  o.mlp_layers = 0;
  EXPECT_EQ(BuildZooModel("mlp", 1, o).status().code(), StatusCode::kInvalidArgument);
  std::string why;
  EXPECT_FALSE(o.IsValid(&why));
  EXPECT_NE(why.find("mlp_layers"), std::string::npos) << why;
}

TEST(ModelZooTest, BoundaryErrorMessageNamesBothShapes) {
  std::shared_ptr<SplitModel> m = MustBuild("resnet18", 1, Small(32));
  ASSERT_NE(m, nullptr);
  // stem at 32 with width 0.25: 16 channels, 32 -> 16 (conv) -> 8 (max-pool).
  Status s = m->CheckBoundaryInput(3, std::vector<int64_t>{1, 3, 32, 32});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "boundary 3 of resnet18 expects [N,16,8,8], got [1,3,32,32]");
  EXPECT_TRUE(m->CheckBoundaryInput(3, std::vector<int64_t>{5, 16, 8, 8}).ok());
  EXPECT_FALSE(m->CheckBoundaryInput(3, std::vector<int64_t>{0, 16, 8, 8}).ok());
}

// Hand computations: conv = 2 * Cin/groups * kh * kw * Cout * Hout * Wout, linear = 2*in*out.
TEST(ModelZooTest, FlopsMatchHandComputation) {
  ZooOptions full;  // 224, width 1, 1000 classes
  std::shared_ptr<SplitModel> r = MustBuild("resnet18", 1, full);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->unit(0).name, "stem");
  EXPECT_EQ(r->unit(0).flops, 2LL * 3 * 7 * 7 * 64 * 112 * 112);  // 236027904
  EXPECT_EQ(r->unit(0).output_shape, (std::vector<int64_t>{64, 56, 56}));
  EXPECT_EQ(r->unit(0).output_bytes, 64 * 56 * 56 * 4);
  EXPECT_EQ(r->input_bytes(), 3 * 224 * 224 * 4);
  EXPECT_EQ(r->unit(1).name, "layer1.0");
  EXPECT_EQ(r->unit(1).flops, 2 * (2LL * 64 * 3 * 3 * 64 * 56 * 56));
  // layer2.0: two 3x3 convs to 128 at 28x28 (the first from 64 channels) + 1x1 shortcut.
  EXPECT_EQ(r->unit(3).name, "layer2.0");
  EXPECT_EQ(r->unit(3).flops, 2LL * 64 * 9 * 128 * 28 * 28 + 2LL * 128 * 9 * 128 * 28 * 28 +
                                  2LL * 64 * 1 * 128 * 28 * 28);
  EXPECT_EQ(r->unit(9).name, "head");
  EXPECT_EQ(r->unit(9).flops, 2LL * 512 * 1000);
  int64_t total = 0;
  for (const UnitInfo& u : r->units()) total += u.flops;
  EXPECT_EQ(total, 3628146688LL);  // 1.814 G multiply-adds: torchvision's "1.81 GFLOPS"

  std::shared_ptr<SplitModel> v = MustBuild("vgg16", 1, Small(32));
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->unit(0).flops, 2LL * 3 * 9 * 16 * 32 * 32);  // conv1_1: 3 -> 16 channels

  ZooOptions mlp = Small(32);
  std::shared_ptr<SplitModel> m = MustBuild("mlp", 1, mlp);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->unit(5).name, "fc6");
  EXPECT_EQ(m->unit(5).flops, 2LL * 64 * 64);
  EXPECT_EQ(m->unit(5).param_bytes, (64 * 64 + 64) * 4);
}

// Total bytes of parameters and buffers equal torchvision's state_dict at width 1 (float32
// tensors plus one int64 num_batches_tracked per batch norm), which pins the architectures.
// Figures from: sum(t.numel() * t.element_size() for t in model.state_dict().values()).
TEST(ModelZooTest, ParameterBytesMatchTorchvision) {
  struct Want {
    const char* name;
    int64_t input_size;
    int64_t bytes;
  } const wants[] = {{"alexnet", 63, 244403360},     // 61100840 parameters
                     {"resnet18", 32, 46796608},     // 11689512 parameters, 20 batch norms
                     {"mobilenetv2", 32, 14156352},  // 3504872 parameters, 52 batch norms
                     {"vgg16", 32, 553430176}};      // 138357544 parameters
  for (const Want& w : wants) {
    ZooOptions o;
    o.input_size = w.input_size;
    std::shared_ptr<SplitModel> m = MustBuild(w.name, 1, o);
    ASSERT_NE(m, nullptr);
    int64_t bytes = 0;
    for (const UnitInfo& u : m->units()) bytes += u.param_bytes;
    EXPECT_EQ(bytes, w.bytes) << w.name;
  }
}

TEST(ModelZooTest, MobileNetV2RoundsChannelsToMultiplesOfEight) {
  std::shared_ptr<SplitModel> m = MustBuild("mobilenetv2", 1, Small(32));
  ASSERT_NE(m, nullptr);
  for (size_t k = 1; k < m->num_units(); ++k) {
    EXPECT_EQ(m->boundary_shape(k)[0] % 8, 0) << m->unit(k - 1).name;
  }
  EXPECT_EQ(m->boundary_shape(1)[0], 8);      // stem: 32 * 0.25 = 8
  EXPECT_EQ(m->boundary_shape(19)[0], 1280);  // conv_last keeps 1280 below width 1
}

}  // namespace
}  // namespace splitinfer

// codec_fidelity (issue 6 item 3): the measurement on a small zoo model, checked against what
// the codecs promise (common/codec.h), the JSON against the decision core's parser, the picture
// inputs against files written here, and the program's exit codes for bad options.
#include "device/codec_fidelity.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <stb/stb_image_write.h>
#include <nlohmann/json.hpp>

#include "common/decision/cost_model.h"
#include "common/model_zoo.h"
#include "device/image_inputs.h"
#include "tests/integration/test_models.h"
#include "tests/run_command.h"

namespace splitinfer {
namespace {

namespace fs = std::filesystem;

const char* const kAllCodecs = "fp32,fp32+zstd,fp16,fp16+zstd,int8,int8+zstd,int8c,int8c+zstd";

std::shared_ptr<SplitModel> SmallModel(const std::string& name) {
  Result<std::shared_ptr<SplitModel>> m = BuildZooModel(name, 1, testing::SmallZoo());
  EXPECT_TRUE(m.ok()) << m.status();
  return *m;
}

// Runs codec_fidelity with `args`; returns stdout (and stderr when `with_stderr`), sets *rc.
std::string RunTool(const std::string& args, int* rc, bool with_stderr) {
  return test_support::RunCommand(std::string(SPLITINFER_BIN_DIR) + "/codec_fidelity " + args +
                                      (with_stderr ? " 2>&1" : " 2>/dev/null"),
                                  rc);
}

std::string SmallZooFlags() {
  std::string s;
  for (const std::string& a : testing::SmallZooArgs()) s += " " + a;
  return s;
}

const BoundaryFidelity& Cell(const FidelityReport& r, const std::string& codec, size_t b) {
  for (const CodecFidelity& c : r.codecs)
    if (c.name == codec) return c.boundaries.at(b);
  ADD_FAILURE() << "no codec " << codec;
  return r.codecs.front().boundaries.at(b);
}

class FidelityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = SmallModel("resnet18");
    ASSERT_NE(model_, nullptr);
    inputs_ = MakeSyntheticInputs(model_->input_shape(), 4, 7, "test");
    FidelityOptions o;
    o.codecs = *ParseCodecList(kAllCodecs);
    o.boundaries = *ParseBoundaries("all", *model_);
    o.repeats = 1;
    o.warmup = 0;
    Result<FidelityReport> r = MeasureFidelity(*model_, inputs_.inputs, o);
    ASSERT_TRUE(r.ok()) << r.status();
    report_ = std::make_unique<FidelityReport>(*r);
  }
  static void TearDownTestSuite() {
    report_.reset();
    model_.reset();
    inputs_ = {};
  }

  // max |h| and the int8 per-tensor step (max(hi, 0) - min(lo, 0)) / 255 of the tensor at
  // boundary k, over the inputs.
  static void BoundaryRange(size_t k, double* max_abs, double* int8_step) {
    *max_abs = 0;
    *int8_step = 0;
    for (const at::Tensor& x : inputs_.inputs) {
      const at::Tensor h = model_->RunRange(x, 0, k);
      *max_abs = std::max(*max_abs, h.abs().max().item<double>());
      const double lo = std::min(h.min().item<double>(), 0.0);
      const double hi = std::max(h.max().item<double>(), 0.0);
      *int8_step = std::max(*int8_step, (hi - lo) / 255.0);
    }
  }

  static std::shared_ptr<SplitModel> model_;
  static InputSet inputs_;
  static std::unique_ptr<FidelityReport> report_;
};
std::shared_ptr<SplitModel> FidelityTest::model_;
InputSet FidelityTest::inputs_;
std::unique_ptr<FidelityReport> FidelityTest::report_;

TEST_F(FidelityTest, OneCellPerCodecAndBoundaryWithSaneFigures) {
  const FidelityReport& r = *report_;
  EXPECT_EQ(r.inputs, 4);
  ASSERT_EQ(r.codecs.size(), 8u);
  for (const CodecFidelity& c : r.codecs) {
    ASSERT_EQ(c.boundaries.size(), model_->num_units()) << c.name;
    for (size_t b = 0; b < c.boundaries.size(); ++b) {
      const BoundaryFidelity& f = c.boundaries[b];
      SCOPED_TRACE(c.name + " k=" + std::to_string(f.k));
      EXPECT_EQ(f.k, b);
      EXPECT_TRUE(f.available) << f.unavailable_reason;
      EXPECT_GE(f.top1_agreement, 0.0);
      EXPECT_LE(f.top1_agreement, 1.0);
      EXPECT_GT(f.bytes, 0.0);
      EXPECT_NEAR(f.ratio, f.raw_bytes / f.bytes, 1e-9 * f.ratio);
      EXPECT_GE(f.encode_ms, 0.0);
      EXPECT_GE(f.decode_ms, 0.0);
      EXPECT_GE(f.max_abs_err, f.mean_abs_err);
    }
  }
  // Every boundary after the input ends in a ReLU: a share of exact zeros, none negative.
  ASSERT_EQ(r.features.size(), model_->num_units());
  for (const FeatureStats& fs : r.features) {
    EXPECT_GT(fs.abs_max, 0.0);
    EXPECT_LE(fs.abs_mean, fs.abs_max);
    if (fs.k >= 1) {
      EXPECT_GT(fs.zero_fraction, 0.05) << fs.k;
    }
  }
  // The tail after a bit-identical decode (fp32, every +zstd) is reused, not run again.
  EXPECT_GT(r.tail_runs_reused, 0);
  EXPECT_EQ(r.tail_runs + r.tail_runs_reused, 4 * 8 * static_cast<int>(model_->num_units()));
}

TEST_F(FidelityTest, Fp32IsTheReferenceItself) {
  for (size_t b = 0; b < model_->num_units(); ++b) {
    const BoundaryFidelity& f = Cell(*report_, "fp32", b);
    EXPECT_EQ(f.top1_agreement, 1.0);
    EXPECT_EQ(f.max_abs_err, 0.0);
    EXPECT_EQ(f.feature_max_abs_err, 0.0);
    EXPECT_EQ(f.bytes, static_cast<double>(f.raw_bytes));  // no codec metadata either
    EXPECT_EQ(f.ratio, 1.0);
  }
}

TEST_F(FidelityTest, ZstdIsLosslessAndShrinksPostReluTensors) {
  for (const std::string base : {"fp32", "fp16", "int8", "int8c"}) {
    for (size_t b = 0; b < model_->num_units(); ++b) {
      const BoundaryFidelity& plain = Cell(*report_, base, b);
      const BoundaryFidelity& z = Cell(*report_, base + "+zstd", b);
      SCOPED_TRACE(base + " k=" + std::to_string(b));
      EXPECT_EQ(z.agree, plain.agree);
      EXPECT_EQ(z.max_abs_err, plain.max_abs_err);
      EXPECT_EQ(z.mean_abs_err, plain.mean_abs_err);
      EXPECT_EQ(z.feature_max_abs_err, plain.feature_max_abs_err);
      // Every ResNet-18 boundary after the input ends in a ReLU: about half zeros.
      if (b >= 1) {
        EXPECT_LE(z.bytes, plain.bytes);
      }
    }
  }
}

TEST_F(FidelityTest, LossyCodecsStayWithinTheirStatedBounds) {
  for (size_t b = 0; b < model_->num_units(); ++b) {
    double max_abs = 0, step = 0;
    BoundaryRange(b, &max_abs, &step);
    SCOPED_TRACE("k=" + std::to_string(b));
    // fp16: relative 2^-11 in the normal range, 2^-25 absolute below it.
    EXPECT_LE(Cell(*report_, "fp16", b).feature_max_abs_err,
              std::ldexp(max_abs, -11) + std::ldexp(1.0, -25));
    // int8: half a step plus float32 rounding; per channel steps are no larger.
    EXPECT_LE(Cell(*report_, "int8", b).feature_max_abs_err, step * (0.5 + std::ldexp(1.0, -13)));
    EXPECT_LE(Cell(*report_, "int8c", b).feature_max_abs_err, step * (0.5 + std::ldexp(1.0, -13)));
    // Sizes: fp16 halves the body, int8 quarters it.
    const BoundaryFidelity& f16 = Cell(*report_, "fp16", b);
    EXPECT_EQ(f16.body_bytes, f16.raw_bytes / 2.0);
    EXPECT_EQ(Cell(*report_, "int8", b).body_bytes, f16.raw_bytes / 4.0);
  }
  // fp16 moves the output far less than int8 does, and barely at all.
  const BoundaryFidelity& f16 = Cell(*report_, "fp16", 3);
  EXPECT_LE(f16.max_abs_err, 1e-2 * std::max(1.0, report_->output_mean_abs));
  EXPECT_LE(f16.mean_abs_err, Cell(*report_, "int8", 3).mean_abs_err);
}

TEST_F(FidelityTest, JsonIsACodecProfileTheDecisionCoreReads) {
  FidelityContext ctx;
  ctx.input_size = 64;
  ctx.images = inputs_.source;
  ctx.date = "2026-01-01T00:00:00Z";
  const nlohmann::ordered_json j = FidelityJson(*model_, *report_, ctx);
  ASSERT_EQ(j["codecs"].size(), 8u);
  for (const auto& c : j["codecs"]) {
    EXPECT_EQ(c["boundaries"].size(), model_->num_units()) << c["name"];
    EXPECT_TRUE(c["unavailable"].empty());
  }
  EXPECT_EQ(j["model"], "resnet18");
  EXPECT_EQ(j["inputs"], 4);
  EXPECT_EQ(j["features"].size(), model_->num_units());
  const int n = static_cast<int>(model_->num_units());
  // Through text, as LoadCodecProfile reads a file.
  const nlohmann::json parsed = nlohmann::json::parse(j.dump());
  Result<std::vector<decision::WireOption>> opts = decision::ParseCodecProfile(parsed, n, "test");
  ASSERT_TRUE(opts.ok()) << opts.status();
  ASSERT_EQ(opts->size(), 7u);  // fp32 is option 0, built into the cost model
  for (const decision::WireOption& o : *opts) {
    for (int k = 0; k < n; ++k) {
      EXPECT_TRUE(std::isfinite(o.bytes[k])) << o.name << " k=" << k;
      EXPECT_GE(o.top1_agreement[k], 0.0);
    }
  }
  EXPECT_NE(FidelityTable(*model_, *report_, ctx).find("%saved10M"), std::string::npos);
}

TEST(FidelityOptionsTest, CodecAndBoundaryListsAreValidated) {
  const std::shared_ptr<SplitModel> m = SmallModel("resnet18");
  EXPECT_EQ(ParseCodecList(kDefaultFidelityCodecs)->size(), 6u);
  EXPECT_FALSE(ParseCodecList("fp16,int9").ok());
  EXPECT_FALSE(ParseCodecList("fp16,fp16").ok());
  EXPECT_FALSE(ParseCodecList("").ok());
  EXPECT_EQ(ParseBoundaries("all", *m)->size(), m->num_units());
  EXPECT_EQ(*ParseBoundaries("5,0,2-3,3", *m), (std::vector<size_t>{0, 2, 3, 5}));
  const Result<std::vector<size_t>> out = ParseBoundaries("10", *m);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("out of range"), std::string::npos);
  EXPECT_FALSE(ParseBoundaries("-1", *m).ok());
  EXPECT_FALSE(ParseBoundaries("3-1", *m).ok());
  EXPECT_FALSE(ParseBoundaries("x", *m).ok());
}

// Pictures written here with stb_image_write, decoded, cropped and normalized.
class PictureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("codec_fidelity_test_" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A w x h RGB gradient: pixel (x, y) = (x, y, x + y) mod 256.
  std::string WriteGradientPng(const std::string& name, int w, int h) {
    std::vector<unsigned char> px(static_cast<size_t>(w) * h * 3);
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x) {
        unsigned char* p = &px[(static_cast<size_t>(y) * w + x) * 3];
        p[0] = static_cast<unsigned char>(x), p[1] = static_cast<unsigned char>(y);
        p[2] = static_cast<unsigned char>(x + y);
      }
    }
    const std::string path = (dir_ / name).string();
    EXPECT_NE(stbi_write_png(path.c_str(), w, h, 3, px.data(), w * 3), 0);
    return path;
  }

  fs::path dir_;
};

TEST_F(PictureTest, DecodesCropsAndNormalizes) {
  const std::string png = WriteGradientPng("a.png", 80, 60);
  Result<at::Tensor> img = LoadImageRgb(png);
  ASSERT_TRUE(img.ok()) << img.status();
  EXPECT_EQ(img->sizes(), (std::vector<int64_t>{3, 60, 80}));
  EXPECT_FLOAT_EQ((*img)[0][5][7].item<float>(), 7.0f / 255.0f);
  EXPECT_FLOAT_EQ((*img)[1][5][7].item<float>(), 5.0f / 255.0f);
  EXPECT_FLOAT_EQ((*img)[2][5][7].item<float>(), 12.0f / 255.0f);

  // Gray pictures become RGB.
  std::vector<unsigned char> gray(16 * 16, 128);
  const std::string gpath = (dir_ / "g.png").string();
  ASSERT_NE(stbi_write_png(gpath.c_str(), 16, 16, 1, gray.data(), 16), 0);
  Result<at::Tensor> g = LoadImageRgb(gpath);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->size(0), 3);
  // A uniform picture normalizes to (v - mean) / std per channel, whatever the crop.
  const at::Tensor n = CropResizeNormalize(*g, 8, CropForVariant(3));
  EXPECT_EQ(n.sizes(), (std::vector<int64_t>{1, 3, 8, 8}));
  EXPECT_NEAR(n[0][0][4][4].item<float>(), (128 / 255.0 - 0.485) / 0.229, 1e-5);
  EXPECT_NEAR(n[0][2][1][6].item<float>(), (128 / 255.0 - 0.406) / 0.225, 1e-5);

  // Two pictures, five inputs: input 2 is picture 0 mirrored (variant 1).
  const std::string png2 = WriteGradientPng("b.png", 50, 70);
  Result<std::vector<std::string>> paths = ResolveImagePaths(dir_.string());
  ASSERT_TRUE(paths.ok()) << paths.status();
  ASSERT_EQ(paths->size(), 3u);  // a.png, b.png, g.png, sorted
  Result<InputSet> set = MakeImageInputs({png, png2}, 5, 32);
  ASSERT_TRUE(set.ok()) << set.status();
  ASSERT_EQ(set->inputs.size(), 5u);
  for (const at::Tensor& x : set->inputs)
    EXPECT_EQ(x.sizes(), (std::vector<int64_t>{1, 3, 32, 32}));
  EXPECT_TRUE(at::allclose(set->inputs[2], set->inputs[0].flip({3}), 1e-5, 1e-5));
  EXPECT_FALSE(at::allclose(set->inputs[4], set->inputs[0], 1e-3, 1e-3));  // scale 0.8
  EXPECT_NE(set->source.find("a.png"), std::string::npos);
}

TEST_F(PictureTest, BadPathsAreErrors) {
  EXPECT_FALSE(ResolveImagePaths((dir_ / "missing.png").string()).ok());
  EXPECT_FALSE(ResolveImagePaths(dir_.string()).ok());  // no picture in it
  EXPECT_FALSE(ResolveImagePaths("").ok());
  const std::string bad = (dir_ / "bad.png").string();
  std::ofstream(bad) << "not a picture";
  const Result<at::Tensor> img = LoadImageRgb(bad);
  ASSERT_FALSE(img.ok());
  EXPECT_NE(img.status().message().find("cannot decode"), std::string::npos);
}

TEST(CodecFidelityToolTest, JsonOfTheProgramParsesAsACodecProfile) {
  int rc = 0;
  const std::string out = RunTool(
      "--model mobilenetv2" + SmallZooFlags() + " --inputs 4 --images synthetic --repeats 1 --json",
      &rc, false);
  ASSERT_EQ(rc, 0) << out;
  const nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  const std::shared_ptr<SplitModel> m = SmallModel("mobilenetv2");
  const int n = static_cast<int>(m->num_units());
  ASSERT_EQ(j["codecs"].size(), 6u);  // the default list
  for (const auto& c : j["codecs"]) EXPECT_EQ(c["boundaries"].size(), static_cast<size_t>(n));
  EXPECT_NE(j["images"].get<std::string>().find("synthetic"), std::string::npos);
  EXPECT_EQ(j["input_size"], 64);
  Result<std::vector<decision::WireOption>> opts = decision::ParseCodecProfile(j, n, "tool");
  ASSERT_TRUE(opts.ok()) << opts.status();
  EXPECT_EQ(opts->size(), 6u);
}

TEST(CodecFidelityToolTest, TableAndBoundarySubset) {
  int rc = 0;
  const std::string out =
      RunTool("--model resnet18" + SmallZooFlags() +
                  " --inputs 2 --images synthetic --repeats 1 --boundaries 1,4 --codecs int8c+zstd",
              &rc, false);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("int8c+zstd"), std::string::npos) << out;
  EXPECT_NE(out.find("stem"), std::string::npos) << out;      // the unit ending at k = 1
  EXPECT_NE(out.find("layer2.0"), std::string::npos) << out;  // and at k = 4
  EXPECT_NE(out.find("%saved10M"), std::string::npos) << out;
}

TEST(CodecFidelityToolTest, BadOptionsExitTwoWithAClearMessage) {
  const std::string base = "--model resnet18" + SmallZooFlags() + " --inputs 1 --repeats 1";
  const std::map<std::string, std::string> cases = {
      {base + " --codecs fp16,int9", "unknown codec 'int9'"},
      {base + " --boundaries 10", "boundary 10 is out of range"},
      {base + " --images /nonexistent/picture.png", "does not exist"},
      {base + " --images " + std::string(SPLITINFER_SOURCE_DIR) + "/README.md", "cannot decode"},
      {"--model resnet19", "resnet19"},
  };
  for (const auto& [args, message] : cases) {
    int rc = 0;
    const std::string out = RunTool(args, &rc, true);
    EXPECT_EQ(rc, 2) << args << "\n" << out;
    EXPECT_NE(out.find(message), std::string::npos) << args << "\n" << out;
  }
}

}  // namespace
}  // namespace splitinfer

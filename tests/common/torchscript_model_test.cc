// Tests of the TorchScript loader (common/torchscript_model.h). Modules come from
// scripts/export_torchscript.py run with /usr/bin/python3; those tests skip when that Python
// cannot import torch and torchvision. The error cases for missing and garbage files need no
// Python.
#include "common/torchscript_model.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/model_zoo.h"

namespace splitinfer {
namespace {

namespace fs = std::filesystem;

constexpr char kPython[] = "/usr/bin/python3";

bool PythonHasTorch() {
  static const bool has =
      std::system(
          (std::string(kPython) + " -c 'import torch, torchvision' >/dev/null 2>&1").c_str()) == 0;
  return has;
}

// A fresh directory under $TMPDIR, removed with everything in it at the end of the suite.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "torchscript_model_test.XXXXXX").string();
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

class TorchScriptModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { dir_ = new TempDir(); }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  // Runs export_torchscript.py once per (args) and returns the file, or "" on failure.
  static std::string Export(const std::string& file, const std::string& args) {
    const fs::path out = dir_->path() / file;
    if (fs::exists(out)) return out.string();
    const std::string cmd = std::string(kPython) + " " + SPLITINFER_SOURCE_DIR +
                            "/scripts/export_torchscript.py " + args + " --out " + out.string() +
                            " >" + (dir_->path() / (file + ".log")).string() + " 2>&1";
    if (std::system(cmd.c_str()) != 0) {
      std::ifstream log(dir_->path() / (file + ".log"));
      ADD_FAILURE() << cmd << " failed:\n" << log.rdbuf();
      return "";
    }
    return out.string();
  }

  // Writes `source` to a .py file, runs it with `out` as argv[1], returns out or "".
  static std::string RunPython(const std::string& file, const std::string& source) {
    const fs::path script = dir_->path() / (file + ".py");
    const fs::path out = dir_->path() / file;
    std::ofstream(script) << source;
    const std::string cmd =
        std::string(kPython) + " " + script.string() + " " + out.string() + " >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) {
      ADD_FAILURE() << cmd << " failed";
      return "";
    }
    return out.string();
  }

  static TempDir* dir_;
};

TempDir* TorchScriptModelTest::dir_ = nullptr;

#define SKIP_WITHOUT_PYTHON_TORCH()                                                     \
  if (!PythonHasTorch()) {                                                              \
    GTEST_SKIP() << kPython << " cannot import torch and torchvision (Debian packages " \
                 << "python3-torch, python3-torchvision)";                              \
  }

void ExpectSplitEquivalence(const SplitModel& m) {
  const size_t n = m.num_units();
  std::vector<int64_t> shape{2};
  shape.insert(shape.end(), m.input_shape().begin(), m.input_shape().end());
  at::Generator gen = at::detail::createCPUGenerator(3);
  const at::Tensor x = at::randn(shape, gen);
  const at::Tensor want = m.RunRange(x, 0, n);
  const double scale = std::max(1.0, want.abs().max().item<double>());
  for (size_t k = 0; k <= n; ++k) {
    const at::Tensor mid = m.RunRange(x, 0, k);
    EXPECT_EQ(mid.sizes().slice(1).vec(), m.boundary_shape(k)) << "k = " << k;
    const at::Tensor got = m.RunRange(mid, k, n);
    EXPECT_LE((got - want).abs().max().item<double>(), 1e-5 * scale) << "k = " << k;
    EXPECT_TRUE(at::equal(got.argmax(1), want.argmax(1))) << "k = " << k;
  }
}

TEST_F(TorchScriptModelTest, MissingFileIsNotFound) {
  const std::string path = (dir_->path() / "no_such_model.pt").string();
  Result<std::shared_ptr<SplitModel>> r = LoadTorchScriptModel(path, "x", 1, {3, 8, 8});
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find(path), std::string::npos) << r.status();
}

TEST_F(TorchScriptModelTest, GarbageFileIsInvalidArgument) {
  const std::string path = (dir_->path() / "garbage.pt").string();
  std::ofstream(path) << "this is not a zip archive, let alone a TorchScript module\n";
  Result<std::shared_ptr<SplitModel>> r = LoadTorchScriptModel(path, "x", 1, {3, 8, 8});
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(path), std::string::npos) << r.status();
  // A directory is not a module file either.
  r = LoadTorchScriptModel(dir_->path().string(), "x", 1, {3, 8, 8});
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

TEST_F(TorchScriptModelTest, TinyChainSplitsAnywhere) {
  SKIP_WITHOUT_PYTHON_TORCH();
  const std::string path = Export("tiny.pt", "--model tiny --input-size 16 --num-classes 5");
  ASSERT_FALSE(path.empty());
  // No shape given: the splitinfer_input_shape attribute supplies it.
  Result<std::shared_ptr<SplitModel>> r = LoadTorchScriptModel(path, "tiny", 3, {});
  ASSERT_TRUE(r.ok()) << r.status();
  const SplitModel& m = **r;
  EXPECT_EQ(m.name(), "tiny");
  EXPECT_EQ(m.version(), 3u);
  ASSERT_EQ(m.num_units(), 3u);
  EXPECT_EQ(m.unit(0).name, "conv1");
  EXPECT_EQ(m.unit(1).name, "conv2");
  EXPECT_EQ(m.unit(2).name, "head");
  EXPECT_EQ(m.input_shape(), (std::vector<int64_t>{3, 16, 16}));
  EXPECT_EQ(m.boundary_shape(1), (std::vector<int64_t>{4, 16, 16}));
  EXPECT_EQ(m.boundary_shape(2), (std::vector<int64_t>{8, 8, 8}));
  EXPECT_EQ(m.boundary_shape(3), (std::vector<int64_t>{5}));
  EXPECT_EQ(m.unit(0).param_bytes, (3 * 9 * 4 + 4) * 4);
  // conv 4*9*8 + 8 bias, batch norm 4 x 8 floats and num_batches_tracked (int64).
  EXPECT_EQ(m.unit(1).param_bytes, (4 * 9 * 8 + 8 + 4 * 8) * 4 + 8);
  EXPECT_EQ(m.unit(2).output_bytes, 5 * 4);
  for (const UnitInfo& u : m.units()) EXPECT_EQ(u.flops, -1) << u.name;
  ExpectSplitEquivalence(m);

  // An explicit shape overrides the attribute (the network is fully convolutional).
  r = LoadTorchScriptModel(path, "tiny", 3, {3, 24, 24});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->boundary_shape(2), (std::vector<int64_t>{8, 12, 12}));

  // The checked entry point validates like the zoo's.
  const at::Tensor bad = at::zeros({1, 3, 16, 16});
  EXPECT_EQ((*r)->RunRangeChecked(bad, 0, 3).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE((*r)->RunRangeChecked(at::zeros({1, 3, 24, 24}), 0, 3).ok());
}

TEST_F(TorchScriptModelTest, TracedExportWorksToo) {
  SKIP_WITHOUT_PYTHON_TORCH();
  const std::string path =
      Export("tiny_traced.pt", "--model tiny --input-size 12 --num-classes 4 --trace");
  ASSERT_FALSE(path.empty());
  Result<std::shared_ptr<SplitModel>> r = LoadTorchScriptModel(path, "tiny", 1, {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->num_units(), 3u);
  EXPECT_EQ((*r)->input_shape(), (std::vector<int64_t>{3, 12, 12}));
  ExpectSplitEquivalence(**r);
}

// The exported torchvision ResNet-18 and the zoo's have the same units, shapes and parameter
// sizes: the zoo architecture is torchvision's.
TEST_F(TorchScriptModelTest, ResNet18MatchesTheZooUnitByUnit) {
  SKIP_WITHOUT_PYTHON_TORCH();
  const std::string path =
      Export("resnet18.pt", "--model resnet18 --input-size 64 --num-classes 10");
  ASSERT_FALSE(path.empty());
  Result<std::shared_ptr<SplitModel>> r = LoadTorchScriptModel(path, "resnet18", 1, {});
  ASSERT_TRUE(r.ok()) << r.status();
  const SplitModel& m = **r;
  ASSERT_EQ(m.num_units(), 10u);
  EXPECT_EQ(m.unit(0).name, "stem");
  EXPECT_EQ(m.unit(1).name, "layer1_0");
  EXPECT_EQ(m.unit(9).name, "head");
  ExpectSplitEquivalence(m);

  ZooOptions o;
  o.input_size = 64;
  o.num_classes = 10;
  Result<std::shared_ptr<SplitModel>> zoo = BuildZooModel("resnet18", 1, o);
  ASSERT_TRUE(zoo.ok()) << zoo.status();
  ASSERT_EQ((*zoo)->num_units(), m.num_units());
  for (size_t i = 0; i < m.num_units(); ++i) {
    EXPECT_EQ((*zoo)->unit(i).output_shape, m.unit(i).output_shape) << m.unit(i).name;
    EXPECT_EQ((*zoo)->unit(i).param_bytes, m.unit(i).param_bytes) << m.unit(i).name;
  }
}

TEST_F(TorchScriptModelTest, BadModulesAreInvalidArgument) {
  SKIP_WITHOUT_PYTHON_TORCH();
  const std::string no_children = RunPython("no_children.pt", R"(
import sys, torch
class Double(torch.nn.Module):
    def forward(self, x):
        return 2 * x
torch.jit.save(torch.jit.script(Double()), sys.argv[1])
)");
  ASSERT_FALSE(no_children.empty());
  Result<std::shared_ptr<SplitModel>> r = LoadTorchScriptModel(no_children, "x", 1, {4});
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(no_children), std::string::npos) << r.status();

  const std::string tuple = RunPython("tuple.pt", R"(
import sys, torch
from typing import Tuple
class Pair(torch.nn.Module):
    def forward(self, x) -> Tuple[torch.Tensor, torch.Tensor]:
        return x, x
class Root(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.pair = Pair()
    def forward(self, x):
        return self.pair(x)[0]
torch.jit.save(torch.jit.script(Root()), sys.argv[1])
)");
  ASSERT_FALSE(tuple.empty());
  r = LoadTorchScriptModel(tuple, "x", 1, {4});
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(tuple), std::string::npos) << r.status();
  EXPECT_NE(r.status().message().find("not a single tensor"), std::string::npos) << r.status();

  // Neither an explicit shape nor the attribute.
  r = LoadTorchScriptModel(tuple, "x", 1, {});
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("splitinfer_input_shape"), std::string::npos) << r.status();

  // A shape the network cannot take: the probe fails, reported as a Status.
  const std::string tiny = Export("tiny.pt", "--model tiny --input-size 16 --num-classes 5");
  ASSERT_FALSE(tiny.empty());
  r = LoadTorchScriptModel(tiny, "tiny", 1, {5, 16, 16});
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(tiny), std::string::npos) << r.status();
}

}  // namespace
}  // namespace splitinfer

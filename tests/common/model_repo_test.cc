// Tests of the model repository (common/model_repo.h): SHA-256 known answers, write and load
// reproduce a zoo model exactly, perturbation makes a different but verified version, and
// corrupted, truncated, missing or badly described unit files are refused with the file named.
#include "common/model_repo.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/model_zoo.h"
#include "tests/integration/test_models.h"

namespace splitinfer {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "model_repo_test.XXXXXX").string();
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

at::Tensor Input(const SplitModel& m, uint64_t seed) {
  std::vector<int64_t> shape = {2};
  for (int64_t d : m.input_shape()) shape.push_back(d);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn(shape, gen);
}

double MaxDiff(const SplitModel& a, const SplitModel& b) {
  at::Tensor x = Input(a, 7);
  return (a.RunRange(x, 0, a.num_units()) - b.RunRange(x, 0, b.num_units()))
      .abs()
      .max()
      .item<double>();
}

std::shared_ptr<SplitModel> Build(const std::string& name, uint32_t version) {
  Result<std::shared_ptr<SplitModel>> m = BuildZooModel(name, version, testing::SmallZoo());
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *m : nullptr;
}

std::string Publish(const std::string& root, const std::string& name, uint32_t version) {
  std::shared_ptr<SplitModel> m = Build(name, version);
  const std::string dir = VersionDir(root, name, version);
  Status st = WriteVersion(*m, testing::SmallZoo(), dir);
  EXPECT_TRUE(st.ok()) << st;
  return dir;
}

json ReadJson(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

void WriteJson(const std::string& path, const json& j) {
  std::ofstream out(path, std::ios::trunc);
  out << j.dump(2);
}

TEST(Sha256, KnownDigests) {
  EXPECT_EQ(Sha256Hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc", 3),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  TempDir tmp;
  const std::string path = tmp.str() + "/abc.txt";
  std::ofstream(path) << "abc";
  Result<std::string> d = Sha256File(path);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256File(tmp.str() + "/missing").status().code(), StatusCode::kNotFound);
}

class RoundTrip : public ::testing::TestWithParam<std::string> {};

// Written and loaded back into a model built from another seed, the outputs match exactly.
TEST_P(RoundTrip, LoadVersionReproducesTheModel) {
  TempDir tmp;
  const std::string name = GetParam();
  const std::string dir = Publish(tmp.str(), name, 3);
  std::shared_ptr<SplitModel> original = Build(name, 3);

  Result<Manifest> m = ReadManifest(dir + "/manifest.json");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->model, name);
  EXPECT_EQ(m->version, 3u);
  ASSERT_EQ(m->units.size(), original->num_units());
  for (size_t k = 0; k < m->units.size(); ++k) {
    EXPECT_EQ(m->units[k].name, original->unit(k).name);
    EXPECT_EQ(m->units[k].file, "unit_" + std::to_string(k) + ".pt");
    EXPECT_EQ(m->units[k].param_bytes, original->unit(k).param_bytes);
    EXPECT_EQ(m->units[k].bytes, static_cast<int64_t>(fs::file_size(dir + "/" + m->units[k].file)));
    EXPECT_TRUE(VerifyUnit(dir, *m, k).ok());
  }

  Result<std::shared_ptr<SplitModel>> loaded = LoadVersion(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(MaxDiff(*original, **loaded), 0.0);

  // The weights really come from the files: a model of another version (other seed) differs,
  // and loading the files into it makes it identical.
  std::shared_ptr<SplitModel> other = Build(name, 4);
  EXPECT_GT(MaxDiff(*original, *other), 0.0);
  Status st = LoadWeightsInto(*other, dir, *m);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(MaxDiff(*original, *other), 0.0);
}

INSTANTIATE_TEST_SUITE_P(Zoo, RoundTrip, ::testing::Values("resnet18", "mlp"));

// A perturbed version has different outputs, a manifest that verifies, and loads reproducibly.
TEST(ModelRepo, PerturbMakesADifferentVerifiedVersion) {
  TempDir tmp;
  const std::string v1 = Publish(tmp.str(), "resnet18", 1);
  Result<Manifest> m1 = ReadManifest(v1 + "/manifest.json");
  ASSERT_TRUE(m1.ok()) << m1.status();
  Result<std::shared_ptr<SplitModel>> next = BuildZooModel("resnet18", 2, m1->zoo);
  ASSERT_TRUE(next.ok());
  ASSERT_TRUE(LoadWeightsInto(**next, v1, *m1).ok());
  ASSERT_TRUE(PerturbWeights(**next, 0.05, 11).ok());
  const std::string v2 = VersionDir(tmp.str(), "resnet18", 2);
  ASSERT_TRUE(WriteVersion(**next, m1->zoo, v2).ok());

  Result<Manifest> m2 = ReadManifest(v2 + "/manifest.json");
  ASSERT_TRUE(m2.ok()) << m2.status();
  EXPECT_EQ(m2->version, 2u);
  for (size_t k = 0; k < m2->units.size(); ++k) {
    EXPECT_TRUE(VerifyUnit(v2, *m2, k).ok());
    EXPECT_NE(m2->units[k].sha256, m1->units[k].sha256) << "unit " << k;
  }
  Result<std::shared_ptr<SplitModel>> a = LoadVersion(v1);
  Result<std::shared_ptr<SplitModel>> b = LoadVersion(v2);
  ASSERT_TRUE(a.ok() && b.ok());
  const double diff = MaxDiff(**a, **b);
  EXPECT_GT(diff, 0.0);
  EXPECT_EQ(MaxDiff(**b, **next), 0.0);

  // Same seed, same perturbation.
  Result<std::shared_ptr<SplitModel>> again = BuildZooModel("resnet18", 2, m1->zoo);
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(LoadWeightsInto(**again, v1, *m1).ok());
  ASSERT_TRUE(PerturbWeights(**again, 0.05, 11).ok());
  EXPECT_EQ(MaxDiff(**again, **next), 0.0);
}

TEST(ModelRepo, FlippedByteIsRefusedNamingTheFile) {
  TempDir tmp;
  const std::string dir = Publish(tmp.str(), "mlp", 1);
  Result<Manifest> m = ReadManifest(dir + "/manifest.json");
  ASSERT_TRUE(m.ok());
  const std::string file = dir + "/unit_2.pt";
  std::string bytes;
  {
    std::ifstream in(file, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  bytes[bytes.size() / 2] ^= 0x01;
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;

  Status st = VerifyUnit(dir, *m, 2);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("unit_2.pt"), std::string::npos) << st;
  EXPECT_NE(st.message().find("SHA-256"), std::string::npos) << st;
  EXPECT_TRUE(VerifyUnit(dir, *m, 1).ok());

  Result<std::shared_ptr<SplitModel>> loaded = LoadVersion(dir);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("unit_2.pt"), std::string::npos) << loaded.status();
}

TEST(ModelRepo, TruncatedAndMissingUnitsAreRefused) {
  TempDir tmp;
  const std::string dir = Publish(tmp.str(), "mlp", 1);
  Result<Manifest> m = ReadManifest(dir + "/manifest.json");
  ASSERT_TRUE(m.ok());
  fs::resize_file(dir + "/unit_0.pt", static_cast<uintmax_t>(m->units[0].bytes - 10));
  Status st = VerifyUnit(dir, *m, 0);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("unit_0.pt"), std::string::npos) << st;
  EXPECT_NE(st.message().find("bytes"), std::string::npos) << st;
  EXPECT_FALSE(LoadVersion(dir).ok());

  fs::remove(dir + "/unit_5.pt");
  st = VerifyUnit(dir, *m, 5);
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_NE(st.message().find("unit_5.pt"), std::string::npos) << st;
  EXPECT_FALSE(VerifyUnit(dir, *m, m->units.size()).ok());
}

TEST(ModelRepo, BadManifestsAreRejected) {
  TempDir tmp;
  const std::string dir = Publish(tmp.str(), "mlp", 1);
  const std::string path = dir + "/manifest.json";
  const json good = ReadJson(path);
  ASSERT_TRUE(ReadManifest(path).ok());

  auto expect_rejected = [&](json j, const std::string& what) {
    WriteJson(path, j);
    Result<Manifest> m = ReadManifest(path);
    EXPECT_FALSE(m.ok()) << what;
    if (!m.ok()) {
      EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument) << what;
    }
    EXPECT_FALSE(LoadVersion(dir).ok()) << what;
  };
  json j = good;
  j["units"][1]["sha256"] = good["units"][1]["sha256"].get<std::string>().substr(0, 63);
  expect_rejected(j, "63-digit digest");
  j = good;
  j["units"][1]["sha256"] = std::string(64, 'G');
  expect_rejected(j, "non-hex digest");
  j = good;
  j["units"][1]["file"] = "../unit_1.pt";
  expect_rejected(j, "file with ..");
  j = good;
  j["units"][1]["file"] = dir + "/unit_1.pt";
  expect_rejected(j, "absolute file");
  j = good;
  j["units"][1]["file"] = "sub/unit_1.pt";
  expect_rejected(j, "file in a subdirectory");
  j = good;
  j["units"].erase(5);
  expect_rejected(j, "a unit missing from the list");
  j = good;
  j["num_units"] = 7;
  expect_rejected(j, "num_units");
  j = good;
  std::swap(j["units"][0], j["units"][1]);
  expect_rejected(j, "index order");
  j = good;
  j["units"][0]["bytes"] = 0;
  expect_rejected(j, "zero bytes");
  j = good;
  j["units"][0]["bytes"] = "12";
  expect_rejected(j, "bytes as a string");
  j = good;
  j["model"] = "nosuchnet";
  expect_rejected(j, "unknown model");
  j = good;
  j["zoo"].erase("mlp_width");
  expect_rejected(j, "missing zoo field");
  j = good;
  j["version"] = -1;
  expect_rejected(j, "negative version");
  std::ofstream(path, std::ios::trunc) << "{not json";
  EXPECT_EQ(ReadManifest(path).status().code(), StatusCode::kInvalidArgument);

  // A unit name that does not match the model is caught when loading.
  j = good;
  j["units"][0]["name"] = "fc9";
  WriteJson(path, j);
  ASSERT_TRUE(ReadManifest(path).ok());
  Result<std::shared_ptr<SplitModel>> loaded = LoadVersion(dir);
  EXPECT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("fc9"), std::string::npos) << loaded.status();

  fs::remove(path);
  EXPECT_EQ(ReadManifest(path).status().code(), StatusCode::kNotFound);
}

TEST(ModelRepo, ScanListsValidVersionsAndReportsBrokenOnes) {
  TempDir tmp;
  Publish(tmp.str(), "mlp", 1);
  Publish(tmp.str(), "mlp", 2);
  Publish(tmp.str(), "resnet18", 1);
  // Broken: a bad digest length in mlp v3, a manifest for another version in resnet18 v9.
  const std::string v3 = Publish(tmp.str(), "mlp", 3);
  json j = ReadJson(v3 + "/manifest.json");
  j["units"][0]["sha256"] = "abc";
  WriteJson(v3 + "/manifest.json", j);
  const std::string v9 = VersionDir(tmp.str(), "resnet18", 9);
  fs::create_directories(v9);
  fs::copy_file(VersionDir(tmp.str(), "resnet18", 1) + "/manifest.json", v9 + "/manifest.json");
  fs::create_directories(tmp.str() + "/mlp/notaversion");

  Result<std::vector<VersionInfo>> scan = ScanRepository(tmp.str());
  ASSERT_TRUE(scan.ok()) << scan.status();
  std::vector<std::string> valid, invalid;
  for (const VersionInfo& v : *scan) {
    const std::string id = v.model + "/" + std::to_string(v.version);
    if (v.valid) {
      valid.push_back(id);
    } else {
      invalid.push_back(v.dir);
      EXPECT_FALSE(v.error.empty());
    }
  }
  EXPECT_EQ(valid, (std::vector<std::string>{"mlp/1", "mlp/2", "resnet18/1"}));
  ASSERT_EQ(invalid.size(), 3u);
  EXPECT_EQ(ScanRepository(tmp.str() + "/nope").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace splitinfer

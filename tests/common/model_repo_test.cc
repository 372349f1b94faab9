// Tests of the model repository (common/model_repo.h): SHA-256 known answers, write and load
// reproduce a zoo model exactly, perturbation makes a different but verified version, and
// corrupted, truncated, missing or badly described unit files are refused with the file named.
// Chunk digests: written, parsed, round-tripped, filled in for older manifests, validated; and
// loading only the first m units.
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

std::string Publish(const std::string& root, const std::string& name, uint32_t version,
                    int64_t chunk_bytes = kDefaultChunkBytes) {
  std::shared_ptr<SplitModel> m = Build(name, version);
  const std::string dir = VersionDir(root, name, version);
  Status st = WriteVersion(*m, testing::SmallZoo(), dir, chunk_bytes);
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

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The outputs of units [0, m) on a fixed input.
at::Tensor Prefix(const SplitModel& model, size_t m) {
  return model.RunRange(Input(model, 7), 0, m);
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

// Chunk digests as WriteVersion writes them: one per 4096-byte piece of each unit file (the last
// one shorter), each the SHA-256 of that piece; the manifest round-trips through JSON exactly.
TEST(ManifestChunks, WrittenParsedAndRoundTripped) {
  TempDir tmp;
  const std::string dir = Publish(tmp.str(), "resnet18", 1, 4096);
  Result<Manifest> m = ReadManifest(dir + "/manifest.json");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->chunk_bytes, 4096);
  EXPECT_TRUE(HasChunkDigests(*m));
  size_t multi = 0;
  for (const ManifestUnit& u : m->units) {
    const std::string bytes = ReadFile(dir + "/" + u.file);
    ASSERT_EQ(static_cast<int64_t>(bytes.size()), u.bytes);
    const size_t n = u.num_chunks(4096);
    EXPECT_EQ(n, (bytes.size() + 4095) / 4096);
    ASSERT_EQ(u.chunk_sha256.size(), n) << u.file;
    multi += n > 1 ? 1 : 0;
    int64_t covered = 0;
    for (size_t c = 0; c < n; ++c) {
      const int64_t off = u.chunk_offset(4096, c), len = u.chunk_length(4096, c);
      EXPECT_EQ(off, covered);
      EXPECT_EQ(u.chunk_sha256[c], Sha256Hex(bytes.data() + off, static_cast<size_t>(len)))
          << u.file << " chunk " << c;
      covered += len;
    }
    EXPECT_EQ(covered, u.bytes);
  }
  EXPECT_GT(multi, 2u) << "units should span several chunks";

  // The file is ManifestToJson's text, and text -> Manifest -> text is the identity.
  const std::string text = ManifestToJson(*m);
  EXPECT_EQ(ReadFile(dir + "/manifest.json"), text);
  Result<Manifest> again = ParseManifest(text, "round trip");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(ManifestToJson(*again), text);
  EXPECT_EQ(again->units[3].chunk_sha256, m->units[3].chunk_sha256);
  EXPECT_EQ(again->zoo.width_mult, m->zoo.width_mult);

  // Default chunk size: 1 MiB, so these small units have one chunk each (the whole file).
  const std::string dir2 = Publish(tmp.str(), "mlp", 2);
  Result<Manifest> m2 = ReadManifest(dir2 + "/manifest.json");
  ASSERT_TRUE(m2.ok()) << m2.status();
  EXPECT_EQ(m2->chunk_bytes, kDefaultChunkBytes);
  for (const ManifestUnit& u : m2->units) {
    ASSERT_EQ(u.chunk_sha256.size(), 1u);
    EXPECT_EQ(u.chunk_sha256[0], u.sha256);
  }

  std::shared_ptr<SplitModel> model = Build("mlp", 1);
  EXPECT_EQ(WriteVersion(*model, testing::SmallZoo(), tmp.str() + "/x", 100).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteVersion(*model, testing::SmallZoo(), tmp.str() + "/x", kMaxChunkBytes + 1).code(),
            StatusCode::kInvalidArgument);
}

// A manifest written before chunks existed still reads, and FillChunkDigests computes exactly the
// digests WriteVersion would have written; it verifies the files on the way.
TEST(ManifestChunks, OldManifestReadsAndFillChunkDigestsMatchesWriteVersion) {
  TempDir tmp;
  const std::string dir = Publish(tmp.str(), "mlp", 1, 8192);
  const std::string path = dir + "/manifest.json";
  const std::string written = ReadFile(path);
  json old = json::parse(written);
  old.erase("chunk_bytes");
  for (json& u : old["units"]) u.erase("chunks");
  WriteJson(path, old);

  Result<Manifest> m = ReadManifest(path);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_FALSE(HasChunkDigests(*m));
  for (const ManifestUnit& u : m->units) EXPECT_TRUE(u.chunk_sha256.empty());
  EXPECT_EQ(m->chunk_bytes, kDefaultChunkBytes);
  Result<std::shared_ptr<SplitModel>> loaded = LoadVersion(dir);  // still loads
  ASSERT_TRUE(loaded.ok()) << loaded.status();

  m->chunk_bytes = 8192;
  Manifest filled = *m;
  Status st = FillChunkDigests(dir, &filled);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_TRUE(HasChunkDigests(filled));
  EXPECT_EQ(ManifestToJson(filled), written);

  // A file that does not match the manifest: refused, file named, manifest untouched.
  std::string bytes = ReadFile(dir + "/unit_4.pt");
  bytes[bytes.size() - 1] ^= 0x20;
  std::ofstream(dir + "/unit_4.pt", std::ios::binary | std::ios::trunc) << bytes;
  Manifest again = *m;
  st = FillChunkDigests(dir, &again);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("unit_4.pt"), std::string::npos) << st;
  EXPECT_NE(st.message().find("SHA-256"), std::string::npos) << st;
  EXPECT_FALSE(HasChunkDigests(again));
  fs::remove(dir + "/unit_4.pt");
  st = FillChunkDigests(dir, &again);
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_NE(st.message().find("unit_4.pt"), std::string::npos) << st;
  again.chunk_bytes = 10;
  EXPECT_EQ(FillChunkDigests(dir, &again).code(), StatusCode::kInvalidArgument);
}

TEST(ManifestChunks, BadChunkFieldsAreRejectedNamingTheField) {
  TempDir tmp;
  const std::string dir = Publish(tmp.str(), "mlp", 1, 4096);
  const json good = ReadJson(dir + "/manifest.json");
  ASSERT_GT(good["units"][1]["chunks"].size(), 1u);
  auto expect_rejected = [&](const json& j, const std::string& field) {
    Result<Manifest> m = ParseManifest(j.dump(), "test.json");
    ASSERT_FALSE(m.ok()) << field;
    EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument) << field;
    EXPECT_NE(m.status().message().find(field), std::string::npos) << m.status();
    EXPECT_NE(m.status().message().find("test.json"), std::string::npos) << m.status();
  };
  json j = good;
  j["chunk_bytes"] = 4095;
  expect_rejected(j, "chunk_bytes");
  j["chunk_bytes"] = kMaxChunkBytes + 1;
  expect_rejected(j, "chunk_bytes");
  j["chunk_bytes"] = "4096";
  expect_rejected(j, "chunk_bytes");
  j = good;
  j["chunk_bytes"] = 8192;  // digests no longer match the count
  expect_rejected(j, ".chunks lists");
  j = good;
  j["units"][1]["chunks"].erase(0);
  expect_rejected(j, "units[1].chunks");
  j = good;
  j["units"][1]["chunks"].push_back(good["units"][1]["chunks"][0]);
  expect_rejected(j, "units[1].chunks");
  j = good;
  j["units"][1]["chunks"][1] = std::string(64, 'A');
  expect_rejected(j, "units[1].chunks[1]");
  j = good;
  j["units"][1]["chunks"][0] = 7;
  expect_rejected(j, "units[1].chunks[0]");
  j = good;
  j["units"][1]["chunks"] = "abc";
  expect_rejected(j, "units[1].chunks");
  j = good;
  j["units"][2].erase("chunks");  // all units or none
  expect_rejected(j, "units[2]");
  j = good;
  j.erase("chunk_bytes");  // chunks without their size
  expect_rejected(j, "chunk_bytes");
  EXPECT_TRUE(ParseManifest(good.dump(), "test.json").ok());
  EXPECT_EQ(ParseManifest("[1,", "text").status().code(), StatusCode::kInvalidArgument);
}

// LoadUnitsInto loads units [0, m) only, verified; later unit files need not exist.
TEST(ModelRepo, LoadUnitsIntoLoadsThePrefixOnly) {
  TempDir tmp;
  const std::string dir = Publish(tmp.str(), "resnet18", 3, 4096);
  std::shared_ptr<SplitModel> original = Build("resnet18", 3);
  Result<Manifest> m = ReadManifest(dir + "/manifest.json");
  ASSERT_TRUE(m.ok()) << m.status();
  const size_t n = m->units.size();
  const size_t k = 4;
  ASSERT_LT(k, n);
  for (size_t i = k; i < n; ++i) fs::remove(dir + "/" + m->units[i].file);
  EXPECT_FALSE(LoadVersion(dir).ok());

  std::shared_ptr<SplitModel> other = Build("resnet18", 4);
  EXPECT_GT((Prefix(*original, k) - Prefix(*other, k)).abs().max().item<double>(), 0.0);
  Status st = LoadUnitsInto(*other, dir, *m, k);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ((Prefix(*original, k) - Prefix(*other, k)).abs().max().item<double>(), 0.0);
  // Units >= k kept the other version's weights.
  EXPECT_GT(MaxDiff(*original, *other), 0.0);

  EXPECT_TRUE(LoadUnitsInto(*other, dir, *m, 0).ok());
  st = LoadUnitsInto(*other, dir, *m, k + 1);  // unit k's file is gone
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_NE(st.message().find(m->units[k].file), std::string::npos) << st;
  EXPECT_EQ(LoadUnitsInto(*other, dir, *m, n + 1).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace splitinfer

// Tests of the device's unit store (device/unit_store.h), on real files in a temporary directory:
// a version published with 4096-byte chunks (common/model_repo.h) plays the edge's repository,
// and its chunks are fed to the store as the placement agent would. A full download + Commit +
// LoadCurrent reproduces the published model; corrupted chunks are refused before anything is
// written; a resumed download refetches only the bad chunks; Commit re-verifies; the placement
// switches only at Commit; GarbageCollect keeps the placed version.
#include "device/unit_store.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/model_repo.h"
#include "common/model_zoo.h"
#include "tests/integration/test_models.h"

namespace splitinfer {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int64_t kChunk = 4096;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "unit_store_test.XXXXXX").string();
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

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

std::shared_ptr<SplitModel> Build(const std::string& name, uint32_t version) {
  Result<std::shared_ptr<SplitModel>> m = BuildZooModel(name, version, testing::SmallZoo());
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *m : nullptr;
}

at::Tensor Run(const SplitModel& model, size_t m) {
  std::vector<int64_t> shape = {2};
  for (int64_t d : model.input_shape()) shape.push_back(d);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(7);
  return model.RunRange(at::randn(shape, gen), 0, m);
}

double PrefixDiff(const SplitModel& a, const SplitModel& b, size_t m) {
  return (Run(a, m) - Run(b, m)).abs().max().item<double>();
}

// The edge's side: a repository with published versions.
class Edge {
 public:
  explicit Edge(std::string root) : root_(std::move(root)) {}

  // Publishes `model` (already built) and returns its manifest.
  Manifest Publish(const SplitModel& model) {
    const std::string dir = VersionDir(root_, model.name(), model.version());
    Status st = WriteVersion(model, testing::SmallZoo(), dir, kChunk);
    EXPECT_TRUE(st.ok()) << st;
    Result<Manifest> m = ReadManifest(dir + "/" + kManifestFile);
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? *m : Manifest();
  }

  // Bytes of chunk c of unit k, as the edge would send them.
  std::string Chunk(const Manifest& m, size_t k, size_t c) const {
    const std::string bytes =
        ReadFile(VersionDir(root_, m.model, m.version) + "/" + m.units[k].file);
    const ManifestUnit& u = m.units[k];
    return bytes.substr(static_cast<size_t>(u.chunk_offset(m.chunk_bytes, c)),
                        static_cast<size_t>(u.chunk_length(m.chunk_bytes, c)));
  }

 private:
  std::string root_;
};

Status Put(UnitStore& store, const Manifest& m, size_t k, size_t c, const std::string& bytes) {
  return store.PutChunk(m, k, c, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

// What the placement agent does for one unit: fetch what is missing, then finish.
void DownloadUnit(UnitStore& store, const Edge& edge, const Manifest& m, size_t k) {
  Result<std::vector<size_t>> missing = store.MissingChunks(m, k);
  ASSERT_TRUE(missing.ok()) << missing.status();
  for (size_t c : *missing) {
    Status st = Put(store, m, k, c, edge.Chunk(m, k, c));
    ASSERT_TRUE(st.ok()) << st;
  }
  Status st = store.FinishUnit(m, k);
  ASSERT_TRUE(st.ok()) << st;
}

void Download(UnitStore& store, const Edge& edge, const Manifest& m, size_t units) {
  Status st = store.Prepare(m);
  ASSERT_TRUE(st.ok()) << st;
  for (size_t k = 0; k < units; ++k) DownloadUnit(store, edge, m, k);
}

struct Fixture {
  TempDir tmp;
  Edge edge{tmp.str() + "/edge"};
  UnitStore store{tmp.str() + "/device"};
  std::shared_ptr<SplitModel> v1 = Build("mlp", 1);
  Manifest m1 = edge.Publish(*v1);
  std::string Dir(uint32_t version) const { return store.VersionDirOf("mlp", version); }
};

TEST(UnitStore, FullDownloadThenCommitLoadsThePublishedModel) {
  Fixture f;
  const size_t n = f.m1.units.size();
  ASSERT_GT(n, 2u);
  for (const ManifestUnit& u : f.m1.units) {
    EXPECT_GT(u.num_chunks(kChunk), 1u) << u.file << ": units should span several chunks";
  }
  EXPECT_EQ(f.store.Current("mlp").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(f.store.LoadCurrent("mlp").status().code(), StatusCode::kNotFound);

  ASSERT_TRUE(f.store.Prepare(f.m1).ok());
  ASSERT_TRUE(f.store.Prepare(f.m1).ok());  // idempotent
  Result<std::vector<size_t>> missing = f.store.MissingChunks(f.m1, 0);
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_EQ(missing->size(), f.m1.units[0].num_chunks(kChunk));  // nothing on disk: all
  // Chunks in reverse order (the file grows sparse, then fills): order does not matter.
  int64_t held = 0;  // final files only, not .partial
  for (size_t k = 0; k < n; ++k) {
    const size_t chunks = f.m1.units[k].num_chunks(kChunk);
    for (size_t c = chunks; c-- > 0;) {
      Status st = Put(f.store, f.m1, k, c, f.edge.Chunk(f.m1, k, c));
      ASSERT_TRUE(st.ok()) << st;
    }
    EXPECT_EQ(f.store.BytesHeld("mlp", 1), held);
    Status st = f.store.FinishUnit(f.m1, k);
    ASSERT_TRUE(st.ok()) << st;
    held += f.m1.units[k].bytes;
    EXPECT_TRUE(f.store.FinishUnit(f.m1, k).ok());  // idempotent
    EXPECT_TRUE(f.store.MissingChunks(f.m1, k)->empty());
    EXPECT_FALSE(fs::exists(f.Dir(1) + "/" + f.m1.units[k].file + ".partial"));
  }
  EXPECT_EQ(f.store.Current("mlp").status().code(), StatusCode::kNotFound);  // not yet placed
  Status st = f.store.Commit(f.m1, n);
  ASSERT_TRUE(st.ok()) << st;

  Result<PlacedVersion> cur = f.store.Current("mlp");
  ASSERT_TRUE(cur.ok()) << cur.status();
  EXPECT_EQ(cur->model, "mlp");
  EXPECT_EQ(cur->version, 1u);
  EXPECT_EQ(cur->m, n);
  EXPECT_EQ(cur->dir, f.Dir(1));
  EXPECT_EQ(ManifestToJson(cur->manifest), ManifestToJson(f.m1));

  auto loaded = f.store.LoadCurrent("mlp");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->first.version, 1u);
  EXPECT_EQ(PrefixDiff(*loaded->second, *f.v1, n), 0.0);
  // Weights come from the files: another version's seed gives another model.
  EXPECT_GT(PrefixDiff(*Build("mlp", 2), *f.v1, n), 0.0);

  EXPECT_EQ(f.store.BytesHeld("mlp", 1), held);
  EXPECT_EQ(f.store.BytesHeld("mlp", 9), 0);
}

// Only units [0, m): later unit files are never fetched, and the loaded prefix is exact.
TEST(UnitStore, PartialPlacementLoadsThePrefix) {
  Fixture f;
  const size_t m = 3;
  Download(f.store, f.edge, f.m1, m);
  ASSERT_TRUE(f.store.Commit(f.m1, m).ok());
  EXPECT_FALSE(fs::exists(f.Dir(1) + "/" + f.m1.units[m].file));
  auto loaded = f.store.LoadCurrent("mlp");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->first.m, m);
  EXPECT_EQ(PrefixDiff(*loaded->second, *f.v1, m), 0.0);
  EXPECT_EQ(f.store.Commit(f.m1, f.m1.units.size() + 1).code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(f.store.Commit(f.m1, 0).ok());  // nothing on the device
  EXPECT_EQ(f.store.Current("mlp")->m, 0u);
}

TEST(UnitStore, CorruptedChunkIsRefusedAndNothingIsWritten) {
  Fixture f;
  ASSERT_TRUE(f.store.Prepare(f.m1).ok());
  const std::string partial = f.Dir(1) + "/" + f.m1.units[1].file + ".partial";
  std::string chunk = f.edge.Chunk(f.m1, 1, 2);
  chunk[100] ^= 0x01;
  Status st = Put(f.store, f.m1, 1, 2, chunk);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("SHA-256"), std::string::npos) << st;
  EXPECT_NE(st.message().find("chunk 2"), std::string::npos) << st;
  EXPECT_NE(st.message().find("unit_1.pt"), std::string::npos) << st;
  EXPECT_FALSE(fs::exists(partial));

  // Wrong length (a short read), a chunk of another unit: refused too.
  chunk = f.edge.Chunk(f.m1, 1, 2);
  st = Put(f.store, f.m1, 1, 2, chunk.substr(0, chunk.size() - 1));
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("bytes"), std::string::npos) << st;
  EXPECT_EQ(Put(f.store, f.m1, 2, 2, chunk).code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(partial));

  // Wrong calls: indexes out of range, no chunk digests, a name leaving the store, no Prepare.
  const size_t n = f.m1.units.size();
  EXPECT_EQ(Put(f.store, f.m1, n, 0, chunk).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Put(f.store, f.m1, 1, f.m1.units[1].num_chunks(kChunk), chunk).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(f.store.MissingChunks(f.m1, n).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(f.store.FinishUnit(f.m1, n).code(), StatusCode::kFailedPrecondition);
  Manifest no_chunks = f.m1;
  for (ManifestUnit& u : no_chunks.units) u.chunk_sha256.clear();
  st = Put(f.store, no_chunks, 1, 2, chunk);
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("chunk digests"), std::string::npos) << st;
  EXPECT_EQ(f.store.Prepare(no_chunks).code(), StatusCode::kFailedPrecondition);
  Manifest escape = f.m1;
  escape.model = "..";
  EXPECT_EQ(f.store.Prepare(escape).code(), StatusCode::kFailedPrecondition);
  escape = f.m1;
  escape.units[0].file = "../unit_0.pt";
  EXPECT_EQ(f.store.Prepare(escape).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(f.store.Current("../mlp").status().code(), StatusCode::kFailedPrecondition);
  Manifest v5 = f.m1;
  v5.version = 5;
  EXPECT_EQ(Put(f.store, v5, 1, 2, chunk).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(f.store.MissingChunks(v5, 1).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_FALSE(fs::exists(f.Dir(5)));
}

// A download interrupted with one chunk damaged on disk resumes by refetching that chunk only.
TEST(UnitStore, ResumeRefetchesOnlyTheBadChunks) {
  Fixture f;
  ASSERT_TRUE(f.store.Prepare(f.m1).ok());
  const size_t k = 1;
  const size_t chunks = f.m1.units[k].num_chunks(kChunk);
  ASSERT_GE(chunks, 4u);
  for (size_t c = 0; c < chunks; ++c) {
    ASSERT_TRUE(Put(f.store, f.m1, k, c, f.edge.Chunk(f.m1, k, c)).ok());
  }
  const std::string partial = f.Dir(1) + "/" + f.m1.units[k].file + ".partial";
  std::string bytes = ReadFile(partial);
  ASSERT_EQ(static_cast<int64_t>(bytes.size()), f.m1.units[k].bytes);
  bytes[2 * kChunk + 17] ^= 0x40;  // chunk 2 damaged (e.g. a torn write)
  WriteFile(partial, bytes);
  EXPECT_EQ(*f.store.MissingChunks(f.m1, k), std::vector<size_t>{2});
  Status st = f.store.FinishUnit(f.m1, k);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("SHA-256"), std::string::npos) << st;

  // Truncated too: the cut chunk and every later one are missing.
  fs::resize_file(partial, static_cast<uintmax_t>(3 * kChunk + 5));
  std::vector<size_t> want = {2};
  for (size_t c = 3; c < chunks; ++c) want.push_back(c);
  EXPECT_EQ(*f.store.MissingChunks(f.m1, k), want);
  EXPECT_EQ(f.store.FinishUnit(f.m1, k).code(), StatusCode::kInvalidArgument);

  DownloadUnit(f.store, f.edge, f.m1, k);
  EXPECT_TRUE(f.store.MissingChunks(f.m1, k)->empty());
  EXPECT_TRUE(VerifyUnit(f.Dir(1), f.m1, k).ok());
  EXPECT_EQ(f.store.FinishUnit(f.m1, 0).code(), StatusCode::kNotFound);  // no chunk of unit 0
}

TEST(UnitStore, CommitRefusesAMissingOrAlteredUnit) {
  Fixture f;
  const size_t n = f.m1.units.size();
  ASSERT_TRUE(f.store.Prepare(f.m1).ok());
  for (size_t k = 0; k < n; ++k) {
    if (k != 3) DownloadUnit(f.store, f.edge, f.m1, k);
  }
  Status st = f.store.Commit(f.m1, n);
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_NE(st.message().find("unit_3.pt"), std::string::npos) << st;
  EXPECT_EQ(f.store.Current("mlp").status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(f.store.Commit(f.m1, 3).ok());

  // unit_1.pt altered after FinishUnit: Commit checks again and refuses, the old placement stays.
  const std::string file = f.Dir(1) + "/unit_1.pt";
  std::string bytes = ReadFile(file);
  bytes[kChunk + 9] ^= 0x02;  // in chunk 1
  WriteFile(file, bytes);
  st = f.store.Commit(f.m1, 4);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("unit_1.pt"), std::string::npos) << st;
  EXPECT_EQ(f.store.Current("mlp")->m, 3u);
  EXPECT_FALSE(f.store.LoadCurrent("mlp").ok());  // never runs the altered weights

  // Repair: the unusable final file goes back to .partial, and only chunk 1 is refetched.
  EXPECT_EQ(*f.store.MissingChunks(f.m1, 1), std::vector<size_t>{1});
  EXPECT_FALSE(fs::exists(file));
  DownloadUnit(f.store, f.edge, f.m1, 1);
  DownloadUnit(f.store, f.edge, f.m1, 3);
  ASSERT_TRUE(f.store.Commit(f.m1, n).ok());
  auto loaded = f.store.LoadCurrent("mlp");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(PrefixDiff(*loaded->second, *f.v1, n), 0.0);

  // A manifest that differs from the stored one (same version number) is not committed.
  Manifest other = f.m1;
  other.units[0].sha256 = std::string(64, 'a');
  EXPECT_EQ(f.store.Commit(other, 1).code(), StatusCode::kFailedPrecondition);
}

// Current names the old version during the download of a new one, until Commit; GarbageCollect
// then deletes the old version and keeps the placed one (and keep_also).
TEST(UnitStore, PlacementSwitchesOnlyAtCommitAndGarbageCollectKeepsIt) {
  Fixture f;
  const size_t n = f.m1.units.size();
  Download(f.store, f.edge, f.m1, n);
  ASSERT_TRUE(f.store.Commit(f.m1, n).ok());

  Result<std::shared_ptr<SplitModel>> v2 = BuildZooModel("mlp", 2, testing::SmallZoo());
  ASSERT_TRUE(v2.ok());
  ASSERT_TRUE(LoadWeightsInto(**v2, VersionDir(f.tmp.str() + "/edge", "mlp", 1), f.m1).ok());
  ASSERT_TRUE(PerturbWeights(**v2, 0.05, 3).ok());
  const Manifest m2 = f.edge.Publish(**v2);
  ASSERT_TRUE(f.store.Prepare(m2).ok());
  for (size_t k = 0; k < n; ++k) {
    DownloadUnit(f.store, f.edge, m2, k);
    EXPECT_EQ(f.store.Current("mlp")->version, 1u) << "after unit " << k;
  }
  auto old = f.store.LoadCurrent("mlp");
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->first.version, 1u);
  EXPECT_EQ(PrefixDiff(*old->second, *f.v1, n), 0.0);

  ASSERT_TRUE(f.store.Commit(m2, n).ok());
  auto now = f.store.LoadCurrent("mlp");
  ASSERT_TRUE(now.ok()) << now.status();
  EXPECT_EQ(now->first.version, 2u);
  EXPECT_EQ(PrefixDiff(*now->second, **v2, n), 0.0);
  EXPECT_GT(PrefixDiff(*now->second, *f.v1, n), 0.0);

  // v3 being prepared is kept with keep_also; v1 goes; non-version entries stay.
  Manifest m3 = m2;
  m3.version = 3;
  ASSERT_TRUE(f.store.Prepare(m3).ok());
  fs::create_directories(f.tmp.str() + "/device/mlp/notaversion");
  ASSERT_TRUE(f.store.GarbageCollect("mlp", 3).ok());
  EXPECT_FALSE(fs::exists(f.Dir(1)));
  EXPECT_TRUE(fs::exists(f.Dir(2)));
  EXPECT_TRUE(fs::exists(f.Dir(3)));
  EXPECT_TRUE(fs::exists(f.tmp.str() + "/device/mlp/notaversion"));
  EXPECT_EQ(f.store.BytesHeld("mlp", 1), 0);
  ASSERT_TRUE(f.store.GarbageCollect("mlp").ok());
  EXPECT_FALSE(fs::exists(f.Dir(3)));
  EXPECT_TRUE(f.store.LoadCurrent("mlp").ok());
  EXPECT_TRUE(f.store.GarbageCollect("resnet18").ok());  // nothing there
}

TEST(UnitStore, PrepareReplacesAnUnplacedVersionOnlyAndCurrentValidatesPlacedJson) {
  Fixture f;
  const size_t n = f.m1.units.size();
  ASSERT_TRUE(f.store.Prepare(f.m1).ok());
  DownloadUnit(f.store, f.edge, f.m1, 0);
  // Same version number, other bytes (the edge republished): the stale unit files go.
  Manifest other = f.m1;
  other.units[0].sha256 = std::string(64, 'b');
  ASSERT_TRUE(f.store.Prepare(other).ok());
  EXPECT_FALSE(fs::exists(f.Dir(1) + "/unit_0.pt"));
  EXPECT_EQ(f.store.MissingChunks(f.m1, 0).status().code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(f.store.Prepare(f.m1).ok());
  Download(f.store, f.edge, f.m1, n);
  ASSERT_TRUE(f.store.Commit(f.m1, n).ok());
  EXPECT_EQ(f.store.Prepare(other).code(), StatusCode::kFailedPrecondition);  // placed: kept
  EXPECT_TRUE(f.store.LoadCurrent("mlp").ok());

  const std::string placed = f.tmp.str() + "/device/mlp/placed.json";
  const json good = json::parse(ReadFile(placed));
  EXPECT_EQ(good, (json{{"model", "mlp"}, {"version", 1}, {"m", n}}));
  auto expect_bad = [&](const json& j, const std::string& field) {
    WriteFile(placed, j.dump());
    Result<PlacedVersion> cur = f.store.Current("mlp");
    ASSERT_FALSE(cur.ok()) << field;
    EXPECT_NE(cur.status().message().find(field), std::string::npos) << cur.status();
    EXPECT_FALSE(f.store.LoadCurrent("mlp").ok());
    EXPECT_FALSE(f.store.GarbageCollect("mlp").ok()) << "no deletion on an unreadable placement";
    EXPECT_TRUE(fs::exists(f.Dir(1)));
  };
  json j = good;
  j["model"] = "resnet18";
  expect_bad(j, "model");
  j = good;
  j["m"] = n + 1;
  expect_bad(j, "m = ");
  j = good;
  j["version"] = -1;
  expect_bad(j, "version");
  j = good;
  j["version"] = 7;
  expect_bad(j, "7");
  WriteFile(placed, good.dump());
  EXPECT_TRUE(f.store.Current("mlp").ok());
}

}  // namespace
}  // namespace splitinfer

#include "edge_server/repo_watcher.h"

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/model_repo.h"
#include "edge_server/model_registry.h"
#include "tests/edge_server/test_repo.h"

namespace splitinfer {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::PublishMlp;
using testing::TempRepo;

struct Watched {
  explicit Watched(const TempRepo& repo, std::chrono::milliseconds grace = 60000ms)
      : registry(std::make_shared<ModelRegistry>(at::Device(at::kCPU))),
        watcher(RepoWatcherOptions{repo.root(), 500ms, grace}, registry) {}

  RepoScanResult Scan() {
    auto r = watcher.ScanOnce();
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : RepoScanResult{-1, -1, -1};
  }

  std::shared_ptr<ModelRegistry> registry;
  RepoWatcher watcher;
};

TEST(RepoWatcherTest, MissingRootIsNotFound) {
  auto registry = std::make_shared<ModelRegistry>(at::Device(at::kCPU));
  RepoWatcher watcher(RepoWatcherOptions{"/nonexistent/splitinfer/repo", 500ms, 1000ms}, registry);
  auto r = watcher.ScanOnce();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

TEST(RepoWatcherTest, AddsAVersionPublishedAfterConstruction) {
  TempRepo repo;
  Watched w(repo);
  RepoScanResult r = w.Scan();
  EXPECT_EQ(r.added, 0);
  EXPECT_TRUE(w.registry->empty());

  PublishMlp(repo.dir(1), 1);
  r = w.Scan();
  EXPECT_EQ(r.added, 1);
  EXPECT_EQ(r.failed, 0);
  auto v = w.registry->FindVersion("mlp", 0);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)->model->version(), 1u);
  EXPECT_TRUE((*v)->from_repository());
  EXPECT_EQ((*v)->dir, repo.dir(1));
  EXPECT_EQ((*v)->manifest->units.size(), (*v)->model->num_units());

  // Already served: the next scan adds nothing.
  r = w.Scan();
  EXPECT_EQ(r.added, 0);
  EXPECT_EQ(r.failed, 0);

  // A second version becomes the newest.
  PublishMlp(repo.dir(2), 2);
  r = w.Scan();
  EXPECT_EQ(r.added, 1);
  v = w.registry->FindVersion("mlp", 0);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)->model->version(), 2u);
  EXPECT_TRUE(w.registry->Contains("mlp", 1));
}

TEST(RepoWatcherTest, SkipsAVersionStillBeingPublished) {
  TempRepo repo;
  Watched w(repo);
  PublishMlp(repo.dir(1), 1);
  // Unit files are there, manifest.json (written last) not yet.
  const std::string manifest = repo.dir(1) + "/" + kManifestFile;
  const std::string held = manifest + ".held";
  fs::rename(manifest, held);
  RepoScanResult r = w.Scan();
  EXPECT_EQ(r.added, 0);
  EXPECT_EQ(r.failed, 0) << "a version without a manifest is not a failure";
  EXPECT_FALSE(w.registry->Contains("mlp", 1));
  r = w.Scan();
  EXPECT_EQ(r.failed, 0);

  fs::rename(held, manifest);
  r = w.Scan();
  EXPECT_EQ(r.added, 1);
  EXPECT_EQ(r.failed, 0);
  EXPECT_TRUE(w.registry->Contains("mlp", 1));
}

TEST(RepoWatcherTest, CorruptedUnitIsFailedOnceAndRetriedWhenTheManifestChanges) {
  TempRepo repo;
  Watched w(repo);
  PublishMlp(repo.dir(1), 1);
  ASSERT_EQ(w.Scan().added, 1);

  PublishMlp(repo.dir(2), 2);
  const std::string unit = repo.dir(2) + "/unit_1.pt";
  std::vector<char> bytes = testing::ReadBytes(unit);
  ASSERT_GT(bytes.size(), 100u);
  bytes[bytes.size() / 2] ^= 0x5a;  // same size, other digest
  testing::WriteBytes(unit, bytes);

  RepoScanResult r = w.Scan();
  EXPECT_EQ(r.added, 0);
  EXPECT_EQ(r.failed, 1);
  EXPECT_FALSE(w.registry->Contains("mlp", 2));
  auto newest = w.registry->FindVersion("mlp", 0);
  ASSERT_TRUE(newest.ok());
  EXPECT_EQ((*newest)->model->version(), 1u) << "the corrupted version must not be served";

  // Not retried (nor logged again) while its manifest stays as it was.
  r = w.Scan();
  EXPECT_EQ(r.failed, 0);
  EXPECT_EQ(r.added, 0);

  // The manifest rewritten (same text, new mtime): tried again, and fails again. The sleep puts
  // the new mtime past the file system's timestamp granularity.
  std::this_thread::sleep_for(50ms);
  const std::string manifest = repo.dir(2) + "/" + kManifestFile;
  const std::vector<char> text = testing::ReadBytes(manifest);
  testing::WriteAtomically(manifest, std::string(text.begin(), text.end()));
  r = w.Scan();
  EXPECT_EQ(r.failed, 1);
  EXPECT_EQ(r.added, 0);

  // Republished whole (unit files, then the manifest): served.
  std::this_thread::sleep_for(50ms);
  PublishMlp(repo.dir(2), 2);
  r = w.Scan();
  EXPECT_EQ(r.failed, 0);
  EXPECT_EQ(r.added, 1);
  ASSERT_TRUE(w.registry->Contains("mlp", 2));
  EXPECT_EQ((*w.registry->FindVersion("mlp", 0))->model->version(), 2u);
}

TEST(RepoWatcherTest, InvalidManifestIsFailedOnce) {
  TempRepo repo;
  Watched w(repo);
  fs::create_directories(repo.dir(1));
  testing::WriteAtomically(repo.dir(1) + "/" + kManifestFile, "{\"model\": \"mlp\"");
  RepoScanResult r = w.Scan();
  EXPECT_EQ(r.failed, 1);
  EXPECT_EQ(r.added, 0);
  r = w.Scan();
  EXPECT_EQ(r.failed, 0);
  EXPECT_TRUE(w.registry->empty());
}

// Superseded versions leave after retire_grace without use; the newest never does.
TEST(RepoWatcherTest, RetiresASupersededVersionOnlyAfterTheGraceWithoutUse) {
  // The grace is long enough that loading a version (inside the same scan) does not exhaust it
  // on a slow machine, and short enough to keep the test quick.
  constexpr auto kGrace = 600ms;
  TempRepo repo;
  Watched w(repo, kGrace);
  PublishMlp(repo.dir(1), 1);
  ASSERT_EQ(w.Scan().added, 1);
  PublishMlp(repo.dir(2), 2);
  ASSERT_TRUE(w.registry->FindVersion("mlp", 1).ok());  // used just now
  RepoScanResult r = w.Scan();
  EXPECT_EQ(r.added, 1);
  EXPECT_EQ(r.retired, 0);

  // Used half-way through: a full grace since it was added, but not since it was last used.
  std::this_thread::sleep_for(kGrace / 2);
  ASSERT_TRUE(w.registry->FindVersion("mlp", 1).ok());  // Touch
  std::this_thread::sleep_for(kGrace / 2 + 50ms);
  r = w.Scan();
  EXPECT_EQ(r.retired, 0) << "version 1 was used less than retire_grace ago";
  EXPECT_TRUE(w.registry->Contains("mlp", 1));

  // Now unused for longer than the grace: retired. Version 2 is as idle but the newest.
  std::this_thread::sleep_for(kGrace + 100ms);
  r = w.Scan();
  EXPECT_EQ(r.retired, 1);
  EXPECT_FALSE(w.registry->Contains("mlp", 1));
  EXPECT_TRUE(w.registry->Contains("mlp", 2));

  // Its directory is still there, but it is not loaded again.
  ASSERT_TRUE(fs::exists(repo.dir(1) + "/" + kManifestFile));
  r = w.Scan();
  EXPECT_EQ(r.added, 0);
  EXPECT_EQ(r.failed, 0);
  EXPECT_FALSE(w.registry->Contains("mlp", 1));
  auto gone = w.registry->FindVersion("mlp", 1);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.status().code(), StatusCode::kNotFound);

  // The newest stays, however idle, even when its directory disappears.
  fs::remove_all(repo.dir(2));
  std::this_thread::sleep_for(kGrace + 100ms);
  r = w.Scan();
  EXPECT_EQ(r.retired, 0);
  EXPECT_TRUE(w.registry->Contains("mlp", 2));
}

TEST(RepoWatcherTest, RetiresEverySupersededVersionButTheNewest) {
  constexpr auto kGrace = 50ms;
  TempRepo repo;
  Watched w(repo, kGrace);
  PublishMlp(repo.dir(1), 1);
  PublishMlp(repo.dir(2), 2);
  PublishMlp(repo.dir(3), 3);
  RepoScanResult r = w.Scan();
  EXPECT_EQ(r.added, 3);
  std::this_thread::sleep_for(kGrace + 50ms);
  r = w.Scan();
  EXPECT_EQ(r.retired, 2);
  EXPECT_FALSE(w.registry->Contains("mlp", 1));
  EXPECT_FALSE(w.registry->Contains("mlp", 2));
  EXPECT_TRUE(w.registry->Contains("mlp", 3));
}

TEST(RepoWatcherTest, NeverRetiresVersionsNotFromTheRepository) {
  constexpr auto kGrace = 50ms;
  TempRepo repo;
  Watched w(repo, kGrace);
  auto given = BuildZooModel("mlp", 1, testing::SmallZoo());
  ASSERT_TRUE(given.ok());
  ASSERT_TRUE(w.registry->Add(*given).ok());  // as with --models mlp@1
  PublishMlp(repo.dir(2), 2);
  RepoScanResult r = w.Scan();
  EXPECT_EQ(r.added, 1);
  std::this_thread::sleep_for(kGrace + 100ms);
  r = w.Scan();
  EXPECT_EQ(r.retired, 0);
  EXPECT_TRUE(w.registry->Contains("mlp", 1));
  EXPECT_TRUE(w.registry->Contains("mlp", 2));
  EXPECT_FALSE((*w.registry->FindVersion("mlp", 1))->from_repository());
}

TEST(RepoWatcherTest, KeepsAVersionGivenAtStartUpThatTheRepositoryAlsoHas) {
  TempRepo repo;
  Watched w(repo);
  auto given = BuildZooModel("mlp", 1, testing::SmallZoo());
  ASSERT_TRUE(given.ok());
  ASSERT_TRUE(w.registry->Add(*given).ok());
  PublishMlp(repo.dir(1), 1);
  RepoScanResult r = w.Scan();
  EXPECT_EQ(r.added, 0);
  EXPECT_EQ(r.failed, 0) << "(name, version) already served is not a failure";
}

// A manifest written before chunk digests existed: the watcher computes them.
TEST(RepoWatcherTest, FillsMissingChunkDigests) {
  TempRepo repo;
  Watched w(repo);
  // Version 1: "chunk_bytes" kept, "chunks" dropped. Version 2: both dropped (the default chunk
  // size applies).
  PublishMlp(repo.dir(1), 1);
  PublishMlp(repo.dir(2), 2);
  std::vector<Manifest> expected;
  for (uint32_t v : {1u, 2u}) {
    const std::string path = repo.dir(v) + "/" + kManifestFile;
    auto m = ReadManifest(path);
    ASSERT_TRUE(m.ok()) << m.status();
    ASSERT_TRUE(HasChunkDigests(*m));
    expected.push_back(*m);
    const std::vector<char> text = testing::ReadBytes(path);
    nlohmann::json j = nlohmann::json::parse(text.begin(), text.end());
    for (auto& u : j["units"]) u.erase("chunks");
    if (v == 2) j.erase("chunk_bytes");
    testing::WriteAtomically(path, j.dump(2));
    auto stripped = ReadManifest(path);
    ASSERT_TRUE(stripped.ok()) << stripped.status();
    ASSERT_FALSE(HasChunkDigests(*stripped));
  }
  // With the default chunk size, each small unit file is one chunk: its digest is the file's.
  ASSERT_EQ(kDefaultChunkBytes, 1 << 20);
  for (ManifestUnit& u : expected[1].units) {
    ASSERT_LT(u.bytes, kDefaultChunkBytes);
    u.chunk_sha256 = {u.sha256};
  }

  RepoScanResult r = w.Scan();
  EXPECT_EQ(r.added, 2);
  EXPECT_EQ(r.failed, 0);
  for (uint32_t v : {1u, 2u}) {
    auto served = w.registry->FindVersion("mlp", v);
    ASSERT_TRUE(served.ok()) << served.status();
    const Manifest& m = *(*served)->manifest;
    const Manifest& want = expected[v - 1];
    EXPECT_EQ(m.chunk_bytes, v == 1 ? testing::kTestChunk : kDefaultChunkBytes);
    ASSERT_EQ(m.units.size(), want.units.size());
    for (size_t i = 0; i < m.units.size(); ++i) {
      EXPECT_EQ(m.units[i].chunk_sha256, want.units[i].chunk_sha256) << "v" << v << " unit " << i;
    }
    if (v == 1) {
      EXPECT_GT(m.units[0].chunk_sha256.size(), 1u);  // several chunks compared
    }
    // The JSON a PlacementReply carries has them too.
    auto body = ParseManifest((*served)->manifest_json, "manifest_json");
    ASSERT_TRUE(body.ok()) << body.status();
    EXPECT_TRUE(HasChunkDigests(*body));
  }
}

}  // namespace
}  // namespace splitinfer

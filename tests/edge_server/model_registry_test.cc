#include "edge_server/model_registry.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/model_repo.h"
#include "tests/edge_server/test_repo.h"

namespace splitinfer {
namespace {

std::shared_ptr<SplitModel> Mlp(uint32_t version) {
  auto m = BuildZooModel("mlp", version, testing::SmallZoo());
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *m : nullptr;
}

TEST(ModelRegistryTest, FindVersionZeroIsTheNewest) {
  ModelRegistry registry(at::Device(at::kCPU));
  ASSERT_TRUE(registry.Add(Mlp(3)).ok());
  ASSERT_TRUE(registry.Add(Mlp(1)).ok());
  auto v = registry.FindVersion("mlp", 0);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)->model->version(), 3u);
  EXPECT_FALSE(registry.Add(Mlp(3)).ok()) << "(name, version) added twice";
}

TEST(ModelRegistryTest, RetiredVersionIsNotFoundNamingTheNewest) {
  ModelRegistry registry(at::Device(at::kCPU));
  ASSERT_TRUE(registry.Add(Mlp(1)).ok());
  ASSERT_TRUE(registry.Add(Mlp(2)).ok());
  ASSERT_TRUE(registry.Remove("mlp", 1));
  EXPECT_FALSE(registry.Remove("mlp", 1));
  auto v = registry.FindVersion("mlp", 1);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), StatusCode::kNotFound);
  EXPECT_NE(v.status().message().find("newest is mlp@2"), std::string::npos) << v.status();
  EXPECT_NE(v.status().message().find("re-plan"), std::string::npos) << v.status();

  auto unknown = registry.FindVersion("resnet18", 0);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kNotFound);
  EXPECT_NE(unknown.status().message().find("mlp@2"), std::string::npos) << unknown.status();
}

TEST(ModelRegistryTest, FindVersionMarksTheVersionUsed) {
  ModelRegistry registry(at::Device(at::kCPU));
  ASSERT_TRUE(registry.Add(Mlp(1)).ok());
  auto v = registry.FindVersion("mlp", 1);
  ASSERT_TRUE(v.ok());
  const int64_t before = (*v)->last_used_ns.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(registry.FindVersion("mlp", 0).ok());
  EXPECT_GT((*v)->last_used_ns.load(), before);
}

TEST(ModelRegistryTest, AHolderKeepsARemovedModelAlive) {
  ModelRegistry registry(at::Device(at::kCPU));
  ASSERT_TRUE(registry.Add(Mlp(1)).ok());
  auto held = registry.Find("mlp", 1);
  ASSERT_TRUE(held.ok()) << held.status();
  std::weak_ptr<const SplitModel> watch = *held;
  ASSERT_TRUE(registry.Remove("mlp", 1));
  EXPECT_TRUE(registry.empty());
  ASSERT_FALSE(watch.expired());
  // Still usable: a whole inference on the removed model.
  const SplitModel& m = **held;
  std::vector<int64_t> shape = {1};
  for (int64_t d : m.input_shape()) shape.push_back(d);
  auto y = m.RunRangeChecked(at::ones(shape), 0, m.num_units());
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ(y->size(0), 1);
  *held = nullptr;  // the last holder lets go: the model goes with it
  EXPECT_TRUE(watch.expired());
}

TEST(ModelRegistryTest, AddVersionChecksTheManifest) {
  testing::TempRepo repo;
  testing::PublishMlp(repo.dir(2), 2);
  auto manifest = ReadManifest(repo.dir(2) + "/" + kManifestFile);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  ModelRegistry registry(at::Device(at::kCPU));
  EXPECT_FALSE(registry.AddVersion(Mlp(3), repo.dir(2), *manifest).ok()) << "other version";
  Manifest short_manifest = *manifest;
  short_manifest.units.pop_back();
  EXPECT_FALSE(registry.AddVersion(Mlp(2), repo.dir(2), short_manifest).ok()) << "unit count";
  ASSERT_TRUE(registry.AddVersion(Mlp(2), repo.dir(2), *manifest).ok());
  auto v = registry.FindVersion("mlp", 2);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE((*v)->from_repository());
  EXPECT_EQ((*v)->dir, repo.dir(2));
  EXPECT_FALSE((*v)->manifest_json.empty());
}

// Readers look versions up while a writer adds and removes others: no crash, and every answer is
// consistent (a found version is the one asked for; version 1, never removed, is always found).
TEST(ModelRegistryTest, ConcurrentLookupsWhileVersionsComeAndGo) {
  constexpr uint32_t kVersions = 40;
  ModelRegistry registry(at::Device(at::kCPU));
  ASSERT_TRUE(registry.Add(Mlp(1)).ok());
  // Each model is added again every round (Add's To(cpu) changes nothing a reader looks at).
  std::vector<std::shared_ptr<SplitModel>> pool;
  for (uint32_t v = 2; v < 2 + kVersions; ++v) pool.push_back(Mlp(v));

  std::atomic<bool> done{false};
  std::atomic<int> errors{0};
  std::atomic<long> lookups{0}, found{0}, not_found{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&, t] {
      uint32_t i = static_cast<uint32_t>(t);
      while (!done.load()) {
        const uint32_t want = i++ % (kVersions + 2);  // 0 (newest), 1, 2..41
        auto v = registry.FindVersion("mlp", want);
        ++lookups;
        if (v.ok()) {
          ++found;
          if ((*v)->model->name() != "mlp") ++errors;
          if (want != 0 && (*v)->model->version() != want) ++errors;
          if (want == 0 && (*v)->model->version() < 1) ++errors;
        } else {
          ++not_found;
          if (v.status().code() != StatusCode::kNotFound) ++errors;
          if (want <= 1) ++errors;  // version 1 and "the newest" always exist
        }
        if (i % 64 == 0) {
          for (const wire::ModelInfo& info : registry.List())
            if (info.name() != "mlp" || info.version() < 1) ++errors;
        }
      }
    });
  }
  std::thread writer([&] {
    for (int round = 0; round < 50; ++round) {
      for (auto& m : pool)
        if (!registry.Add(m).ok()) ++errors;
      for (auto& m : pool)
        if (!registry.Remove("mlp", m->version())) ++errors;
    }
    done.store(true);
  });
  writer.join();
  for (auto& r : readers) r.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(found.load() + not_found.load(), lookups.load());
  EXPECT_GT(lookups.load(), 0);
  EXPECT_EQ(registry.Versions().size(), 1u);
  EXPECT_TRUE(registry.Contains("mlp", 1));
}

}  // namespace
}  // namespace splitinfer

#include "edge_server/placement_service.h"

#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/model_repo.h"
#include "edge_server/model_registry.h"
#include "tests/edge_server/test_repo.h"

namespace splitinfer {
namespace {

namespace fs = std::filesystem;

// Version 2 of the small MLP from a repository (chunks of kTestChunk bytes), as the watcher
// would add it, plus version 1 given at start-up (not from the repository).
class FetchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::PublishMlp(repo_.dir(2), 2);
    auto model = LoadVersion(repo_.dir(2));
    ASSERT_TRUE(model.ok()) << model.status();
    auto manifest = ReadManifest(repo_.dir(2) + "/" + kManifestFile);
    ASSERT_TRUE(manifest.ok()) << manifest.status();
    ASSERT_TRUE(HasChunkDigests(*manifest));
    manifest_ = *manifest;
    ASSERT_TRUE(registry_.AddVersion(*model, repo_.dir(2), *manifest).ok());
    auto given = BuildZooModel("mlp", 1, testing::SmallZoo());
    ASSERT_TRUE(given.ok());
    ASSERT_TRUE(registry_.Add(*given).ok());
  }

  wire::FetchRequest Request(uint32_t unit, uint32_t first, uint32_t num,
                             uint32_t version = 2) const {
    wire::FetchRequest r;
    r.set_model("mlp");
    r.set_version(version);
    r.set_unit(unit);
    r.set_first_chunk(first);
    r.set_num_chunks(num);
    return r;
  }
  uint32_t Chunks(size_t unit) const {
    return static_cast<uint32_t>(manifest_.units[unit].chunk_sha256.size());
  }
  std::shared_ptr<const ServedVersion> Served() const { return *registry_.FindVersion("mlp", 2); }

  testing::TempRepo repo_;
  ModelRegistry registry_{at::Device(at::kCPU)};
  Manifest manifest_;
};

TEST_F(FetchTest, RangeIsClampedToMaxChunksAndToTheUnit) {
  const uint32_t n = Chunks(0);
  ASSERT_GE(n, 3u) << "test premise: unit 0 spans several chunks";
  auto r = CheckFetch(registry_, Request(0, 0, 1000), 2);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->unit, 0u);
  EXPECT_EQ(r->first, 0u);
  EXPECT_EQ(r->end, 2u);
  EXPECT_EQ(r->version->model->version(), 2u);

  r = CheckFetch(registry_, Request(0, 1, 1000), 1000);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->first, 1u);
  EXPECT_EQ(r->end, n);

  r = CheckFetch(registry_, Request(0, n - 1, std::numeric_limits<uint32_t>::max()),
                 std::numeric_limits<uint32_t>::max());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->first, n - 1);
  EXPECT_EQ(r->end, n);

  r = CheckFetch(registry_, Request(0, 1, 1), 8);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->end, 2u);
}

TEST_F(FetchTest, RejectsBadRequests) {
  const uint32_t units = static_cast<uint32_t>(manifest_.units.size());
  struct Case {
    const char* what;
    wire::FetchRequest request;
    StatusCode code;
  };
  const std::vector<Case> cases = {
      {"version 0", Request(0, 0, 1, 0), StatusCode::kInvalidArgument},
      {"unit N", Request(units, 0, 1), StatusCode::kInvalidArgument},
      {"unit huge", Request(std::numeric_limits<uint32_t>::max(), 0, 1),
       StatusCode::kInvalidArgument},
      {"first chunk past the unit", Request(0, Chunks(0), 1), StatusCode::kInvalidArgument},
      {"no chunks", Request(0, 0, 0), StatusCode::kInvalidArgument},
      {"version not served", Request(0, 0, 1, 7), StatusCode::kNotFound},
      {"version not from the repository", Request(0, 0, 1, 1), StatusCode::kFailedPrecondition},
  };
  for (const Case& c : cases) {
    auto r = CheckFetch(registry_, c.request, 4);
    ASSERT_FALSE(r.ok()) << c.what;
    EXPECT_EQ(r.status().code(), c.code) << c.what << ": " << r.status();
  }
  wire::FetchRequest other = Request(0, 0, 1);
  other.set_model("resnet18");
  auto r = CheckFetch(registry_, other, 4);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

TEST_F(FetchTest, RetiredVersionIsNotFoundNamingTheNewest) {
  testing::PublishMlp(repo_.dir(3), 3);
  auto v3 = LoadVersion(repo_.dir(3));
  ASSERT_TRUE(v3.ok());
  ASSERT_TRUE(
      registry_.AddVersion(*v3, repo_.dir(3), *ReadManifest(repo_.dir(3) + "/manifest.json")).ok());
  ASSERT_TRUE(registry_.Remove("mlp", 2));
  auto r = CheckFetch(registry_, Request(0, 0, 1), 4);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("newest is mlp@3"), std::string::npos) << r.status();
}

TEST_F(FetchTest, ChunksAreTheFileBytes) {
  auto served = Served();
  int shorter_last = 0;
  for (size_t u = 0; u < manifest_.units.size(); ++u) {
    const ManifestUnit& mu = manifest_.units[u];
    const std::vector<char> file = testing::ReadBytes(repo_.dir(2) + "/" + mu.file);
    ASSERT_EQ(static_cast<int64_t>(file.size()), mu.bytes);
    const uint32_t n = Chunks(u);
    ASSERT_EQ(n, mu.num_chunks(manifest_.chunk_bytes));
    std::vector<char> joined;
    for (uint32_t c = 0; c < n; ++c) {
      std::vector<uint8_t> chunk;
      Status st = ReadChunk(*served, static_cast<uint32_t>(u), c, &chunk);
      ASSERT_TRUE(st.ok()) << "unit " << u << " chunk " << c << ": " << st;
      ASSERT_EQ(static_cast<int64_t>(chunk.size()), mu.chunk_length(manifest_.chunk_bytes, c));
      const int64_t offset = mu.chunk_offset(manifest_.chunk_bytes, c);
      EXPECT_TRUE(std::equal(chunk.begin(), chunk.end(),
                             reinterpret_cast<const uint8_t*>(file.data()) + offset))
          << "unit " << u << " chunk " << c;
      EXPECT_EQ(Sha256Hex(chunk.data(), chunk.size()), mu.chunk_sha256[c]);
      joined.insert(joined.end(), chunk.begin(), chunk.end());
    }
    EXPECT_TRUE(joined == file) << "unit " << u;
    const int64_t last = mu.chunk_length(manifest_.chunk_bytes, n - 1);
    EXPECT_LE(last, manifest_.chunk_bytes);
    if (last < manifest_.chunk_bytes) ++shorter_last;
    // One past the last chunk is refused.
    std::vector<uint8_t> chunk;
    EXPECT_FALSE(ReadChunk(*served, static_cast<uint32_t>(u), n, &chunk).ok());
  }
  EXPECT_GT(shorter_last, 0) << "test premise: some unit's last chunk is shorter";
}

TEST_F(FetchTest, FileTruncatedAfterLoadIsAClearError) {
  auto served = Served();
  const ManifestUnit& mu = manifest_.units[1];
  const std::string path = repo_.dir(2) + "/" + mu.file;
  const uint32_t n = Chunks(1);
  ASSERT_GE(n, 2u);
  fs::resize_file(path, static_cast<uintmax_t>(manifest_.chunk_bytes + 10));
  std::vector<uint8_t> chunk;
  // Chunk 0 is still whole.
  ASSERT_TRUE(ReadChunk(*served, 1, 0, &chunk).ok());
  EXPECT_EQ(static_cast<int64_t>(chunk.size()), manifest_.chunk_bytes);
  // Chunk 1 is cut short, the last one is gone.
  for (uint32_t c : {1u, n - 1}) {
    Status st = ReadChunk(*served, 1, c, &chunk);
    ASSERT_FALSE(st.ok()) << "chunk " << c;
    EXPECT_EQ(st.code(), StatusCode::kInternal) << st;
    EXPECT_NE(st.message().find(mu.file), std::string::npos) << st;
    EXPECT_NE(st.message().find("shorter"), std::string::npos) << st;
  }
  fs::remove(path);
  Status st = ReadChunk(*served, 1, 0, &chunk);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kNotFound) << st;
}

}  // namespace
}  // namespace splitinfer

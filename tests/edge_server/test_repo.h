// Helpers of the edge_server unit tests: a temporary model repository with versions of the small
// zoo MLP (tests/integration/test_models.h) written by common/model_repo.h.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/model_repo.h"
#include "common/model_zoo.h"
#include "tests/integration/test_models.h"

namespace splitinfer::testing {

// A fresh directory under the temp dir, removed with everything in it.
class TempRepo {
 public:
  TempRepo() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "edge_server_test.XXXXXX").string();
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempRepo() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempRepo(const TempRepo&) = delete;
  TempRepo& operator=(const TempRepo&) = delete;
  const std::string& root() const { return path_; }
  std::string dir(uint32_t version, const std::string& name = "mlp") const {
    return VersionDir(path_, name, version);
  }

 private:
  std::string path_;
};

// Small chunks: every unit of the small MLP spans several, the last one shorter.
inline constexpr int64_t kTestChunk = kMinChunkBytes;

// Writes version `version` of the small zoo MLP (weights perturbed by the version, so versions
// differ) into `dir` with WriteVersion.
inline void PublishMlp(const std::string& dir, uint32_t version, int64_t chunk = kTestChunk) {
  auto model = BuildZooModel("mlp", version, SmallZoo());
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_TRUE(PerturbWeights(**model, 0.05, version).ok());
  Status st = WriteVersion(**model, SmallZoo(), dir, chunk);
  ASSERT_TRUE(st.ok()) << st;
}

inline std::vector<char> ReadBytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

inline void WriteBytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Writes `text` as `path` through a rename, like a publisher.
inline void WriteAtomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << text;
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace splitinfer::testing

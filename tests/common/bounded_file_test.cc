// ReadBoundedFile / CheckBoundedFile (common/bounded_file.h): regular files of a bounded size
// only, with errors that name the file and the reason, and never a read that blocks or does not
// end (a FIFO without a writer, /dev/zero).
#include "common/bounded_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace splitinfer {
namespace {

class BoundedFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("splitinfer_bounded_file_" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  std::filesystem::path dir_;
};

TEST_F(BoundedFileTest, ReadsARegularFileWithinItsCap) {
  const std::string path = Write("ok.txt", "0.1 2.5\n0.2 3.0\n");
  Result<std::string> r = ReadBoundedFile(path, 1024, "trace");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "0.1 2.5\n0.2 3.0\n");
  EXPECT_TRUE(CheckBoundedFile(path, 1024).ok());
  // Exactly at the cap is fine; one byte more is not.
  EXPECT_TRUE(ReadBoundedFile(path, r->size(), "trace").ok());
  Result<std::string> over = ReadBoundedFile(path, r->size() - 1, "trace");
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(over.status().message().find("trace " + path), std::string::npos) << over.status();
  EXPECT_NE(over.status().message().find("over the limit of"), std::string::npos);
}

TEST_F(BoundedFileTest, RefusesWhatIsNotARegularFileWithoutReadingIt) {
  const std::string fifo = (dir_ / "fifo").string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  struct Case {
    std::string path;
    StatusCode code;
    std::string message;
  };
  const Case cases[] = {
      {"/dev/zero", StatusCode::kInvalidArgument, "is a character device, not a regular file"},
      {dir_.string(), StatusCode::kInvalidArgument, "is a directory, not a regular file"},
      {fifo, StatusCode::kInvalidArgument, "is a FIFO, not a regular file"},
      {(dir_ / "missing").string(), StatusCode::kNotFound, "no such file"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.path);
    const auto t0 = std::chrono::steady_clock::now();
    Result<std::string> r = ReadBoundedFile(c.path, kMaxDataFileBytes, "trace");
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), c.code) << r.status();
    EXPECT_NE(r.status().message().find(c.message), std::string::npos) << r.status();
    EXPECT_NE(r.status().message().find(c.path), std::string::npos) << r.status();
    EXPECT_EQ(CheckBoundedFile(c.path, kMaxDataFileBytes).code(), c.code);
  }
}

}  // namespace
}  // namespace splitinfer

// What the exits tests share: the digits data and its seed-1 split, and the model trained with
// train_exits' defaults (seed 1), trained once per build directory and cached in `cache_dir`; a
// file lock keeps concurrent test processes from training it twice.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "common/exits/branchy_model.h"
#include "common/exits/digits.h"
#include "common/exits/train.h"

namespace splitinfer::exits::test_support {

inline const std::string kDigitsPath =
    std::string(SPLITINFER_SOURCE_DIR) + "/data/digits/digits.csv.gz";

inline std::shared_ptr<BranchyModel> UntrainedBranchy(uint64_t seed = 1) {
  BranchyOptions o;
  o.seed = seed;
  Result<std::shared_ptr<BranchyModel>> m = BuildBranchyModel(o);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *m : nullptr;
}

// The digits split train_exits uses (seed 1).
inline DigitsSplit DigitsSplitSeed1() {
  Result<DigitsData> d = LoadDigits(kDigitsPath);
  EXPECT_TRUE(d.ok()) << d.status();
  Result<DigitsSplit> s = SplitDigits(*d, 1);
  EXPECT_TRUE(s.ok()) << s.status();
  return *s;
}

inline std::shared_ptr<BranchyModel> CachedTrainedBranchy(const std::string& cache_dir) {
  const TrainOptions t;
  const BranchyOptions b;
  std::filesystem::create_directories(cache_dir);
  const std::string path = cache_dir + "/digits_branchy_s1_e" + std::to_string(t.epochs) + "_lr" +
                           std::to_string(t.learning_rate) + "_b" + std::to_string(t.batch_size) +
                           "_w" + std::to_string(b.width) + ".pt";
  const int lock = open((cache_dir + "/lock").c_str(), O_CREAT | O_RDWR, 0644);
  EXPECT_GE(lock, 0);
  flock(lock, LOCK_EX);
  std::shared_ptr<BranchyModel> m = UntrainedBranchy(1);
  if (!std::filesystem::exists(path) || !m->LoadWeights(path).ok()) {
    m = UntrainedBranchy(1);
    Result<TrainReport> r = TrainBranchy(m.get(), DigitsSplitSeed1().train, t);
    EXPECT_TRUE(r.ok()) << r.status();
    const std::string tmp = path + ".tmp";
    EXPECT_TRUE(m->SaveWeights(tmp).ok());
    std::filesystem::rename(tmp, path);
  }
  flock(lock, LOCK_UN);
  close(lock);
  return m;
}

}  // namespace splitinfer::exits::test_support

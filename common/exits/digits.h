// The 8x8 handwritten digits (UCI "Optical Recognition of Handwritten Digits", scikit-learn's
// copy in data/digits/digits.csv.gz; see data/digits/SOURCES.md): loading and a deterministic
// stratified train/test split.
//
// File format: text lines (gzip-compressed or plain; zlib reads both), each 65 comma-separated
// integers: 64 pixel values 0..16 in row-major order, then the label 0..9. No header. Empty
// lines are not allowed, except that the file may end with one newline.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/ATen.h>

#include "common/status.h"

namespace splitinfer {
namespace exits {

constexpr int64_t kDigitsSide = 8;      // images are 8x8
constexpr int64_t kDigitsClasses = 10;  // labels 0..9
constexpr int64_t kDigitsMaxPixel = 16;

struct DigitsData {
  at::Tensor images;  // [n, 1, 8, 8] float32, pixel / 16 (so in [0, 1])
  at::Tensor labels;  // [n] int64 in [0, 10)
  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};

// Reads `path`. Errors: kNotFound when the file cannot be opened; kInvalidArgument for bad
// content, naming the file and the 1-based line, e.g. "data/x.csv.gz line 17: expected 65
// comma-separated values, got 40" or "... line 3, column 12: '17' is not a pixel value in
// 0..16"; kDataLoss for a corrupt or truncated gzip stream; kInvalidArgument for a file with no
// samples.
Result<DigitsData> LoadDigits(const std::string& path);

struct DigitsSplit {
  DigitsData train;
  DigitsData test;
};

// Stratified split: the test set gets ceil(n * test_fraction) samples, spread over the classes
// in proportion to their counts (largest remainder, ties to the lower label); within each class
// the test samples are a seeded Fisher-Yates shuffle (SplitMix64, the same on every machine)
// of the file's order. Both sets keep the file's order. The default 0.2 on the 1797 digits
// gives 1437 train / 360 test. test_fraction must be in (0, 1).
Result<DigitsSplit> SplitDigits(const DigitsData& all, uint64_t seed, double test_fraction = 0.2);

}  // namespace exits
}  // namespace splitinfer

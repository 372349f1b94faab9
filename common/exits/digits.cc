// Digits loader and stratified split (see digits.h).
#include "common/exits/digits.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <vector>

#include <torch/torch.h>

#include "common/bounded_file.h"

namespace splitinfer {
namespace exits {
namespace {

constexpr int64_t kPixels = kDigitsSide * kDigitsSide;
constexpr size_t kColumns = kPixels + 1;
constexpr int kMaxLine = 4096;  // a valid line is at most 65 * 3 bytes

// Parses one CSV line into `values`; the error names the column.
Status ParseLine(const std::string& where, const std::string& line, std::vector<int>* values) {
  values->clear();
  size_t start = 0;
  while (true) {
    const size_t comma = line.find(',', start);
    const std::string field =
        line.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const size_t column = values->size() + 1;
    bool ok = !field.empty() && field.size() <= 3;
    int v = 0;
    for (char c : field) {
      if (c < '0' || c > '9') {
        ok = false;
        break;
      }
      v = v * 10 + (c - '0');
    }
    const bool is_label = column == kColumns;
    const int max = is_label ? static_cast<int>(kDigitsClasses) - 1 : kDigitsMaxPixel;
    if (column <= kColumns && (!ok || v > max)) {
      return InvalidArgumentError(where + ", column " + std::to_string(column) + ": '" + field +
                                  "' is not " +
                                  (is_label ? "a label in 0..9" : "a pixel value in 0..16"));
    }
    values->push_back(v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (values->size() != kColumns) {
    return InvalidArgumentError(where + ": expected " + std::to_string(kColumns) +
                                " comma-separated values, got " + std::to_string(values->size()));
  }
  return Status::Ok();
}

// SplitMix64 (Steele et al. 2014): a tiny generator whose output is the same everywhere.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) (n >= 1), by rejection so that no value is favoured.
  uint64_t Below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r = Next();
    while (r >= limit) r = Next();
    return r % n;
  }

 private:
  uint64_t state_;
};

DigitsData Select(const DigitsData& all, std::vector<int64_t> rows) {
  std::sort(rows.begin(), rows.end());
  const at::Tensor index = torch::tensor(rows, torch::kInt64);
  return {all.images.index_select(0, index), all.labels.index_select(0, index)};
}

}  // namespace

Result<DigitsData> LoadDigits(const std::string& path) {
  SPLITINFER_RETURN_IF_ERROR(CheckBoundedFile(path, kMaxDataFileBytes, "digits file"));
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) {
    return NotFoundError("cannot open digits file " + path + ": " + std::strerror(errno));
  }
  std::vector<float> pixels;
  std::vector<int64_t> labels;
  std::vector<int> values;
  char buf[kMaxLine];
  int64_t line_no = 0;
  bool last_had_newline = true;
  Status status;
  while (gzgets(f, buf, sizeof(buf)) != nullptr) {
    ++line_no;
    const std::string where = path + " line " + std::to_string(line_no);
    std::string line(buf);
    last_had_newline = !line.empty() && line.back() == '\n';
    if (!last_had_newline) {
      int errnum = Z_OK;
      const char* msg = gzerror(f, &errnum);
      if (errnum != Z_OK && errnum != Z_STREAM_END) {
        status = DataLossError(path + ": corrupt or truncated gzip stream in line " +
                               std::to_string(line_no) + " (" + msg + ")");
        break;
      }
      if (!gzeof(f)) {
        status = InvalidArgumentError(where + ": longer than " + std::to_string(kMaxLine - 2) +
                                      " characters");
        break;
      }
    }
    if (last_had_newline) line.pop_back();
    if (!line.empty() && line.back() == '\r') line.pop_back();
    status = ParseLine(where, line, &values);
    if (!status.ok()) break;
    for (size_t i = 0; i < static_cast<size_t>(kPixels); ++i) {
      pixels.push_back(static_cast<float>(values[i]) / static_cast<float>(kDigitsMaxPixel));
    }
    labels.push_back(values.back());
  }
  if (status.ok()) {
    int errnum = Z_OK;
    const char* msg = gzerror(f, &errnum);
    if (errnum != Z_OK && errnum != Z_STREAM_END) {
      status = DataLossError(path + ": corrupt or truncated gzip stream after line " +
                             std::to_string(line_no) + " (" + msg + ")");
    } else if (errnum == Z_OK && !gzeof(f)) {
      status = DataLossError(path + ": read error after line " + std::to_string(line_no));
    }
  }
  gzclose(f);
  if (!status.ok()) return status;
  if (labels.empty()) return InvalidArgumentError(path + ": no samples");
  const int64_t n = static_cast<int64_t>(labels.size());
  DigitsData d;
  d.images =
      torch::from_blob(pixels.data(), {n, 1, kDigitsSide, kDigitsSide}, torch::kFloat32).clone();
  d.labels = torch::tensor(labels, torch::kInt64);
  return d;
}

Result<DigitsSplit> SplitDigits(const DigitsData& all, uint64_t seed, double test_fraction) {
  if (!(test_fraction > 0.0 && test_fraction < 1.0)) {
    return InvalidArgumentError("test fraction " + std::to_string(test_fraction) +
                                " is not in (0, 1)");
  }
  const int64_t n = all.size();
  if (n < 2) return InvalidArgumentError("cannot split " + std::to_string(n) + " samples");
  if (!all.images.defined() || all.images.dim() < 1 || all.images.size(0) != n ||
      all.labels.dim() != 1 || all.labels.scalar_type() != at::kLong) {
    return InvalidArgumentError("digits to split need images [n,...] and int64 labels [n]");
  }
  if (all.labels.min().item<int64_t>() < 0 || all.labels.max().item<int64_t>() >= kDigitsClasses) {
    return InvalidArgumentError("digits to split have a label outside 0..9");
  }
  std::vector<std::vector<int64_t>> by_class(kDigitsClasses);
  const at::Tensor labels = all.labels.contiguous();
  const int64_t* l = labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) by_class.at(static_cast<size_t>(l[i])).push_back(i);

  // Test quota per class: largest remainder of n_c * test_total / n.
  const int64_t test_total = std::min<int64_t>(
      n - 1, static_cast<int64_t>(std::ceil(static_cast<double>(n) * test_fraction - 1e-9)));
  std::vector<int64_t> quota(kDigitsClasses);
  std::vector<std::pair<int64_t, int64_t>> remainders;  // (-remainder numerator, class)
  int64_t given = 0;
  for (int64_t c = 0; c < kDigitsClasses; ++c) {
    const int64_t num = static_cast<int64_t>(by_class[c].size()) * test_total;
    quota[c] = num / n;
    given += quota[c];
    remainders.emplace_back(-(num % n), c);
  }
  std::sort(remainders.begin(), remainders.end());
  for (size_t i = 0; given < test_total && i < remainders.size(); ++i, ++given) {
    ++quota[remainders[i].second];
  }

  SplitMix64 rng(seed);
  std::vector<int64_t> train, test;
  for (int64_t c = 0; c < kDigitsClasses; ++c) {
    std::vector<int64_t>& rows = by_class[c];
    for (size_t i = rows.size(); i > 1; --i) std::swap(rows[i - 1], rows[rng.Below(i)]);
    for (size_t i = 0; i < rows.size(); ++i) {
      (static_cast<int64_t>(i) < quota[c] ? test : train).push_back(rows[i]);
    }
  }
  return DigitsSplit{Select(all, train), Select(all, test)};
}

}  // namespace exits
}  // namespace splitinfer

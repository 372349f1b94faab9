// Tests of the digits loader and split (common/exits/digits.h): the real file, and the errors
// for a missing file, a truncated line, bad values, a wrong column count and a cut gzip stream.
#include "common/exits/digits.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace splitinfer {
namespace exits {
namespace {

const std::string kDigits = std::string(SPLITINFER_SOURCE_DIR) + "/data/digits/digits.csv.gz";

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/digits_test_" + name;
}

// A valid line: pixel values i % 17, then `label`.
std::string Line(int label) {
  std::ostringstream os;
  for (int i = 0; i < 64; ++i) os << (i % 17) << ",";
  os << label << "\n";
  return os.str();
}

std::string WritePlain(const std::string& name, const std::string& text) {
  const std::string path = TempPath(name);
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

std::string WriteGz(const std::string& name, const std::string& text) {
  const std::string path = TempPath(name);
  gzFile f = gzopen(path.c_str(), "wb");
  EXPECT_NE(f, nullptr);
  EXPECT_EQ(gzwrite(f, text.data(), static_cast<unsigned>(text.size())),
            static_cast<int>(text.size()));
  gzclose(f);
  return path;
}

TEST(DigitsTest, LoadsTheRealFile) {
  Result<DigitsData> d = LoadDigits(kDigits);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->size(), 1797);
  EXPECT_EQ(d->images.sizes(), (std::vector<int64_t>{1797, 1, 8, 8}));
  EXPECT_EQ(d->images.scalar_type(), at::kFloat);
  EXPECT_EQ(d->images.min().item<float>(), 0.0f);
  EXPECT_EQ(d->images.max().item<float>(), 1.0f);
  EXPECT_EQ(d->labels.min().item<int64_t>(), 0);
  EXPECT_EQ(d->labels.max().item<int64_t>(), 9);
  // First row of the file: 0,0,5,13,9,1,0,0, ... label 0.
  EXPECT_EQ(d->labels[0].item<int64_t>(), 0);
  EXPECT_FLOAT_EQ(d->images[0][0][0][3].item<float>(), 13.0f / 16.0f);
  EXPECT_EQ(d->labels.bincount().min().item<int64_t>(), 174);  // class counts 174..183
}

TEST(DigitsTest, StratifiedSplitIsDeterministic) {
  Result<DigitsData> d = LoadDigits(kDigits);
  ASSERT_TRUE(d.ok()) << d.status();
  Result<DigitsSplit> a = SplitDigits(*d, 1);
  Result<DigitsSplit> b = SplitDigits(*d, 1);
  Result<DigitsSplit> c = SplitDigits(*d, 2);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->train.size(), 1437);
  EXPECT_EQ(a->test.size(), 360);
  EXPECT_TRUE(a->test.images.equal(b->test.images));
  EXPECT_TRUE(a->train.labels.equal(b->train.labels));
  EXPECT_FALSE(a->test.images.equal(c->test.images));
  // Per class, the test share is within one sample of 20%, and train + test = all.
  const at::Tensor all = d->labels.bincount({}, 10);
  const at::Tensor test = a->test.labels.bincount({}, 10);
  const at::Tensor train = a->train.labels.bincount({}, 10);
  EXPECT_TRUE((train + test).equal(all));
  for (int64_t k = 0; k < 10; ++k) {
    EXPECT_NEAR(test[k].item<double>(), 0.2 * all[k].item<double>(), 1.0) << "class " << k;
  }
  // No sample is in both sets: the pixel sums of the two sets add up to the whole.
  EXPECT_NEAR(a->train.images.sum().item<double>() + a->test.images.sum().item<double>(),
              d->images.sum().item<double>(), 1e-2);
  DigitsData bad{d->images, d->labels.clone()};
  bad.labels[5] = 10;
  EXPECT_EQ(SplitDigits(bad, 1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(SplitDigits(*d, 1, 0.0).ok());
  EXPECT_FALSE(SplitDigits(*d, 1, 1.0).ok());
}

TEST(DigitsTest, ReadsPlainAndGzipText) {
  const std::string text = Line(3) + Line(7);
  for (const std::string& path : {WritePlain("ok.csv", text), WriteGz("ok.csv.gz", text)}) {
    Result<DigitsData> d = LoadDigits(path);
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(d->size(), 2);
    EXPECT_EQ(d->labels[1].item<int64_t>(), 7);
    EXPECT_FLOAT_EQ(d->images[0][0][2][0].item<float>(), (16 % 17) / 16.0f);
  }
  // No newline at the end is fine too.
  Result<DigitsData> d =
      LoadDigits(WritePlain("nonl.csv", Line(1) + Line(2).substr(0, Line(2).size() - 1)));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->labels[1].item<int64_t>(), 2);
}

TEST(DigitsTest, MissingFileIsNotFound) {
  Result<DigitsData> d = LoadDigits(TempPath("does_not_exist.csv.gz"));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kNotFound);
  EXPECT_NE(d.status().message().find("does_not_exist.csv.gz"), std::string::npos);
}

void ExpectBad(const std::string& path, const std::string& want) {
  Result<DigitsData> d = LoadDigits(path);
  ASSERT_FALSE(d.ok()) << path;
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument) << d.status();
  EXPECT_NE(d.status().message().find(path), std::string::npos) << d.status();
  EXPECT_NE(d.status().message().find(want), std::string::npos)
      << d.status() << "\nwanted: " << want;
}

TEST(DigitsTest, TruncatedLineNamesFileAndLine) {
  std::string cut = Line(4);
  cut = cut.substr(0, cut.size() / 2) + "\n";  // ends after a comma-separated field
  cut = cut.substr(0, cut.rfind(',')) + "\n";
  ExpectBad(WriteGz("truncated.csv.gz", Line(1) + Line(2) + cut + Line(5)),
            "line 3: expected 65 comma-separated values, got ");
}

TEST(DigitsTest, WrongColumnCount) {
  std::string extra = Line(4);
  extra.insert(extra.size() - 1, ",4");
  ExpectBad(WritePlain("extra.csv", Line(1) + extra),
            "line 2: expected 65 comma-separated values, got 66");
  ExpectBad(WritePlain("empty_line.csv", Line(1) + "\n" + Line(2)),
            "line 2, column 1: '' is not a pixel value");
}

TEST(DigitsTest, BadValues) {
  std::string pixel = Line(2);
  pixel.replace(0, 1, "17");  // first pixel 0 -> 17
  ExpectBad(WritePlain("pixel.csv", pixel), "line 1, column 1: '17' is not a pixel value in 0..16");
  std::string word = Line(2);
  word.replace(0, 1, "x");
  ExpectBad(WritePlain("word.csv", Line(0) + word), "line 2, column 1: 'x' is not a pixel value");
  std::string negative = Line(2);
  negative.replace(0, 1, "-1");
  ExpectBad(WritePlain("negative.csv", negative), "line 1, column 1: '-1'");
  ExpectBad(WritePlain("label.csv", Line(0) + Line(1) + Line(10)),
            "line 3, column 65: '10' is not a label in 0..9");
  ExpectBad(WritePlain("nothing.csv", ""), "no samples");
}

TEST(DigitsTest, CutGzipStreamIsDataLoss) {
  std::ifstream in(kDigits, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 20000u);
  const std::string path = WritePlain("cut.csv.gz", bytes.substr(0, bytes.size() / 2));
  Result<DigitsData> d = LoadDigits(path);
  ASSERT_FALSE(d.ok());
  // The stream ends inside a line (which then has too few values) or between two lines.
  EXPECT_TRUE(d.status().code() == StatusCode::kDataLoss ||
              d.status().code() == StatusCode::kInvalidArgument)
      << d.status();
  EXPECT_NE(d.status().message().find(path), std::string::npos) << d.status();
  EXPECT_NE(d.status().message().find("line"), std::string::npos) << d.status();
}

}  // namespace
}  // namespace exits
}  // namespace splitinfer

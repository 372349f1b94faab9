#include "common/decision/trace.h"

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace splitinfer::decision {
namespace {

namespace fs = std::filesystem;

const std::string kShared = SPLITINFER_SOURCE_DIR "/../shared/traces";
const std::string kLocal = SPLITINFER_SOURCE_DIR "/data/traces";

std::vector<std::string> FilesUnder(const std::string& dir, TraceKind kind) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().filename() != "SOURCES.md" &&
        GuessTraceKind(e.path().string()) == kind)
      out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Inserts `bad` as line `line_no` (1-based) of `text`.
std::string InsertLine(const std::string& text, size_t line_no, const std::string& bad) {
  size_t pos = 0;
  for (size_t i = 1; i < line_no; ++i) pos = text.find('\n', pos) + 1;
  return text.substr(0, pos) + bad + "\n" + text.substr(pos);
}

TEST(MahimahiTest, CountsOpportunitiesPerStep) {
  // 10 ms steps: 2 packets in [0,10) ms, 0 in [10,20), 1 in [20,30).
  Result<RateSeries> s = ParseMahimahi("3\n3\n25\n", "x.up", 0.01);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->size(), 3u);
  EXPECT_DOUBLE_EQ(s->rate_bps[0], 2 * 12000 / 0.01);
  EXPECT_DOUBLE_EQ(s->rate_bps[1], 0.0);
  EXPECT_DOUBLE_EQ(s->rate_bps[2], 12000 / 0.01);
}

TEST(MahimahiTest, RejectsBadLineWithLineNumber) {
  Result<RateSeries> s = ParseMahimahi("1\n2\nabc\n", "bad.up");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("bad.up:3"), std::string::npos) << s.status();
  Result<RateSeries> back = ParseMahimahi("5\n4\n", "back.up");
  ASSERT_FALSE(back.ok());
  EXPECT_NE(back.status().message().find("back.up:2"), std::string::npos) << back.status();
}

TEST(NorwayTest, HoldsLastValueAcrossGaps) {
  Result<RateSeries> s = ParseNorway("0.0\t1.0\n1.0\t2.0\n3.0\t4.0\n", "n", 0.5);
  ASSERT_TRUE(s.ok()) << s.status();
  // Grid 0, 0.5, ..., and the last value holds one median gap (1 s... median of {1, 2} = 2).
  ASSERT_GE(s->size(), 7u);
  EXPECT_DOUBLE_EQ(s->rate_bps[0], 1e6);
  EXPECT_DOUBLE_EQ(s->rate_bps[1], 1e6);
  EXPECT_DOUBLE_EQ(s->rate_bps[2], 2e6);
  EXPECT_DOUBLE_EQ(s->rate_bps[5], 2e6);  // t = 2.5: gap, held
  EXPECT_DOUBLE_EQ(s->rate_bps[6], 4e6);
}

TEST(NorwayTest, RejectsBadLineWithLineNumber) {
  Result<RateSeries> s = ParseNorway("0.0\t1.0\n1.0\n", "n.log");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("n.log:2"), std::string::npos) << s.status();
}

const char* kUccHeader =
    "Timestamp,Longitude,Latitude,Speed,Operatorname,CellID,NetworkMode,RSRP,RSRQ,SNR,CQI,RSSI,"
    "DL_bitrate,UL_bitrate,State,PINGAVG,PINGMIN,PINGMAX,PINGSTDEV,PINGLOSS,CELLHEX,NODEHEX,"
    "LACHEX,RAWCELLID,NRxRSRP,NRxRSRQ\n";

TEST(UccTest, UplinkBitrateAndSnrShannon) {
  std::string text = std::string(kUccHeader) +
                     "2019.12.16_14.26.55,-8.3,51.8,18,B,11,5G,-69,-8,12.0,10,-64,32119,97,D,-,-,"
                     "-,-,-,B,A4DF,9CBA,10805003,-82.0,-4.0\n"
                     "2019.12.16_14.26.56,-8.3,51.8,18,B,11,5G,-70,-14,-,10,-64,29875,76,D,-,-,"
                     "-,-,-,B,A4DF,9CBA,10805003,-79.0,-3.0\n";
  UccOptions ul;
  ul.column = UccColumn::kUplinkBitrate;
  ul.dt_s = 0.5;
  Result<RateSeries> s = ParseUcc(text, "u.csv", ul);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_DOUBLE_EQ(s->rate_bps[0], 97e3);
  EXPECT_DOUBLE_EQ(s->rate_bps[2], 76e3);
  UccOptions snr;
  snr.dt_s = 0.5;
  snr.bandwidth_hz = 1e6;
  Result<RateSeries> r = ParseUcc(text, "u.csv", snr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NEAR(r->rate_bps[0], 1e6 * std::log2(1 + std::pow(10, 1.2)), 1e-6);
  EXPECT_DOUBLE_EQ(r->rate_bps.back(), r->rate_bps[0]);  // '-' holds the last SNR
}

TEST(TransferClockTest, ConstantAndCyclic) {
  RateSeries s;
  s.dt_s = 1.0;
  s.rate_bps = {10.0, 0.0, 30.0};  // 40 bits per 3 s cycle
  TransferClock clock(s);
  EXPECT_DOUBLE_EQ(clock.TransferTime(0, 5.0), 0.5);
  EXPECT_DOUBLE_EQ(clock.TransferTime(0, 25.0), 2.5);
  EXPECT_DOUBLE_EQ(clock.TransferTime(1, 15.0), 1.5);
  EXPECT_DOUBLE_EQ(clock.TransferTime(2, 35.0),
                   1.5);  // 30 bits in step 2, 5 after the wrap  // 30 in step 2, 5 in step 0
  EXPECT_DOUBLE_EQ(clock.TransferTime(0, 80.0), 6.0);  // exactly two cycles
  EXPECT_DOUBLE_EQ(clock.TransferTime(0, 85.0), 6.5);
  RateSeries zero;
  zero.rate_bps = {0.0};
  EXPECT_TRUE(std::isinf(TransferClock(zero).TransferTime(0, 1.0)));
}

TEST(TransferClockTest, StepsShorterThanASecond) {
  // The time inside the last step is bits / rate seconds, not a fraction of a step to be scaled
  // by dt again (a bug that dt = 1 hid): 8e6 bits at 8 Mbit/s take 1 s on any grid.
  RateSeries s;
  s.dt_s = 0.005;
  s.rate_bps.assign(4000, 8e6);
  TransferClock clock(s);
  EXPECT_NEAR(clock.TransferTime(0, 8e6), 1.0, 1e-12);
  EXPECT_NEAR(clock.TransferTime(3999, 8e6), 1.0, 1e-12);  // wraps
  EXPECT_NEAR(clock.TransferTime(17, 1e4), 1e4 / 8e6, 1e-15);
  s.rate_bps = {1e6, 3e6};  // 5000 + 15000 bits per 10 ms cycle
  TransferClock two(s);
  EXPECT_NEAR(two.TransferTime(0, 8000.0), 0.005 + 3000.0 / 3e6, 1e-15);
  EXPECT_NEAR(two.TransferTime(1, 21000.0), 0.010 + 1000.0 / 3e6, 1e-15);
}

TEST(ObservedRatesTest, CausalMovingAverage) {
  RateSeries s;
  s.rate_bps = {1, 3, 5, 7};
  std::vector<double> o = s.ObservedRates(2);
  EXPECT_DOUBLE_EQ(o[0], 1);
  EXPECT_DOUBLE_EQ(o[1], 2);
  EXPECT_DOUBLE_EQ(o[3], 6);
}

TEST(LocalTracesTest, CopiesInDataTracesParse) {
  for (const char* f : {"norway_tram_1", "norway_car_7", "B_2020.02.14_09.38.22.csv"}) {
    Result<RateSeries> s = LoadTrace(kLocal + "/" + f);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_GT(s->duration_s(), 100.0) << f;
    EXPECT_GT(s->MeanRate(), 0.0) << f;
  }
}

// Every file of each kind in ../shared/traces parses, and a corrupted copy is rejected with the
// line number of the corruption.
class SharedTracesTest : public ::testing::TestWithParam<TraceKind> {};

TEST_P(SharedTracesTest, ReadsEveryFileAndRejectsCorruptedCopy) {
  if (!fs::exists(kShared)) GTEST_SKIP() << "no ../shared/traces folder at " << kShared;
  const std::vector<std::string> files = FilesUnder(kShared, GetParam());
  ASSERT_FALSE(files.empty());
  for (const std::string& f : files) {
    Result<RateSeries> s = LoadTrace(f);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_GT(s->size(), 100u) << f;
    EXPECT_GT(s->MeanRate(), 0.0) << f;
    for (double r : s->rate_bps) ASSERT_TRUE(std::isfinite(r) && r >= 0) << f;
    Result<std::string> text = ReadFile(f);
    ASSERT_TRUE(text.ok());
    const std::string bad = InsertLine(*text, 7, "12,x,\t!");
    Result<RateSeries> c = GetParam() == TraceKind::kMahimahi ? ParseMahimahi(bad, "copy")
                           : GetParam() == TraceKind::kNorway ? ParseNorway(bad, "copy")
                                                              : ParseUcc(bad, "copy");
    ASSERT_FALSE(c.ok()) << f;
    EXPECT_NE(c.status().message().find("copy:7:"), std::string::npos) << c.status();
  }
}

INSTANTIATE_TEST_SUITE_P(AllKinds, SharedTracesTest,
                         ::testing::Values(TraceKind::kMahimahi, TraceKind::kNorway,
                                           TraceKind::kUcc),
                         [](const ::testing::TestParamInfo<TraceKind>& info) {
                           switch (info.param) {
                             case TraceKind::kMahimahi:
                               return std::string("Mahimahi");
                             case TraceKind::kNorway:
                               return std::string("Norway");
                             case TraceKind::kUcc:
                               return std::string("Ucc");
                           }
                           return std::string("Other");
                         });

}  // namespace
}  // namespace splitinfer::decision

#include "device/uplink_emulator.h"

#include <chrono>
#include <cmath>

#include <gtest/gtest.h>

namespace splitinfer {
namespace {

decision::RateSeries Series(std::vector<double> rates, double dt) {
  decision::RateSeries s;
  s.dt_s = dt;
  s.rate_bps = std::move(rates);
  return s;
}

TEST(UplinkEmulatorTest, TransferSecondsIntegratesTheSeries) {
  // 1 Mbit/s for 1 s, then 3 Mbit/s for 1 s, cyclic.
  UplinkEmulator u(Series({1e6, 3e6}, 1.0), 1.0, 1.0);
  EXPECT_DOUBLE_EQ(u.TransferSeconds(0.0, 0.5e6), 0.5);
  EXPECT_DOUBLE_EQ(u.TransferSeconds(0.5, 0.5e6), 0.5);
  EXPECT_DOUBLE_EQ(u.TransferSeconds(0.5, 2e6), 1.0);  // 0.5 Mbit, then 1.5 Mbit at 3 Mbit/s
  EXPECT_DOUBLE_EQ(u.TransferSeconds(1.0, 3e6), 1.0);
  // Several whole cycles (4 Mbit each) and a wrap-around start.
  EXPECT_NEAR(u.TransferSeconds(0.0, 9e6), 4.0 + 1.0, 1e-12);
  EXPECT_NEAR(u.TransferSeconds(6.5, 1e6), 0.5 + 0.5 / 3.0, 1e-12);  // step 6 is step 0
}

TEST(UplinkEmulatorTest, DeadChannelCarriesNothing) {
  UplinkEmulator u(Series({0.0, 0.0}, 0.01), 1.0, 0.01);
  EXPECT_TRUE(std::isinf(u.TransferSeconds(0.0, 8.0)));
  EXPECT_EQ(u.Acquire(1).code(), StatusCode::kUnavailable);
  EXPECT_EQ(u.ObservedRate(), 0.0);
}

TEST(UplinkEmulatorTest, AcquirePacesToTheEmulatedRate) {
  // 8 Mbit/s = 1 MB/s: 100 KB takes 100 ms; at time scale 4, 25 ms of wall time.
  for (double scale : {1.0, 4.0}) {
    UplinkEmulator u(Series({8e6}, 0.005), scale, 0.005, 10000);
    u.Start();
    u.BeginFrame();
    const auto t = std::chrono::steady_clock::now();
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(u.Acquire(10000).ok());
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    EXPECT_GE(wall, 0.1 / scale - 1e-3) << scale;
    EXPECT_LT(wall, 0.1 / scale + 0.05) << scale;
  }
}

TEST(UplinkEmulatorTest, SeriesFromEverySpecKind) {
  EmulatedSeriesOptions o;
  o.duration_s = 2.0;
  for (const char* text : {"rayleigh:snr_db=10", "gauss-markov:snr_db=10,doppler_hz=5"}) {
    auto spec = decision::ChannelSpec::Parse(text);
    ASSERT_TRUE(spec.ok());
    auto s = MakeEmulatedSeries(*spec, o);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(s->size(), 400u);
    EXPECT_GT(s->MeanRate(), 0.0);
  }
  auto missing = decision::ChannelSpec::Parse("trace:/nonexistent/trace");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(MakeEmulatedSeries(*missing, o).ok());
}

TEST(GoodputEstimatorTest, PriorThenBitsOverTimeOfTheLastUploads) {
  GoodputEstimator g(2, 5e6);
  EXPECT_EQ(g.RateBps(), 5e6);
  g.Add(1e6, 1.0);
  EXPECT_DOUBLE_EQ(g.RateBps(), 1e6);
  g.Add(3e6, 1.0);
  EXPECT_DOUBLE_EQ(g.RateBps(), 2e6);  // 4 Mbit in 2 s
  g.Add(9e6, 1.0);                     // the first upload leaves the window
  EXPECT_DOUBLE_EQ(g.RateBps(), 6e6);
  g.Add(1e6, 0.0);  // ignored: no time
  EXPECT_EQ(g.samples(), 2u);
}

}  // namespace
}  // namespace splitinfer

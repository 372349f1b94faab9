#include "common/decision/channel.h"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

namespace splitinfer::decision {
namespace {

class RayleighTest : public ::testing::TestWithParam<double> {};

TEST_P(RayleighTest, StatesAreFiniteOrderedAndPriceExpectedInverseRate) {
  RayleighOptions o;
  o.snr_db = GetParam();
  o.num_states = 8;
  Result<ChannelLaw> law = DiscretizeRayleigh(o);
  ASSERT_TRUE(law.ok()) << law.status();
  EXPECT_EQ(law->outage_states, 1);
  EXPECT_NEAR(law->stationary.sum(), 1.0, 1e-12);
  EXPECT_DOUBLE_EQ(law->stationary(0), o.outage_prob);
  ASSERT_TRUE(law->rate_bps.allFinite());
  for (int k = 1; k < law->num_states(); ++k) {
    EXPECT_GT(law->rate_bps(k), law->rate_bps(k - 1));
    EXPECT_GE(law->rate_bps(k), law->edges_bps[k - 1]);  // inside its own state
    if (k + 1 < law->num_states()) {
      EXPECT_LE(law->rate_bps(k), law->edges_bps[k]);
    }
  }
  // Monte Carlo check of 1/E[1/r | state] for the non-outage states.
  std::mt19937_64 rng(7);
  std::exponential_distribution<double> h(1.0);
  const double snr = DbToLinear(o.snr_db);
  Eigen::VectorXd inv = Eigen::VectorXd::Zero(law->num_states());
  Eigen::VectorXd n = Eigen::VectorXd::Zero(law->num_states());
  for (int i = 0; i < 400000; ++i) {
    const double r = ShannonRate(o.bandwidth_hz, snr, h(rng));
    const int s = law->StateOf(r);
    inv(s) += 1.0 / r;
    n(s) += 1;
  }
  for (int k = 1; k < law->num_states(); ++k)
    EXPECT_NEAR(n(k) / inv(k) / law->rate_bps(k), 1.0, 0.02) << "state " << k;
  // Samples in the outage state are the deep fades below the floor rate.
  EXPECT_NEAR(n(0) / 400000.0, o.outage_prob, 0.002);
  EXPECT_GT(inv(0) / n(0), 1.0 / law->floor_rate_bps);
}

INSTANTIATE_TEST_SUITE_P(SnrSweep, RayleighTest, ::testing::Values(-10.0, 0.0, 10.0, 30.0));

TEST(RayleighOptionsTest, NamesTheBadValue) {
  RayleighOptions o;
  o.outage_prob = 0.0;
  std::string error;
  EXPECT_FALSE(o.IsValid(&error));
  EXPECT_NE(error.find("outage_prob"), std::string::npos);
  EXPECT_FALSE(DiscretizeRayleigh(o).ok());
}

TEST(EmpiricalTest, QuantileStatesMergeTies) {
  std::vector<double> r = {0, 0, 0, 0, 0, 0, 0, 0, 1, 2};
  Result<ChannelLaw> law = DiscretizeEmpirical(r, 5);
  ASSERT_TRUE(law.ok()) << law.status();
  ASSERT_EQ(law->num_states(), 3);  // zeros collapse into one state
  EXPECT_DOUBLE_EQ(law->stationary(0), 0.8);
  EXPECT_NEAR(law->stationary.sum(), 1.0, 1e-12);
  EXPECT_DOUBLE_EQ(law->rate_bps(0), 0.0);
  EXPECT_EQ(law->StateOf(0.0), 0);
  EXPECT_EQ(law->StateOf(100.0), law->num_states() - 1);
}

TEST(FitMarkovTest, RecoversTwoStateChain) {
  // Two rates, sticky chain: P(stay) = 0.9 in state 0, 0.8 in state 1.
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<double> series;
  int s = 0;
  for (int i = 0; i < 200000; ++i) {
    series.push_back(s == 0 ? 1e6 : 5e6);
    const double stay = s == 0 ? 0.9 : 0.8;
    if (u(rng) > stay) s = 1 - s;
  }
  Result<ChannelLaw> law = FitMarkov(series, 0.01, 2);
  ASSERT_TRUE(law.ok()) << law.status();
  ASSERT_EQ(law->num_states(), 2);
  EXPECT_FALSE(law->iid);
  EXPECT_NEAR(law->transition(0, 0), 0.9, 0.01);
  EXPECT_NEAR(law->transition(1, 1), 0.8, 0.01);
  EXPECT_NEAR(law->stationary(0), 2.0 / 3.0, 0.02);
  // Lag 2 is the square of lag 1 for a true Markov chain.
  Result<ChannelLaw> lag2 = FitMarkov(series, 0.01, 2, 2);
  ASSERT_TRUE(lag2.ok());
  Eigen::MatrixXd q2 = law->transition * law->transition;
  EXPECT_NEAR((lag2->transition - q2).cwiseAbs().maxCoeff(), 0.0, 0.01);
}

TEST(GaussMarkovTest, UnitMeanGainAndJakesCorrelation) {
  GaussMarkovOptions o;
  o.snr_db = 0.0;
  o.bandwidth_hz = 1.0;
  o.doppler_hz = 10.0;
  o.dt_s = 0.005;
  o.duration_s = 2000.0;
  Result<RateSeries> s = GenerateGaussMarkov(o);
  ASSERT_TRUE(s.ok()) << s.status();
  // Invert r = log2(1 + h) to get h back.
  std::vector<double> h(s->size());
  double mean = 0;
  for (size_t i = 0; i < h.size(); ++i) {
    h[i] = std::exp2(s->rate_bps[i]) - 1.0;
    mean += h[i];
  }
  mean /= h.size();
  EXPECT_NEAR(mean, 1.0, 0.05);
  // For complex Gaussian g, corr(|g_t|^2, |g_t+1|^2) = rho^2.
  double c = 0, v = 0;
  for (size_t i = 0; i + 1 < h.size(); ++i) {
    c += (h[i] - mean) * (h[i + 1] - mean);
    v += (h[i] - mean) * (h[i] - mean);
  }
  const double rho = std::cyl_bessel_j(0.0, 2 * M_PI * o.doppler_hz * o.dt_s);
  EXPECT_NEAR(c / v, rho * rho, 0.02);
  o.doppler_hz = -1;
  EXPECT_FALSE(GenerateGaussMarkov(o).ok());
}

}  // namespace
}  // namespace splitinfer::decision

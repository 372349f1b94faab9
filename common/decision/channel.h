// Channel models behind one discrete representation (SPEC sections 1 and 3).
//
// Every law the solvers use is a ChannelLaw: K states ordered by rate, each with a representative
// rate, plus either an i.i.d. distribution (a fresh draw at every boundary) or a Markov chain.
// A run-time observation (a rate in bit/s) maps to a state with StateOf (a binary search over
// K-1 edges); policies then decide by table lookup on the state.
//
// Outage (Rayleigh): E[1/log2(1 + rho h)] is infinite for h ~ Exp(1), so the lowest-rate
// quantile [0, h_out) is a separate outage state: offloading is not allowed there before the
// horizon, and a forced offload at the horizon is priced at the floor rate r(h_out). Every other
// state's representative rate is 1/E[1/r | state], computed by quadrature, which prices
// 8 s / r exactly in expectation within the state. See docs/decision.md.
//
// Thread safety: plain values.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "common/decision/trace.h"
#include "common/status.h"

namespace splitinfer::decision {

// Shannon rate r = B log2(1 + snr * h) in bit/s (snr linear, h normalized gain).
double ShannonRate(double bandwidth_hz, double snr_linear, double gain);
inline double DbToLinear(double db) { return std::pow(10.0, db / 10.0); }

struct ChannelLaw {
  Eigen::VectorXd rate_bps;       // K representative rates, ascending
  std::vector<double> edges_bps;  // K-1 ascending edges: state k covers [edge_{k-1}, edge_k)
  int outage_states = 0;          // states [0, outage_states) forbid offloading before horizon
  double floor_rate_bps = 0.0;    // rate of a forced offload in an outage state
  Eigen::VectorXd stationary;     // K: law of the state at boundary 0 (and of i.i.d. draws)
  bool iid = true;
  // Markov only: transition per grid step of `epoch_s` seconds (row-stochastic, K x K).
  Eigen::MatrixXd transition;
  double epoch_s = 0.0;

  int num_states() const { return static_cast<int>(rate_bps.size()); }
  int StateOf(double rate_bps_observed) const;
  bool IsOutage(int state) const { return state < outage_states; }
  Status Validate() const;
};

struct RayleighOptions {
  double snr_db = 10.0;  // mean SNR (P E[h] / N0 with E[h] = 1)
  double bandwidth_hz = 10e6;
  int num_states = 16;        // K, including the outage state
  double outage_prob = 0.01;  // P(h < h_out): the outage state's probability
  bool IsValid(std::string* error) const;
};

// i.i.d. Rayleigh (h ~ Exp(1)) by quantiles: one outage state of probability outage_prob, then
// K-1 states of equal probability.
Result<ChannelLaw> DiscretizeRayleigh(const RayleighOptions& options);
// The gain h_out = -ln(1 - outage_prob) below which a Rayleigh draw is an outage.
double RayleighOutageGain(double outage_prob);

// i.i.d. law from any sample set of rates: K equal-probability quantile states (ties merged, so
// fewer states may come back), representative rate 1/mean(1/r) of the samples in the state (the
// arithmetic mean where a state holds a zero rate). No outage state.
Result<ChannelLaw> DiscretizeEmpirical(const std::vector<double>& rates_bps, int num_states);

// Markov chain fitted from an observed-rate series: states from DiscretizeEmpirical on the series,
// transitions counted between steps `lag` apart (lag 1 = one grid step = epoch_s). Rows never
// visited fall back to the stationary law. Laplace smoothing `prior` per cell.
Result<ChannelLaw> FitMarkov(const std::vector<double>& observed_rates_bps, double epoch_s,
                             int num_states, int lag = 1, double prior = 0.0);
// Transition matrix between states `lag` steps apart, counted on `states` (K states).
Eigen::MatrixXd CountTransitions(const std::vector<int>& states, int num_states, int lag,
                                 const Eigen::VectorXd& fallback_row, double prior);

// Correlated Rayleigh fading: complex Gauss-Markov g_{t+1} = rho g_t + sqrt(1 - rho^2) w with
// rho = J0(2 pi f_D dt) (Jakes' autocorrelation at lag dt), h = |g|^2, E[h] = 1, turned into a
// Shannon rate series.
struct GaussMarkovOptions {
  double snr_db = 10.0;
  double doppler_hz = 5.0;
  double dt_s = 0.005;
  double duration_s = 600.0;
  double bandwidth_hz = 10e6;
  uint64_t seed = 1;
  bool IsValid(std::string* error) const;
};
Result<RateSeries> GenerateGaussMarkov(const GaussMarkovOptions& options);

}  // namespace splitinfer::decision

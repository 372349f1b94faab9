#include "common/decision/channel.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <sstream>

namespace splitinfer::decision {
namespace {

// 5-point Gauss-Legendre on [-1, 1].
constexpr double kGlX[5] = {-0.9061798459386640, -0.5384693101056831, 0.0, 0.5384693101056831,
                            0.9061798459386640};
constexpr double kGlW[5] = {0.2369268850561891, 0.4786286704993665, 0.5688888888888889,
                            0.4786286704993665, 0.2369268850561891};

// Integral of f over [a, b] by composite 5-point Gauss-Legendre on `pieces` subintervals.
template <typename F>
double Integrate(F f, double a, double b, int pieces) {
  double sum = 0.0;
  const double h = (b - a) / pieces;
  for (int p = 0; p < pieces; ++p) {
    const double lo = a + p * h, mid = lo + 0.5 * h;
    for (int i = 0; i < 5; ++i) sum += kGlW[i] * f(mid + 0.5 * h * kGlX[i]);
  }
  return sum * 0.5 * h;
}

std::string Num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

}  // namespace

double ShannonRate(double bandwidth_hz, double snr_linear, double gain) {
  return bandwidth_hz * std::log2(1.0 + snr_linear * gain);
}

int ChannelLaw::StateOf(double rate) const {
  return static_cast<int>(std::upper_bound(edges_bps.begin(), edges_bps.end(), rate) -
                          edges_bps.begin());
}

Status ChannelLaw::Validate() const {
  const int k = num_states();
  if (k < 1) return InvalidArgumentError("channel law has no state");
  if (static_cast<int>(edges_bps.size()) != k - 1)
    return InvalidArgumentError("channel law needs K-1 edges");
  if (stationary.size() != k || std::abs(stationary.sum() - 1.0) > 1e-9 ||
      (stationary.array() < 0).any())
    return InvalidArgumentError("channel law's stationary distribution is not a distribution");
  if (!rate_bps.allFinite() || (rate_bps.array() < 0).any())
    return InvalidArgumentError("channel law has a negative or non-finite rate");
  if (outage_states < 0 || outage_states >= k)
    return InvalidArgumentError("outage_states must be in [0, K)");
  if (outage_states > 0 && !(floor_rate_bps > 0.0))
    return InvalidArgumentError("an outage state needs a floor rate > 0");
  if (!iid) {
    if (transition.rows() != k || transition.cols() != k)
      return InvalidArgumentError("Markov transition must be K x K");
    if ((transition.array() < 0).any() ||
        ((transition.rowwise().sum().array() - 1.0).abs() > 1e-9).any())
      return InvalidArgumentError("Markov transition rows must be distributions");
  }
  return Status::Ok();
}

bool RayleighOptions::IsValid(std::string* error) const {
  auto fail = [&](const std::string& m) {
    if (error) *error = m;
    return false;
  };
  if (!std::isfinite(snr_db) || snr_db < -50 || snr_db > 80)
    return fail("snr_db must be in [-50, 80] (got " + Num(snr_db) + ")");
  if (!(bandwidth_hz > 0) || !std::isfinite(bandwidth_hz))
    return fail("bandwidth_hz must be > 0 (got " + Num(bandwidth_hz) + ")");
  if (num_states < 2 || num_states > 1 << 16)
    return fail("num_states must be in [2, 65536] (got " + std::to_string(num_states) + ")");
  if (!(outage_prob > 0.0 && outage_prob < 0.5))
    return fail("outage_prob must be in (0, 0.5) (got " + Num(outage_prob) + ")");
  return true;
}

double RayleighOutageGain(double outage_prob) { return -std::log1p(-outage_prob); }

Result<ChannelLaw> DiscretizeRayleigh(const RayleighOptions& o) {
  std::string error;
  if (!o.IsValid(&error)) return InvalidArgumentError("rayleigh: " + error);
  const double snr = DbToLinear(o.snr_db);
  const int k = o.num_states;
  ChannelLaw law;
  law.iid = true;
  law.outage_states = 1;
  law.rate_bps.resize(k);
  law.stationary.resize(k);
  law.edges_bps.resize(k - 1);
  const double h_out = RayleighOutageGain(o.outage_prob);
  law.floor_rate_bps = ShannonRate(o.bandwidth_hz, snr, h_out);
  law.rate_bps(0) = law.floor_rate_bps;
  law.stationary(0) = o.outage_prob;
  // State j >= 1 covers u = F(h) in [u_{j-1}, u_j], equal probability.
  const double pu = (1.0 - o.outage_prob) / (k - 1);
  auto inv_rate_at_u = [&](double u) {
    const double h = -std::log1p(-u);
    return 1.0 / ShannonRate(o.bandwidth_hz, snr, h);
  };
  for (int j = 1; j < k; ++j) {
    const double ua = o.outage_prob + (j - 1) * pu;
    const double ub = (j == k - 1) ? 1.0 : o.outage_prob + j * pu;
    // The last state reaches u = 1 (h = inf) where 1/r -> 0 slowly: more pieces there.
    const double mean_inv = Integrate(inv_rate_at_u, ua, ub, j == k - 1 ? 64 : 8) / (ub - ua);
    law.rate_bps(j) = 1.0 / mean_inv;
    law.stationary(j) = pu;
    law.edges_bps[j - 1] = ShannonRate(o.bandwidth_hz, snr, -std::log1p(-ua));
  }
  law.stationary /= law.stationary.sum();
  SPLITINFER_RETURN_IF_ERROR(law.Validate());
  return law;
}

Result<ChannelLaw> DiscretizeEmpirical(const std::vector<double>& rates, int num_states) {
  if (rates.empty()) return InvalidArgumentError("empirical law: no samples");
  if (num_states < 1) return InvalidArgumentError("empirical law: num_states must be >= 1");
  for (double r : rates)
    if (!std::isfinite(r) || r < 0) return InvalidArgumentError("empirical law: bad rate sample");
  std::vector<double> sorted = rates;
  std::sort(sorted.begin(), sorted.end());
  const size_t n = sorted.size();
  // Edges at the j/K quantiles, merged when equal (a trace with many zeros gives fewer states).
  std::vector<double> edges;
  for (int j = 1; j < num_states; ++j) {
    double e = sorted[std::min(n - 1, n * static_cast<size_t>(j) / num_states)];
    const double last = edges.empty() ? sorted.front() : edges.back();
    if (e <= last) {  // a tie with the previous edge: move to the next distinct value, if any
      auto it = std::upper_bound(sorted.begin(), sorted.end(), last);
      if (it == sorted.end()) break;
      e = *it;
    }
    edges.push_back(e);
  }
  ChannelLaw law;
  law.iid = true;
  law.edges_bps = edges;
  const int k = static_cast<int>(edges.size()) + 1;
  std::vector<double> count(k, 0.0), inv_sum(k, 0.0), sum(k, 0.0);
  std::vector<bool> has_zero(k, false);
  for (double r : sorted) {
    const int s = law.StateOf(r);
    count[s] += 1;
    sum[s] += r;
    if (r > 0)
      inv_sum[s] += 1.0 / r;
    else
      has_zero[s] = true;
  }
  law.rate_bps.resize(k);
  law.stationary.resize(k);
  for (int s = 0; s < k; ++s) {
    law.stationary(s) = count[s] / static_cast<double>(n);
    law.rate_bps(s) = has_zero[s] ? sum[s] / count[s] : count[s] / inv_sum[s];
  }
  SPLITINFER_RETURN_IF_ERROR(law.Validate());
  return law;
}

Eigen::MatrixXd CountTransitions(const std::vector<int>& states, int k, int lag,
                                 const Eigen::VectorXd& fallback_row, double prior) {
  Eigen::MatrixXd counts = Eigen::MatrixXd::Constant(k, k, prior);
  for (size_t i = 0; i + static_cast<size_t>(lag) < states.size(); ++i)
    counts(states[i], states[i + lag]) += 1.0;
  for (int r = 0; r < k; ++r) {
    const double total = counts.row(r).sum();
    if (total > 0)
      counts.row(r) /= total;
    else
      counts.row(r) = fallback_row.transpose();
  }
  return counts;
}

Result<ChannelLaw> FitMarkov(const std::vector<double>& observed, double epoch_s, int num_states,
                             int lag, double prior) {
  if (!(epoch_s > 0)) return InvalidArgumentError("markov fit: epoch_s must be > 0");
  if (lag < 0) return InvalidArgumentError("markov fit: lag must be >= 0");
  if (observed.size() < 2 + static_cast<size_t>(lag))
    return InvalidArgumentError("markov fit: series too short");
  Result<ChannelLaw> law = DiscretizeEmpirical(observed, num_states);
  if (!law.ok()) return law.status();
  std::vector<int> states(observed.size());
  for (size_t i = 0; i < observed.size(); ++i) states[i] = law->StateOf(observed[i]);
  law->iid = false;
  law->epoch_s = epoch_s * std::max(lag, 1);
  law->transition = CountTransitions(states, law->num_states(), lag, law->stationary, prior);
  SPLITINFER_RETURN_IF_ERROR(law->Validate());
  return law;
}

bool GaussMarkovOptions::IsValid(std::string* error) const {
  auto fail = [&](const std::string& m) {
    if (error) *error = m;
    return false;
  };
  if (!std::isfinite(snr_db) || snr_db < -50 || snr_db > 80)
    return fail("snr_db must be in [-50, 80] (got " + Num(snr_db) + ")");
  if (!(doppler_hz >= 0) || !std::isfinite(doppler_hz))
    return fail("doppler_hz must be >= 0 (got " + Num(doppler_hz) + ")");
  if (!(dt_s > 0) || dt_s > 1) return fail("dt_s must be in (0, 1] (got " + Num(dt_s) + ")");
  if (!(duration_s >= dt_s) || duration_s > 1e6)
    return fail("duration_s must be in [dt_s, 1e6] (got " + Num(duration_s) + ")");
  if (!(bandwidth_hz > 0)) return fail("bandwidth_hz must be > 0 (got " + Num(bandwidth_hz) + ")");
  return true;
}

Result<RateSeries> GenerateGaussMarkov(const GaussMarkovOptions& o) {
  std::string error;
  if (!o.IsValid(&error)) return InvalidArgumentError("gauss-markov: " + error);
  const double rho = std::cyl_bessel_j(0.0, 2.0 * M_PI * o.doppler_hz * o.dt_s);
  const double innov = std::sqrt(std::max(0.0, 1.0 - rho * rho));
  const double snr = DbToLinear(o.snr_db);
  std::mt19937_64 rng(o.seed);
  std::normal_distribution<double> normal(0.0, std::sqrt(0.5));  // E|g|^2 = 1
  RateSeries out;
  out.name = "gauss-markov";
  out.dt_s = o.dt_s;
  const size_t n = static_cast<size_t>(std::ceil(o.duration_s / o.dt_s));
  out.rate_bps.resize(n);
  double re = normal(rng), im = normal(rng);
  for (size_t i = 0; i < n; ++i) {
    out.rate_bps[i] = ShannonRate(o.bandwidth_hz, snr, re * re + im * im);
    re = rho * re + innov * normal(rng);
    im = rho * im + innov * normal(rng);
  }
  return out;
}

}  // namespace splitinfer::decision

#include "common/decision/online_law.h"

#if defined(__linux__)
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <cmath>
#include <sstream>

namespace splitinfer::decision {

void LowerThisThreadsPriority() {
#if defined(__linux__)
  // On Linux setpriority(PRIO_PROCESS, tid) sets the nice value of one thread.
  (void)setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19);
#endif
}
namespace {

std::string Num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

constexpr double kMaxWindowSamples = 1e7;
// Up to this K the occupancy noise uses the exact fundamental matrix (an O(K^3) inverse).
constexpr int kMaxExactStates = 256;
constexpr double kHuge = 1e300;
// Sampling floors are this many standard deviations (see the header).
constexpr double kNoiseZ = 2.0;

}  // namespace

size_t OnlineLawOptions::WindowSamples() const {
  if (!(grid_s > 0) || !std::isfinite(window_s / grid_s)) return 0;
  return static_cast<size_t>(std::llround(std::clamp(window_s / grid_s, 0.0, kMaxWindowSamples)));
}

size_t OnlineLawOptions::RefitEverySamples() const {
  if (!(grid_s > 0) || !std::isfinite(refit_every_s / grid_s)) return 1;
  return std::max<size_t>(
      1, static_cast<size_t>(std::llround(std::clamp(refit_every_s / grid_s, 0.0, 1e12))));
}

bool OnlineLawOptions::IsValid(std::string* error) const {
  auto fail = [&](const std::string& m) {
    if (error) *error = m;
    return false;
  };
  if (!(grid_s > 0) || grid_s > 10 || !std::isfinite(grid_s))
    return fail("grid_s must be in (0, 10] (got " + Num(grid_s) + ")");
  if (!std::isfinite(window_s) || window_s < grid_s || window_s / grid_s > kMaxWindowSamples)
    return fail("window_s must be in [grid_s, 1e7 grid_s] (got " + Num(window_s) + ")");
  if (!std::isfinite(refit_every_s) || refit_every_s < grid_s)
    return fail("refit_every_s must be >= grid_s (got " + Num(refit_every_s) + ")");
  if (min_samples < 2 || min_samples > WindowSamples())
    return fail("min_samples must be in [2, window_s / grid_s] (got " +
                std::to_string(min_samples) + ")");
  if (num_states < 1 || num_states > 1 << 16)
    return fail("num_states must be in [1, 65536] (got " + std::to_string(num_states) + ")");
  if (!std::isfinite(change_threshold))
    return fail("change_threshold must be finite (got " + Num(change_threshold) + ")");
  return true;
}

LawDistanceParts LawDistance(const ChannelLaw& law, const std::vector<double>& rates, int lag) {
  LawDistanceParts d;
  const int k = law.num_states();
  const size_t n = rates.size();
  if (k < 1 || n == 0) return d;
  lag = std::max(lag, 1);
  d.samples = n;

  std::vector<int> state(n);
  std::vector<double> count(k, 0.0), sum(k, 0.0), inv_sum(k, 0.0);
  std::vector<char> has_zero(k, 0);
  for (size_t i = 0; i < n; ++i) {
    const double r = rates[i];
    const int s = law.StateOf(r);
    state[i] = s;
    count[s] += 1;
    sum[s] += r;
    if (r > 0)
      inv_sum[s] += 1.0 / r;
    else
      has_zero[s] = 1;
  }

  // Transition rows counted on the window, with the law's states.
  Eigen::MatrixXd pairs = Eigen::MatrixXd::Zero(k, k);
  for (size_t i = 0; i + static_cast<size_t>(lag) < n; ++i) pairs(state[i], state[i + lag]) += 1;
  const double total_pairs = pairs.sum();
  const bool markov = !law.iid && law.transition.rows() == k && law.transition.cols() == k;

  // Occupancy: the window's share of each state against the law's, less its sampling noise.
  // Var(q_s) ~ lag * sigma2_s / n with sigma2_s the asymptotic variance of 1{X = s} under the
  // law's chain (an upper bound on the n samples at grid steps when the law steps every `lag`).
  std::vector<double> sigma2(k);
  for (int s = 0; s < k; ++s) {
    const double pi = s < law.stationary.size() ? law.stationary(s) : 0.0;
    sigma2[s] = pi * (1.0 - pi);  // i.i.d.
  }
  if (markov && k <= kMaxExactStates) {
    // pi_s (2 Z_ss - 1 - pi_s) with the fundamental matrix Z = (I - P + 1 pi^T)^-1.
    Eigen::MatrixXd a = Eigen::MatrixXd::Identity(k, k) - law.transition +
                        Eigen::VectorXd::Ones(k) * law.stationary.transpose();
    const Eigen::MatrixXd z = a.partialPivLu().inverse();
    for (int s = 0; s < k; ++s) {
      const double pi = law.stationary(s);
      const double v = pi * (2.0 * z(s, s) - 1.0 - pi);
      sigma2[s] = std::isfinite(v) ? std::max(v, 0.0) : kHuge;
    }
  } else if (markov) {
    // Lumped two-state chain {s, not s}: lag-1 correlation lambda, factor (1+lambda)/(1-lambda).
    for (int s = 0; s < k; ++s) {
      const double pi = law.stationary(s);
      if (pi <= 0 || pi >= 1) continue;
      const double lambda =
          std::clamp(1.0 - (1.0 - law.transition(s, s)) / (1.0 - pi), -1.0, 1.0 - 1e-12);
      sigma2[s] *= (1.0 + lambda) / (1.0 - lambda);
    }
  }
  double occupancy_tv = 0.0, occupancy_eps = 0.0;
  for (int s = 0; s < k; ++s) {
    const double pi = s < law.stationary.size() ? law.stationary(s) : 0.0;
    occupancy_tv += 0.5 * std::abs(count[s] / static_cast<double>(n) - pi);
    occupancy_eps += 0.5 * kNoiseZ * std::sqrt(lag * sigma2[s] / static_cast<double>(n));
  }
  d.occupancy = std::max(0.0, occupancy_tv - occupancy_eps);

  for (int s = 0; s < k; ++s) {
    const double q = count[s] / static_cast<double>(n);
    const double ns = pairs.row(s).sum();
    if (ns > 0 && total_pairs > 0) {
      double tv = 0.0, eps = 0.0;
      for (int j = 0; j < k; ++j) {
        const double p = markov ? law.transition(s, j) : law.stationary(j);
        tv += std::abs(pairs(s, j) / ns - p);
        eps += kNoiseZ * std::sqrt(std::max(0.0, p * (1.0 - p)) / ns);
      }
      d.transition += (ns / total_pairs) * std::max(0.0, 0.5 * tv - 0.5 * eps);
    }

    if (count[s] > 0 && !law.IsOutage(s)) {
      const double rhat = has_zero[s] ? sum[s] / count[s] : count[s] / inv_sum[s];
      const double r = law.rate_bps(s);
      const double hi = std::max(r, rhat);
      if (hi > 0) d.rate += q * std::abs(r - rhat) / hi;
    }
  }
  return d;
}

}  // namespace splitinfer::decision

// The rate-series engine of the simulator (declared in common/decision/simulator.h): fitting a
// law and its expected-transfer pricing on one part of a series (SeriesModel), and the episodes
// scored on another (ScoredSeries). The live device fits its tables with the same code.
#include <algorithm>
#include <cmath>
#include <limits>

#include "common/decision/simulator.h"

namespace splitinfer::decision {

Result<SeriesModel> SeriesModel::Fit(const CostModel& cost, const RateSeries& fit,
                                     const SeriesFitOptions& o, const std::string& what) {
  if (!(fit.dt_s > 0) || fit.size() == 0)
    return InvalidArgumentError(what + ": empty series to fit on");
  if (o.num_states < 1 || o.long_states < 1 || !(o.observe_window_s >= 0) ||
      !(o.long_window_s >= 0))
    return InvalidArgumentError(what + ": bad series fit options");
  SeriesModel m;
  m.grid_s_ = fit.dt_s;
  m.window_ = std::max<size_t>(1, std::lround(o.observe_window_s / fit.dt_s));
  const std::vector<double> obs_fit = fit.ObservedRates(m.window_);
  Result<ChannelLaw> law = DiscretizeEmpirical(obs_fit, o.num_states);
  if (!law.ok()) return law.status().WithPrefix(what + ": ");
  // Optional second coordinate of the state: the rate over a long window.
  m.long_window_ =
      o.long_window_s > 0 ? std::max<size_t>(1, std::lround(o.long_window_s / fit.dt_s)) : 0;
  std::vector<double> obs_fit_long;
  if (m.long_window_ > 0) {
    obs_fit_long = fit.ObservedRates(m.long_window_);
    Result<ChannelLaw> ll = DiscretizeEmpirical(obs_fit_long, o.long_states);
    if (!ll.ok()) return ll.status().WithPrefix(what + ": ");
    m.long_law_ = std::move(*ll);
  }
  m.short_law_ = *law;
  const int kl = m.long_states();
  const int n = cost.num_units(), k = law->num_states() * kl;
  // Boundary l happens lag[l] grid steps after boundary 0 (device compute time, cumulative).
  m.lag_.assign(n + 1, 0);
  double t = 0.0;
  for (int l = 1; l <= n; ++l) {
    t += cost.DeviceTime(l);
    m.lag_[l] = static_cast<size_t>(std::lround(t / fit.dt_s));
  }
  std::vector<int> states_fit(obs_fit.size());
  for (size_t i = 0; i < obs_fit.size(); ++i)
    states_fit[i] = m.StateOf(obs_fit[i], m.long_window_ > 0 ? obs_fit_long[i] : 0.0);
  if (m.long_window_ > 0) {
    // A product law: state s_short * kl + s_long. Its edges are placeholders (StateOf is not
    // used on it; SeriesModel::StateOf computes the pair), rates are the short-window ones.
    ChannelLaw product;
    product.iid = true;
    product.rate_bps.resize(k);
    product.stationary = Eigen::VectorXd::Zero(k);
    product.edges_bps.assign(k - 1, 0.0);
    for (int s = 0; s < k; ++s) product.rate_bps(s) = law->rate_bps(s / kl);
    for (int s : states_fit) product.stationary(s) += 1.0;
    product.stationary /= product.stationary.sum();
    *law = std::move(product);
  }
  std::vector<Eigen::MatrixXd> steps;
  if (o.markov) {
    law->iid = false;
    law->epoch_s = fit.dt_s;
    law->transition = CountTransitions(states_fit, k, 1, law->stationary, 0.0);
    for (int l = 0; l < n; ++l)
      steps.push_back(CountTransitions(states_fit, k, static_cast<int>(m.lag_[l + 1] - m.lag_[l]),
                                       law->stationary, 0.0));
  }
  // Expected transfer time of each wire option's bytes at boundary l given the observed state,
  // learned on the fitting series (SPEC section 6); the transfer starts at the step after the
  // observation.
  std::vector<Eigen::MatrixXd> transfers;
  const TransferClock clock(fit);
  for (int c = 0; c < cost.num_wire_options(); ++c) {
    Eigen::MatrixXd transfer(n + 1, k);
    for (int l = 0; l < n; ++l) {
      const double bits = cost.OptionBits(l, c);
      if (!cost.OptionAllowed(l, c)) {
        transfer.row(l).setConstant(std::numeric_limits<double>::infinity());
        continue;
      }
      if (o.pricing == Pricing::kExpectedTransfer) {
        const size_t stride = std::max<size_t>(1, obs_fit.size() / 20000);
        Eigen::VectorXd sum = Eigen::VectorXd::Zero(k), count = Eigen::VectorXd::Zero(k);
        for (size_t i = 0; i < obs_fit.size(); i += stride) {
          sum(states_fit[i]) += clock.TransferTime(i + 1, bits);
          count(states_fit[i]) += 1;
        }
        for (int s = 0; s < k; ++s)
          transfer(l, s) = count(s) > 0 ? sum(s) / count(s) : bits / fit.MeanRate();
      } else {
        for (int s = 0; s < k; ++s) transfer(l, s) = bits / std::max(law->rate_bps(s), 1.0);
      }
    }
    transfer.row(n).setZero();
    if (c == 0 && !transfer.allFinite()) {
      if (!o.allow_dead) return InvalidArgumentError(what + ": the trace carries no bits");
      // +inf transfer times: S_l = +inf, "offloading not allowed" (the horizon row stays 0).
      for (int l = 0; l < n; ++l)
        for (int s = 0; s < k; ++s)
          if (!std::isfinite(transfer(l, s)))
            transfer(l, s) = std::numeric_limits<double>::infinity();
    }
    transfers.push_back(std::move(transfer));
  }
  Result<StoppingProblem> p = BuildProblemWithOptionTransfers(cost, *law, n, transfers, steps);
  if (!p.ok()) return p.status();
  m.problem_ = std::move(*p);
  m.law_ = std::move(*law);
  m.mean_rate_ = fit.MeanRate();
  return m;
}

ScoredSeries::ScoredSeries(RateSeries series, size_t window, size_t long_window)
    : series_(std::move(series)),
      clock_(series_),
      window_(std::max<size_t>(1, window)),
      long_window_(long_window) {
  observed_ = series_.ObservedRates(window_);
  if (long_window > 0) observed_long_ = series_.ObservedRates(long_window);
  prefix_.assign(series_.size() + 1, 0.0);
  for (size_t i = 0; i < series_.size(); ++i) prefix_[i + 1] = prefix_[i] + series_.rate_bps[i];
}

double ScoredSeries::ObservedAt(size_t i, size_t window) const {
  window = std::max<size_t>(1, window);
  const size_t from = i + 1 > window ? i + 1 - window : 0;
  return (prefix_[i + 1] - prefix_[from]) / static_cast<double>(i + 1 - from);
}

Episode ScoredSeries::EpisodeAt(const CostModel& cost, const SeriesModel& model, size_t i0) const {
  const int n = cost.num_units();
  const size_t len = series_.size();
  Episode e;
  e.state.resize(n + 1);
  e.stop_cost.resize(n + 1);
  const int options = cost.num_wire_options();
  if (options > 1) e.option_cost.assign(n + 1, std::vector<double>(options, 0.0));
  e.finish_s.resize(n + 1);
  for (int l = 0; l <= n; ++l) {
    const size_t i = (i0 + model.lag()[l]) % len;
    const double started = static_cast<double>(model.lag()[l]) * series_.dt_s;
    // The windows this series was built for are precomputed; a model with other windows (the
    // robust splitter's re-fitted candidates) reads them from the prefix sums.
    const double shortw = model.window() == window_ ? observed_[i] : ObservedAt(i, model.window());
    const double longw = model.long_window() == 0              ? 0.0
                         : model.long_window() == long_window_ ? observed_long_[i]
                                                               : ObservedAt(i, model.long_window());
    e.state[l] = model.StateOf(shortw, longw);
    if (options == 1) {
      const double t = clock_.TransferTime(i + 1, cost.Bits(l));
      e.stop_cost[l] = cost.StopCostForTransfer(l, t);
      e.finish_s[l] = started + t;
      continue;
    }
    double best = std::numeric_limits<double>::infinity(), longest = 0.0;
    for (int c = 0; c < options; ++c) {
      double v = std::numeric_limits<double>::infinity();
      if (cost.OptionAllowed(l, c)) {
        const double t = clock_.TransferTime(i + 1, cost.OptionBits(l, c));
        v = cost.StopCostForTransfer(l, t, c);
        longest = std::max(longest, t);
      }
      e.option_cost[l][c] = v;
      best = std::min(best, v);
    }
    e.stop_cost[l] = best;
    e.finish_s[l] = started + longest;
  }
  return e;
}

}  // namespace splitinfer::decision

#include "common/decision/robust.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "common/decision/simulator.h"

namespace splitinfer::decision {

bool RobustOptions::IsValid(std::string* error) const {
  std::ostringstream m;
  if (!(refit_window_s > 0) || !(refit_every_s > 0))
    m << "refit window and period must be > 0 (got " << refit_window_s << ", " << refit_every_s
      << ")";
  else if (!(half_life >= 1))
    m << "half_life must be >= 1 inference (got " << half_life << ")";
  else if (!(z >= 0) || !(min_gain >= 0) || !(min_effective >= 0))
    m << "z, min_gain and min_effective must be >= 0";
  else
    return true;
  if (error) *error = m.str();
  return false;
}

PolicySelector::PolicySelector(int num_candidates, const RobustOptions& options, int incumbent)
    : n_(num_candidates),
      o_(options),
      gamma_(std::exp2(-1.0 / options.half_life)),
      incumbent_(incumbent),
      sum_(num_candidates, 0.0),
      pair_sq_(static_cast<size_t>(num_candidates) * num_candidates, 0.0) {}

double PolicySelector::Mean(int c) const {
  return weight_ > 0 ? sum_[c] / weight_ : std::numeric_limits<double>::quiet_NaN();
}

double PolicySelector::effective_count() const {
  return weight_sq_ > 0 ? weight_ * weight_ / weight_sq_ : 0.0;
}

void PolicySelector::Observe(const std::vector<double>& costs) {
  if (static_cast<int>(costs.size()) != n_) return;
  // A path where a candidate never finishes (an outage with no end on the series) counts as a
  // very bad, finite cost so that the statistics stay finite.
  std::vector<double> c(costs);
  double worst_finite = 0.0;
  for (double v : c)
    if (std::isfinite(v)) worst_finite = std::max(worst_finite, v);
  for (double& v : c)
    if (!std::isfinite(v)) v = 10.0 * std::max(worst_finite, 1.0);
  weight_ = gamma_ * weight_ + 1.0;
  weight_sq_ = gamma_ * gamma_ * weight_sq_ + 1.0;
  for (int a = 0; a < n_; ++a) {
    sum_[a] = gamma_ * sum_[a] + c[a];
    for (int b = a + 1; b < n_; ++b) {
      const double d = c[a] - c[b];
      double& q = pair_sq_[static_cast<size_t>(a) * n_ + b];
      q = gamma_ * q + d * d;
      pair_sq_[static_cast<size_t>(b) * n_ + a] = q;
    }
  }
  const double n_eff = effective_count();
  if (n_eff < o_.min_effective) return;
  int best = incumbent_;
  for (int a = 0; a < n_; ++a)
    if (sum_[a] < sum_[best]) best = a;
  if (best == incumbent_) return;
  const double m_inc = sum_[incumbent_] / weight_, m_best = sum_[best] / weight_;
  const double gain = m_inc - m_best;
  const double mean_sq = pair_sq_[static_cast<size_t>(incumbent_) * n_ + best] / weight_;
  const double var = std::max(0.0, mean_sq - gain * gain);
  const double se = std::sqrt(var / n_eff);
  if (gain > o_.z * se && gain > o_.min_gain * m_inc) {
    incumbent_ = best;
    ++switches_;
  }
}

namespace {

std::vector<SplitCandidate> TextbookCandidates(std::shared_ptr<const StoppingProblem> problem,
                                               std::shared_ptr<const SeriesModel> model,
                                               const std::string& suffix) {
  std::vector<SplitCandidate> out;
  for (std::unique_ptr<StoppingPolicy>& p : MakeStandardPolicies(*problem)) {
    // Plans that do not look at the channel (a fixed split, all-edge) are no candidates: one
    // that looked best over the last minutes offloads into the next outage until the selector
    // has seen enough of it. All-local stays: it is the safe harbour.
    if (p->name() == "best-fixed" || p->name() == "all-edge") continue;
    SplitCandidate c;
    c.name = p->name() == "bi" ? "bi-textbook" + suffix : p->name() + suffix;
    c.model = model;
    c.problem = problem;
    c.policy = std::shared_ptr<const StoppingPolicy>(std::move(p));
    out.push_back(std::move(c));
  }
  return out;
}

// The re-fitted candidates: BI and greedy on a Markov law.
std::vector<SplitCandidate> RefitCandidates(const std::vector<SplitCandidate>& all,
                                            bool long_window) {
  std::vector<SplitCandidate> out;
  for (const SplitCandidate& c : all) {
    if (c.name == "bi-textbook") {
      out.push_back(c);
      out.back().name = "bi-refit";
    } else if (c.name == "greedy") {
      out.push_back(c);
      out.back().name = "greedy-refit";
    }
  }
  if (long_window) {
    const size_t short_only = out.size();
    for (size_t i = 0; i < short_only; ++i) {
      out.push_back(out[i]);
      out.back().name += "-long";
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> RobustCandidateNames(bool refit, bool long_window) {
  std::vector<std::string> names = {"bi-textbook", "ola", "greedy", "neurosurgeon", "all-local"};
  if (refit) {
    names.push_back("bi-refit");
    names.push_back("greedy-refit");
  }
  if (refit && long_window) {
    names.push_back("bi-refit-long");
    names.push_back("greedy-refit-long");
  }
  return names;
}

RobustSplitter::RobustSplitter(std::shared_ptr<const StoppingProblem> problem,
                               std::shared_ptr<const SeriesModel> model,
                               const RobustOptions& options)
    : options_(options),
      fixed_(TextbookCandidates(problem, model, "")),
      refitted_(options.refit && model ? RefitCandidates(fixed_, options.long_window_s > 0)
                                       : std::vector<SplitCandidate>{}),
      selector_(static_cast<int>(fixed_.size() + refitted_.size()), options, 0) {
  if (!model) options_.refit = false;
  Publish();
}

void RobustSplitter::Publish() {
  auto s = std::make_shared<Snapshot>();
  s->candidates = fixed_;
  s->candidates.insert(s->candidates.end(), refitted_.begin(), refitted_.end());
  s->choice = selector_.incumbent();
  snapshot_ = std::move(s);
}

Result<std::vector<SplitCandidate>> FitRefitCandidates(const CostModel& cost,
                                                       const RateSeries& window,
                                                       const SeriesFitOptions& fit,
                                                       const RobustOptions& options) {
  SeriesFitOptions o = fit;
  o.markov = true;
  o.allow_dead = true;  // a window inside an outage: offloading is not allowed, finish locally
  o.long_window_s = 0.0;
  std::vector<SplitCandidate> next;
  auto add = [&](const SeriesFitOptions& fo, const std::string& suffix) -> Status {
    Result<SeriesModel> m = SeriesModel::Fit(cost, window, fo, "robust re-fit");
    if (!m.ok()) return m.status();
    auto model = std::make_shared<const SeriesModel>(std::move(*m));
    auto problem = std::make_shared<const StoppingProblem>(model->problem());
    next.push_back({"bi-refit" + suffix, model, problem,
                    std::shared_ptr<const StoppingPolicy>(MakeBiPolicy(*problem))});
    next.push_back({"greedy-refit" + suffix, model, problem,
                    std::shared_ptr<const StoppingPolicy>(MakeGreedyPolicy(*problem))});
    return Status::Ok();
  };
  SPLITINFER_RETURN_IF_ERROR(add(o, ""));
  if (options.long_window_s > 0) {
    SeriesFitOptions ol = o;
    ol.long_window_s = options.long_window_s;
    ol.long_states = options.long_states;
    ol.num_states = std::max(1, o.num_states / 2);
    SPLITINFER_RETURN_IF_ERROR(add(ol, "-long"));
  }
  return next;
}

Status RobustSplitter::Refit(const CostModel& cost, const RateSeries& window,
                             const SeriesFitOptions& fit) {
  if (!options_.refit) return Status::Ok();
  Result<std::vector<SplitCandidate>> next = FitRefitCandidates(cost, window, fit, options_);
  if (!next.ok()) return next.status();
  SetRefitted(std::move(*next));
  return Status::Ok();
}

void RobustSplitter::SetRefitted(std::vector<SplitCandidate> refitted) {
  if (!options_.refit || refitted.size() != refitted_.size()) return;
  for (size_t i = 0; i < refitted.size(); ++i)
    if (refitted[i].name != refitted_[i].name) return;
  refitted_ = std::move(refitted);
  Publish();
}

void RobustSplitter::Record(std::shared_ptr<const Snapshot> at_start, std::vector<double> seen,
                            double reveal_s) {
  pending_.push_back({reveal_s, std::move(at_start), std::move(seen)});
}

void RobustSplitter::Advance(double now_s) {
  for (size_t j = 0; j < pending_.size();) {
    if (pending_[j].reveal_s <= now_s) {
      Observe(*pending_[j].snapshot, pending_[j].seen);
      pending_[j] = std::move(pending_.back());
      pending_.pop_back();
    } else {
      ++j;
    }
  }
}

double RobustTransferCap(const SeriesModel* model, const RobustOptions& options) {
  const double device_s = model ? static_cast<double>(model->lag().back()) * model->grid_s() : 0.0;
  return std::max(options.reveal_cap_min_s, device_s);
}

PricedPath PriceCandidates(const CostModel& cost, const RobustSplitter::Snapshot& snap,
                           const Episode& base, const SeriesModel* base_model,
                           const ScoredSeries* scored, size_t i0, double grid_s,
                           double transfer_cap_s) {
  const size_t m = snap.candidates.size();
  PricedPath out;
  out.cost.resize(m);
  out.seen.resize(m);
  out.boundary.resize(m);
  out.option.resize(m);
  const SeriesModel* last_model = base_model;
  Episode other;
  double finish = 0.0;
  for (size_t c = 0; c < m; ++c) {
    const SplitCandidate& cand = snap.candidates[c];
    const Episode* path = &base;
    if (scored != nullptr && cand.model && cand.model.get() != base_model) {
      if (cand.model.get() != last_model) {
        other = scored->EpisodeAt(cost, *cand.model, i0);
        last_model = cand.model.get();
      }
      path = &other;
    }
    int b = 0;
    out.cost[c] = EpisodeCost(*cand.problem, *cand.policy, *path, &b);
    const int option = cand.problem->StopOption(b, path->state[b]);
    out.boundary[c] = b;
    out.option[c] = option;
    out.seen[c] = out.cost[c];
    if (path->finish_s.empty()) continue;
    // A transfer still running `transfer_cap_s` after it began is known by then to cost at
    // least what it has cost so far: the selector gets that bound then, not the full cost when
    // the transfer ends (cost grows with the transfer time, so the min is exact for a transfer
    // that ended in time).
    const SeriesModel* clock = cand.model ? cand.model.get() : base_model;
    if (clock == nullptr) continue;
    const double sent_from = static_cast<double>(clock->lag()[b]) * clock->grid_s();
    if (b < cand.problem->horizon && path->finish_s[b] > sent_from + transfer_cap_s) {
      out.seen[c] = std::min(out.cost[c], cand.problem->CumulativeContinue(b) +
                                              cost.StopCostForTransfer(b, transfer_cap_s, option));
      finish = std::max(finish, sent_from + transfer_cap_s);
    } else {
      finish = std::max(finish, path->finish_s[b]);
    }
  }
  // Whole grid steps, one more for the observation: as the series clock counts.
  out.reveal_s = grid_s > 0 ? (std::ceil(finish / grid_s) + 1.0) * grid_s : finish;
  return out;
}

void RobustSplitter::Observe(const Snapshot& at_start, const std::vector<double>& costs) {
  if (costs.size() != at_start.candidates.size()) return;
  const int before = selector_.incumbent();
  selector_.Observe(costs);
  if (selector_.incumbent() != before) Publish();
}

}  // namespace splitinfer::decision

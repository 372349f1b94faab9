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

Status RobustSplitter::Refit(const CostModel& cost, const RateSeries& window,
                             const SeriesFitOptions& fit) {
  if (!options_.refit) return Status::Ok();
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
  if (options_.long_window_s > 0) {
    SeriesFitOptions ol = o;
    ol.long_window_s = options_.long_window_s;
    ol.long_states = options_.long_states;
    ol.num_states = std::max(1, o.num_states / 2);
    SPLITINFER_RETURN_IF_ERROR(add(ol, "-long"));
  }
  refitted_ = std::move(next);
  Publish();
  return Status::Ok();
}

void RobustSplitter::Observe(const Snapshot& at_start, const std::vector<double>& costs) {
  if (costs.size() != at_start.candidates.size()) return;
  const int before = selector_.incumbent();
  selector_.Observe(costs);
  if (selector_.incumbent() != before) Publish();
}

}  // namespace splitinfer::decision

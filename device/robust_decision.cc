#include "device/robust_decision.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "common/decision/online_law.h"
#include "common/decision/simulator.h"
#include "device/csi_feed.h"
#include "device/live_decision.h"

namespace splitinfer {
namespace sd = decision;

namespace {

// The re-fitted candidates of one window, as the online re-fitter publishes them.
struct RefitSet {
  std::vector<sd::SplitCandidate> candidates;
  const sd::ChannelLaw& law() const { return candidates.front().model->short_law(); }
};

class RobustDecision final : public DecisionSource {
 public:
  using Refitter = sd::OnlineRefitter<RefitSet>;

  RobustDecision(const sd::CostModel& cost, const LiveDecisionOptions& lo,
                 std::unique_ptr<sd::RobustSplitter> splitter,
                 std::shared_ptr<const sd::SeriesModel> base, const TableContext& ctx,
                 const sd::RateSeries& emulated, std::unique_ptr<Refitter> refitter,
                 size_t window_steps)
      : cost_(cost),
        lo_(lo),
        splitter_(std::move(splitter)),
        base_(std::move(base)),
        ctx_(ctx),
        csi_(emulated, lo.time_scale, window_steps),
        refitter_(std::move(refitter)),
        transfer_cap_s_(sd::RobustTransferCap(base_.get(), splitter_->options())) {}

  void Feed(double emulated_s) override {
    if (refitter_)
      csi_.Until(emulated_s, [this](double rate_bps) { refitter_->Observe(rate_bps); });
  }

  std::shared_ptr<const LiveDecision> At(double emulated_s) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (refitter_) {
      std::shared_ptr<const RefitSet> refit = refitter_->Current();
      if (refit && refit != installed_) {
        splitter_->SetRefitted(refit->candidates);
        installed_ = std::move(refit);
      }
    }
    splitter_->Advance(emulated_s);
    std::shared_ptr<const sd::RobustSplitter::Snapshot> snap = splitter_->snapshot();
    if (history_.empty() || history_.back().second != snap) history_.emplace_back(emulated_s, snap);
    while (history_.size() > 4096) history_.pop_front();
    return Table(snap->chosen());
  }

  void Completed(InferenceRecord* r) override {
    const sd::RateSeries& series = csi_.series();
    if (ctx_.scored == nullptr || ctx_.cost_model == nullptr || series.size() == 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    // The snapshot this inference began with: the last one handed out at or before its start.
    std::shared_ptr<const sd::RobustSplitter::Snapshot> snap;
    for (auto it = history_.rbegin(); it != history_.rend(); ++it)
      if (it->first <= r->start_s + 1e-9) {
        snap = it->second;
        break;
      }
    if (!snap) return;
    const size_t i0 =
        static_cast<size_t>(std::floor(r->start_s / series.dt_s + 1e-6)) % series.size();
    const sd::Episode base = ctx_.scored->EpisodeAt(*ctx_.cost_model, *base_, i0);
    const sd::PricedPath priced =
        sd::PriceCandidates(*ctx_.cost_model, *snap, base, base_.get(), ctx_.scored, i0,
                            base_->grid_s(), transfer_cap_s_);
    // Wall seconds after the start -> emulated time, the clock At() advances the splitter by.
    splitter_->Record(snap, priced.seen, r->start_s + priced.reveal_s * lo_.time_scale);
    r->policy_fields["candidate"] = snap->chosen().name;
    r->policy_fields["candidate_switches"] = splitter_->selector().switches();
  }

 private:
  std::shared_ptr<const LiveDecision> Table(const sd::SplitCandidate& c) {
    auto it = tables_.find(c.policy.get());
    if (it != tables_.end() && it->second.first == c.policy) return it->second.second;
    Result<std::shared_ptr<const LiveDecision>> d = LiveDecision::FromCandidate(c, lo_, ++made_);
    if (!d.ok()) return fallback_;
    // Tables of candidates no longer in any snapshot go with the next re-fit.
    if (tables_.size() > 64) tables_.clear();
    tables_[c.policy.get()] = {c.policy, *d};
    return *d;
  }

 public:
  std::shared_ptr<const LiveDecision> fallback_;  // textbook BI, should a table fail to build

 private:
  const sd::CostModel& cost_;
  LiveDecisionOptions lo_;
  std::mutex mu_;
  std::unique_ptr<sd::RobustSplitter> splitter_;
  std::shared_ptr<const sd::SeriesModel> base_;
  const TableContext ctx_;  // a copy: its pointers outlive the source
  CsiFeed csi_;
  std::unique_ptr<Refitter> refitter_;
  double transfer_cap_s_;
  uint64_t made_ = 0;
  std::shared_ptr<const RefitSet> installed_;
  std::deque<std::pair<double, std::shared_ptr<const sd::RobustSplitter::Snapshot>>> history_;
  std::map<const sd::StoppingPolicy*, std::pair<std::shared_ptr<const sd::StoppingPolicy>,
                                                std::shared_ptr<const LiveDecision>>>
      tables_;
};

}  // namespace

Result<std::unique_ptr<DecisionSource>> MakeRobustSource(const sd::CostModel& cost,
                                                         const LiveDecisionOptions& lo, bool markov,
                                                         const sd::RobustOptions& robust,
                                                         const TableContext& ctx,
                                                         const sd::RateSeries& fit_emulated,
                                                         const sd::RateSeries& emulated) {
  std::string error;
  if (!robust.IsValid(&error)) return InvalidArgumentError("robust splitter: " + error);
  if (lo.horizon != LiveDecisionOptions::kAllUnits)
    return InvalidArgumentError("robust splitter: needs every unit on the device");
  // The textbook tables: the prefix law exactly as --policy bi-textbook fits it.
  LiveDecisionOptions textbook = lo;
  textbook.policy = "bi";
  Result<std::shared_ptr<const LiveDecision>> first =
      LiveDecision::FromSeries(cost, fit_emulated, markov, textbook);
  if (!first.ok()) return first.status();
  std::shared_ptr<const sd::SeriesModel> base = (*first)->series_model();
  auto splitter = std::make_unique<sd::RobustSplitter>(
      std::make_shared<const sd::StoppingProblem>((*first)->problem()), base, robust);
  // The re-fitter works in wall time (rates x c, steps / c), as the fitted model does.
  const double c = lo.time_scale;
  sd::SeriesFitOptions fit;
  fit.num_states = lo.num_states;
  fit.observe_window_s = lo.observe_window_s / c;
  std::unique_ptr<RobustDecision::Refitter> refitter;
  size_t window_steps = 0;
  if (robust.refit) {
    // The first re-fitted set from the end of the prefix, then one per refit_every_s.
    const sd::RateSeries wall_fit = ToWallTime(fit_emulated, c);
    // Robust options are in channel (emulated) seconds, as split_sim's trace seconds.
    const size_t w = std::max<size_t>(
        1, std::min(wall_fit.size(),
                    static_cast<size_t>(std::lround(robust.refit_window_s / fit_emulated.dt_s))));
    Result<std::vector<sd::SplitCandidate>> initial = sd::FitRefitCandidates(
        cost, wall_fit.Slice(wall_fit.size() - w, wall_fit.size()), fit, robust);
    if (!initial.ok()) return initial.status();
    splitter->SetRefitted(*initial);
    sd::OnlineLawOptions ol;
    ol.grid_s = emulated.dt_s / c;
    ol.window_s = robust.refit_window_s / c;
    ol.refit_every_s = robust.refit_every_s / c;
    ol.num_states = lo.num_states;
    ol.change_threshold = 0.0;  // every period: the selector, not a law distance, judges
    if (!ol.IsValid(&error)) return InvalidArgumentError("robust splitter: " + error);
    window_steps = ol.WindowSamples();
    auto solver = [&cost, fit, robust](
                      const sd::RateSeries& window) -> Result<std::shared_ptr<const RefitSet>> {
      Result<std::vector<sd::SplitCandidate>> set =
          sd::FitRefitCandidates(cost, window, fit, robust);
      if (!set.ok()) return set.status();
      auto out = std::make_shared<RefitSet>();
      out->candidates = std::move(*set);
      return std::shared_ptr<const RefitSet>(std::move(out));
    };
    auto first_set = std::make_shared<RefitSet>();
    first_set->candidates = std::move(*initial);
    refitter = std::make_unique<RobustDecision::Refitter>(ol, solver, std::move(first_set));
  }
  auto source = std::make_unique<RobustDecision>(cost, lo, std::move(splitter), std::move(base),
                                                 ctx, emulated, std::move(refitter), window_steps);
  source->fallback_ = *first;
  return std::unique_ptr<DecisionSource>(std::move(source));
}

}  // namespace splitinfer

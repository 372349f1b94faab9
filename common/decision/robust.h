// The robust splitter: backward induction that does not bet on one fitted law
// (docs/decision.md, "A splitter that is robust to a law that changes").
//
// A law fitted on the past need not hold on the next minutes of a real channel: an i.i.d. law
// expects a fresh draw after every unit where the rate in fact holds for a second, and a level
// shift or a long outage moves every transfer time. The robust splitter keeps a set of candidate
// stopping tables and, per inference, follows the one whose realized cost on the recent past was
// lowest, switching only on evidence:
//  - the textbook policies of the law the user gave that look at the channel (BI first, then
//    OLA, greedy, Neurosurgeon) and all-local, built once;
//  - on rate series, BI and greedy re-fitted every `refit_every_s` on the last `refit_window_s`
//    seconds of the channel with a Markov law at each unit's lag (the persistence the i.i.d. law
//    leaves out, the level the fitting part may not have had), once on the short-window state
//    and once on a state that pairs it with the rate over `long_window_s` (a memory of where
//    the channel has been, which the short window alone forgets within 20 ms).
// After an inference, every candidate's cost on the channel path the device saw is known (the
// device observes the rate throughout; the simulator has the episode), so the selector has full
// information. It keeps exponentially discounted means of every candidate's cost and of the
// paired differences, and leaves the incumbent for the best candidate only when the paired
// advantage is `z` standard errors and `min_gain` of the incumbent's cost. On a stationary law
// that it knows, textbook BI has the least expected cost of all candidates, so the selector keeps
// it: the robust splitter is then textbook BI (tests/decision/robust_test.cc).
//
// A decision stays a table lookup: the incumbent's table, from a snapshot taken when the
// inference begins. Re-fits build new tables off the decision path.
//
// Thread safety: RobustSplitter is not thread-safe (one owner drives it); its Snapshot objects
// are immutable and may be shared with any thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/decision/cost_model.h"
#include "common/decision/stopping.h"
#include "common/decision/trace.h"
#include "common/status.h"

namespace splitinfer::decision {

class SeriesModel;        // common/decision/simulator.h
class ScoredSeries;       // common/decision/simulator.h
struct SeriesFitOptions;  // common/decision/simulator.h

struct RobustOptions {
  bool refit = true;             // rate series: add the re-fitted Markov candidates
  double refit_window_s = 60.0;  // fitted on the last W seconds of the channel
  double refit_every_s = 5.0;    // re-fitted this often (channel time)
  // A second pair of re-fitted candidates whose state pairs the short-window rate with the rate
  // over this window (0: none), K/2 x long_states states.
  double long_window_s = 1.0;
  int long_states = 4;
  double half_life = 100.0;     // inferences: the selector forgets with this half-life
  double z = 2.0;               // standard errors of the paired advantage needed to switch
  double min_gain = 0.005;      // and this share of the incumbent's discounted cost
  double min_effective = 20.0;  // effective inferences observed before the first switch
  // A candidate's transfer still running after the device time of the whole model (and at
  // least this long) is scored then with the cost it has run up so far, a lower bound: an
  // outage shows within seconds, not when it ends.
  double reveal_cap_min_s = 1.0;

  bool IsValid(std::string* error) const;
};

// One candidate policy: its table, the problem it was built on and how it maps an observation to
// a state (null model: the caller's state map, e.g. an analytic law).
struct SplitCandidate {
  std::string name;
  std::shared_ptr<const SeriesModel> model;
  std::shared_ptr<const StoppingProblem> problem;
  std::shared_ptr<const StoppingPolicy> policy;
};

// Follow the candidate with the least discounted cost, switching on evidence (see above).
class PolicySelector {
 public:
  PolicySelector(int num_candidates, const RobustOptions& options, int incumbent = 0);
  // One inference's realized cost for every candidate (same path for all).
  void Observe(const std::vector<double>& costs);
  int incumbent() const { return incumbent_; }
  int switches() const { return switches_; }
  // Discounted mean cost of candidate c (NaN before any observation).
  double Mean(int c) const;
  double effective_count() const;

 private:
  int n_;
  RobustOptions o_;
  double gamma_;
  int incumbent_, switches_ = 0;
  double weight_ = 0.0, weight_sq_ = 0.0;  // sum of weights and of squared weights
  std::vector<double> sum_;                // n: discounted cost sums
  std::vector<double> pair_sq_;            // n x n: discounted sums of squared paired differences
};

class RobustSplitter {
 public:
  // The set every split starts from: the textbook policies of `problem`, whose states `model`
  // maps (null for an analytic law).
  RobustSplitter(std::shared_ptr<const StoppingProblem> problem,
                 std::shared_ptr<const SeriesModel> model, const RobustOptions& options);

  // The candidates at one time, immutable: what an inference that begins now decides with.
  struct Snapshot {
    std::vector<SplitCandidate> candidates;
    int choice = 0;
    const SplitCandidate& chosen() const { return candidates[choice]; }
  };
  std::shared_ptr<const Snapshot> snapshot() const { return snapshot_; }

  // Re-fits the Markov candidates on `window` (the last refit_window_s of the channel) with the
  // initial fit's options, a Markov law forced (FitRefitCandidates). Off the decision path.
  Status Refit(const CostModel& cost, const RateSeries& window, const SeriesFitOptions& fit);
  // Installs re-fitted candidates built elsewhere (a background re-fitter), in
  // RobustCandidateNames' order; ignored when the names do not match the set.
  void SetRefitted(std::vector<SplitCandidate> refitted);
  // The costs every candidate of `snapshot` (taken when that inference began) realized on its
  // path, once the path is known. Candidates re-fitted since then are scored with their old
  // tables, which is what they would have done.
  void Observe(const Snapshot& at_start, const std::vector<double>& costs);
  // The same, later: what the device will know at time `reveal_s` (any clock, the one Advance
  // is given). Advance(now) observes every recorded path revealed by `now`.
  void Record(std::shared_ptr<const Snapshot> at_start, std::vector<double> seen, double reveal_s);
  void Advance(double now_s);
  size_t pending() const { return pending_.size(); }

  const RobustOptions& options() const { return options_; }
  const PolicySelector& selector() const { return selector_; }

 private:
  void Publish();

  struct Pending {
    double reveal_s;
    std::shared_ptr<const Snapshot> snapshot;
    std::vector<double> seen;
  };

  RobustOptions options_;
  std::vector<SplitCandidate> fixed_, refitted_;
  PolicySelector selector_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::vector<Pending> pending_;
};

// The re-fitted candidates on one window of the channel (bi-refit, greedy-refit and, with a long
// window, their two-window twins). Shared by RobustSplitter::Refit and the live device's
// background re-fitter.
Result<std::vector<SplitCandidate>> FitRefitCandidates(const CostModel& cost,
                                                       const RateSeries& window,
                                                       const SeriesFitOptions& fit,
                                                       const RobustOptions& options);

// Every candidate of a snapshot priced on one inference's channel path.
struct PricedPath {
  std::vector<double> cost;  // realized, per candidate
  // What the device knows `reveal_s` after the inference began: the cost, or for a transfer
  // still running after `transfer_cap_s` the cost it has run up by then (a lower bound).
  std::vector<double> seen;
  std::vector<int> boundary, option;
  double reveal_s = 0.0;
};
// `base` is the path under `base_model`'s states (null model: an analytic law, every candidate
// on `base`); a candidate with another state map gets its path from `scored` at step `i0`.
// transfer_cap_s: RobustTransferCap.
PricedPath PriceCandidates(const CostModel& cost, const RobustSplitter::Snapshot& snapshot,
                           const Episode& base, const SeriesModel* base_model,
                           const ScoredSeries* scored, size_t i0, double grid_s,
                           double transfer_cap_s);
// The device time of the whole model, and at least options.reveal_cap_min_s.
double RobustTransferCap(const SeriesModel* model, const RobustOptions& options);

// The candidates' names in a snapshot's order for a splitter with (true) or without re-fits.
std::vector<std::string> RobustCandidateNames(bool refit, bool long_window);

}  // namespace splitinfer::decision

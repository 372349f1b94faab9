// The robust splitter live (docs/decision.md, "A splitter that is robust to a law that changes"):
// device_client --policy bi on a series channel with perfect CSI. The same
// decision::RobustSplitter as split_sim's bi, with the same candidates:
//  - the textbook tables of the prefix law (BI, OLA, greedy, Neurosurgeon, all-local);
//  - BI and greedy re-fitted on a Markov law over the last refit_window_s of CSI reports, by a
//    background decision::OnlineRefitter (as --law online), installed when the next inference
//    begins.
// After an inference completes the device prices every candidate on the channel path it ran on
// (the scored series from the inference's start, as the ledger's sim and oracle costs) and the
// selector learns from it once that path has been seen (a transfer still running after the
// model's device time counts with the cost it has run up). A decision is the chosen candidate's
// table lookup; each record notes the candidate ("candidate") and the selector's switches.
//
// Thread safety: At, Feed and Completed may be called from any threads (one mutex, held for a
// pointer swap or for pricing one path, never during a decision).
#pragma once

#include <memory>

#include "common/decision/cost_model.h"
#include "common/decision/robust.h"
#include "common/decision/trace.h"
#include "device/split_policy.h"

namespace splitinfer {

// `fit_emulated`: the prefix series the textbook law is fitted on; `emulated`: the whole
// emulated series (CSI reports come from it); `ctx` (copied) carries the cost model and the
// scored series, which must outlive the source, as must `cost`.
Result<std::unique_ptr<DecisionSource>> MakeRobustSource(const decision::CostModel& cost,
                                                         const LiveDecisionOptions& lo, bool markov,
                                                         const decision::RobustOptions& robust,
                                                         const TableContext& ctx,
                                                         const decision::RateSeries& fit_emulated,
                                                         const decision::RateSeries& emulated);

}  // namespace splitinfer

// The policy interface of the device's inference loop (device/device_session.h) and the policies
// that implement it. docs/live.md describes the loop; docs/design.md the decision problem.
//
// Per inference, the session asks the policy for an InferencePlan (Begin): one snapshot of what
// the policy holds now (its decision table, the placed model version, the exit thresholds), used
// for every boundary of that inference, so that a table re-solved in the background or a version
// swapped in by the placement loop never reaches an inference half-way. After unit l the session
// observes the uplink (UplinkView) and asks the plan whether to stop there; the plan also says
// which codec the tensor at the stop travels with, whether an early exit answers on the device,
// and adds its own fields (predictions) to the inference's record.
//
// Policies here:
//   FixedSplitPolicy  k fixed (--split K), no channel needed;
//   TablePolicy       a stopping table (BI, OLA, the baselines) from a DecisionSource: one fixed
//                     table, or the online re-fitter's latest (--law online);
//   PlacedPolicy      the placement loop's current version: its prefix model of M units and its
//                     table of horizon M (device/placement_agent.h);
// and, in device/exit_policy.h, ExitPolicy: an early-exit controller (os, rl, fixed, bi).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "common/codec.h"
#include "common/decision/cost_model.h"
#include "common/decision/online_law.h"
#include "common/decision/simulator.h"
#include "common/split_model.h"
#include "common/status.h"
#include "device/inference_record.h"
#include "device/live_decision.h"
#include "device/uplink_emulator.h"

namespace splitinfer {

class PlacementAgent;

// What the device sees of its uplink at boundary l of an inference.
struct ChannelObservation {
  int boundary = 0;
  double t_s = 0.0;       // emulated time (series channels)
  double rate_bps = 0.0;  // emulated bit/s
  int state = -1;         // the policy's state of rate_bps (set by the plan), or the path's
};

// The uplink as the inference loop sees it.
class UplinkView {
 public:
  virtual ~UplinkView() = default;
  virtual ChannelObservation Observe(int boundary) = 0;
  // The upload time an inference is charged for the tensor at `boundary` (`bits` on the wire,
  // `wall_s` spent writing it).
  virtual double UploadSeconds(int boundary, double bits, double wall_s) = 0;
};

// The emulated uplink (device/uplink_emulator.h), which paces the real request frames: the
// charge is the time the write took. With a GoodputEstimator (--csi estimated) the device
// observes the goodput of its recent uploads instead of the emulated rate.
class EmulatedUplinkView final : public UplinkView {
 public:
  EmulatedUplinkView(UplinkEmulator* uplink, GoodputEstimator* goodput)
      : uplink_(uplink), goodput_(goodput) {}
  ChannelObservation Observe(int boundary) override;
  double UploadSeconds(int boundary, double bits, double wall_s) override;
  UplinkEmulator* uplink() const { return uplink_; }

 private:
  UplinkEmulator* uplink_;
  GoodputEstimator* goodput_;
};

// A channel path precomputed by the simulator's episode source (decision::ChannelPath): the
// device observes the path's rate and state at each boundary and is charged the path's transfer
// time (the frames go unpaced), exactly as the simulator prices the same episode.
class PathUplinkView final : public UplinkView {
 public:
  explicit PathUplinkView(const std::vector<int>* state, const std::vector<double>* rate_bps,
                          const std::vector<double>* transfer_s)
      : state_(state), rate_(rate_bps), transfer_(transfer_s) {}
  ChannelObservation Observe(int boundary) override;
  double UploadSeconds(int boundary, double, double) override;

 private:
  const std::vector<int>* state_;
  const std::vector<double>* rate_;
  const std::vector<double>* transfer_;
};

// An answer the device produced by itself from units [from, N) (exits included).
struct LocalAnswer {
  at::Tensor output;
  int exit = -1;  // early exits: the exit that answered (-1: the model has none)
  int exit_after_unit = -1;
};

// One inference's decisions (see the file comment).
class InferencePlan {
 public:
  virtual ~InferencePlan() = default;
  // The model this inference runs (with placement: the prefix of the version placed).
  virtual const SplitModel& model() const = 0;
  // Units the device holds: it stops at M at the latest.
  virtual int horizon() const { return static_cast<int>(model().num_units()); }
  // Sets o->state (plans with states) and answers whether to stop at o->boundary.
  virtual bool Stop(ChannelObservation* o) = 0;
  // How the tensor at the stop travels (the table's wire option, or a fixed codec).
  virtual CodecSpec CodecAtStop(const ChannelObservation& stop) const = 0;
  // Early exits, sent with an offload (wire convention: > 1 disables an exit); empty: none.
  virtual const std::vector<double>& exit_thresholds() const;
  // After unit `boundary` ran on the device (x: the tensor there): an exit head's answer, if
  // one fires here.
  virtual std::optional<LocalAnswer> TryExit(int /*boundary*/, const at::Tensor& /*x*/) {
    return std::nullopt;
  }
  // Cost of a wrong answer, for inputs with a known label (early exits); 0: not priced.
  virtual double accuracy_weight() const { return 0.0; }
  // Runs units [from, N) here (the stop at N, or the fallback when the edge fails).
  virtual Result<LocalAnswer> FinishHere(const at::Tensor& x, int from);
  // Adds the policy's fields (predictions, table generation, ...) to the record, and learns
  // from the outcome.
  virtual void Complete(InferenceRecord* /*record*/) {}
  // The version and M the record names.
  virtual uint32_t version() const { return model().version(); }
  virtual int placed_units() const { return horizon(); }
};

class SplitPolicy {
 public:
  virtual ~SplitPolicy() = default;
  virtual const std::string& name() const = 0;
  // The plan of an inference starting now; `at0` is the observation at boundary 0 (state unset).
  // kUnavailable when the policy has nothing to run yet (placement: no version on the device).
  virtual Result<std::unique_ptr<InferencePlan>> Begin(const ChannelObservation& at0) = 0;
};

// --split K.
class FixedSplitPolicy final : public SplitPolicy {
 public:
  FixedSplitPolicy(std::shared_ptr<const SplitModel> model, int k, CodecSpec codec);
  const std::string& name() const override { return name_; }
  Result<std::unique_ptr<InferencePlan>> Begin(const ChannelObservation& at0) override;

 private:
  std::shared_ptr<const SplitModel> model_;
  int k_;
  CodecSpec codec_;
  std::string name_;
};

// Where a table policy's table comes from.
class DecisionSource {
 public:
  virtual ~DecisionSource() = default;
  // The CSI reports up to emulated time t reach the source (online: the re-fitter's window).
  // Not part of the decision: a device's modem reports CSI whether or not it infers.
  virtual void Feed(double /*emulated_s*/) {}
  // The table an inference starting now uses for all its boundaries: one snapshot, no waiting.
  virtual std::shared_ptr<const LiveDecision> At(double emulated_s) = 0;
  // An inference that took its table from At() has completed and its record is filled (the
  // robust splitter learns from the path it ran on and notes its candidate in the record).
  virtual void Completed(InferenceRecord* /*record*/) {}
};

class FixedDecision final : public DecisionSource {
 public:
  explicit FixedDecision(std::shared_ptr<const LiveDecision> d) : d_(std::move(d)) {}
  std::shared_ptr<const LiveDecision> At(double) override { return d_; }

 private:
  std::shared_ptr<const LiveDecision> d_;
};

// --law online settings (the re-fitter's options; see common/decision/online_law.h).
struct OnlineSettings {
  double window_s = 60.0;
  double refit_every_s = 1.0;
  double change_threshold = 0.05;
};

// --law online: the Markov law re-fitted in the background from the CSI reports of a sliding
// window (decision::OnlineRefitter), starting from `initial`. The re-fitter works in wall time
// (rates x c, steps / c) so that its law distance compares like with like with
// LiveDecision::law(); its solver turns the window back into emulated time for FromSeries.
// `cost` must outlive the source.
Result<std::unique_ptr<DecisionSource>> MakeOnlineSource(
    const decision::CostModel& cost, const LiveDecisionOptions& lo, bool markov,
    const OnlineSettings& settings, std::shared_ptr<const LiveDecision> initial,
    const decision::RateSeries& emulated);

// What a table policy needs beyond its table to fill the ledger: the codec of each wire option,
// and (series channels) the cost model, the scored series and the emulated series, to put the
// simulator's and the oracle's cost on the same channel path beside the realized one.
struct TableContext {
  std::vector<CodecSpec> option_codecs;  // index = wire option; [0] = fp32
  const decision::CostModel* cost_model = nullptr;
  const decision::ScoredSeries* scored = nullptr;
  const decision::RateSeries* emulated = nullptr;
};

// Fills a record's prediction fields from table `d` (shared by TablePolicy and PlacedPolicy).
void AnnotateTable(const LiveDecision& d, const TableContext& ctx, int first_state, int stop_state,
                   InferenceRecord* r);

class TablePolicy final : public SplitPolicy {
 public:
  TablePolicy(std::string name, std::shared_ptr<const SplitModel> model,
              std::unique_ptr<DecisionSource> source, TableContext context);
  const std::string& name() const override { return name_; }
  Result<std::unique_ptr<InferencePlan>> Begin(const ChannelObservation& at0) override;

 private:
  std::string name_;
  std::shared_ptr<const SplitModel> model_;
  std::unique_ptr<DecisionSource> source_;
  TableContext context_;
};

// The placement loop's current version (PlacementAgent::Current): the prefix model of M units
// and its table of horizon M. Records carry whether a download was under way when the inference
// started or ended ("during_download"). When the edge refuses an inference because it no longer
// serves the version (NOT_FOUND), `on_retired` runs (device_client: a placement round now).
class PlacedPolicy final : public SplitPolicy {
 public:
  PlacedPolicy(std::string name, const PlacementAgent* agent, TableContext context,
               std::function<void()> on_retired = {});
  const std::string& name() const override { return name_; }
  Result<std::unique_ptr<InferencePlan>> Begin(const ChannelObservation& at0) override;

 private:
  std::string name_;
  const PlacementAgent* agent_;
  TableContext context_;
  std::function<void()> on_retired_;
};

}  // namespace splitinfer

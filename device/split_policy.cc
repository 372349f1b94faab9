#include "device/split_policy.h"

#include <cmath>

#include "device/csi_feed.h"
#include "device/placement_agent.h"

namespace splitinfer {

using json = nlohmann::json;

// ---- uplinks --------------------------------------------------------------------------------

ChannelObservation EmulatedUplinkView::Observe(int boundary) {
  ChannelObservation o;
  o.boundary = boundary;
  o.t_s = uplink_->NowEmulated();
  o.rate_bps = goodput_ ? goodput_->RateBps() : uplink_->ObservedRate();
  return o;
}

double EmulatedUplinkView::UploadSeconds(int, double bits, double wall_s) {
  // Goodput in emulated time: the wall send time times the time scale.
  if (goodput_ != nullptr) goodput_->Add(bits, wall_s * uplink_->time_scale());
  return wall_s;
}

ChannelObservation PathUplinkView::Observe(int boundary) {
  ChannelObservation o;
  o.boundary = boundary;
  const size_t l = static_cast<size_t>(boundary);
  o.rate_bps = l < rate_->size() ? (*rate_)[l] : 0.0;
  o.state = l < state_->size() ? (*state_)[l] : -1;
  return o;
}

double PathUplinkView::UploadSeconds(int boundary, double, double) {
  const size_t l = static_cast<size_t>(boundary);
  return l < transfer_->size() ? (*transfer_)[l] : 0.0;
}

// ---- plans ----------------------------------------------------------------------------------

const std::vector<double>& InferencePlan::exit_thresholds() const {
  static const std::vector<double> kNone;
  return kNone;
}

Result<LocalAnswer> InferencePlan::FinishHere(const at::Tensor& x, int from) {
  Result<at::Tensor> y = model().RunRangeChecked(x, static_cast<size_t>(from), model().num_units());
  if (!y.ok()) return y.status();
  LocalAnswer a;
  a.output = std::move(*y);
  return a;
}

namespace {

class FixedSplitPlan final : public InferencePlan {
 public:
  FixedSplitPlan(const SplitModel& model, int k, const CodecSpec& codec)
      : model_(model), k_(k), codec_(codec) {}
  const SplitModel& model() const override { return model_; }
  bool Stop(ChannelObservation* o) override { return o->boundary >= k_; }
  CodecSpec CodecAtStop(const ChannelObservation&) const override { return codec_; }

 private:
  const SplitModel& model_;
  int k_;
  CodecSpec codec_;
};

// A stopping table over one model: Stop is StateOf (a binary search over K-1 rate edges) and a
// table lookup.
class TablePlan : public InferencePlan {
 public:
  TablePlan(std::shared_ptr<const SplitModel> model, std::shared_ptr<const LiveDecision> d,
            const TableContext& ctx, DecisionSource* source = nullptr)
      : model_(std::move(model)), d_(std::move(d)), ctx_(ctx), source_(source) {}
  const SplitModel& model() const override { return *model_; }
  int horizon() const override { return d_->horizon(); }
  bool Stop(ChannelObservation* o) override {
    int s = 0;
    if (d_->two_window() && ctx_.scored != nullptr && ctx_.emulated != nullptr) {
      // The long-window rate a device with perfect CSI sees, from the same series.
      const size_t i = static_cast<size_t>(std::floor(o->t_s / ctx_.emulated->dt_s + 1e-6)) %
                       ctx_.scored->size();
      s = d_->StateOf(o->rate_bps, ctx_.scored->ObservedAt(i, d_->series_model()->long_window()));
    } else {
      s = d_->StateOf(o->rate_bps);
    }
    o->state = s;
    if (o->boundary == 0) first_state_ = s;
    stop_state_ = s;
    return o->boundary >= d_->horizon() || d_->Stop(o->boundary, s, first_state_);
  }
  CodecSpec CodecAtStop(const ChannelObservation& stop) const override {
    const int option = d_->problem().StopOption(stop.boundary, stop.state);
    if (stop.boundary < static_cast<int>(model_->num_units()) && option > 0 &&
        static_cast<size_t>(option) < ctx_.option_codecs.size())
      return ctx_.option_codecs[static_cast<size_t>(option)];
    return CodecSpec();
  }
  void Complete(InferenceRecord* r) override {
    AnnotateTable(*d_, ctx_, first_state_, stop_state_, r);
    if (source_ != nullptr) source_->Completed(r);
  }

 protected:
  std::shared_ptr<const SplitModel> model_;
  std::shared_ptr<const LiveDecision> d_;
  const TableContext& ctx_;
  DecisionSource* source_;
  int first_state_ = 0, stop_state_ = 0;
};

class PlacedPlan final : public TablePlan {
 public:
  PlacedPlan(std::shared_ptr<const Placed> placed, const TableContext& ctx,
             const PlacementAgent* agent, const std::function<void()>& on_retired)
      : TablePlan(placed->net, placed->decision, ctx),
        placed_(std::move(placed)),
        agent_(agent),
        on_retired_(on_retired),
        download_at_start_(agent->downloading()) {}
  uint32_t version() const override { return placed_->version; }
  int placed_units() const override { return static_cast<int>(placed_->m); }
  void Complete(InferenceRecord* r) override {
    TablePlan::Complete(r);
    r->policy_fields["during_download"] = download_at_start_ || agent_->downloading();
    if (on_retired_ && r->fallback && r->fallback->find("NOT_FOUND") != std::string::npos)
      on_retired_();
  }

 private:
  std::shared_ptr<const Placed> placed_;  // keeps the version's units alive for the inference
  const PlacementAgent* agent_;
  const std::function<void()>& on_retired_;
  bool download_at_start_;
};

}  // namespace

// ---- policies -------------------------------------------------------------------------------

FixedSplitPolicy::FixedSplitPolicy(std::shared_ptr<const SplitModel> model, int k, CodecSpec codec)
    : model_(std::move(model)), k_(k), codec_(codec), name_("fixed:" + std::to_string(k)) {}

Result<std::unique_ptr<InferencePlan>> FixedSplitPolicy::Begin(const ChannelObservation&) {
  return std::unique_ptr<InferencePlan>(std::make_unique<FixedSplitPlan>(*model_, k_, codec_));
}

void AnnotateTable(const LiveDecision& d, const TableContext& ctx, int first_state, int stop_state,
                   InferenceRecord* r) {
  json& f = r->policy_fields;
  f["table_generation"] = d.generation();
  f["predicted_cost"] = d.PredictedCost(first_state);
  f["predicted_path_cost"] = d.PathPrice(r->boundary, stop_state);
  // The simulator on the same channel path: the episode that starts at this inference's step,
  // run through the same table (sim), and the clairvoyant oracle's cost on it.
  f["sim_cost"] = nullptr;
  f["sim_boundary"] = nullptr;
  f["oracle_cost"] = nullptr;
  f["oracle_boundary"] = nullptr;
  if (ctx.scored != nullptr && ctx.emulated != nullptr && d.series_model() &&
      d.horizon() == d.num_units()) {
    const decision::RateSeries& series = *ctx.emulated;
    const size_t i0 =
        static_cast<size_t>(std::floor(r->start_s / series.dt_s + 1e-6)) % series.size();
    const decision::Episode e = ctx.scored->EpisodeAt(*ctx.cost_model, *d.series_model(), i0);
    int b = 0;
    f["sim_cost"] = decision::EpisodeCost(d.problem(), d.policy(), e, &b);
    f["sim_boundary"] = b;
    f["oracle_cost"] = decision::OracleEpisodeCost(d.problem(), e, &b);
    f["oracle_boundary"] = b;
  }
}

TablePolicy::TablePolicy(std::string name, std::shared_ptr<const SplitModel> model,
                         std::unique_ptr<DecisionSource> source, TableContext context)
    : name_(std::move(name)),
      model_(std::move(model)),
      source_(std::move(source)),
      context_(std::move(context)) {}

Result<std::unique_ptr<InferencePlan>> TablePolicy::Begin(const ChannelObservation& at0) {
  source_->Feed(at0.t_s);
  return std::unique_ptr<InferencePlan>(
      std::make_unique<TablePlan>(model_, source_->At(at0.t_s), context_, source_.get()));
}

PlacedPolicy::PlacedPolicy(std::string name, const PlacementAgent* agent, TableContext context,
                           std::function<void()> on_retired)
    : name_(std::move(name)),
      agent_(agent),
      context_(std::move(context)),
      on_retired_(std::move(on_retired)) {}

Result<std::unique_ptr<InferencePlan>> PlacedPolicy::Begin(const ChannelObservation&) {
  std::shared_ptr<const Placed> placed = agent_->Current();
  if (!placed) return UnavailableError("no model version is placed on this device yet");
  return std::unique_ptr<InferencePlan>(
      std::make_unique<PlacedPlan>(placed, context_, agent_, on_retired_));
}

// ---- the online law -------------------------------------------------------------------------

namespace {

class OnlineDecision final : public DecisionSource {
 public:
  using Refitter = decision::OnlineRefitter<LiveDecision>;

  OnlineDecision(const decision::RateSeries& emulated, double time_scale,
                 std::unique_ptr<Refitter> refitter, size_t window_steps)
      : csi_(emulated, time_scale, window_steps), refitter_(std::move(refitter)) {}

  void Feed(double emulated_s) override {
    csi_.Until(emulated_s, [this](double rate_bps) { refitter_->Observe(rate_bps); });
  }
  std::shared_ptr<const LiveDecision> At(double) override { return refitter_->Current(); }

 private:
  CsiFeed csi_;
  std::unique_ptr<Refitter> refitter_;
};

}  // namespace

Result<std::unique_ptr<DecisionSource>> MakeOnlineSource(
    const decision::CostModel& cost, const LiveDecisionOptions& lo, bool markov,
    const OnlineSettings& settings, std::shared_ptr<const LiveDecision> initial,
    const decision::RateSeries& emulated) {
  const double c = lo.time_scale;
  decision::OnlineLawOptions o;
  o.grid_s = emulated.dt_s / c;
  o.window_s = settings.window_s / c;
  o.refit_every_s = settings.refit_every_s / c;
  o.num_states = lo.num_states;
  o.change_threshold = settings.change_threshold;
  std::string error;
  if (!o.IsValid(&error)) return InvalidArgumentError("--law online: " + error);
  auto generation = std::make_shared<uint64_t>(0);
  auto solver =
      [&cost, lo, markov, c, generation](
          const decision::RateSeries& window) -> Result<std::shared_ptr<const LiveDecision>> {
    decision::RateSeries emulated_window = ToWallTime(window, 1.0 / c);
    emulated_window.name = "online window";
    return LiveDecision::FromSeries(cost, emulated_window, markov, lo, ++*generation);
  };
  auto refitter = std::make_unique<OnlineDecision::Refitter>(o, solver, std::move(initial));
  return std::unique_ptr<DecisionSource>(
      std::make_unique<OnlineDecision>(emulated, c, std::move(refitter), o.WindowSamples()));
}

}  // namespace splitinfer

#include "device/exit_policy.h"

#include <cmath>
#include <cstdio>
#include <random>

#include "common/decision/exits_factory.h"
#include "common/decision/simulator.h"

namespace splitinfer {

namespace sd = decision;
using json = nlohmann::json;

namespace {

json Num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

}  // namespace

// One inference of an exit controller: the thresholds chosen at boundary 0, the offload
// decision at each boundary, the heads evaluated on the device as the units run.
class ExitPlan final : public InferencePlan {
 public:
  ExitPlan(ExitPolicy& policy, const sd::Thresholds& t)
      : policy_(policy),
        model_(*policy.model_),
        thresholds_(t),
        sample_(policy.sample_),
        path_(policy.path_) {
    // The wire's thresholds (common/exits: > 1 disables) from the controller's (+inf disables).
    wire_.resize(t.size());
    for (size_t e = 0; e < t.size(); ++e) wire_[e] = t[e] <= 1.0 ? t[e] : exits::kExitDisabled;
  }
  const SplitModel& model() const override { return model_; }
  bool Stop(ChannelObservation* o) override {
    const int n = static_cast<int>(model_.num_units());
    if (o->boundary >= n) return true;
    // No offload where the path cannot carry the tensor (an outage): run the next unit.
    if (path_ != nullptr && !std::isfinite(path_->transfer_s[static_cast<size_t>(o->boundary)]))
      return false;
    return policy_.controller_->Offload({o->boundary, std::max(o->state, 0), o->rate_bps});
  }
  CodecSpec CodecAtStop(const ChannelObservation&) const override { return CodecSpec(); }
  const std::vector<double>& exit_thresholds() const override { return wire_; }
  double accuracy_weight() const override { return policy_.world_->model->accuracy_weight(); }

  std::optional<LocalAnswer> TryExit(int boundary, const at::Tensor& x) override {
    const int ne = static_cast<int>(model_.num_exits());
    for (int e = 0; e + 1 < ne; ++e) {
      if (static_cast<int>(model_.exit_after_unit(static_cast<size_t>(e))) != boundary) continue;
      if (!sd::ExitActive(thresholds_, e, ne)) return std::nullopt;
      Result<at::Tensor> head = model_.RunExit(static_cast<size_t>(e), x);
      if (!head.ok()) return std::nullopt;
      const float conf =
          exits::BranchyModel::Confidence(*head, exits::ConfidenceKind::kMaxSoftmax).item<float>();
      if (conf < wire_[static_cast<size_t>(e)]) return std::nullopt;
      return LocalAnswer{*head, e, boundary};
    }
    return std::nullopt;
  }

  Result<LocalAnswer> FinishHere(const at::Tensor& x, int from) override {
    const size_t n = model_.num_units();
    Result<exits::ExitOutcome> rest = model_.RunWithExits(x, static_cast<size_t>(from), n, wire_,
                                                          exits::ConfidenceKind::kMaxSoftmax);
    if (!rest.ok()) return rest.status();
    LocalAnswer a;
    a.output = rest->tensor;
    a.exit = rest->exit >= 0 ? rest->exit : static_cast<int>(model_.num_exits()) - 1;
    a.exit_after_unit = static_cast<int>(model_.exit_after_unit(static_cast<size_t>(a.exit)));
    return a;
  }

  // The controller learns from the outcome; the simulator prices the same decisions.
  void Complete(InferenceRecord* r) override {
    const int n = static_cast<int>(model_.num_units());
    sd::InferenceOutcome out;
    out.exit = r->exit;
    out.offload_boundary = r->boundary < n && r->completed_on != "device_exit" ? r->boundary : -1;
    out.correct = r->correct;
    out.latency_s = r->priced.latency_s;
    out.energy_j = r->priced.energy_j;
    out.cost = r->priced.total;
    policy_.controller_->Feedback(out);
    json& f = r->policy_fields;
    f["controller"] = policy_.name();
    f["offload_boundary"] = out.offload_boundary;
    if (sample_ != nullptr && path_ != nullptr) {
      const sd::ExitPlan plan{thresholds_, out.offload_boundary >= 0 ? out.offload_boundary : n};
      const sd::InferenceOutcome sim = policy_.world_->model->RunPlan(*sample_, *path_, plan);
      f["sim_exit"] = sim.exit;
      f["sim_cost"] = sim.cost;
    }
  }

 private:
  ExitPolicy& policy_;
  const exits::BranchyModel& model_;
  sd::Thresholds thresholds_;
  std::vector<double> wire_;
  const sd::ExitSample* sample_;
  const sd::ChannelPath* path_;
};

ExitPolicy::ExitPolicy(std::shared_ptr<const exits::BranchyModel> model,
                       std::unique_ptr<sd::ExitController> controller,
                       std::shared_ptr<const sd::ExitWorld> world)
    : model_(std::move(model)), controller_(std::move(controller)), world_(std::move(world)) {}

Result<std::unique_ptr<InferencePlan>> ExitPolicy::Begin(const ChannelObservation& at0) {
  const sd::Thresholds& t = controller_->Begin({0, std::max(at0.state, 0), at0.rate_bps});
  return std::unique_ptr<InferencePlan>(std::make_unique<ExitPlan>(*this, t));
}

Result<std::unique_ptr<ExitEpisodes>> ExitEpisodes::Create(const ExitRunOptions& o) {
  std::unique_ptr<ExitEpisodes> x(new ExitEpisodes());
  x->options_ = o;
  auto model = exits::LoadBranchyModel(o.weights);
  if (!model.ok()) return model.status();
  x->model_ = std::move(*model);
  auto all = exits::LoadDigits(o.data);
  if (!all.ok()) return all.status();
  auto split = exits::SplitDigits(*all, o.split_seed);
  if (!split.ok()) return split.status();
  x->split_ = std::move(*split);
  auto profile = sd::LoadProfile(o.profile);
  if (!profile.ok()) return profile.status();
  auto cost = sd::CostModel::Create(*profile, o.cost);
  if (!cost.ok()) return cost.status();
  auto stats = sd::LoadExitStats(o.stats);
  if (!stats.ok()) return stats.status();
  const int64_t held_out = x->split_.test.size();
  if (static_cast<int64_t>(stats->samples.size()) != held_out) {
    return InvalidArgumentError(o.stats + " has " + std::to_string(stats->samples.size()) +
                                " samples, the held-out split of " + o.data + " (seed " +
                                std::to_string(o.split_seed) + ") has " + std::to_string(held_out));
  }
  for (size_t i = 0; i < stats->samples.size(); ++i) {
    if (stats->samples[i].label != x->split_.test.labels[static_cast<int64_t>(i)].item<int64_t>()) {
      return InvalidArgumentError("held-out sample " + std::to_string(i) +
                                  " has another label in " + o.stats +
                                  ": the stats were made on another split (--split-seed)");
    }
  }
  auto channel = sd::ChannelSpec::Parse(o.channel);
  if (!channel.ok()) return channel.status();
  sd::ExitWorldOptions wo = o.world;
  wo.seed = o.seed;
  auto world = sd::BuildExitWorld(*cost, *stats, o.accuracy_weight, *channel, wo);
  if (!world.ok()) return world.status();
  x->world_ = std::make_shared<const sd::ExitWorld>(std::move(*world));
  sd::ExitControllerOptions co;
  co.ddpg = o.ddpg;
  co.ddpg.seed = o.seed;
  auto built = sd::MakeExitControllers(*x->world_, o.controllers, co);
  if (!built.ok()) return built.status();
  if (built->empty()) return InvalidArgumentError("no controllers given");
  for (sd::BuiltExitController& b : *built) {
    json j;
    if (b.name == "rl") {
      j["train_s"] = b.ddpg.train_s;
      j["train_steps"] = co.ddpg.train_steps;
    } else {
      j["expected_cost"] = Num(b.expected_cost);
      if (b.name == "fixed") {
        j["threshold"] = Num(b.fixed.threshold);
        j["boundary"] = b.fixed.boundary;
      }
    }
    j["name"] = b.name;
    x->info_.push_back(std::move(j));
    x->policies_.push_back(
        std::make_unique<ExitPolicy>(x->model_, std::move(b.controller), x->world_));
  }
  return x;
}

json ExitEpisodes::Run(const SessionOptions& session_options, EdgeClient* client,
                       const DeviceSession::Sink& sink) {
  const sd::ExitWorld& world = *world_;
  const sd::ExitStats& es = world.model->stats();
  json controllers = json::array();
  std::printf(
      "controller | accuracy | latency ms | energy mJ | cost | sim cost (same decisions) | on "
      "device | on edge | fallback\n");
  struct Sums {
    double cost = 0, sim = 0, latency = 0, energy = 0, right = 0;
    int on_device = 0, on_edge = 0, fallback = 0;
    std::vector<int> exits;
  } sums;
  DeviceSession session(session_options, client, [&](InferenceRecord&& r) {
    sums.cost += r.priced.total;
    sums.sim += r.policy_fields.value("sim_cost", 0.0);
    sums.latency += r.priced.latency_s;
    sums.energy += r.priced.energy_j;
    sums.right += r.correct ? 1 : 0;
    sums.on_device += r.completed_on == "device_exit" || r.completed_on == "local";
    sums.on_edge += r.completed_on == "edge";
    sums.fallback += r.completed_on == "fallback_local";
    if (r.exit >= 0 && static_cast<size_t>(r.exit) < sums.exits.size()) ++sums.exits[r.exit];
    sink(std::move(r));
  });
  for (size_t c = 0; c < policies_.size(); ++c) {
    ExitPolicy& policy = *policies_[c];
    sums = Sums();
    sums.exits.assign(static_cast<size_t>(es.num_exits()), 0);
    // The episodes of exits_sim's EvaluateControllers: start step, then sample, from one stream.
    std::mt19937_64 rng(options_.seed);
    std::uniform_int_distribution<size_t> start(0, world.score->size() - 1);
    std::uniform_int_distribution<size_t> pick(0, world.eval.size() - 1);
    for (int ep = 0; ep < options_.episodes; ++ep) {
      const sd::ChannelPath path = world.score->At(start(rng));
      const sd::ExitSample* sample = world.eval[pick(rng)];
      const int64_t index = sample - es.samples.data();
      policy.SetEpisode(sample, &path);
      PathUplinkView uplink(&path.state, &path.rate_bps, &path.transfer_s);
      InferenceInput in;
      in.tensor = exits::PrepareDigitsInput(split_.test.images[index].unsqueeze(0),
                                            model_->options().input_size);
      in.label = sample->label;
      in.segment = ep;
      const Status st = session.Submit(policy, &uplink, std::move(in));
      if (!st.ok()) std::fprintf(stderr, "device_client: %s\n", st.ToString().c_str());
      session.Drain();  // the path and sample are this episode's
      policy.SetEpisode(nullptr, nullptr);
    }
    const double n = options_.episodes;
    json s = info_[c];
    s["controller"] = policy.name();
    s["episodes"] = options_.episodes;
    s["accuracy"] = sums.right / n;
    s["mean_latency_ms"] = 1e3 * sums.latency / n;
    s["mean_energy_mj"] = 1e3 * sums.energy / n;
    s["mean_cost"] = sums.cost / n;
    s["sim_mean_cost"] = sums.sim / n;
    s["on_device"] = sums.on_device;
    s["on_edge"] = sums.on_edge;
    s["fallback_local"] = sums.fallback;
    s["exit_counts"] = sums.exits;
    std::printf("%s | %.4f | %.3f | %.3f | %.5f | %.5f | %d | %d | %d\n", policy.name().c_str(),
                sums.right / n, 1e3 * sums.latency / n, 1e3 * sums.energy / n, sums.cost / n,
                sums.sim / n, sums.on_device, sums.on_edge, sums.fallback);
    controllers.push_back(std::move(s));
  }
  return json{{"channel", options_.channel},
              {"seed", options_.seed},
              {"accuracy_weight", options_.accuracy_weight},
              {"controllers", controllers}};
}

}  // namespace splitinfer

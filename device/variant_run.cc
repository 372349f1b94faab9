// device_client --variants: a model variant per inference, chosen by the bandit (VariantPolicy)
// from the QoE each inference realized, over held-out digits.
#include <algorithm>
#include <cstdio>
#include <map>
#include <random>
#include <sstream>

#include "common/exits/branchy_model.h"
#include "common/exits/digits.h"
#include "device/client_runs.h"
#include "device/variant_policy.h"

namespace splitinfer::runs {

// ---- --variants: model-variant selection ---------------------------------------------------

int RunVariants(const DeviceClientOptions& o, EdgeClientOptions copts, RecordWriter& out) {
  if (o.policy.find(',') != std::string::npos || o.segments > 0 || o.law == "online" ||
      o.placement())
    return Fail(InvalidArgumentError(
        "--variants runs one split policy per variant (no list, --segments, --law online or "
        "--store)"));
  Result<std::vector<sd::Variant>> known = sd::LoadVariants(o.variant_profiles);
  if (!known.ok()) return Fail(known.status());
  // NAME=FILE entries, served by the edge as digits_branchy@1, @2, ... in this order.
  std::vector<std::pair<sd::Variant, std::shared_ptr<SplitModel>>> variants;
  {
    std::stringstream in(o.variants);
    for (std::string entry; std::getline(in, entry, ',');) {
      const size_t eq = entry.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == entry.size())
        return Fail(InvalidArgumentError("--variants: '" + entry + "' is not NAME=WEIGHTS"));
      const std::string name = entry.substr(0, eq);
      auto it = std::find_if(known->begin(), known->end(),
                             [&](const sd::Variant& v) { return v.name == name; });
      if (it == known->end())
        return Fail(
            InvalidArgumentError("--variants: " + name + " is not in " + o.variant_profiles));
      auto model = exits::LoadBranchyModelAnyWidth(entry.substr(eq + 1),
                                                   static_cast<uint32_t>(variants.size() + 1));
      if (!model.ok()) return Fail(model.status().WithPrefix("--variants: " + name + ": "));
      variants.emplace_back(*it, std::move(*model));
    }
  }
  if (variants.empty()) return Fail(InvalidArgumentError("--variants: no variant given"));
  // The channel (and the device's cost options) once; each variant's table on its own profile.
  DeviceClientOptions channel_options = o;
  channel_options.profile = "local";  // a few passes of a small model: the table is per variant
  Result<std::unique_ptr<LiveWorld>> world = BuildLiveWorld(channel_options, *variants[0].second);
  if (!world.ok()) return Fail(world.status());
  LiveWorld& w = **world;
  std::vector<std::unique_ptr<sd::CostModel>> costs;
  std::vector<LiveVariant> arms;
  for (auto& [info, model] : variants) {
    Result<sd::CostModel> cost = sd::CostModel::Create(info.profile, w.cost_options);
    if (!cost.ok()) return Fail(cost.status().WithPrefix(info.name + ": "));
    costs.push_back(std::make_unique<sd::CostModel>(std::move(*cost)));
    LiveDecisionOptions lo = w.lo;
    lo.policy = o.policy;
    Result<std::shared_ptr<const LiveDecision>> d = MakeTable(w, *costs.back(), lo);
    if (!d.ok()) return Fail(d.status().WithPrefix(info.name + ": "));
    TableContext ctx = w.Context();
    ctx.option_codecs = {CodecSpec()};
    ctx.cost_model = costs.back().get();
    LiveVariant arm;
    arm.info = info;
    arm.policy = std::make_unique<TablePolicy>(o.policy + "@" + info.name, model,
                                               std::make_unique<FixedDecision>(std::move(*d)), ctx);
    arms.push_back(std::move(arm));
  }
  sd::DeviceContext context;
  context.slowdown = o.device_slowdown;
  context.uplink_bps = w.fit.MeanRate() * o.time_scale;
  context.energy_weight = o.qoe_energy_weight;
  context.latency_sensitivity = o.latency_sensitivity;
  sd::QoeOptions qoe;
  qoe.device_power_w = w.cost_options.DevicePowerW();
  // One device, one context: what tells the variants apart is what each realizes here (its
  // trained weights, this uplink), so a model per arm (disjoint LinUCB) with the optimistic
  // prior that makes every arm tried, with the knobs select_sim tuned for that policy.
  const sd::SelectSimOptions tuned;
  sd::BanditOptions bo;
  bo.policy = o.select == "linucb" ? sd::BanditPolicy::kLinUcb : sd::BanditPolicy::kEpsilonGreedy;
  bo.shared = false;
  bo.ridge = tuned.linucb_disjoint.ridge;
  bo.alpha = tuned.linucb_disjoint.alpha;
  bo.reward_offset = qoe.accuracy_scale;
  bo.epsilon = tuned.epsilon;
  bo.seed = o.seed;
  Result<std::unique_ptr<VariantPolicy>> policy =
      VariantPolicy::Create(std::move(arms), context, qoe, bo);
  if (!policy.ok()) return Fail(policy.status());
  // Inputs: held-out digits, drawn from --seed.
  auto digits = exits::LoadDigits(o.data);
  if (!digits.ok()) return Fail(digits.status());
  auto split = exits::SplitDigits(*digits, o.split_seed);
  if (!split.ok()) return Fail(split.status());
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int64_t> pick(0, split->test.size() - 1);

  copts.uplink_pacer = w.uplink.get();
  EdgeClient edge(copts);
  EmulatedUplinkView view(w.uplink.get(), nullptr);
  Failures failures{o.verify};
  struct Tally {
    int picks = 0, picks_late = 0, right = 0;
    double latency_ms = 0, qoe = 0;
  };
  std::map<std::string, Tally> tally;
  int done = 0;
  const int late_from = o.requests - o.requests / 5;  // the last 20%
  DeviceSession session(MakeSessionOptions(o, &w.cost_options), &edge, [&](InferenceRecord&& r) {
    out.Write(ToJson(r));
    failures.Add(r);
    Tally& t = tally[r.policy_fields.value("variant", std::string("?"))];
    ++t.picks;
    t.picks_late += done++ >= late_from;
    t.right += r.correct;
    t.latency_ms += r.priced.latency_s * 1e3;
    t.qoe += r.policy_fields.value("qoe", 0.0);
  });
  w.uplink->StartAt(w.run_start_s);
  for (int i = 0; i < o.requests && !Stopping(); ++i) {
    const int64_t s = pick(rng);
    InferenceInput in;
    in.tensor = exits::PrepareDigitsInput(split->test.images[s].unsqueeze(0), 32);
    in.label = split->test.labels[s].item<int64_t>();
    Status st = session.Submit(**policy, &view, std::move(in));
    if (!st.ok()) return Fail(st);
  }
  session.Drain();
  edge.Close();
  json rows = json::array();
  if (!o.json)
    std::printf("%-10s %6s %10s %9s %11s %9s\n", "variant", "picks", "last 20%", "accuracy",
                "latency ms", "mean QoE");
  for (size_t a = 0; a < (*policy)->num_arms(); ++a) {
    const std::string& name = (*policy)->arm(a).info.name;
    const Tally& t = tally[name];
    const double n = std::max(1, t.picks);
    rows.push_back({{"variant", name},
                    {"picks", t.picks},
                    {"picks_last_20pct", t.picks_late},
                    {"accuracy", t.right / n},
                    {"mean_latency_ms", t.latency_ms / n},
                    {"mean_qoe", t.qoe / n}});
    if (!o.json)
      std::printf("%-10s %6d %10d %9.3f %11.3f %9.3f\n", name.c_str(), t.picks, t.picks_late,
                  t.right / n, t.latency_ms / n, t.qoe / n);
  }
  out.Write(json{{"event", "summary"}, {"selector", (*policy)->name()}, {"variants", rows}});
  return failures.count == 0 ? 0 : 1;
}

}  // namespace splitinfer::runs

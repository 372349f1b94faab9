#include "device/device_client.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>

#include <torch/torch.h>

#include "common/handshake.h"
#include "common/model_zoo.h"
#include "common/torchscript_model.h"
#include "device/client_runs.h"
#include "device/exit_policy.h"

namespace splitinfer {
namespace {

using namespace runs;

Result<EdgeClientOptions> MakeEdgeOptions(const DeviceClientOptions& o) {
  EdgeClientOptions c;
  c.connect_timeout = std::chrono::milliseconds(o.connect_timeout_ms);
  c.io_timeout = std::chrono::milliseconds(o.io_timeout_ms);
  if (!o.server.empty()) {
    std::vector<EdgeAddress> servers;
    Status st = ParseEdgeAddresses(o.server, &servers);
    if (!st.ok()) return st.WithPrefix("--server: ");
    c.host = servers.front().host;
    c.port = servers.front().port;
    c.fallbacks.assign(servers.begin() + 1, servers.end());
    c.failover_backoff = std::chrono::milliseconds(std::max(o.reconnect_ms, 100));
  }
  c.tls = o.tls || !o.tls_ca.empty() || !o.tls_server_name.empty();
  c.tls_ca_file = o.tls_ca;
  c.tls_server_name = o.tls_server_name;
  if (!o.auth_token_file.empty()) {
    auto token = ReadSecretFile(o.auth_token_file);
    if (!token.ok()) return token.status().WithPrefix("--auth-token-file: ");
    c.auth_token = *token;
  }
  return c;
}

// ---- --split: the fixed path --------------------------------------------------------------

int RunFixed(const DeviceClientOptions& o, std::shared_ptr<SplitModel> model, EdgeClient* client,
             RecordWriter& out) {
  const size_t n = model->num_units();
  Result<CodecSpec> codec = CodecSpec::Parse(o.codec);
  if (!codec.ok()) return Fail(codec.status().WithPrefix("--codec: "));
  std::vector<size_t> splits;
  if (o.split == "all") {
    for (size_t k = 0; k <= n; ++k) splits.push_back(k);
  } else {
    try {
      size_t pos = 0;
      const long k = std::stol(o.split, &pos);
      if (pos != o.split.size() || k < 0 || static_cast<size_t>(k) > n) throw std::out_of_range("");
      splits.push_back(static_cast<size_t>(k));
    } catch (const std::exception&) {
      std::cerr << "device_client: --split must be 'all' or a number in 0.." << n << " (" << o.model
                << " has " << n << " units), got '" << o.split << "'\n";
      return 2;
    }
  }
  if (!o.json) {
    std::printf("model %s@%u, %zu units, server %s, codec %s\n", model->name().c_str(),
                model->version(), n, o.server.empty() ? "(none)" : o.server.c_str(),
                codec->ToString().c_str());
    PrintTableHeader();
  }
  Failures failures{o.verify};
  std::vector<InferenceRecord> recs;
  DeviceSession session(MakeSessionOptions(o, nullptr), client, [&](InferenceRecord&& r) {
    out.Write(ToJson(r));
    failures.Add(r);
    recs.push_back(std::move(r));
  });
  for (size_t k : splits) {
    FixedSplitPolicy policy(model, static_cast<int>(k), *codec);
    recs.clear();
    for (int i = 0; i < o.requests && !Stopping(); ++i) {
      Status st = session.Submit(policy, nullptr, RandomInput(*model, o.seed, session.next_id()));
      if (!st.ok()) return Fail(st);
    }
    session.Drain();
    for (auto& r : recs) r.output = at::Tensor();
    if (!o.json) PrintSummaryRow(recs, o.verify);
  }
  return failures.count == 0 ? 0 : 1;
}

int RunLive(const DeviceClientOptions& o, std::shared_ptr<SplitModel> model,
            EdgeClientOptions copts, RecordWriter& out) {
  Result<std::unique_ptr<LiveWorld>> world = BuildLiveWorld(o, *model);
  if (!world.ok()) return Fail(world.status());
  LiveWorld& w = **world;
  Result<std::vector<std::string>> names = PolicyNames(o);
  if (!names.ok()) return Fail(names.status());
  std::vector<std::unique_ptr<SplitPolicy>> policies;
  for (const std::string& name : *names) {
    Result<std::unique_ptr<SplitPolicy>> p = MakeTablePolicy(o, w, model, name);
    if (!p.ok()) return Fail(p.status());
    policies.push_back(std::move(*p));
  }
  copts.uplink_pacer = w.uplink.get();
  EdgeClient paced(copts);  // request frames paced to the emulated uplink
  Failures failures{o.verify};
  std::map<std::string, std::vector<InferenceRecord>> recs;
  DeviceSession session(MakeSessionOptions(o, &w.cost_options), &paced, [&](InferenceRecord&& r) {
    out.Write(ToJson(r));
    failures.Add(r);
    r.output = at::Tensor();
    recs[r.policy].push_back(std::move(r));
  });
  std::vector<std::unique_ptr<GoodputEstimator>> goodputs;
  std::vector<std::unique_ptr<EmulatedUplinkView>> views;
  for (size_t p = 0; p < policies.size(); ++p) {
    goodputs.push_back(o.csi == "estimated" ? std::make_unique<GoodputEstimator>(
                                                  o.goodput_window, w.fallback_prior_bps)
                                            : nullptr);
    views.push_back(std::make_unique<EmulatedUplinkView>(w.uplink.get(), goodputs.back().get()));
  }
  if (o.segments > 0) {
    // Segment-major: every policy runs segment j before any runs j+1, so a drift in this
    // machine's speed during the replay reaches every policy alike.
    for (int j = 0; j < o.segments && !Stopping(); ++j) {
      for (size_t p = 0; p < policies.size(); ++p) {
        w.uplink->StartAt(w.segment_starts[static_cast<size_t>(j)]);
        InferenceInput in = RandomInput(*model, o.seed, session.next_id());
        in.segment = j;
        in.start_s = w.segment_starts[static_cast<size_t>(j)];
        Status st = session.Submit(*policies[p], views[p].get(), std::move(in));
        if (!st.ok()) return Fail(st);
        session.Drain();
      }
    }
  } else {
    w.uplink->StartAt(w.run_start_s);
    for (int i = 0; i < o.requests && !Stopping(); ++i) {
      Status st = session.Submit(*policies[0], views[0].get(),
                                 RandomInput(*model, o.seed, session.next_id()));
      if (!st.ok()) return Fail(st);
    }
    session.Drain();
  }
  paced.Close();
  if (!o.json) {
    std::vector<PolicySummary> summaries;
    for (const std::string& name : *names) {
      PrintPolicyRecords(name, recs[name], o);
      summaries.push_back(Summarize(name, recs[name]));
    }
    if (summaries.size() > 1) PrintComparison(summaries);
  }
  return failures.count == 0 ? 0 : 1;
}

// ---- --exits ------------------------------------------------------------------------------

int RunExits(const DeviceClientOptions& o, EdgeClient* client, RecordWriter& out) {
  if (o.weights.empty()) return Fail(InvalidArgumentError("--exits needs --weights"));
  if (o.channel.empty()) return Fail(InvalidArgumentError("--exits needs --channel"));
  ExitRunOptions x;
  x.weights = o.weights;
  x.data = o.data;
  x.split_seed = o.split_seed;
  x.stats = o.stats;
  x.profile = o.profile.empty() ? "data/profiles/digits_branchy.json" : o.profile;
  x.channel = o.channel;
  x.controllers = o.exits;
  x.episodes = o.requests;
  x.seed = o.seed;
  x.accuracy_weight = o.accuracy_weight;
  Result<sd::CostOptions> cost = MakeCostOptions(o);
  if (!cost.ok()) return Fail(cost.status());
  x.cost = *cost;
  x.cost.device_slowdown = o.device_slowdown;
  if (o.states_given) x.world.num_states = o.states;
  x.world.rate_scale = o.rate_scale;
  if (o.train_steps > 0) x.ddpg.train_steps = o.train_steps;
  Result<std::unique_ptr<ExitEpisodes>> episodes = ExitEpisodes::Create(x);
  if (!episodes.ok()) return Fail(episodes.status());
  Failures failures;
  const json summary =
      (*episodes)->Run(MakeSessionOptions(o, &x.cost), client, [&](InferenceRecord&& r) {
        out.Write(ToJson(r));
        failures.Add(r);
      });
  if (!o.summary_json.empty()) {
    std::ofstream f(o.summary_json);
    f << summary.dump(2) << "\n";
    if (!f) return Fail(InvalidArgumentError("cannot write " + o.summary_json));
  }
  return failures.count == 0 ? 0 : 1;
}

}  // namespace

int RunDeviceClient(const DeviceClientOptions& o) {
  if (o.threads > 0) torch::set_num_threads(o.threads);
  const int modes = !o.exits.empty() + !o.policy.empty() + o.split_given;
  if (modes != 1)
    return Fail(InvalidArgumentError(
        "give one of --split K, --policy P (with --channel; and --store for placement) or "
        "--exits CONTROLLERS"));
  if (!o.policy.empty() && o.channel.empty())
    return Fail(InvalidArgumentError("--policy needs --channel"));
  if (o.split_given && !o.channel.empty())
    return Fail(InvalidArgumentError("--channel needs --policy (or --exits)"));
  if (!o.codecs.empty() && o.policy.empty())
    return Fail(InvalidArgumentError("--codecs needs --policy"));
  if (o.codec != "fp32" && !o.split_given)
    return Fail(InvalidArgumentError(
        "--codec works with the fixed --split path; with --policy give --codecs FILE and the "
        "policy chooses the codec with the boundary"));
  std::string error;
  if (!o.zoo.IsValid(&error)) return Fail(InvalidArgumentError(error));
  Result<EdgeClientOptions> copts = MakeEdgeOptions(o);
  if (!copts.ok()) return Fail(copts.status());
  std::ofstream ledger;
  if (!o.ledger.empty()) {
    ledger.open(o.ledger);
    if (!ledger) return Fail(InvalidArgumentError("cannot write --ledger " + o.ledger));
  }
  RecordWriter out(o.json, ledger.is_open() ? &ledger : nullptr);
  EdgeClient client(*copts);
  EdgeClient* edge = o.server.empty() ? nullptr : &client;
  if (!o.exits.empty()) return RunExits(o, edge, out);
  InstallStopHandlers();
  if (o.placement()) return RunPlaced(o, *copts, out);
  if (!o.variants.empty()) return RunVariants(o, *copts, out);
  Result<std::shared_ptr<SplitModel>> model =
      o.torchscript.empty() ? BuildZooModel(o.model, o.version, o.zoo)
                            : LoadTorchScriptModel(o.torchscript, o.model, o.version, {});
  if (!model.ok()) return Fail(model.status());
  if (!o.policy.empty()) return RunLive(o, *model, *copts, out);
  return RunFixed(o, *model, edge, out);
}

}  // namespace splitinfer

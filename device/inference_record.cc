#include "device/inference_record.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

namespace splitinfer {

using json = nlohmann::json;

json ToJson(const InferenceRecord& r) {
  json j;
  j["request_id"] = r.id;
  if (!r.policy.empty()) j["policy"] = r.policy;
  j["model"] = r.model;
  j["version"] = r.version;
  j["m"] = r.m;
  j["units"] = r.units;
  j["split"] = r.boundary;
  j["boundary"] = r.boundary;
  j["codec"] = r.codec;
  j["exit"] = r.exit >= 0 ? json(r.exit) : json(nullptr);
  j["exit_after_unit"] = r.exit >= 0 ? json(r.exit_after_unit) : json(nullptr);
  j["ok"] = r.ok;
  j["completed_on"] = r.completed_on;
  j["local"] = r.finished_locally();
  j["fallback"] = r.fallback ? json(*r.fallback) : json(nullptr);
  j["edge_version"] = r.edge_version != 0 ? json(r.edge_version) : json(nullptr);
  j["bytes_sent"] = r.bytes_sent;
  j["batch_size"] = r.batch_size;
  j["device_ms"] = r.device_ms;
  j["encode_ms"] = r.encode_ms;
  j["edge_decode_ms"] = r.edge_decode_ms;
  j["send_ms"] = r.send_ms;
  j["edge_ms"] = r.edge_ms;
  j["queue_ms"] = r.queue_ms;
  j["wait_ms"] = r.wait_ms;
  j["total_ms"] = r.total_ms;
  if (r.priced_set) {
    const decision::InferenceSpend& s = r.spend;
    j["device_time_ms"] = s.device_s * 1e3;
    j["device_energy_j"] = s.device_j;  // set by the session (never NaN here)
    j["transfer_ms"] = s.upload_s * 1e3;
    j["transfer_energy_j"] = r.priced.energy_j - s.device_j;
    j["edge_queue_ms"] = s.edge_queue_s * 1e3;
    j["edge_compute_ms"] = s.edge_compute_s * 1e3;
    j["download_ms"] = s.download_s * 1e3;
    j["edge_wait_ms"] = (s.edge_queue_s + s.edge_compute_s + s.download_s) * 1e3;
    j["energy_j"] = r.priced.energy_j;
    j["latency_ms"] = r.priced.latency_s * 1e3;
    j["cost"] = {{"device", r.priced.device},
                 {"transfer", r.priced.transfer},
                 {"edge", r.priced.edge},
                 {"penalty", r.priced.penalty},
                 {"total", r.priced.total}};
    j["channel_states"] = r.states;
    j["decision_us"] = r.decision_us;
    j["start_s"] = r.start_s;
    j["segment"] = r.segment >= 0 ? json(r.segment) : json(nullptr);
  }
  if (r.label >= 0) {
    j["label"] = r.label;
    j["correct"] = r.correct;
  }
  for (auto it = r.policy_fields.begin(); it != r.policy_fields.end(); ++it) j[it.key()] = *it;
  if (r.verified) {
    j["max_abs_diff"] = r.max_abs_diff;
    j["top1_match"] = r.top1_match;
    j["codec_max_abs_diff_vs_fp32"] = r.codec_max_abs_diff_vs_fp32;
    j["top1_match_fp32"] = r.top1_match_fp32;
  }
  return j;
}

PolicySummary Summarize(const std::string& name, const std::vector<InferenceRecord>& recs) {
  PolicySummary s;
  s.name = name;
  for (const InferenceRecord& r : recs) {
    ++s.n;
    const double realized = r.priced.total;
    s.realized += realized;
    const json& f = r.policy_fields;
    if (f.contains("predicted_cost") && f["predicted_cost"].is_number())
      s.predicted += f["predicted_cost"].get<double>();
    s.boundary += r.boundary;
    s.boundaries.push_back(r.boundary);
    s.start_rates.push_back(r.states.empty() ? 0.0 : r.states[0]["rate_bps"].get<double>());
    s.decision_us += r.decision_us;
    s.total_ms += r.total_ms;
    s.fallbacks += r.fallback.has_value();
    if (f.contains("table_generation"))
      s.max_generation = std::max(s.max_generation, f["table_generation"].get<uint64_t>());
    if (f.contains("sim_cost") && f["sim_cost"].is_number()) {
      ++s.with_sim;
      s.sim += f["sim_cost"].get<double>();
      s.oracle += f["oracle_cost"].get<double>();
      s.realized_sim_part += realized;
    }
  }
  return s;
}

namespace {
double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
}  // namespace

void PrintTableHeader() {
  std::printf("%5s %12s %10s %10s %10s %7s %8s %9s\n", "split", "bytes_sent", "device_ms",
              "edge_ms", "total_ms", "on_edge", "fallback", "verified");
}

void PrintSummaryRow(const std::vector<InferenceRecord>& recs, bool verify) {
  if (recs.empty()) return;
  std::vector<double> dev, edge, total;
  int on_edge = 0, fallback = 0, verified = 0;
  for (const InferenceRecord& r : recs) {
    dev.push_back(r.device_ms);
    edge.push_back(r.edge_ms);
    total.push_back(r.total_ms);
    on_edge += r.completed_on == "edge";
    fallback += r.fallback.has_value();
    if (verify) verified += r.max_abs_diff >= 0 && r.max_abs_diff <= 1e-5 && r.top1_match;
  }
  std::printf(
      "%5d %12llu %10.2f %10.2f %10.2f %7d %8d %9s\n", recs.front().boundary,
      static_cast<unsigned long long>(recs.front().bytes_sent), Median(dev), Median(edge),
      Median(total), on_edge, fallback,
      verify ? (std::to_string(verified) + "/" + std::to_string(recs.size())).c_str() : "-");
}

void PrintPolicyLine(const PolicySummary& s, const std::string& csi) {
  std::printf("policy %s, csi %s: %d inferences, mean realized cost %.6g, mean predicted %.6g",
              s.name.c_str(), csi.c_str(), s.n, s.Mean(s.realized), s.Mean(s.predicted));
  if (s.with_sim > 0)
    std::printf(", simulator on the same paths %.6g, oracle %.6g", s.sim / s.with_sim,
                s.oracle / s.with_sim);
  std::printf("\n");
}

void PrintComparison(const std::vector<PolicySummary>& all) {
  double best = std::numeric_limits<double>::infinity();
  for (const PolicySummary& s : all) best = std::min(best, s.Mean(s.realized));
  std::printf("\n%-13s %5s %11s %8s %11s %9s %11s %9s %9s %7s %8s %10s\n", "policy", "n",
              "realized", "/best", "simulated", "live/sim", "oracle", "live/orc", "sim/orc",
              "mean k", "fallback", "decide_us");
  for (const PolicySummary& s : all) {
    const double sim = s.with_sim ? s.sim / s.with_sim : NAN;
    const double oracle = s.with_sim ? s.oracle / s.with_sim : NAN;
    const double live = s.with_sim ? s.realized_sim_part / s.with_sim : NAN;
    std::printf("%-13s %5d %11.5g %8.3f %11.5g %9.3f %11.5g %9.3f %9.3f %7.2f %8d %10.2f\n",
                s.name.c_str(), s.n, s.Mean(s.realized), s.Mean(s.realized) / best, sim, live / sim,
                oracle, live / oracle, sim / oracle, s.Mean(s.boundary), s.fallbacks,
                s.Mean(s.decision_us));
  }
  std::printf(
      "realized: mean ledger cost live; simulated: split_sim's cost of the same table on the same "
      "channel paths; oracle: the clairvoyant cost of those paths under the cost model\n");
  // The boundary each policy chose, segment by segment, under the rate observed at its start.
  std::printf("\n%-16s", "Mbit/s at k=0");
  for (double r : all.front().start_rates) std::printf(" %5.3g", r / 1e6);
  std::printf("\n");
  for (const PolicySummary& s : all) {
    std::printf("%-16s", ("k " + s.name).c_str());
    for (int k : s.boundaries) std::printf(" %5d", k);
    std::printf("\n");
  }
}

}  // namespace splitinfer

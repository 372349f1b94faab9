// InferenceRecord: what one inference of the device did, from its first unit to its result, and
// the ledger line it becomes (docs/live.md, "The ledger"). Every mode of device_client (a fixed
// split, a live policy, a placed model version, early exits) writes the same record, so one
// reader (scripts, tests, the summaries below) understands all of them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "common/decision/cost_model.h"

namespace splitinfer {

struct InferenceRecord {
  uint64_t id = 0;
  std::string policy;  // the policy as the ledger names it (e.g. "bi@online", "os", "fixed:3")
  std::string model;
  uint32_t version = 0;  // the version the device ran units of
  int m = 0;             // units the device holds of that version (placement), N otherwise
  int units = 0;         // N
  int boundary = 0;      // k: units 1..k ran on the device before the stop
  std::string codec = "fp32";
  // Early exits: the exit whose logits are the answer and the unit it sits after; -1: none.
  int exit = -1;
  int exit_after_unit = -1;
  // local (k = N), edge, device_exit (an exit head answered on the device), fallback_local
  // (the edge failed or refused: the device finished from the tensor it kept).
  std::string completed_on;
  std::optional<std::string> fallback;  // why the device finished locally
  bool ok = false;
  uint32_t edge_version = 0;  // the version the edge ran (0: the edge did not answer)
  uint64_t bytes_sent = 0;
  uint32_t batch_size = 0;
  // Wall times (ms).
  double device_ms = 0, encode_ms = 0, send_ms = 0, edge_ms = 0, queue_ms = 0;
  double edge_decode_ms = 0, wait_ms = 0, total_ms = 0;
  // The parts of the realized cost and their price (decision::PriceInference).
  decision::InferenceSpend spend;
  decision::PricedInference priced;
  bool priced_set = false;  // live modes price; a plain --split run does not
  // Live: the decision path and the policy's own fields (predictions, table generation, ...).
  nlohmann::json states = nlohmann::json::array();  // observation at each boundary visited
  double decision_us = 0;
  double start_s = 0;  // emulated time of boundary 0
  int segment = -1;    // replay segment
  int64_t label = -1;  // inputs with labels (early exits): the true class and whether it matched
  bool correct = false;
  nlohmann::json policy_fields = nlohmann::json::object();
  // --verify: comparison with a local run (max |diff| < 0: shapes differ).
  bool verified = false;
  double max_abs_diff = -1, codec_max_abs_diff_vs_fp32 = -1;
  bool top1_match = false, top1_match_fp32 = false;
  at::Tensor output;  // the answer (not in the ledger line); undefined when !ok

  bool finished_locally() const { return completed_on != "edge"; }
  // Mixed versions: the edge answered with a version other than the device's units.
  bool mixed() const { return edge_version != 0 && edge_version != version; }
};

// The ledger line: every field above under stable names (tests and scripts read them).
nlohmann::json ToJson(const InferenceRecord& r);

// One policy's records, summed up.
struct PolicySummary {
  std::string name;
  int n = 0, with_sim = 0, fallbacks = 0;
  double realized = 0, predicted = 0, sim = 0, oracle = 0, realized_sim_part = 0;
  double boundary = 0, decision_us = 0, total_ms = 0;
  uint64_t max_generation = 0;
  std::vector<int> boundaries;      // per inference
  std::vector<double> start_rates;  // emulated bit/s observed at boundary 0, per inference
  double Mean(double v) const { return n > 0 ? v / n : 0.0; }
};
PolicySummary Summarize(const std::string& name, const std::vector<InferenceRecord>& recs);

// The human-readable tables of device_client.
void PrintTableHeader();
void PrintSummaryRow(const std::vector<InferenceRecord>& recs, bool verify);
void PrintPolicyLine(const PolicySummary& s, const std::string& csi);
void PrintComparison(const std::vector<PolicySummary>& all);  // replay: policies side by side

}  // namespace splitinfer

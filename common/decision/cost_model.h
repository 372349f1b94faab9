// Cost model of SPEC sections 1-2: per-unit device time and energy, bytes on the wire, parameter
// bytes and edge time, from a profile JSON written by profile_model or from a hand table, scaled
// to the device's and the edge's speed, weighted into one cost (w_E joules + w_T seconds).
//
// Thread safety: immutable after construction.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <Eigen/Dense>
#include <nlohmann/json.hpp>

#include "common/layer_shape.h"
#include "common/status.h"

namespace splitinfer::decision {

struct UnitProfile {
  std::string name;
  double time_ms = 0.0;            // median time on the profiling machine
  int64_t output_bytes = 0;        // s_l
  int64_t param_bytes = 0;         // w_l
  int64_t flops = -1;              // -1 when unknown
  std::vector<LayerShape> layers;  // kernel shapes when the profile has them (zoo models)
};

// One model as a chain of split units, as the profiler measured it.
struct ModelProfile {
  std::string model;
  int64_t input_bytes = 0;  // s_0
  std::vector<UnitProfile> units;

  int num_units() const { return static_cast<int>(units.size()); }
  // s_k for boundary k in [0, N].
  int64_t BoundaryBytes(int k) const { return k == 0 ? input_bytes : units[k - 1].output_bytes; }
  Status Validate() const;
};

// Parses the profile_model JSON schema ({"model", "input_bytes", "units": [{"index", "name",
// "output_bytes", "param_bytes", "flops", "time_ms_median", "layers", ...}]}). "layers" is
// optional: rows [kind ("conv" | "linear"), in, out, kernel, stride, groups, out_h, out_w], each
// number >= 1 and groups dividing in and out. `source` names the file in errors.
Result<ModelProfile> ParseProfileJson(const std::string& text, const std::string& source);
Result<ModelProfile> LoadProfile(const std::string& path);

enum class EnergyModel { kPower, kCmos };

// One way of sending the tensor at a boundary (issue 6): a codec for the split tensor, measured
// per boundary by codec_fidelity. Option 0 of every cost model is the raw float32 tensor (bytes
// s_k, no coding time, agreement 1); a codec profile adds the others.
struct WireOption {
  std::string name;                    // "fp16", "int8c+zstd", ...
  std::vector<double> bytes;           // per boundary k in [0, N): encoded bytes (mean)
  std::vector<double> encode_ms;       // on the profiling machine (scaled by device_slowdown)
  std::vector<double> decode_ms;       // on the profiling machine (scaled by 1 / edge_speedup)
  std::vector<double> top1_agreement;  // share of inputs whose top-1 class equals float32's
};

// The codec profile of one model: the JSON codec_fidelity writes
// ({"model", "codecs": [{"name", "boundaries": [{"k", "bytes", "encode_ms", "decode_ms",
// "top1_agreement", ...}]}]}). Boundaries a codec does not list are unavailable for it; "fp32"
// entries are skipped (option 0 is built in). `source` names the file in errors.
Result<std::vector<WireOption>> ParseCodecProfile(const nlohmann::json& j, int num_units,
                                                  const std::string& source);
Result<std::vector<WireOption>> LoadCodecProfile(const std::string& path, int num_units);

// Parameters of the cost model. Units: W, Hz, bit/s, seconds, joules.
struct CostOptions {
  double p_tx_w = 0.5;  // uplink transmit power
  double p_rx_w = 0.3;  // power while downloading a placement
  EnergyModel energy_model = EnergyModel::kPower;
  double device_power_w = 2.0;    // kPower: e_l = device_power_w * t_l
  double kappa = 1e-27;           // kCmos: e_l = kappa * f^2 * cycles_l, cycles_l = f * t_l
  double device_freq_hz = 1.5e9;  // kCmos
  double w_energy = 0.0;          // w_E (per joule)
  double w_time = 1.0;            // w_T (per second)
  double device_slowdown = 10.0;  // device time = profile time x slowdown
  double edge_speedup = 1.0;      // edge time = profile time / speedup
  double edge_queue_ms = 0.0;     // added to every offload (server-reported queueing)
  double downlink_bps = 50e6;     // placement download rate
  // Wire options (issue 6): a codec whose top-1 agreement with float32 at a boundary is below
  // min_agreement is not allowed there; fidelity_weight prices the disagreement (cost units per
  // unit of lost agreement) in the stop cost.
  double min_agreement = 0.0;
  double fidelity_weight = 0.0;

  bool IsValid(std::string* error) const;
  // The device's power while it computes (W): device_power_w, or kappa f^3 under kCmos.
  double DevicePowerW() const;
  // Reads the keys above from a JSON object; an unknown key or a wrong type is an error that
  // names the key. Missing keys keep their defaults. Validates the result.
  static Result<CostOptions> FromJson(const nlohmann::json& j);
  static Result<CostOptions> Load(const std::string& path);
  nlohmann::json ToJson() const;
};

// What one inference spent, measured on a live device or modelled by a simulator (seconds,
// joules). The single definition of an inference's realized cost (docs/live.md, "The ledger"):
// the device ledger, the early-exit simulator and the tests price inferences with
// PriceInference, so a live figure and a simulated one are the same sum of the same parts.
struct InferenceSpend {
  double device_s = 0.0;  // running units (heads and encoding included) on the device
  // Energy of that work; NaN: DevicePowerW() x device_s (a simulator passes its per-unit sum).
  double device_j = std::numeric_limits<double>::quiet_NaN();
  double upload_s = 0.0;        // sending the tensor at the split, radio at p_tx_w
  double edge_queue_s = 0.0;    // the request waiting in the edge's queue
  double edge_compute_s = 0.0;  // the edge running the rest (decoding included)
  double download_s = 0.0;      // the rest of the wait for the answer (reply on the wire)
  double penalty = 0.0;         // cost units added as they are (e.g. a wrong answer)
};

struct PricedInference {
  double energy_j = 0.0;   // device_j + p_tx_w upload_s
  double latency_s = 0.0;  // every time part
  double device = 0.0;     // w_E device_j + w_T device_s
  double transfer = 0.0;   // (w_E p_tx_w + w_T) upload_s
  double edge = 0.0;       // w_T (queue + compute + download)
  double penalty = 0.0;
  double total =
      0.0;  // device + transfer + edge + penalty = w_E energy_j + w_T latency_s + penalty
};

PricedInference PriceInference(const CostOptions& options, const InferenceSpend& spend);

// The per-boundary numbers the solvers need, for one profile and one set of options.
class CostModel {
 public:
  // `codecs`: the wire options beyond float32 (empty: float32 only, the cost model of before).
  static Result<CostModel> Create(ModelProfile profile, CostOptions options,
                                  std::vector<WireOption> codecs = {});

  const ModelProfile& profile() const { return profile_; }
  const CostOptions& options() const { return options_; }
  int num_units() const { return profile_.num_units(); }

  double DeviceTime(int unit) const { return device_time_s_(unit - 1); }      // t_l, l in [1, N]
  double DeviceEnergy(int unit) const { return device_energy_j_(unit - 1); }  // e_l
  // C_l = w_E e_l + w_T t_l: the cost of running unit l (1-based) on the device.
  double ContinueCost(int unit) const { return continue_cost_(unit - 1); }
  // T_edge(k): edge time to finish from boundary k (queueing included for k < N).
  double EdgeTime(int boundary) const { return edge_tail_s_(boundary); }
  // a = w_E P_tx + w_T: the weight of one second of uplink transfer.
  double TransferWeight() const { return options_.w_energy * options_.p_tx_w + options_.w_time; }
  double Bits(int boundary) const {
    return 8.0 * static_cast<double>(profile_.BoundaryBytes(boundary));
  }
  // S_k for a float32 transfer lasting `transfer_s` seconds; S_N = 0.
  double StopCostForTransfer(int boundary, double transfer_s) const;
  // S_k(r) = min over allowed wire options c of a 8 s_kc / r + overhead_kc + w_T T_edge(k): the
  // textbook price at a constant rate r (float32 only: a 8 s_k / r + w_T T_edge(k)).
  double StopCostAtRate(int boundary, double rate_bps) const;
  // The option that attains StopCostAtRate.
  int BestOptionAtRate(int boundary, double rate_bps) const;

  // Wire options: 0 is float32; the others come from the codec profile.
  int num_wire_options() const { return static_cast<int>(options_by_index_.size()); }
  const std::string& WireOptionName(int c) const { return options_by_index_[c].name; }
  // Bits on the wire at boundary k with option c.
  double OptionBits(int boundary, int c) const;
  // Whether option c may be used at boundary k (measured there, agreement >= min_agreement).
  bool OptionAllowed(int boundary, int c) const;
  // Coding cost of option c at boundary k: w_T (encode x slowdown + decode / speedup) + w_E
  // (device power x encode x slowdown) + fidelity_weight (1 - agreement).
  double OptionOverhead(int boundary, int c) const;
  // S_k with option c for a transfer lasting `transfer_s` seconds (+inf where not allowed).
  double StopCostForTransfer(int boundary, double transfer_s, int c) const;
  // Sum of C_1..C_k (the device cost of reaching boundary k).
  double CumulativeContinueCost(int boundary) const { return cum_continue_(boundary); }
  // Cost of downloading units 1..M once: (w_E P_rx + w_T) 8 sum w_l / downlink.
  double DownloadCost(int m) const;
  int64_t PlacementBytes(int m) const { return cum_param_bytes_[m]; }

 private:
  CostModel() = default;
  ModelProfile profile_;
  CostOptions options_;
  Eigen::VectorXd device_time_s_, device_energy_j_, continue_cost_, edge_tail_s_, cum_continue_;
  std::vector<int64_t> cum_param_bytes_;
  std::vector<WireOption> options_by_index_;  // [0] = float32
};

}  // namespace splitinfer::decision

// Cost model of SPEC sections 1-2: per-unit device time and energy, bytes on the wire, parameter
// bytes and edge time, from a profile JSON written by profile_model or from a hand table, scaled
// to the device's and the edge's speed, weighted into one cost (w_E joules + w_T seconds).
//
// Thread safety: immutable after construction.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <Eigen/Dense>
#include <nlohmann/json.hpp>

#include "common/status.h"

namespace splitinfer::decision {

struct UnitProfile {
  std::string name;
  double time_ms = 0.0;      // median time on the profiling machine
  int64_t output_bytes = 0;  // s_l
  int64_t param_bytes = 0;   // w_l
  int64_t flops = -1;        // -1 when unknown
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
// "output_bytes", "param_bytes", "flops", "time_ms_median", ...}]}). `source` names the file in
// errors.
Result<ModelProfile> ParseProfileJson(const std::string& text, const std::string& source);
Result<ModelProfile> LoadProfile(const std::string& path);

enum class EnergyModel { kPower, kCmos };

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

  bool IsValid(std::string* error) const;
  // Reads the keys above from a JSON object; an unknown key or a wrong type is an error that
  // names the key. Missing keys keep their defaults. Validates the result.
  static Result<CostOptions> FromJson(const nlohmann::json& j);
  static Result<CostOptions> Load(const std::string& path);
  nlohmann::json ToJson() const;
};

// The per-boundary numbers the solvers need, for one profile and one set of options.
class CostModel {
 public:
  static Result<CostModel> Create(ModelProfile profile, CostOptions options);

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
  // S_k for a transfer lasting `transfer_s` seconds; S_N = 0.
  double StopCostForTransfer(int boundary, double transfer_s) const;
  // S_k(r) = a 8 s_k / r + w_T T_edge(k): the textbook price at a constant rate r.
  double StopCostAtRate(int boundary, double rate_bps) const;
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
};

}  // namespace splitinfer::decision

// device_client's options: one struct, registered on a CLI11 app by AddDeviceClientOptions (every
// option can also come from the --config TOML file; keys are the long option names). The
// programs that wire the device (device_client, tests) share this one parser.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/decision/robust.h"
#include "common/model_zoo.h"
#include "device/split_policy.h"

namespace splitinfer {

struct DeviceClientOptions {
  // The edge(s).
  std::string server;  // HOST:PORT[,HOST:PORT...]; empty: everything runs here
  int connect_timeout_ms = 1000;
  int io_timeout_ms = 30000;
  int reconnect_ms = 500;
  uint32_t deadline_ms = 0;
  bool tls = false;
  std::string tls_ca, tls_server_name, auth_token_file;
  // The model.
  std::string model = "resnet18";
  uint32_t version = 1;
  std::string torchscript;
  ZooOptions zoo;
  int threads = 0;
  // The run.
  std::string split;  // --split K | all (the fixed path)
  bool split_given = false;
  std::string codec = "fp32";
  int requests = 10;
  int in_flight = 1;
  bool verify = false;
  bool json = false;
  uint64_t seed = 1;  // everything random in the run: inputs, episodes, training
  std::string ledger;
  // Live splitting.
  std::string policy;
  std::string channel;
  double time_scale = 1.0;
  std::string csi = "perfect";
  size_t goodput_window = 5;
  double device_slowdown = 1.0;
  double edge_speedup = -1;
  std::string profile, cost_config, codecs;
  double w_energy = -1, w_time = -1, min_agreement = -1, fidelity_weight = -1;
  int states = 16;
  bool states_given = false;
  double grid_ms = 5, window_ms = 20, bandwidth_mhz = 10, fit_fraction = 0.5;
  std::string law = "prefix";
  int segments = 0;
  OnlineSettings online;
  // --policy bi on a series channel with perfect CSI: the robust splitter (split_sim's bi).
  decision::RobustOptions robust;
  uint64_t channel_seed = 1;
  // Placement (the slow loop): on with --store.
  std::string store;
  double placement_period_s = 5.0;
  double placement_wait_s = 60.0;
  double storage_mb = 0.0;
  double inferences_per_version = 1000.0;
  double downlink_mbps = 50.0;
  bool no_downlink_pacing = false;
  bool placement_ola = false;
  // Early exits: on with --exits.
  std::string exits;  // controllers: os,rl,fixed,bi
  std::string weights;
  std::string data = "data/digits/digits.csv.gz";
  uint64_t split_seed = 1;
  std::string stats = "data/exits/digits_branchy_stats.json";
  double accuracy_weight = 0.01;
  int train_steps = -1;
  double rate_scale = 1.0;
  std::string summary_json;

  // Variant selection (with --policy): on with --variants.
  std::string variants;  // NAME=FILE,... (digits_branchy weights; the edge serves them as @1, @2..)
  std::string variant_profiles = "data/variants/digits_variants.json";
  std::string select = "linucb";
  double latency_sensitivity = 0.1;  // QoE points per ms
  double qoe_energy_weight = 0.0;    // QoE points per mJ

  bool placement() const { return !store.empty(); }
};

void AddDeviceClientOptions(CLI::App& app, DeviceClientOptions* o);

}  // namespace splitinfer

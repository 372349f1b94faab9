// A DDPG agent over (exit thresholds, split point), after EdgeML (IoTDI 2021), trained offline on
// the exit-aware simulator (exits.h) with LibTorch, run on the inference path in Eigen.
//
// State (4 numbers, each roughly in [-1, 1]):
//   x0 = clamp(ln(rate / fit mean rate), -4, 4) / 2   the uplink rate observed at boundary 0
//   x1 = 2 acc - 1                                     recent accuracy (EMA of 1[correct])
//   x2 = clamp(lat / lat_ref - 1, -1, 3)               recent latency (EMA), lat_ref = all-local
//   x3 = clamp(energy / en_ref - 1, -1, 3)             recent device energy (EMA), en_ref likewise
// (EdgeML's [bandwidth, accuracy, latency, power]; the EMA weight is DdpgOptions::ema.)
// Action a in [-1, 1]^E (tanh): a_e for e < E-1 is exit e's threshold
//   theta_e = 0.5 + 0.52 (a_e + 1) / 2 in [0.5, 1.02], above 1 = off (the head does not run);
// a_{E-1} is the split point k = min(N, floor((a + 1) / 2 (N + 1))), held for the inference
// (offload at the first boundary >= k where the channel carries bits; k = N: local).
// Reward: -cost / cost_ref of the inference (cost of exits.h, with the accuracy term), cost_ref =
// mean cost of the random warm-up actions. One step = one inference.
//
// Reproducible from a seed: the initial weights come from a private LibTorch CPU generator seeded
// with it (the global generator is saved and restored around the modules' construction, so
// training neither depends on nor moves it; torch::manual_seed is not needed), one intra-op
// thread while training (restored after), and a std::mt19937_64 of our own for episodes,
// samples, exploration noise and replay batches: the same seed gives bitwise the same weights and
// figures.
//
// Thread safety: TrainDdpg sets LibTorch's global intra-op thread count to 1 for its duration;
// do not run it beside other LibTorch work that depends on that count. A DdpgController is used
// by one inference at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "common/decision/exits.h"
#include "common/status.h"

namespace splitinfer::decision {

struct DdpgOptions {
  uint64_t seed = 1;
  int train_steps = 20000;  // inferences simulated on the fit part of the series
  int warmup = 1000;        // uniform random actions before learning starts
  int batch = 64;
  int replay = 50000;  // replay buffer capacity
  int hidden = 64;     // two hidden layers of this width, actor and critic
  double actor_lr = 1e-3;
  double critic_lr = 1e-3;
  double gamma = 0.0;  // see docs/controllers.md: the action does not move the channel
  double tau = 0.01;   // soft target update
  double noise_start = 0.5, noise_end = 0.05;  // Gaussian exploration std, linear decay
  double ema = 0.05;                           // weight of the last inference in the state EMAs
  // Every eval_every steps the noise-free actor is scored on eval_episodes fixed inferences of
  // the fit part; the best snapshot is kept (0: keep the last).
  int eval_every = 1000;
  int eval_episodes = 1000;
  bool IsValid(std::string* error) const;
};

struct DdpgReport {
  double train_s = 0.0;         // wall time of TrainDdpg
  int updates = 0;              // gradient steps
  double best_eval_cost = 0.0;  // mean cost of the kept snapshot on the fit-part check
  int best_eval_step = 0;
  double cost_ref = 0.0;
};

// A small MLP in Eigen (float): ReLU hidden layers, tanh output.
struct EigenMlp {
  std::vector<Eigen::MatrixXf> weight;  // out x in
  std::vector<Eigen::VectorXf> bias;
  int input_size() const { return static_cast<int>(weight.front().cols()); }
  int output_size() const { return static_cast<int>(weight.back().rows()); }
  // out must hold output_size() floats; scratch avoids allocations.
  void Forward(const Eigen::VectorXf& in, Eigen::VectorXf* out, Eigen::VectorXf* scratch_a,
               Eigen::VectorXf* scratch_b) const;
};

// The feature scaling of the state (fixed when the agent is trained).
struct DdpgScaling {
  double mean_rate_bps = 1.0;
  double latency_ref_s = 1.0;
  double energy_ref_j = 1.0;
};

class DdpgController final : public ExitController {
 public:
  DdpgController(int num_units, int num_exits, EigenMlp actor, DdpgScaling scaling, double ema);

  const Thresholds& Begin(const ExitObservation& at0) override;
  bool Offload(const ExitObservation& at) const override { return at.boundary >= k_; }
  void Feedback(const InferenceOutcome& outcome) override;

  // The state vector for an observed rate, from the current EMAs.
  void State(double rate_bps, Eigen::VectorXf* x) const;
  // Decodes an action in [-1, 1]^E into thresholds and a split.
  static void Decode(const float* action, int num_units, int num_exits, Thresholds* t, int* k);
  const EigenMlp& actor() const { return actor_; }
  int planned_boundary() const { return k_; }
  // Resets the EMAs to their initial values (accuracy 1, latency and energy at the references).
  void Reset();

 private:
  int n_, ne_;
  EigenMlp actor_;
  DdpgScaling scaling_;
  double ema_;
  double acc_ = 1.0, lat_ = 0.0, en_ = 0.0;
  Thresholds t_;
  int k_ = 0;
  Eigen::VectorXf x_, y_, a_, b_;
};

// Trains on world.fit paths and world.calib samples; the controller starts from Reset() EMAs.
Result<std::unique_ptr<DdpgController>> TrainDdpg(const ExitWorld& world,
                                                  const DdpgOptions& options, DdpgReport* report);

}  // namespace splitinfer::decision

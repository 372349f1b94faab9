// Early exits on the device (docs/exits.md): a model with exit heads (common/exits), one of the
// controllers of common/decision/exits.h (os: optimal stopping with exits, rl: the DDPG agent,
// fixed: a common threshold and a fixed split, bi: the plain splitter without exits) deciding per
// inference the exit thresholds and, unit by unit, whether to offload; the edge runs the rest of
// the chain with the same thresholds and says which exit answered.
//
// ExitPolicy is a SplitPolicy (device/split_policy.h): the inference loop is DeviceSession's, as
// for every other policy. ExitEpisodes evaluates the controllers on held-out samples the way
// exits_sim does: the same episodes (start step on the scored part of the trace, then a sample,
// from one stream seeded with --seed), each priced live and, beside it, by the simulator for the
// same decisions (ExitModel::RunPlan). The uplink is the episode's channel path (PathUplinkView):
// the device observes the path's rate and state and is charged the path's transfer time.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/decision/exits.h"
#include "common/decision/exits_rl.h"
#include "common/exits/branchy_model.h"
#include "common/exits/digits.h"
#include "device/device_session.h"
#include "device/split_policy.h"

namespace splitinfer {

class ExitPolicy final : public SplitPolicy {
 public:
  ExitPolicy(std::shared_ptr<const exits::BranchyModel> model,
             std::unique_ptr<decision::ExitController> controller,
             std::shared_ptr<const decision::ExitWorld> world);
  const std::string& name() const override { return controller_->name(); }
  // The episode the next inference is (the simulator prices the same decisions on it).
  void SetEpisode(const decision::ExitSample* sample, const decision::ChannelPath* path) {
    sample_ = sample;
    path_ = path;
  }
  Result<std::unique_ptr<InferencePlan>> Begin(const ChannelObservation& at0) override;

 private:
  friend class ExitPlan;
  std::shared_ptr<const exits::BranchyModel> model_;
  std::unique_ptr<decision::ExitController> controller_;
  std::shared_ptr<const decision::ExitWorld> world_;
  const decision::ExitSample* sample_ = nullptr;
  const decision::ChannelPath* path_ = nullptr;
};

struct ExitRunOptions {
  std::string weights;  // digits_branchy weights (train_exits --out)
  std::string data = "data/digits/digits.csv.gz";
  uint64_t split_seed = 1;  // the data split the stats were made on (train_exits --seed)
  std::string stats = "data/exits/digits_branchy_stats.json";
  std::string profile = "data/profiles/digits_branchy.json";
  std::string channel;  // trace:FILE | markov-fit:FILE | gauss-markov:...
  std::string controllers = "os,rl,fixed,bi";
  int episodes = 200;
  uint64_t seed = 1;  // the episode draws and the RL training
  double accuracy_weight = 0.01;
  decision::CostOptions cost;
  decision::ExitWorldOptions world;
  decision::DdpgOptions ddpg;
};

class ExitEpisodes {
 public:
  // Loads the model, the held-out samples (checked against the stats), builds the world and
  // fits the controllers.
  static Result<std::unique_ptr<ExitEpisodes>> Create(const ExitRunOptions& options);
  // Runs `episodes` inferences per controller through a DeviceSession over `client` (null: no
  // edge); every record goes to `sink`. Prints one table row per controller; returns the
  // summary ({"channel", "seed", "accuracy_weight", "controllers": [...]}).
  nlohmann::json Run(const SessionOptions& session, EdgeClient* client,
                     const DeviceSession::Sink& sink);

 private:
  ExitEpisodes() = default;
  ExitRunOptions options_;
  std::shared_ptr<exits::BranchyModel> model_;
  exits::DigitsSplit split_;
  std::shared_ptr<const decision::ExitWorld> world_;
  std::vector<std::unique_ptr<ExitPolicy>> policies_;
  std::vector<nlohmann::json> info_;  // per controller: fitting figures
};

}  // namespace splitinfer

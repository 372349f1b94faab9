// train_exits: trains the branchy digits model (issue 9 part A, docs/exits.md) in LibTorch on
// one thread, prints each exit's held-out accuracy, and writes the per-sample exit statistics
// of the test split and the per-unit profile of the chain.
//
//   train_exits --data data/digits/digits.csv.gz --seed 1 --epochs 15
//               --out models/digits_branchy.pt
//               --stats-out data/exits/digits_branchy_stats.json
//               --profile-out data/profiles/digits_branchy.json
//               --int8-stats-out /tmp/int8_stats.json --int8-profile-out /tmp/int8_profile.json
//
// --int8-stats-out / --int8-profile-out also quantize the trained model to int8 (quantize.h:
// per-channel int8 weights, per-tensor uint8 activations calibrated on the training split, run
// on LibTorch's int8 kernels) and write its held-out statistics and per-unit profile in the same
// schemas (plus a "quantization" key). --seed seeds the weight init, the batch order and the
// train/test split. Every output is optional. Exit codes: 0 ok, 2 bad options, 1 anything else.
#include <ATen/Parallel.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/exits/branchy_model.h"
#include "common/exits/digits.h"
#include "common/exits/quantize.h"
#include "common/exits/stats.h"
#include "common/exits/train.h"

namespace splitinfer {
namespace exits {
namespace {

constexpr int kExitBadOptions = 2;
constexpr int kExitFailure = 1;

struct Options {
  std::string data = "data/digits/digits.csv.gz";
  uint64_t seed = 1;
  TrainOptions train;
  BranchyOptions model;
  double test_fraction = 0.2;
  std::string out, stats_out, profile_out, load;
  std::string int8_stats_out, int8_profile_out;
  std::string int8_engine = "auto";
  int repeats = 50;
  int warmup = 5;
};

Status WriteJson(const std::string& path, const nlohmann::ordered_json& j, int indent) {
  std::error_code ec;
  const std::filesystem::path p(path);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path(), ec);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    f << j.dump(indent) << "\n";
    if (!f) return InternalError("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) return InternalError("cannot rename " + tmp + " to " + path + ": " + ec.message());
  return Status::Ok();
}

int Run(const Options& o) {
  Result<DigitsData> all = LoadDigits(o.data);
  if (!all.ok()) {
    std::cerr << "train_exits: " << all.status() << "\n";
    return all.status().code() == StatusCode::kNotFound ? kExitBadOptions : kExitFailure;
  }
  Result<DigitsSplit> split = SplitDigits(*all, o.seed, o.test_fraction);
  if (!split.ok()) {
    std::cerr << "train_exits: " << split.status() << "\n";
    return kExitBadOptions;
  }
  BranchyOptions mo = o.model;
  mo.seed = o.seed;
  Result<std::shared_ptr<BranchyModel>> built = BuildBranchyModel(mo);
  if (!built.ok()) {
    std::cerr << "train_exits: " << built.status() << "\n";
    return kExitBadOptions;
  }
  BranchyModel& model = **built;
  std::printf("digits: %lld samples, train %lld / test %lld (stratified, seed %llu)\n",
              static_cast<long long>(all->size()), static_cast<long long>(split->train.size()),
              static_cast<long long>(split->test.size()), static_cast<unsigned long long>(o.seed));
  if (!o.load.empty()) {
    Status st = model.LoadWeights(o.load);
    if (!st.ok()) {
      std::cerr << "train_exits: " << st << "\n";
      return kExitFailure;
    }
    std::printf("loaded weights from %s\n", o.load.c_str());
  } else {
    TrainOptions to = o.train;
    to.seed = o.seed;
    Result<TrainReport> report = TrainBranchy(&model, split->train, to);
    if (!report.ok()) {
      std::cerr << "train_exits: " << report.status() << "\n";
      return kExitFailure;
    }
    for (size_t e = 0; e < report->epoch_loss.size(); ++e) {
      std::printf("epoch %2zu  joint loss %.4f\n", e + 1, report->epoch_loss[e]);
    }
    std::printf("trained %d epochs in %.1f s (1 thread)\n", to.epochs, report->seconds);
  }
  Result<std::vector<at::Tensor>> logits = EvaluateExits(model, split->test);
  if (!logits.ok()) {
    std::cerr << "train_exits: " << logits.status() << "\n";
    return kExitFailure;
  }
  std::printf("%4s  %10s  %12s  %10s  %13s\n", "exit", "after unit", "head params", "head FLOPs",
              "test accuracy");
  for (size_t e = 0; e < model.num_exits(); ++e) {
    std::printf("%4zu  %10zu  %12lld  %10lld  %13.4f\n", e, model.exit_after_unit(e),
                static_cast<long long>(model.exit(e).param_bytes),
                static_cast<long long>(model.exit(e).flops),
                Accuracy((*logits)[e], split->test.labels));
  }
  if (!o.out.empty()) {
    std::error_code ec;
    const std::filesystem::path p(o.out);
    if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path(), ec);
    Status st = model.SaveWeights(o.out);
    if (!st.ok()) {
      std::cerr << "train_exits: " << st << "\n";
      return kExitFailure;
    }
    std::printf("weights: %s\n", o.out.c_str());
  }
  std::shared_ptr<Int8BranchyModel> int8;
  Result<std::vector<at::Tensor>> int8_logits = std::vector<at::Tensor>{};
  if (!o.int8_stats_out.empty() || !o.int8_profile_out.empty()) {
    QuantizeOptions qo;
    qo.engine = o.int8_engine;
    Result<std::shared_ptr<Int8BranchyModel>> q = QuantizeBranchy(&model, split->train, qo);
    if (!q.ok()) {
      std::cerr << "train_exits: int8: " << q.status() << "\n";
      return q.status().code() == StatusCode::kInvalidArgument ? kExitBadOptions : kExitFailure;
    }
    int8 = *q;
    int8_logits = EvaluateInt8Exits(*int8, split->test);
    if (!int8_logits.ok()) {
      std::cerr << "train_exits: int8: " << int8_logits.status() << "\n";
      return kExitFailure;
    }
    std::printf("int8 (%s kernels, calibrated on %lld training samples), test accuracy:",
                int8->engine().c_str(), static_cast<long long>(int8->calibration_samples()));
    for (size_t e = 0; e < int8->num_exits(); ++e) {
      std::printf(" exit %zu %.4f", e, Accuracy((*int8_logits)[e], split->test.labels));
    }
    std::printf("\n");
  }
  if (int8) {
    Result<BranchyProfile> p8 = ProfileInt8Branchy(*int8, o.repeats, o.warmup);
    if (!p8.ok()) {
      std::cerr << "train_exits: " << p8.status() << "\n";
      return kExitFailure;
    }
    if (!o.int8_stats_out.empty()) {
      Status st = WriteJson(o.int8_stats_out,
                            Int8ExitStatsJson(model, *int8, *split, o.seed, *int8_logits, *p8), 1);
      if (!st.ok()) {
        std::cerr << "train_exits: " << st << "\n";
        return kExitFailure;
      }
      std::printf("int8 exit statistics: %s\n", o.int8_stats_out.c_str());
    }
    if (!o.int8_profile_out.empty()) {
      Status st = WriteJson(o.int8_profile_out,
                            Int8ProfileJson(model, *int8, *p8, at::get_num_threads()), 2);
      if (!st.ok()) {
        std::cerr << "train_exits: " << st << "\n";
        return kExitFailure;
      }
      std::printf("int8 profile: %s\n", o.int8_profile_out.c_str());
    }
  }
  if (o.stats_out.empty() && o.profile_out.empty()) return 0;
  Result<BranchyProfile> profile = ProfileBranchy(model, o.repeats, o.warmup);
  if (!profile.ok()) {
    std::cerr << "train_exits: " << profile.status() << "\n";
    return kExitFailure;
  }
  if (!o.stats_out.empty()) {
    Status st = WriteJson(o.stats_out, ExitStatsJson(model, *split, o.seed, *logits, *profile), 1);
    if (!st.ok()) {
      std::cerr << "train_exits: " << st << "\n";
      return kExitFailure;
    }
    std::printf("exit statistics: %s\n", o.stats_out.c_str());
  }
  if (!o.profile_out.empty()) {
    Status st = WriteJson(o.profile_out, ProfileJson(model, *profile, at::get_num_threads()), 2);
    if (!st.ok()) {
      std::cerr << "train_exits: " << st << "\n";
      return kExitFailure;
    }
    std::printf("profile: %s\n", o.profile_out.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace exits
}  // namespace splitinfer

int main(int argc, char** argv) {
  splitinfer::exits::Options o;
  CLI::App app{"Trains the branchy digits model and writes its exit statistics and profile."};
  app.add_option("--data", o.data, "digits CSV (.gz or plain)")
      ->default_val("data/digits/digits.csv.gz");
  app.add_option("--seed", o.seed, "seeds the weights, the batch order and the split")
      ->default_val(1);
  app.add_option("--epochs", o.train.epochs, "training epochs")
      ->default_val(o.train.epochs)
      ->check(CLI::Range(0, 10000));
  app.add_option("--batch-size", o.train.batch_size, "mini-batch size")
      ->default_val(o.train.batch_size)
      ->check(CLI::Range(1, 100000));
  app.add_option("--lr", o.train.learning_rate, "Adam learning rate")
      ->default_val(o.train.learning_rate)
      ->check(CLI::PositiveNumber);
  app.add_option("--width", o.model.width, "channels of unit 1 (doubling per unit)")
      ->default_val(o.model.width)
      ->check(CLI::Range(1, 1024));
  app.add_option("--test-fraction", o.test_fraction, "held-out share (stratified)")
      ->default_val(o.test_fraction);
  app.add_option("--load", o.load, "skip training: load these weights (train_exits --out)");
  app.add_option("--out", o.out, "write the trained weights here (torch archive)");
  app.add_option("--stats-out", o.stats_out, "write per-sample exit statistics (JSON) here");
  app.add_option("--profile-out", o.profile_out, "write the per-unit profile (JSON) here");
  app.add_option("--int8-stats-out", o.int8_stats_out,
                 "quantize to int8 and write its per-sample exit statistics (JSON) here");
  app.add_option("--int8-profile-out", o.int8_profile_out,
                 "quantize to int8 and write its per-unit profile (JSON) here");
  app.add_option("--int8-engine", o.int8_engine, "int8 kernels: auto, onednn, qnnpack, fbgemm")
      ->default_val(o.int8_engine);
  app.add_option("--repeats", o.repeats, "profile: timed runs per unit and head")
      ->default_val(o.repeats)
      ->check(CLI::Range(1, 1000000));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : splitinfer::exits::kExitBadOptions;
  }
  at::set_num_threads(1);
  return splitinfer::exits::Run(o);
}

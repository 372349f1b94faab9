// Time per bandit decision (issue 10, target <= 10 us): LinUCB over 12 model variants (16 for the
// whole round: the committed variants file with the int8 ones) with the 20 joint features of
// select_sim, shared and disjoint; Select alone, Select + Sherman-Morrison Update, and the whole
// round (features of the arriving device, Select, Update), each layout with select_sim's tuned
// defaults.
#include <vector>

#include <benchmark/benchmark.h>

#include "common/decision/bandit.h"

namespace sd = splitinfer::decision;

namespace {

std::vector<sd::Variant> Arms(int n) {
  std::vector<sd::Variant> arms(n);
  for (int a = 0; a < n; ++a) {
    arms[a].name = "v" + std::to_string(a);
    arms[a].accuracy = 0.5 + 0.04 * a;
    arms[a].time_ms = 0.02 * (a + 1);
    arms[a].flops = 40000LL * (a + 1) * (a + 1);
  }
  return arms;
}

// A bandit warmed up on 2000 rounds of the population.
sd::LinUcb Warm(const std::vector<sd::Variant>& arms, const std::vector<sd::DeviceContext>& devs,
                bool shared) {
  sd::BanditOptions bo;
  bo.num_arms = static_cast<int>(arms.size());
  bo.dim = sd::kJointDim;
  bo.shared = shared;
  // select_sim's tuned defaults for the layout (the time does not depend on them).
  const sd::SelectSimOptions defaults;
  const sd::PolicyParams& p = shared ? defaults.linucb : defaults.linucb_disjoint;
  bo.alpha = p.alpha;
  bo.ridge = p.ridge;
  bo.reward_offset = p.optimistic ? defaults.qoe.accuracy_scale : 0.0;
  sd::LinUcb b = *sd::LinUcb::Create(bo);
  Eigen::MatrixXd x;
  sd::QoeOptions q;
  for (int t = 0; t < 2000; ++t) {
    const sd::DeviceContext& d = devs[t % devs.size()];
    sd::JointFeatures(d, arms, &x);
    const int a = *b.Select(x);
    (void)b.Update(a, x.row(a).transpose(), sd::ExpectedQoe(arms[a], d, q));
  }
  return b;
}

void BM_Select(benchmark::State& state) {
  const auto arms = Arms(static_cast<int>(state.range(0)));
  const auto devs = sd::SampleDevices(200, 1);
  sd::LinUcb b = Warm(arms, devs, state.range(1) != 0);
  std::vector<Eigen::MatrixXd> xs(devs.size());
  for (size_t i = 0; i < devs.size(); ++i) sd::JointFeatures(devs[i], arms, &xs[i]);
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(b.Select(xs[i]));
    if (++i == xs.size()) i = 0;
  }
}

void BM_SelectUpdate(benchmark::State& state) {
  const auto arms = Arms(static_cast<int>(state.range(0)));
  const auto devs = sd::SampleDevices(200, 1);
  sd::LinUcb b = Warm(arms, devs, state.range(1) != 0);
  std::vector<Eigen::MatrixXd> xs(devs.size());
  for (size_t i = 0; i < devs.size(); ++i) sd::JointFeatures(devs[i], arms, &xs[i]);
  size_t i = 0;
  sd::QoeOptions q;
  for (auto _ : state) {
    const int a = *b.Select(xs[i]);
    benchmark::DoNotOptimize(
        b.Update(a, xs[i].row(a).transpose(), sd::ExpectedQoe(arms[a], devs[i], q)));
    if (++i == xs.size()) i = 0;
  }
}

// The whole round as select_sim runs it: the arriving device's features, Select, Update.
void BM_Round(benchmark::State& state) {
  const auto arms = Arms(static_cast<int>(state.range(0)));
  const auto devs = sd::SampleDevices(200, 1);
  sd::LinUcb b = Warm(arms, devs, state.range(1) != 0);
  Eigen::MatrixXd x;
  size_t i = 0;
  sd::QoeOptions q;
  for (auto _ : state) {
    sd::JointFeatures(devs[i], arms, &x);
    const int a = *b.Select(x);
    benchmark::DoNotOptimize(
        b.Update(a, x.row(a).transpose(), sd::ExpectedQoe(arms[a], devs[i], q)));
    if (++i == devs.size()) i = 0;
  }
}

}  // namespace

// Args: {arms, shared}.
BENCHMARK(BM_Select)->Args({12, 1})->Args({12, 0})->Args({48, 1});
BENCHMARK(BM_SelectUpdate)->Args({12, 1})->Args({12, 0})->Args({48, 1});
BENCHMARK(BM_Round)->Args({12, 1})->Args({12, 0})->Args({16, 1})->Args({16, 0});

BENCHMARK_MAIN();

// Decision time of the early-exit controllers (issue 9) on the inference path: the DDPG actor run
// in Eigen (state features + a 4-64-64-E MLP + decoding), the same actor as a LibTorch forward
// call for comparison, and the table controllers (optimal stopping with exits) of Begin + one
// Offload. Reports numbers only; docs/controllers.md records them.
#include <random>

#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "common/decision/exits.h"
#include "common/decision/exits_rl.h"

namespace sd = splitinfer::decision;

namespace {

constexpr int kUnits = 5, kExits = 4;

sd::EigenMlp RandomActor(int hidden) {
  std::mt19937_64 rng(1);
  std::normal_distribution<float> g(0.0f, 0.3f);
  sd::EigenMlp m;
  const int sizes[4] = {4, hidden, hidden, kExits};
  for (int i = 0; i < 3; ++i) {
    Eigen::MatrixXf w(sizes[i + 1], sizes[i]);
    for (int r = 0; r < w.rows(); ++r)
      for (int c = 0; c < w.cols(); ++c) w(r, c) = g(rng);
    Eigen::VectorXf b(sizes[i + 1]);
    for (int r = 0; r < b.size(); ++r) b(r) = g(rng);
    m.weight.push_back(w);
    m.bias.push_back(b);
  }
  return m;
}

// One RL decision at boundary 0 (features, Eigen forward, decoding) and one Offload lookup.
void BM_RlDecisionEigen(benchmark::State& state) {
  const int hidden = static_cast<int>(state.range(0));
  sd::DdpgController c(kUnits, kExits, RandomActor(hidden), sd::DdpgScaling{2e6, 0.05, 0.1}, 0.05);
  double rate = 1e6;
  for (auto _ : state) {
    const sd::Thresholds& t = c.Begin(sd::ExitObservation{0, 3, rate});
    benchmark::DoNotOptimize(t.data());
    benchmark::DoNotOptimize(c.Offload(sd::ExitObservation{1, 3, rate}));
    rate = rate * 1.0001 + 1.0;
  }
}
BENCHMARK(BM_RlDecisionEigen)->Arg(64)->Arg(128);

// The same actor as one LibTorch forward call (batch 1), one intra-op thread.
void BM_RlDecisionLibTorch(benchmark::State& state) {
  const int hidden = static_cast<int>(state.range(0));
  at::set_num_threads(1);
  torch::manual_seed(1);
  torch::nn::Sequential actor(torch::nn::Linear(4, hidden), torch::nn::ReLU(),
                              torch::nn::Linear(hidden, hidden), torch::nn::ReLU(),
                              torch::nn::Linear(hidden, kExits), torch::nn::Tanh());
  torch::NoGradGuard g;
  torch::Tensor x = torch::rand({1, 4});
  for (auto _ : state) {
    torch::Tensor y = actor->forward(x);
    benchmark::DoNotOptimize(y.data_ptr<float>());
  }
}
BENCHMARK(BM_RlDecisionLibTorch)->Arg(64)->Arg(128);

// The optimal-stopping controller: Begin (per-state thresholds) + one Offload table load.
void BM_OsDecisionTable(benchmark::State& state) {
  const int k = 16;
  std::vector<sd::Thresholds> th(k, sd::Thresholds(kExits, 0.9));
  std::vector<std::vector<uint8_t>> stop(k, std::vector<uint8_t>(kUnits * k, 0));
  sd::TableExitController c("os", k, th, stop);
  int s = 0;
  for (auto _ : state) {
    const sd::Thresholds& t = c.Begin(sd::ExitObservation{0, s, 1e6});
    benchmark::DoNotOptimize(t.data());
    benchmark::DoNotOptimize(c.Offload(sd::ExitObservation{2, s, 1e6}));
    s = (s + 5) & (k - 1);
  }
}
BENCHMARK(BM_OsDecisionTable);

}  // namespace

BENCHMARK_MAIN();

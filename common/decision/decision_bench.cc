// Speed of the decision core (issue 4): one run-time decision, BI solves, the placement plan.
// Reports numbers only; docs/benchmarks.md ("Decision core") records them.
#include <random>
#include <string>

#include <benchmark/benchmark.h>

#include "common/decision/placement.h"
#include "common/decision/robust.h"
#include "common/decision/simulator.h"
#include "common/decision/stopping.h"
#include "common/decision/zoo_profiles.h"

namespace sd = splitinfer::decision;

namespace {

sd::CostModel MlpCost(int layers) {
  sd::AnalyticProfileOptions ao;
  ao.mlp_layers = layers;
  return *sd::CostModel::Create(*sd::AnalyticProfile("mlp", ao), sd::CostOptions());
}

sd::ChannelLaw Rayleigh(int k) {
  sd::RayleighOptions ro;
  ro.num_states = k;
  return *sd::DiscretizeRayleigh(ro);
}

// A Markov law on the Rayleigh states: a sticky random chain.
sd::ChannelLaw Markov(int k) {
  sd::ChannelLaw law = Rayleigh(k);
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> u(0, 1);
  law.iid = false;
  law.epoch_s = 1.0;  // one matrix per unit
  law.transition = Eigen::MatrixXd(k, k);
  for (int i = 0; i < k; ++i) {
    for (int j = 0; j < k; ++j) law.transition(i, j) = u(rng) + (i == j ? 5.0 * k : 0.0);
    law.transition.row(i) /= law.transition.row(i).sum();
  }
  return law;
}

std::vector<Eigen::MatrixXd> SameSteps(const sd::ChannelLaw& law, int h) {
  return std::vector<Eigen::MatrixXd>(h, law.transition);
}

// 4096 Rayleigh-faded Shannon rates (10 MHz, 10 dB): the observations the decision benchmarks
// walk through so that no branch is predictable.
std::vector<double> RayleighRates() {
  std::mt19937_64 rng(7);
  std::exponential_distribution<double> h(1.0);
  std::vector<double> rates(4096);
  for (double& r : rates) r = sd::ShannonRate(10e6, 10.0, h(rng));
  return rates;
}

// One decision: map an observed rate to a state (binary search over K-1 edges) and look the
// table up. The loop walks pseudo-random (boundary, rate) pairs so no branch is predictable.
void BM_Decision(benchmark::State& state) {
  const int k = static_cast<int>(state.range(0));
  const sd::CostModel cost = MlpCost(50);
  const sd::ChannelLaw law = Rayleigh(k);
  const sd::StoppingProblem p = *sd::BuildProblem(cost, law, 50);
  auto policy = sd::MakeBiPolicy(p);
  const std::vector<double> rates = RayleighRates();
  size_t i = 0;
  for (auto _ : state) {
    const double r = rates[i & 4095];
    const int boundary = static_cast<int>(i % 50);
    benchmark::DoNotOptimize(policy->StopAt(boundary, law.StateOf(r)));
    ++i;
  }
}
BENCHMARK(BM_Decision)->Arg(16)->Arg(1024);

// The table lookup alone, through the StoppingPolicy interface (a virtual call).
void BM_DecisionLookupVirtual(benchmark::State& state) {
  const sd::CostModel cost = MlpCost(50);
  const sd::ChannelLaw law = Rayleigh(1024);
  const sd::StoppingProblem p = *sd::BuildProblem(cost, law, 50);
  std::unique_ptr<sd::StoppingPolicy> policy = sd::MakeBiPolicy(p);
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        policy->Stop(static_cast<int>(i % 50), static_cast<int>((i * 2654435761u) & 1023), 0));
    ++i;
  }
}
BENCHMARK(BM_DecisionLookupVirtual);

// The robust splitter's decision: the snapshot an inference takes when it begins (one atomic
// shared_ptr copy per inference, outside the per-unit loop), then a state map and the
// incumbent's table lookup per boundary, as BM_Decision.
void BM_RobustDecision(benchmark::State& state) {
  const sd::CostModel cost = MlpCost(50);
  const sd::ChannelLaw law = Rayleigh(16);
  auto p = std::make_shared<const sd::StoppingProblem>(*sd::BuildProblem(cost, law, 50));
  sd::RobustSplitter robust(p, nullptr, sd::RobustOptions{});
  std::shared_ptr<const sd::RobustSplitter::Snapshot> snap = robust.snapshot();
  const std::vector<double> rates = RayleighRates();
  size_t i = 0;
  for (auto _ : state) {
    const sd::StoppingPolicy& policy = *snap->chosen().policy;
    const double r = rates[i & 4095];
    benchmark::DoNotOptimize(policy.Stop(static_cast<int>(i % 50), law.StateOf(r), 0));
    ++i;
  }
}
BENCHMARK(BM_RobustDecision);

// One re-fit of the robust splitter's Markov candidates (both states, BI and greedy) on a 60 s
// window of a 5 ms Gauss-Markov series, ResNet-18's analytic profile at 10x: what runs in the
// background every refit_every_s.
void BM_RobustRefit(benchmark::State& state) {
  sd::CostOptions co;
  co.device_slowdown = 10;
  const sd::CostModel cost = *sd::CostModel::Create(*sd::AnalyticProfile("resnet18"), co);
  sd::GaussMarkovOptions g;
  g.dt_s = 0.005;
  g.duration_s = 60;
  const sd::RateSeries window = *sd::GenerateGaussMarkov(g);
  sd::SeriesFitOptions fit;
  const sd::SeriesModel first = *sd::SeriesModel::Fit(cost, window, fit, "bench");
  sd::RobustSplitter robust(std::make_shared<const sd::StoppingProblem>(first.problem()),
                            std::make_shared<const sd::SeriesModel>(first), sd::RobustOptions{});
  for (auto _ : state) benchmark::DoNotOptimize(robust.Refit(cost, window, fit).ok());
}
BENCHMARK(BM_RobustRefit)->Unit(benchmark::kMillisecond);

void BM_BiSolveIid(benchmark::State& state) {
  const int k = static_cast<int>(state.range(0));
  const sd::StoppingProblem p = *sd::BuildProblem(MlpCost(50), Rayleigh(k), 50);
  for (auto _ : state) benchmark::DoNotOptimize(sd::SolveBackwardInduction(p).expected_cost);
}
BENCHMARK(BM_BiSolveIid)->Arg(1024)->Unit(benchmark::kMicrosecond);

void BM_BiSolveMarkov(benchmark::State& state) {
  const int k = static_cast<int>(state.range(0));
  const sd::ChannelLaw law = Markov(k);
  const sd::StoppingProblem p = *sd::BuildProblem(MlpCost(50), law, 50, SameSteps(law, 50));
  for (auto _ : state) benchmark::DoNotOptimize(sd::SolveBackwardInduction(p).expected_cost);
}
BENCHMARK(BM_BiSolveMarkov)->Arg(64)->Unit(benchmark::kMicrosecond);

void BM_OlaTableIid(benchmark::State& state) {
  const sd::StoppingProblem p = *sd::BuildProblem(MlpCost(50), Rayleigh(1024), 50);
  for (auto _ : state) benchmark::DoNotOptimize(sd::MakeOlaPolicy(p)->table().data());
}
BENCHMARK(BM_OlaTableIid)->Unit(benchmark::kMicrosecond);

// Placement over every M = 0..50 (51 problems built and solved).
void BM_PlacementPlan(benchmark::State& state) {
  const bool markov = state.range(0) != 0;
  const int k = static_cast<int>(state.range(1));
  const sd::CostModel cost = MlpCost(50);
  const sd::ChannelLaw law = markov ? Markov(k) : Rayleigh(k);
  sd::StoppingProblem full = *sd::BuildProblem(
      cost, law, 50, markov ? SameSteps(law, 50) : std::vector<Eigen::MatrixXd>{});
  sd::PlacementPlanner planner(cost, std::move(full), sd::ForcedStopRows(cost, law));
  sd::PlacementOptions po;
  po.method = state.range(2) ? sd::PlacementMethod::kOneStageLookAhead
                             : sd::PlacementMethod::kBackwardInduction;
  for (auto _ : state) benchmark::DoNotOptimize(planner.Plan(po)->best_m);
}
BENCHMARK(BM_PlacementPlan)
    ->ArgNames({"markov", "K", "ola"})
    ->Args({0, 64, 0})
    ->Args({0, 1024, 0})
    ->Args({1, 64, 0})
    ->Args({0, 64, 1})
    ->Unit(benchmark::kMillisecond);

// What the placement agent pays per re-plan (issue 7): from a channel law to M*, for zoo models
// and the 100-layer equal-width MLP, K = 16, BI. rebuild:0 is the fast path (BuildProblem of
// horizon N + ForcedStopRows, then every M by truncation, all inside the loop); rebuild:1 builds
// the problem of every M afresh (PlacementPlanner(cost, law)). The Markov law steps every 5 ms,
// so each unit's matrix is a real power of the transition.
const char* const kPlacementModels[] = {"resnet18", "vgg16", "mlp"};

void BM_PlacementPlanZoo(benchmark::State& state) {
  const std::string model = kPlacementModels[state.range(0)];
  const bool markov = state.range(1) != 0, rebuild = state.range(2) != 0;
  constexpr int kStates = 16;
  sd::AnalyticProfileOptions ao;
  ao.mlp_layers = 100;
  const sd::CostModel cost =
      *sd::CostModel::Create(*sd::AnalyticProfile(model, ao), sd::CostOptions());
  sd::ChannelLaw law = markov ? Markov(kStates) : Rayleigh(kStates);
  law.epoch_s = 0.005;
  sd::PlacementOptions po;
  po.inferences_per_version = 1000;
  int best_m = 0;
  for (auto _ : state) {
    if (rebuild) {
      sd::PlacementPlanner planner(cost, law);
      best_m = planner.Plan(po)->best_m;
    } else {
      sd::PlacementPlanner planner(cost, *sd::BuildProblem(cost, law, cost.num_units()),
                                   sd::ForcedStopRows(cost, law));
      best_m = planner.Plan(po)->best_m;
    }
    benchmark::DoNotOptimize(best_m);
  }
  state.SetLabel(model + " N=" + std::to_string(cost.num_units()) +
                 " M*=" + std::to_string(best_m));
}
BENCHMARK(BM_PlacementPlanZoo)
    ->ArgNames({"model", "markov", "rebuild"})
    ->ArgsProduct({{0, 1, 2}, {0, 1}, {0, 1}})
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

// The robust splitter live (device/robust_decision.h) without a network: the device feeds CSI,
// takes a table per inference and reports each completed inference; the source learns from the
// paths and moves off the textbook table where the channel stops behaving like its prefix law.
#include "device/robust_decision.h"

#include <random>
#include <string>

#include <gtest/gtest.h>

#include "common/decision/simulator.h"
#include "common/decision/zoo_profiles.h"
#include "device/inference_record.h"
#include "device/live_decision.h"

namespace splitinfer {
namespace {

namespace sd = decision;

// 600 s at 5 ms: the first half draws a poor or a good rate every 20 ms, the second holds each
// for 2-4 s (the case of tests/decision/robust_test.cc, where split_sim's bi moves off the
// textbook table).
sd::RateSeries ChangingSeries() {
  sd::RateSeries s;
  s.name = "changing";
  s.dt_s = 0.005;
  std::mt19937_64 rng(11);
  std::bernoulli_distribution good(0.5);
  std::uniform_real_distribution<double> hold(2.0, 4.0);
  while (s.size() < 60000) {
    const double rate = good(rng) ? 40e6 : 2e6;
    for (int i = 0; i < 4; ++i) s.rate_bps.push_back(rate);
  }
  while (s.size() < 120000) {
    const double rate = good(rng) ? 40e6 : 2e6;
    const size_t steps = static_cast<size_t>(hold(rng) / s.dt_s);
    for (size_t i = 0; i < steps; ++i) s.rate_bps.push_back(rate);
  }
  s.rate_bps.resize(120000);
  return s;
}

TEST(RobustDecisionTest, LearnsFromCompletedInferencesAndLeavesTheTextbookTable) {
  sd::CostOptions co;
  co.device_slowdown = 10;
  const sd::CostModel cost = *sd::CostModel::Create(*sd::AnalyticProfile("resnet18"), co);
  const sd::RateSeries series = ChangingSeries();
  const size_t cut = series.size() / 2;
  const sd::ScoredSeries scored(ToWallTime(series, 1.0), 4, 0);
  TableContext ctx;
  ctx.option_codecs = {CodecSpec()};
  ctx.cost_model = &cost;
  ctx.scored = &scored;
  ctx.emulated = &series;
  LiveDecisionOptions lo;
  lo.num_states = 16;
  Result<std::unique_ptr<DecisionSource>> source = MakeRobustSource(
      cost, lo, /*markov=*/false, sd::RobustOptions{}, ctx, series.Slice(0, cut), series);
  ASSERT_TRUE(source.ok()) << source.status();
  std::string first, last;
  int with_candidate = 0;
  // One inference every 100 ms of the scored half, each completing before the next begins.
  for (double t = static_cast<double>(cut) * series.dt_s; t < series.duration_s() - 1.0; t += 0.1) {
    (*source)->Feed(t);
    std::shared_ptr<const LiveDecision> d = (*source)->At(t);
    ASSERT_NE(d, nullptr);
    ASSERT_EQ(d->horizon(), static_cast<int>(cost.num_units()));
    InferenceRecord r;
    r.start_s = t;
    (*source)->Completed(&r);
    ASSERT_TRUE(r.policy_fields.contains("candidate"));
    const std::string name = r.policy_fields["candidate"].get<std::string>();
    if (first.empty()) first = name;
    last = name;
    ++with_candidate;
  }
  EXPECT_GT(with_candidate, 2500);
  EXPECT_EQ(first, "bi-textbook");  // it starts from the textbook table...
  EXPECT_NE(last, "bi-textbook");   // ...and the paths move it off
}

TEST(RobustDecisionTest, RefusesAPlacedHorizon) {
  sd::CostOptions co;
  const sd::CostModel cost = *sd::CostModel::Create(*sd::AnalyticProfile("resnet18"), co);
  const sd::RateSeries series = ChangingSeries();
  const sd::ScoredSeries scored(series, 4, 0);
  TableContext ctx;
  ctx.cost_model = &cost;
  ctx.scored = &scored;
  ctx.emulated = &series;
  LiveDecisionOptions lo;
  lo.horizon = 3;
  EXPECT_FALSE(MakeRobustSource(cost, lo, false, sd::RobustOptions{}, ctx,
                                series.Slice(0, series.size() / 2), series)
                   .ok());
}

}  // namespace
}  // namespace splitinfer

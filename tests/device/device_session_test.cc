// DeviceSession, the device's one inference loop, without an edge: what the plan decides is what
// runs, one plan per inference (a policy's swap never reaches an inference half-way), early exits
// answer on the device, the local finish is exact, failures to finish are records (not crashes),
// and each record is priced by decision::PriceInference.
#include "device/device_session.h"

#include <memory>
#include <vector>

#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/model_zoo.h"

namespace splitinfer {
namespace {

std::shared_ptr<const SplitModel> Mlp(uint32_t version = 1) {
  ZooOptions z;
  z.mlp_width = 32;
  z.mlp_layers = 5;
  auto m = BuildZooModel("mlp", version, z);
  EXPECT_TRUE(m.ok()) << m.status();
  return *m;
}

InferenceInput Input(const SplitModel& m, uint64_t seed) {
  torch::manual_seed(seed);
  std::vector<int64_t> shape{1};
  shape.insert(shape.end(), m.input_shape().begin(), m.input_shape().end());
  InferenceInput in;
  in.tensor = torch::randn(shape);
  return in;
}

at::Tensor Whole(const SplitModel& m, const at::Tensor& x) {
  c10::InferenceMode guard;
  return m.RunRange(x, 0, m.num_units());
}

class RateUplink final : public UplinkView {
 public:
  double rate = 1e6;
  int observed = 0;
  ChannelObservation Observe(int boundary) override {
    ++observed;
    ChannelObservation o;
    o.boundary = boundary;
    o.rate_bps = rate;
    return o;
  }
  double UploadSeconds(int, double, double wall_s) override { return wall_s; }
};

// A plan that stops at `stop_at` (past the horizon: never), optionally exits after unit
// `exit_after` with the tensor there, and records what the loop asked.
class ScriptedPlan final : public InferencePlan {
 public:
  ScriptedPlan(std::shared_ptr<const SplitModel> model, int stop_at, int exit_after, int horizon,
               std::vector<int>* asked)
      : model_(std::move(model)),
        stop_at_(stop_at),
        exit_after_(exit_after),
        horizon_(horizon),
        asked_(asked) {}
  const SplitModel& model() const override { return *model_; }
  int horizon() const override { return horizon_; }
  bool Stop(ChannelObservation* o) override {
    asked_->push_back(o->boundary);
    o->state = 7;
    return o->boundary == stop_at_;
  }
  CodecSpec CodecAtStop(const ChannelObservation&) const override { return CodecSpec(); }
  std::optional<LocalAnswer> TryExit(int boundary, const at::Tensor& x) override {
    if (boundary != exit_after_) return std::nullopt;
    return LocalAnswer{x * 2, 0, boundary};
  }
  void Complete(InferenceRecord* r) override { r->policy_fields["completed"] = true; }

 private:
  std::shared_ptr<const SplitModel> model_;
  int stop_at_, exit_after_, horizon_;
  std::vector<int>* asked_;
};

class ScriptedPolicy final : public SplitPolicy {
 public:
  std::shared_ptr<const SplitModel> model = Mlp();
  int stop_at = 99, exit_after = -1, horizon = -1;
  int begins = 0;
  std::vector<int> asked;
  const std::string& name() const override { return name_; }
  Result<std::unique_ptr<InferencePlan>> Begin(const ChannelObservation&) override {
    ++begins;
    const int h = horizon >= 0 ? horizon : static_cast<int>(model->num_units());
    return std::unique_ptr<InferencePlan>(
        std::make_unique<ScriptedPlan>(model, stop_at, exit_after, h, &asked));
  }

 private:
  std::string name_ = "scripted";
};

struct Collected {
  std::vector<InferenceRecord> records;
  DeviceSession::Sink sink() {
    return [this](InferenceRecord&& r) { records.push_back(std::move(r)); };
  }
};

TEST(DeviceSessionTest, FixedSplitWithoutAnEdgeFinishesHereExactly) {
  auto model = Mlp();
  Collected c;
  DeviceSession session(SessionOptions{}, nullptr, c.sink());
  FixedSplitPolicy policy(model, 2, CodecSpec());
  InferenceInput in = Input(*model, 1);
  const at::Tensor want = Whole(*model, in.tensor);
  ASSERT_TRUE(session.Submit(policy, nullptr, in).ok());
  session.Drain();
  ASSERT_EQ(c.records.size(), 1u);
  const InferenceRecord& r = c.records[0];
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.boundary, 2);
  EXPECT_EQ(r.completed_on, "fallback_local");
  ASSERT_TRUE(r.fallback.has_value());
  EXPECT_NE(r.fallback->find("no edge server configured"), std::string::npos) << *r.fallback;
  EXPECT_TRUE(torch::equal(r.output, want));
  EXPECT_FALSE(r.priced_set);  // no cost options: times only
  EXPECT_EQ(r.policy, "fixed:2");
  EXPECT_EQ(r.version, 1u);
  EXPECT_EQ(r.m, static_cast<int>(model->num_units()));
}

TEST(DeviceSessionTest, ThePlanDecidesEveryBoundaryAndOnePlanServesOneInference) {
  ScriptedPolicy policy;
  const int n = static_cast<int>(policy.model->num_units());
  RateUplink uplink;
  Collected c;
  decision::CostOptions cost;
  SessionOptions so;
  so.cost = &cost;
  DeviceSession session(so, nullptr, c.sink());
  // Never stops before N: the loop asks at 0..N (N is the horizon: the stop there is forced).
  ASSERT_TRUE(session.Submit(policy, &uplink, Input(*policy.model, 2)).ok());
  ASSERT_EQ(c.records.size(), 1u);
  EXPECT_EQ(policy.begins, 1);
  std::vector<int> want;
  for (int l = 0; l <= n; ++l) want.push_back(l);
  EXPECT_EQ(policy.asked, want);
  const InferenceRecord& r = c.records[0];
  EXPECT_EQ(r.boundary, n);
  EXPECT_EQ(r.completed_on, "local");
  EXPECT_FALSE(r.fallback.has_value());
  ASSERT_EQ(r.states.size(), static_cast<size_t>(n + 1));
  EXPECT_EQ(r.states[0]["state"], 7);
  EXPECT_TRUE(r.policy_fields.value("completed", false));
  // Priced by the one formula: all local, so the device part is the whole cost.
  ASSERT_TRUE(r.priced_set);
  EXPECT_GT(r.spend.device_s, 0.0);
  EXPECT_DOUBLE_EQ(r.priced.total, decision::PriceInference(cost, r.spend).total);
  EXPECT_DOUBLE_EQ(r.priced.transfer, 0.0);
  EXPECT_DOUBLE_EQ(r.priced.edge, 0.0);
  // Stops at 3: the device ran units 1..3, then (no edge) finished 4..N itself.
  policy.asked.clear();
  policy.stop_at = 3;
  InferenceInput in = Input(*policy.model, 3);
  const at::Tensor whole = Whole(*policy.model, in.tensor);
  ASSERT_TRUE(session.Submit(policy, &uplink, in).ok());
  EXPECT_EQ(policy.begins, 2);
  EXPECT_EQ(policy.asked, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(c.records[1].boundary, 3);
  EXPECT_EQ(c.records[1].completed_on, "fallback_local");
  EXPECT_TRUE(torch::equal(c.records[1].output, whole));
}

TEST(DeviceSessionTest, AnExitAnswersOnTheDevice) {
  ScriptedPolicy policy;
  policy.exit_after = 2;
  RateUplink uplink;
  Collected c;
  DeviceSession session(SessionOptions{}, nullptr, c.sink());
  InferenceInput in = Input(*policy.model, 4);
  at::Tensor at2;
  {
    c10::InferenceMode guard;
    at2 = policy.model->RunRange(in.tensor, 0, 2);
  }
  ASSERT_TRUE(session.Submit(policy, &uplink, in).ok());
  ASSERT_EQ(c.records.size(), 1u);
  const InferenceRecord& r = c.records[0];
  EXPECT_EQ(r.completed_on, "device_exit");
  EXPECT_EQ(r.exit, 0);
  EXPECT_EQ(r.exit_after_unit, 2);
  EXPECT_EQ(r.boundary, 2);
  EXPECT_TRUE(torch::equal(r.output, at2 * 2));
  EXPECT_EQ(policy.asked, (std::vector<int>{0, 1}));  // nothing asked after the exit
}

// A device holding units 1..M only cannot finish beyond M without an edge: the record says so
// (ok = false), nothing throws, and the session goes on.
TEST(DeviceSessionTest, UnitsNotHeldMakeAFailedRecordNotACrash) {
  ScriptedPolicy policy;
  policy.horizon = 2;  // stops at 2 at the latest
  Collected c;
  DeviceSession session(SessionOptions{}, nullptr, c.sink());
  class Prefix final : public SplitModel {
   public:
    explicit Prefix(std::shared_ptr<const SplitModel> inner)
        : SplitModel(inner->name(), inner->version()), inner_(std::move(inner)) {
      units_ = inner_->units();
      for (size_t k = 0; k <= inner_->num_units(); ++k)
        boundary_shapes_.push_back(inner_->boundary_shape(k));
    }
    at::Tensor RunRange(const at::Tensor& x, size_t from, size_t to) const override {
      if (to > 2) throw std::out_of_range("unit " + std::to_string(to) + " is not stored here");
      return inner_->RunRange(x, from, to);
    }
    void To(const at::Device&) override {}

   private:
    std::shared_ptr<const SplitModel> inner_;
  };
  policy.model = std::make_shared<Prefix>(Mlp());
  ASSERT_TRUE(session.Submit(policy, nullptr, Input(*policy.model, 5)).ok());
  ASSERT_TRUE(session.Submit(policy, nullptr, Input(*policy.model, 6)).ok());
  ASSERT_EQ(c.records.size(), 2u);
  for (const InferenceRecord& r : c.records) {
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.boundary, 2);
    ASSERT_TRUE(r.fallback.has_value());
    EXPECT_NE(r.fallback->find("not stored here"), std::string::npos) << *r.fallback;
  }
  EXPECT_NE(c.records[0].id, c.records[1].id);
}

// A policy with nothing to run (no version placed yet) starts no inference.
TEST(DeviceSessionTest, APolicyWithNothingToRunStartsNothing) {
  class Empty final : public SplitPolicy {
   public:
    const std::string& name() const override { return name_; }
    Result<std::unique_ptr<InferencePlan>> Begin(const ChannelObservation&) override {
      return UnavailableError("nothing placed");
    }

   private:
    std::string name_ = "empty";
  } policy;
  Collected c;
  DeviceSession session(SessionOptions{}, nullptr, c.sink());
  const uint64_t id = session.next_id();
  InferenceInput in;
  in.tensor = torch::zeros({1, 4});
  const Status st = session.Submit(policy, nullptr, in);
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(c.records.empty());
  EXPECT_EQ(session.next_id(), id);
}

}  // namespace
}  // namespace splitinfer

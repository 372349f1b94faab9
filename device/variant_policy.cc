#include "device/variant_policy.h"

namespace splitinfer {

// The chosen variant's plan, with the bandit's feedback when the inference completes.
class VariantPlan final : public InferencePlan {
 public:
  VariantPlan(VariantPolicy& policy, int arm, std::unique_ptr<InferencePlan> inner)
      : policy_(policy), arm_(arm), inner_(std::move(inner)) {}
  const SplitModel& model() const override { return inner_->model(); }
  int horizon() const override { return inner_->horizon(); }
  bool Stop(ChannelObservation* o) override { return inner_->Stop(o); }
  CodecSpec CodecAtStop(const ChannelObservation& stop) const override {
    return inner_->CodecAtStop(stop);
  }
  const std::vector<double>& exit_thresholds() const override { return inner_->exit_thresholds(); }
  std::optional<LocalAnswer> TryExit(int boundary, const at::Tensor& x) override {
    return inner_->TryExit(boundary, x);
  }
  Result<LocalAnswer> FinishHere(const at::Tensor& x, int from) override {
    return inner_->FinishHere(x, from);
  }
  uint32_t version() const override { return inner_->version(); }
  int placed_units() const override { return inner_->placed_units(); }
  void Complete(InferenceRecord* r) override {
    inner_->Complete(r);
    const double qoe = policy_.Qoe(*r);
    r->policy_fields["variant"] = policy_.arms_[static_cast<size_t>(arm_)].info.name;
    r->policy_fields["qoe"] = qoe;
    const Status st = policy_.bandit_->Update(arm_, policy_.features_.row(arm_).transpose(), qoe);
    r->policy_fields["bandit_updated"] = st.ok();
  }

 private:
  VariantPolicy& policy_;
  int arm_;
  std::unique_ptr<InferencePlan> inner_;
};

Result<std::unique_ptr<VariantPolicy>> VariantPolicy::Create(
    std::vector<LiveVariant> arms, const decision::DeviceContext& context,
    const decision::QoeOptions& qoe, const decision::BanditOptions& bandit) {
  if (arms.empty()) return InvalidArgumentError("no variants");
  std::string error;
  if (!context.IsValid(&error)) return InvalidArgumentError("device context: " + error);
  if (!qoe.IsValid(&error)) return InvalidArgumentError("QoE: " + error);
  std::unique_ptr<VariantPolicy> p(new VariantPolicy());
  p->name_ =
      std::string(bandit.policy == decision::BanditPolicy::kLinUcb ? "linucb" : "egreedy") + "(";
  for (LiveVariant& a : arms) {
    p->name_ += (p->infos_.empty() ? "" : ",") + a.info.name;
    p->infos_.push_back(a.info);
  }
  p->name_ += ")";
  p->arms_ = std::move(arms);
  p->context_ = context;
  p->qoe_ = qoe;
  decision::JointFeatures(context, p->infos_, &p->features_);
  decision::BanditOptions bo = bandit;
  bo.num_arms = static_cast<int>(p->arms_.size());
  bo.dim = static_cast<int>(p->features_.cols());
  Result<decision::LinUcb> b = decision::LinUcb::Create(bo);
  if (!b.ok()) return b.status();
  p->bandit_ = std::make_unique<decision::LinUcb>(std::move(*b));
  return p;
}

double VariantPolicy::Qoe(const InferenceRecord& r) const {
  const double latency_ms = r.priced_set ? r.priced.latency_s * 1e3 : r.total_ms;
  const double energy_mj = r.priced_set ? r.priced.energy_j * 1e3 : 0.0;
  return qoe_.accuracy_scale * (r.ok && r.correct ? 1.0 : 0.0) -
         context_.latency_sensitivity * latency_ms - context_.energy_weight * energy_mj;
}

Result<std::unique_ptr<InferencePlan>> VariantPolicy::Begin(const ChannelObservation& at0) {
  Result<int> arm = bandit_->Select(features_);
  if (!arm.ok()) return arm.status();
  Result<std::unique_ptr<InferencePlan>> inner =
      arms_[static_cast<size_t>(*arm)].policy->Begin(at0);
  if (!inner.ok()) return inner.status();
  return std::unique_ptr<InferencePlan>(
      std::make_unique<VariantPlan>(*this, *arm, std::move(*inner)));
}

}  // namespace splitinfer

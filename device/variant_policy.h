// Model-variant selection on the device (docs/selection.md): several variants of one task on the
// edge (e.g. widths of digits_branchy served as digits_branchy@1, @2, ...), and per inference
// the device picks one from its context with the contextual bandit of common/decision/bandit.h
// (LinUCB, or epsilon-greedy; device_client uses a model per arm with an optimistic prior, so
// every variant is tried), runs it with that variant's own split policy, and feeds the
// bandit the QoE the inference realized: accuracy_scale x correct - latency_sensitivity x
// latency_ms - energy_weight x energy_mJ (the user model of select_sim, with the measured
// latency and energy of the ledger instead of the modelled ones).
//
// VariantPolicy is a SplitPolicy: the bandit chooses at Begin, the chosen variant's plan runs
// the inference in DeviceSession, and Complete updates the bandit with the outcome.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "common/decision/bandit.h"
#include "device/split_policy.h"

namespace splitinfer {

struct LiveVariant {
  decision::Variant info;  // name, accuracy, time, FLOPs: the arm's features
  std::unique_ptr<SplitPolicy> policy;
};

class VariantPolicy final : public SplitPolicy {
 public:
  static Result<std::unique_ptr<VariantPolicy>> Create(std::vector<LiveVariant> arms,
                                                       const decision::DeviceContext& context,
                                                       const decision::QoeOptions& qoe,
                                                       const decision::BanditOptions& bandit);
  const std::string& name() const override { return name_; }
  Result<std::unique_ptr<InferencePlan>> Begin(const ChannelObservation& at0) override;

  size_t num_arms() const { return arms_.size(); }
  const LiveVariant& arm(size_t a) const { return arms_[a]; }
  // The QoE of a finished inference (see the file comment).
  double Qoe(const InferenceRecord& r) const;

 private:
  friend class VariantPlan;
  VariantPolicy() = default;
  std::string name_;
  std::vector<LiveVariant> arms_;
  std::vector<decision::Variant> infos_;
  decision::DeviceContext context_;
  decision::QoeOptions qoe_;
  std::unique_ptr<decision::LinUcb> bandit_;
  Eigen::MatrixXd features_;  // arms x joint features, for this device's context
};

}  // namespace splitinfer

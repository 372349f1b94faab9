#include "common/decision/bandit.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <optional>
#include <sstream>

#include "common/decision/channel.h"
#include "common/decision/trace.h"

namespace splitinfer::decision {
namespace {

// SplitMix64: the same stream on every machine (std:: distributions are not portable).
uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
double Uniform01(uint64_t* state) {
  return static_cast<double>(SplitMix64(state) >> 11) * 0x1.0p-53;
}
double LogUniform(uint64_t* state, double lo, double hi) {
  return lo * std::exp(Uniform01(state) * std::log(hi / lo));
}
// Box-Muller, one draw per call.
double Gaussian(uint64_t* state) {
  double u1 = Uniform01(state);
  if (u1 < 1e-300) u1 = 1e-300;
  const double u2 = Uniform01(state);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

std::string Num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

bool Finite(double v) { return std::isfinite(v); }
bool Positive(double v) { return std::isfinite(v) && v > 0; }
bool NonNeg(double v) { return std::isfinite(v) && v >= 0; }

}  // namespace

Result<std::vector<Variant>> ParseVariants(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object() || !j.contains("variants") || !j.at("variants").is_array())
    return InvalidArgumentError(source + ": expected an object with a 'variants' array");
  std::vector<Variant> out;
  const nlohmann::json& arr = j.at("variants");
  for (size_t i = 0; i < arr.size(); ++i) {
    const std::string where = source + ": variants[" + std::to_string(i) + "]";
    Variant v;
    try {
      const nlohmann::json& e = arr[i];
      v.name = e.at("name").get<std::string>();
      v.width = e.value("width", 0);
      v.kind = e.value("kind", std::string("full"));
      v.accuracy = e.at("accuracy").get<double>();
      v.flops = e.at("flops").get<int64_t>();
      v.param_bytes = e.at("param_bytes").get<int64_t>();
      v.time_ms = e.at("time_ms").get<double>();
      Result<ModelProfile> p = ParseProfileJson(e.at("profile").dump(), where + ".profile");
      if (!p.ok()) return p.status();
      v.profile = std::move(*p);
    } catch (const nlohmann::json::exception& ex) {
      return InvalidArgumentError(where + ": " + ex.what());
    }
    if (!(v.accuracy >= 0 && v.accuracy <= 1))
      return InvalidArgumentError(where + ": accuracy must be in [0, 1] (got " + Num(v.accuracy) +
                                  ")");
    if (!Positive(v.time_ms) || v.flops <= 0 || v.param_bytes < 0)
      return InvalidArgumentError(where + ": time_ms and flops must be > 0, param_bytes >= 0");
    out.push_back(std::move(v));
  }
  if (out.empty()) return InvalidArgumentError(source + ": no variants");
  return out;
}

Result<std::vector<Variant>> LoadVariants(const std::string& path) {
  Result<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgumentError(path + ": not JSON");
  return ParseVariants(j, path);
}

bool DeviceContext::IsValid(std::string* error) const {
  std::string e;
  if (!Positive(slowdown))
    e = "slowdown must be > 0 (got " + Num(slowdown) + ")";
  else if (!Positive(uplink_bps))
    e = "uplink_bps must be > 0 (got " + Num(uplink_bps) + ")";
  else if (!NonNeg(energy_weight))
    e = "energy_weight must be >= 0 (got " + Num(energy_weight) + ")";
  else if (!NonNeg(latency_sensitivity))
    e = "latency_sensitivity must be >= 0 (got " + Num(latency_sensitivity) + ")";
  else
    return true;
  if (error) *error = e;
  return false;
}

bool QoeOptions::IsValid(std::string* error) const {
  std::string e;
  if (!NonNeg(accuracy_scale))
    e = "accuracy_scale must be >= 0";
  else if (!NonNeg(device_power_w))
    e = "device_power_w must be >= 0";
  else if (!NonNeg(noise_sd))
    e = "noise_sd must be >= 0";
  else
    return true;
  if (error) *error = e;
  return false;
}

double VariantLatencyMs(const Variant& v, const DeviceContext& d) { return d.slowdown * v.time_ms; }

double ExpectedQoe(const Variant& v, const DeviceContext& d, const QoeOptions& q) {
  const double latency_ms = VariantLatencyMs(v, d);
  return q.accuracy_scale * v.accuracy - d.latency_sensitivity * latency_ms -
         d.energy_weight * q.device_power_w * latency_ms;
}

Eigen::VectorXd DeviceFeatures(const DeviceContext& d) {
  const double s = d.slowdown / 100.0;
  Eigen::VectorXd f(kDeviceDim);
  f << 1.0, s, d.latency_sensitivity * s, d.energy_weight * s, d.uplink_bps / 1e8;
  return f;
}

Eigen::VectorXd VariantFeatures(const Variant& v) {
  Eigen::VectorXd f(kVariantDim);
  f << 1.0, v.accuracy, v.time_ms,
      std::log10(static_cast<double>(std::max<int64_t>(v.flops, 1))) / 10.0;
  return f;
}

void JointFeatures(const DeviceContext& d, const std::vector<Variant>& arms, Eigen::MatrixXd* out) {
  const Eigen::VectorXd dev = DeviceFeatures(d);
  out->resize(static_cast<Eigen::Index>(arms.size()), kJointDim);
  for (size_t a = 0; a < arms.size(); ++a) {
    const Eigen::VectorXd var = VariantFeatures(arms[a]);
    for (int i = 0; i < kDeviceDim; ++i)
      for (int k = 0; k < kVariantDim; ++k)
        (*out)(static_cast<Eigen::Index>(a), i * kVariantDim + k) = dev(i) * var(k);
  }
}

bool BanditOptions::IsValid(std::string* error) const {
  std::string e;
  if (num_arms < 1)
    e = "num_arms must be >= 1 (got " + std::to_string(num_arms) + ")";
  else if (dim < 1)
    e = "dim must be >= 1 (got " + std::to_string(dim) + ")";
  else if (!NonNeg(alpha))
    e = "alpha must be >= 0 (got " + Num(alpha) + ")";
  else if (!Positive(ridge))
    e = "ridge must be > 0 (got " + Num(ridge) + ")";
  else if (!(epsilon >= 0 && epsilon <= 1))
    e = "epsilon must be in [0, 1] (got " + Num(epsilon) + ")";
  else if (!Finite(reward_offset))
    e = "reward_offset must be finite (got " + Num(reward_offset) + ")";
  else
    return true;
  if (error) *error = e;
  return false;
}

Result<LinUcb> LinUcb::Create(const BanditOptions& options) {
  std::string error;
  if (!options.IsValid(&error)) return InvalidArgumentError("bandit: " + error);
  LinUcb b;
  b.options_ = options;
  const int models = options.shared ? 1 : options.num_arms;
  const Eigen::MatrixXd a_inv = Eigen::MatrixXd::Identity(options.dim, options.dim) / options.ridge;
  b.a_inv_.assign(models, a_inv);
  b.b_.assign(models, Eigen::VectorXd::Zero(options.dim));
  b.theta_.assign(models, Eigen::VectorXd::Zero(options.dim));
  b.scratch_.resize(options.dim);
  b.rng_state_ = options.seed;
  return b;
}

double LinUcb::NextUniform() { return Uniform01(&rng_state_); }

Result<int> LinUcb::Select(const Eigen::MatrixXd& arm_features) {
  if (arm_features.rows() != options_.num_arms || arm_features.cols() != options_.dim)
    return InvalidArgumentError("bandit: features are " + std::to_string(arm_features.rows()) +
                                " x " + std::to_string(arm_features.cols()) + ", expected " +
                                std::to_string(options_.num_arms) + " arms x " +
                                std::to_string(options_.dim));
  if (!arm_features.allFinite()) return InvalidArgumentError("bandit: non-finite feature");
  const bool greedy = options_.policy == BanditPolicy::kEpsilonGreedy;
  if (greedy && options_.epsilon > 0 && NextUniform() < options_.epsilon) {
    const int a = static_cast<int>(NextUniform() * options_.num_arms);
    return std::min(a, options_.num_arms - 1);
  }
  int best = 0;
  double best_score = -std::numeric_limits<double>::infinity();
  for (int a = 0; a < options_.num_arms; ++a) {
    const int m = options_.shared ? 0 : a;
    const auto x = arm_features.row(a).transpose();
    double score = x.dot(theta_[m]);
    if (!greedy && options_.alpha > 0) {
      scratch_.noalias() = a_inv_[m] * x;
      score += options_.alpha * std::sqrt(std::max(0.0, x.dot(scratch_)));
    }
    if (score > best_score) {
      best_score = score;
      best = a;
    }
  }
  return best;
}

Status LinUcb::Update(int arm, const Eigen::VectorXd& x, double reward) {
  if (arm < 0 || arm >= options_.num_arms)
    return InvalidArgumentError("bandit: arm " + std::to_string(arm) + " out of [0, " +
                                std::to_string(options_.num_arms) + ")");
  if (x.size() != options_.dim)
    return InvalidArgumentError("bandit: context dimension " + std::to_string(x.size()) +
                                ", expected " + std::to_string(options_.dim));
  if (!x.allFinite()) return InvalidArgumentError("bandit: non-finite context");
  if (!Finite(reward)) return InvalidArgumentError("bandit: non-finite reward " + Num(reward));
  const int m = options_.shared ? 0 : arm;
  Eigen::MatrixXd& a_inv = a_inv_[m];
  // Sherman-Morrison: (A + x x^T)^-1 = A^-1 - (A^-1 x)(A^-1 x)^T / (1 + x^T A^-1 x).
  scratch_.noalias() = a_inv * x;
  const double denom = 1.0 + x.dot(scratch_);
  a_inv.noalias() -= (scratch_ / denom) * scratch_.transpose();
  b_[m].noalias() += (reward - options_.reward_offset) * x;
  theta_[m].noalias() = a_inv * b_[m];
  ++updates_;
  return Status::Ok();
}

std::vector<DeviceContext> SampleDevices(int n, uint64_t seed) {
  uint64_t state = seed ^ 0x5E1EC7D3u;
  std::vector<DeviceContext> out(std::max(0, n));
  for (DeviceContext& d : out) {
    d.slowdown = LogUniform(&state, 1.0, 1000.0);
    d.uplink_bps = LogUniform(&state, 1e6, 100e6);
    d.latency_sensitivity = LogUniform(&state, 0.01, 1.0);
    const bool battery = Uniform01(&state) < 0.5;
    const double w = LogUniform(&state, 0.005, 0.2);
    d.energy_weight = battery ? w : 0.0;
  }
  return out;
}

bool SelectSimOptions::IsValid(std::string* error) const {
  std::string e;
  if (devices < 1)
    e = "devices must be >= 1";
  else if (rounds < 1)
    e = "rounds must be >= 1";
  else if (!qoe.IsValid(&e)) {
  } else if (!NonNeg(alpha))
    e = "alpha must be >= 0";
  else if (!Positive(ridge))
    e = "ridge must be > 0";
  else if (!(epsilon >= 0 && epsilon <= 1))
    e = "epsilon must be in [0, 1]";
  else if (!std::is_sorted(checkpoints.begin(), checkpoints.end()) ||
           (!checkpoints.empty() && (checkpoints.front() < 1 || checkpoints.back() > rounds)))
    e = "checkpoints must be ascending in [1, rounds]";
  else
    return true;
  if (error) *error = e;
  return false;
}

Result<SelectSimResult> RunSelectSim(const std::vector<Variant>& arms,
                                     const std::vector<DeviceContext>& devices,
                                     const SelectSimOptions& options) {
  std::string error;
  if (!options.IsValid(&error)) return InvalidArgumentError("select_sim: " + error);
  if (arms.empty()) return InvalidArgumentError("select_sim: no arms");
  if (devices.empty()) return InvalidArgumentError("select_sim: no devices");
  for (size_t i = 0; i < devices.size(); ++i)
    if (!devices[i].IsValid(&error))
      return InvalidArgumentError("select_sim: device " + std::to_string(i) + ": " + error);
  const int k = static_cast<int>(arms.size());
  const int nd = static_cast<int>(devices.size());

  // Expected QoE table, the per-device oracle and the best common arm.
  Eigen::MatrixXd mu(nd, k);
  for (int d = 0; d < nd; ++d)
    for (int a = 0; a < k; ++a) mu(d, a) = ExpectedQoe(arms[a], devices[d], options.qoe);
  SelectSimResult r;
  r.checkpoints = options.checkpoints;
  if (r.checkpoints.empty() || r.checkpoints.back() != options.rounds)
    r.checkpoints.push_back(options.rounds);
  r.oracle_arm.resize(nd);
  for (int d = 0; d < nd; ++d) mu.row(d).maxCoeff(&r.oracle_arm[d]);
  mu.colwise().mean().maxCoeff(&r.common_arm);

  struct Runner {
    PolicyTrace trace;
    std::optional<LinUcb> bandit;  // empty: always the common arm
    double cum_oracle = 0, cum_common = 0, sum_qoe = 0, decision_ns = 0;
  };
  std::vector<Runner> runners;
  auto add = [&](const std::string& name, BanditPolicy policy, bool shared) -> Status {
    BanditOptions bo;
    bo.num_arms = k;
    bo.dim = kJointDim;
    bo.policy = policy;
    bo.shared = shared;
    bo.alpha = options.alpha;
    bo.ridge = options.ridge;
    bo.epsilon = options.epsilon;
    bo.seed = options.seed + 17;
    bo.reward_offset = options.optimistic ? options.qoe.accuracy_scale : 0.0;
    Result<LinUcb> b = LinUcb::Create(bo);
    if (!b.ok()) return b.status();
    Runner run;
    run.trace.name = name;
    run.bandit.emplace(std::move(*b));
    runners.push_back(std::move(run));
    return Status::Ok();
  };
  SPLITINFER_RETURN_IF_ERROR(add("linucb", BanditPolicy::kLinUcb, true));
  SPLITINFER_RETURN_IF_ERROR(add("linucb_disjoint", BanditPolicy::kLinUcb, false));
  SPLITINFER_RETURN_IF_ERROR(add("eps_greedy", BanditPolicy::kEpsilonGreedy, true));
  runners.emplace_back();
  runners.back().trace.name = "common";
  for (Runner& run : runners) {
    run.trace.picks.assign(k, 0);
    run.trace.picks_last.assign(k, 0);
  }

  uint64_t arrivals = options.seed * 0x2545F4914F6CDD1DULL + 1;
  uint64_t noise = options.seed * 0x9E3779B97F4A7C15ULL + 7;
  const int last_from = options.rounds - options.rounds / 5;
  double oracle_sum = 0;
  size_t next_cp = 0;
  Eigen::MatrixXd x;
  for (int t = 0; t < options.rounds; ++t) {
    const int d = std::min(nd - 1, static_cast<int>(Uniform01(&arrivals) * nd));
    JointFeatures(devices[d], arms, &x);
    const double eps = options.qoe.noise_sd * Gaussian(&noise);
    const double best = mu(d, r.oracle_arm[d]);
    const double common = mu(d, r.common_arm);
    oracle_sum += best;
    for (Runner& run : runners) {
      int a = r.common_arm;
      if (run.bandit) {
        const auto t0 = std::chrono::steady_clock::now();
        Result<int> pick = run.bandit->Select(x);
        if (!pick.ok()) return pick.status();
        a = *pick;
        SPLITINFER_RETURN_IF_ERROR(run.bandit->Update(a, x.row(a).transpose(), mu(d, a) + eps));
        run.decision_ns += static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                   std::chrono::steady_clock::now() - t0)
                                                   .count());
      }
      run.cum_oracle += best - mu(d, a);
      run.cum_common += common - mu(d, a);
      run.sum_qoe += mu(d, a);
      ++run.trace.picks[a];
      if (t >= last_from) ++run.trace.picks_last[a];
    }
    if (next_cp < r.checkpoints.size() && t + 1 == r.checkpoints[next_cp]) {
      for (Runner& run : runners) {
        run.trace.regret_oracle.push_back(run.cum_oracle);
        run.trace.regret_common.push_back(run.cum_common);
      }
      ++next_cp;
    }
  }
  r.oracle_mean_qoe = oracle_sum / options.rounds;
  r.linucb = std::move(runners.front().bandit);
  for (Runner& run : runners) {
    run.trace.mean_qoe = run.sum_qoe / options.rounds;
    run.trace.mean_decision_us = run.decision_ns / 1e3 / options.rounds;
    r.policies.push_back(std::move(run.trace));
  }
  return r;
}

nlohmann::json SelectSimResult::ToJson(const std::vector<Variant>& arms) const {
  nlohmann::json j;
  j["checkpoints"] = checkpoints;
  j["common_arm"] = arms[common_arm].name;
  std::vector<int64_t> oracle_counts(arms.size(), 0);
  for (int a : oracle_arm) ++oracle_counts[a];
  nlohmann::json oc = nlohmann::json::object();
  for (size_t a = 0; a < arms.size(); ++a)
    if (oracle_counts[a] > 0) oc[arms[a].name] = oracle_counts[a];
  j["oracle_arm_devices"] = oc;
  j["oracle_mean_qoe"] = oracle_mean_qoe;
  j["policies"] = nlohmann::json::array();
  for (const PolicyTrace& p : policies) {
    nlohmann::json pj;
    pj["name"] = p.name;
    pj["regret_oracle"] = p.regret_oracle;
    pj["regret_common"] = p.regret_common;
    pj["mean_qoe"] = p.mean_qoe;
    pj["mean_decision_us"] = p.mean_decision_us;
    nlohmann::json picks = nlohmann::json::object(), last = nlohmann::json::object();
    for (size_t a = 0; a < arms.size(); ++a) {
      picks[arms[a].name] = p.picks[a];
      last[arms[a].name] = p.picks_last[a];
    }
    pj["picks"] = picks;
    pj["picks_last20"] = last;
    j["policies"].push_back(pj);
  }
  return j;
}

Result<VariantPlacement> PlanForVariant(const Variant& v, const DeviceContext& d,
                                        const PlacementOptions& options) {
  std::string error;
  if (!d.IsValid(&error)) return InvalidArgumentError("placement link: " + error);
  CostOptions co;
  co.device_slowdown = d.slowdown;
  co.w_time = 1.0;
  // QoE prices a millisecond at latency_sensitivity and a millijoule at energy_weight: per second
  // of time (w_T = 1) a joule is worth energy_weight / latency_sensitivity.
  co.w_energy = d.latency_sensitivity > 0 ? d.energy_weight / d.latency_sensitivity : 0.0;
  Result<CostModel> cost = CostModel::Create(v.profile, co);
  if (!cost.ok()) return cost.status().WithPrefix("placement link: " + v.name + ": ");
  RayleighOptions ro;
  ro.snr_db = 10.0;
  // Ergodic capacity of Rayleigh fading at 10 dB is about 2.91 bit/s/Hz.
  ro.bandwidth_hz = d.uplink_bps / 2.91;
  Result<ChannelLaw> law = DiscretizeRayleigh(ro);
  if (!law.ok()) return law.status().WithPrefix("placement link: ");
  Result<PlacementPlan> plan = PlacementPlanner(*cost, *law).Plan(options);
  if (!plan.ok()) return plan.status();
  VariantPlacement out;
  out.variant = v.name;
  out.num_units = cost->num_units();
  out.total_param_bytes = cost->PlacementBytes(cost->num_units());
  out.plan = std::move(*plan);
  return out;
}

}  // namespace splitinfer::decision

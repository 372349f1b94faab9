#include "common/decision/bandit.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
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

bool PolicyParams::IsValid(std::string* error) const {
  std::string e;
  if (!NonNeg(alpha))
    e = "alpha must be >= 0 (got " + Num(alpha) + ")";
  else if (!Positive(ridge))
    e = "ridge must be > 0 (got " + Num(ridge) + ")";
  else
    return true;
  if (error) *error = e;
  return false;
}

bool SelectSimOptions::IsValid(std::string* error) const {
  std::string e;
  if (devices < 1)
    e = "devices must be >= 1";
  else if (rounds < 1)
    e = "rounds must be >= 1";
  else if (!qoe.IsValid(&e)) {
  } else if (!linucb.IsValid(&e)) {
    e = "linucb: " + e;
  } else if (!linucb_disjoint.IsValid(&e)) {
    e = "linucb_disjoint: " + e;
  } else if (!eps_greedy.IsValid(&e)) {
    e = "eps_greedy: " + e;
  } else if (!(epsilon >= 0 && epsilon <= 1))
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
  auto add = [&](const std::string& name, BanditPolicy policy, bool shared,
                 const PolicyParams& params) -> Status {
    BanditOptions bo;
    bo.num_arms = k;
    bo.dim = kJointDim;
    bo.policy = policy;
    bo.shared = shared;
    bo.alpha = params.alpha;
    bo.ridge = params.ridge;
    bo.epsilon = options.epsilon;
    bo.seed = options.seed + 17;
    bo.reward_offset = params.optimistic ? options.qoe.accuracy_scale : 0.0;
    Result<LinUcb> b = LinUcb::Create(bo);
    if (!b.ok()) return b.status();
    Runner run;
    run.trace.name = name;
    run.bandit.emplace(std::move(*b));
    runners.push_back(std::move(run));
    return Status::Ok();
  };
  SPLITINFER_RETURN_IF_ERROR(add("linucb", BanditPolicy::kLinUcb, true, options.linucb));
  SPLITINFER_RETURN_IF_ERROR(
      add("linucb_disjoint", BanditPolicy::kLinUcb, false, options.linucb_disjoint));
  SPLITINFER_RETURN_IF_ERROR(
      add("eps_greedy", BanditPolicy::kEpsilonGreedy, true, options.eps_greedy));
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
      if (t + 1 == options.rounds / 2) run.trace.regret_oracle_half = run.cum_oracle;
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
    pj["regret_oracle_half"] = p.regret_oracle_half;
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

namespace {

// Splits `text` at commas and trims spaces around each item; an empty item is kept (and refused
// by the callers).
std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> items;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? comma : comma - start);
    const size_t b = item.find_first_not_of(" \t");
    const size_t e = item.find_last_not_of(" \t");
    items.push_back(b == std::string::npos ? std::string() : item.substr(b, e - b + 1));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return items;
}

// The whole of `s` as a decimal unsigned integer (digits only).
bool ParseU64(const std::string& s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - digit) / 10) return false;
    v = v * 10 + digit;
  }
  *out = v;
  return true;
}

Status BadItem(const std::string& what, const std::string& item, const std::string& text,
               const std::string& expected) {
  return InvalidArgumentError(what + ": '" + item + "' in '" + text + "' is not " + expected);
}

}  // namespace

Result<std::vector<int>> ParseIntList(const std::string& text, const std::string& what) {
  std::vector<int> out;
  for (const std::string& item : SplitList(text)) {
    const bool negative = !item.empty() && item[0] == '-';
    uint64_t v = 0;
    if (!ParseU64(negative ? item.substr(1) : item, &v) ||
        v > static_cast<uint64_t>(std::numeric_limits<int>::max()))
      return BadItem(what, item, text, "an integer");
    out.push_back(negative ? -static_cast<int>(v) : static_cast<int>(v));
  }
  return out;
}

Result<std::vector<double>> ParseDoubleList(const std::string& text, const std::string& what) {
  std::vector<double> out;
  for (const std::string& item : SplitList(text)) {
    // strtod alone would accept "0x1p3", "inf", "nan" and leading spaces: digits, sign, point
    // and exponent only.
    const bool chars_ok =
        !item.empty() && item.find_first_not_of("0123456789+-.eE") == std::string::npos;
    char* end = nullptr;
    errno = 0;
    const double v = chars_ok ? std::strtod(item.c_str(), &end) : 0.0;
    if (!chars_ok || end != item.c_str() + item.size() || errno == ERANGE || !std::isfinite(v))
      return BadItem(what, item, text, "a finite number");
    out.push_back(v);
  }
  return out;
}

Result<std::vector<uint64_t>> ParseSeedList(const std::string& text) {
  std::vector<uint64_t> out;
  for (const std::string& item : SplitList(text)) {
    const size_t dash = item.find('-');
    uint64_t lo = 0, hi = 0;
    bool ok = false;
    if (dash == std::string::npos) {
      ok = ParseU64(item, &lo);
      hi = lo;
    } else {
      ok = ParseU64(item.substr(0, dash), &lo) && ParseU64(item.substr(dash + 1), &hi) && lo <= hi;
    }
    if (!ok) return BadItem("--seeds", item, text, "a seed N or a range A-B with A <= B");
    if (hi - lo >= static_cast<uint64_t>(kMaxSeeds) ||
        out.size() + (hi - lo + 1) > static_cast<size_t>(kMaxSeeds))
      return InvalidArgumentError("--seeds: more than " + std::to_string(kMaxSeeds) + " seeds");
    for (uint64_t s = lo;; ++s) {
      out.push_back(s);
      if (s == hi) break;
    }
  }
  std::vector<uint64_t> sorted = out;
  std::sort(sorted.begin(), sorted.end());
  const auto dup = std::adjacent_find(sorted.begin(), sorted.end());
  if (dup != sorted.end())
    return InvalidArgumentError("--seeds: seed " + std::to_string(*dup) + " twice in '" + text +
                                "'");
  return out;
}

nlohmann::json SeedStats::ToJson() const {
  return {{"mean", mean}, {"median", median}, {"min", min}, {"max", max}, {"sd", sd}};
}

Result<SeedStats> SummarizeSeeds(const std::vector<double>& values) {
  if (values.empty()) return InvalidArgumentError("SummarizeSeeds: no values");
  std::vector<double> v = values;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  SeedStats s;
  s.min = v.front();
  s.max = v.back();
  s.median = n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  double sum = 0;
  for (double x : values) sum += x;
  s.mean = sum / static_cast<double>(n);
  if (n > 1) {
    double ss = 0;
    for (double x : values) ss += (x - s.mean) * (x - s.mean);
    s.sd = std::sqrt(ss / static_cast<double>(n - 1));
  }
  return s;
}

SeedStats MultiSeedResult::RegretStats(size_t p) const { return *SummarizeSeeds(regret_oracle[p]); }

Result<MultiSeedResult> RunSelectSeeds(const std::vector<Variant>& arms,
                                       const SelectSimOptions& options,
                                       const std::vector<uint64_t>& seeds, bool keep_runs) {
  if (seeds.empty()) return InvalidArgumentError("select_sim: no seeds");
  MultiSeedResult m;
  m.seeds = seeds;
  for (uint64_t seed : seeds) {
    SelectSimOptions o = options;
    o.seed = seed;
    Result<SelectSimResult> r = RunSelectSim(arms, SampleDevices(o.devices, seed), o);
    if (!r.ok()) return r.status().WithPrefix("seed " + std::to_string(seed) + ": ");
    if (m.policies.empty()) {
      for (const PolicyTrace& p : r->policies) m.policies.push_back(p.name);
      const size_t np = m.policies.size();
      m.regret_oracle.resize(np);
      m.regret_common.resize(np);
      m.late_ratio.resize(np);
      m.mean_qoe.resize(np);
    }
    for (size_t p = 0; p < r->policies.size(); ++p) {
      const PolicyTrace& t = r->policies[p];
      const double total = t.regret_oracle.back();
      m.regret_oracle[p].push_back(total);
      m.regret_common[p].push_back(t.regret_common.back());
      m.late_ratio[p].push_back(t.regret_oracle_half > 0
                                    ? (total - t.regret_oracle_half) / t.regret_oracle_half
                                    : std::numeric_limits<double>::quiet_NaN());
      m.mean_qoe[p].push_back(t.mean_qoe);
    }
    m.oracle_mean_qoe.push_back(r->oracle_mean_qoe);
    m.common_arm.push_back(arms[r->common_arm].name);
    if (keep_runs) m.runs.push_back(std::move(*r));
  }
  return m;
}

nlohmann::json MultiSeedResult::ToJson(const std::vector<Variant>& arms) const {
  nlohmann::json j;
  j["seeds"] = seeds;
  auto finite_or_null = [](const std::vector<double>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (double x : v) a.push_back(std::isfinite(x) ? nlohmann::json(x) : nlohmann::json());
    return a;
  };
  auto stats_of_finite = [](const std::vector<double>& v) {
    std::vector<double> f;
    for (double x : v)
      if (std::isfinite(x)) f.push_back(x);
    Result<SeedStats> s = SummarizeSeeds(f);
    return s.ok() ? s->ToJson() : nlohmann::json();
  };
  nlohmann::json per_seed = nlohmann::json::array();
  for (size_t i = 0; i < seeds.size(); ++i) {
    nlohmann::json s;
    s["seed"] = seeds[i];
    s["common_arm"] = common_arm[i];
    s["oracle_mean_qoe"] = oracle_mean_qoe[i];
    nlohmann::json ro = nlohmann::json::object(), rc = nlohmann::json::object();
    for (size_t p = 0; p < policies.size(); ++p) {
      ro[policies[p]] = regret_oracle[p][i];
      rc[policies[p]] = regret_common[p][i];
    }
    s["regret_oracle"] = ro;
    s["regret_common"] = rc;
    per_seed.push_back(s);
  }
  j["per_seed"] = per_seed;
  nlohmann::json summary = nlohmann::json::array();
  for (size_t p = 0; p < policies.size(); ++p) {
    summary.push_back({{"name", policies[p]},
                       {"regret_oracle", RegretStats(p).ToJson()},
                       {"regret_common", SummarizeSeeds(regret_common[p])->ToJson()},
                       {"late_ratio", stats_of_finite(late_ratio[p])},
                       {"late_ratio_per_seed", finite_or_null(late_ratio[p])},
                       {"mean_qoe", SummarizeSeeds(mean_qoe[p])->ToJson()}});
  }
  j["summary"] = summary;
  j["oracle_mean_qoe"] = SummarizeSeeds(oracle_mean_qoe)->ToJson();
  if (!runs.empty()) {
    nlohmann::json rs = nlohmann::json::array();
    for (size_t i = 0; i < runs.size(); ++i) {
      nlohmann::json r = runs[i].ToJson(arms);
      r["seed"] = seeds[i];
      rs.push_back(std::move(r));
    }
    j["runs"] = rs;
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

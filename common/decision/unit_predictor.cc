#include "common/decision/unit_predictor.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include "common/decision/stopping.h"

namespace splitinfer::decision {
namespace {

constexpr int kBaseFeatures = 5;    // intercept + 4
constexpr int kKernelFeatures = 4;  // layers, depthwise, pointwise, kernel area

int NumFeatures(const PredictorOptions& o) {
  return kBaseFeatures + (o.kernel_features ? kKernelFeatures : 0);
}

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

Status CheckFeatures(const UnitSample& u, const PredictorOptions& o) {
  if (!(u.flops >= 0.0) || !std::isfinite(u.flops))
    return InvalidArgumentError("unit " + u.source + "/" + u.name + ": FLOPs unknown");
  if (o.kernel_features && !u.has_layers)
    return InvalidArgumentError("unit " + u.source + "/" + u.name +
                                ": no kernel shapes (a profile without \"layers\"), which " +
                                "kernel_features needs");
  if (!(u.input_bytes >= 0.0) || !(u.output_bytes >= 0.0) || !(u.param_bytes >= 0.0) ||
      !std::isfinite(u.input_bytes + u.output_bytes + u.param_bytes))
    return InvalidArgumentError("unit " + u.source + "/" + u.name + ": bytes must be >= 0");
  return Status::Ok();
}

Eigen::VectorXd Features(const UnitSample& u, const PredictorOptions& o) {
  Eigen::VectorXd x(NumFeatures(o));
  if (o.space == FeatureSpace::kLog) {
    x.head(kBaseFeatures) << 1.0, std::log1p(u.flops), std::log1p(u.input_bytes),
        std::log1p(u.output_bytes), std::log1p(u.param_bytes);
    if (o.kernel_features)
      x.tail(kKernelFeatures) << std::log1p(u.layers), u.depthwise_frac, u.pointwise_frac,
          std::log(std::max(u.kernel_area, 1.0));
  } else {
    x.head(kBaseFeatures) << 1.0, u.flops / 1e9, u.input_bytes / 1e6, u.output_bytes / 1e6,
        u.param_bytes / 1e6;
    if (o.kernel_features)
      x.tail(kKernelFeatures) << u.layers, u.depthwise_frac, u.pointwise_frac, u.kernel_area;
  }
  return x;
}

double Target(double time_ms, FeatureSpace space) {
  return space == FeatureSpace::kLog ? std::log(time_ms) : time_ms;
}

// Ridge on standardized features (column 0 is the intercept, not penalized or standardized).
UnitPredictor::Linear FitRidge(const Eigen::MatrixXd& x, const Eigen::VectorXd& y, double lambda) {
  const int n = static_cast<int>(x.rows()), d = static_cast<int>(x.cols());
  UnitPredictor::Linear m;
  m.mean = Eigen::VectorXd::Zero(d);
  m.scale = Eigen::VectorXd::Ones(d);
  for (int c = 1; c < d; ++c) {
    m.mean(c) = x.col(c).mean();
    const double var = (x.col(c).array() - m.mean(c)).square().sum() / n;
    m.scale(c) = var > 1e-24 ? std::sqrt(var) : 1.0;
  }
  Eigen::MatrixXd z(n, d);
  for (int c = 0; c < d; ++c) z.col(c) = (x.col(c).array() - m.mean(c)) / m.scale(c);
  Eigen::MatrixXd a = z.transpose() * z;
  for (int c = 1; c < d; ++c) a(c, c) += lambda * n;
  m.coef = a.ldlt().solve(z.transpose() * y);
  return m;
}

std::vector<double> Ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> rank(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    const double r = 0.5 * static_cast<double>(i + j);
    for (size_t k = i; k <= j; ++k) rank[order[k]] = r;
    i = j + 1;
  }
  return rank;
}

}  // namespace

void SetKernelFeatures(const std::vector<LayerShape>& layers, UnitSample* unit) {
  unit->has_layers = !layers.empty();
  unit->layers = static_cast<double>(layers.size());
  double total = 0.0, dw = 0.0, pw = 0.0, area = 0.0;
  for (const LayerShape& l : layers) {
    const double f = static_cast<double>(l.Flops());
    total += f;
    if (l.depthwise()) dw += f;
    if (l.kernel == 1) pw += f;
    area += f * static_cast<double>(l.kernel * l.kernel);
  }
  unit->depthwise_frac = total > 0.0 ? dw / total : 0.0;
  unit->pointwise_frac = total > 0.0 ? pw / total : 0.0;
  unit->kernel_area = total > 0.0 ? area / total : 0.0;
}

std::string UnitType(const std::string& name) {
  if (StartsWith(name, "conv") || name == "stem") return "conv";
  if (StartsWith(name, "fc") || name == "head") return "linear";
  if (StartsWith(name, "layer")) return "resblock";
  if (StartsWith(name, "block")) return "invres";
  return "other";
}

Result<std::vector<UnitSample>> SamplesFromProfile(const ModelProfile& profile,
                                                   const std::string& source) {
  if (Status s = profile.Validate(); !s.ok()) return s;
  std::vector<UnitSample> out;
  for (int l = 1; l <= profile.num_units(); ++l) {
    const UnitProfile& u = profile.units[l - 1];
    UnitSample s;
    s.source = source;
    s.name = u.name;
    s.type = UnitType(u.name);
    s.flops = static_cast<double>(u.flops);
    s.input_bytes = static_cast<double>(profile.BoundaryBytes(l - 1));
    s.output_bytes = static_cast<double>(u.output_bytes);
    s.param_bytes = static_cast<double>(u.param_bytes);
    s.time_ms = u.time_ms;
    SetKernelFeatures(u.layers, &s);
    out.push_back(std::move(s));
  }
  return out;
}

Result<std::map<std::string, ModelProfile>> LoadProfileDir(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    return NotFoundError("profile directory " + dir + " not found");
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.is_regular_file() && e.path().extension() == ".json") files.push_back(e.path());
  if (ec) return InternalError("reading " + dir + ": " + ec.message());
  std::sort(files.begin(), files.end());
  std::map<std::string, ModelProfile> out;
  for (const auto& f : files) {
    Result<ModelProfile> p = LoadProfile(f.string());
    if (!p.ok()) return p.status();
    out.emplace(f.stem().string(), std::move(*p));
  }
  if (out.empty()) return NotFoundError("no *.json profile in " + dir);
  return out;
}

double UnitPredictor::Linear::Predict(const Eigen::VectorXd& x) const {
  return ((x - mean).array() / scale.array()).matrix().dot(coef);
}

Result<UnitPredictor> UnitPredictor::Fit(const std::vector<UnitSample>& samples,
                                         const PredictorOptions& options) {
  if (samples.empty()) return InvalidArgumentError("unit predictor: no training samples");
  if (!(options.ridge_lambda >= 0.0) || options.min_type_samples < 1)
    return InvalidArgumentError("unit predictor: ridge_lambda must be >= 0, min_type_samples >= 1");
  std::map<std::string, std::vector<size_t>> by_type;
  for (size_t i = 0; i < samples.size(); ++i) {
    const UnitSample& u = samples[i];
    if (Status s = CheckFeatures(u, options); !s.ok()) return s;
    if (!(u.time_ms > 0.0) || !std::isfinite(u.time_ms))
      return InvalidArgumentError("unit " + u.source + "/" + u.name + ": time_ms must be > 0");
    by_type[u.type].push_back(i);
  }
  auto fit = [&](const std::vector<size_t>& idx) {
    Eigen::MatrixXd x(idx.size(), NumFeatures(options));
    Eigen::VectorXd y(idx.size());
    for (size_t r = 0; r < idx.size(); ++r) {
      x.row(r) = Features(samples[idx[r]], options).transpose();
      y(r) = Target(samples[idx[r]].time_ms, options.space);
    }
    return FitRidge(x, y, options.ridge_lambda);
  };
  UnitPredictor p;
  p.options_ = options;
  std::vector<size_t> all(samples.size());
  std::iota(all.begin(), all.end(), 0);
  p.all_ = fit(all);
  for (const auto& [type, idx] : by_type)
    if (static_cast<int>(idx.size()) >= options.min_type_samples) p.by_type_[type] = fit(idx);
  return p;
}

Result<double> UnitPredictor::PredictMs(const UnitSample& unit) const {
  if (Status s = CheckFeatures(unit, options_); !s.ok()) return s;
  const auto it = by_type_.find(unit.type);
  const Linear& m = it != by_type_.end() ? it->second : all_;
  const double y = m.Predict(Features(unit, options_));
  if (options_.space == FeatureSpace::kLog) return std::exp(y);
  // A linear model can go below zero for a tiny unit: floor at a microsecond.
  return std::max(y, 1e-3);
}

double ProxyCalibration::Apply(double proxy_ms) const {
  return std::exp(a + b * std::log(std::max(proxy_ms, 1e-9)));
}

double ProxyCalibration::Apply(double proxy_ms, const std::string& type) const {
  const auto it = type_a.find(type);
  if (it == type_a.end()) return Apply(proxy_ms);
  return std::exp(it->second + std::log(std::max(proxy_ms, 1e-9)));
}

Result<ProxyCalibration> FitTypeCalibration(const std::vector<double>& proxy_ms,
                                            const std::vector<double>& target_ms,
                                            const std::vector<std::string>& types,
                                            double prior_weight) {
  if (types.size() != proxy_ms.size())
    return InvalidArgumentError("type calibration: one type per calibration pair");
  if (!(prior_weight >= 0.0))
    return InvalidArgumentError("type calibration: prior_weight must be >= 0");
  Result<ProxyCalibration> c = FitProxyCalibration(proxy_ms, target_ms, CalibrationMap::kScale);
  if (!c.ok()) return c.status();
  std::map<std::string, std::pair<double, double>> sums;  // type -> (sum of log ratios, count)
  for (size_t i = 0; i < types.size(); ++i) {
    auto& [sum, n] = sums[types[i]];
    sum += std::log(target_ms[i] / proxy_ms[i]);
    n += 1.0;
  }
  for (const auto& [type, sn] : sums)
    c->type_a[type] = (sn.first + prior_weight * c->a) / (sn.second + prior_weight);
  return c;
}

std::vector<size_t> SpreadByTypeAndRank(const std::vector<double>& values,
                                        const std::vector<std::string>& types, int count) {
  std::map<std::string, std::vector<size_t>> by_type;
  for (size_t i = 0; i < values.size() && i < types.size(); ++i) by_type[types[i]].push_back(i);
  if (count <= 0 || by_type.empty()) return {};
  // Shares: count / T each, the remainder to the largest types (ties by name).
  std::map<std::string, int> share;
  for (const auto& [type, idx] : by_type) share[type] = count / static_cast<int>(by_type.size());
  std::vector<std::string> by_size;
  for (const auto& [type, idx] : by_type) by_size.push_back(type);
  std::stable_sort(by_size.begin(), by_size.end(), [&](const std::string& a, const std::string& b) {
    return by_type[a].size() > by_type[b].size();
  });
  for (int r = 0; r < count % static_cast<int>(by_type.size()); ++r) ++share[by_size[r]];
  std::vector<size_t> out;
  for (const auto& [type, idx] : by_type) {
    std::vector<double> v;
    for (size_t i : idx) v.push_back(values[i]);
    for (size_t j : SpreadByRank(v, share[type])) out.push_back(idx[j]);
  }
  return out;
}

Result<ProxyCalibration> FitProxyCalibration(const std::vector<double>& proxy_ms,
                                             const std::vector<double>& target_ms,
                                             CalibrationMap map, double shrink) {
  if (proxy_ms.empty() || proxy_ms.size() != target_ms.size())
    return InvalidArgumentError("proxy calibration: need >= 1 (proxy, target) pair");
  if (!(shrink >= 0.0)) return InvalidArgumentError("proxy calibration: shrink must be >= 0");
  if (map == CalibrationMap::kTypeScale)
    return InvalidArgumentError(
        "proxy calibration: kTypeScale needs the unit types "
        "(FitTypeCalibration)");
  const size_t n = proxy_ms.size();
  std::vector<double> x(n), y(n);
  for (size_t i = 0; i < n; ++i) {
    if (!(proxy_ms[i] > 0.0) || !(target_ms[i] > 0.0))
      return InvalidArgumentError("proxy calibration: times must be > 0");
    x[i] = std::log(proxy_ms[i]);
    y[i] = std::log(target_ms[i]);
  }
  ProxyCalibration c;
  if (map == CalibrationMap::kScale) {
    std::vector<double> r(n);
    for (size_t i = 0; i < n; ++i) r[i] = y[i] - x[i];
    std::sort(r.begin(), r.end());
    c.a = n % 2 == 1 ? r[n / 2] : 0.5 * (r[n / 2 - 1] + r[n / 2]);
    return c;
  }
  const double mx = std::accumulate(x.begin(), x.end(), 0.0) / n;
  const double my = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxx = 0.0, sxy = 0.0;
  for (size_t i = 0; i < n; ++i) sxx += (x[i] - mx) * (x[i] - mx), sxy += (x[i] - mx) * (y[i] - my);
  // min sum (y - a - b x)^2 + shrink (b - 1)^2, b kept >= 0.1 so the map stays increasing.
  c.b = std::max(0.1, (sxy + shrink) / (sxx + shrink));
  if (n == 1) c.b = 1.0;
  c.a = my - c.b * mx;
  return c;
}

std::vector<size_t> SpreadByRank(const std::vector<double>& values, int count) {
  std::vector<size_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return values[a] < values[b]; });
  if (count <= 0) return {};
  if (static_cast<size_t>(count) >= values.size()) return order;
  std::vector<size_t> out;
  for (int i = 0; i < count; ++i) {
    // Midpoints of `count` equal rank bins.
    const double pos = (i + 0.5) * static_cast<double>(values.size()) / count;
    out.push_back(order[static_cast<size_t>(pos)]);
  }
  return out;
}

Result<ModelProfile> PredictProfile(const ModelProfile& profile, const UnitPredictor& predictor,
                                    const ProxyCalibration* calibration) {
  Result<std::vector<UnitSample>> samples = SamplesFromProfile(profile, profile.model);
  if (!samples.ok()) return samples.status();
  ModelProfile out = profile;
  for (size_t i = 0; i < samples->size(); ++i) {
    Result<double> t = predictor.PredictMs((*samples)[i]);
    if (!t.ok()) return t.status();
    out.units[i].time_ms = calibration ? calibration->Apply(*t, (*samples)[i].type) : *t;
  }
  if (Status s = out.Validate(); !s.ok()) return s;
  return out;
}

Result<std::vector<UnitSample>> SamplesFromProfiles(
    const std::map<std::string, ModelProfile>& profiles) {
  std::vector<UnitSample> out;
  for (const auto& [key, profile] : profiles) {
    Result<std::vector<UnitSample>> s = SamplesFromProfile(profile, key);
    if (!s.ok()) return s.status();
    out.insert(out.end(), s->begin(), s->end());
  }
  return out;
}

void SplitHeldOut(const std::vector<UnitSample>& all, int every, std::vector<UnitSample>* train,
                  std::vector<UnitSample>* test) {
  every = std::max(every, 2);
  for (size_t i = 0; i < all.size(); ++i)
    (static_cast<int>(i % every) == every - 1 ? test : train)->push_back(all[i]);
}

Result<PredictionError> EvaluatePredictor(const std::vector<UnitSample>& test,
                                          const UnitPredictor& predictor,
                                          const ProxyCalibration* calibration) {
  if (test.empty()) return InvalidArgumentError("evaluate: no test samples");
  std::vector<double> pred, meas, abs_err, rel_err;
  for (const UnitSample& u : test) {
    Result<double> t = predictor.PredictMs(u);
    if (!t.ok()) return t.status();
    const double p = calibration ? calibration->Apply(*t, u.type) : *t;
    if (!(u.time_ms > 0.0)) return InvalidArgumentError("evaluate: time_ms must be > 0");
    pred.push_back(p);
    meas.push_back(u.time_ms);
    abs_err.push_back(std::abs(p - u.time_ms));
    rel_err.push_back(std::abs(p - u.time_ms) / u.time_ms);
  }
  auto median = [](std::vector<double> v) {
    const size_t m = v.size() / 2;
    std::nth_element(v.begin(), v.begin() + m, v.end());
    if (v.size() % 2 == 1) return v[m];
    const double hi = v[m];
    return 0.5 * (hi + *std::max_element(v.begin(), v.begin() + m));
  };
  PredictionError e;
  e.n = static_cast<int>(test.size());
  e.median_abs_ms = median(abs_err);
  e.median_rel = median(rel_err);
  e.spearman = SpearmanRho(pred, meas);
  return e;
}

Result<double> DecisionCostRatio(const ModelProfile& truth, const ModelProfile& predicted,
                                 const CostOptions& options, const ChannelLaw& law) {
  if (truth.num_units() != predicted.num_units())
    return InvalidArgumentError("decision cost: profiles differ in their number of units");
  Result<CostModel> true_cost = CostModel::Create(truth, options);
  if (!true_cost.ok()) return true_cost.status();
  Result<CostModel> pred_cost = CostModel::Create(predicted, options);
  if (!pred_cost.ok()) return pred_cost.status();
  const int n = truth.num_units();
  Result<StoppingProblem> true_problem = BuildProblem(*true_cost, law, n);
  if (!true_problem.ok()) return true_problem.status();
  Result<StoppingProblem> pred_problem = BuildProblem(*pred_cost, law, n);
  if (!pred_problem.ok()) return pred_problem.status();
  const double best = SolveBackwardInduction(*true_problem).expected_cost;
  const double got = ExactExpectedCost(*true_problem, *MakeBiPolicy(*pred_problem));
  if (!(best > 0.0)) return InternalError("decision cost: BI's expected cost is not > 0");
  return got / best;
}

double SpearmanRho(const std::vector<double>& x, const std::vector<double>& y) {
  const size_t n = std::min(x.size(), y.size());
  if (n < 2) return 0.0;
  const std::vector<double> rx = Ranks(std::vector<double>(x.begin(), x.begin() + n));
  const std::vector<double> ry = Ranks(std::vector<double>(y.begin(), y.begin() + n));
  const double m = 0.5 * static_cast<double>(n - 1);
  double sxy = 0.0, sxx = 0.0, syy = 0.0;
  for (size_t i = 0; i < n; ++i) {
    sxy += (rx[i] - m) * (ry[i] - m);
    sxx += (rx[i] - m) * (rx[i] - m);
    syy += (ry[i] - m) * (ry[i] - m);
  }
  if (sxx <= 0.0 || syy <= 0.0) return 0.0;
  return sxy / std::sqrt(sxx * syy);
}

}  // namespace splitinfer::decision

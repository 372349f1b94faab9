// Per-unit cost predictors and proxy-device transfer (issue 10, items 1-2): a unit's time on a
// device from its features (unit type from the name, FLOPs, input / output / parameter bytes,
// and optionally kernel-shape features from the profile's layers), fitted by ridge regression
// per unit type; a predicted table turned back into a ModelProfile so
// CostModel::Create and the splitter take predicted costs exactly like profiled ones; and a
// monotone map that moves a proxy device's predictor to a new device from a few measured units.
//
// Energy follows the cost model: CostModel prices e_l = device_power_w x t_l (kPower), so a
// predicted time is all a predicted profile needs.
//
// Thread safety: immutable after construction.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "common/decision/channel.h"
#include "common/decision/cost_model.h"
#include "common/status.h"

namespace splitinfer::decision {

// One unit as a regression sample.
struct UnitSample {
  std::string source;  // file or model configuration the unit came from
  std::string name;    // unit name ("conv3", "layer2.0", "block7", "fc6", ...)
  std::string type;    // UnitType(name)
  double flops = -1.0;
  double input_bytes = 0.0;
  double output_bytes = 0.0;
  double param_bytes = 0.0;
  double time_ms = 0.0;  // measured median (0 when unknown)
  // Kernel-shape features, from the profile's layers (has_layers false when it has none).
  bool has_layers = false;
  double layers = 0.0;          // convolution and linear layers in the unit
  double depthwise_frac = 0.0;  // share of the unit's FLOPs in depthwise convolutions
  double pointwise_frac = 0.0;  // share in 1x1 convolutions and linear layers
  double kernel_area = 0.0;     // FLOPs-weighted mean kernel area (k^2; 1 for linear)
};

// The kernel-shape features of `layers` into `unit` (has_layers = !layers.empty()).
void SetKernelFeatures(const std::vector<LayerShape>& layers, UnitSample* unit);

// Unit type from the unit name: "conv" (conv*, stem), "linear" (fc*, head), "resblock"
// (layer<i>.<j>), "invres" (block<i>), "other" for any other name.
std::string UnitType(const std::string& name);

// The units of a profile as samples (input bytes of unit l = output bytes of unit l-1, or the
// model's input bytes). InvalidArgument when the profile does not validate.
Result<std::vector<UnitSample>> SamplesFromProfile(const ModelProfile& profile,
                                                   const std::string& source);

// Every *.json profile under `dir` (sorted by file name), keyed by file stem.
Result<std::map<std::string, ModelProfile>> LoadProfileDir(const std::string& dir);

enum class FeatureSpace {
  kLinear,  // time_ms = b . [1, GFLOPs, MB in, MB out, MB params]
  kLog,     // log time_ms = b . [1, log FLOPs, log in, log out, log params] (log1p of each)
};

struct PredictorOptions {
  FeatureSpace space = FeatureSpace::kLog;
  // Adds the kernel-shape features: log1p(layers), depthwise_frac, pointwise_frac and
  // log(kernel_area) in log space (the raw values in linear space). Every sample then needs them.
  bool kernel_features = false;
  double ridge_lambda = 1e-2;  // on standardized features; the intercept is not penalized
  int min_type_samples = 8;    // fewer samples of a type: that type uses the all-type model
};

// Ridge regression per unit type, with one all-type model as the fallback for types with few
// samples and for types not seen in training.
class UnitPredictor {
 public:
  // InvalidArgument for no samples, a sample with unknown FLOPs (< 0), a non-positive or
  // non-finite time, a sample without kernel shapes when options.kernel_features, or bad options.
  static Result<UnitPredictor> Fit(const std::vector<UnitSample>& samples,
                                   const PredictorOptions& options = {});

  // Predicted time in ms (>= 0). InvalidArgument for unknown FLOPs or negative bytes. A type
  // without a model of its own is predicted by the all-type model.
  Result<double> PredictMs(const UnitSample& unit) const;
  bool HasTypeModel(const std::string& type) const { return by_type_.count(type) > 0; }
  const PredictorOptions& options() const { return options_; }

  struct Linear {
    Eigen::VectorXd mean, scale, coef;  // standardized features; coef(0) = intercept
    double Predict(const Eigen::VectorXd& x) const;
  };

 private:
  UnitPredictor() = default;
  PredictorOptions options_;
  Linear all_;
  std::map<std::string, Linear> by_type_;
};

// Monotone map from a proxy device's predictions to a target device, fitted on a few measured
// calibration units. kScale: t = exp(a) p, a = the median of log(t / p) over the units (robust to
// one bad unit). kAffine: log t = a + b log p, least squares with b shrunk towards 1 by `shrink`
// and kept >= 0.1. Both are increasing, so they keep the proxy's order of the units.
// kTypeScale (FitTypeCalibration): a scale per unit type, shrunk towards the common scale; it keeps
// the order within each type, not across types.
enum class CalibrationMap { kScale, kAffine, kTypeScale };
struct ProxyCalibration {
  double a = 0.0, b = 1.0;
  std::map<std::string, double> type_a;  // kTypeScale: log scale per type (others use a, b)
  double Apply(double proxy_ms) const;
  double Apply(double proxy_ms, const std::string& type) const;
};
// InvalidArgument when there are no calibration pairs or a time is not > 0.
Result<ProxyCalibration> FitProxyCalibration(const std::vector<double>& proxy_ms,
                                             const std::vector<double>& target_ms,
                                             CalibrationMap map = CalibrationMap::kScale,
                                             double shrink = 1.0);
// Per-type scales: a = the median log ratio over all units (the kScale map), and for each type
// seen, a_type = (sum of its units' log ratios + prior_weight x a) / (its units + prior_weight).
// InvalidArgument for mismatched sizes, no pairs, a time not > 0, or prior_weight < 0.
Result<ProxyCalibration> FitTypeCalibration(const std::vector<double>& proxy_ms,
                                            const std::vector<double>& target_ms,
                                            const std::vector<std::string>& types,
                                            double prior_weight = 1.0);
// `count` indices spread over the unit types and, within each type, over the rank order of
// `values` (SpreadByRank): every type (in name order) gets count / T units, the remainder going
// to the types with the most units; a type with fewer units than its share gives all of them.
std::vector<size_t> SpreadByTypeAndRank(const std::vector<double>& values,
                                        const std::vector<std::string>& types, int count);
// `count` indices of `values` spread over their rank order (the 1st, ..., last quantile),
// deterministic; all indices when count >= values.size().
std::vector<size_t> SpreadByRank(const std::vector<double>& values, int count);

// The profile with every unit's time_ms replaced by the prediction (calibrated when `calibration`
// is given); everything else (bytes, FLOPs, names) is kept, so CostModel::Create takes it as it
// takes the profiled one.
Result<ModelProfile> PredictProfile(const ModelProfile& profile, const UnitPredictor& predictor,
                                    const ProxyCalibration* calibration = nullptr);

// Every unit of every profile, in key order (source = the key).
Result<std::vector<UnitSample>> SamplesFromProfiles(
    const std::map<std::string, ModelProfile>& profiles);

// Held-out split: sample i is held out when i % every == every - 1 (every >= 2).
void SplitHeldOut(const std::vector<UnitSample>& all, int every, std::vector<UnitSample>* train,
                  std::vector<UnitSample>* test);

// Error of a predictor (calibrated when `calibration` is given) on measured samples.
struct PredictionError {
  int n = 0;
  double median_abs_ms = 0.0;  // median |predicted - measured|
  double median_rel = 0.0;     // median |predicted - measured| / measured
  double spearman = 0.0;       // rank correlation of predicted and measured
};
Result<PredictionError> EvaluatePredictor(const std::vector<UnitSample>& test,
                                          const UnitPredictor& predictor,
                                          const ProxyCalibration* calibration = nullptr);

// The decision cost of splitting on predicted costs: BI's policy solved on `predicted` (full
// placement, horizon N), its exact expected cost under the true costs, divided by BI's expected
// cost solved on `truth` (>= 1 up to rounding). Both profiles must have the same units.
Result<double> DecisionCostRatio(const ModelProfile& truth, const ModelProfile& predicted,
                                 const CostOptions& options, const ChannelLaw& law);

// Spearman rank correlation (average ranks for ties); 0 when either side is constant or n < 2.
double SpearmanRho(const std::vector<double>& x, const std::vector<double>& y);

}  // namespace splitinfer::decision

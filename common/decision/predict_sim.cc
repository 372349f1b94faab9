// predict_sim: per-unit cost predictors and proxy-device transfer (issue 10, items 1-2).
//
//   predict_sim [--dir data/unit_profiles] [--proxy t1] [--calib 5] [--every 4] [--lambda 0.01]
//               [--snr-db 10] [--slowdown 10] [--json]
//
// Every sub-directory of --dir is one device setting (profiles written by
// scripts/make_unit_profiles.sh). Prints, per device:
//   1. per-device fits (log and linear ridge) on the held-out units (every --every-th unit);
//   2. proxy transfer: the predictor fitted on all of --proxy's units, mapped to the device by a
//      monotone log-space map (a scale; an affine map is shown too) fitted on --calib measured
//      units (spread over the proxy's ranks, taken from the device's training units), scored on the
//      same held-out units;
//   (plus leave-one-model-family-out log fits: each family predicted from the other families);
//   3. the decision-cost ratio: BI solved on predicted costs, priced on the profiled ones, over
//      BI solved on the profiled ones, for every *_w1_s224 profile, on an i.i.d. Rayleigh law.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/decision/channel.h"
#include "common/decision/unit_predictor.h"

namespace sd = splitinfer::decision;

namespace {

struct Device {
  std::string name;
  std::map<std::string, sd::ModelProfile> profiles;
  std::vector<sd::UnitSample> train, test;
};

template <typename T>
T Check(splitinfer::Result<T> r, const std::string& what) {
  if (!r.ok()) {
    std::cerr << "predict_sim: " << what << ": " << r.status() << "\n";
    std::exit(1);
  }
  return std::move(*r);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Per-unit cost predictors, proxy-device transfer and their decision cost"};
  std::string dir = "data/unit_profiles", proxy = "t1";
  int calib = 5, every = 4;
  double lambda = 1e-2, snr_db = 10.0, slowdown = 10.0;
  bool json = false;
  app.add_option("--dir", dir, "directory of device settings (one sub-directory each)");
  app.add_option("--proxy", proxy, "the proxy device setting");
  app.add_option("--calib", calib, "measured calibration units on a new device")
      ->check(CLI::Range(1, 1000));
  app.add_option("--every", every, "hold out every n-th unit")->check(CLI::Range(2, 1000));
  app.add_option("--lambda", lambda, "ridge penalty (standardized features)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--snr-db", snr_db, "mean SNR of the i.i.d. Rayleigh channel");
  app.add_option("--slowdown", slowdown, "CostOptions.device_slowdown")->check(CLI::PositiveNumber);
  app.add_flag("--json", json, "JSON on stdout");
  CLI11_PARSE(app, argc, argv);

  std::vector<Device> devices;
  std::error_code ec;
  std::vector<std::filesystem::path> subdirs;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.is_directory()) subdirs.push_back(e.path());
  if (ec || subdirs.empty()) {
    std::cerr << "predict_sim: no device settings under " << dir << "\n";
    return 2;
  }
  std::sort(subdirs.begin(), subdirs.end());
  for (const auto& d : subdirs) {
    Device dev;
    dev.name = d.filename().string();
    dev.profiles = Check(sd::LoadProfileDir(d.string()), dev.name);
    const auto all = Check(sd::SamplesFromProfiles(dev.profiles), dev.name);
    sd::SplitHeldOut(all, every, &dev.train, &dev.test);
    devices.push_back(std::move(dev));
  }
  const Device* proxy_dev = nullptr;
  for (const Device& d : devices)
    if (d.name == proxy) proxy_dev = &d;
  if (!proxy_dev) {
    std::cerr << "predict_sim: proxy setting " << proxy << " not under " << dir << "\n";
    return 2;
  }
  sd::PredictorOptions log_opts, lin_opts;
  log_opts.ridge_lambda = lin_opts.ridge_lambda = lambda;
  lin_opts.space = sd::FeatureSpace::kLinear;
  std::vector<sd::UnitSample> proxy_all = proxy_dev->train;
  proxy_all.insert(proxy_all.end(), proxy_dev->test.begin(), proxy_dev->test.end());
  const sd::UnitPredictor proxy_pred = Check(sd::UnitPredictor::Fit(proxy_all, log_opts), proxy);

  sd::CostOptions cost;
  cost.device_slowdown = slowdown;
  sd::RayleighOptions ray;
  ray.snr_db = snr_db;
  const sd::ChannelLaw law = Check(sd::DiscretizeRayleigh(ray), "rayleigh");

  nlohmann::ordered_json out;
  out["dir"] = dir;
  out["proxy"] = proxy;
  out["calibration_units"] = calib;
  out["holdout_every"] = every;
  out["devices"] = nlohmann::ordered_json::array();
  auto err_json = [](const sd::PredictionError& e) {
    return nlohmann::ordered_json{{"n", e.n},
                                  {"median_abs_ms", e.median_abs_ms},
                                  {"median_rel", e.median_rel},
                                  {"spearman", e.spearman}};
  };
  if (!json)
    std::printf("%-8s %-22s %5s %12s %10s %9s\n", "device", "predictor", "n", "med|err| ms",
                "med rel", "spearman");
  for (const Device& d : devices) {
    nlohmann::ordered_json dj;
    dj["device"] = d.name;
    dj["train_units"] = d.train.size();
    const sd::UnitPredictor own_log = Check(sd::UnitPredictor::Fit(d.train, log_opts), d.name);
    const sd::UnitPredictor own_lin = Check(sd::UnitPredictor::Fit(d.train, lin_opts), d.name);
    // Calibration units: spread over the proxy's predicted ranks among the training units.
    std::vector<double> proxy_on_train;
    for (const sd::UnitSample& u : d.train)
      proxy_on_train.push_back(Check(proxy_pred.PredictMs(u), d.name));
    std::vector<double> cal_proxy, cal_target;
    dj["calibration_units"] = nlohmann::ordered_json::array();
    for (size_t i : sd::SpreadByRank(proxy_on_train, calib)) {
      cal_proxy.push_back(proxy_on_train[i]);
      cal_target.push_back(d.train[i].time_ms);
      dj["calibration_units"].push_back({{"unit", d.train[i].source + "/" + d.train[i].name},
                                         {"proxy_ms", proxy_on_train[i]},
                                         {"measured_ms", d.train[i].time_ms}});
    }
    const sd::ProxyCalibration cal =
        Check(sd::FitProxyCalibration(cal_proxy, cal_target, sd::CalibrationMap::kScale), d.name);
    const sd::ProxyCalibration cal_affine =
        Check(sd::FitProxyCalibration(cal_proxy, cal_target, sd::CalibrationMap::kAffine), d.name);
    const std::vector<std::pair<std::string, sd::PredictionError>> rows = {
        {"own-log", Check(sd::EvaluatePredictor(d.test, own_log), d.name)},
        {"own-linear", Check(sd::EvaluatePredictor(d.test, own_lin), d.name)},
        {"proxy-raw", Check(sd::EvaluatePredictor(d.test, proxy_pred), d.name)},
        {"proxy+" + std::to_string(calib) + "cal-scale",
         Check(sd::EvaluatePredictor(d.test, proxy_pred, &cal), d.name)},
        {"proxy+" + std::to_string(calib) + "cal-affine",
         Check(sd::EvaluatePredictor(d.test, proxy_pred, &cal_affine), d.name)},
    };
    // Leave one model family out: every unit of the family predicted by a fit on the others.
    std::vector<sd::UnitSample> all = d.train;
    all.insert(all.end(), d.test.begin(), d.test.end());
    auto family = [](const sd::UnitSample& u) { return u.source.substr(0, u.source.find("_w")); };
    std::map<std::string, int> families;
    for (const sd::UnitSample& u : all) ++families[family(u)];
    for (const auto& [fam, count] : families) {
      std::vector<sd::UnitSample> others, held;
      for (const sd::UnitSample& u : all) (family(u) == fam ? held : others).push_back(u);
      const sd::UnitPredictor p = Check(sd::UnitPredictor::Fit(others, log_opts), fam);
      const sd::PredictionError e = Check(sd::EvaluatePredictor(held, p), fam);
      dj["leave_model_out"][fam] = err_json(e);
      (void)count;
    }
    dj["calibration_scale"] = {{"a", cal.a}, {"b", cal.b}};
    dj["calibration_affine"] = {{"a", cal_affine.a}, {"b", cal_affine.b}};
    if (!json) {
      for (const auto& [fam, e] : dj["leave_model_out"].items())
        std::printf("%-8s %-22s %5d %12.3f %10.3f %9.3f\n", d.name.c_str(),
                    ("lomo-log:" + fam).c_str(), e["n"].get<int>(),
                    e["median_abs_ms"].get<double>(), e["median_rel"].get<double>(),
                    e["spearman"].get<double>());
    }
    for (const auto& [name, e] : rows) {
      dj["errors"][name] = err_json(e);
      if (!json)
        std::printf("%-8s %-22s %5d %12.3f %10.3f %9.3f\n", d.name.c_str(), name.c_str(), e.n,
                    e.median_abs_ms, e.median_rel, e.spearman);
    }
    // Decision cost on the full-size models.
    for (const auto& [key, truth] : d.profiles) {
      if (key.size() < 8 || key.compare(key.size() - 8, 8, "_w1_s224") != 0) continue;
      const sd::ModelProfile own = Check(sd::PredictProfile(truth, own_log), key);
      const sd::ModelProfile moved = Check(sd::PredictProfile(truth, proxy_pred, &cal), key);
      const double r_own = Check(sd::DecisionCostRatio(truth, own, cost, law), key);
      const double r_moved = Check(sd::DecisionCostRatio(truth, moved, cost, law), key);
      dj["decision_cost_ratio"][key] = {{"own-log", r_own}, {"proxy+cal", r_moved}};
    }
    out["devices"].push_back(dj);
  }
  if (json) {
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::printf(
      "\ndecision-cost ratio (BI on predicted costs, priced on profiled / BI on profiled);"
      " rayleigh snr %.1f dB, slowdown %.1f\n",
      snr_db, slowdown);
  std::printf("%-8s %-22s %10s %10s\n", "device", "model", "own-log", "proxy+cal");
  for (const auto& dj : out["devices"]) {
    if (!dj.contains("decision_cost_ratio")) continue;
    for (const auto& [key, r] : dj["decision_cost_ratio"].items())
      std::printf("%-8s %-22s %10.4f %10.4f\n", dj["device"].get<std::string>().c_str(),
                  key.c_str(), r["own-log"].get<double>(), r["proxy+cal"].get<double>());
  }
  return 0;
}

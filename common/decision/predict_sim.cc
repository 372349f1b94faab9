// predict_sim: per-unit cost predictors and proxy-device transfer (issue 10, items 1-2).
//
//   predict_sim [--dir data/unit_profiles] [--proxy t1] [--calib 5] [--every 4] [--lambda 0.01]
//               [--snr-db 10] [--slowdown 10] [--json]
//
// Exit codes: 0 ok, 2 bad options or no profiles / proxy under --dir, 1 a profile that does not
// load or fit.
//
// Every sub-directory of --dir is one device setting (profiles written by
// scripts/make_unit_profiles.sh). Prints, per device:
//   1. per-device fits (log and linear ridge; log with kernel-shape features when every profile
//      has "layers") on the held-out units (every --every-th unit);
//   2. proxy transfer: the log predictor fitted on all of --proxy's units, mapped to the device by
//   a log-space map fitted on --calib measured units taken
//      from the device's training units: a common scale and an affine map (units spread over the
//      proxy's ranks; both monotone), and a scale per unit type (units spread over the types,
//      then the ranks); scored on the same held-out units, and swept over 3..16 units;
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

#include "common/cli_parse.h"
#include "common/decision/channel.h"
#include "common/decision/unit_predictor.h"

namespace sd = splitinfer::decision;

namespace {

struct Device {
  std::string name;
  std::map<std::string, sd::ModelProfile> profiles;
  std::vector<sd::UnitSample> train, test;
};

// The measured calibration units and the three maps fitted on them.
struct Calibrations {
  std::vector<size_t> rank_units, type_units;  // indices into the device's training units
  sd::ProxyCalibration scale, affine, type;
};

template <typename T>
T Check(splitinfer::Result<T> r, const std::string& what) {
  if (!r.ok()) {
    std::cerr << "predict_sim: " << what << ": " << r.status() << "\n";
    std::exit(1);
  }
  return std::move(*r);
}

Calibrations Calibrate(const std::vector<sd::UnitSample>& train,
                       const std::vector<double>& proxy_on_train, int k) {
  Calibrations c;
  std::vector<std::string> types;
  for (const sd::UnitSample& u : train) types.push_back(u.type);
  c.rank_units = sd::SpreadByRank(proxy_on_train, k);
  c.type_units = sd::SpreadByTypeAndRank(proxy_on_train, types, k);
  std::vector<double> rp, rt, tp, tt;
  std::vector<std::string> tty;
  for (size_t i : c.rank_units) rp.push_back(proxy_on_train[i]), rt.push_back(train[i].time_ms);
  for (size_t i : c.type_units) {
    tp.push_back(proxy_on_train[i]);
    tt.push_back(train[i].time_ms);
    tty.push_back(train[i].type);
  }
  c.scale = Check(sd::FitProxyCalibration(rp, rt, sd::CalibrationMap::kScale), "calibration");
  c.affine = Check(sd::FitProxyCalibration(rp, rt, sd::CalibrationMap::kAffine), "calibration");
  c.type = Check(sd::FitTypeCalibration(tp, tt, tty), "calibration");
  return c;
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
  SPLITINFER_CLI_PARSE(app, argc, argv);

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
  bool have_layers = true;
  for (const Device& d : devices)
    for (const auto* set : {&d.train, &d.test})
      for (const sd::UnitSample& u : *set) have_layers = have_layers && u.has_layers;
  sd::PredictorOptions log_opts, lin_opts, kernel_opts;
  log_opts.ridge_lambda = lin_opts.ridge_lambda = kernel_opts.ridge_lambda = lambda;
  lin_opts.space = sd::FeatureSpace::kLinear;
  kernel_opts.kernel_features = true;
  // Kernel features in one model for every unit type (no per-type models): the unit's type
  // then comes only from its kernel shapes, which is what lets it reach a new model family.
  sd::PredictorOptions pooled_opts = kernel_opts;
  pooled_opts.min_type_samples = 1 << 30;
  // The proxy's predictor: log ridge per unit type (kernel features predict no better on units of
  // known families; docs/predictors.md).
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
  out["kernel_features"] = have_layers;
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
    // Calibration units come from the device's training units.
    std::vector<double> proxy_on_train;
    for (const sd::UnitSample& u : d.train)
      proxy_on_train.push_back(Check(proxy_pred.PredictMs(u), d.name));
    const Calibrations cal = Calibrate(d.train, proxy_on_train, calib);
    for (const auto& [key, units] : {std::make_pair("calibration_units", &cal.rank_units),
                                     std::make_pair("type_calibration_units", &cal.type_units)}) {
      dj[key] = nlohmann::ordered_json::array();
      for (size_t i : *units)
        dj[key].push_back({{"unit", d.train[i].source + "/" + d.train[i].name},
                           {"type", d.train[i].type},
                           {"proxy_ms", proxy_on_train[i]},
                           {"measured_ms", d.train[i].time_ms}});
    }
    const std::string k = std::to_string(calib);
    std::vector<std::pair<std::string, sd::PredictionError>> rows = {
        {"own-log", Check(sd::EvaluatePredictor(d.test, own_log), d.name)},
        {"own-linear", Check(sd::EvaluatePredictor(d.test, own_lin), d.name)},
    };
    if (have_layers) {
      const sd::UnitPredictor own_kernel =
          Check(sd::UnitPredictor::Fit(d.train, kernel_opts), d.name);
      rows.emplace_back("own-log+kernel", Check(sd::EvaluatePredictor(d.test, own_kernel), d.name));
      const sd::UnitPredictor own_pooled =
          Check(sd::UnitPredictor::Fit(d.train, pooled_opts), d.name);
      rows.emplace_back("own-pooled+kernel",
                        Check(sd::EvaluatePredictor(d.test, own_pooled), d.name));
    }
    rows.emplace_back("proxy-raw", Check(sd::EvaluatePredictor(d.test, proxy_pred), d.name));
    rows.emplace_back("proxy+" + k + "cal-scale",
                      Check(sd::EvaluatePredictor(d.test, proxy_pred, &cal.scale), d.name));
    rows.emplace_back("proxy+" + k + "cal-affine",
                      Check(sd::EvaluatePredictor(d.test, proxy_pred, &cal.affine), d.name));
    rows.emplace_back("proxy+" + k + "cal-type",
                      Check(sd::EvaluatePredictor(d.test, proxy_pred, &cal.type), d.name));
    // How the calibrated errors move with the number of measured units.
    for (int n : {3, 4, 5, 8, 12, 16}) {
      const Calibrations c = Calibrate(d.train, proxy_on_train, n);
      nlohmann::ordered_json row;
      row["units"] = n;
      for (const auto& [name, map] :
           {std::make_pair("scale", &c.scale), std::make_pair("affine", &c.affine),
            std::make_pair("type", &c.type)})
        row[name] = Check(sd::EvaluatePredictor(d.test, proxy_pred, map), d.name).median_rel;
      dj["calibration_sweep"].push_back(row);
    }
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
      if (have_layers) {
        const sd::UnitPredictor pk = Check(sd::UnitPredictor::Fit(others, pooled_opts), fam);
        dj["leave_model_out_kernel"][fam] = err_json(Check(sd::EvaluatePredictor(held, pk), fam));
      }
      (void)count;
    }
    dj["calibration_scale"] = {{"a", cal.scale.a}, {"b", cal.scale.b}};
    dj["calibration_affine"] = {{"a", cal.affine.a}, {"b", cal.affine.b}};
    dj["calibration_type"] = cal.type.type_a;
    if (!json) {
      for (const auto& [key, tag] : {std::make_pair("leave_model_out", "lomo-log:"),
                                     std::make_pair("leave_model_out_kernel", "lomo-kernel:")}) {
        if (!dj.contains(key)) continue;
        for (const auto& [fam, e] : dj[key].items())
          std::printf("%-8s %-22s %5d %12.3f %10.3f %9.3f\n", d.name.c_str(), (tag + fam).c_str(),
                      e["n"].get<int>(), e["median_abs_ms"].get<double>(),
                      e["median_rel"].get<double>(), e["spearman"].get<double>());
      }
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
      const sd::ModelProfile scaled = Check(sd::PredictProfile(truth, proxy_pred, &cal.scale), key);
      const sd::ModelProfile typed = Check(sd::PredictProfile(truth, proxy_pred, &cal.type), key);
      dj["decision_cost_ratio"][key] = {
          {"own-log", Check(sd::DecisionCostRatio(truth, own, cost, law), key)},
          {"proxy+scale", Check(sd::DecisionCostRatio(truth, scaled, cost, law), key)},
          {"proxy+type", Check(sd::DecisionCostRatio(truth, typed, cost, law), key)}};
    }
    out["devices"].push_back(dj);
  }
  if (json) {
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::printf("\nmedian relative error of the calibrated proxy by number of measured units\n");
  std::printf("%-8s %5s %8s %8s %8s\n", "device", "units", "scale", "affine", "type");
  for (const auto& dj : out["devices"])
    for (const auto& row : dj["calibration_sweep"])
      std::printf("%-8s %5d %8.3f %8.3f %8.3f\n", dj["device"].get<std::string>().c_str(),
                  row["units"].get<int>(), row["scale"].get<double>(), row["affine"].get<double>(),
                  row["type"].get<double>());
  std::printf(
      "\ndecision-cost ratio (BI on predicted costs, priced on profiled / BI on profiled);"
      " rayleigh snr %.1f dB, slowdown %.1f\n",
      snr_db, slowdown);
  std::printf("%-8s %-22s %10s %12s %12s\n", "device", "model", "own-log", "proxy+scale",
              "proxy+type");
  for (const auto& dj : out["devices"]) {
    if (!dj.contains("decision_cost_ratio")) continue;
    for (const auto& [key, r] : dj["decision_cost_ratio"].items())
      std::printf("%-8s %-22s %10.4f %12.4f %12.4f\n", dj["device"].get<std::string>().c_str(),
                  key.c_str(), r["own-log"].get<double>(), r["proxy+scale"].get<double>(),
                  r["proxy+type"].get<double>());
  }
  return 0;
}

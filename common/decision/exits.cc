#include "common/decision/exits.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <sstream>

#include "common/decision/channel.h"

namespace splitinfer::decision {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Typed readers that name the JSON path in their errors.
Status Need(const nlohmann::json& o, const char* key, const std::string& where) {
  if (!o.is_object()) return InvalidArgumentError(where + ": expected an object");
  if (!o.contains(key)) return InvalidArgumentError(where + ": missing key '" + key + "'");
  return Status::Ok();
}

Status GetInt(const nlohmann::json& o, const char* key, const std::string& where, int64_t* out) {
  SPLITINFER_RETURN_IF_ERROR(Need(o, key, where));
  const nlohmann::json& v = o.at(key);
  if (v.is_number_integer()) {
    *out = v.get<int64_t>();
    return Status::Ok();
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) {
      *out = static_cast<int64_t>(d);
      return Status::Ok();
    }
  }
  return InvalidArgumentError(where + "." + key + ": expected an integer");
}

Status GetDouble(const nlohmann::json& o, const char* key, const std::string& where, double* out) {
  SPLITINFER_RETURN_IF_ERROR(Need(o, key, where));
  const nlohmann::json& v = o.at(key);
  if (!v.is_number()) return InvalidArgumentError(where + "." + key + ": expected a number");
  *out = v.get<double>();
  if (!std::isfinite(*out)) return InvalidArgumentError(where + "." + key + ": not finite");
  return Status::Ok();
}

Status GetString(const nlohmann::json& o, const char* key, const std::string& where,
                 std::string* out) {
  SPLITINFER_RETURN_IF_ERROR(Need(o, key, where));
  if (!o.at(key).is_string())
    return InvalidArgumentError(where + "." + key + ": expected a string");
  *out = o.at(key).get<std::string>();
  return Status::Ok();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Stats.

Result<ExitStats> ParseExitStats(const nlohmann::json& j, const std::string& source) {
  ExitStats st;
  const std::string& w = source;
  int64_t v = 0;
  SPLITINFER_RETURN_IF_ERROR(GetString(j, "model", w, &st.model));
  SPLITINFER_RETURN_IF_ERROR(GetString(j, "dataset", w, &st.dataset));
  SPLITINFER_RETURN_IF_ERROR(GetInt(j, "seed", w, &st.seed));
  SPLITINFER_RETURN_IF_ERROR(GetInt(j, "train_size", w, &v));
  st.train_size = static_cast<int>(v);
  SPLITINFER_RETURN_IF_ERROR(GetInt(j, "test_size", w, &v));
  st.test_size = static_cast<int>(v);
  SPLITINFER_RETURN_IF_ERROR(GetInt(j, "num_units", w, &v));
  if (v < 1 || v > 100000) return InvalidArgumentError(w + ".num_units: must be in [1, 1e5]");
  st.num_units = static_cast<int>(v);
  SPLITINFER_RETURN_IF_ERROR(Need(j, "exits", w));
  const nlohmann::json& exits = j.at("exits");
  if (!exits.is_array() || exits.empty())
    return InvalidArgumentError(w + ".exits: expected a non-empty array");
  for (size_t i = 0; i < exits.size(); ++i) {
    const std::string where = w + ".exits[" + std::to_string(i) + "]";
    const nlohmann::json& e = exits[i];
    ExitHead h;
    SPLITINFER_RETURN_IF_ERROR(GetInt(e, "index", where, &v));
    if (v != static_cast<int64_t>(i))
      return InvalidArgumentError(where + ".index: expected " + std::to_string(i) + ", got " +
                                  std::to_string(v));
    h.index = static_cast<int>(v);
    SPLITINFER_RETURN_IF_ERROR(GetInt(e, "after_unit", where, &v));
    if (v < 1 || v > st.num_units)
      return InvalidArgumentError(where + ".after_unit: must be in [1, num_units = " +
                                  std::to_string(st.num_units) + "], got " + std::to_string(v));
    if (i > 0 && v <= st.exits.back().after_unit)
      return InvalidArgumentError(where + ".after_unit: exits must sit at increasing units");
    h.after_unit = static_cast<int>(v);
    SPLITINFER_RETURN_IF_ERROR(GetInt(e, "head_param_bytes", where, &h.head_param_bytes));
    SPLITINFER_RETURN_IF_ERROR(GetInt(e, "head_flops", where, &h.head_flops));
    SPLITINFER_RETURN_IF_ERROR(GetDouble(e, "head_time_ms", where, &h.head_time_ms));
    if (h.head_time_ms < 0) return InvalidArgumentError(where + ".head_time_ms: must be >= 0");
    SPLITINFER_RETURN_IF_ERROR(GetDouble(e, "test_accuracy", where, &h.test_accuracy));
    if (h.test_accuracy < 0 || h.test_accuracy > 1)
      return InvalidArgumentError(where + ".test_accuracy: must be in [0, 1]");
    st.exits.push_back(h);
  }
  if (st.exits.back().after_unit != st.num_units)
    return InvalidArgumentError(w +
                                ".exits: the last exit (the final classifier) must sit after "
                                "unit num_units = " +
                                std::to_string(st.num_units));
  SPLITINFER_RETURN_IF_ERROR(Need(j, "samples", w));
  const nlohmann::json& samples = j.at("samples");
  if (!samples.is_array() || samples.empty())
    return InvalidArgumentError(w + ".samples: expected a non-empty array");
  const size_t ne = st.exits.size();
  st.samples.reserve(samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    const std::string where = w + ".samples[" + std::to_string(i) + "]";
    const nlohmann::json& s = samples[i];
    ExitSample x;
    SPLITINFER_RETURN_IF_ERROR(GetInt(s, "label", where, &v));
    x.label = static_cast<int>(v);
    SPLITINFER_RETURN_IF_ERROR(Need(s, "exits", where));
    const nlohmann::json& se = s.at("exits");
    if (!se.is_array() || se.size() != ne)
      return InvalidArgumentError(where + ".exits: expected " + std::to_string(ne) +
                                  " entries (one per exit), got " +
                                  (se.is_array() ? std::to_string(se.size()) : "no array"));
    x.conf.resize(ne);
    x.entropy.resize(ne);
    x.pred.resize(ne);
    for (size_t e = 0; e < ne; ++e) {
      const std::string we = where + ".exits[" + std::to_string(e) + "]";
      SPLITINFER_RETURN_IF_ERROR(GetDouble(se[e], "conf", we, &x.conf[e]));
      if (x.conf[e] < 0 || x.conf[e] > 1)
        return InvalidArgumentError(we + ".conf: must be in [0, 1]");
      SPLITINFER_RETURN_IF_ERROR(GetDouble(se[e], "entropy", we, &x.entropy[e]));
      if (x.entropy[e] < 0 || x.entropy[e] > 1)
        return InvalidArgumentError(we + ".entropy: must be in [0, 1]");
      SPLITINFER_RETURN_IF_ERROR(GetInt(se[e], "pred", we, &v));
      x.pred[e] = static_cast<int>(v);
    }
    st.samples.push_back(std::move(x));
  }
  return st;
}

Result<ExitStats> ParseExitStatsText(const std::string& text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    return InvalidArgumentError(source + ": " + e.what());
  }
  return ParseExitStats(j, source);
}

Result<ExitStats> LoadExitStats(const std::string& path) {
  Result<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  return ParseExitStatsText(*text, path);
}

nlohmann::json ExitStats::ToJson() const {
  nlohmann::json j = {{"model", model},         {"dataset", dataset},
                      {"seed", seed},           {"train_size", train_size},
                      {"test_size", test_size}, {"num_units", num_units}};
  j["exits"] = nlohmann::json::array();
  for (const ExitHead& h : exits)
    j["exits"].push_back({{"index", h.index},
                          {"after_unit", h.after_unit},
                          {"head_param_bytes", h.head_param_bytes},
                          {"head_flops", h.head_flops},
                          {"head_time_ms", h.head_time_ms},
                          {"test_accuracy", h.test_accuracy}});
  j["samples"] = nlohmann::json::array();
  for (const ExitSample& s : samples) {
    nlohmann::json e = nlohmann::json::array();
    for (size_t i = 0; i < s.conf.size(); ++i)
      e.push_back({{"conf", s.conf[i]}, {"entropy", s.entropy[i]}, {"pred", s.pred[i]}});
    j["samples"].push_back({{"label", s.label}, {"exits", e}});
  }
  return j;
}

std::vector<double> DefaultThresholdGrid() {
  return {0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, kExitOff};
}

// ---------------------------------------------------------------------------------------------
// The exit-aware model.

Result<ExitModel> ExitModel::Create(const CostModel& cost, const ExitStats& stats,
                                    double accuracy_weight, ErrorEstimate error) {
  if (stats.num_units != cost.num_units())
    return InvalidArgumentError("exit stats of " + stats.model + " have " +
                                std::to_string(stats.num_units) + " units, the profile " +
                                std::to_string(cost.num_units()));
  if (stats.exits.empty() || stats.exits.back().after_unit != cost.num_units())
    return InvalidArgumentError("exit stats: the last exit must sit at boundary N");
  if (!(accuracy_weight >= 0) || !std::isfinite(accuracy_weight))
    return InvalidArgumentError("accuracy_weight must be finite and >= 0");
  ExitModel m;
  m.cost_ = std::make_shared<const CostModel>(cost);
  m.stats_ = stats;
  m.accuracy_weight_ = accuracy_weight;
  m.error_ = error;
  const int n = cost.num_units();
  const CostOptions& o = cost.options();
  m.exit_at_.assign(n + 1, -1);
  for (const ExitHead& h : stats.exits) {
    m.exit_at_[h.after_unit] = h.index;
    const double t = h.head_time_ms * 1e-3 * o.device_slowdown;
    m.head_dev_s_.push_back(t);
    // Energy like a unit's: power x time, or kappa f^2 x cycles with cycles = f t.
    m.head_dev_j_.push_back(o.energy_model == EnergyModel::kPower
                                ? o.device_power_w * t
                                : o.kappa * o.device_freq_hz * o.device_freq_hz *
                                      (o.device_freq_hz * t));
    m.head_edge_s_.push_back(h.head_time_ms * 1e-3 / o.edge_speedup);
  }
  for (int l = 1; l <= n; ++l)
    m.unit_edge_s_.push_back(cost.profile().units[l - 1].time_ms * 1e-3 / o.edge_speedup);
  return m;
}

int ExitModel::AnsweringExit(const ExitSample& s, const Thresholds& t) const {
  const int ne = num_exits();
  for (int e = 0; e + 1 < ne; ++e)
    if (t[e] <= 1.0 && s.conf[e] >= t[e]) return e;
  return ne - 1;
}

namespace {

// Runs one inference; `offload(l, obs)` decides at boundary l < N.
template <typename Decide>
InferenceOutcome Walk(const ExitModel& m, const ExitSample& sample, const ChannelPath& path,
                      const Thresholds& t, Decide&& offload) {
  const CostModel& cost = m.cost();
  const CostOptions& o = cost.options();
  const int n = m.num_units(), ne = m.num_exits();
  const int answer = m.AnsweringExit(sample, t);
  const int answer_at = m.ExitBoundary(answer);
  InferenceOutcome r;
  r.exit = answer;
  r.correct = sample.Correct(answer);
  InferenceSpend spend;  // priced by PriceInference, as a live inference's ledger is
  spend.device_j = 0.0;
  for (int l = 0; l <= n; ++l) {
    if (l > 0) {
      spend.device_s += cost.DeviceTime(l);
      spend.device_j += cost.DeviceEnergy(l);
      const int e = m.ExitAt(l);
      if (e >= 0 && ExitActive(t, e, ne)) {
        spend.device_s += m.HeadDeviceTime(e);
        spend.device_j += m.HeadDeviceEnergy(e);
      }
      if (l == answer_at) break;  // answered on the device
    }
    if (l == n) break;
    const double tx = path.transfer_s[l];
    if (!std::isfinite(tx)) continue;  // cannot offload here: run the next unit
    ExitObservation obs{l, path.state[l], path.rate_bps[l]};
    if (!offload(obs)) continue;
    r.offload_boundary = l;
    spend.upload_s = tx;
    spend.edge_queue_s = o.edge_queue_ms * 1e-3;
    for (int u = l + 1; u <= answer_at; ++u) {
      spend.edge_compute_s += m.UnitEdgeTime(u);
      const int e = m.ExitAt(u);
      if (e >= 0 && ExitActive(t, e, ne)) spend.edge_compute_s += m.HeadEdgeTime(e);
    }
    break;
  }
  spend.penalty = r.correct ? 0.0 : m.accuracy_weight();
  const PricedInference priced = PriceInference(o, spend);
  r.latency_s = priced.latency_s;
  r.energy_j = priced.energy_j;
  r.cost = priced.total;
  return r;
}

}  // namespace

InferenceOutcome ExitModel::Run(const ExitSample& sample, const ChannelPath& path,
                                ExitController& controller) const {
  const ExitObservation at0{0, path.state[0], path.rate_bps[0]};
  const Thresholds& t = controller.Begin(at0);
  const InferenceOutcome r = Walk(*this, sample, path, t, [&controller](const ExitObservation& o) {
    return controller.Offload(o);
  });
  controller.Feedback(r);
  return r;
}

InferenceOutcome ExitModel::RunPlan(const ExitSample& sample, const ChannelPath& path,
                                    const ExitPlan& plan) const {
  const int k = plan.boundary;
  return Walk(*this, sample, path, plan.thresholds,
              [k](const ExitObservation& o) { return o.boundary >= k; });
}

Result<StoppingProblem> ExitModel::Fold(const StoppingProblem& base,
                                        const std::vector<const ExitSample*>& samples,
                                        const Thresholds& t) const {
  const int n = num_units(), ne = num_exits(), k = base.num_states();
  if (base.horizon != n)
    return InvalidArgumentError("exit fold: the base problem's horizon must be N = " +
                                std::to_string(n));
  if (static_cast<int>(t.size()) != ne)
    return InvalidArgumentError("exit fold: expected " + std::to_string(ne) + " thresholds");
  if (samples.empty()) return InvalidArgumentError("exit fold: no samples");
  const CostModel& cost = *cost_;
  const CostOptions& o = cost.options();
  const double inv = 1.0 / static_cast<double>(samples.size());
  // Shares of samples answered at each exit, and of those answered wrong.
  std::vector<double> fire(ne, 0.0), wrong(ne, 0.0);
  for (const ExitSample* s : samples) {
    const int e = AnsweringExit(*s, t);
    fire[e] += inv;
    if (error_ == ErrorEstimate::kConfidence)
      wrong[e] += inv * (1.0 - s->conf[e]);
    else if (!s->Correct(e))
      wrong[e] += inv;
  }
  // alive[l]: share still running at boundary l (after the head at l did not fire).
  std::vector<double> alive(n + 1, 0.0);
  for (int l = 0; l <= n; ++l)
    for (int e = 0; e < ne; ++e)
      if (ExitBoundary(e) > l) alive[l] += fire[e];
  StoppingProblem p = base;
  for (int l = 0; l < n; ++l) {
    double c = alive[l] * cost.ContinueCost(l + 1);
    const int e = ExitAt(l + 1);
    if (e >= 0 && ExitActive(t, e, ne)) {
      c += alive[l] * (o.w_energy * HeadDeviceEnergy(e) + o.w_time * HeadDeviceTime(e));
      c += accuracy_weight_ * wrong[e];
    }
    p.continue_cost(l) = c;
    // Edge part of a stop at l: every sample alive at l runs on the edge up to its answer.
    double edge = 0.0;
    for (int a = 0; a < ne; ++a) {
      const int b = ExitBoundary(a);
      if (b <= l || fire[a] == 0.0) continue;
      double te = o.edge_queue_ms * 1e-3;
      for (int u = l + 1; u <= b; ++u) {
        te += UnitEdgeTime(u);
        const int h = ExitAt(u);
        if (h >= 0 && ExitActive(t, h, ne)) te += HeadEdgeTime(h);
      }
      edge += fire[a] * o.w_time * te + accuracy_weight_ * wrong[a];
    }
    for (int s = 0; s < k; ++s) {
      if (!base.Allowed(l, s)) continue;  // stays "not allowed"
      const double transfer = base.stop_cost(l, s) - o.w_time * cost.EdgeTime(l);
      p.stop_cost(l, s) = alive[l] * transfer + edge;
    }
  }
  p.stop_cost.row(n).setZero();  // everything answered by boundary N
  return p;
}

// ---------------------------------------------------------------------------------------------
// Controllers.

namespace {

// Every vector of grid^(E-1), the final exit's entry set to kExitOff (ignored).
Result<std::vector<Thresholds>> Combinations(int num_exits, const std::vector<double>& grid,
                                             int max_combinations) {
  if (grid.empty()) return InvalidArgumentError("threshold grid is empty");
  double total = 1.0;
  for (int e = 0; e + 1 < num_exits; ++e) total *= static_cast<double>(grid.size());
  if (total > max_combinations)
    return ResourceExhaustedError("threshold search: " + std::to_string(total) +
                                  " combinations exceed the limit " +
                                  std::to_string(max_combinations));
  std::vector<Thresholds> out;
  Thresholds t(num_exits, kExitOff);
  std::vector<size_t> idx(num_exits > 1 ? num_exits - 1 : 0, 0);
  while (true) {
    for (size_t e = 0; e < idx.size(); ++e) t[e] = grid[idx[e]];
    out.push_back(t);
    size_t e = 0;
    while (e < idx.size() && ++idx[e] == grid.size()) idx[e++] = 0;
    if (e == idx.size()) break;
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<TableExitController>> MakeOsController(
    const ExitModel& model, const StoppingProblem& base,
    const std::vector<const ExitSample*>& samples, const std::vector<double>& grid, bool per_state,
    OsControllerInfo* info, int max_combinations) {
  Result<std::vector<Thresholds>> combos = Combinations(model.num_exits(), grid, max_combinations);
  if (!combos.ok()) return combos.status();
  const int k = base.num_states();
  const int rows = per_state ? k : 1;
  std::vector<double> best(rows, kInf);
  std::vector<int> best_combo(rows, -1);
  std::vector<std::vector<uint8_t>> tables(rows);
  for (size_t c = 0; c < combos->size(); ++c) {
    Result<StoppingProblem> p = model.Fold(base, samples, (*combos)[c]);
    if (!p.ok()) return p.status();
    BiSolution sol = SolveBackwardInduction(*p);
    for (int r = 0; r < rows; ++r) {
      const double v = per_state ? sol.value(0, r) : sol.expected_cost;
      if (v < best[r]) {  // strict: ties keep the earlier (tighter) thresholds
        best[r] = v;
        best_combo[r] = static_cast<int>(c);
        tables[r] = sol.stop;
      }
    }
  }
  std::vector<Thresholds> th(rows);
  double expected = 0.0;
  for (int r = 0; r < rows; ++r) {
    th[r] = (*combos)[best_combo[r]];
    expected += per_state ? base.initial(r) * best[r] : best[r];
  }
  if (info) {
    info->expected_cost = expected;
    info->thresholds = th;
    info->combinations = static_cast<int>(combos->size());
  }
  return std::make_unique<TableExitController>("os", k, std::move(th), std::move(tables));
}

Result<std::unique_ptr<TableExitController>> MakeFixedController(
    const ExitModel& model, const StoppingProblem& base,
    const std::vector<const ExitSample*>& samples, const std::vector<double>& grid,
    FixedControllerInfo* info) {
  if (grid.empty()) return InvalidArgumentError("fixed controller: empty threshold grid");
  const int ne = model.num_exits(), n = model.num_units();
  double best = kInf;
  Thresholds best_t;
  int best_k = n;
  double best_th = kExitOff;
  std::vector<uint8_t> table;
  for (double th : grid) {
    Thresholds t(ne, th);
    t[ne - 1] = kExitOff;
    Result<StoppingProblem> p = model.Fold(base, samples, t);
    if (!p.ok()) return p.status();
    for (int b = 0; b <= n; ++b) {
      std::unique_ptr<TablePolicy> pol = MakeFixedPolicy(*p, b, "fixed");
      const double v = ExactExpectedCost(*p, *pol);
      if (v < best) {
        best = v;
        best_t = t;
        best_k = b;
        best_th = th;
        table = pol->table();
      }
    }
  }
  if (info) {
    info->expected_cost = best;
    info->threshold = best_th;
    info->boundary = best_k;
  }
  return std::make_unique<TableExitController>("fixed", base.num_states(),
                                               std::vector<Thresholds>{best_t},
                                               std::vector<std::vector<uint8_t>>{std::move(table)});
}

Result<std::unique_ptr<TableExitController>> MakePlainBiController(
    const ExitModel& model, const StoppingProblem& base,
    const std::vector<const ExitSample*>& samples, double* expected_cost) {
  Thresholds t(model.num_exits(), kExitOff);
  std::unique_ptr<TablePolicy> bi = MakeBiPolicy(base);
  if (expected_cost) {
    Result<StoppingProblem> p = model.Fold(base, samples, t);
    if (!p.ok()) return p.status();
    *expected_cost = ExactExpectedCost(*p, *bi);
  }
  return std::make_unique<TableExitController>("bi", base.num_states(), std::vector<Thresholds>{t},
                                               std::vector<std::vector<uint8_t>>{bi->table()});
}

// ---------------------------------------------------------------------------------------------
// The world.

PathSource::PathSource(const CostModel& cost, std::shared_ptr<const SeriesModel> model,
                       RateSeries series)
    : model_(std::move(model)), series_(std::move(series)), clock_(series_) {
  for (int l = 0; l <= cost.num_units(); ++l) bits_.push_back(cost.Bits(l));
  observed_ = series_.ObservedRates(std::max<size_t>(1, model_->window()));
}

ChannelPath PathSource::At(size_t i0) const {
  const int n = static_cast<int>(bits_.size()) - 1;
  const size_t len = series_.size();
  ChannelPath p;
  p.state.resize(n + 1);
  p.rate_bps.resize(n + 1);
  p.transfer_s.resize(n + 1);
  for (int l = 0; l <= n; ++l) {
    const size_t i = (i0 + model_->lag()[l]) % len;
    p.rate_bps[l] = observed_[i];
    p.state[l] = model_->StateOf(observed_[i]);
    p.transfer_s[l] = l == n ? 0.0 : clock_.TransferTime(i + 1, bits_[l]);
  }
  return p;
}

bool ExitWorldOptions::IsValid(std::string* error) const {
  std::ostringstream m;
  if (num_states < 1 || num_states > 1024)
    m << "num_states must be in [1, 1024] (got " << num_states << ")";
  else if (!(grid_s >= 0.001 && grid_s <= 1.0))
    m << "grid_s must be in [0.001, 1] (got " << grid_s << ")";
  else if (!(observe_window_s >= 0))
    m << "observe_window_s must be >= 0";
  else if (!(fit_fraction > 0 && fit_fraction < 1))
    m << "fit_fraction must be in (0, 1) (got " << fit_fraction << ")";
  else if (!(calib_fraction > 0 && calib_fraction < 1))
    m << "calib_fraction must be in (0, 1) (got " << calib_fraction << ")";
  else if (!(rate_scale > 0))
    m << "rate_scale must be > 0";
  else
    return true;
  if (error) *error = m.str();
  return false;
}

Result<ExitWorld> BuildExitWorld(const CostModel& cost, const ExitStats& stats,
                                 double accuracy_weight, const ChannelSpec& ch,
                                 const ExitWorldOptions& o, ErrorEstimate estimate) {
  std::string error;
  if (!o.IsValid(&error)) return InvalidArgumentError("exit world: " + error);
  if (ch.kind == ChannelSpec::Kind::kRayleigh)
    return InvalidArgumentError(ch.text +
                                ": exits_sim needs a rate series (trace:, markov-fit:, "
                                "gauss-markov:)");
  Result<ExitModel> model = ExitModel::Create(cost, stats, accuracy_weight, estimate);
  if (!model.ok()) return model.status();
  // UCC logs through the SNR column, as split_sim's default.
  Result<RateSeries> loaded =
      LoadChannelSeries(ch, o.grid_s, o.bandwidth_hz, o.gauss_markov_duration_s, o.seed,
                        UccColumn::kSnrShannon, o.rate_scale);
  if (!loaded.ok()) return loaded.status();
  RateSeries series = std::move(*loaded);
  const size_t total = series.size(), cut = static_cast<size_t>(total * o.fit_fraction);
  if (cut < 100 || total - cut < 100)
    return InvalidArgumentError(ch.text + ": series too short to fit and score (" +
                                std::to_string(total) + " steps)");
  SeriesFitOptions fo;
  fo.num_states = o.num_states;
  fo.observe_window_s = o.observe_window_s;
  fo.markov = ch.kind != ChannelSpec::Kind::kTrace;
  fo.pricing = Pricing::kExpectedTransfer;
  Result<SeriesModel> sm = SeriesModel::Fit(cost, series.Slice(0, cut), fo, ch.text);
  if (!sm.ok()) return sm.status();
  ExitWorld w;
  w.channel = ch.text;
  w.model = std::make_shared<const ExitModel>(std::move(*model));
  w.series_model = std::make_shared<const SeriesModel>(std::move(*sm));
  w.base = w.series_model->problem();
  w.fit = std::make_shared<const PathSource>(cost, w.series_model, series.Slice(0, cut));
  w.score = std::make_shared<const PathSource>(cost, w.series_model, series.Slice(cut, total));
  const std::vector<ExitSample>& all = w.model->stats().samples;
  const size_t nc = static_cast<size_t>(std::lround(o.calib_fraction * all.size()));
  if (nc < 1 || nc >= all.size())
    return InvalidArgumentError("exit world: too few samples to calibrate and evaluate (" +
                                std::to_string(all.size()) + ")");
  for (size_t i = 0; i < all.size(); ++i)
    ((i < nc) != o.swap_samples ? w.calib : w.eval).push_back(&all[i]);
  return w;
}

std::vector<ControllerStats> EvaluateControllers(const ExitModel& model, const PathSource& paths,
                                                 const std::vector<const ExitSample*>& samples,
                                                 const std::vector<ExitController*>& controllers,
                                                 int episodes, uint64_t seed) {
  const size_t nc = controllers.size();
  std::vector<double> sum(nc, 0), sum_sq(nc, 0), lat(nc, 0), en(nc, 0), right(nc, 0), local(nc, 0),
      offb(nc, 0), offn(nc, 0);
  std::vector<std::vector<int>> exits(nc, std::vector<int>(model.num_exits(), 0));
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> start(0, paths.size() - 1);
  std::uniform_int_distribution<size_t> pick(0, samples.size() - 1);
  for (int ep = 0; ep < episodes; ++ep) {
    const ChannelPath path = paths.At(start(rng));
    const ExitSample& s = *samples[pick(rng)];
    for (size_t c = 0; c < nc; ++c) {
      const InferenceOutcome r = model.Run(s, path, *controllers[c]);
      sum[c] += r.cost;
      sum_sq[c] += r.cost * r.cost;
      lat[c] += r.latency_s;
      en[c] += r.energy_j;
      right[c] += r.correct ? 1 : 0;
      local[c] += r.offload_boundary < 0 ? 1 : 0;
      if (r.offload_boundary >= 0) {
        offb[c] += r.offload_boundary;
        offn[c] += 1;
      }
      ++exits[c][r.exit];
    }
  }
  std::vector<ControllerStats> out;
  const double n = episodes;
  for (size_t c = 0; c < nc; ++c) {
    ControllerStats st;
    st.name = controllers[c]->name();
    st.mean_cost = sum[c] / n;
    const double var = std::max(0.0, sum_sq[c] / n - st.mean_cost * st.mean_cost);
    st.ci95 = episodes > 1 ? 1.96 * std::sqrt(var / (n - 1)) : 0.0;
    st.accuracy = right[c] / n;
    st.mean_latency_ms = 1e3 * lat[c] / n;
    st.mean_energy_mj = 1e3 * en[c] / n;
    st.share_local = local[c] / n;
    st.mean_offload_boundary = offn[c] > 0 ? offb[c] / offn[c] : kNaN;
    st.exit_counts = exits[c];
    out.push_back(std::move(st));
  }
  return out;
}

}  // namespace splitinfer::decision

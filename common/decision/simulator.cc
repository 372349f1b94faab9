#include "common/decision/simulator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <limits>
#include <memory>
#include <random>
#include <sstream>

#include "common/decision/channel.h"
#include "common/decision/robust.h"
#include "common/decision/trace.h"

namespace splitinfer::decision {

Result<RateSeries> LoadChannelSeries(const ChannelSpec& ch, double grid_s, double bandwidth_hz,
                                     double duration_s, uint64_t seed, UccColumn ucc_column,
                                     double rate_scale) {
  RateSeries series;
  if (ch.kind == ChannelSpec::Kind::kGaussMarkov) {
    GaussMarkovOptions g;
    g.snr_db = ch.snr_db;
    g.doppler_hz = ch.doppler_hz;
    g.dt_s = grid_s;
    g.duration_s = duration_s;
    g.bandwidth_hz = bandwidth_hz;
    g.seed = seed * 7919 + 17;
    Result<RateSeries> s = GenerateGaussMarkov(g);
    if (!s.ok()) return s.status();
    series = std::move(*s);
  } else {
    UccOptions uo;
    uo.dt_s = grid_s;
    uo.bandwidth_hz = bandwidth_hz;
    uo.column = ucc_column;
    Result<RateSeries> s = LoadTrace(ch.path, uo);
    if (!s.ok()) return s.status();
    series = std::move(*s);
  }
  for (double& r : series.rate_bps) r *= rate_scale;
  return series;
}

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Every parameter of an analytic channel must be given, once: a spec that silently ran on
// defaults would evaluate another channel than the one the user meant.
Status ParseKeyValues(const std::string& kind, const std::string& args, ChannelSpec* spec) {
  const std::string usage = spec->kind == ChannelSpec::Kind::kRayleigh
                                ? "rayleigh:snr_db=X"
                                : "gauss-markov:snr_db=X,doppler_hz=Y";
  if (args.empty()) {
    return InvalidArgumentError("channel: " + kind + " needs its parameters: " + usage);
  }
  if (args.back() == ',') return InvalidArgumentError("channel: '" + args + "' ends with a comma");
  bool has_snr = false, has_doppler = false;
  std::istringstream in(args);
  std::string item;
  while (std::getline(in, item, ',')) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos)
      return InvalidArgumentError("channel: expected key=value, got '" + item + "'");
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    char* end = nullptr;
    const double v = std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0' || !std::isfinite(v))
      return InvalidArgumentError("channel: " + key + " needs a number, got '" + value + "'");
    bool* seen = nullptr;
    if (key == "snr_db") {
      spec->snr_db = v;
      seen = &has_snr;
    } else if (key == "doppler_hz" && spec->kind == ChannelSpec::Kind::kGaussMarkov) {
      spec->doppler_hz = v;
      seen = &has_doppler;
    } else {
      return InvalidArgumentError("channel: unknown key '" + key + "' (" + usage + ")");
    }
    if (*seen) return InvalidArgumentError("channel: " + key + " given twice");
    *seen = true;
  }
  if (!has_snr || (spec->kind == ChannelSpec::Kind::kGaussMarkov && !has_doppler)) {
    return InvalidArgumentError("channel: " + kind + " needs " +
                                (has_snr ? "doppler_hz" : "snr_db") + ": " + usage);
  }
  return Status::Ok();
}

struct Accumulator {
  double sum = 0, sum_sq = 0, boundary = 0;
  int local = 0, edge = 0;
  std::vector<int> counts, options;
  void Add(double c, int b, int n, int option = -1, int num_options = 1) {
    if (counts.empty()) counts.assign(n + 1, 0);
    if (options.empty()) options.assign(num_options, 0);
    if (option >= 0 && b < n) ++options[option];
    ++counts[b];
    sum += c;
    sum_sq += c * c;
    boundary += b;
    local += b == n;
    edge += b == 0;
  }
  PolicyStats Stats(const std::string& name, int count) const {
    PolicyStats s;
    s.name = name;
    s.mean_cost = sum / count;
    const double var = std::max(0.0, sum_sq / count - s.mean_cost * s.mean_cost);
    s.ci95 = count > 1 ? 1.96 * std::sqrt(var * count / (count - 1) / count) : 0.0;
    s.mean_boundary = boundary / count;
    s.share_local = static_cast<double>(local) / count;
    s.share_edge = static_cast<double>(edge) / count;
    s.boundary_counts = counts;
    s.option_counts = options;
    return s;
  }
};

// The fitted world of one simulation: the problem the policies are built on, how to build it for
// another horizon (placement), and a generator of scored episodes.
struct World {
  StoppingProblem problem;
  RowMatrix terminal_rows;  // forced stop row for every placement M
  std::function<Episode(std::mt19937_64&)> draw;
  double mean_rate = 0.0;
  // Rate series only: episodes start at steps of the scored part, drawn up front and replayed in
  // time order so that the robust splitter learns only from inferences that ended before.
  std::shared_ptr<const SeriesModel> model;
  std::shared_ptr<const ScoredSeries> score;
  std::shared_ptr<const RateSeries> full;  // fitting part then scored part
  size_t cut = 0;                          // first step of the scored part in `full`
  SeriesFitOptions fit;
};

Result<World> RayleighWorld(const CostModel& cost, const ChannelSpec& ch, const SimOptions& o) {
  RayleighOptions ro;
  ro.snr_db = ch.snr_db;
  ro.bandwidth_hz = o.bandwidth_hz;
  ro.num_states = o.num_states;
  ro.outage_prob = o.outage_prob;
  Result<ChannelLaw> law = DiscretizeRayleigh(ro);
  if (!law.ok()) return law.status();
  const int n = cost.num_units();
  Result<StoppingProblem> p = BuildProblem(cost, *law, n);
  if (!p.ok()) return p.status();
  World w;
  w.problem = std::move(*p);
  w.terminal_rows = ForcedStopRows(cost, *law);
  w.mean_rate = law->stationary.dot(law->rate_bps);
  auto shared_law = std::make_shared<ChannelLaw>(std::move(*law));
  const double snr = DbToLinear(ro.snr_db), bw = ro.bandwidth_hz;
  w.draw = [&cost, shared_law, snr, bw, n](std::mt19937_64& rng) {
    std::exponential_distribution<double> gain(1.0);
    Episode e;
    e.state.resize(n + 1);
    e.stop_cost.resize(n + 1);
    const int options = cost.num_wire_options();
    if (options > 1) e.option_cost.assign(n + 1, std::vector<double>(options, 0.0));
    for (int l = 0; l <= n; ++l) {
      const double r = ShannonRate(bw, snr, gain(rng));
      const int s = shared_law->StateOf(r);
      e.state[l] = s;
      const double rate = shared_law->IsOutage(s) ? shared_law->floor_rate_bps : r;
      e.stop_cost[l] = cost.StopCostAtRate(l, rate);
      for (int c = 0; options > 1 && c < options; ++c)
        e.option_cost[l][c] = cost.StopCostForTransfer(l, cost.OptionBits(l, c) / rate, c);
    }
    return e;
  };
  return w;
}

Result<World> SeriesWorld(const CostModel& cost, const ChannelSpec& ch, const SimOptions& o) {
  const bool markov = ch.kind != ChannelSpec::Kind::kTrace;
  Result<RateSeries> loaded =
      LoadChannelSeries(ch, o.grid_s, o.bandwidth_hz, o.gauss_markov_duration_s, o.seed,
                        o.ucc_column, o.transfer_scale);
  if (!loaded.ok()) return loaded.status();
  RateSeries series = std::move(*loaded);
  const size_t total = series.size(), cut = static_cast<size_t>(total * o.fit_fraction);
  if (cut < 100 || total - cut < 100)
    return InvalidArgumentError(ch.text +
                                ": series too short to fit on one part and score on "
                                "another (" +
                                std::to_string(total) + " steps)");
  SeriesFitOptions fo;
  fo.num_states = o.num_states;
  fo.observe_window_s = o.observe_window_s;
  fo.long_window_s = o.long_window_s;
  fo.long_states = o.long_states;
  fo.markov = markov;
  fo.pricing = o.pricing;
  Result<SeriesModel> model = SeriesModel::Fit(cost, series.Slice(0, cut), fo, ch.text);
  if (!model.ok()) return model.status();
  auto shared = std::make_shared<const SeriesModel>(std::move(*model));
  auto score = std::make_shared<const ScoredSeries>(series.Slice(cut, total), shared->window(),
                                                    shared->long_window());
  World w;
  w.problem = shared->problem();
  w.terminal_rows = w.problem.stop_cost;
  w.mean_rate = shared->fit_mean_rate_bps();
  w.model = shared;
  w.score = score;
  w.full = std::make_shared<const RateSeries>(std::move(series));
  w.cut = cut;
  w.fit = fo;
  return w;
}

std::string KindName(ChannelSpec::Kind k) {
  switch (k) {
    case ChannelSpec::Kind::kRayleigh:
      return "rayleigh";
    case ChannelSpec::Kind::kGaussMarkov:
      return "gauss-markov";
    case ChannelSpec::Kind::kTrace:
      return "trace";
    case ChannelSpec::Kind::kMarkovFit:
      return "markov-fit";
  }
  return "?";
}

// The occupancy, persistence and outage part of SeriesDiagnosis (the decision part is counted
// in RunSimulation's loop).
void DiagnoseSeries(const World& w, const StoppingProblem& p, SeriesDiagnosis* d) {
  const SeriesModel& m = *w.model;
  const RateSeries& full = *w.full;
  const size_t lw = m.long_window();
  const std::vector<double> obs = full.ObservedRates(m.window());
  const std::vector<double> obs_long = lw > 0 ? full.ObservedRates(lw) : std::vector<double>{};
  const int k = p.num_states();
  auto state = [&](size_t i) { return m.StateOf(obs[i], lw > 0 ? obs_long[i] : 0.0); };
  const size_t lag = m.lag().back();
  struct Part {
    Eigen::VectorXd occupancy;
    double persistence = 0.0, outage = 0.0, longest = 0.0, mean = 0.0;
  };
  // Outage on the rate over 200 ms (or the observation window, if longer): a 5 ms step of a
  // packet trace is often empty without the link being down.
  const std::vector<double> obs_outage =
      full.ObservedRates(std::max<size_t>(m.window(), std::lround(0.2 / full.dt_s)));
  const double outage_rate = 0.1 * m.fit_mean_rate_bps();
  auto measure = [&](size_t begin, size_t end) {
    Part part;
    part.occupancy = Eigen::VectorXd::Zero(k);
    size_t same = 0, pairs = 0, run = 0, longest = 0, outage = 0;
    double sum = 0.0;
    for (size_t i = begin; i < end; ++i) {
      const int s = state(i);
      part.occupancy(s) += 1.0;
      if (i + lag < end) {
        same += state(i + lag) == s;
        ++pairs;
      }
      const bool out = obs_outage[i] < outage_rate;
      outage += out;
      run = out ? run + 1 : 0;
      longest = std::max(longest, run);
      sum += full.rate_bps[i];
    }
    const double n = static_cast<double>(end - begin);
    part.occupancy /= n;
    part.persistence = pairs > 0 ? static_cast<double>(same) / static_cast<double>(pairs) : 0.0;
    part.outage = static_cast<double>(outage) / n;
    part.longest = static_cast<double>(longest) * full.dt_s;
    part.mean = sum / n;
    return part;
  };
  const Part fit = measure(0, w.cut), score = measure(w.cut, full.size());
  d->valid = true;
  d->fit_mean_rate_bps = fit.mean;
  d->score_mean_rate_bps = score.mean;
  d->occupancy_tv = 0.5 * (fit.occupancy - score.occupancy).cwiseAbs().sum();
  d->persistence_fit = fit.persistence;
  d->persistence_score = score.persistence;
  if (p.iid) {
    d->persistence_law = p.initial.squaredNorm();
  } else {
    Eigen::MatrixXd t = Eigen::MatrixXd::Identity(k, k);
    for (const Eigen::MatrixXd& step : p.transition) t = t * step;
    d->persistence_law = p.initial.dot(t.diagonal());
  }
  d->outage_share_fit = fit.outage;
  d->outage_share_score = score.outage;
  d->outage_longest_fit_s = fit.longest;
  d->outage_longest_score_s = score.longest;
}

}  // namespace

Result<ChannelSpec> ChannelSpec::Parse(const std::string& text) {
  ChannelSpec spec;
  spec.text = text;
  const size_t colon = text.find(':');
  const std::string kind = text.substr(0, colon);
  const std::string args = colon == std::string::npos ? "" : text.substr(colon + 1);
  if (kind == "rayleigh" || kind == "gauss-markov") {
    spec.kind = kind == "rayleigh" ? Kind::kRayleigh : Kind::kGaussMarkov;
    SPLITINFER_RETURN_IF_ERROR(ParseKeyValues(kind, args, &spec));
    return spec;
  }
  if (kind == "trace" || kind == "markov-fit") {
    spec.kind = kind == "trace" ? Kind::kTrace : Kind::kMarkovFit;
    if (args.empty())
      return InvalidArgumentError("channel: " + kind + " needs a file: " + kind + ":<file>");
    spec.path = args;
    return spec;
  }
  return InvalidArgumentError("channel: unknown kind '" + kind +
                              "' (rayleigh, gauss-markov, trace, markov-fit)");
}

bool SimOptions::IsValid(std::string* error) const {
  std::ostringstream m;
  if (episodes < 1 || episodes > 100000000)
    m << "episodes must be in [1, 1e8] (got " << episodes << ")";
  else if (num_states < 1 || num_states > 4096)
    m << "num_states must be in [1, 4096] (got " << num_states << ")";
  else if (!(bandwidth_hz > 0))
    m << "bandwidth_hz must be > 0 (got " << bandwidth_hz << ")";
  else if (!(grid_s >= 0.001 && grid_s <= 1.0))
    m << "grid_s must be in [0.001, 1] (got " << grid_s << ")";
  else if (!(observe_window_s >= 0))
    m << "observe_window_s must be >= 0 (got " << observe_window_s << ")";
  else if (!(long_window_s >= 0) || long_states < 1 || long_states > 64 ||
           num_states * long_states > 4096)
    m << "long_window_s must be >= 0 and long_states in [1, 64] with num_states x long_states "
         "<= 4096 (got "
      << long_window_s << ", " << long_states << ")";
  else if (!(fit_fraction > 0 && fit_fraction < 1))
    m << "fit_fraction must be in (0, 1) (got " << fit_fraction << ")";
  else if (!(transfer_scale > 0))
    m << "transfer_scale must be > 0 (got " << transfer_scale << ")";
  else if (!placement.IsValid(error) || !robust.IsValid(error))
    return false;
  else
    return true;
  if (error) *error = m.str();
  return false;
}

Result<SimResult> RunSimulation(const CostModel& cost, const ChannelSpec& channel,
                                const SimOptions& o) {
  std::string error;
  if (!o.IsValid(&error)) return InvalidArgumentError("simulation: " + error);
  const auto t0 = std::chrono::steady_clock::now();
  Result<World> world = channel.kind == ChannelSpec::Kind::kRayleigh
                            ? RayleighWorld(cost, channel, o)
                            : SeriesWorld(cost, channel, o);
  if (!world.ok()) return world.status();
  const StoppingProblem& p = world->problem;
  std::vector<std::unique_ptr<StoppingPolicy>> policies = MakeStandardPolicies(p);
  policies.front() =
      std::make_unique<TablePolicy>("bi-textbook", p.horizon, p.num_states(),
                                    static_cast<const TablePolicy&>(*policies.front()).table());
  const bool series = world->score != nullptr;
  RobustSplitter robust(std::make_shared<const StoppingProblem>(p), world->model, o.robust);
  if (series && o.robust.refit) {
    // The first re-fit sees the channel up to the first scored step.
    const size_t w = std::max<size_t>(1, std::lround(o.robust.refit_window_s / o.grid_s));
    const size_t from = world->cut > w ? world->cut - w : 0;
    SPLITINFER_RETURN_IF_ERROR(
        robust.Refit(cost, world->full->Slice(from, world->cut), world->fit));
  }
  const double solve_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const int n = p.horizon;
  // acc[0] oracle, acc[1] the robust splitter ("bi"), then the textbook policies.
  std::vector<Accumulator> acc(policies.size() + 2);
  std::mt19937_64 rng(o.seed);
  const int tick = std::max(1, o.episodes / 20);
  const int options = cost.num_wire_options();
  std::vector<size_t> starts;
  if (series) {
    std::uniform_int_distribution<size_t> start(0, world->score->size() - 1);
    starts.resize(o.episodes);
    for (size_t& i : starts) i = start(rng);
    std::sort(starts.begin(), starts.end());
  }
  const size_t refit_steps = std::max<size_t>(1, std::lround(o.robust.refit_every_s / o.grid_s));
  const size_t refit_window = std::max<size_t>(1, std::lround(o.robust.refit_window_s / o.grid_s));
  size_t next_refit = world->cut + refit_steps;
  const double transfer_cap_s = RobustTransferCap(world->model.get(), o.robust);
  int differ = 0, bi_later = 0;  // textbook BI against greedy (SeriesDiagnosis)
  double diff_later = 0.0, diff_earlier = 0.0;
  std::vector<double> candidate_sum;  // every candidate's cost, summed over the episodes
  std::vector<std::string> candidate_names;
  for (int ep = 0; ep < o.episodes; ++ep) {
    const Episode e =
        series ? world->score->EpisodeAt(cost, *world->model, starts[ep]) : world->draw(rng);
    int b = 0;
    const double oc = OracleEpisodeCost(p, e, &b);
    int oracle_option = 0;
    if (!e.option_cost.empty())
      oracle_option =
          static_cast<int>(std::min_element(e.option_cost[b].begin(), e.option_cost[b].end()) -
                           e.option_cost[b].begin());
    acc[0].Add(oc, b, n, oracle_option, options);
    int bi_b = 0, greedy_b = 0;
    double bi_c = 0.0, greedy_c = 0.0;
    for (size_t i = 0; i < policies.size(); ++i) {
      const double c = EpisodeCost(p, *policies[i], e, &b);
      acc[i + 2].Add(c, b, n, p.StopOption(b, e.state[b]), options);
      if (i == 0) bi_b = b, bi_c = c;
      if (policies[i]->name() == "greedy") greedy_b = b, greedy_c = c;
    }
    if (bi_b != greedy_b) {
      ++differ;
      if (bi_b > greedy_b) {
        ++bi_later;
        diff_later += bi_c - greedy_c;
      } else {
        diff_earlier += bi_c - greedy_c;
      }
    }
    // The robust splitter: learn from the inferences that have ended, re-fit on schedule, then
    // decide with the incumbent and price every candidate on this path.
    if (series) {
      const size_t now = starts[ep];
      robust.Advance(static_cast<double>(now) * o.grid_s);
      const size_t global = world->cut + now;
      if (o.robust.refit && global >= next_refit) {
        const size_t from = global > refit_window ? global - refit_window : 0;
        SPLITINFER_RETURN_IF_ERROR(
            robust.Refit(cost, world->full->Slice(from, global), world->fit));
        next_refit = global + refit_steps;
      }
    }
    std::shared_ptr<const RobustSplitter::Snapshot> snap = robust.snapshot();
    const PricedPath priced =
        PriceCandidates(cost, *snap, e, world->model.get(), world->score.get(),
                        series ? starts[ep] : 0, o.grid_s, transfer_cap_s);
    const int chosen = snap->choice;
    acc[1].Add(priced.cost[chosen], priced.boundary[chosen], n, priced.option[chosen], options);
    if (candidate_sum.empty()) {
      candidate_sum.assign(priced.cost.size(), 0.0);
      for (const SplitCandidate& c : snap->candidates) candidate_names.push_back(c.name);
    }
    for (size_t c = 0; c < priced.cost.size(); ++c) candidate_sum[c] += priced.cost[c];
    if (series) {
      robust.Record(std::move(snap), priced.seen,
                    static_cast<double>(starts[ep]) * o.grid_s + priced.reveal_s);
    } else {
      robust.Observe(*snap, priced.seen);  // i.i.d. draws: no time between inferences to respect
    }
    if (o.progress && (ep + 1) % tick == 0) o.progress(ep + 1, o.episodes);
  }
  SimResult r;
  r.model = cost.profile().model;
  r.channel = channel.text.empty() ? KindName(channel.kind) : channel.text;
  r.num_units = n;
  r.num_states = p.num_states();
  r.markov = !p.iid;
  r.episodes = o.episodes;
  r.fitted_law_mean_rate_bps = world->mean_rate;
  r.solve_ms = solve_ms;
  for (int c = 0; c < options; ++c) r.wire_options.push_back(cost.WireOptionName(c));
  r.policies.push_back(acc[0].Stats("oracle", o.episodes));
  r.policies.back().model_expected_cost = kNaN;
  r.policies.push_back(acc[1].Stats("bi", o.episodes));
  {
    // The robust splitter's model cost: its final incumbent's, when that is a textbook table.
    const SplitCandidate& last = robust.snapshot()->chosen();
    r.policies.back().model_expected_cost =
        last.model == world->model ? ExactExpectedCost(p, *last.policy) : kNaN;
  }
  r.robust_switches = robust.selector().switches();
  r.robust_final = robust.snapshot()->chosen().name;
  for (size_t c = 0; c < candidate_sum.size(); ++c)
    r.robust_candidates.emplace_back(candidate_names[c], candidate_sum[c] / o.episodes);
  if (series) {
    DiagnoseSeries(*world, p, &r.diagnosis);
    r.diagnosis.share_differ = static_cast<double>(differ) / o.episodes;
    r.diagnosis.share_bi_later = static_cast<double>(bi_later) / o.episodes;
    r.diagnosis.cost_diff_later = bi_later > 0 ? diff_later / bi_later : 0.0;
    r.diagnosis.cost_diff_earlier = differ > bi_later ? diff_earlier / (differ - bi_later) : 0.0;
  }
  for (size_t i = 0; i < policies.size(); ++i) {
    r.policies.push_back(acc[i + 2].Stats(policies[i]->name(), o.episodes));
    r.policies.back().model_expected_cost = ExactExpectedCost(p, *policies[i]);
  }
  const double oracle = r.policies[0].mean_cost;
  for (PolicyStats& s : r.policies) s.ratio_to_oracle = oracle > 0 ? s.mean_cost / oracle : kNaN;
  PlacementPlanner planner(cost, world->problem, world->terminal_rows);
  PlacementOptions po = o.placement;
  po.method = PlacementMethod::kBackwardInduction;
  Result<PlacementPlan> plan = planner.Plan(po);
  if (!plan.ok()) return plan.status();
  r.placement = std::move(*plan);
  po.method = PlacementMethod::kOneStageLookAhead;
  Result<PlacementPlan> plan_ola = planner.Plan(po);
  if (!plan_ola.ok()) return plan_ola.status();
  r.placement_ola = std::move(*plan_ola);
  return r;
}

}  // namespace splitinfer::decision

// split_sim's reports of a SimResult (declared in common/decision/simulator.h): the JSON that
// scripts read and the table a person reads.
#include <cmath>
#include <iomanip>
#include <sstream>

#include "common/decision/simulator.h"

namespace splitinfer::decision {

nlohmann::json ToJson(const SimResult& r) {
  auto num = [](double v) -> nlohmann::json {
    if (std::isfinite(v)) return v;
    return nullptr;
  };
  nlohmann::json j;
  j["model"] = r.model;
  j["channel"] = r.channel;
  j["num_units"] = r.num_units;
  j["num_states"] = r.num_states;
  j["law"] = r.markov ? "markov" : "iid";
  j["episodes"] = r.episodes;
  j["fitted_mean_rate_bps"] = r.fitted_law_mean_rate_bps;
  j["wire_options"] = r.wire_options;
  j["solve_ms"] = r.solve_ms;
  j["robust"] = {{"switches", r.robust_switches}, {"final", r.robust_final}};
  for (const auto& [name, mean] : r.robust_candidates)
    j["robust"]["candidates"].push_back({{"name", name}, {"mean_cost", mean}});
  if (r.diagnosis.valid) {
    const SeriesDiagnosis& d = r.diagnosis;
    j["diagnosis"] = {{"fit_mean_rate_bps", d.fit_mean_rate_bps},
                      {"score_mean_rate_bps", d.score_mean_rate_bps},
                      {"occupancy_tv", d.occupancy_tv},
                      {"persistence_law", d.persistence_law},
                      {"persistence_fit", d.persistence_fit},
                      {"persistence_score", d.persistence_score},
                      {"outage_share_fit", d.outage_share_fit},
                      {"outage_share_score", d.outage_share_score},
                      {"outage_longest_fit_s", d.outage_longest_fit_s},
                      {"outage_longest_score_s", d.outage_longest_score_s},
                      {"share_bi_differs_from_greedy", d.share_differ},
                      {"share_bi_later_than_greedy", d.share_bi_later},
                      {"cost_bi_minus_greedy_when_later", d.cost_diff_later},
                      {"cost_bi_minus_greedy_when_earlier", d.cost_diff_earlier}};
  }
  for (const PolicyStats& s : r.policies)
    j["policies"].push_back({{"name", s.name},
                             {"mean_cost", s.mean_cost},
                             {"ci95", s.ci95},
                             {"mean_boundary", s.mean_boundary},
                             {"share_local", s.share_local},
                             {"share_edge", s.share_edge},
                             {"ratio_to_oracle", num(s.ratio_to_oracle)},
                             {"model_expected_cost", num(s.model_expected_cost)},
                             {"boundary_counts", s.boundary_counts},
                             {"option_counts", s.option_counts}});
  auto plan_json = [&](const PlacementPlan& p) {
    nlohmann::json o;
    o["best_m"] = p.best_m;
    o["best_objective"] = num(p.best_objective);
    for (double v : p.objective) o["objective"].push_back(num(v));
    return o;
  };
  j["placement"] = plan_json(r.placement);
  j["placement"]["ola"] = plan_json(r.placement_ola);
  return j;
}

std::string ToTable(const SimResult& r) {
  std::ostringstream out;
  out << "model " << r.model << " (N = " << r.num_units << "), channel " << r.channel << ", "
      << (r.markov ? "Markov" : "i.i.d.") << " law with K = " << r.num_states << ", " << r.episodes
      << " episodes\n";
  out << std::left << std::setw(14) << "policy" << std::right << std::setw(12) << "mean cost"
      << std::setw(12) << "+-95%" << std::setw(10) << "mean k" << std::setw(9) << "local"
      << std::setw(9) << "edge" << std::setw(10) << "/oracle" << std::setw(12) << "model E"
      << "\n";
  out << std::fixed;
  for (const PolicyStats& s : r.policies) {
    out << std::left << std::setw(14) << s.name << std::right << std::setprecision(5)
        << std::setw(12) << s.mean_cost << std::setw(12) << s.ci95 << std::setprecision(2)
        << std::setw(10) << s.mean_boundary << std::setw(8) << 100 * s.share_local << "%"
        << std::setw(8) << 100 * s.share_edge << "%" << std::setprecision(4) << std::setw(10)
        << s.ratio_to_oracle << std::setprecision(5) << std::setw(12);
    if (std::isfinite(s.model_expected_cost))
      out << s.model_expected_cost;
    else
      out << "-";
    out << "\n";
  }
  if (r.wire_options.size() > 1) {
    out << "wire options of the offloads:\n";
    for (const PolicyStats& s : r.policies) {
      int total = 0;
      for (int c : s.option_counts) total += c;
      if (total == 0) continue;
      out << "  " << std::left << std::setw(14) << s.name << std::right;
      for (size_t c = 0; c < s.option_counts.size(); ++c)
        if (s.option_counts[c] > 0)
          out << " " << r.wire_options[c] << " " << std::setprecision(1)
              << 100.0 * s.option_counts[c] / total << "%";
      out << "\n";
    }
  }
  out << "placement: M* = " << r.placement.best_m << " (BI), " << r.placement_ola.best_m
      << " (OLA) of N = " << r.num_units << ", objective " << std::setprecision(5)
      << r.placement.best_objective << "\n";
  return out.str();
}

}  // namespace splitinfer::decision

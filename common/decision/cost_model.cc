#include "common/decision/cost_model.h"

#include <cmath>
#include <limits>
#include <sstream>

#include "common/decision/trace.h"

namespace splitinfer::decision {
namespace {

std::string Num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

}  // namespace

Status ModelProfile::Validate() const {
  if (units.empty()) return InvalidArgumentError("profile " + model + " has no units");
  if (input_bytes <= 0)
    return InvalidArgumentError("profile " + model + ": input_bytes must be > 0");
  for (size_t i = 0; i < units.size(); ++i) {
    const UnitProfile& u = units[i];
    const std::string where =
        "profile " + model + " unit " + std::to_string(i + 1) + " (" + u.name + "): ";
    if (!(u.time_ms >= 0.0) || !std::isfinite(u.time_ms))
      return InvalidArgumentError(where + "time_ms must be >= 0");
    if (u.output_bytes <= 0) return InvalidArgumentError(where + "output_bytes must be > 0");
    if (u.param_bytes < 0) return InvalidArgumentError(where + "param_bytes must be >= 0");
  }
  return Status::Ok();
}

namespace {

// Rows [kind, in, out, kernel, stride, groups, out_h, out_w] (see the header).
Result<std::vector<LayerShape>> ParseLayers(const nlohmann::json& rows) {
  if (!rows.is_array()) return InvalidArgumentError("must be an array");
  std::vector<LayerShape> out;
  for (size_t r = 0; r < rows.size(); ++r) {
    const nlohmann::json& row = rows[r];
    const std::string where = "row " + std::to_string(r) + ": ";
    if (!row.is_array() || row.size() != 8 || !row[0].is_string())
      return InvalidArgumentError(where + "expected [kind, in, out, kernel, stride, groups, " +
                                  "out_h, out_w]");
    LayerShape l;
    const std::string kind = row[0].get<std::string>();
    if (kind == "conv") {
      l.kind = LayerShape::Kind::kConv;
    } else if (kind == "linear") {
      l.kind = LayerShape::Kind::kLinear;
    } else {
      return InvalidArgumentError(where + "kind must be conv or linear, got '" + kind + "'");
    }
    int64_t* fields[] = {&l.in_channels, &l.out_channels, &l.kernel, &l.stride,
                         &l.groups,      &l.out_h,        &l.out_w};
    for (size_t f = 0; f < 7; ++f) {
      if (!row[f + 1].is_number_integer() || row[f + 1].get<int64_t>() < 1 ||
          row[f + 1].get<int64_t>() > (int64_t{1} << 30))
        return InvalidArgumentError(where + "field " + std::to_string(f + 1) +
                                    " must be an integer in [1, 2^30]");
      *fields[f] = row[f + 1].get<int64_t>();
    }
    if (l.in_channels % l.groups != 0 || l.out_channels % l.groups != 0)
      return InvalidArgumentError(where + "groups must divide in and out channels");
    out.push_back(l);
  }
  return out;
}

}  // namespace

Result<ModelProfile> ParseProfileJson(const std::string& text, const std::string& source) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return InvalidArgumentError(source + ": not a JSON object");
  ModelProfile p;
  try {
    p.model = j.value("model", std::string("model"));
    p.input_bytes = j.at("input_bytes").get<int64_t>();
    const nlohmann::json& units = j.at("units");
    if (!units.is_array()) return InvalidArgumentError(source + ": 'units' must be an array");
    for (size_t i = 0; i < units.size(); ++i) {
      const nlohmann::json& u = units[i];
      if (u.contains("index") && u.at("index").get<int64_t>() != static_cast<int64_t>(i + 1))
        return InvalidArgumentError(source + ": units[" + std::to_string(i) + "].index must be " +
                                    std::to_string(i + 1));
      UnitProfile up;
      up.name = u.value("name", "unit" + std::to_string(i + 1));
      up.time_ms = u.at("time_ms_median").get<double>();
      up.output_bytes = u.at("output_bytes").get<int64_t>();
      up.param_bytes = u.value("param_bytes", int64_t{0});
      up.flops = u.value("flops", int64_t{-1});
      if (u.contains("layers")) {
        Result<std::vector<LayerShape>> layers = ParseLayers(u.at("layers"));
        if (!layers.ok())
          return InvalidArgumentError(source + ": units[" + std::to_string(i) +
                                      "].layers: " + layers.status().message());
        up.layers = std::move(*layers);
      }
      p.units.push_back(std::move(up));
    }
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgumentError(source + ": " + e.what());
  }
  SPLITINFER_RETURN_IF_ERROR(p.Validate().WithPrefix(source + ": "));
  return p;
}

Result<ModelProfile> LoadProfile(const std::string& path) {
  Result<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  return ParseProfileJson(*text, path);
}

double CostOptions::DevicePowerW() const {
  return energy_model == EnergyModel::kPower ? device_power_w
                                             : kappa * std::pow(device_freq_hz, 3);  // kappa f^2 f
}

PricedInference PriceInference(const CostOptions& o, const InferenceSpend& s) {
  PricedInference p;
  const double device_j = std::isnan(s.device_j) ? o.DevicePowerW() * s.device_s : s.device_j;
  const double edge_s = s.edge_queue_s + s.edge_compute_s + s.download_s;
  p.energy_j = device_j + o.p_tx_w * s.upload_s;
  p.latency_s = s.device_s + s.upload_s + edge_s;
  p.device = o.w_energy * device_j + o.w_time * s.device_s;
  p.transfer = (o.w_energy * o.p_tx_w + o.w_time) * s.upload_s;
  p.edge = o.w_time * edge_s;
  p.penalty = s.penalty;
  p.total = p.device + p.transfer + p.edge + p.penalty;
  return p;
}

bool CostOptions::IsValid(std::string* error) const {
  auto fail = [&](const std::string& name, double v, const std::string& rule) {
    if (error) *error = name + " must be " + rule + " (got " + Num(v) + ")";
    return false;
  };
  auto positive = [](double v) { return std::isfinite(v) && v > 0; };
  auto nonneg = [](double v) { return std::isfinite(v) && v >= 0; };
  if (!positive(p_tx_w)) return fail("p_tx_w", p_tx_w, "> 0");
  if (!nonneg(p_rx_w)) return fail("p_rx_w", p_rx_w, ">= 0");
  if (!nonneg(device_power_w)) return fail("device_power_w", device_power_w, ">= 0");
  if (!(std::isfinite(kappa) && kappa >= 0 && kappa < 1e-20))
    return fail("kappa", kappa, "in [0, 1e-20)");
  if (!positive(device_freq_hz)) return fail("device_freq_hz", device_freq_hz, "> 0");
  if (!nonneg(w_energy)) return fail("w_energy", w_energy, ">= 0");
  if (!nonneg(w_time)) return fail("w_time", w_time, ">= 0");
  if (w_energy == 0 && w_time == 0) return fail("w_time", w_time, "> 0 when w_energy is 0");
  if (!positive(device_slowdown)) return fail("device_slowdown", device_slowdown, "> 0");
  if (!positive(edge_speedup)) return fail("edge_speedup", edge_speedup, "> 0");
  if (!nonneg(edge_queue_ms)) return fail("edge_queue_ms", edge_queue_ms, ">= 0");
  if (!positive(downlink_bps)) return fail("downlink_bps", downlink_bps, "> 0");
  if (!(min_agreement >= 0 && min_agreement <= 1))
    return fail("min_agreement", min_agreement, "in [0, 1]");
  if (!nonneg(fidelity_weight)) return fail("fidelity_weight", fidelity_weight, ">= 0");
  return true;
}

Result<CostOptions> CostOptions::FromJson(const nlohmann::json& j) {
  if (!j.is_object()) return InvalidArgumentError("cost options: expected a JSON object");
  CostOptions o;
  struct Field {
    const char* name;
    double* dst;
  };
  const Field fields[] = {{"p_tx_w", &o.p_tx_w},
                          {"p_rx_w", &o.p_rx_w},
                          {"device_power_w", &o.device_power_w},
                          {"kappa", &o.kappa},
                          {"device_freq_hz", &o.device_freq_hz},
                          {"w_energy", &o.w_energy},
                          {"w_time", &o.w_time},
                          {"device_slowdown", &o.device_slowdown},
                          {"edge_speedup", &o.edge_speedup},
                          {"edge_queue_ms", &o.edge_queue_ms},
                          {"downlink_bps", &o.downlink_bps},
                          {"min_agreement", &o.min_agreement},
                          {"fidelity_weight", &o.fidelity_weight}};
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    if (key == "energy_model") {
      if (!it->is_string()) return InvalidArgumentError("energy_model must be a string");
      const std::string v = it->get<std::string>();
      if (v == "power")
        o.energy_model = EnergyModel::kPower;
      else if (v == "cmos")
        o.energy_model = EnergyModel::kCmos;
      else
        return InvalidArgumentError("energy_model must be 'power' or 'cmos' (got '" + v + "')");
      continue;
    }
    bool known = false;
    for (const Field& f : fields) {
      if (key != f.name) continue;
      if (!it->is_number()) return InvalidArgumentError(key + " must be a number");
      *f.dst = it->get<double>();
      known = true;
    }
    if (!known) return InvalidArgumentError("unknown cost option '" + key + "'");
  }
  std::string error;
  if (!o.IsValid(&error)) return InvalidArgumentError(error);
  return o;
}

Result<CostOptions> CostOptions::Load(const std::string& path) {
  Result<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded()) return InvalidArgumentError(path + ": not valid JSON");
  Result<CostOptions> o = FromJson(j);
  if (!o.ok()) return o.status().WithPrefix(path + ": ");
  return o;
}

nlohmann::json CostOptions::ToJson() const {
  return {{"p_tx_w", p_tx_w},
          {"p_rx_w", p_rx_w},
          {"energy_model", energy_model == EnergyModel::kPower ? "power" : "cmos"},
          {"device_power_w", device_power_w},
          {"kappa", kappa},
          {"device_freq_hz", device_freq_hz},
          {"w_energy", w_energy},
          {"w_time", w_time},
          {"device_slowdown", device_slowdown},
          {"edge_speedup", edge_speedup},
          {"edge_queue_ms", edge_queue_ms},
          {"downlink_bps", downlink_bps},
          {"min_agreement", min_agreement},
          {"fidelity_weight", fidelity_weight}};
}

Result<std::vector<WireOption>> ParseCodecProfile(const nlohmann::json& j, int n,
                                                  const std::string& source) {
  if (!j.is_object() || !j.contains("codecs") || !j.at("codecs").is_array())
    return InvalidArgumentError(source + ": expected {\"codecs\": [...]}");
  std::vector<WireOption> out;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  try {
    for (const nlohmann::json& c : j.at("codecs")) {
      WireOption o;
      o.name = c.at("name").get<std::string>();
      if (o.name.empty()) return InvalidArgumentError(source + ": a codec without a name");
      if (o.name == "fp32") continue;  // option 0 is built in
      for (const WireOption& seen : out)
        if (seen.name == o.name)
          return InvalidArgumentError(source + ": codec " + o.name + " appears twice");
      o.bytes.assign(n, nan);
      o.encode_ms.assign(n, 0.0);
      o.decode_ms.assign(n, 0.0);
      o.top1_agreement.assign(n, 0.0);
      for (const nlohmann::json& b : c.at("boundaries")) {
        const int64_t k = b.at("k").get<int64_t>();
        const std::string where = source + ": codec " + o.name + " boundary " + std::to_string(k);
        if (k < 0 || k >= n) return InvalidArgumentError(where + ": k must be in [0, N)");
        const double bytes = b.at("bytes").get<double>();
        const double enc = b.value("encode_ms", 0.0), dec = b.value("decode_ms", 0.0);
        const double agree = b.value("top1_agreement", 1.0);
        if (!(bytes > 0) || !std::isfinite(bytes))
          return InvalidArgumentError(where + ": bytes must be > 0");
        if (!(enc >= 0) || !(dec >= 0) || !std::isfinite(enc) || !std::isfinite(dec))
          return InvalidArgumentError(where + ": encode_ms and decode_ms must be >= 0");
        if (!(agree >= 0 && agree <= 1))
          return InvalidArgumentError(where + ": top1_agreement must be in [0, 1]");
        o.bytes[k] = bytes;
        o.encode_ms[k] = enc;
        o.decode_ms[k] = dec;
        o.top1_agreement[k] = agree;
      }
      out.push_back(std::move(o));
    }
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgumentError(source + ": " + e.what());
  }
  return out;
}

Result<std::vector<WireOption>> LoadCodecProfile(const std::string& path, int num_units) {
  Result<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded()) return InvalidArgumentError(path + ": not valid JSON");
  return ParseCodecProfile(j, num_units, path);
}

Result<CostModel> CostModel::Create(ModelProfile profile, CostOptions options,
                                    std::vector<WireOption> codecs) {
  SPLITINFER_RETURN_IF_ERROR(profile.Validate());
  std::string error;
  if (!options.IsValid(&error)) return InvalidArgumentError("cost options: " + error);
  CostModel m;
  const int n = profile.num_units();
  m.device_time_s_.resize(n);
  m.device_energy_j_.resize(n);
  m.continue_cost_.resize(n);
  m.edge_tail_s_ = Eigen::VectorXd::Zero(n + 1);
  m.cum_continue_ = Eigen::VectorXd::Zero(n + 1);
  m.cum_param_bytes_.assign(n + 1, 0);
  for (int l = 0; l < n; ++l) {
    const double t = profile.units[l].time_ms * 1e-3 * options.device_slowdown;
    m.device_time_s_(l) = t;
    m.device_energy_j_(l) = options.DevicePowerW() * t;
    m.continue_cost_(l) = options.w_energy * m.device_energy_j_(l) + options.w_time * t;
    m.cum_continue_(l + 1) = m.cum_continue_(l) + m.continue_cost_(l);
    m.cum_param_bytes_[l + 1] = m.cum_param_bytes_[l] + profile.units[l].param_bytes;
  }
  for (int k = n - 1; k >= 0; --k)
    m.edge_tail_s_(k) =
        m.edge_tail_s_(k + 1) + profile.units[k].time_ms * 1e-3 / options.edge_speedup;
  for (int k = 0; k < n; ++k) m.edge_tail_s_(k) += options.edge_queue_ms * 1e-3;
  WireOption raw;
  raw.name = "fp32";
  for (int k = 0; k < n; ++k) raw.bytes.push_back(static_cast<double>(profile.BoundaryBytes(k)));
  raw.encode_ms.assign(n, 0.0);
  raw.decode_ms.assign(n, 0.0);
  raw.top1_agreement.assign(n, 1.0);
  m.options_by_index_.push_back(std::move(raw));
  for (WireOption& c : codecs) {
    if (c.name.empty() || c.name == "fp32")
      return InvalidArgumentError("wire option: a codec needs a name other than fp32");
    if (static_cast<int>(c.bytes.size()) != n || static_cast<int>(c.encode_ms.size()) != n ||
        static_cast<int>(c.decode_ms.size()) != n || static_cast<int>(c.top1_agreement.size()) != n)
      return InvalidArgumentError("wire option " + c.name +
                                  ": needs one entry per boundary 0..N-1");
    m.options_by_index_.push_back(std::move(c));
  }
  m.profile_ = std::move(profile);
  m.options_ = options;
  return m;
}

double CostModel::StopCostForTransfer(int boundary, double transfer_s) const {
  if (boundary >= num_units()) return 0.0;
  return TransferWeight() * transfer_s + options_.w_time * EdgeTime(boundary);
}

double CostModel::StopCostAtRate(int boundary, double rate_bps) const {
  if (boundary >= num_units()) return 0.0;
  if (num_wire_options() == 1) return StopCostForTransfer(boundary, Bits(boundary) / rate_bps);
  const int c = BestOptionAtRate(boundary, rate_bps);
  return StopCostForTransfer(boundary, OptionBits(boundary, c) / rate_bps, c);
}

int CostModel::BestOptionAtRate(int boundary, double rate_bps) const {
  if (boundary >= num_units()) return 0;
  int best = 0;
  double best_cost = std::numeric_limits<double>::infinity();
  for (int c = 0; c < num_wire_options(); ++c) {
    const double cost = StopCostForTransfer(boundary, OptionBits(boundary, c) / rate_bps, c);
    if (cost < best_cost) best = c, best_cost = cost;
  }
  return best;
}

double CostModel::OptionBits(int boundary, int c) const {
  if (boundary >= num_units()) return 0.0;
  return 8.0 * options_by_index_[c].bytes[boundary];
}

bool CostModel::OptionAllowed(int boundary, int c) const {
  if (boundary >= num_units()) return c == 0;
  if (c == 0) return true;
  const WireOption& o = options_by_index_[c];
  return std::isfinite(o.bytes[boundary]) && o.top1_agreement[boundary] >= options_.min_agreement;
}

double CostModel::OptionOverhead(int boundary, int c) const {
  if (c == 0 || boundary >= num_units()) return 0.0;
  const WireOption& o = options_by_index_[c];
  const double enc_s = o.encode_ms[boundary] * 1e-3 * options_.device_slowdown;
  const double dec_s = o.decode_ms[boundary] * 1e-3 / options_.edge_speedup;
  const double device_w = options_.energy_model == EnergyModel::kPower
                              ? options_.device_power_w
                              : options_.kappa * std::pow(options_.device_freq_hz, 3);
  return options_.w_time * (enc_s + dec_s) + options_.w_energy * device_w * enc_s +
         options_.fidelity_weight * (1.0 - o.top1_agreement[boundary]);
}

double CostModel::StopCostForTransfer(int boundary, double transfer_s, int c) const {
  if (boundary >= num_units()) return 0.0;
  if (!OptionAllowed(boundary, c)) return std::numeric_limits<double>::infinity();
  return StopCostForTransfer(boundary, transfer_s) + OptionOverhead(boundary, c);
}

double CostModel::DownloadCost(int m) const {
  return (options_.w_energy * options_.p_rx_w + options_.w_time) * 8.0 *
         static_cast<double>(cum_param_bytes_[m]) / options_.downlink_bps;
}

}  // namespace splitinfer::decision

// device_client: runs units 1..k of a model on this machine, sends the tensor at boundary k to an
// edge_server, which runs k+1..N and returns the output.
//
//   device_client --server 127.0.0.1:PORT --model resnet18 --split 3 --requests 20 --verify --json
//
// Live splitting (issue 5): with --policy and --channel the device decides k unit by unit: after
// each unit it reads the emulated channel state and asks the stopping policy (a table lookup);
// request frames are paced to the emulated uplink (device/uplink_emulator.h), and each record
// carries the cost ledger (docs/live.md):
//
//   device_client --server ... --model resnet18 --policy bi --channel trace:FILE --json
//
// With --codec (fp16, int8, int8c, optionally +zstd; common/codec.h) the tensor at the split is
// encoded before it is sent, and --verify compares with a local run through the same codec.
//
// No inference is lost: when the edge cannot be reached, refuses a request, or vanishes while
// requests are in flight, the client finishes those inferences locally from the tensor it kept
// and says so in the record ("fallback").
//
// Every option can also come from --config FILE (TOML, keys = long option names; see
// device/device_client.example.toml), parsed strictly (common/config_file.h); the command line
// overrides the file.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include <torch/torch.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/codec.h"
#include "common/config_file.h"
#include "common/decision/online_law.h"
#include "common/handshake.h"
#include "common/model_zoo.h"
#include "common/torchscript_model.h"
#include "device/edge_client.h"
#include "device/live_decision.h"
#include "device/uplink_emulator.h"

using namespace splitinfer;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

namespace {

double MsBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Limits for decoding a tensor this process encoded itself: the network's bounds do not apply.
FrameLimits OwnTensorLimits() {
  FrameLimits l;
  l.max_body_bytes = uint64_t{1} << 40;
  l.max_tensor_rank = 16;
  return l;
}

struct Config {
  std::string server;
  std::string model = "resnet18";
  uint32_t version = 1;
  std::string torchscript;
  std::string split = "0";
  int requests = 10;
  int in_flight = 1;
  bool verify = false;
  bool json = false;
  uint64_t seed = 1;
  int threads = 0;
  int connect_timeout_ms = 1000;
  int io_timeout_ms = 30000;
  int reconnect_ms = 500;
  uint32_t deadline_ms = 0;
  // Security (issue 8): TLS on the link, and the server's token.
  bool tls = false;
  std::string tls_ca;
  std::string tls_server_name;
  std::string auth_token_file;
  // --codec: how the tensor at the split travels (fp32: the raw body, as before codecs).
  CodecSpec codec;
  // Live splitting (empty policy: the fixed --split of before).
  std::string policy;
  std::string channel;
  double time_scale = 1.0;
  std::string csi = "perfect";
  double device_slowdown = 1.0;
  std::ostream* ledger = nullptr;  // --ledger: every record, in the order printed
};

// Where an inference's decision table comes from: one fixed LiveDecision (--law prefix|full), or
// the online re-fitter (--law online), which the client feeds with the CSI reports (one rate per
// grid step of the emulated series) up to the inference's start.
class DecisionSource {
 public:
  virtual ~DecisionSource() = default;
  // The CSI reports up to emulated time t reach the source (online: the re-fitter's window).
  // Not part of the decision: a device's modem reports CSI whether or not it infers.
  virtual void Feed(double /*emulated_s*/) {}
  // The table an inference starting now uses for all its boundaries: one snapshot, no waiting.
  virtual std::shared_ptr<const LiveDecision> At(double emulated_s) = 0;
};

class FixedDecision final : public DecisionSource {
 public:
  explicit FixedDecision(std::shared_ptr<const LiveDecision> d) : d_(std::move(d)) {}
  std::shared_ptr<const LiveDecision> At(double) override { return d_; }

 private:
  std::shared_ptr<const LiveDecision> d_;
};

// What the live mode adds to a run; all null without --policy.
struct LiveContext {
  DecisionSource* source = nullptr;
  std::string name;  // the policy as the ledger names it (e.g. "bi@online")
  UplinkEmulator* uplink = nullptr;
  GoodputEstimator* goodput = nullptr;  // --csi estimated; null: perfect CSI
  const decision::CostOptions* cost = nullptr;
  // Series channels: the cost model and the whole series in wall time, to put the simulator's
  // cost and the oracle's for the same channel path beside each realized cost. Null: rayleigh.
  const decision::CostModel* cost_model = nullptr;
  const decision::ScoredSeries* scored = nullptr;
  // Replay: inference i starts at emulated time segment_starts[i]; empty: time runs freely.
  std::vector<double> segment_starts;
  // --codecs: the codec of each wire option of the cost model (index = option; [0] = fp32). A
  // stop uses the option the table chose for the state observed there.
  std::vector<CodecSpec> option_codecs;
};

// One inference, from the device's first unit to its result.
struct Inference {
  uint64_t id = 0;
  size_t split = 0;
  at::Tensor input;     // kept for --verify
  at::Tensor boundary;  // the tensor at the split: kept until the edge answers
  Clock::time_point start;
  double device_ms = 0, send_ms = 0;
  double device_s = 0;  // time spent running units here (slowdown included), fallback too
  int first_state = -1, stop_state = -1;
  double decision_us = 0;       // live: time spent observing the state and asking the policy
  json states = json::array();  // live: the channel state at each boundary visited
  std::shared_ptr<const LiveDecision> decision;  // live: the table this inference uses
  double start_emulated_s = 0;                   // live: emulated time of boundary 0
  int segment = -1;                              // replay: segment index
  Clock::time_point sent;
  uint64_t bytes_sent = 0;
  // --codec other than fp32: the boundary tensor as sent. Every path from the split on (edge,
  // local fallback, verification) uses its decoded form, so results agree wherever they ran.
  std::optional<Encoded> encoded;
  double encode_ms = 0;
  CodecSpec codec;  // how the tensor at the split travels: --codec, or the policy's wire option
};

class Runner {
 public:
  Runner(const Config& cfg, std::shared_ptr<SplitModel> model, EdgeClient* client,
         LiveContext live = {})
      : cfg_(cfg), model_(std::move(model)), client_(client), live_(live) {
    if (cfg_.server.empty()) {
      next_connect_ = Clock::time_point::max();
      last_error_ = "no --server given";
    }
  }

  // Runs `requests` inferences at boundary `split` (live: the policy decides); returns the
  // records.
  std::vector<json> Run(size_t split) {
    records_.clear();
    for (int i = 0; i < cfg_.requests; ++i) Start(i, split);
    while (!pending_.empty()) ReadOne();
    return std::move(records_);
  }

  // Replay: the inference of segment i alone, to its result (segments of several policies are
  // interleaved, so that a machine whose speed drifts during a replay slows every policy alike).
  json RunSegment(int i) {
    records_.clear();
    Start(i, 0);
    while (!pending_.empty()) ReadOne();
    json r = records_.empty() ? json() : std::move(records_.front());
    records_.clear();
    return r;
  }

 private:
  // Starts inference i: runs its device part, then finishes it locally or sends it (at most
  // --in-flight outstanding).
  void Start(int i, size_t split) {
    const size_t n = model_->num_units();
    Inference inf;
    inf.id = next_id_++;
    inf.split = split;
    {
      // Inputs differ per request but are reproducible from the seed.
      torch::manual_seed(cfg_.seed * 1000003 + inf.id);
      std::vector<int64_t> shape{1};
      shape.insert(shape.end(), model_->input_shape().begin(), model_->input_shape().end());
      inf.input = torch::randn(shape);
    }
    c10::InferenceMode guard;
    if (live_.source != nullptr) {
      if (static_cast<size_t>(i) < live_.segment_starts.size()) {
        live_.uplink->StartAt(live_.segment_starts[i]);
        inf.segment = i;
      }
      live_.source->Feed(live_.uplink->NowEmulated());
      const auto t_decide = Clock::now();
      // A replay segment starts exactly at its offset (the clock was just set there).
      inf.start_emulated_s =
          inf.segment >= 0 ? live_.segment_starts[i] : live_.uplink->NowEmulated();
      inf.decision = live_.source->At(inf.start_emulated_s);
      inf.decision_us += std::chrono::duration<double, std::micro>(Clock::now() - t_decide).count();
    }
    inf.start = Clock::now();
    inf.codec = cfg_.codec;
    if (live_.source != nullptr) {
      inf.boundary = RunUntilStop(inf);
      split = inf.split;
      const int option =
          inf.decision->problem().StopOption(static_cast<int>(split), inf.stop_state);
      if (split < n && option > 0 && static_cast<size_t>(option) < live_.option_codecs.size())
        inf.codec = live_.option_codecs[option];
    } else {
      inf.boundary = RunUnits(inf.input, 0, split, &inf);
    }
    inf.device_ms = MsBetween(inf.start, Clock::now());
    if (split == n) {
      Finish(inf, inf.boundary, "local", nullptr, std::nullopt);
      return;
    }
    if (!inf.codec.IsRaw()) {
      const auto t_encode = Clock::now();
      Result<Encoded> enc = Encode(inf.boundary, inf.codec);
      if (cfg_.device_slowdown > 1.0) {  // encoding is device work: as slow as the units
        const auto took = Clock::now() - t_encode;
        std::this_thread::sleep_until(
            t_encode + std::chrono::duration_cast<Clock::duration>(took * cfg_.device_slowdown));
      }
      const auto encoded_at = Clock::now();
      inf.encode_ms = MsBetween(t_encode, encoded_at);
      inf.device_s += std::chrono::duration<double>(encoded_at - t_encode).count();
      if (!enc.ok()) {  // e.g. NaN under int8: the raw tensor finishes here
        FinishLocally(inf, "encode failed: " + enc.status().ToString());
        return;
      }
      inf.encoded = std::move(*enc);
    }
    std::string why;
    if (!EnsureConnected(&why)) {
      FinishLocally(inf, "edge unreachable: " + why);
      return;
    }
    wire::InferRequest req;
    req.set_request_id(inf.id);
    req.set_model(model_->name());
    req.set_model_version(model_->version());
    req.set_boundary(static_cast<uint32_t>(split));
    req.set_deadline_ms(cfg_.deadline_ms);
    const auto t_send = Clock::now();
    Status st = inf.encoded ? client_->SendRequest(req, *inf.encoded)
                            : client_->SendRequest(req, inf.boundary);
    inf.sent = Clock::now();
    inf.send_ms = MsBetween(t_send, inf.sent);
    if (!st.ok()) {
      if (st.code() == StatusCode::kResourceExhausted) {
        FinishLocally(inf, "edge refused: " + st.message());
      } else {
        // The connection broke while sending. Replies the edge wrote before it went are still
        // in the socket: read them; what never comes finishes locally (ReadOne), and so does
        // this inference.
        while (!pending_.empty()) ReadOne();
        OnConnectionLost(st);
        FinishLocally(inf, "send failed: " + st.ToString());
      }
      return;
    }
    inf.bytes_sent = inf.encoded ? inf.encoded->body_bytes() : inf.boundary.nbytes();
    if (live_.goodput != nullptr) {
      // Goodput in emulated time: the wall send time times the time scale.
      live_.goodput->Add(8.0 * static_cast<double>(inf.bytes_sent),
                         inf.send_ms / 1000.0 * live_.uplink->time_scale());
    }
    pending_.emplace(inf.id, std::move(inf));
    while (static_cast<int>(pending_.size()) >= cfg_.in_flight) ReadOne();
  }

  // Units [from, to) on the device, one at a time; with --device-slowdown X each takes X times
  // its measured time (the difference is slept).
  at::Tensor RunUnits(at::Tensor x, size_t from, size_t to, Inference* inf) {
    for (size_t u = from; u < to; ++u) {
      const auto t = Clock::now();
      x = model_->RunRange(x, u, u + 1);
      if (cfg_.device_slowdown > 1.0) {
        const auto took = Clock::now() - t;
        std::this_thread::sleep_until(
            t + std::chrono::duration_cast<Clock::duration>(took * cfg_.device_slowdown));
      }
      inf->device_s += std::chrono::duration<double>(Clock::now() - t).count();
    }
    return x;
  }

  // Live: runs units until the policy stops (or N); sets inf.split. The decision at each
  // boundary is StateOf + a table lookup.
  at::Tensor RunUntilStop(Inference& inf) {
    const LiveDecision& d = *inf.decision;
    const int h = d.horizon();
    at::Tensor x = inf.input;
    int l = 0;
    for (;; ++l) {
      // Emulated bit/s: the emulated state (perfect CSI) or the recent goodput (estimated).
      const auto t_decide = Clock::now();
      const double rate = live_.goodput ? live_.goodput->RateBps() : live_.uplink->ObservedRate();
      const int s = d.StateOf(rate);
      if (l == 0) inf.first_state = s;
      const bool stop = l >= h || d.Stop(l, s, inf.first_state);
      inf.decision_us += std::chrono::duration<double, std::micro>(Clock::now() - t_decide).count();
      inf.stop_state = s;
      inf.states.push_back({{"boundary", l},
                            {"t_s", live_.uplink->NowEmulated()},
                            {"rate_bps", rate},
                            {"state", s}});
      if (stop) break;
      x = RunUnits(x, l, l + 1, &inf);
    }
    inf.split = static_cast<size_t>(l);
    return x;
  }

  bool EnsureConnected(std::string* why) {
    // Replies already here first: one may be a GoAway, which stops new sends on this connection.
    while (!pending_.empty() && client_->ReplyReady()) ReadOne();
    if (client_->connected() && !client_->Reusable()) {
      // A GoAway (the edge drains, or evicted this connection) or a close while idle: the
      // replies still due come first, then a new connection (another edge first, if draining).
      while (!pending_.empty() && client_->connected()) ReadOne();
      client_->Close();
      next_connect_ = Clock::now();
    }
    if (client_->connected()) return true;
    if (Clock::now() < next_connect_) {
      *why = last_error_;
      return false;
    }
    Status st = client_->Connect();
    if (!st.ok()) {
      last_error_ = st.ToString();
      *why = last_error_;
      next_connect_ = Clock::now() + std::chrono::milliseconds(cfg_.reconnect_ms);
      return false;
    }
    CheckServerModel();
    return true;
  }

  // Warns once when the server's model does not have the shape this client built.
  void CheckServerModel() {
    for (const auto& m : client_->server_info().models()) {
      if (m.name() != model_->name() || m.version() != model_->version()) continue;
      std::vector<int64_t> shape(m.input_shape().begin(), m.input_shape().end());
      if (shape != model_->input_shape() || m.num_units() != model_->num_units()) {
        std::cerr << "device_client: warning: the server's " << m.name() << "@" << m.version()
                  << " differs from the local model (input shape or unit count); use the same "
                     "--input-size/--width-mult/--num-classes on both sides\n";
      }
    }
  }

  void ReadOne() {
    auto reply = client_->ReadReply();
    if (!reply.ok()) {
      OnConnectionLost(reply.status());
      auto lost = std::move(pending_);
      pending_.clear();
      for (auto& [id, inf] : lost) FinishLocally(inf, "edge lost: " + reply.status().ToString());
      return;
    }
    auto it = pending_.find(reply->request_id);
    if (it == pending_.end()) {
      std::cerr << "device_client: ignoring a reply for unknown request " << reply->request_id
                << "\n";
      return;
    }
    Inference inf = std::move(it->second);
    pending_.erase(it);
    if (!reply->status.ok()) {
      // UNAVAILABLE: the server drains or stops. Once this connection's other replies are in,
      // leave it; the next connect prefers another edge server (--server a,b,...).
      if (reply->status.code() == StatusCode::kUnavailable) {
        client_->MarkUnhealthy();
        leave_after_replies_ = true;
      }
      FinishLocally(inf, "edge refused: " + reply->status.ToString());
      if (leave_after_replies_ && pending_.empty()) {
        leave_after_replies_ = false;
        client_->Close();
        next_connect_ = Clock::now();
      }
      return;
    }
    Finish(inf, reply->output, "edge", &reply.value(), std::nullopt);
  }

  void OnConnectionLost(const Status& st) {
    client_->Close();
    last_error_ = st.ToString();
    next_connect_ = Clock::now();  // the next request tries once more, then backs off
  }

  void FinishLocally(Inference& inf, const std::string& reason) {
    c10::InferenceMode guard;
    at::Tensor x = inf.boundary;
    if (inf.encoded) {
      // The device's own encoded tensor, decoded as the edge would have: the same result.
      Result<at::Tensor> decoded = Decode(*inf.encoded, OwnTensorLimits());
      if (decoded.ok()) x = std::move(*decoded);
    }
    at::Tensor out = RunUnits(x, inf.split, model_->num_units(), &inf);
    Finish(inf, out, "fallback_local", nullptr, reason);
  }

  void Finish(Inference& inf, const at::Tensor& output, const char* where, const InferResult* edge,
              const std::optional<std::string>& fallback) {
    const auto end = Clock::now();
    json r;
    r["request_id"] = inf.id;
    r["model"] = model_->name();
    r["version"] = model_->version();
    r["split"] = inf.split;
    r["units"] = model_->num_units();
    r["ok"] = output.defined();
    r["completed_on"] = where;
    r["fallback"] = fallback ? json(*fallback) : json(nullptr);
    r["codec"] = inf.codec.ToString();
    r["bytes_sent"] = inf.bytes_sent;
    r["device_ms"] = inf.device_ms;
    r["encode_ms"] = inf.encode_ms;
    r["edge_decode_ms"] = edge ? edge->decode_us / 1000.0 : 0.0;
    r["send_ms"] = inf.send_ms;
    r["edge_ms"] = edge ? edge->edge_compute_us / 1000.0 : 0.0;
    r["queue_ms"] = edge ? edge->queue_us / 1000.0 : 0.0;
    r["wait_ms"] = edge ? MsBetween(inf.sent, end) : 0.0;
    r["total_ms"] = MsBetween(inf.start, end);
    if (live_.source != nullptr) AddLedger(inf, edge, end, &r);
    if (cfg_.verify) {
      // max_abs_diff and top1_match compare with a local run through the same codec (units
      // 1..k, encode, decode, units k+1..N: exact on a CPU edge); the *_fp32 fields with the
      // uncompressed local run, i.e. what the codec costs in fidelity.
      c10::InferenceMode guard;
      const size_t n = model_->num_units();
      const at::Tensor ref_fp32 = model_->RunRange(inf.input, 0, n);
      at::Tensor ref = ref_fp32;
      if (inf.encoded) {
        Result<Encoded> enc = Encode(model_->RunRange(inf.input, 0, inf.split), inf.codec);
        Result<at::Tensor> dec = enc.ok() ? Decode(*enc, OwnTensorLimits()) : enc.status();
        ref = dec.ok() ? model_->RunRange(*dec, inf.split, n) : at::Tensor();
      }
      at::Tensor out = output.to(at::kCPU).to(at::kFloat);
      auto compare = [&](const at::Tensor& want, const char* diff_key, const char* top1_key) {
        const bool same_shape = want.defined() && out.sizes() == want.sizes();
        r[diff_key] = same_shape ? (out - want).abs().max().item<double>() : -1.0;
        r[top1_key] = same_shape && out.dim() >= 1 &&
                      out.flatten(1).argmax(1).equal(want.flatten(1).argmax(1));
      };
      compare(ref, "max_abs_diff", "top1_match");
      compare(ref_fp32, "codec_max_abs_diff_vs_fp32", "top1_match_fp32");
    }
    if (cfg_.json) std::cout << r.dump() << std::endl;
    if (cfg_.ledger != nullptr) *cfg_.ledger << r.dump() << "\n";
    records_.push_back(std::move(r));
  }

  // The cost ledger (docs/live.md): realized cost = device + transfer + edge parts, each priced
  // with the cost model's weights; the policy's predictions beside it.
  void AddLedger(const Inference& inf, const InferResult* edge, Clock::time_point end,
                 json* r) const {
    const decision::CostOptions& c = *live_.cost;
    const double device_w = c.energy_model == decision::EnergyModel::kPower
                                ? c.device_power_w
                                : c.kappa * c.device_freq_hz * c.device_freq_hz * c.device_freq_hz;
    const double device_j = device_w * inf.device_s;
    const double transfer_s = inf.bytes_sent > 0 ? inf.send_ms / 1000.0 : 0.0;
    const double edge_s = edge ? std::chrono::duration<double>(end - inf.sent).count() : 0.0;
    const double device_cost = c.w_energy * device_j + c.w_time * inf.device_s;
    const double transfer_cost = (c.w_energy * c.p_tx_w + c.w_time) * transfer_s;
    const double edge_cost = c.w_time * edge_s;
    const LiveDecision& d = *inf.decision;
    (*r)["policy"] = live_.name.empty() ? d.policy_name() : live_.name;
    (*r)["table_generation"] = d.generation();
    (*r)["start_s"] = inf.start_emulated_s;
    (*r)["segment"] = inf.segment >= 0 ? json(inf.segment) : json(nullptr);
    (*r)["boundary"] = inf.split;
    (*r)["channel_states"] = inf.states;
    (*r)["decision_us"] = inf.decision_us;
    (*r)["device_time_ms"] = inf.device_s * 1000.0;
    (*r)["device_energy_j"] = device_j;
    (*r)["transfer_ms"] = transfer_s * 1000.0;
    (*r)["transfer_energy_j"] = c.p_tx_w * transfer_s;
    (*r)["edge_wait_ms"] = edge_s * 1000.0;
    (*r)["cost"] = {{"device", device_cost},
                    {"transfer", transfer_cost},
                    {"edge", edge_cost},
                    {"total", device_cost + transfer_cost + edge_cost}};
    (*r)["predicted_cost"] = d.PredictedCost(inf.first_state);
    (*r)["predicted_path_cost"] = d.PathPrice(static_cast<int>(inf.split), inf.stop_state);
    // The simulator on the same channel path: the episode that starts at this inference's step,
    // run through the same table (sim), and the clairvoyant oracle's cost on it.
    (*r)["sim_cost"] = nullptr;
    (*r)["sim_boundary"] = nullptr;
    (*r)["oracle_cost"] = nullptr;
    (*r)["oracle_boundary"] = nullptr;
    if (live_.scored != nullptr && d.series_model()) {
      const decision::RateSeries& series = live_.uplink->series();
      const size_t i0 = static_cast<size_t>(std::floor(inf.start_emulated_s / series.dt_s + 1e-6)) %
                        series.size();
      const decision::Episode e = live_.scored->EpisodeAt(*live_.cost_model, *d.series_model(), i0);
      int b = 0;
      (*r)["sim_cost"] = decision::EpisodeCost(d.problem(), d.policy(), e, &b);
      (*r)["sim_boundary"] = b;
      (*r)["oracle_cost"] = decision::OracleEpisodeCost(d.problem(), e, &b);
      (*r)["oracle_boundary"] = b;
    }
  }

  const Config& cfg_;
  std::shared_ptr<SplitModel> model_;
  EdgeClient* client_;
  bool leave_after_replies_ = false;  // the server said UNAVAILABLE (see ReadOne)
  LiveContext live_;
  std::map<uint64_t, Inference> pending_;
  std::vector<json> records_;
  uint64_t next_id_ = 1;
  Clock::time_point next_connect_{};
  std::string last_error_ = "not connected";
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void PrintSummaryRow(const std::vector<json>& recs, bool verify) {
  if (recs.empty()) return;
  std::vector<double> dev, edge, total;
  int on_edge = 0, fallback = 0, verified = 0;
  for (auto& r : recs) {
    dev.push_back(r["device_ms"].get<double>());
    edge.push_back(r["edge_ms"].get<double>());
    total.push_back(r["total_ms"].get<double>());
    on_edge += r["completed_on"] == "edge";
    fallback += !r["fallback"].is_null();
    if (verify) {
      verified += r["max_abs_diff"].get<double>() >= 0 && r["max_abs_diff"].get<double>() <= 1e-5 &&
                  r["top1_match"].get<bool>();
    }
  }
  std::printf(
      "%5d %12llu %10.2f %10.2f %10.2f %7d %8d %9s\n", recs.front()["split"].get<int>(),
      static_cast<unsigned long long>(recs.front()["bytes_sent"].get<uint64_t>()), Median(dev),
      Median(edge), Median(total), on_edge, fallback,
      verify ? (std::to_string(verified) + "/" + std::to_string(recs.size())).c_str() : "-");
}

// --law online settings (the re-fitter's options; see common/decision/online_law.h).
struct OnlineSettings {
  double window_s = 60.0;
  double refit_every_s = 1.0;
  double change_threshold = 0.05;
};

// --law online: the Markov law re-fitted in the background from the CSI reports of a sliding
// window (decision::OnlineRefitter), starting from the prefix law. The re-fitter works in wall
// time (rates x c, steps / c) so that its law distance compares like with like with
// LiveDecision::law(); its solver turns the window back into emulated time for FromSeries.
class OnlineDecision final : public DecisionSource {
 public:
  using Refitter = decision::OnlineRefitter<LiveDecision>;

  OnlineDecision(const decision::RateSeries& emulated, double time_scale,
                 std::unique_ptr<Refitter> refitter, size_t window_steps)
      : series_(emulated),
        scale_(time_scale),
        refitter_(std::move(refitter)),
        window_steps_(window_steps) {}

  void Feed(double emulated_s) override {
    const int64_t step = static_cast<int64_t>(std::floor(emulated_s / series_.dt_s));
    // At most one window of reports: older ones would leave the ring before a fit sees them, and
    // a replay's jump between segments must not splice two distant parts of the trace.
    const int64_t from = std::max(next_step_, step - static_cast<int64_t>(window_steps_) + 1);
    const int64_t n = static_cast<int64_t>(series_.size());
    for (int64_t i = std::max<int64_t>(from, 0); i <= step; ++i)
      refitter_->Observe(series_.rate_bps[static_cast<size_t>(i % n)] * scale_);
    next_step_ = std::max(next_step_, step + 1);
  }
  std::shared_ptr<const LiveDecision> At(double) override { return refitter_->Current(); }

 private:
  const decision::RateSeries series_;  // the emulated series (a copy: the uplink owns its own)
  double scale_;
  std::unique_ptr<Refitter> refitter_;
  size_t window_steps_;
  int64_t next_step_ = 0;
};

Result<std::unique_ptr<DecisionSource>> MakeOnlineSource(
    const decision::CostModel& cost, const LiveDecisionOptions& lo, bool markov,
    const OnlineSettings& settings, std::shared_ptr<const LiveDecision> initial,
    const decision::RateSeries& emulated) {
  const double c = lo.time_scale;
  decision::OnlineLawOptions o;
  o.grid_s = emulated.dt_s / c;
  o.window_s = settings.window_s / c;
  o.refit_every_s = settings.refit_every_s / c;
  o.num_states = lo.num_states;
  o.change_threshold = settings.change_threshold;
  std::string error;
  if (!o.IsValid(&error)) return InvalidArgumentError("--law online: " + error);
  auto generation = std::make_shared<uint64_t>(0);
  auto solver =
      [&cost, lo, markov, c, generation](
          const decision::RateSeries& window) -> Result<std::shared_ptr<const LiveDecision>> {
    decision::RateSeries emulated_window = ToWallTime(window, 1.0 / c);
    emulated_window.name = "online window";
    return LiveDecision::FromSeries(cost, emulated_window, markov, lo, ++*generation);
  };
  auto refitter = std::make_unique<OnlineDecision::Refitter>(o, solver, std::move(initial));
  return std::unique_ptr<DecisionSource>(
      std::make_unique<OnlineDecision>(emulated, c, std::move(refitter), o.WindowSamples()));
}

// One policy's run, summed up from its records.
struct PolicySummary {
  std::string name;
  int n = 0, with_sim = 0, fallbacks = 0;
  double realized = 0, predicted = 0, sim = 0, oracle = 0, realized_sim_part = 0;
  double boundary = 0, decision_us = 0, total_ms = 0;
  uint64_t max_generation = 0;
  std::vector<int> boundaries;      // per inference
  std::vector<double> start_rates;  // emulated bit/s observed at boundary 0, per inference
  double Mean(double v) const { return n > 0 ? v / n : 0.0; }
};

PolicySummary Summarize(const std::string& name, const std::vector<json>& recs) {
  PolicySummary s;
  s.name = name;
  for (const json& r : recs) {
    ++s.n;
    const double realized = r["cost"]["total"].get<double>();
    s.realized += realized;
    s.predicted += r["predicted_cost"].get<double>();
    s.boundary += r["boundary"].get<double>();
    s.boundaries.push_back(r["boundary"].get<int>());
    s.start_rates.push_back(r["channel_states"][0]["rate_bps"].get<double>());
    s.decision_us += r["decision_us"].get<double>();
    s.total_ms += r["total_ms"].get<double>();
    s.fallbacks += !r["fallback"].is_null();
    s.max_generation = std::max(s.max_generation, r["table_generation"].get<uint64_t>());
    if (r["sim_cost"].is_number()) {
      ++s.with_sim;
      s.sim += r["sim_cost"].get<double>();
      s.oracle += r["oracle_cost"].get<double>();
      s.realized_sim_part += realized;
    }
  }
  return s;
}

void PrintPolicyLine(const PolicySummary& s, const std::string& csi) {
  std::printf("policy %s, csi %s: %d inferences, mean realized cost %.6g, mean predicted %.6g",
              s.name.c_str(), csi.c_str(), s.n, s.Mean(s.realized), s.Mean(s.predicted));
  if (s.with_sim > 0)
    std::printf(", simulator on the same paths %.6g, oracle %.6g", s.sim / s.with_sim,
                s.oracle / s.with_sim);
  std::printf("\n");
}

// Replay: the policies side by side on the same segments.
void PrintComparison(const std::vector<PolicySummary>& all) {
  double best = std::numeric_limits<double>::infinity();
  for (const PolicySummary& s : all) best = std::min(best, s.Mean(s.realized));
  std::printf("\n%-13s %5s %11s %8s %11s %9s %11s %9s %9s %7s %8s %10s\n", "policy", "n",
              "realized", "/best", "simulated", "live/sim", "oracle", "live/orc", "sim/orc",
              "mean k", "fallback", "decide_us");
  for (const PolicySummary& s : all) {
    const double sim = s.with_sim ? s.sim / s.with_sim : NAN;
    const double oracle = s.with_sim ? s.oracle / s.with_sim : NAN;
    const double live = s.with_sim ? s.realized_sim_part / s.with_sim : NAN;
    std::printf("%-13s %5d %11.5g %8.3f %11.5g %9.3f %11.5g %9.3f %9.3f %7.2f %8d %10.2f\n",
                s.name.c_str(), s.n, s.Mean(s.realized), s.Mean(s.realized) / best, sim, live / sim,
                oracle, live / oracle, sim / oracle, s.Mean(s.boundary), s.fallbacks,
                s.Mean(s.decision_us));
  }
  std::printf(
      "realized: mean ledger cost live; simulated: split_sim's cost of the same table on the same "
      "channel paths; oracle: the clairvoyant cost of those paths under the cost model\n");
  // The boundary each policy chose, segment by segment, under the rate observed at its start.
  std::printf("\n%-16s", "Mbit/s at k=0");
  for (double r : all.front().start_rates) std::printf(" %5.3g", r / 1e6);
  std::printf("\n");
  for (const PolicySummary& s : all) {
    std::printf("%-16s", ("k " + s.name).c_str());
    for (int k : s.boundaries) std::printf(" %5d", k);
    std::printf("\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"splitinfer device client: runs units 1..k here and the rest on an edge_server"};
  app.option_defaults()->always_capture_default();  // defaults in --help and --print-config
  app.set_config("--config", "",
                 "read options from this TOML file (KEY = VALUE, KEY a long option name without "
                 "--; see device/device_client.example.toml); the command line overrides it");
  app.allow_config_extras(CLI::config_extras_mode::error);
  const std::shared_ptr<StrictTomlConfig> config_reader = UseStrictTomlConfig(&app);
  bool print_config = false;
  app.add_flag("--print-config", print_config,
               "print the options set (command line over --config file) in --config format, "
               "and exit")
      ->configurable(false);
  Config cfg;
  ZooOptions zoo;
  std::vector<int64_t> ts_input_shape;
  app.add_option("--server", cfg.server,
                 "edge_server HOST:PORT, or a comma-separated list tried in order of health "
                 "(failover); omit to run everything locally");
  app.add_option("--model", cfg.model, "zoo model name (or the name of --torchscript)");
  app.add_option("--version", cfg.version, "model version")->check(CLI::Range(1u, 1000000u));
  app.add_option("--torchscript", cfg.torchscript, "TorchScript chain file instead of the zoo");
  auto* split_opt =
      app.add_option("--split", cfg.split, "boundary k in 0..N, or 'all' for every k");
  std::string codec_text = "fp32";
  app.add_option("--codec", codec_text,
                 "how the tensor at the split travels (with --split): fp32 (raw), fp16, int8, "
                 "int8c (per channel), each optionally +zstd or +zstd:LEVEL");
  std::string profile_path, cost_config;
  double w_energy = -1, w_time = -1, grid_ms = 5, window_ms = 20, bandwidth_mhz = 10;
  std::string law_mode = "prefix", ledger_path;
  double fit_fraction = 0.5;
  int segments = 0;
  OnlineSettings online;
  int num_states = 16;
  uint64_t channel_seed = 1;
  auto* policy_opt =
      app.add_option("--policy", cfg.policy,
                     "decide k live: bi|ola|neurosurgeon|greedy|best-fixed|fixed:K|local|edge "
                     "(needs --channel; replaces --split); with --segments a comma-separated "
                     "list or 'all'")
          ->excludes(split_opt);
  app.add_option("--channel", cfg.channel,
                 "emulated uplink, split_sim specs: rayleigh:snr_db=X | "
                 "gauss-markov:snr_db=X,doppler_hz=Y | trace:FILE | markov-fit:FILE")
      ->needs(policy_opt);
  app.add_option("--time-scale", cfg.time_scale, "emulated (trace) seconds per wall second")
      ->check(CLI::Range(1e-3, 1e3));
  app.add_option("--csi", cfg.csi,
                 "channel state the device observes: perfect (the emulated rate) or estimated "
                 "(goodput of its recent uploads)")
      ->check(CLI::IsMember({"perfect", "estimated"}));
  size_t goodput_window = 5;
  app.add_option("--goodput-window", goodput_window, "--csi estimated: uploads averaged")
      ->check(CLI::Range(1, 10000));
  app.add_option("--device-slowdown", cfg.device_slowdown,
                 "each device unit takes X times its measured time (a slower board)")
      ->check(CLI::Range(1.0, 1000.0));
  app.add_option("--profile", profile_path,
                 "profile JSON for the cost model, or 'local' to profile the model here at "
                 "start-up (default: data/profiles/<model>.json for default zoo options, else "
                 "local)");
  app.add_option("--cost-config", cost_config, "cost options JSON (keys of CostOptions)");
  app.add_option("--w-energy", w_energy, "weight of a joule (overrides --cost-config)");
  app.add_option("--w-time", w_time, "weight of a second (overrides --cost-config)");
  app.add_option("--states", num_states, "K, channel states of the policy's law")
      ->check(CLI::Range(1, 4096));
  app.add_option("--grid-ms", grid_ms, "step of the emulated rate series")
      ->check(CLI::Range(0.1, 10000.0));
  app.add_option("--window-ms", window_ms,
                 "the device observes the mean rate over this window (as split_sim: 20)")
      ->check(CLI::Range(0.0, 600000.0));
  app.add_option("--law", law_mode,
                 "channel law of the policy (series channels): prefix = fitted on the first "
                 "--fit-fraction of the series, the run starts after it (as split_sim); full = "
                 "fitted on the whole series, the run starts at 0; online = starts from the "
                 "prefix law and re-fits a Markov law from the CSI reports of a sliding window "
                 "in the background")
      ->check(CLI::IsMember({"prefix", "full", "online"}));
  app.add_option("--fit-fraction", fit_fraction, "share of the series the prefix law is fitted on")
      ->check(CLI::Range(0.05, 0.95));
  app.add_option("--segments", segments,
                 "replay: one inference per segment, starting at S evenly spaced offsets of the "
                 "scored part of the series, the same offsets for every policy of --policy")
      ->check(CLI::Range(0, 100000));
  app.add_option("--ledger", ledger_path, "also write every JSON record to this file");
  std::string codecs_path;
  double min_agreement = -1, fidelity_weight = -1;
  app.add_option("--codecs", codecs_path,
                 "--policy: codec profile JSON (codec_fidelity, data/codecs/<model>.json); the "
                 "policy then chooses the codec of the split tensor with the boundary")
      ->needs(policy_opt);
  app.add_option("--min-agreement", min_agreement,
                 "--codecs: codecs below this top-1 agreement with float32 are not used")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--fidelity-weight", fidelity_weight,
                 "--codecs: cost per unit of lost top-1 agreement")
      ->check(CLI::Range(0.0, 1e9));
  app.add_option("--online-window-s", online.window_s, "--law online: sliding window (emulated s)")
      ->check(CLI::Range(0.1, 1e6));
  app.add_option("--refit-every-s", online.refit_every_s,
                 "--law online: new CSI reports (emulated s) between re-fits")
      ->check(CLI::Range(0.001, 1e6));
  app.add_option("--change-threshold", online.change_threshold,
                 "--law online: re-solve when the law distance exceeds this")
      ->check(CLI::Range(0.0, 2.0));
  app.add_option("--bandwidth-mhz", bandwidth_mhz, "Shannon bandwidth (rayleigh, gauss-markov)")
      ->check(CLI::Range(1e-3, 1e5));
  app.add_option("--channel-seed", channel_seed, "seed of generated channels");
  app.add_option("--requests", cfg.requests, "inferences per split")->check(CLI::Range(1, 1000000));
  app.add_option("--in-flight", cfg.in_flight, "requests outstanding at once on the connection")
      ->check(CLI::Range(1, 4096));
  app.add_flag("--verify", cfg.verify, "compare each result with a whole local run");
  app.add_flag("--json", cfg.json, "one JSON line per inference on stdout");
  app.add_option("--seed", cfg.seed, "seed of the random inputs");
  app.add_option("--input-size", zoo.input_size, "zoo CNNs: image height = width (as the server)")
      ->check(CLI::Range(16, 4096));
  app.add_option("--width-mult", zoo.width_mult, "zoo CNNs: channel multiplier (as the server)")
      ->check(CLI::Range(0.05, 4.0));
  app.add_option("--num-classes", zoo.num_classes)->check(CLI::Range(1, 100000));
  app.add_option("--mlp-width", zoo.mlp_width)->check(CLI::Range(1, 1 << 16));
  app.add_option("--mlp-layers", zoo.mlp_layers)->check(CLI::Range(1, 1000));
  app.add_option("--threads", cfg.threads, "LibTorch intra-op threads (0: default)")
      ->check(CLI::Range(0, 256));
  app.add_option("--connect-timeout-ms", cfg.connect_timeout_ms)->check(CLI::Range(1, 600000));
  app.add_option("--io-timeout-ms", cfg.io_timeout_ms)->check(CLI::Range(1, 3600000));
  app.add_option("--reconnect-ms", cfg.reconnect_ms, "wait before retrying a failed connect")
      ->check(CLI::Range(0, 3600000));
  app.add_option("--deadline-ms", cfg.deadline_ms, "edge deadline per request (0: server default)");
  app.add_flag("--tls", cfg.tls, "TLS to the edge server (it must run with --tls-cert/--tls-key)");
  app.add_option("--tls-ca", cfg.tls_ca, "PEM CA that signed the server (default: system store)")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-server-name", cfg.tls_server_name,
                 "name the server's certificate must carry (default: the host of --server)");
  app.add_option("--auth-token-file", cfg.auth_token_file,
                 "file whose first line is the server's auth token")
      ->check(CLI::ExistingFile);
  if (auto rc = ParseWithConfigFile(app, *config_reader, argc, argv, "device_client")) return *rc;
  if (print_config) {
    // Only what was set: with every default printed, --split and --policy would both be set
    // when the output is read back, and they exclude each other.
    std::cout << app.config_to_str(/*default_also=*/false, /*write_description=*/true);
    return 0;
  }

  if (cfg.threads > 0) torch::set_num_threads(cfg.threads);
  std::string error;
  if (!zoo.IsValid(&error)) {
    std::cerr << "device_client: " << error << "\n";
    return 2;
  }
  Result<std::shared_ptr<SplitModel>> model =
      cfg.torchscript.empty() ? BuildZooModel(cfg.model, cfg.version, zoo)
                              : LoadTorchScriptModel(cfg.torchscript, cfg.model, cfg.version, {});
  if (!model.ok()) {
    std::cerr << "device_client: " << model.status().ToString() << "\n";
    return 2;
  }
  const size_t n = (*model)->num_units();
  {
    Result<CodecSpec> codec = CodecSpec::Parse(codec_text);
    if (!codec.ok()) {
      std::cerr << "device_client: --codec: " << codec.status().message() << "\n";
      return 2;
    }
    cfg.codec = *codec;
    if (!cfg.policy.empty() && !cfg.codec.IsRaw()) {
      std::cerr << "device_client: --codec works with the fixed --split path; with --policy give "
                   "--codecs FILE and the policy chooses the codec with the boundary\n";
      return 2;
    }
  }
  if (!cfg.policy.empty() && cfg.channel.empty()) {
    std::cerr << "device_client: --policy needs --channel\n";
    return 2;
  }
  std::vector<size_t> splits;
  if (!cfg.policy.empty()) {
    splits.push_back(0);  // the policy decides; the value is not used
  } else if (split_opt->count() == 0) {
    std::cerr << "device_client: give --split K (or --policy with --channel)\n";
    return 2;
  } else if (cfg.split == "all") {
    for (size_t k = 0; k <= n; ++k) splits.push_back(k);
  } else {
    try {
      size_t pos = 0;
      const long k = std::stol(cfg.split, &pos);
      if (pos != cfg.split.size() || k < 0 || static_cast<size_t>(k) > n)
        throw std::out_of_range("");
      splits.push_back(static_cast<size_t>(k));
    } catch (const std::exception&) {
      std::cerr << "device_client: --split must be 'all' or a number in 0.." << n << " ("
                << cfg.model << " has " << n << " units), got '" << cfg.split << "'\n";
      return 2;
    }
  }

  EdgeClientOptions copts;
  copts.connect_timeout = std::chrono::milliseconds(cfg.connect_timeout_ms);
  copts.io_timeout = std::chrono::milliseconds(cfg.io_timeout_ms);
  if (!cfg.server.empty()) {
    std::vector<EdgeAddress> servers;
    Status st = ParseEdgeAddresses(cfg.server, &servers);
    if (!st.ok()) {
      std::cerr << "device_client: --server: " << st.message() << "\n";
      return 2;
    }
    copts.host = servers.front().host;
    copts.port = servers.front().port;
    copts.fallbacks.assign(servers.begin() + 1, servers.end());
    copts.failover_backoff = std::chrono::milliseconds(std::max(cfg.reconnect_ms, 100));
  }
  copts.tls = cfg.tls || !cfg.tls_ca.empty() || !cfg.tls_server_name.empty();
  copts.tls_ca_file = cfg.tls_ca;
  copts.tls_server_name = cfg.tls_server_name;
  if (!cfg.auth_token_file.empty()) {
    auto token = ReadSecretFile(cfg.auth_token_file);
    if (!token.ok()) {
      std::cerr << "device_client: --auth-token-file: " << token.status().message() << "\n";
      return 2;
    }
    copts.auth_token = *token;
  }
  // Live splitting: cost model, emulated uplink, one decision source per policy.
  decision::CostOptions cost_options;
  std::optional<decision::CostModel> cost_model;
  std::unique_ptr<UplinkEmulator> uplink;
  std::unique_ptr<decision::ScoredSeries> scored;
  std::vector<std::string> policies;                     // live: the policies to run
  std::vector<std::unique_ptr<DecisionSource>> sources;  // one per policy
  std::vector<double> segment_starts;                    // replay
  std::vector<CodecSpec> option_codecs;                  // --codecs: per wire option
  double run_start_s = 0.0;                              // emulated time of the first inference
  double fallback_prior_bps = 0.0;                       // --csi estimated before any upload
  if (!cfg.policy.empty()) {
    auto fail = [](const Status& st) {
      std::cerr << "device_client: " << st.ToString() << "\n";
      return 2;
    };
    const ZooOptions defaults;
    const bool default_zoo =
        cfg.torchscript.empty() && zoo.input_size == defaults.input_size &&
        zoo.num_classes == defaults.num_classes && zoo.width_mult == defaults.width_mult &&
        zoo.mlp_width == defaults.mlp_width && zoo.mlp_layers == defaults.mlp_layers;
    const std::string zoo_profile = "data/profiles/" + cfg.model + ".json";
    Result<decision::ModelProfile> profile = NotFoundError("no profile");
    if (profile_path == "local") {
      profile = ProfileLocalModel(**model, 5, cfg.device_slowdown);
    } else if (!profile_path.empty()) {
      profile = decision::LoadProfile(profile_path);
    } else if (default_zoo && std::filesystem::exists(zoo_profile)) {
      profile = decision::LoadProfile(zoo_profile);
    } else {
      profile = ProfileLocalModel(**model, 5, cfg.device_slowdown);
    }
    if (!profile.ok()) return fail(profile.status());
    if (!cost_config.empty()) {
      Result<decision::CostOptions> loaded = decision::CostOptions::Load(cost_config);
      if (!loaded.ok()) return fail(loaded.status());
      cost_options = *loaded;
    }
    if (w_energy >= 0) cost_options.w_energy = w_energy;
    if (w_time >= 0) cost_options.w_time = w_time;
    cost_options.device_slowdown = cfg.device_slowdown;
    if (min_agreement >= 0) cost_options.min_agreement = min_agreement;
    if (fidelity_weight >= 0) cost_options.fidelity_weight = fidelity_weight;
    std::vector<decision::WireOption> codecs;
    if (!codecs_path.empty()) {
      Result<std::vector<decision::WireOption>> loaded =
          decision::LoadCodecProfile(codecs_path, profile->num_units());
      if (!loaded.ok()) return fail(loaded.status());
      codecs = std::move(*loaded);
    }
    Result<decision::CostModel> cost =
        decision::CostModel::Create(*profile, cost_options, std::move(codecs));
    if (!cost.ok()) return fail(cost.status());
    cost_model = std::move(*cost);
    for (int c = 0; c < cost_model->num_wire_options(); ++c) {
      Result<CodecSpec> spec = CodecSpec::Parse(cost_model->WireOptionName(c));
      if (!spec.ok())
        return fail(spec.status().WithPrefix(codecs_path + ": codec " +
                                             cost_model->WireOptionName(c) + ": "));
      option_codecs.push_back(*spec);
    }
    Result<decision::ChannelSpec> spec = decision::ChannelSpec::Parse(cfg.channel);
    if (!spec.ok()) return fail(spec.status());
    using Kind = decision::ChannelSpec::Kind;
    const bool is_series = spec->kind != Kind::kRayleigh;
    const bool markov = spec->kind == Kind::kMarkovFit || spec->kind == Kind::kGaussMarkov;
    if (law_mode == "online" && (!is_series || cfg.csi != "perfect"))
      return fail(InvalidArgumentError(
          "--law online learns from CSI reports: it needs a series channel (trace:, markov-fit:, "
          "gauss-markov:) and --csi perfect"));
    if (segments > 0 && !is_series)
      return fail(InvalidArgumentError(
          "--segments replays a rate series: use trace:, markov-fit: or gauss-markov:"));
    if (segments > 0 && cfg.in_flight != 1)
      return fail(InvalidArgumentError("--segments runs one inference at a time (--in-flight 1)"));
    EmulatedSeriesOptions so;
    so.grid_s = grid_ms * 1e-3;
    so.bandwidth_hz = bandwidth_mhz * 1e6;
    so.seed = channel_seed;
    Result<decision::RateSeries> series = MakeEmulatedSeries(*spec, so);
    if (!series.ok()) return fail(series.status());
    if (series->size() == 0) return fail(InvalidArgumentError(cfg.channel + ": empty series"));
    const size_t total = series->size();
    const double dt = series->dt_s;
    // The law's fitting part [0, cut) and the part the run (or the replay) uses [begin, total).
    size_t cut = total, begin = 0;
    if (is_series && law_mode != "full") {
      cut = static_cast<size_t>(static_cast<double>(total) * fit_fraction);
      begin = cut;
      if (cut < 100 || total - cut < 100)
        return fail(InvalidArgumentError(
            cfg.channel + ": series too short to fit the law on one part and run on another (" +
            std::to_string(total) + " steps of " + std::to_string(dt) + " s; try --law full)"));
    }
    run_start_s = static_cast<double>(begin) * dt;
    for (int j = 0; j < segments; ++j)
      segment_starts.push_back(
          dt * static_cast<double>(begin + static_cast<size_t>((j + 0.5) * (total - begin) /
                                                               static_cast<double>(segments))));
    // Policies: one, or with --segments a list ("all": split_sim's standard set). A name with
    // "@online" runs that policy on the online law (e.g. "all,bi@online").
    {
      std::stringstream in(cfg.policy);
      for (std::string p; std::getline(in, p, ',');) {
        if (p == "all" && segments > 0)
          policies.insert(policies.end(), StandardPolicyNames().begin(),
                          StandardPolicyNames().end());
        else if (!p.empty())
          policies.push_back(p);
      }
      if (policies.size() != 1 && segments == 0)
        return fail(InvalidArgumentError("several policies need --segments (replay)"));
    }
    LiveDecisionOptions lo;
    lo.num_states = num_states;
    lo.observe_window_s = window_ms * 1e-3;
    lo.bandwidth_hz = so.bandwidth_hz;
    lo.time_scale = cfg.time_scale;
    const decision::RateSeries fit = series->Slice(0, cut);
    for (const std::string& run_name : policies) {
      const size_t at = run_name.find("@online");
      const bool online_law = law_mode == "online" || at != std::string::npos;
      if (at != std::string::npos && at + 7 != run_name.size())
        return fail(InvalidArgumentError("policy " + run_name + ": only the suffix @online"));
      const std::string name = run_name.substr(0, at);
      if (online_law && (!is_series || cfg.csi != "perfect"))
        return fail(InvalidArgumentError(
            "the online law learns from CSI reports: it needs a series channel (trace:, "
            "markov-fit:, gauss-markov:) and --csi perfect"));
      lo.policy = name;
      Result<std::shared_ptr<const LiveDecision>> d =
          is_series ? LiveDecision::FromSeries(*cost_model, fit, markov, lo)
                    : LiveDecision::FromRayleigh(*cost_model, spec->snr_db, lo);
      if (!d.ok()) return fail(d.status());
      if (online_law) {
        Result<std::unique_ptr<DecisionSource>> src =
            MakeOnlineSource(*cost_model, lo, markov, online, *d, *series);
        if (!src.ok()) return fail(src.status());
        sources.push_back(std::move(*src));
      } else {
        sources.push_back(std::make_unique<FixedDecision>(std::move(*d)));
      }
    }
    fallback_prior_bps = fit.MeanRate();
    if (is_series) {
      scored = std::make_unique<decision::ScoredSeries>(
          ToWallTime(*series, cfg.time_scale),
          std::max<size_t>(1, std::lround(window_ms / grid_ms)), 0);
    }
    uplink = std::make_unique<UplinkEmulator>(std::move(*series), cfg.time_scale, window_ms * 1e-3);
    uplink->set_max_frame_s(cfg.io_timeout_ms / 1000.0);
    copts.uplink_pacer = uplink.get();
  }
  EdgeClient client(copts);
  std::ofstream ledger;
  if (!ledger_path.empty()) {
    ledger.open(ledger_path);
    if (!ledger) {
      std::cerr << "device_client: cannot write --ledger " << ledger_path << "\n";
      return 2;
    }
  }
  cfg.ledger = ledger.is_open() ? &ledger : nullptr;

  if (!cfg.json) {
    std::printf("model %s@%u, %zu units, server %s, codec %s\n", (*model)->name().c_str(),
                (*model)->version(), n, cfg.server.empty() ? "(none)" : cfg.server.c_str(),
                cfg.codec.ToString().c_str());
    std::printf("%5s %12s %10s %10s %10s %7s %8s %9s\n", "split", "bytes_sent", "device_ms",
                "edge_ms", "total_ms", "on_edge", "fallback", "verified");
  }
  int failures = 0;
  auto count_failures = [&](const std::vector<json>& recs) {
    for (auto& r : recs) {
      failures += !r["ok"].get<bool>();
      if (cfg.verify) {
        failures += !(r["max_abs_diff"].get<double>() >= 0 &&
                      r["max_abs_diff"].get<double>() <= 1e-5 && r["top1_match"].get<bool>());
      }
    }
  };
  if (cfg.policy.empty()) {
    // Without --server every split but N completes through the local path, marked as such.
    Runner runner(cfg, *model, &client);
    for (size_t k : splits) {
      auto recs = runner.Run(k);
      count_failures(recs);
      if (!cfg.json) PrintSummaryRow(recs, cfg.verify);
    }
  } else {
    std::vector<PolicySummary> summaries;
    Config run_cfg = cfg;
    if (segments > 0) run_cfg.requests = segments;
    std::vector<std::unique_ptr<GoodputEstimator>> goodputs;
    std::vector<std::unique_ptr<Runner>> runners;
    for (size_t p = 0; p < policies.size(); ++p) {
      LiveContext live;
      live.source = sources[p].get();
      live.name = policies[p];
      live.uplink = uplink.get();
      live.cost = &cost_options;
      live.cost_model = &*cost_model;
      live.scored = scored.get();
      live.segment_starts = segment_starts;
      live.option_codecs = option_codecs;
      if (cfg.csi == "estimated") {
        goodputs.push_back(std::make_unique<GoodputEstimator>(goodput_window, fallback_prior_bps));
        live.goodput = goodputs.back().get();
      }
      runners.push_back(std::make_unique<Runner>(run_cfg, *model, &client, live));
    }
    std::vector<std::vector<json>> recs(policies.size());
    if (segments > 0) {
      // Segment-major: every policy runs segment j before any runs j+1, so a drift in this
      // machine's speed during the replay reaches every policy alike.
      for (int j = 0; j < segments; ++j)
        for (size_t p = 0; p < policies.size(); ++p) recs[p].push_back(runners[p]->RunSegment(j));
    } else {
      uplink->StartAt(run_start_s);
      recs[0] = runners[0]->Run(0);
    }
    for (size_t p = 0; p < policies.size(); ++p) {
      count_failures(recs[p]);
      summaries.push_back(Summarize(policies[p], recs[p]));
      if (!cfg.json) {
        // One row per boundary the policy chose, then the ledger's means.
        std::map<size_t, std::vector<json>> by_boundary;
        for (auto& r : recs[p]) by_boundary[r["split"].get<size_t>()].push_back(r);
        std::printf("policy %s:\n", policies[p].c_str());
        for (auto& [k, group] : by_boundary) PrintSummaryRow(group, cfg.verify);
        PrintPolicyLine(summaries.back(), cfg.csi);
      }
    }
    if (!cfg.json && policies.size() > 1) PrintComparison(summaries);
  }
  client.Close();
  return failures == 0 ? 0 : 1;
}

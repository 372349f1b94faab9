#include "device/device_session.h"

#include <thread>
#include <type_traits>

#include <c10/core/InferenceMode.h>

#include "common/log.h"

namespace splitinfer {

using Clock = std::chrono::steady_clock;

namespace {

double MsBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Limits for decoding a tensor this process encoded itself: the network's bounds do not apply.
FrameLimits OwnTensorLimits() {
  FrameLimits l;
  l.max_body_bytes = uint64_t{1} << 40;
  l.max_tensor_rank = 16;
  return l;
}

}  // namespace

// One inference from its first unit to its record.
struct DeviceSession::Pending {
  InferenceRecord rec;
  std::unique_ptr<InferencePlan> plan;
  UplinkView* uplink = nullptr;
  at::Tensor input;     // kept for verification
  at::Tensor boundary;  // the tensor at the stop: kept until the edge answers
  // A codec other than fp32: the tensor as sent. Every path from the stop on (edge, local
  // fallback, verification) uses its decoded form, so results agree wherever they ran.
  std::optional<Encoded> encoded;
  CodecSpec codec;
  Clock::time_point start, sent;
  double device_s = 0;  // device work (slowdown included), the local finish too
  double upload_s = 0;  // the upload as charged by the uplink
};

DeviceSession::DeviceSession(SessionOptions options, EdgeClient* client, Sink sink)
    : options_(options), client_(client), sink_(std::move(sink)) {
  if (!options_.has_edge || client_ == nullptr) {
    options_.has_edge = false;
    next_connect_ = Clock::time_point::max();
    last_error_ = "no edge server configured";
  }
}

DeviceSession::~DeviceSession() = default;

template <typename F>
auto DeviceSession::DeviceWork(Pending& inf, F&& work) {
  const auto t = Clock::now();
  auto finish = [&] {
    if (options_.device_slowdown > 1.0) {
      const auto took = Clock::now() - t;
      std::this_thread::sleep_until(
          t + std::chrono::duration_cast<Clock::duration>(took * options_.device_slowdown));
    }
    inf.device_s += Seconds(Clock::now() - t);
  };
  if constexpr (std::is_void_v<decltype(work())>) {
    work();
    finish();
  } else {
    auto r = work();
    finish();
    return r;
  }
}

at::Tensor DeviceSession::RunUnits(Pending& inf, at::Tensor x, int from, int to) {
  const SplitModel& model = inf.plan->model();
  for (int u = from; u < to; ++u)
    x = DeviceWork(inf, [&] { return model.RunRange(x, static_cast<size_t>(u), u + 1); });
  return x;
}

Status DeviceSession::Submit(SplitPolicy& policy, UplinkView* uplink, InferenceInput input) {
  c10::InferenceMode guard;
  auto inf = std::make_unique<Pending>();
  InferenceRecord& r = inf->rec;
  inf->uplink = uplink;
  const auto t_begin = Clock::now();
  ChannelObservation at0 = uplink ? uplink->Observe(0) : ChannelObservation{};
  if (!std::isnan(input.start_s)) at0.t_s = input.start_s;  // a replay starts exactly there
  Result<std::unique_ptr<InferencePlan>> plan = policy.Begin(at0);
  if (!plan.ok()) return plan.status();
  inf->plan = std::move(*plan);
  r.decision_us = std::chrono::duration<double, std::micro>(Clock::now() - t_begin).count();
  r.id = next_id_++;
  const InferencePlan& p = *inf->plan;
  r.policy = policy.name();
  r.model = p.model().name();
  r.version = p.version();
  r.m = p.placed_units();
  r.units = static_cast<int>(p.model().num_units());
  r.start_s = at0.t_s;
  r.segment = input.segment;
  r.label = input.label;
  inf->input = input.tensor;
  inf->start = Clock::now();

  // Units until the plan stops (at the horizon M at the latest), or an exit answers.
  const int horizon = p.horizon();
  at::Tensor x = input.tensor;
  ChannelObservation stop;
  for (int l = 0;; ++l) {
    const auto t_decide = Clock::now();
    ChannelObservation o = uplink ? uplink->Observe(l) : ChannelObservation{};
    o.boundary = l;
    const bool at_end = l >= horizon;
    const bool stopped = inf->plan->Stop(&o) || at_end;
    r.decision_us += std::chrono::duration<double, std::micro>(Clock::now() - t_decide).count();
    if (uplink != nullptr)
      r.states.push_back(
          {{"boundary", l}, {"t_s", o.t_s}, {"rate_bps", o.rate_bps}, {"state", o.state}});
    stop = o;
    if (stopped) break;
    x = RunUnits(*inf, x, l, l + 1);
    std::optional<LocalAnswer> early =
        DeviceWork(*inf, [&] { return inf->plan->TryExit(l + 1, x); });
    if (early) {
      r.boundary = l + 1;
      r.device_ms = MsBetween(inf->start, Clock::now());
      Finish(*inf, early->output, "device_exit", nullptr, std::nullopt, early->exit,
             early->exit_after_unit);
      return Status::Ok();
    }
  }
  r.boundary = stop.boundary;
  inf->codec = inf->plan->CodecAtStop(stop);
  Stopped(std::move(inf), std::move(x));
  return Status::Ok();
}

// At the stop k: finish here (k = N), or encode, send and leave the inference in flight.
void DeviceSession::Stopped(std::unique_ptr<Pending> owned, at::Tensor x) {
  Pending& inf_ref = *owned;
  InferenceRecord& r = inf_ref.rec;
  inf_ref.boundary = std::move(x);
  r.device_ms = MsBetween(inf_ref.start, Clock::now());
  if (r.boundary >= r.units) {
    FinishLocally(inf_ref, "");
    return;
  }
  if (!inf_ref.codec.IsRaw()) {
    const auto t_encode = Clock::now();
    Result<Encoded> enc =
        DeviceWork(inf_ref, [&] { return Encode(inf_ref.boundary, inf_ref.codec); });
    r.encode_ms = MsBetween(t_encode, Clock::now());
    if (!enc.ok()) {  // e.g. NaN under int8: the raw tensor finishes here
      FinishLocally(inf_ref, "encode failed: " + enc.status().ToString());
      return;
    }
    inf_ref.encoded = std::move(*enc);
  }
  r.codec = inf_ref.codec.ToString();
  std::string why;
  if (!EnsureConnected(inf_ref.plan->model(), &why)) {
    FinishLocally(inf_ref, "edge unreachable: " + why);
    return;
  }
  wire::InferRequest req;
  req.set_request_id(r.id);
  req.set_model(r.model);
  req.set_model_version(r.version);
  req.set_boundary(static_cast<uint32_t>(r.boundary));
  req.set_deadline_ms(options_.deadline_ms);
  const std::vector<double>& thresholds = inf_ref.plan->exit_thresholds();
  if (!thresholds.empty()) {
    for (double v : thresholds) req.add_exit_thresholds(static_cast<float>(v));
    req.set_exit_confidence(wire::EXIT_MAX_SOFTMAX);
  }
  const auto t_send = Clock::now();
  Status st = inf_ref.encoded ? client_->SendRequest(req, *inf_ref.encoded)
                              : client_->SendRequest(req, inf_ref.boundary);
  inf_ref.sent = Clock::now();
  r.send_ms = MsBetween(t_send, inf_ref.sent);
  if (!st.ok()) {
    if (st.code() == StatusCode::kResourceExhausted) {
      FinishLocally(inf_ref, "edge refused: " + st.message());
    } else {
      // The connection broke while sending. Replies the edge wrote before it went are still
      // in the socket: read them; what never comes finishes locally (ReadOne), and so does
      // this inference.
      while (!pending_.empty()) ReadOne();
      OnConnectionLost(st);
      FinishLocally(inf_ref, "send failed: " + st.ToString());
    }
    return;
  }
  r.bytes_sent = inf_ref.encoded ? inf_ref.encoded->body_bytes() : inf_ref.boundary.nbytes();
  inf_ref.upload_s =
      inf_ref.uplink != nullptr
          ? inf_ref.uplink->UploadSeconds(r.boundary, 8.0 * static_cast<double>(r.bytes_sent),
                                          r.send_ms / 1000.0)
          : r.send_ms / 1000.0;
  const uint64_t id = r.id;
  pending_.emplace(id, std::move(owned));
  while (static_cast<int>(pending_.size()) >= options_.in_flight) ReadOne();
}

bool DeviceSession::EnsureConnected(const SplitModel& model, std::string* why) {
  if (!options_.has_edge) {
    *why = last_error_;
    return false;
  }
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
    next_connect_ = Clock::now() + options_.reconnect;
    return false;
  }
  CheckServerModel(model);
  return true;
}

// Warns once when the server's model does not have the shape this device built.
void DeviceSession::CheckServerModel(const SplitModel& model) {
  if (warned_model_) return;
  for (const auto& m : client_->server_info().models()) {
    if (m.name() != model.name() || m.version() != model.version()) continue;
    std::vector<int64_t> shape(m.input_shape().begin(), m.input_shape().end());
    if (shape != model.input_shape() || m.num_units() != model.num_units()) {
      warned_model_ = true;
      log::Warn("the server's " + m.name() + "@" + std::to_string(m.version()) +
                " differs from the local model (input shape or unit count); use the same "
                "--input-size/--width-mult/--num-classes on both sides");
    }
  }
}

void DeviceSession::ReadOne() {
  auto reply = client_->ReadReply();
  if (!reply.ok()) {
    OnConnectionLost(reply.status());
    auto lost = std::move(pending_);
    pending_.clear();
    for (auto& [id, inf] : lost) FinishLocally(*inf, "edge lost: " + reply.status().ToString());
    return;
  }
  auto it = pending_.find(reply->request_id);
  if (it == pending_.end()) {
    log::Warn("ignoring a reply for unknown request " + std::to_string(reply->request_id));
    return;
  }
  std::shared_ptr<Pending> inf = std::move(it->second);
  pending_.erase(it);
  if (!reply->status.ok()) {
    // UNAVAILABLE: the server drains or stops. Once this connection's other replies are in,
    // leave it; the next connect prefers another edge server (--server a,b,...).
    if (reply->status.code() == StatusCode::kUnavailable) {
      client_->MarkUnhealthy();
      leave_after_replies_ = true;
    }
    FinishLocally(*inf, "edge refused: " + reply->status.ToString());
    if (leave_after_replies_ && pending_.empty()) {
      leave_after_replies_ = false;
      client_->Close();
      next_connect_ = Clock::now();
    }
    return;
  }
  const bool exits = !inf->plan->exit_thresholds().empty();
  Finish(*inf, reply->output, "edge", &reply.value(), std::nullopt,
         exits ? static_cast<int>(reply->exit_index) : -1,
         exits ? static_cast<int>(reply->exit_after_unit) : -1);
}

void DeviceSession::Drain() {
  while (!pending_.empty()) ReadOne();
}

void DeviceSession::OnConnectionLost(const Status& st) {
  client_->Close();
  last_error_ = st.ToString();
  next_connect_ = Clock::now();  // the next request tries once more, then backs off
}

void DeviceSession::FinishLocally(Pending& inf, const std::string& reason) {
  c10::InferenceMode guard;
  at::Tensor x = inf.boundary;
  if (inf.encoded) {
    // The device's own encoded tensor, decoded as the edge would have: the same result.
    Result<at::Tensor> decoded = Decode(*inf.encoded, OwnTensorLimits());
    if (decoded.ok()) x = std::move(*decoded);
  }
  Result<LocalAnswer> a =
      DeviceWork(inf, [&] { return inf.plan->FinishHere(x, inf.rec.boundary); });
  if (!a.ok()) {
    // The device does not hold the units to finish (a placement of M < N without an edge).
    Finish(inf, at::Tensor(), "fallback_local", nullptr,
           (reason.empty() ? std::string() : reason + "; ") + a.status().ToString());
    return;
  }
  Finish(inf, a->output, reason.empty() ? "local" : "fallback_local", nullptr,
         reason.empty() ? std::nullopt : std::optional<std::string>(reason), a->exit,
         a->exit_after_unit);
}

void DeviceSession::Finish(Pending& inf, const at::Tensor& output, const char* where,
                           const InferResult* edge, const std::optional<std::string>& fallback,
                           int exit, int exit_after_unit) {
  const auto end = Clock::now();
  InferenceRecord& r = inf.rec;
  r.ok = output.defined();
  r.output = output;
  r.completed_on = where;
  r.fallback = fallback;
  r.exit = exit;
  r.exit_after_unit = exit_after_unit;
  if (edge != nullptr) {
    r.edge_version = edge->model_version;
    r.edge_ms = static_cast<double>(edge->edge_compute_us) / 1000.0;
    r.queue_ms = static_cast<double>(edge->queue_us) / 1000.0;
    r.edge_decode_ms = static_cast<double>(edge->decode_us) / 1000.0;
    r.batch_size = edge->batch_size;
    r.wait_ms = MsBetween(inf.sent, end);
  }
  r.total_ms = MsBetween(inf.start, end);
  if (r.label >= 0 && r.ok) r.correct = output.flatten(1).argmax(1).item<int64_t>() == r.label;
  if (options_.cost != nullptr) {
    decision::InferenceSpend& s = r.spend;
    s.device_s = inf.device_s;
    s.device_j = options_.cost->DevicePowerW() * inf.device_s;
    s.upload_s = r.bytes_sent > 0 ? inf.upload_s : 0.0;
    if (edge != nullptr) {
      s.edge_queue_s = r.queue_ms / 1000.0;
      s.edge_compute_s = (r.edge_ms + r.edge_decode_ms) / 1000.0;
      s.download_s = std::max(0.0, r.wait_ms / 1000.0 - s.edge_queue_s - s.edge_compute_s);
    }
    // The accuracy penalty, where the answer can be checked.
    s.penalty = r.label >= 0 && !r.correct ? inf.plan->accuracy_weight() : 0.0;
    r.priced = decision::PriceInference(*options_.cost, s);
    r.priced_set = true;
  }
  inf.plan->Complete(&r);
  if (options_.verify && r.ok) Verify(inf, output);
  sink_(std::move(r));
}

// max_abs_diff and top1_match compare with a local run through the same codec (units 1..k,
// encode, decode, units k+1..N: exact on a CPU edge); the *_fp32 fields with the uncompressed
// local run, i.e. what the codec costs in fidelity.
void DeviceSession::Verify(Pending& inf, const at::Tensor& output) {
  c10::InferenceMode guard;
  InferenceRecord& r = inf.rec;
  const SplitModel& model = inf.plan->model();
  if (r.m < r.units || r.exit >= 0) return;  // units it does not hold; exits: another answer
  const size_t n = model.num_units();
  const size_t k = static_cast<size_t>(r.boundary);
  const at::Tensor ref_fp32 = model.RunRange(inf.input, 0, n);
  at::Tensor ref = ref_fp32;
  if (inf.encoded) {
    Result<Encoded> enc = Encode(model.RunRange(inf.input, 0, k), inf.codec);
    Result<at::Tensor> dec = enc.ok() ? Decode(*enc, OwnTensorLimits()) : enc.status();
    ref = dec.ok() ? model.RunRange(*dec, k, n) : at::Tensor();
  }
  at::Tensor out = output.to(at::kCPU).to(at::kFloat);
  auto compare = [&](const at::Tensor& want, double* diff, bool* top1) {
    const bool same_shape = want.defined() && out.sizes() == want.sizes();
    *diff = same_shape ? (out - want).abs().max().item<double>() : -1.0;
    *top1 =
        same_shape && out.dim() >= 1 && out.flatten(1).argmax(1).equal(want.flatten(1).argmax(1));
  };
  compare(ref, &r.max_abs_diff, &r.top1_match);
  compare(ref_fp32, &r.codec_max_abs_diff_vs_fp32, &r.top1_match_fp32);
  r.verified = true;
}

}  // namespace splitinfer

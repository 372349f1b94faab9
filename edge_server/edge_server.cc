#include "edge_server/edge_server.h"

#include <cmath>
#include <condition_variable>
#include <deque>
#include <map>
#include <optional>
#include <set>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "common/codec.h"
#include "common/exits/branchy_model.h"
#include "common/frame_io.h"
#include "common/handshake.h"
#include "common/log.h"
#include "common/tensor_wire.h"
#include "common/tls.h"
#include "edge_server/placement_service.h"

namespace splitinfer {
namespace {

using Clock = std::chrono::steady_clock;

// Chunks one FetchRequest may ask for (more are clamped: the device asks again).
constexpr uint32_t kMaxChunksPerFetch = 4096;

// Admission: a handshake unfinished this long may be evicted to make room (a device's own
// takes milliseconds, TLS included; a younger one is never cut off).
constexpr std::chrono::milliseconds kStaleHandshake{1000};

uint64_t MicrosSince(Clock::time_point t0, Clock::time_point t1 = Clock::now()) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(t1 - t0).count());
}

// A request's tensor as read from the socket: a raw body is read straight into `tensor`; an
// encoded one (common/codec.h) into the bytes of `encoded`, decoded on the compute thread.
struct RequestInput {
  at::Tensor tensor;
  at::Tensor encoded;  // 1-D uint8
};

}  // namespace

class Session;

// One inference request on its way to a compute thread (alone or in a batch).
struct Job {
  std::shared_ptr<Session> session;  // delivers the reply on the session's strand
  wire::InferRequest req;
  RequestInput input;
  std::shared_ptr<const SplitModel> model;
  Clock::time_point receipt;
  uint32_t deadline_ms = 0;
};

// Early exits (issue 9): a request with exit thresholds needs a model with exits, one finite
// threshold per exit and a known confidence measure.
namespace {
Status CheckExitRequest(const wire::InferRequest& req, const SplitModel& m) {
  if (req.exit_thresholds_size() == 0) {
    if (req.exit_confidence() != wire::EXIT_MAX_SOFTMAX) {
      return InvalidArgumentError("exit_confidence without exit_thresholds");
    }
    return Status::Ok();
  }
  const auto* branchy = dynamic_cast<const exits::BranchyModel*>(&m);
  if (branchy == nullptr) {
    return InvalidArgumentError("model " + m.name() +
                                " has no early exits; send no exit_thresholds");
  }
  if (static_cast<size_t>(req.exit_thresholds_size()) != branchy->num_exits()) {
    return InvalidArgumentError("model " + m.name() + " has " +
                                std::to_string(branchy->num_exits()) + " exits, got " +
                                std::to_string(req.exit_thresholds_size()) + " exit thresholds");
  }
  for (int e = 0; e < req.exit_thresholds_size(); ++e) {
    if (!std::isfinite(req.exit_thresholds(e))) {
      return InvalidArgumentError("exit threshold " + std::to_string(e) + " is not finite");
    }
  }
  if (req.exit_confidence() != wire::EXIT_MAX_SOFTMAX &&
      req.exit_confidence() != wire::EXIT_ENTROPY) {
    return InvalidArgumentError("unknown exit_confidence " + std::to_string(req.exit_confidence()));
  }
  return Status::Ok();
}
}  // namespace

class EdgeServer::Impl {
 public:
  Impl(EdgeServerOptions o, std::shared_ptr<const ModelRegistry> m, EdgeServerStats* s,
       EdgeServerMetrics* mt)
      : options(std::move(o)),
        models(std::move(m)),
        stats(s),
        metrics(mt),
        acceptor(io),
        compute_pool(static_cast<size_t>(options.compute_threads)) {}

  void DoAccept();
  // Admission (EdgeServerOptions, docs/security.md): registers `newcomer` when it may take a
  // slot, evicting idle or unfinished connections to make room; else returns why not.
  Status Admit(const std::shared_ptr<Session>& newcomer);
  // While the server is at least 3/4 full: closes connections idle past crowded_idle_timeout.
  // Re-arms itself every second until Stop().
  void SweepCrowdedIdle();
  size_t LiveSessions();
  std::vector<std::shared_ptr<Session>> AllSessions();

  // Dynamic batching. Submit() hands a checked request to the compute pool: at once when
  // batching is off (max_batch_size 1). Otherwise it is work-conserving: a request that finds a
  // compute thread free runs at once (alone, or with what is queued for its model version and
  // boundary); while every compute thread is busy, requests queue per (model version, boundary),
  // and a queue runs as one batch when it holds max_batch_size requests, when a compute thread
  // frees up (the oldest queue goes), or when max_batch_delay has passed since its first request
  // (a timer on the I/O context). So a lone device never waits for companions, and under load
  // batches form from the requests that would have waited anyway.
  void Submit(Job job);
  void FlushAll();  // Stop(): every queued request goes to the pool (which answers UNAVAILABLE)
  void OnBatchDone();

 private:
  using BatchKey = std::pair<const SplitModel*, uint32_t>;
  struct BatchQueue {
    std::vector<Job> jobs;
    std::unique_ptr<asio::steady_timer> timer;
    uint64_t generation = 0;  // bumped when the queue is taken: a late timer then does nothing
  };
  void FlushKey(const BatchKey& key, uint64_t generation);
  void PostBatch(std::vector<Job> jobs, bool queued);

 public:
  const EdgeServerOptions options;
  const std::shared_ptr<const ModelRegistry> models;
  EdgeServerStats* const stats;
  EdgeServerMetrics* const metrics;
  wire::HelloReply hello;  // template of the handshake answer, filled by Start()
  HandshakePolicy handshake;
  std::shared_ptr<ssl::context> tls;  // set by Start() when TLS is on
  // Models on a CUDA device: request bodies are received into pinned host memory, a batch is
  // gathered into pinned memory and moved to the GPU with one non-blocking copy, and outputs
  // come back into pinned memory (set by Start()).
  bool pin_host_memory = false;

  // Declared before io so that sessions destroyed with io's pending handlers find them alive.
  std::mutex mu;
  std::map<const Session*, std::weak_ptr<Session>> sessions;
  bool stopping = false;
  bool stopped = false;
  std::condition_variable stopped_cv;

  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  tcp::acceptor acceptor;
  std::unique_ptr<asio::steady_timer> sweep_timer;  // SweepCrowdedIdle (made by Start())
  asio::thread_pool compute_pool;
  std::vector<std::thread> io_threads;
  // Fault injection (tests): chunks served so far, and whether the drop has happened.
  std::atomic<uint64_t> chunks_served{0};
  std::atomic<bool> fault_dropped{false};
  // Lifecycle and drain accounting (EdgeServer::Drain).
  std::atomic<bool> started{false};
  std::atomic<bool> draining{false};
  std::atomic<bool> drain_abort{false};
  std::atomic<bool> abandon{false};          // Stop(): queued computations answer at once
  std::atomic<uint64_t> pending{0};          // requests received, reply not yet written
  std::atomic<uint64_t> replies_written{0};  // replies to received requests, written
  // Batch queues (after io: their timers go first when the Impl is destroyed).
  std::mutex batch_mu;
  std::map<BatchKey, BatchQueue> batch_queues;
  std::atomic<int> outstanding_batches{0};  // posted to the compute pool, not yet finished
};

// Counts an InferReply by its code (EdgeServerMetrics::requests_by_code).
static void CountReply(EdgeServer::Impl* server, wire::StatusCode code) {
  const size_t i = static_cast<size_t>(code);
  if (i < EdgeServerMetrics::kCodes) server->metrics->requests_by_code[i].Add();
}

// One device connection. All members are touched only on the session's strand (the executor of
// its socket), except the immutable server pointer. Compute jobs hold a shared_ptr to it and post
// their result back to the strand.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, EdgeServer::Impl* server)
      : stream_(std::move(socket)),
        read_timer_(stream_.get_executor()),
        write_timer_(stream_.get_executor()),
        server_(server),
        opts_(server->options),
        accepted_at_(Clock::now()),
        handshake_deadline_(accepted_at_ + server->options.handshake_timeout) {
    boost::system::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    address_ = ec ? "?" : ep.address().to_string();
    peer_ = ec ? "?" : address_ + ":" + std::to_string(ep.port());
    if (server_->tls) stream_.EnableTls(*server_->tls);
  }

  // ---- admission state, read by EdgeServer::Impl::Admit from the acceptor's strand -----------

  enum class Eviction { kIdle, kPendingHandshake, kPerAddress, kCrowdedIdle };

  const std::string& address() const { return address_; }
  Clock::time_point accepted_at() const { return accepted_at_; }
  // The Hello was accepted (with a token: the peer is authenticated).
  bool admitted() const { return admitted_.load(); }
  // Since when (steady clock, ns) the connection has waited for a frame with nothing in flight;
  // -1 while it is not idle.
  int64_t idle_since_ns() const { return idle_since_ns_.load(); }
  // Holds no connection slot: closed, or picked for eviction (set by Admit, cleared again by
  // Evict when the connection turned busy in between).
  std::atomic<bool> released{false};

  // Closes the connection to make room (on its strand): an admitted one only while it is still
  // idle, after a GoAway when the device reads them.
  void Evict(Eviction kind) {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this(), kind] {
      if (self->closed_) return;
      if (self->handshake_done_ && self->idle_since_ns_.load() < 0) {
        self->released = false;  // a frame arrived meanwhile: it keeps its slot
        return;
      }
      EdgeServerMetrics& m = *self->server_->metrics;
      const char* why = "";
      switch (kind) {
        case Eviction::kIdle:
          m.evicted_idle.Add();
          why = "evicted: idle while the server is at its connection limit";
          break;
        case Eviction::kPendingHandshake:
          m.evicted_pending_handshake.Add();
          why = "evicted: handshake unfinished while others wait";
          break;
        case Eviction::kPerAddress:
          m.evicted_per_address.Add();
          why = "evicted: idle while its address is at its connection cap";
          break;
        case Eviction::kCrowdedIdle:
          m.evicted_crowded_idle.Add();
          why = "evicted: idle too long while the server is nearly full";
          break;
      }
      log::Info(self->peer_ + ": " + why);
      if (!self->handshake_done_ || !self->accepts_go_away_) return self->Close(why);
      self->close_after_write_ = true;
      self->CancelReadTimer();
      self->SendGoAway(wire::GoAway::EVICTED, why);
    });
  }

  // The server drains: no new request here. The device is told (GoAway) and the connection is
  // half-closed once its last reply is written (UpdateIdle).
  void BeginDrain() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      if (self->closed_ || self->draining_) return;
      self->draining_ = true;
      if (!self->handshake_done_) return self->Close("server draining before the handshake");
      if (self->accepts_go_away_) {
        self->SendGoAway(wire::GoAway::DRAINING, "server is draining (shutting down)");
      }
      self->UpdateIdle();
    });
  }

  ~Session() {
    if (counted_) server_->metrics->connected_devices.Add(-1);
  }

  void Start() {
    counted_ = true;
    server_->metrics->connected_devices.Add(1);
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      boost::system::error_code ec;
      self->stream_.socket().set_option(tcp::no_delay(true), ec);
      self->Handshake([self] { self->ReadHeader(); });
    });
  }

  // Refuses the connection with `status` (e.g. too many connections): an ErrorReply (after the
  // TLS handshake, when TLS is on, so that the device can read why), then close.
  void Reject(const Status& status) {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this(), status] {
      self->Handshake([self, status] { self->FailConnection(status); });
    });
  }

  void Shutdown() {
    asio::dispatch(stream_.get_executor(),
                   [self = shared_from_this()] { self->Close("server shutting down"); });
  }

  // Requests received on this connection whose reply is not yet written (read by Drain()).
  uint32_t unanswered() const { return unanswered_.load(); }

  // A compute thread's reply to one of this session's requests: written on the strand.
  void Deliver(uint64_t request_id, OutgoingFrame frame, Clock::time_point receipt) {
    asio::post(stream_.get_executor(), [self = shared_from_this(), request_id,
                                        frame = std::move(frame), receipt]() mutable {
      --self->in_flight_;
      self->in_flight_ids_.erase(request_id);
      self->server_->metrics->total.ObserveMicros(MicrosSince(receipt));
      self->QueueWrite(std::move(frame), true);
      self->MaybeResumeRead();
      self->UpdateIdle();
    });
  }

 private:
  // ---- TLS ---------------------------------------------------------------------------------

  // Runs `next` at once on a plain connection; on a TLS one after the TLS handshake, which must
  // finish within handshake_timeout (a failed one closes the connection, counted and logged).
  template <typename Next>
  void Handshake(Next next) {
    if (!stream_.tls_enabled()) return next();
    ArmReadTimer(opts_.handshake_timeout);
    stream_.tls().async_handshake(
        ssl::stream_base::server,
        [self = shared_from_this(), next = std::move(next)](const boost::system::error_code& ec) {
          self->CancelReadTimer();
          if (self->closed_) return;
          if (ec) {
            self->server_->stats->tls_handshake_failures++;
            log::Info(self->peer_ + ": TLS handshake failed: " + TlsErrorText(ec));
            return self->Close("TLS handshake failed");
          }
          next();
        });
  }

  // ---- reading -------------------------------------------------------------------------------

  // A chunk stream counts as a full window: no request is read while one is being sent.
  size_t Outstanding() const {
    return in_flight_ + write_queue_.size() + (fetch_ ? opts_.max_in_flight : 0);
  }

  void ReadHeader() {
    if (closed_ || close_after_write_) return;
    if (Outstanding() >= opts_.max_in_flight) {
      read_paused_ = true;  // resumed by MaybeResumeRead() when replies drain
      return;
    }
    read_paused_ = false;
    // Waiting for a frame to start may take idle_timeout; once its first byte is here, the
    // rest of the frame must follow within io_timeout (a stalled peer is dropped). Before the
    // Hello every read ends at the one handshake deadline (ArmReadTimer).
    ArmReadTimer(handshake_done_ ? opts_.idle_timeout : opts_.handshake_timeout);
    waiting_for_frame_ = true;
    UpdateIdle();
    asio::async_read(stream_, asio::buffer(header_buf_), asio::transfer_at_least(1),
                     [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
                       self->waiting_for_frame_ = false;
                       self->UpdateIdle();
                       if (ec || n == self->header_buf_.size()) return self->OnHeader(ec);
                       self->ArmReadTimer(self->opts_.io_timeout);
                       asio::async_read(self->stream_, asio::buffer(self->header_buf_) + n,
                                        [self](const boost::system::error_code& ec, size_t) {
                                          self->OnHeader(ec);
                                        });
                     });
  }

  void OnHeader(const boost::system::error_code& ec) {
    if (ec) return OnReadError(ec);
    server_->metrics->bytes_in.Add(header_buf_.size());
    auto h = DecodeHeader(header_buf_.data(), header_buf_.size(), opts_.limits);
    if (!h.ok()) return FailConnection(h.status());
    header_ = *h;
    meta_buf_.resize(header_.meta_len);
    ArmReadTimer(opts_.io_timeout);
    asio::async_read(stream_, asio::buffer(meta_buf_),
                     [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                       self->OnMeta(ec);
                     });
  }

  void OnMeta(const boost::system::error_code& ec) {
    if (ec) return OnReadError(ec);
    server_->metrics->bytes_in.Add(meta_buf_.size());
    switch (header_.type) {
      case MessageType::kHello:
        return OnHello();
      case MessageType::kInferRequest:
        return OnInferRequest();
      case MessageType::kPlacementRequest:
        return OnPlacementRequest();
      case MessageType::kFetchRequest:
        return OnFetchRequest();
      default:
        return FailConnection(InvalidArgumentError(std::string("unexpected message type ") +
                                                   MessageTypeName(header_.type) +
                                                   " from a client"));
    }
  }

  void OnHello() {
    if (handshake_done_) return FailConnection(InvalidArgumentError("duplicate Hello"));
    if (header_.body_len != 0) return FailConnection(InvalidArgumentError("Hello with a body"));
    wire::Hello hello;
    Status st = ParseMeta(meta_buf_, &hello);
    if (!st.ok()) return FailConnection(st);
    wire::HelloReply reply = server_->hello;
    // Version, then token (common/handshake.h); a refusal names no model and reads no more.
    if (!CheckHello(hello, server_->handshake, &reply)) {
      log::Warn(peer_ + ": handshake refused: " + reply.message());
      server_->stats->frames_rejected++;
      if (reply.code() == wire::UNAUTHENTICATED) server_->stats->auth_failures++;
      close_after_write_ = true;
      CancelReadTimer();
      QueueWrite(MakeFrame(MessageType::kHelloReply, reply));
      return;
    }
    for (auto& info : server_->models->List()) *reply.add_models() = info;  // versions come and go
    handshake_done_ = true;
    admitted_ = true;
    accepts_go_away_ = hello.accepts_go_away();
    log::Debug(peer_ + ": hello from '" + hello.client_name() + "'");
    QueueWrite(MakeFrame(MessageType::kHelloReply, reply));
    if (server_->draining.load()) BeginDrain();  // accepted just before the drain began
    ReadHeader();
  }

  void OnInferRequest() {
    if (!handshake_done_) {
      return FailConnection(FailedPreconditionError("InferRequest before the Hello handshake"));
    }
    auto req = std::make_shared<wire::InferRequest>();
    Status st = ParseMeta(meta_buf_, req.get());
    if (!st.ok()) return FailConnection(st);
    st = ValidateTensorMeta(req->tensor(), header_.body_len, opts_.limits);
    if (!st.ok()) {
      // The body length no longer means anything we trust: answer and close.
      return FailRequestAndClose(req->request_id(), st);
    }
    // A raw body goes straight into the tensor (zero copy); an encoded one into a byte buffer
    // of body_len (bounded by the header check), validated and decoded later.
    const bool raw = IsRawTensorBody(req->tensor());
    Result<at::Tensor> buffer = InternalError("unset");
    if (raw) {
      buffer = AllocateForMeta(req->tensor(), server_->pin_host_memory);
    } else {
      try {
        buffer = at::empty({static_cast<int64_t>(header_.body_len)},
                           at::TensorOptions().dtype(at::kByte));
      } catch (const std::exception& e) {
        buffer =
            ResourceExhaustedError(std::string("cannot allocate the request body: ") + e.what());
      }
    }
    if (!buffer.ok()) return FailRequestAndClose(req->request_id(), buffer.status());
    auto body = std::make_shared<at::Tensor>(std::move(*buffer));
    ArmReadTimer(opts_.io_timeout);
    asio::async_read(
        stream_, asio::buffer(body->data_ptr(), body->nbytes()),
        [self = shared_from_this(), req, body, raw](const boost::system::error_code& ec, size_t) {
          if (ec) return self->OnReadError(ec);
          self->CancelReadTimer();
          self->server_->metrics->bytes_in.Add(body->nbytes());
          RequestInput input;
          (raw ? input.tensor : input.encoded) = std::move(*body);
          self->Dispatch(std::move(*req), std::move(input), Clock::now());
          self->ReadHeader();
        });
  }

  // Checks a well-framed request and hands it to the compute pool. The checks read the
  // metadata, which describes the decoded tensor whether or not the body is encoded.
  void Dispatch(wire::InferRequest req, RequestInput input, Clock::time_point receipt) {
    if (server_->draining.load()) {
      // Not counted as received: the drain waits only for what came before it began.
      server_->metrics->refused_draining.Add();
      return ReplyError(req.request_id(),
                        UnavailableError("server is draining (shutting down); run it locally"));
    }
    // The global bound (the per-connection one is max_in_flight): past it a request is refused
    // at once, so that memory and queueing delay stay bounded however many devices connect; the
    // device finishes it locally. Counted in requests_total{code="RESOURCE_EXHAUSTED"}.
    if (opts_.max_global_in_flight > 0 && server_->pending.load() >= opts_.max_global_in_flight) {
      server_->metrics->refused_overloaded.Add();
      return ReplyError(
          req.request_id(),
          ResourceExhaustedError("server overloaded: " + std::to_string(server_->pending.load()) +
                                 " requests in flight (limit " +
                                 std::to_string(opts_.max_global_in_flight) +
                                 "); run it locally or retry later"));
    }
    // Ids tell replies apart: a second request with the id of one still in flight would get a
    // reply the device cannot match (and cost a computation), so it is refused unread.
    if (in_flight_ids_.count(req.request_id()) != 0) {
      return ReplyError(req.request_id(),
                        InvalidArgumentError("request id " + std::to_string(req.request_id()) +
                                             " is already in flight on this connection"));
    }
    RequestReceived();
    auto model = server_->models->Find(req.model(), req.model_version());
    if (!model.ok()) return ReplyError(req.request_id(), model.status(), true);
    const SplitModel& m = **model;
    if (req.boundary() > m.num_units()) {
      return ReplyError(req.request_id(),
                        InvalidArgumentError("boundary " + std::to_string(req.boundary()) +
                                             " out of range: " + m.name() + " has " +
                                             std::to_string(m.num_units()) + " units"),
                        true);
    }
    const std::vector<int64_t> shape(req.tensor().shape().begin(), req.tensor().shape().end());
    Status st = m.CheckBoundaryInput(req.boundary(), shape);
    if (!st.ok()) return ReplyError(req.request_id(), st, true);
    if (req.tensor().dtype() != wire::FLOAT32) {
      return ReplyError(req.request_id(),
                        InvalidArgumentError(std::string("model inputs are float32, got ") +
                                             DTypeName(req.tensor().dtype())),
                        true);
    }
    st = CheckExitRequest(req, m);
    if (!st.ok()) return ReplyError(req.request_id(), st, true);
    ++in_flight_;
    in_flight_ids_.insert(req.request_id());
    Job job;
    job.session = shared_from_this();
    job.deadline_ms = req.deadline_ms() ? req.deadline_ms() : opts_.default_deadline_ms;
    job.req = std::move(req);
    job.input = std::move(input);
    job.model = std::move(*model);
    job.receipt = receipt;
    server_->Submit(std::move(job));
  }

  // ---- placement (issue 7) -----------------------------------------------------------------

  void OnPlacementRequest() {
    if (!handshake_done_) {
      return FailConnection(FailedPreconditionError("PlacementRequest before the Hello handshake"));
    }
    if (header_.body_len != 0) {
      return FailConnection(InvalidArgumentError("PlacementRequest with a body"));
    }
    auto req = std::make_shared<wire::PlacementRequest>();
    Status st = ParseMeta(meta_buf_, req.get());
    if (!st.ok()) return FailConnection(st);
    // Planning takes up to a few ms (BI over every M): a compute thread, not the I/O thread.
    ++in_flight_;
    asio::post(server_->compute_pool, [self = shared_from_this(), req] {
      auto answer = PlanPlacement(*self->server_->models, *req);
      OutgoingFrame frame;
      if (answer.ok()) {
        self->server_->stats->placements++;
        auto version = answer->version;
        frame = MakeFrame(MessageType::kPlacementReply, answer->reply,
                          version->manifest_json.data(), version->manifest_json.size(), version);
        log::Info(self->peer_ + ": placement " + answer->reply.model() + "@" +
                  std::to_string(answer->reply.version()) +
                  " M=" + std::to_string(answer->reply.m()) + " (holds v" +
                  std::to_string(req->held_version()) + " M=" + std::to_string(req->held_units()) +
                  ", planned in " + std::to_string(answer->reply.planner_us()) + " us)");
      } else {
        self->server_->stats->requests_failed++;
        log::Info(self->peer_ + ": placement failed: " + answer.status().ToString());
        wire::PlacementReply reply;
        reply.set_code(ToWireCode(answer.status().code()));
        reply.set_message(answer.status().message());
        reply.set_model(req->model());
        frame = MakeFrame(MessageType::kPlacementReply, reply);
      }
      asio::post(self->stream_.get_executor(), [self, frame = std::move(frame)]() mutable {
        --self->in_flight_;
        self->QueueWrite(std::move(frame));
        self->MaybeResumeRead();
      });
    });
    ReadHeader();
  }

  void OnFetchRequest() {
    if (!handshake_done_) {
      return FailConnection(FailedPreconditionError("FetchRequest before the Hello handshake"));
    }
    if (header_.body_len != 0)
      return FailConnection(InvalidArgumentError("FetchRequest with a body"));
    wire::FetchRequest req;
    Status st = ParseMeta(meta_buf_, &req);
    if (!st.ok()) return FailConnection(st);
    auto range = CheckFetch(*server_->models, req, kMaxChunksPerFetch);
    if (!range.ok()) {
      log::Info(peer_ + ": fetch refused: " + range.status().ToString());
      server_->stats->requests_failed++;
      wire::FetchChunk err;
      err.set_code(ToWireCode(range.status().code()));
      err.set_message(range.status().message());
      err.set_unit(req.unit());
      err.set_chunk(req.first_chunk());
      err.set_last(true);
      QueueWrite(MakeFrame(MessageType::kFetchChunk, err));
      return ReadHeader();
    }
    fetch_ = std::move(*range);
    PumpFetch();
    ReadHeader();  // pauses while the stream is on (Outstanding counts it as a full window)
  }

  // Keeps two chunk frames queued while a fetch streams (one on the wire, one ready), reading
  // each from disk only when the previous has gone out: a slow device holds no more than two
  // chunks of server memory.
  void PumpFetch() {
    while (fetch_ && !closed_ && write_queue_.size() < 2) {
      FetchRange& f = *fetch_;
      const uint32_t chunk = f.first++;
      EdgeServer::Impl& srv = *server_;
      if (srv.options.fault_drop_after_chunks > 0 &&
          srv.chunks_served.load() + 1 == srv.options.fault_drop_after_chunks &&
          !srv.fault_dropped.exchange(true)) {
        log::Warn(peer_ + ": fault injection: dropping the connection mid-download");
        fetch_.reset();
        return Close("fault injection: dropped mid-download");
      }
      auto data = std::make_shared<std::vector<uint8_t>>();
      Status st = ReadChunk(*f.version, f.unit, chunk, data.get());
      wire::FetchChunk meta;
      meta.set_unit(f.unit);
      meta.set_chunk(chunk);
      meta.set_offset(static_cast<uint64_t>(chunk) * f.version->manifest->chunk_bytes);
      const bool last = !st.ok() || f.first >= f.end;
      meta.set_last(last);
      if (!st.ok()) {
        log::Warn(peer_ + ": fetch: " + st.ToString());
        meta.set_code(ToWireCode(st.code()));
        meta.set_message(st.message());
        QueueWrite(MakeFrame(MessageType::kFetchChunk, meta));
      } else {
        const uint64_t served = ++srv.chunks_served;
        if (served <= srv.options.fault_corrupt_chunks && !data->empty()) {
          (*data)[data->size() / 2] ^= 0x5a;  // the device must refuse this chunk
          log::Warn(peer_ + ": fault injection: corrupting chunk " + std::to_string(chunk) +
                    " of unit " + std::to_string(f.unit));
        }
        srv.stats->chunks_served++;
        srv.stats->chunk_bytes_served += data->size();
        meta.set_code(wire::OK);
        const void* body = data->data();
        const size_t size = data->size();
        QueueWrite(MakeFrame(MessageType::kFetchChunk, meta, body, size, std::move(data)));
      }
      if (last) {
        fetch_.reset();
        MaybeResumeRead();
      }
    }
  }

  // `answers_received`: the request was counted by RequestReceived() (its reply ends it).
  void ReplyError(uint64_t request_id, const Status& st, bool answers_received = false) {
    log::Info(peer_ + ": request " + std::to_string(request_id) + " failed: " + st.ToString());
    server_->stats->requests_failed++;
    wire::InferReply reply;
    reply.set_request_id(request_id);
    reply.set_code(ToWireCode(st.code()));
    reply.set_message(st.message());
    CountReply(server_, reply.code());
    QueueWrite(MakeFrame(MessageType::kInferReply, reply), answers_received);
  }

  // ---- drain accounting --------------------------------------------------------------------

  void RequestReceived() {
    ++unanswered_;
    ++server_->pending;
    server_->metrics->in_flight.Add(1);
  }

  // The reply of a received request was written (or will never be: its connection closed).
  void RequestAnswered(bool written) {
    --unanswered_;
    --server_->pending;
    server_->metrics->in_flight.Add(-1);
    if (written) ++server_->replies_written;
  }

  // Drops every queued frame (the connection is closed); counts the unanswered requests.
  void DropWriteQueue() {
    for (auto& q : write_queue_) {
      if (q.answers) RequestAnswered(false);
    }
    write_queue_.clear();
  }

  void FailRequestAndClose(uint64_t request_id, const Status& st) {
    server_->stats->frames_rejected++;
    close_after_write_ = true;
    CancelReadTimer();
    ReplyError(request_id, st);
  }

  // A broken frame: say why, then close.
  void FailConnection(const Status& st) {
    if (closed_) return;
    log::Warn(peer_ + ": closing connection: " + st.ToString());
    server_->stats->frames_rejected++;
    wire::ErrorReply err;
    err.set_code(ToWireCode(st.code()));
    err.set_message(st.message());
    close_after_write_ = true;
    CancelReadTimer();
    QueueWrite(MakeFrame(MessageType::kError, err));
  }

  void OnReadError(const boost::system::error_code& ec) {
    if (ec == asio::error::eof) return Close("peer closed the connection");
    if (ec == asio::error::operation_aborted) return Close("read cancelled");
    Close("read failed: " + ec.message());
  }

  void MaybeResumeRead() {
    if (read_paused_ && !closed_ && Outstanding() < opts_.max_in_flight) ReadHeader();
  }

  // ---- writing -------------------------------------------------------------------------------

  // `answers`: the frame is the reply of a request counted by RequestReceived().
  void QueueWrite(OutgoingFrame frame, bool answers = false) {
    if (closed_ || half_closed_) {  // half-closed: the drain ended this side; nothing more goes
      if (answers) RequestAnswered(false);
      if (half_closed_) Close("a frame after the drain half-closed the connection");
      return;
    }
    write_queue_.push_back(QueuedFrame{std::move(frame), answers});
    if (!writing_) DoWrite();
  }

  void DoWrite() {
    writing_ = true;
    write_timer_.expires_after(opts_.io_timeout);
    write_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec && self->write_timer_.expiry() <= Clock::now()) self->Close("write timed out");
    });
    asio::async_write(stream_, FrameBuffers(write_queue_.front().frame),
                      [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                        self->OnWrite(ec);
                      });
  }

  void OnWrite(const boost::system::error_code& ec) {
    writing_ = false;
    write_timer_.cancel();
    if (closed_) {  // Close() kept the frame alive for this write; drop it all now
      DropWriteQueue();
      return;
    }
    if (ec) return Close("write failed: " + ec.message());
    server_->metrics->bytes_out.Add(write_queue_.front().frame.total_size());
    if (write_queue_.front().answers) RequestAnswered(true);
    write_queue_.pop_front();
    PumpFetch();  // may queue the next chunk, which starts its write at once
    if (writing_ || closed_) return;
    if (!write_queue_.empty()) return DoWrite();
    if (close_after_write_ && in_flight_ == 0) return Close("closed after error reply");
    MaybeResumeRead();
    UpdateIdle();
  }

  void SendGoAway(wire::GoAway::Reason reason, const std::string& message) {
    wire::GoAway g;
    g.set_reason(reason);
    g.set_message(message);
    server_->metrics->go_aways.Add();
    QueueWrite(MakeFrame(MessageType::kGoAway, g));
  }

  // Keeps idle_since_ns_ current (the admission's view), and ends a drain on this connection
  // once it has nothing left to write: half-close (FIN after the last reply), then wait up to
  // drain_linger for the device to close its side. Closing outright instead could reset the
  // connection while replies are still in flight (a device that sent a request after the drain
  // began leaves unread bytes here, and close() then sends RST).
  void UpdateIdle() {
    const bool idle =
        !closed_ && waiting_for_frame_ && Outstanding() == 0 && !writing_ && !close_after_write_;
    if (!idle) {
      idle_since_ns_ = -1;
      return;
    }
    if (idle_since_ns_.load() < 0 && handshake_done_) {
      idle_since_ns_ = Clock::now().time_since_epoch().count();
    }
    if (draining_ && !half_closed_ && handshake_done_) {
      half_closed_ = true;
      boost::system::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      read_timer_.expires_after(opts_.drain_linger);
      read_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
        if (!ec && self->read_timer_.expiry() <= Clock::now()) self->Close("drain linger passed");
      });
    }
  }

  // ---- timers and closing --------------------------------------------------------------------

  // Until the Hello is accepted every read ends at the one handshake deadline (accept +
  // handshake_timeout, TLS included), however the peer spreads its bytes. Once the drain has
  // half-closed the connection its linger deadline stays.
  void ArmReadTimer(std::chrono::milliseconds timeout) {
    if (half_closed_) return;
    auto expiry = Clock::now() + timeout;
    if (!handshake_done_) expiry = std::min(expiry, handshake_deadline_);
    read_timer_.expires_at(expiry);
    read_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      // A timer re-armed after it fired carries a later expiry: that wait does not count.
      if (ec || self->read_timer_.expiry() > Clock::now() || self->closed_) return;
      if (!self->handshake_done_) {
        self->server_->metrics->handshake_timeouts.Add();
        return self->Close("no Hello within the handshake deadline");
      }
      self->Close("read timed out");
    });
  }

  void CancelReadTimer() { read_timer_.cancel(); }

  void Close(const std::string& reason) {
    if (closed_) return;
    closed_ = true;
    released = true;
    idle_since_ns_ = -1;
    if (log::Enabled(log::Level::kDebug)) log::Debug(peer_ + ": closed: " + reason);
    read_timer_.cancel();
    write_timer_.cancel();
    boost::system::error_code ignored;
    // No TLS close_notify: frames carry their lengths, and a peer may be gone or hostile.
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
    // A write in progress still owns the front frame's buffers until OnWrite runs.
    if (!writing_) DropWriteQueue();
    if (counted_) {
      counted_ = false;
      server_->metrics->connected_devices.Add(-1);
    }
  }

  struct QueuedFrame {
    OutgoingFrame frame;
    bool answers = false;  // see QueueWrite()
  };

  MaybeTlsStream stream_;
  asio::steady_timer read_timer_;
  asio::steady_timer write_timer_;
  EdgeServer::Impl* const server_;
  const EdgeServerOptions& opts_;
  const Clock::time_point accepted_at_;
  const Clock::time_point handshake_deadline_;  // the whole handshake, TLS included
  std::string address_;                         // the peer's IP address
  std::string peer_;
  std::atomic<bool> admitted_{false};
  std::atomic<int64_t> idle_since_ns_{-1};

  HeaderBytes header_buf_{};
  FrameHeader header_;
  std::string meta_buf_;
  std::deque<QueuedFrame> write_queue_;
  uint32_t in_flight_ = 0;
  std::set<uint64_t> in_flight_ids_;  // ids of the inference requests in in_flight_
  std::optional<FetchRange> fetch_;   // the chunk stream being sent, if any
  bool handshake_done_ = false;
  bool writing_ = false;
  bool read_paused_ = false;
  bool close_after_write_ = false;
  bool closed_ = false;
  bool waiting_for_frame_ = false;  // a header read is pending and no byte of it has come
  bool accepts_go_away_ = false;    // the Hello said the client reads GoAway frames
  bool draining_ = false;           // BeginDrain ran
  bool half_closed_ = false;        // the drain sent FIN; waiting for the device to close
  bool counted_ = false;            // in EdgeServerMetrics::connected_devices
  std::atomic<uint32_t> unanswered_{0};
};

// ---- compute: one request or a batch --------------------------------------------------------

namespace {

// An error reply to one request (counted by code).
OutgoingFrame ErrorReplyFrame(EdgeServer::Impl* server, wire::InferReply& reply, const Status& st) {
  server->stats->requests_failed++;
  CountReply(server, ToWireCode(st.code()));
  reply.clear_tensor();
  reply.set_code(ToWireCode(st.code()));
  reply.set_message(st.message());
  return MakeFrame(MessageType::kInferReply, reply);
}

// Queue wait, the stop and deadline checks, and decoding, for one request of a batch. Returns
// the input tensor, or an error the request is answered with.
Result<at::Tensor> PrepareInput(const Job& job, EdgeServer::Impl* server, Clock::time_point start,
                                wire::InferReply* reply) {
  reply->set_queue_us(MicrosSince(job.receipt, start));
  server->metrics->queue_wait.ObserveMicros(reply->queue_us());
  if (server->abandon.load()) return UnavailableError("server stopped before compute started");
  if (start - job.receipt > std::chrono::milliseconds(job.deadline_ms)) {
    return DeadlineExceededError("deadline of " + std::to_string(job.deadline_ms) +
                                 " ms passed before compute started");
  }
  if (!job.input.encoded.defined()) return job.input.tensor;
  // A body that does not decode (corrupt zstd stream) was still a well-framed request: answer
  // it with the reason; the connection stays open.
  const auto t = Clock::now();
  Result<at::Tensor> decoded = Decode(job.req.tensor(), job.input.encoded.data_ptr<uint8_t>(),
                                      job.input.encoded.nbytes(), server->options.limits);
  reply->set_decode_us(MicrosSince(t));
  server->metrics->decode.ObserveMicros(reply->decode_us());
  if (!decoded.ok()) {
    log::Info("request " + std::to_string(job.req.request_id()) +
              " failed: " + decoded.status().ToString());
  }
  return decoded;
}

// Runs on a compute thread: the requests of `jobs` (same model version and boundary) as one
// batch: their inputs concatenated along the batch dimension, moved to the compute device once,
// units k+1..N run once, the output split back. Every request gets its reply; one that fails its
// own checks does not hold the others back. Touches no session state.
void RunBatch(std::vector<Job> jobs, EdgeServer::Impl* server) {
  c10::InferenceMode guard;
  EdgeServerMetrics& metrics = *server->metrics;
  const auto start = Clock::now();
  std::vector<wire::InferReply> replies(jobs.size());
  std::vector<OutgoingFrame> frames(jobs.size());
  std::vector<at::Tensor> inputs;
  std::vector<size_t> runnable;
  for (size_t i = 0; i < jobs.size(); ++i) {
    replies[i].set_request_id(jobs[i].req.request_id());
    replies[i].set_model_version(jobs[i].model->version());
    Result<at::Tensor> in = PrepareInput(jobs[i], server, start, &replies[i]);
    if (!in.ok()) {
      frames[i] = ErrorReplyFrame(server, replies[i], in.status());
      continue;
    }
    inputs.push_back(std::move(*in));
    runnable.push_back(i);
  }
  if (!runnable.empty()) {
    const SplitModel& model = *jobs[runnable.front()].model;
    const uint32_t boundary = jobs[runnable.front()].req.boundary();
    const auto compute_start = Clock::now();
    Result<at::Tensor> out = InternalError("not run");
    try {
      at::Tensor x;
      if (server->pin_host_memory) {
        // One gather into pinned memory (none for a lone request: its body is pinned already),
        // then one asynchronous host-to-device copy, ordered before the units on the stream.
        if (inputs.size() == 1) {
          x = inputs.front();
        } else {
          int64_t rows = 0;
          for (const auto& t : inputs) rows += t.size(0);
          std::vector<int64_t> shape = inputs.front().sizes().vec();
          shape[0] = rows;
          x = at::empty(shape, inputs.front().options().pinned_memory(true));
          at::cat_out(x, inputs, 0);
        }
        x = x.to(model.device(), /*non_blocking=*/true);
      } else {
        x = inputs.size() == 1 ? inputs.front() : at::cat(inputs, 0);
      }
      if (jobs[runnable.front()].req.exit_thresholds_size() > 0) {
        // Early exits: such a request always runs alone (Submit), its exits evaluated with its
        // thresholds on the units the edge runs; the reply names the exit that answered.
        const wire::InferRequest& req = jobs[runnable.front()].req;
        const auto& branchy = dynamic_cast<const exits::BranchyModel&>(model);
        const std::vector<double> thresholds(req.exit_thresholds().begin(),
                                             req.exit_thresholds().end());
        Result<exits::ExitOutcome> outcome = branchy.RunWithExits(
            x, boundary, model.num_units(), thresholds,
            req.exit_confidence() == wire::EXIT_ENTROPY ? exits::ConfidenceKind::kEntropy
                                                        : exits::ConfidenceKind::kMaxSoftmax);
        if (outcome.ok()) {
          // No exit answered: the chain ran to N, whose output is the final exit's logits.
          const size_t e =
              outcome->exit >= 0 ? static_cast<size_t>(outcome->exit) : branchy.num_exits() - 1;
          replies[runnable.front()].set_exit_index(static_cast<uint32_t>(e));
          replies[runnable.front()].set_exit_after_unit(
              static_cast<uint32_t>(branchy.exit_after_unit(e)));
          out = std::move(outcome->tensor);
        } else {
          out = outcome.status();
        }
      } else {
        out = model.RunRangeChecked(x, boundary, model.num_units());
      }
    } catch (const std::exception& e) {  // at::cat: out of memory for the batch
      out = ResourceExhaustedError(std::string("cannot batch the inputs: ") + e.what());
    }
    at::Tensor cpu_out;
    if (out.ok()) {
      if (out->is_cuda()) {
        // Into pinned memory: the device-to-host copy is a DMA; it syncs before timing ends.
        cpu_out = at::empty(out->sizes(), out->options().device(at::kCPU).pinned_memory(true));
        cpu_out.copy_(*out);
      } else {
        cpu_out = out->to(at::kCPU).contiguous();
      }
    }
    const uint64_t compute_us = MicrosSince(compute_start);
    metrics.batches.Add();
    metrics.batched_requests.Add(runnable.size());
    int64_t row = 0;
    for (size_t j = 0; j < runnable.size(); ++j) {
      const size_t i = runnable[j];
      wire::InferReply& reply = replies[i];
      reply.set_edge_compute_us(compute_us);
      reply.set_batch_size(static_cast<uint32_t>(runnable.size()));
      metrics.compute.ObserveMicros(compute_us);
      if (!out.ok()) {
        frames[i] = ErrorReplyFrame(server, reply, out.status());
        continue;
      }
      const int64_t rows = inputs[j].size(0);
      at::Tensor mine = runnable.size() == 1 ? cpu_out : cpu_out.narrow(0, row, rows).contiguous();
      row += rows;
      Status st = FillTensorMeta(mine, reply.mutable_tensor());
      if (!st.ok()) {
        frames[i] = ErrorReplyFrame(server, reply, st);
        continue;
      }
      server->stats->requests_ok++;
      CountReply(server, wire::OK);
      reply.set_code(wire::OK);
      frames[i] = MakeTensorFrame(MessageType::kInferReply, reply, mine);
    }
  }
  for (size_t i = 0; i < jobs.size(); ++i)
    jobs[i].session->Deliver(jobs[i].req.request_id(), std::move(frames[i]), jobs[i].receipt);
}

}  // namespace

void EdgeServer::Impl::PostBatch(std::vector<Job> jobs, bool queued) {
  if (queued) metrics->batch_queue_depth.Add(-static_cast<int64_t>(jobs.size()));
  ++outstanding_batches;
  asio::post(compute_pool, [this, jobs = std::move(jobs)]() mutable {
    RunBatch(std::move(jobs), this);
    OnBatchDone();
  });
}

void EdgeServer::Impl::OnBatchDone() {
  --outstanding_batches;
  if (options.max_batch_size <= 1) return;
  // A compute thread is free: the queue whose first request has waited longest goes now.
  std::vector<Job> ready;
  {
    std::lock_guard<std::mutex> lock(batch_mu);
    BatchQueue* oldest = nullptr;
    for (auto& [key, q] : batch_queues) {
      if (!q.jobs.empty() && (!oldest || q.jobs.front().receipt < oldest->jobs.front().receipt))
        oldest = &q;
    }
    if (oldest) {
      ready.swap(oldest->jobs);
      ++oldest->generation;
      if (oldest->timer) oldest->timer->cancel();
    }
  }
  if (!ready.empty()) PostBatch(std::move(ready), true);
}

void EdgeServer::Impl::Submit(Job job) {
  // A request with exit thresholds runs alone: its exits answer per request.
  if (options.max_batch_size <= 1 || job.req.exit_thresholds_size() > 0) {
    std::vector<Job> one;
    one.push_back(std::move(job));
    return PostBatch(std::move(one), false);
  }
  const BatchKey key{job.model.get(), job.req.boundary()};
  std::vector<Job> ready;
  {
    std::lock_guard<std::mutex> lock(batch_mu);
    BatchQueue& q = batch_queues[key];
    q.jobs.push_back(std::move(job));
    metrics->batch_queue_depth.Add(1);
    const bool thread_free = outstanding_batches.load() < options.compute_threads;
    if (q.jobs.size() >= options.max_batch_size || thread_free) {
      ready.swap(q.jobs);
      ++q.generation;
      if (q.timer) q.timer->cancel();
    } else if (q.jobs.size() == 1) {
      // The first request of a batch starts its clock.
      if (!q.timer) q.timer = std::make_unique<asio::steady_timer>(io);
      q.timer->expires_after(options.max_batch_delay);
      const uint64_t generation = q.generation;
      q.timer->async_wait([this, key, generation](const boost::system::error_code& ec) {
        if (!ec) FlushKey(key, generation);
      });
    }
  }
  if (!ready.empty()) PostBatch(std::move(ready), true);
}

void EdgeServer::Impl::FlushKey(const BatchKey& key, uint64_t generation) {
  std::vector<Job> ready;
  {
    std::lock_guard<std::mutex> lock(batch_mu);
    auto it = batch_queues.find(key);
    if (it == batch_queues.end() || it->second.generation != generation) return;
    ready.swap(it->second.jobs);
    ++it->second.generation;
  }
  if (!ready.empty()) PostBatch(std::move(ready), true);
}

void EdgeServer::Impl::FlushAll() {
  std::vector<std::vector<Job>> all;
  {
    std::lock_guard<std::mutex> lock(batch_mu);
    for (auto& [key, q] : batch_queues) {
      ++q.generation;
      if (q.timer) q.timer->cancel();
      if (!q.jobs.empty()) all.push_back(std::move(q.jobs));
      q.jobs.clear();
    }
  }
  for (auto& jobs : all) PostBatch(std::move(jobs), true);
}

// ---- EdgeServer::Impl ------------------------------------------------------------------------

Status EdgeServer::Impl::Admit(const std::shared_ptr<Session>& newcomer) {
  using Eviction = Session::Eviction;
  std::vector<std::pair<std::shared_ptr<Session>, Eviction>> victims;
  {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<std::shared_ptr<Session>> live;  // sessions that hold a slot
    for (auto it = sessions.begin(); it != sessions.end();) {
      auto sp = it->second.lock();
      if (!sp) {
        it = sessions.erase(it);
        continue;
      }
      if (!sp->released.load()) live.push_back(std::move(sp));
      ++it;
    }
    const std::string& address = newcomer->address();
    size_t total = live.size();
    size_t pending = 0;  // handshake not finished
    size_t same = 0;     // from the newcomer's address
    for (const auto& sp : live) {
      pending += !sp->admitted();
      same += sp->address() == address;
    }
    // The oldest handshake unfinished for kStaleHandshake (a device's takes milliseconds),
    // else (unless handshakes_only) the connection idle longest; among one address's
    // connections when `only_address`. Null when there is none.
    const auto stale_before = Clock::now() - kStaleHandshake;
    auto pick = [&](bool only_address, bool handshakes_only) -> std::shared_ptr<Session> {
      std::shared_ptr<Session> best_pending, best_idle;
      int64_t best_idle_since = 0;
      for (const auto& sp : live) {
        if (sp->released.load() || (only_address && sp->address() != address)) continue;
        if (!sp->admitted()) {
          if (sp->accepted_at() <= stale_before &&
              (!best_pending || sp->accepted_at() < best_pending->accepted_at())) {
            best_pending = sp;
          }
          continue;
        }
        const int64_t since = sp->idle_since_ns();
        if (since >= 0 && (!best_idle || since < best_idle_since)) {
          best_idle = sp;
          best_idle_since = since;
        }
      }
      if (best_pending || handshakes_only) return best_pending;
      return best_idle;
    };
    auto take = [&](const std::shared_ptr<Session>& v, Eviction kind) {
      v->released = true;
      victims.emplace_back(v, kind);
      --total;
      pending -= !v->admitted();
      same -= v->address() == address;
    };
    auto refuse = [&](Status st) {
      for (auto& [v, kind] : victims) v->released = false;  // nobody is evicted for nothing
      victims.clear();
      return st;
    };
    const uint32_t per_address = options.max_connections_per_address;
    if (per_address > 0 && same >= per_address) {
      auto v = pick(/*only_address=*/true, /*handshakes_only=*/false);
      if (!v) {
        metrics->rejected_per_address.Add();
        return refuse(ResourceExhaustedError(
            "address " + address + " has its maximum of " + std::to_string(per_address) +
            " connections, all busy (edge_server --max-connections-per-address)"));
      }
      take(v, Eviction::kPerAddress);
    }
    if (pending >= options.max_pending_handshakes) {
      auto v = pick(false, /*handshakes_only=*/true);
      if (!v) {
        return refuse(ResourceExhaustedError(
            std::to_string(pending) + " connections are in their handshake (limit " +
            std::to_string(options.max_pending_handshakes) + "); retry in a moment"));
      }
      take(v, Eviction::kPendingHandshake);
    }
    if (total >= options.max_connections) {
      auto v = pick(false, false);
      if (!v) {
        return refuse(ResourceExhaustedError("server has its maximum of " +
                                             std::to_string(options.max_connections) +
                                             " connections, all busy"));
      }
      take(v, v->admitted() ? Eviction::kIdle : Eviction::kPendingHandshake);
    }
    sessions[newcomer.get()] = newcomer;
  }
  for (auto& [v, kind] : victims) v->Evict(kind);
  return Status::Ok();
}

void EdgeServer::Impl::SweepCrowdedIdle() {
  {
    std::lock_guard<std::mutex> lock(mu);
    if (stopping) return;
    std::vector<std::shared_ptr<Session>> live;
    for (auto& [p, w] : sessions) {
      auto sp = w.lock();
      if (sp && !sp->released.load()) live.push_back(std::move(sp));
    }
    if (4 * live.size() >= 3 * static_cast<size_t>(options.max_connections)) {
      const int64_t cutoff =
          (Clock::now() - options.crowded_idle_timeout).time_since_epoch().count();
      for (auto& sp : live) {
        const int64_t since = sp->idle_since_ns();
        if (sp->admitted() && since >= 0 && since <= cutoff) {
          sp->released = true;
          sp->Evict(Session::Eviction::kCrowdedIdle);
        }
      }
    }
  }
  sweep_timer->expires_after(std::chrono::seconds(1));
  sweep_timer->async_wait([this](const boost::system::error_code& ec) {
    if (!ec) SweepCrowdedIdle();
  });
}

std::vector<std::shared_ptr<Session>> EdgeServer::Impl::AllSessions() {
  std::lock_guard<std::mutex> lock(mu);
  std::vector<std::shared_ptr<Session>> all;
  for (auto& [p, w] : sessions) {
    if (auto sp = w.lock()) all.push_back(std::move(sp));
  }
  return all;
}

size_t EdgeServer::Impl::LiveSessions() {
  std::lock_guard<std::mutex> lock(mu);
  size_t n = 0;
  for (auto& [p, w] : sessions) n += !w.expired();
  return n;
}

// Sessions not yet closed (nor picked for eviction).
static size_t OpenSessions(EdgeServer::Impl& s) {
  size_t n = 0;
  for (auto& sp : s.AllSessions()) n += !sp->released.load();
  return n;
}

void EdgeServer::Impl::DoAccept() {
  acceptor.async_accept(asio::make_strand(io),
                        [this](const boost::system::error_code& ec, tcp::socket socket) {
                          if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
                          if (ec) {
                            log::Warn("accept failed: " + ec.message());
                          } else {
                            auto session = std::make_shared<Session>(std::move(socket), this);
                            Status admitted = Admit(session);
                            if (!admitted.ok()) {
                              stats->connections_rejected++;
                              session->Reject(admitted);
                            } else {
                              stats->connections_accepted++;
                              session->Start();
                            }
                          }
                          DoAccept();
                        });
}

// ---- EdgeServer ------------------------------------------------------------------------------

bool EdgeServerOptions::IsValid(std::string* error) const {
  if (io_threads < 1 || io_threads > 256) {
    *error = "io_threads must be in [1, 256], got " + std::to_string(io_threads);
    return false;
  }
  if (compute_threads < 1 || compute_threads > 256) {
    *error = "compute_threads must be in [1, 256], got " + std::to_string(compute_threads);
    return false;
  }
  if (max_in_flight < 1) {
    *error = "max_in_flight must be >= 1";
    return false;
  }
  if (max_batch_size < 1 || max_batch_size > 1024) {
    *error = "max_batch_size must be in [1, 1024], got " + std::to_string(max_batch_size);
    return false;
  }
  if (max_batch_delay.count() < 0 || max_batch_delay > std::chrono::seconds(1)) {
    *error = "max_batch_delay must be in [0, 1 s]";
    return false;
  }
  if (max_global_in_flight > (1u << 24)) {
    *error = "max_global_in_flight must be <= 2^24 (0: unlimited)";
    return false;
  }
  if (max_connections < 1) {
    *error = "max_connections must be >= 1";
    return false;
  }
  if (max_pending_handshakes < 1) {
    *error = "max_pending_handshakes must be >= 1";
    return false;
  }
  if (crowded_idle_timeout.count() <= 0 || drain_linger.count() < 0) {
    *error = "crowded_idle_timeout must be positive and drain_linger not negative";
    return false;
  }
  if (handshake_timeout.count() <= 0 || idle_timeout.count() <= 0 || io_timeout.count() <= 0) {
    *error = "timeouts must be positive";
    return false;
  }
  return limits.IsValid(error);
}

EdgeServer::EdgeServer(EdgeServerOptions options, std::shared_ptr<const ModelRegistry> models)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(models), &stats_, &metrics_)) {}

EdgeServer::~EdgeServer() { Stop(); }

Status EdgeServer::Start() {
  Impl& s = *impl_;
  std::string error;
  if (!s.options.IsValid(&error)) return InvalidArgumentError("edge server options: " + error);
  // An empty registry is allowed: a model repository may fill it later (edge_server
  // --model-repo); requests name what is served at the time.
  if (!s.models) return InvalidArgumentError("no model registry");

  boost::system::error_code ec;
  auto addr = asio::ip::make_address(s.options.host, ec);
  if (ec) return InvalidArgumentError("bad listen address '" + s.options.host + "'");
  tcp::endpoint ep(addr, s.options.port);
  s.acceptor.open(ep.protocol(), ec);
  if (!ec) s.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(ep, ec);
  if (!ec) s.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return UnavailableError("cannot listen on " + s.options.host + ":" +
                            std::to_string(s.options.port) + ": " + ec.message());
  }
  port_ = s.acceptor.local_endpoint().port();
  if (!s.options.tls_cert_file.empty() || !s.options.tls_key_file.empty()) {
    auto ctx = MakeServerTlsContext(s.options.tls_cert_file, s.options.tls_key_file);
    if (!ctx.ok()) {
      s.acceptor.close(ec);
      return ctx.status();
    }
    s.tls = std::move(*ctx);
  }
  s.handshake.auth_token = s.options.auth_token;
  s.pin_host_memory = s.models->device().is_cuda();

  s.hello.set_protocol_version(kProtocolVersion);
  s.hello.set_code(wire::OK);
  s.hello.set_server_name(s.options.server_name);
  s.hello.set_compute_device(DeviceName(s.models->device()));
  s.hello.set_max_body_bytes(s.options.limits.max_body_bytes);
  s.hello.set_max_in_flight(s.options.max_in_flight);

  s.work.emplace(asio::make_work_guard(s.io));
  s.DoAccept();
  s.sweep_timer = std::make_unique<asio::steady_timer>(s.io);
  asio::post(s.io, [&s] { s.SweepCrowdedIdle(); });
  for (int i = 0; i < s.options.io_threads; ++i) {
    s.io_threads.emplace_back([&s] { s.io.run(); });
  }
  s.started = true;
  return Status::Ok();
}

void EdgeServer::Stop() {
  Impl& s = *impl_;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.stopping) return;
    s.stopping = true;
  }
  s.draining = true;
  s.abandon = true;
  asio::post(s.io, [&s] {
    boost::system::error_code ignored;
    s.acceptor.close(ignored);
    if (s.sweep_timer) s.sweep_timer->cancel();
  });
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    for (auto& [p, w] : s.sessions) {
      if (auto sp = w.lock()) live.push_back(std::move(sp));
    }
  }
  for (auto& sp : live) sp->Shutdown();
  live.clear();
  s.FlushAll();           // queued batch members are answered (UNAVAILABLE), not forgotten
  s.compute_pool.join();  // running inferences finish; their replies find closed sessions
  s.work.reset();
  // Let the closed sessions' handlers run out (bounded), then stop whatever is left.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!s.io_threads.empty() && s.LiveSessions() > 0 &&
         std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  s.io.stop();
  for (auto& t : s.io_threads) {
    if (t.joinable()) t.join();
  }
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.stopped = true;
  }
  s.stopped_cv.notify_all();
}

DrainResult EdgeServer::Drain(std::chrono::milliseconds deadline) {
  Impl& s = *impl_;
  DrainResult result;
  const auto t0 = Clock::now();
  const uint64_t written0 = s.replies_written.load();
  s.draining = true;
  asio::post(s.io, [&s] {
    boost::system::error_code ignored;
    s.acceptor.close(ignored);
  });
  // Every connection is told (GoAway) and half-closes once its last reply is written
  // (Session::BeginDrain, UpdateIdle). The drain ends when every received request is answered
  // and every connection has closed (the device closes its side after reading its replies; a
  // device that does not is closed after drain_linger), so that Stop() cuts off nothing.
  for (auto& sp : s.AllSessions()) sp->BeginDrain();
  while (s.pending.load() > 0 || OpenSessions(s) > 0) {
    if (s.drain_abort.load()) {
      result.aborted = true;
      break;
    }
    if (Clock::now() - t0 >= deadline) {
      result.deadline_passed = s.pending.load() > 0;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  result.completed = s.replies_written.load() - written0;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    for (auto& [p, w] : s.sessions) {
      auto sp = w.lock();
      if (!sp) continue;
      const uint32_t n = sp->unanswered();
      result.dropped += n;
      result.dropped_connections += n > 0;
    }
  }
  result.took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  return result;
}

void EdgeServer::AbortDrain() { impl_->drain_abort = true; }

std::string EdgeServer::NotReadyReason() const {
  const Impl& s = *impl_;
  if (!s.started.load()) return "not started";
  if (s.abandon.load()) return "stopping";
  if (s.draining.load()) return "draining: shutting down";
  if (s.models->List().empty()) return "no model served";
  return "";
}

std::string EdgeServer::MetricsText() const {
  const Impl& s = *impl_;
  const EdgeServerMetrics& m = metrics_;
  const std::string p = "splitinfer_edge_";
  splitinfer::MetricsText out;  // the class, not this member function
  std::vector<std::pair<splitinfer::MetricsText::Labels, uint64_t>> by_code;
  for (size_t i = 0; i < EdgeServerMetrics::kCodes; ++i) {
    if (!wire::StatusCode_IsValid(static_cast<int>(i))) continue;
    by_code.push_back({{{"code", wire::StatusCode_Name(static_cast<wire::StatusCode>(i))}},
                       m.requests_by_code[i].value()});
  }
  out.LabeledCounter(p + "requests_total", "Inference replies sent, by status code", by_code);
  out.Counter(p + "requests_refused_draining_total",
              "Inference requests refused (UNAVAILABLE) because a drain had begun",
              m.refused_draining.value());
  out.Counter(p + "requests_refused_overloaded_total",
              "Requests refused (RESOURCE_EXHAUSTED) at --max-global-in-flight (also in "
              "requests_total)",
              m.refused_overloaded.value());
  out.Counter(p + "frames_rejected_total",
              "Frames that broke framing or the handshake (the connection was closed)",
              stats_.frames_rejected.load());
  out.Counter(p + "tls_handshake_failures_total",
              "TLS handshakes that failed or timed out (the connection was closed)",
              stats_.tls_handshake_failures.load());
  out.Counter(p + "auth_failures_total", "Hellos refused UNAUTHENTICATED (missing or wrong token)",
              stats_.auth_failures.load());
  out.Counter(p + "connections_accepted_total", "Device connections accepted",
              stats_.connections_accepted.load());
  out.Counter(p + "connections_rejected_total",
              "Device connections refused (every slot busy, or their address at its cap)",
              stats_.connections_rejected.load());
  out.LabeledCounter(p + "connections_evicted_total",
                     "Connections closed to make room (docs/security.md, Admission), by reason",
                     {{{{"reason", "idle_at_limit"}}, m.evicted_idle.value()},
                      {{{"reason", "pending_handshake"}}, m.evicted_pending_handshake.value()},
                      {{{"reason", "per_address"}}, m.evicted_per_address.value()},
                      {{{"reason", "crowded_idle"}}, m.evicted_crowded_idle.value()}});
  out.Counter(p + "connections_rejected_per_address_total",
              "Newcomers refused because their address held its cap of busy connections (also in "
              "connections_rejected_total)",
              m.rejected_per_address.value());
  out.Counter(p + "handshake_timeouts_total",
              "Connections closed without an accepted Hello within the handshake deadline",
              m.handshake_timeouts.value());
  out.Counter(p + "go_aways_total", "GoAway frames sent (drain or eviction)", m.go_aways.value());
  out.Gauge(p + "connected_devices", "Device connections open now",
            static_cast<double>(m.connected_devices.value()));
  out.Gauge(p + "in_flight_requests", "Inference requests received whose reply is not yet written",
            static_cast<double>(m.in_flight.value()));
  out.Counter(p + "bytes_in_total", "Frame bytes read from devices (header, metadata, body)",
              m.bytes_in.value());
  out.Counter(p + "bytes_out_total", "Frame bytes written to devices", m.bytes_out.value());
  out.LabeledHistograms(p + "stage_latency_seconds",
                        "Latency of inference stages: queue (receipt to compute start), decode "
                        "(encoded bodies), compute (units k+1..N), total (receipt to reply queued)",
                        "stage",
                        {{"queue", &m.queue_wait},
                         {"decode", &m.decode},
                         {"compute", &m.compute},
                         {"total", &m.total}});
  out.Counter(p + "batches_total",
              "Batches run (a request that runs alone is a batch of 1); mean batch size = "
              "batched_requests_total / batches_total",
              m.batches.value());
  out.Counter(p + "batched_requests_total", "Requests run in those batches",
              m.batched_requests.value());
  out.Gauge(p + "batch_queue_depth", "Requests waiting for their batch to fill or its delay",
            static_cast<double>(m.batch_queue_depth.value()));
  out.Gauge(p + "max_batch_size", "Configured largest batch (1: batching off)",
            static_cast<double>(s.options.max_batch_size));
  out.Counter(p + "placements_total", "Placement plans answered", stats_.placements.load());
  out.Counter(p + "chunks_served_total", "Model unit chunks sent", stats_.chunks_served.load());
  out.Counter(p + "chunk_bytes_served_total", "Bytes of model unit chunks sent",
              stats_.chunk_bytes_served.load());
  out.Gauge(p + "model_versions", "Model versions served now",
            static_cast<double>(s.models->List().size()));
  out.Gauge(p + "draining", "1 while the server drains or stops, else 0",
            s.draining.load() ? 1.0 : 0.0);
  return out.text();
}

void EdgeServer::Wait() {
  Impl& s = *impl_;
  std::unique_lock<std::mutex> lock(s.mu);
  s.stopped_cv.wait(lock, [&s] { return s.stopped; });
}

}  // namespace splitinfer

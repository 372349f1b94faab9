#include "edge_server/edge_server.h"

#include <condition_variable>
#include <deque>
#include <map>
#include <optional>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "common/codec.h"
#include "common/frame_io.h"
#include "common/log.h"
#include "common/tensor_wire.h"
#include "edge_server/placement_service.h"

namespace splitinfer {
namespace {

using Clock = std::chrono::steady_clock;

// Chunks one FetchRequest may ask for (more are clamped: the device asks again).
constexpr uint32_t kMaxChunksPerFetch = 4096;

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

class EdgeServer::Impl {
 public:
  Impl(EdgeServerOptions o, std::shared_ptr<const ModelRegistry> m, EdgeServerStats* s)
      : options(std::move(o)),
        models(std::move(m)),
        stats(s),
        acceptor(io),
        compute_pool(static_cast<size_t>(options.compute_threads)) {}

  void DoAccept();
  void Register(const std::shared_ptr<Session>& s);
  size_t LiveSessions();

  const EdgeServerOptions options;
  const std::shared_ptr<const ModelRegistry> models;
  EdgeServerStats* const stats;
  wire::HelloReply hello;  // template of the handshake answer, filled by Start()

  // Declared before io so that sessions destroyed with io's pending handlers find them alive.
  std::mutex mu;
  std::map<const Session*, std::weak_ptr<Session>> sessions;
  bool stopping = false;
  bool stopped = false;
  std::condition_variable stopped_cv;

  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  tcp::acceptor acceptor;
  asio::thread_pool compute_pool;
  std::vector<std::thread> io_threads;
  // Fault injection (tests): chunks served so far, and whether the drop has happened.
  std::atomic<uint64_t> chunks_served{0};
  std::atomic<bool> fault_dropped{false};
};

// One device connection. All members are touched only on the session's strand (the executor of
// its socket), except the immutable server pointer. Compute jobs hold a shared_ptr to it and post
// their result back to the strand.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, EdgeServer::Impl* server)
      : socket_(std::move(socket)),
        read_timer_(socket_.get_executor()),
        write_timer_(socket_.get_executor()),
        server_(server),
        opts_(server->options) {
    boost::system::error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    peer_ = ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  void Start() {
    asio::dispatch(socket_.get_executor(), [self = shared_from_this()] {
      boost::system::error_code ec;
      self->socket_.set_option(tcp::no_delay(true), ec);
      self->ReadHeader();
    });
  }

  // Refuses the connection with `status` (e.g. too many connections).
  void Reject(const Status& status) {
    asio::dispatch(socket_.get_executor(),
                   [self = shared_from_this(), status] { self->FailConnection(status); });
  }

  void Shutdown() {
    asio::dispatch(socket_.get_executor(),
                   [self = shared_from_this()] { self->Close("server shutting down"); });
  }

 private:
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
    // rest of the frame must follow within io_timeout (a stalled peer is dropped).
    ArmReadTimer(handshake_done_ ? opts_.idle_timeout : opts_.handshake_timeout);
    asio::async_read(socket_, asio::buffer(header_buf_), asio::transfer_at_least(1),
                     [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
                       if (ec || n == self->header_buf_.size()) return self->OnHeader(ec);
                       self->ArmReadTimer(self->opts_.io_timeout);
                       asio::async_read(self->socket_, asio::buffer(self->header_buf_) + n,
                                        [self](const boost::system::error_code& ec, size_t) {
                                          self->OnHeader(ec);
                                        });
                     });
  }

  void OnHeader(const boost::system::error_code& ec) {
    if (ec) return OnReadError(ec);
    auto h = DecodeHeader(header_buf_.data(), header_buf_.size(), opts_.limits);
    if (!h.ok()) return FailConnection(h.status());
    header_ = *h;
    meta_buf_.resize(header_.meta_len);
    ArmReadTimer(opts_.io_timeout);
    asio::async_read(socket_, asio::buffer(meta_buf_),
                     [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                       self->OnMeta(ec);
                     });
  }

  void OnMeta(const boost::system::error_code& ec) {
    if (ec) return OnReadError(ec);
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
    for (auto& info : server_->models->List()) *reply.add_models() = info;  // versions come and go
    if (hello.protocol_version() != kProtocolVersion) {
      reply.set_code(wire::FAILED_PRECONDITION);
      reply.set_message("protocol version mismatch: client speaks " +
                        std::to_string(hello.protocol_version()) + ", server speaks " +
                        std::to_string(kProtocolVersion));
      log::Warn(peer_ + ": " + reply.message());
      server_->stats->frames_rejected++;
      close_after_write_ = true;
      CancelReadTimer();
      QueueWrite(MakeFrame(MessageType::kHelloReply, reply));
      return;
    }
    handshake_done_ = true;
    log::Debug(peer_ + ": hello from '" + hello.client_name() + "'");
    QueueWrite(MakeFrame(MessageType::kHelloReply, reply));
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
      buffer = AllocateForMeta(req->tensor());
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
        socket_, asio::buffer(body->data_ptr(), body->nbytes()),
        [self = shared_from_this(), req, body, raw](const boost::system::error_code& ec, size_t) {
          if (ec) return self->OnReadError(ec);
          self->CancelReadTimer();
          RequestInput input;
          (raw ? input.tensor : input.encoded) = std::move(*body);
          self->Dispatch(std::move(*req), std::move(input), Clock::now());
          self->ReadHeader();
        });
  }

  // Checks a well-framed request and hands it to the compute pool. The checks read the
  // metadata, which describes the decoded tensor whether or not the body is encoded.
  void Dispatch(wire::InferRequest req, RequestInput input, Clock::time_point receipt) {
    auto model = server_->models->Find(req.model(), req.model_version());
    if (!model.ok()) return ReplyError(req.request_id(), model.status());
    const SplitModel& m = **model;
    if (req.boundary() > m.num_units()) {
      return ReplyError(req.request_id(),
                        InvalidArgumentError("boundary " + std::to_string(req.boundary()) +
                                             " out of range: " + m.name() + " has " +
                                             std::to_string(m.num_units()) + " units"));
    }
    const std::vector<int64_t> shape(req.tensor().shape().begin(), req.tensor().shape().end());
    Status st = m.CheckBoundaryInput(req.boundary(), shape);
    if (!st.ok()) return ReplyError(req.request_id(), st);
    if (req.tensor().dtype() != wire::FLOAT32) {
      return ReplyError(req.request_id(),
                        InvalidArgumentError(std::string("model inputs are float32, got ") +
                                             DTypeName(req.tensor().dtype())));
    }
    ++in_flight_;
    const uint32_t deadline_ms = req.deadline_ms() ? req.deadline_ms() : opts_.default_deadline_ms;
    asio::post(server_->compute_pool, [self = shared_from_this(), req = std::move(req),
                                       input = std::move(input), model = *model, receipt,
                                       deadline_ms]() mutable {
      OutgoingFrame frame = Compute(req, input, *model, receipt, deadline_ms, self->server_);
      asio::post(self->socket_.get_executor(), [self, frame = std::move(frame)]() mutable {
        --self->in_flight_;
        self->QueueWrite(std::move(frame));
        self->MaybeResumeRead();
      });
    });
  }

  // Runs on a compute thread. Touches no session state.
  static OutgoingFrame Compute(const wire::InferRequest& req, const RequestInput& in,
                               const SplitModel& model, Clock::time_point receipt,
                               uint32_t deadline_ms, EdgeServer::Impl* server) {
    wire::InferReply reply;
    reply.set_request_id(req.request_id());
    reply.set_model_version(model.version());
    const auto start = Clock::now();
    reply.set_queue_us(MicrosSince(receipt, start));
    if (start - receipt > std::chrono::milliseconds(deadline_ms)) {
      server->stats->requests_failed++;
      reply.set_code(wire::DEADLINE_EXCEEDED);
      reply.set_message("deadline of " + std::to_string(deadline_ms) +
                        " ms passed before compute started");
      return MakeFrame(MessageType::kInferReply, reply);
    }
    c10::InferenceMode guard;
    at::Tensor input = in.tensor;
    if (in.encoded.defined()) {
      // A body that does not decode (corrupt zstd stream) was still a well-framed request:
      // answer it with the reason; the connection stays open.
      Result<at::Tensor> decoded = Decode(req.tensor(), in.encoded.data_ptr<uint8_t>(),
                                          in.encoded.nbytes(), server->options.limits);
      reply.set_decode_us(MicrosSince(start));
      if (!decoded.ok()) {
        server->stats->requests_failed++;
        log::Info("request " + std::to_string(req.request_id()) +
                  " failed: " + decoded.status().ToString());
        reply.set_code(ToWireCode(decoded.status().code()));
        reply.set_message(decoded.status().message());
        return MakeFrame(MessageType::kInferReply, reply);
      }
      input = std::move(*decoded);
    }
    const auto compute_start = Clock::now();
    auto out = model.RunRangeChecked(input, req.boundary(), model.num_units());
    at::Tensor cpu_out;
    if (out.ok()) cpu_out = out->to(at::kCPU).contiguous();  // syncs a GPU before timing ends
    reply.set_edge_compute_us(MicrosSince(compute_start));
    if (!out.ok()) {
      server->stats->requests_failed++;
      reply.set_code(ToWireCode(out.status().code()));
      reply.set_message(out.status().message());
      return MakeFrame(MessageType::kInferReply, reply);
    }
    Status st = FillTensorMeta(cpu_out, reply.mutable_tensor());
    if (!st.ok()) {
      server->stats->requests_failed++;
      reply.clear_tensor();
      reply.set_code(ToWireCode(st.code()));
      reply.set_message(st.message());
      return MakeFrame(MessageType::kInferReply, reply);
    }
    server->stats->requests_ok++;
    reply.set_code(wire::OK);
    return MakeTensorFrame(MessageType::kInferReply, reply, cpu_out);
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
      asio::post(self->socket_.get_executor(), [self, frame = std::move(frame)]() mutable {
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

  void ReplyError(uint64_t request_id, const Status& st) {
    log::Info(peer_ + ": request " + std::to_string(request_id) + " failed: " + st.ToString());
    server_->stats->requests_failed++;
    wire::InferReply reply;
    reply.set_request_id(request_id);
    reply.set_code(ToWireCode(st.code()));
    reply.set_message(st.message());
    QueueWrite(MakeFrame(MessageType::kInferReply, reply));
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

  void QueueWrite(OutgoingFrame frame) {
    if (closed_) return;
    write_queue_.push_back(std::move(frame));
    if (!writing_) DoWrite();
  }

  void DoWrite() {
    writing_ = true;
    write_timer_.expires_after(opts_.io_timeout);
    write_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec && self->write_timer_.expiry() <= Clock::now()) self->Close("write timed out");
    });
    asio::async_write(socket_, FrameBuffers(write_queue_.front()),
                      [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                        self->OnWrite(ec);
                      });
  }

  void OnWrite(const boost::system::error_code& ec) {
    writing_ = false;
    write_timer_.cancel();
    if (closed_) {  // Close() kept the frame alive for this write; drop it all now
      write_queue_.clear();
      return;
    }
    if (ec) return Close("write failed: " + ec.message());
    write_queue_.pop_front();
    PumpFetch();  // may queue the next chunk, which starts its write at once
    if (writing_ || closed_) return;
    if (!write_queue_.empty()) return DoWrite();
    if (close_after_write_ && in_flight_ == 0) return Close("closed after error reply");
    MaybeResumeRead();
  }

  // ---- timers and closing --------------------------------------------------------------------

  void ArmReadTimer(std::chrono::milliseconds timeout) {
    read_timer_.expires_after(timeout);
    read_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      // A timer re-armed after it fired carries a later expiry: that wait does not count.
      if (!ec && self->read_timer_.expiry() <= Clock::now()) self->Close("read timed out");
    });
  }

  void CancelReadTimer() { read_timer_.cancel(); }

  void Close(const std::string& reason) {
    if (closed_) return;
    closed_ = true;
    if (log::Enabled(log::Level::kDebug)) log::Debug(peer_ + ": closed: " + reason);
    read_timer_.cancel();
    write_timer_.cancel();
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    // A write in progress still owns the front frame's buffers until OnWrite runs.
    if (!writing_) write_queue_.clear();
  }

  tcp::socket socket_;
  asio::steady_timer read_timer_;
  asio::steady_timer write_timer_;
  EdgeServer::Impl* const server_;
  const EdgeServerOptions& opts_;
  std::string peer_;

  HeaderBytes header_buf_{};
  FrameHeader header_;
  std::string meta_buf_;
  std::deque<OutgoingFrame> write_queue_;
  uint32_t in_flight_ = 0;
  std::optional<FetchRange> fetch_;  // the chunk stream being sent, if any
  bool handshake_done_ = false;
  bool writing_ = false;
  bool read_paused_ = false;
  bool close_after_write_ = false;
  bool closed_ = false;
};

// ---- EdgeServer::Impl ------------------------------------------------------------------------

void EdgeServer::Impl::Register(const std::shared_ptr<Session>& s) {
  std::lock_guard<std::mutex> lock(mu);
  for (auto it = sessions.begin(); it != sessions.end();) {
    it = it->second.expired() ? sessions.erase(it) : std::next(it);
  }
  sessions[s.get()] = s;
}

size_t EdgeServer::Impl::LiveSessions() {
  std::lock_guard<std::mutex> lock(mu);
  size_t n = 0;
  for (auto& [p, w] : sessions) n += !w.expired();
  return n;
}

void EdgeServer::Impl::DoAccept() {
  acceptor.async_accept(
      asio::make_strand(io), [this](const boost::system::error_code& ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
        if (ec) {
          log::Warn("accept failed: " + ec.message());
        } else {
          auto session = std::make_shared<Session>(std::move(socket), this);
          if (LiveSessions() >= options.max_connections) {
            stats->connections_rejected++;
            session->Reject(ResourceExhaustedError("server has its maximum of " +
                                                   std::to_string(options.max_connections) +
                                                   " connections"));
          } else {
            stats->connections_accepted++;
            Register(session);
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
  if (max_connections < 1) {
    *error = "max_connections must be >= 1";
    return false;
  }
  if (handshake_timeout.count() <= 0 || idle_timeout.count() <= 0 || io_timeout.count() <= 0) {
    *error = "timeouts must be positive";
    return false;
  }
  return limits.IsValid(error);
}

EdgeServer::EdgeServer(EdgeServerOptions options, std::shared_ptr<const ModelRegistry> models)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(models), &stats_)) {}

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

  s.hello.set_protocol_version(kProtocolVersion);
  s.hello.set_code(wire::OK);
  s.hello.set_server_name(s.options.server_name);
  s.hello.set_compute_device(DeviceName(s.models->device()));
  s.hello.set_max_body_bytes(s.options.limits.max_body_bytes);
  s.hello.set_max_in_flight(s.options.max_in_flight);

  s.work.emplace(asio::make_work_guard(s.io));
  s.DoAccept();
  for (int i = 0; i < s.options.io_threads; ++i) {
    s.io_threads.emplace_back([&s] { s.io.run(); });
  }
  return Status::Ok();
}

void EdgeServer::Stop() {
  Impl& s = *impl_;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.stopping) return;
    s.stopping = true;
  }
  asio::post(s.io, [&s] {
    boost::system::error_code ignored;
    s.acceptor.close(ignored);
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

void EdgeServer::Wait() {
  Impl& s = *impl_;
  std::unique_lock<std::mutex> lock(s.mu);
  s.stopped_cv.wait(lock, [&s] { return s.stopped; });
}

}  // namespace splitinfer

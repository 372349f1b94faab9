#include "device/async_edge_client.h"

#include <algorithm>
#include <array>
#include <limits>

#include "device/edge_protocol.h"

namespace splitinfer {

using boost::system::error_code;

AsyncEdgeConnection::AsyncEdgeConnection(asio::io_context& io, AsyncLoad* load,
                                         AsyncConnectionOptions options)
    : load_(load),
      options_(std::move(options)),
      strand_(asio::make_strand(io)),
      socket_(strand_),
      connect_timer_(strand_),
      write_timer_(strand_),
      read_timer_(strand_),
      send_timer_(strand_),
      rng_(options_.seed) {}

void AsyncEdgeConnection::Connect() {
  asio::dispatch(strand_, [self = shared_from_this()] { self->DoConnect(); });
}
void AsyncEdgeConnection::StartLoad() {
  asio::dispatch(strand_, [self = shared_from_this()] { self->DoStartLoad(); });
}
void AsyncEdgeConnection::StopLoad() {
  asio::dispatch(strand_, [self = shared_from_this()] { self->DoStopLoad(); });
}
void AsyncEdgeConnection::Close() {
  asio::dispatch(strand_, [self = shared_from_this()] { self->Shutdown(); });
}

// Arms `timer` for `after`; on expiry fails the connection with `what` (unless cancelled).
void AsyncEdgeConnection::Arm(asio::steady_timer& timer, Clock::duration after, const char* what) {
  timer.expires_after(after);
  timer.async_wait([self = shared_from_this(), &timer, what](const error_code& ec) {
    // A wait that expired just as its timer was re-armed (or its operation completed and
    // cancelled it) is not a timeout: the current deadline is still ahead. Disarm pushes the
    // expiry out of reach so that a wait already completed but not yet handled is stale too
    // (cancel() alone cannot reach that one).
    if (ec == asio::error::operation_aborted || timer.expiry() > Clock::now()) return;
    self->Fail(std::string(what) + " timed out");
  });
}

void AsyncEdgeConnection::DoConnect() {
  error_code bad;
  const auto address = asio::ip::make_address(options_.host, bad);
  if (bad) return Fail("connect: " + options_.host + ": " + bad.message());
  const tcp::endpoint ep(address, options_.port);
  Arm(connect_timer_, options_.connect_timeout, "connect");
  socket_.async_connect(ep, [self = shared_from_this()](const error_code& ec) {
    Disarm(self->connect_timer_);
    if (ec) return self->Fail("connect: " + ec.message());
    error_code ignored;
    self->socket_.set_option(tcp::no_delay(true), ignored);
    self->SendHello();
  });
}

void AsyncEdgeConnection::SendHello() {
  auto frame = std::make_shared<OutgoingFrame>(
      MakeFrame(MessageType::kHello, MakeHello(options_.client_name)));
  Arm(connect_timer_, options_.io_timeout, "handshake");
  asio::async_write(socket_, FrameBuffers(*frame),
                    [self = shared_from_this(), frame](const error_code& ec, size_t) {
                      if (ec) return self->Fail("handshake write: " + ec.message());
                      self->ReadHeader(/*handshake=*/true);
                    });
}

void AsyncEdgeConnection::ReadHeader(bool handshake) {
  asio::async_read(socket_, asio::buffer(header_),
                   [self = shared_from_this(), handshake](const error_code& ec, size_t) {
                     if (ec) {
                       return self->Fail(std::string(handshake ? "handshake read: " : "read: ") +
                                         (ec == asio::error::eof ? "server closed the connection"
                                                                 : ec.message()));
                     }
                     self->OnHeader(handshake);
                   });
}

void AsyncEdgeConnection::OnHeader(bool handshake) {
  auto h = DecodeHeader(header_.data(), header_.size(), options_.limits);
  if (!h.ok()) return Fail("bad frame header: " + h.status().message());
  frame_ = *h;
  meta_.resize(frame_.meta_len);
  body_.resize(static_cast<size_t>(frame_.body_len));
  std::array<asio::mutable_buffer, 2> bufs{asio::buffer(meta_), asio::buffer(body_)};
  asio::async_read(socket_, bufs,
                   [self = shared_from_this(), handshake](const error_code& ec, size_t) {
                     if (ec) return self->Fail(std::string("read: ") + ec.message());
                     if (handshake) {
                       self->OnHelloReply();
                     } else {
                       self->OnReply();
                     }
                   });
}

void AsyncEdgeConnection::OnHelloReply() {
  Disarm(connect_timer_);
  Result<wire::HelloReply> hello = ParseHelloAnswer(frame_, meta_);
  Status st = hello.ok() ? load_->CheckServer(*hello) : hello.status();
  if (!st.ok()) return Fail(st.ToString());
  in_flight_ = options_.in_flight;
  if (hello->max_in_flight() > 0) in_flight_ = std::min(in_flight_, hello->max_in_flight());
  report_.connected = true;
  handshake_done_ = true;
  load_->HandshakeDone();
  ReadHeader(/*handshake=*/false);  // replies are read for as long as the connection lives
}

void AsyncEdgeConnection::DoStartLoad() {
  if (closed_) return;
  if (options_.rate_per_device > 0) {
    // Open loop: a random phase so that devices do not send in lockstep.
    std::uniform_real_distribution<double> phase(0, 1.0 / options_.rate_per_device);
    next_due_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(phase(rng_)));
    ScheduleDue();
  } else {
    Pump();  // closed loop: a request whenever a slot is free
  }
}

void AsyncEdgeConnection::ScheduleDue() {
  send_timer_.expires_at(next_due_);
  send_timer_.async_wait([self = shared_from_this()](const error_code& ec) {
    if (ec || self->closed_ || self->load_->stopping()) return;
    self->next_due_ += std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(1.0 / self->options_.rate_per_device));
    if (self->outstanding_.size() + self->due_ >= self->in_flight_) ++self->report_.deferred;
    ++self->due_;
    self->Pump();
    self->ScheduleDue();
  });
}

void AsyncEdgeConnection::DoStopLoad() {
  send_timer_.cancel();
  due_ = 0;
  if (outstanding_.empty() && !writing_) Shutdown();
}

// Writes the next request when one is due (always, in a closed loop), no write is in progress
// and a slot is free.
void AsyncEdgeConnection::Pump() {
  if (closed_ || writing_ || going_away_ || load_->stopping()) return;
  if (outstanding_.size() >= in_flight_ || (!closed_loop() && due_ == 0)) return;
  if (!load_->TakeRequest()) return;
  if (!closed_loop()) --due_;
  const uint64_t id = next_id_++;
  auto frame = std::make_shared<OutgoingFrame>(load_->MakeRequest(id));
  outstanding_[id] = Clock::now();  // refined to the write's completion below
  ++report_.sent;
  writing_ = true;
  if (outstanding_.size() == 1) Arm(read_timer_, options_.io_timeout, "reply");
  Arm(write_timer_, options_.io_timeout, "request write");
  asio::async_write(socket_, FrameBuffers(*frame),
                    [self = shared_from_this(), frame, id](const error_code& ec, size_t) {
                      self->writing_ = false;
                      Disarm(self->write_timer_);
                      if (ec) return self->Fail("request write: " + ec.message());
                      auto it = self->outstanding_.find(id);
                      if (it != self->outstanding_.end()) it->second = Clock::now();
                      self->Pump();
                      if (self->load_->stopping() && self->outstanding_.empty()) {
                        self->Shutdown();
                      }
                    });
}

void AsyncEdgeConnection::OnReply() {
  const auto now = Clock::now();
  if (frame_.type == MessageType::kGoAway) {
    // The edge drains (or evicts this connection): the replies still due come, nothing new.
    going_away_ = true;
    if (outstanding_.empty()) return Fail("server sent GoAway");
    return ReadHeader(/*handshake=*/false);
  }
  Result<wire::InferReply> reply = ParseInferAnswer(frame_, meta_, options_.limits);
  if (!reply.ok()) return Fail(reply.status().ToString());
  auto it = outstanding_.find(reply->request_id());
  if (it == outstanding_.end()) {
    return Fail("reply to unknown request id " + std::to_string(reply->request_id()));
  }
  if (reply->code() == wire::OK) {
    ++report_.ok;
    if (now <= load_->window_end()) ++report_.ok_in_window;
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now - it->second);
    report_.latency_us.push_back(
        static_cast<uint32_t>(std::min<int64_t>(us.count(), std::numeric_limits<uint32_t>::max())));
  } else {
    ++report_.errors_by_code[StatusCodeName(FromWireCode(reply->code()))];
  }
  outstanding_.erase(it);
  if (outstanding_.empty()) {
    Disarm(read_timer_);
  } else {
    Arm(read_timer_, options_.io_timeout, "reply");
  }
  if (going_away_ && outstanding_.empty()) return Fail("server sent GoAway");
  Pump();
  if (load_->stopping() && outstanding_.empty() && !writing_) return Shutdown();
  ReadHeader(/*handshake=*/false);
}

// The connection ended early: every outstanding request is lost.
void AsyncEdgeConnection::Fail(const std::string& why) {
  if (closed_) return;
  report_.failure = why;
  report_.lost += outstanding_.size();
  outstanding_.clear();
  const bool was_handshaking = !handshake_done_;
  Shutdown();
  if (was_handshaking) load_->HandshakeDone();
}

void AsyncEdgeConnection::Shutdown() {
  if (closed_) return;
  closed_ = true;
  report_.lost += outstanding_.size();  // only non-zero if closed with replies pending
  outstanding_.clear();
  error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  connect_timer_.cancel();
  write_timer_.cancel();
  read_timer_.cancel();
  send_timer_.cancel();
}

}  // namespace splitinfer

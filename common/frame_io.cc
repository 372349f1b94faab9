#include "common/frame_io.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include <poll.h>

namespace splitinfer {
namespace {

Status FromErrorCode(const boost::system::error_code& ec, const char* what) {
  if (ec == asio::error::eof || ec == asio::error::connection_reset ||
      ec == asio::error::broken_pipe || ec == asio::error::connection_refused ||
      ec == asio::error::connection_aborted || ec == asio::error::host_unreachable ||
      ec == asio::error::network_unreachable || ec == asio::error::not_connected) {
    return UnavailableError(std::string(what) + ": " + ec.message());
  }
  return UnavailableError(std::string(what) + " failed: " + ec.message());
}

}  // namespace

Status ParseHostPort(const std::string& s, std::string* host, uint16_t* port) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) {
    return InvalidArgumentError("expected HOST:PORT, got '" + s + "'");
  }
  std::string h = s.substr(0, colon);
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  unsigned value = 0;
  const char* first = s.data() + colon + 1;
  const char* last = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(first, last, value);
  if (ec != std::errc() || ptr != last || value > 65535) {
    return InvalidArgumentError("bad port in '" + s + "'");
  }
  *host = h;
  *port = static_cast<uint16_t>(value);
  return Status::Ok();
}

bool BlockingConnection::RunFor(Duration timeout) {
  io_.restart();
  io_.run_for(timeout);
  if (!io_.stopped()) {
    // Timed out: closing the socket makes the outstanding operation complete with an error.
    boost::system::error_code ignored;
    stream_.socket().close(ignored);
    io_.run();
    return false;
  }
  return true;
}

Status BlockingConnection::Connect(const std::string& host, uint16_t port, Duration timeout,
                                   ssl::context* tls, const std::string& tls_server_name) {
  Close();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  tcp::socket& socket = stream_.socket();
  boost::system::error_code ec;
  tcp::resolver resolver(io_);
  auto endpoints = resolver.resolve(host, std::to_string(port), ec);
  if (ec) return UnavailableError("cannot resolve " + host + ": " + ec.message());
  boost::system::error_code result = asio::error::would_block;
  asio::async_connect(
      socket, endpoints,
      [&](const boost::system::error_code& e, const tcp::endpoint&) { result = e; });
  if (!RunFor(timeout)) {
    return DeadlineExceededError("connect to " + host + ":" + std::to_string(port) + " timed out");
  }
  if (result) {
    Close();
    return FromErrorCode(result, ("connect to " + host + ":" + std::to_string(port)).c_str());
  }
  socket.set_option(tcp::no_delay(true), ec);
  if (tls == nullptr) return Status::Ok();

  // TLS: SNI and the name the certificate must carry, then the handshake in what is left of
  // the timeout.
  const std::string name = tls_server_name.empty() ? host : tls_server_name;
  stream_.EnableTls(*tls);
  auto& t = stream_.tls();
  if (SSL_set_tlsext_host_name(t.native_handle(), name.c_str()) != 1) {
    Close();
    return InvalidArgumentError("TLS: bad server name '" + name + "'");
  }
  t.set_verify_callback(ssl::host_name_verification(name));
  result = asio::error::would_block;
  t.async_handshake(ssl::stream_base::client,
                    [&](const boost::system::error_code& e) { result = e; });
  const auto left = deadline - std::chrono::steady_clock::now();
  if (!RunFor(std::max<Duration>(left, Duration::zero()))) {
    Close();
    return DeadlineExceededError("TLS handshake with " + host + ":" + std::to_string(port) +
                                 " timed out");
  }
  if (result) {
    Close();
    // A plain server answers the ClientHello with a plaintext frame (OpenSSL: "wrong version
    // number", "packet length too long") or closes; only a verify failure is the certificate.
    const std::string why = TlsErrorText(result);
    const bool plain_peer = result.category() != asio::error::get_ssl_category() ||
                            why.find("wrong version number") != std::string::npos ||
                            why.find("packet length too long") != std::string::npos ||
                            why.find("record layer failure") != std::string::npos ||
                            why.find("http request") != std::string::npos;
    return UnavailableError(
        "TLS handshake with " + host + ":" + std::to_string(port) + " failed: " + why +
        (plain_peer
             ? " (the server does not speak TLS: is it started without --tls-cert? "
               "connect without --tls)"
             : " (is the server's certificate signed by --tls-ca and made for '" + name + "'?)"));
  }
  return Status::Ok();
}

Status BlockingConnection::WriteFrame(const OutgoingFrame& frame, Duration timeout,
                                      WritePacer* pacer) {
  if (!is_open()) return UnavailableError("write on a closed connection");
  if (write_failed_) return UnavailableError("write on a connection whose last write failed");
  if (pacer != nullptr) {
    const size_t chunk = std::max<size_t>(1, pacer->ChunkBytes());
    pacer->BeginFrame();
    for (const asio::const_buffer& b : FrameBuffers(frame)) {
      const auto* p = static_cast<const uint8_t*>(b.data());
      for (size_t off = 0; off < b.size(); off += chunk) {
        const size_t n = std::min(chunk, b.size() - off);
        SPLITINFER_RETURN_IF_ERROR(pacer->Acquire(n));
        SPLITINFER_RETURN_IF_ERROR(WriteRaw(p + off, n, timeout));
      }
    }
    return Status::Ok();
  }
  return WriteBuffers(FrameBuffers(frame), timeout);
}

Status BlockingConnection::WriteRaw(const void* data, size_t size, Duration timeout) {
  if (!is_open()) return UnavailableError("write on a closed connection");
  if (write_failed_) return UnavailableError("write on a connection whose last write failed");
  return WriteBuffers(asio::buffer(data, size), timeout);
}

template <typename ConstBufferSequence>
Status BlockingConnection::WriteBuffers(const ConstBufferSequence& buffers, Duration timeout) {
  boost::system::error_code result = asio::error::would_block;
  asio::async_write(stream_, buffers,
                    [&](const boost::system::error_code& e, size_t) { result = e; });
  if (!RunFor(timeout)) return DeadlineExceededError("write timed out");
  if (result) {
    // The peer is gone or reset the connection; what it wrote before may still be in the
    // receive buffer, so the read side stays open until a read fails (ReadAtLeast closes).
    boost::system::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    write_failed_ = true;
    return FromErrorCode(result, "write");
  }
  return Status::Ok();
}

Status BlockingConnection::ReadAtLeast(asio::mutable_buffer buf, size_t min_bytes, Duration timeout,
                                       size_t* got) {
  boost::system::error_code result = asio::error::would_block;
  asio::async_read(stream_, buf, asio::transfer_at_least(min_bytes),
                   [&](const boost::system::error_code& e, size_t n) {
                     result = e;
                     *got = n;
                   });
  if (!RunFor(timeout)) return DeadlineExceededError("read timed out");
  if (result) {
    Close();
    return FromErrorCode(result, "read");
  }
  return Status::Ok();
}

Status BlockingConnection::ReadExact(void* data, size_t size, Duration timeout) {
  if (!is_open()) return UnavailableError("read on a closed connection");
  auto* out = static_cast<uint8_t*>(data);
  const size_t buffered = std::min(size, rend_ - rpos_);
  std::memcpy(out, rbuf_.data() + rpos_, buffered);
  rpos_ += buffered;
  out += buffered;
  size -= buffered;
  if (size == 0) return Status::Ok();
  size_t got = 0;
  if (size >= kReadBufferSize / 2) {  // large: straight into the destination
    return ReadAtLeast(asio::buffer(out, size), size, timeout, &got);
  }
  rpos_ = rend_ = 0;
  SPLITINFER_RETURN_IF_ERROR(ReadAtLeast(asio::buffer(rbuf_), size, timeout, &got));
  std::memcpy(out, rbuf_.data(), size);
  rpos_ = size;
  rend_ = got;
  return Status::Ok();
}

Status BlockingConnection::ReadHeaderAndMeta(const FrameLimits& limits, Duration timeout,
                                             FrameHeader* header, std::string* meta) {
  HeaderBytes hb;
  SPLITINFER_RETURN_IF_ERROR(ReadExact(hb.data(), hb.size(), timeout));
  auto h = DecodeHeader(hb.data(), hb.size(), limits);
  if (!h.ok()) {
    Close();  // the stream is no longer framed
    return h.status();
  }
  *header = *h;
  meta->resize(header->meta_len);
  return ReadExact(meta->data(), meta->size(), timeout);
}

bool BlockingConnection::PeerHungUp() {
  if (!is_open()) return true;
  pollfd p{};
  p.fd = stream_.socket().native_handle();
  p.events = POLLIN | POLLRDHUP;
  if (::poll(&p, 1, 0) != 1) return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

bool BlockingConnection::HasInput() {
  if (rend_ > rpos_) return true;
  if (!is_open() || tls()) return false;
  boost::system::error_code ec;
  return stream_.socket().available(ec) > 0 && !ec;
}

void BlockingConnection::Close() {
  rpos_ = rend_ = 0;
  write_failed_ = false;
  boost::system::error_code ignored;
  tcp::socket& socket = stream_.socket();
  if (socket.is_open()) {
    // No TLS close_notify: frames carry their own lengths, so a truncation cannot go unseen.
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }
  stream_.DisableTls();
}

}  // namespace splitinfer

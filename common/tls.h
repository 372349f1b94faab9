// Optional TLS on the device link (issue 8): Boost.Asio SSL over OpenSSL, TLS 1.2 or newer.
//
// MaybeTlsStream is a TCP socket that reads and writes either directly or through TLS, decided
// per connection before the first byte; it models Asio's AsyncReadStream and AsyncWriteStream,
// so asio::async_read / async_write and everything built on them work unchanged on both. A
// plain connection allocates nothing for TLS (an idle plain socket stays a few KiB).
//
// Certificates come from PEM files: the server's chain and key (edge_server --tls-cert,
// --tls-key), and the CA the device trusts (device_client --tls-ca; default: the system's).
// The device checks the server's name against the certificate (--tls-server-name, default the
// host it connects to). scripts/make_certs.sh makes a test CA and a server certificate.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include "common/status.h"

namespace splitinfer {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;

// A server context: `cert_file` is the PEM certificate chain (leaf first), `key_file` its PEM
// private key. kInvalidArgument naming the file when either cannot be read or they do not match.
Result<std::shared_ptr<ssl::context>> MakeServerTlsContext(const std::string& cert_file,
                                                           const std::string& key_file);

// A client context that verifies the server's chain against `ca_file` (PEM), or against the
// system's trust store when it is empty. kInvalidArgument when the file cannot be read.
Result<std::shared_ptr<ssl::context>> MakeClientTlsContext(const std::string& ca_file);

// What went wrong in a TLS operation, in words (OpenSSL's reason, e.g. "certificate verify
// failed", rather than Asio's category).
std::string TlsErrorText(const boost::system::error_code& ec);

class MaybeTlsStream {
 public:
  using executor_type = tcp::socket::executor_type;
  using tls_stream_type = ssl::stream<tcp::socket&>;

  explicit MaybeTlsStream(tcp::socket socket) : socket_(std::move(socket)) {}
  // A new, unopened socket on `io`.
  explicit MaybeTlsStream(boost::asio::io_context& io) : socket_(io) {}

  // From now on reads and writes go through TLS with `context`; the caller runs the handshake
  // on tls(). Call before any byte is exchanged, with no operation pending.
  void EnableTls(ssl::context& context) {
    tls_ = std::make_unique<tls_stream_type>(socket_, context);
  }
  // Back to plain (after the socket was closed, before it is reused).
  void DisableTls() { tls_.reset(); }
  bool tls_enabled() const { return tls_ != nullptr; }
  tls_stream_type& tls() { return *tls_; }

  tcp::socket& socket() { return socket_; }
  const tcp::socket& socket() const { return socket_; }
  executor_type get_executor() { return socket_.get_executor(); }

  template <typename MutableBufferSequence, typename ReadHandler>
  void async_read_some(const MutableBufferSequence& buffers, ReadHandler&& handler) {
    if (tls_) {
      tls_->async_read_some(buffers, std::forward<ReadHandler>(handler));
    } else {
      socket_.async_read_some(buffers, std::forward<ReadHandler>(handler));
    }
  }

  template <typename ConstBufferSequence, typename WriteHandler>
  void async_write_some(const ConstBufferSequence& buffers, WriteHandler&& handler) {
    if (tls_) {
      tls_->async_write_some(buffers, std::forward<WriteHandler>(handler));
    } else {
      socket_.async_write_some(buffers, std::forward<WriteHandler>(handler));
    }
  }

 private:
  tcp::socket socket_;
  std::unique_ptr<tls_stream_type> tls_;  // refers to socket_
};

}  // namespace splitinfer

#include "edge_server/admin_http.h"

#include <optional>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "common/log.h"
#include "edge_server/metrics.h"

namespace splitinfer {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

}  // namespace

class AdminHttpServer::Impl {
 public:
  Impl(AdminHttpOptions o, AdminHandlers h)
      : options(std::move(o)), handlers(std::move(h)), acceptor(io) {}

  void DoAccept();

  const AdminHttpOptions options;
  const AdminHandlers handlers;
  // Before io: sessions destroyed with io's pending handlers decrement it.
  std::atomic<uint32_t> live{0};  // admin connections open now
  asio::io_context io;
  tcp::acceptor acceptor;
  std::thread thread;
  bool started = false;
  bool stopped = false;
};

namespace {

// One admin connection: read one request (bounded, with a deadline), answer, close.
class AdminSession : public std::enable_shared_from_this<AdminSession> {
 public:
  AdminSession(tcp::socket socket, AdminHttpServer::Impl* server)
      : stream_(std::move(socket)), server_(server) {
    server_->live++;
    parser_.emplace();
    parser_->header_limit(server_->options.header_limit);
    parser_->body_limit(server_->options.body_limit);
  }
  ~AdminSession() { server_->live--; }

  void Start() {
    stream_.expires_after(server_->options.read_timeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

 private:
  void OnRead(beast::error_code ec) {
    if (ec == http::error::header_limit) {
      return Respond(http::status::request_header_fields_too_large, "request header too large\n");
    }
    if (ec == http::error::body_limit) {
      return Respond(http::status::payload_too_large, "request body too large\n");
    }
    if (ec) {
      // Timeout, peer gone, or not HTTP: nothing useful to answer.
      if (ec != http::error::end_of_stream && ec != beast::error::timeout) {
        return Respond(http::status::bad_request, "bad request: " + ec.message() + "\n");
      }
      return Close();
    }
    const auto& req = parser_->get();
    if (req.method() != http::verb::get) {
      return Respond(http::status::method_not_allowed, "only GET is served\n");
    }
    std::string target(req.target());
    if (auto q = target.find('?'); q != std::string::npos) target.resize(q);
    if (target == "/healthz") return Respond(http::status::ok, "ok\n");
    if (target == "/readyz") {
      const std::string reason =
          server_->handlers.not_ready_reason ? server_->handlers.not_ready_reason() : "";
      if (reason.empty()) return Respond(http::status::ok, "ready\n");
      return Respond(http::status::service_unavailable, reason + "\n");
    }
    if (target == "/metrics") {
      return Respond(http::status::ok,
                     server_->handlers.metrics_text ? server_->handlers.metrics_text() : "",
                     kPrometheusContentType);
    }
    Respond(http::status::not_found, "not found: " + target + "\n");
  }

  void Respond(http::status status, std::string body,
               const char* content_type = "text/plain; charset=utf-8") {
    response_.result(status);
    response_.version(11);
    response_.set(http::field::server, "splitinfer-edge-admin");
    response_.set(http::field::content_type, content_type);
    response_.set(http::field::connection, "close");
    if (status == http::status::method_not_allowed) response_.set(http::field::allow, "GET");
    response_.body() = std::move(body);
    response_.prepare_payload();
    stream_.expires_after(server_->options.write_timeout);
    http::async_write(stream_, response_,
                      [self = shared_from_this()](beast::error_code, size_t) { self->Close(); });
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  AdminHttpServer::Impl* const server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
};

}  // namespace

void AdminHttpServer::Impl::DoAccept() {
  acceptor.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (ec) {
      log::Warn("admin: accept failed: " + ec.message());
    } else if (live.load() >= options.max_connections) {
      // Over the cap: close without reading, so a flood of admin connections costs nothing.
      boost::system::error_code ignored;
      socket.close(ignored);
    } else {
      std::make_shared<AdminSession>(std::move(socket), this)->Start();
    }
    DoAccept();
  });
}

bool AdminHttpOptions::IsValid(std::string* error) const {
  if (max_connections < 1) {
    *error = "admin max_connections must be >= 1";
    return false;
  }
  if (header_limit < 256 || body_limit < 1) {
    *error = "admin header_limit must be >= 256 and body_limit >= 1";
    return false;
  }
  if (read_timeout.count() <= 0 || write_timeout.count() <= 0) {
    *error = "admin timeouts must be positive";
    return false;
  }
  return true;
}

AdminHttpServer::AdminHttpServer(AdminHttpOptions options, AdminHandlers handlers)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handlers))) {}

AdminHttpServer::~AdminHttpServer() { Stop(); }

Status AdminHttpServer::Start() {
  Impl& s = *impl_;
  std::string error;
  if (!s.options.IsValid(&error)) return InvalidArgumentError(error);
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(s.options.host, ec);
  if (ec) return InvalidArgumentError("bad admin listen address '" + s.options.host + "'");
  tcp::endpoint ep(addr, s.options.port);
  s.acceptor.open(ep.protocol(), ec);
  if (!ec) s.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(ep, ec);
  if (!ec) s.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return UnavailableError("cannot listen (admin) on " + s.options.host + ":" +
                            std::to_string(s.options.port) + ": " + ec.message());
  }
  port_ = s.acceptor.local_endpoint().port();
  s.DoAccept();
  s.started = true;
  s.thread = std::thread([&s] { s.io.run(); });
  return Status::Ok();
}

void AdminHttpServer::Stop() {
  Impl& s = *impl_;
  if (!s.started || s.stopped) return;
  s.stopped = true;
  s.io.stop();  // sessions in progress are dropped with the io_context
  if (s.thread.joinable()) s.thread.join();
}

}  // namespace splitinfer

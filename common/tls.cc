#include "common/tls.h"

#include <openssl/err.h>

namespace splitinfer {
namespace {

constexpr auto kTlsOptions = ssl::context::default_workarounds | ssl::context::no_sslv2 |
                             ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                             ssl::context::no_tlsv1_1 | ssl::context::single_dh_use;

}  // namespace

std::string TlsErrorText(const boost::system::error_code& ec) {
  if (ec.category() == asio::error::get_ssl_category()) {
    const char* reason = ERR_reason_error_string(static_cast<unsigned long>(ec.value()));
    if (reason != nullptr) return reason;
  }
  if (ec == ssl::error::stream_truncated) return "the peer closed the connection mid-handshake";
  return ec.message();
}

Result<std::shared_ptr<ssl::context>> MakeServerTlsContext(const std::string& cert_file,
                                                           const std::string& key_file) {
  if (cert_file.empty() || key_file.empty()) {
    return InvalidArgumentError("TLS needs both a certificate file and a key file");
  }
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  boost::system::error_code ec;
  ctx->set_options(kTlsOptions, ec);
  if (!ec) ctx->use_certificate_chain_file(cert_file, ec);
  if (ec) {
    return InvalidArgumentError("TLS certificate '" + cert_file + "': " + TlsErrorText(ec));
  }
  ctx->use_private_key_file(key_file, ssl::context::pem, ec);
  if (ec) return InvalidArgumentError("TLS key '" + key_file + "': " + TlsErrorText(ec));
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    ERR_clear_error();
    return InvalidArgumentError("TLS key '" + key_file + "' does not match the certificate '" +
                                cert_file + "'");
  }
  return ctx;
}

Result<std::shared_ptr<ssl::context>> MakeClientTlsContext(const std::string& ca_file) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  boost::system::error_code ec;
  ctx->set_options(kTlsOptions, ec);
  if (!ec) ctx->set_verify_mode(ssl::verify_peer, ec);
  if (!ec) {
    if (ca_file.empty()) {
      ctx->set_default_verify_paths(ec);
    } else {
      ctx->load_verify_file(ca_file, ec);
    }
  }
  if (ec) {
    return InvalidArgumentError("TLS CA file '" + (ca_file.empty() ? "(system)" : ca_file) +
                                "': " + TlsErrorText(ec));
  }
  return ctx;
}

}  // namespace splitinfer

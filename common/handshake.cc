#include "common/handshake.h"

#include <fstream>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "common/bounded_file.h"
#include "common/frame.h"

namespace splitinfer {

bool SecretEquals(const std::string& a, const std::string& b) {
  unsigned char da[SHA256_DIGEST_LENGTH];
  unsigned char db[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(a.data()), a.size(), da);
  SHA256(reinterpret_cast<const unsigned char*>(b.data()), b.size(), db);
  return CRYPTO_memcmp(da, db, sizeof(da)) == 0;
}

Result<std::string> ReadSecretFile(const std::string& path) {
  Result<std::string> file = ReadBoundedFile(path, 4096, "token file");
  if (!file.ok()) {
    if (file.status().code() == StatusCode::kResourceExhausted) {
      return InvalidArgumentError("token file '" + path + "' is over 4 KiB");
    }
    return InvalidArgumentError("cannot read the token file: " + file.status().message());
  }
  std::string text = file->substr(0, file->find('\n'));
  const char* ws = " \t\r\n";
  const size_t b = text.find_first_not_of(ws);
  if (b == std::string::npos) return InvalidArgumentError("token file '" + path + "' is empty");
  return text.substr(b, text.find_last_not_of(ws) - b + 1);
}

bool CheckHello(const wire::Hello& hello, const HandshakePolicy& policy, wire::HelloReply* reply) {
  if (hello.protocol_version() != kProtocolVersion) {
    reply->set_code(wire::FAILED_PRECONDITION);
    reply->set_message("protocol version mismatch: client speaks " +
                       std::to_string(hello.protocol_version()) + ", server speaks " +
                       std::to_string(kProtocolVersion));
    return false;
  }
  if (!policy.auth_token.empty()) {
    if (hello.auth_token().empty()) {
      reply->set_code(wire::UNAUTHENTICATED);
      reply->set_message("this server requires an auth token (device_client --auth-token-file)");
      return false;
    }
    if (!SecretEquals(hello.auth_token(), policy.auth_token)) {
      reply->set_code(wire::UNAUTHENTICATED);
      reply->set_message("wrong auth token");
      return false;
    }
  }
  reply->set_code(wire::OK);
  reply->clear_message();
  return true;
}

}  // namespace splitinfer

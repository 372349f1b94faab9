// The edge server's verdict on a device's Hello, shared by edge_server (Session::OnHello) and
// the libFuzzer target tests/fuzz/fuzz_handshake.cc, so the fuzzer exercises the real check.
//
// Order: the protocol version first (a client of another version cannot be talked to at all),
// then the auth token. A refusal is answered with a HelloReply carrying the code and a message
// and no model list, and the server closes the connection: nothing else is read from it.
#pragma once

#include <string>

#include "common/status.h"
#include "splitinfer.pb.h"

namespace splitinfer {

struct HandshakePolicy {
  // The shared secret every Hello must carry (edge_server --auth-token-file). Empty: none.
  std::string auth_token;
};

// Fills reply->code() and reply->message(): OK; FAILED_PRECONDITION on a protocol version
// mismatch (both versions named); UNAUTHENTICATED when the token is missing or wrong (the
// message never echoes what was sent). Returns reply->code() == OK.
bool CheckHello(const wire::Hello& hello, const HandshakePolicy& policy, wire::HelloReply* reply);

// Equality of two secrets in time that depends on neither their contents nor where they differ
// (SHA-256 of both, compared with CRYPTO_memcmp), so a client cannot find the token byte by byte
// from reply times.
bool SecretEquals(const std::string& a, const std::string& b);

// Reads a secret from a file (--auth-token-file): its first line, without surrounding
// whitespace. A file keeps the token out of the command line, which other users can see in ps.
// kInvalidArgument naming the file when it cannot be read, is empty, or is over 4 KiB.
Result<std::string> ReadSecretFile(const std::string& path);

}  // namespace splitinfer

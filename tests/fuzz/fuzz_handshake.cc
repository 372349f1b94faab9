// libFuzzer target: the first frame the edge server reads on a new connection (issue 8).
//
// The handshake lives in edge_server.cc's Session::OnHeader/OnHello, whose I/O cannot run
// without a socket; this target replays its pure steps, in its order, over the same functions:
//   DecodeHeader (default FrameLimits; the server closes the connection on an error)
//   -> a first frame other than Hello is refused (the server: "... before the Hello handshake")
//   -> a Hello with a body is refused -> ParseMeta(Hello) -> CheckHello (common/handshake.h, the
//      very function OnHello calls): protocol version, then the auth token
// and then checks the reply the server would send: MakeFrame(HelloReply) must decode on the
// device side (DecodeHeader + ParseMeta) to the same code and message; a refusal names no model
// and never echoes the token sent; OK only with the right token. The server here requires the
// token kToken, which is in the seed corpus, so both outcomes are reached.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include <google/protobuf/stubs/logging.h>

#include "common/frame.h"
#include "common/handshake.h"
#include "common/status.h"
#include "splitinfer.pb.h"

namespace splitinfer {
namespace {

constexpr char kToken[] = "fuzz-token";

void Check(bool cond) {
  if (!cond) std::abort();
}

// What the server answers to a well-framed Hello (OnHello), or a Status when it drops the
// connection instead.
Result<wire::HelloReply> Handshake(const uint8_t* data, size_t size) {
  FrameLimits limits;
  Result<FrameHeader> header = DecodeHeader(data, size, limits);
  if (!header.ok()) return header.status();
  if (header->type != MessageType::kHello) {
    return FailedPreconditionError(std::string(MessageTypeName(header->type)) +
                                   " before the Hello handshake");
  }
  if (header->body_len != 0) return InvalidArgumentError("Hello with a body");
  const size_t rest = size - kFrameHeaderSize;
  if (header->meta_len > rest) return DeadlineExceededError("truncated Hello");
  wire::Hello hello;
  SPLITINFER_RETURN_IF_ERROR(ParseMeta(data + kFrameHeaderSize, header->meta_len, &hello));
  wire::HelloReply reply;
  reply.set_protocol_version(kProtocolVersion);
  reply.set_server_name("fuzz");
  reply.set_max_body_bytes(limits.max_body_bytes);
  HandshakePolicy policy;
  policy.auth_token = kToken;
  const bool ok = CheckHello(hello, policy, &reply);
  Check(ok == (reply.code() == wire::OK));
  Check(ok == (hello.protocol_version() == kProtocolVersion && hello.auth_token() == kToken));
  if (!ok) {
    Check(!reply.message().empty());
    Check(reply.models_size() == 0);
    // A token refusal is one of two fixed messages: it never echoes what was sent.
    if (reply.code() == wire::UNAUTHENTICATED) {
      Check(reply.message() == "wrong auth token" ||
            reply.message().rfind("this server requires an auth token", 0) == 0);
    }
  }
  return reply;
}

void FuzzHandshake(const uint8_t* data, size_t size) {
  Result<wire::HelloReply> reply = Handshake(data, size);
  if (!reply.ok()) {
    Check(!reply.status().message().empty());
    return;
  }
  // The device reads the reply with its own limits.
  const OutgoingFrame frame = MakeFrame(MessageType::kHelloReply, *reply);
  Result<FrameHeader> h = DecodeHeader(frame.header.data(), frame.header.size(), FrameLimits());
  Check(h.ok());
  Check(h->type == MessageType::kHelloReply && h->body_len == 0);
  Check(h->meta_len == frame.meta.size());
  wire::HelloReply got;
  Check(ParseMeta(frame.meta, &got).ok());
  Check(got.code() == reply->code() && got.message() == reply->message());
}

}  // namespace
}  // namespace splitinfer

// Protobuf logs every string field that is not UTF-8 to stderr: noise at 10^5 inputs a second.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  splitinfer::FuzzHandshake(data, size);
  return 0;
}

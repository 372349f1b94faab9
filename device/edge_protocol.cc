#include "device/edge_protocol.h"

#include "common/frame_io.h"

namespace splitinfer {

namespace {

// An ErrorReply frame as a status: the server's code and message after `what`.
Status FromErrorFrame(const std::string& meta, const std::string& what) {
  wire::ErrorReply err;
  Status st = ParseMeta(meta, &err);
  if (!st.ok()) return st;
  return Status(FromWireCode(err.code()), what + err.message());
}

}  // namespace

wire::Hello MakeHello(const std::string& client_name, const std::string& auth_token) {
  wire::Hello hello;
  hello.set_protocol_version(kProtocolVersion);
  hello.set_client_name(client_name);
  hello.set_auth_token(auth_token);
  hello.set_accepts_go_away(true);
  return hello;
}

Result<wire::HelloReply> ParseHelloAnswer(const FrameHeader& header, const std::string& meta) {
  if (header.body_len != 0) return InvalidArgumentError("handshake: server reply carries a body");
  if (header.type == MessageType::kError) return FromErrorFrame(meta, "handshake refused: ");
  if (header.type != MessageType::kHelloReply) {
    return InvalidArgumentError(std::string("handshake: expected HelloReply, got ") +
                                MessageTypeName(header.type));
  }
  wire::HelloReply reply;
  SPLITINFER_RETURN_IF_ERROR(ParseMeta(meta, &reply));
  if (reply.code() != wire::OK) {
    return Status(FromWireCode(reply.code()), "handshake refused: " + reply.message());
  }
  return reply;
}

Result<wire::InferReply> ParseInferAnswer(const FrameHeader& header, const std::string& meta,
                                          const FrameLimits& limits) {
  if (header.type == MessageType::kError)
    return FromErrorFrame(meta, "server closed the connection: ");
  if (header.type != MessageType::kInferReply) {
    return InvalidArgumentError(std::string("expected InferReply, got ") +
                                MessageTypeName(header.type));
  }
  wire::InferReply reply;
  SPLITINFER_RETURN_IF_ERROR(ParseMeta(meta, &reply));
  if (reply.code() != wire::OK) {
    if (header.body_len != 0) return InvalidArgumentError("error reply with a body");
    return reply;
  }
  SPLITINFER_RETURN_IF_ERROR(
      ValidateTensorMeta(reply.tensor(), header.body_len, limits).WithPrefix("reply tensor: "));
  return reply;
}

}  // namespace splitinfer

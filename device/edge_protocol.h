// The device's half of the wire protocol (docs/protocol.md), shared by the blocking EdgeClient
// (device/edge_client.h) and the asynchronous AsyncEdgeConnection (device/async_edge_client.h):
// one place builds the Hello and decides what a valid answer to it, and to a request, is.
#pragma once

#include <string>

#include "common/frame.h"
#include "common/status.h"
#include "splitinfer.pb.h"

namespace splitinfer {

// The Hello a device opens with (this protocol version; it accepts GoAway frames).
wire::Hello MakeHello(const std::string& client_name, const std::string& auth_token = "");

// The answer to a Hello, from its header and metadata: the server's HelloReply when it accepts.
// Otherwise the server's code for a refusal (an ErrorReply, or a HelloReply whose code is not
// OK: "handshake refused: ..."), kInvalidArgument for a protocol error (another frame type, a
// body, metadata that does not parse).
Result<wire::HelloReply> ParseHelloAnswer(const FrameHeader& header, const std::string& meta);

// An answer to requests, from its header and metadata (the body not read yet): the InferReply,
// with its tensor metadata checked against the body length and `limits` when its code is OK (an
// error reply must have no body). The ErrorReply that closes a connection gives its code
// ("server closed the connection: ..."); another frame type or bad metadata kInvalidArgument.
// GoAway frames are the caller's to handle before.
Result<wire::InferReply> ParseInferAnswer(const FrameHeader& header, const std::string& meta,
                                          const FrameLimits& limits);

}  // namespace splitinfer

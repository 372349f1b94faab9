// EdgeClient: the device's connection to an edge_server.
//
// Synchronous, with a deadline on every operation (connect, write, read). Several requests may
// be in flight: SendRequest() any number (up to the server's max_in_flight), then ReadReply()
// returns replies in the order they arrive, each carrying its request id.
// Not thread-safe: one thread owns an EdgeClient.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include <ATen/ATen.h>

#include "common/codec.h"
#include "common/frame_io.h"
#include "common/status.h"
#include "splitinfer.pb.h"

namespace splitinfer {

struct EdgeClientOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds io_timeout{30000};  // one frame write, or waiting for one reply
  FrameLimits limits;                           // applied to replies
  std::string client_name = "device_client";
  WritePacer* uplink_pacer = nullptr;  // not owned; paces request frames (not the handshake)
};

// One reply. `status` is the server's verdict on the request; output is set when it is ok.
struct InferResult {
  uint64_t request_id = 0;
  Status status;
  at::Tensor output;
  uint32_t model_version = 0;
  uint64_t edge_compute_us = 0;
  uint64_t queue_us = 0;
  uint64_t decode_us = 0;   // the edge's time decoding an encoded request tensor
  uint32_t batch_size = 0;  // requests the edge ran in one batch with this one (0: not reported)
};

class EdgeClient {
 public:
  explicit EdgeClient(EdgeClientOptions options) : options_(std::move(options)) {}

  // TCP connect and the Hello handshake. kFailedPrecondition on a protocol version mismatch,
  // kUnavailable when nobody listens, kDeadlineExceeded on a timeout.
  Status Connect();
  bool connected() const { return conn_.is_open() && handshake_done_; }
  const wire::HelloReply& server_info() const { return server_info_; }

  // Sends `input` as the tensor at `request.boundary()` (fills request.tensor). The tensor is
  // written from its own storage (made contiguous on the CPU first if it is not).
  Status SendRequest(wire::InferRequest request, const at::Tensor& input);
  // Sends an encoded tensor (common/codec.h) as the tensor at `request.boundary()`; the body is
  // written from `encoded.body`'s storage. kResourceExhausted when the body or the decoded
  // tensor exceeds the server's body limit (the server holds both to it).
  Status SendRequest(wire::InferRequest request, const Encoded& encoded);

  // Waits for the next reply. A non-ok Result means the connection failed (and is closed); a
  // server-side refusal of one request comes back as an ok Result whose status is not ok.
  // An encoded reply tensor is decoded (the server sends raw ones today).
  Result<InferResult> ReadReply();

  // Placement (issue 7): one planning round. A refusal (unknown model, no repository, a bad
  // request) comes back as a reply whose code is not OK; a non-ok Result means the connection
  // failed. On OK the body, the version's manifest.json (at most kMaxManifestBytes), goes to
  // *manifest_json. No inference may be in flight on this connection.
  static constexpr uint64_t kMaxManifestBytes = 4u << 20;
  Result<wire::PlacementReply> Plan(const wire::PlacementRequest& request,
                                    std::string* manifest_json);
  // Sends one FetchRequest and hands every FetchChunk to `on_chunk` (its body at most
  // `max_chunk_bytes`) until the server marks one `last`. A chunk with a code other than OK ends
  // the fetch with that status; so does an error from on_chunk (the connection is then closed,
  // since the rest of the stream would still arrive). Every read has the io_timeout.
  using ChunkHandler =
      std::function<Status(const wire::FetchChunk& chunk, const uint8_t* data, size_t size)>;
  Status Fetch(const wire::FetchRequest& request, uint64_t max_chunk_bytes,
               const ChunkHandler& on_chunk);

  void Close();

 private:
  // Reads one frame of `type` (header and metadata into *meta); an ErrorReply or another type
  // closes the connection and fails.
  Status ReadFrameOf(MessageType type, FrameHeader* header, std::string* meta);

  EdgeClientOptions options_;
  BlockingConnection conn_;
  wire::HelloReply server_info_;
  bool handshake_done_ = false;
};

}  // namespace splitinfer

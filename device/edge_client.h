// EdgeClient: the device's connection to an edge_server.
//
// Synchronous, with a deadline on every operation (connect, write, read). Several requests may
// be in flight: SendRequest() any number (up to the server's max_in_flight), then ReadReply()
// returns replies in the order they arrive, each carrying its request id.
// Not thread-safe: one thread owns an EdgeClient.
//
// Failover (issue 8): with `fallbacks`, Connect() tries every edge server in order of health: the
// ones that have not failed lately in the order given (host:port first), then the others by how
// soon their back-off ends. A failed connect or handshake, or MarkUnhealthy(), puts an address
// in back-off (failover_backoff, doubled per failure in a row, at most 30 s).
// TLS and the auth token (issue 8): `tls` wraps the connection in TLS 1.2+ verifying the
// server's certificate against tls_ca_file for tls_server_name (default: the host); the Hello
// carries `auth_token` when the server requires one (refusal: kUnauthenticated).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "common/codec.h"
#include "common/frame_io.h"
#include "common/status.h"
#include "splitinfer.pb.h"

namespace splitinfer {

struct EdgeAddress {
  std::string host;
  uint16_t port = 0;
  std::string ToString() const { return host + ":" + std::to_string(port); }
};

// Parses "HOST:PORT[,HOST:PORT...]" (device_client --server). kInvalidArgument on a bad entry.
Status ParseEdgeAddresses(const std::string& list, std::vector<EdgeAddress>* out);

struct EdgeClientOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::vector<EdgeAddress> fallbacks;  // tried after host:port, by health (see above)
  std::chrono::milliseconds failover_backoff{1000};
  bool tls = false;
  std::string tls_ca_file;      // PEM; empty: the system's trust store
  std::string tls_server_name;  // the name the certificate must carry; empty: the host
  std::string auth_token;       // sent in the Hello; empty: none
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
  // Requests with exit thresholds: the exit whose logits `output` holds (exit_after_unit = the
  // unit it sits after); 0 / 0 otherwise.
  uint32_t exit_index = 0;
  uint32_t exit_after_unit = 0;
};

class EdgeClient {
 public:
  explicit EdgeClient(EdgeClientOptions options);

  // TCP connect (and TLS) and the Hello handshake, to the healthiest address (see above).
  // kFailedPrecondition on a protocol version mismatch, kUnauthenticated on a refused token,
  // kUnavailable when nobody listens, kDeadlineExceeded on a timeout: with several addresses,
  // the error of the last one tried, prefixed with every address tried.
  Status Connect();
  bool connected() const { return conn_.is_open() && handshake_done_; }
  // Whether a new request may go on this connection: connected, no GoAway received, and, when
  // nothing is outstanding, the edge has not closed its side meanwhile (it evicts idle
  // connections when full, and half-closes them when it drains). When false, read the replies
  // still due (ReadReply), Close() and Connect() again.
  bool Reusable();
  // The edge sent a GoAway on this connection (it drains, or evicted it): send nothing new here.
  bool going_away() const { return going_away_; }
  // A reply (or a GoAway) is ready to read without waiting (plain TCP; always false over TLS
  // unless already buffered). Reading it early lets the device see a GoAway before it sends.
  bool ReplyReady() { return connected() && outstanding_ > 0 && conn_.HasInput(); }
  const std::string& go_away_message() const { return go_away_message_; }
  // The address of the current (or last) connection.
  const EdgeAddress& address() const { return health_[current_].address; }
  // Puts the current address in back-off (e.g. it answered "draining"); the caller closes the
  // connection when it is done with it, and the next Connect() prefers another address.
  void MarkUnhealthy();
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
  // A GoAway on the way is noted (going_away(); a draining edge is marked unhealthy) and the
  // next frame read. After a failed SendRequest the replies already on their way can still be
  // read (the read side stays open until a read fails).
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

  // One address: TCP (+ TLS) and the handshake.
  Status ConnectTo(const EdgeAddress& address);

  struct Health {
    EdgeAddress address;
    int failures = 0;  // in a row
    std::chrono::steady_clock::time_point retry_at{};
  };
  void Failed(size_t i);
  void OnGoAway(const wire::GoAway& g);

  EdgeClientOptions options_;
  std::vector<Health> health_;  // host:port, then the fallbacks
  size_t current_ = 0;
  std::shared_ptr<ssl::context> tls_context_;  // made on the first TLS connect
  BlockingConnection conn_;
  wire::HelloReply server_info_;
  bool handshake_done_ = false;
  bool going_away_ = false;
  std::string go_away_message_;
  uint32_t outstanding_ = 0;  // requests sent on this connection, reply not yet read
};

}  // namespace splitinfer

#include "device/edge_client.h"

#include "device/edge_protocol.h"

#include <algorithm>

#include "common/tensor_wire.h"

namespace splitinfer {

Status ParseEdgeAddresses(const std::string& list, std::vector<EdgeAddress>* out) {
  out->clear();
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = std::min(list.find(',', start), list.size());
    EdgeAddress a;
    SPLITINFER_RETURN_IF_ERROR(ParseHostPort(list.substr(start, comma - start), &a.host, &a.port));
    out->push_back(std::move(a));
    start = comma + 1;
  }
  if (out->size() > 64) return InvalidArgumentError("at most 64 edge servers");
  return Status::Ok();
}

EdgeClient::EdgeClient(EdgeClientOptions options) : options_(std::move(options)) {
  health_.push_back(Health{EdgeAddress{options_.host, options_.port}});
  for (const auto& a : options_.fallbacks) health_.push_back(Health{a});
}

void EdgeClient::Failed(size_t i) {
  Health& h = health_[i];
  h.failures = std::min(h.failures + 1, 16);
  auto backoff = options_.failover_backoff * (1 << std::min(h.failures - 1, 5));
  backoff = std::min<std::chrono::milliseconds>(backoff, std::chrono::seconds(30));
  h.retry_at = std::chrono::steady_clock::now() + backoff;
}

void EdgeClient::MarkUnhealthy() { Failed(current_); }

Status EdgeClient::Connect() {
  handshake_done_ = false;
  if (options_.tls && !tls_context_) {
    auto ctx = MakeClientTlsContext(options_.tls_ca_file);
    if (!ctx.ok()) return ctx.status();
    tls_context_ = std::move(*ctx);
  }
  if (health_.size() == 1) {  // no failover: the error as it is
    Status st = ConnectTo(health_[0].address);
    if (st.ok()) health_[0].failures = 0;
    return st;
  }
  // Healthy addresses in the order given, then the others by the end of their back-off.
  const auto now = std::chrono::steady_clock::now();
  std::vector<size_t> order(health_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const bool ra = health_[a].retry_at <= now;
    const bool rb = health_[b].retry_at <= now;
    if (ra != rb) return ra;
    return !ra && health_[a].retry_at < health_[b].retry_at;
  });
  std::string tried;
  Status last;
  for (size_t i : order) {
    current_ = i;
    last = ConnectTo(health_[i].address);
    if (last.ok()) {
      health_[i].failures = 0;
      health_[i].retry_at = {};
      return last;
    }
    Failed(i);
    tried += (tried.empty() ? "" : "; ") + health_[i].address.ToString() + ": " + last.ToString();
  }
  return Status(last.code(), "no edge server reachable (" + tried + ")");
}

Status EdgeClient::ConnectTo(const EdgeAddress& address) {
  handshake_done_ = false;
  SPLITINFER_RETURN_IF_ERROR(conn_.Connect(address.host, address.port, options_.connect_timeout,
                                           tls_context_.get(), options_.tls_server_name));
  SPLITINFER_RETURN_IF_ERROR(conn_.WriteFrame(
      MakeFrame(MessageType::kHello, MakeHello(options_.client_name, options_.auth_token)),
      options_.io_timeout));
  FrameHeader header;
  std::string meta;
  Status read = conn_.ReadHeaderAndMeta(options_.limits, options_.connect_timeout, &header, &meta);
  if (!read.ok()) {
    conn_.Close();
    // A TLS server fails its TLS handshake on a plaintext Hello and closes without a word.
    if (!options_.tls && read.code() == StatusCode::kUnavailable) {
      return UnavailableError("handshake with " + address.ToString() +
                              ": the server closed the connection without answering the Hello (" +
                              read.message() +
                              "); does it require TLS? then connect with --tls (and --tls-ca)");
    }
    return read.WithPrefix("handshake: ");
  }
  Result<wire::HelloReply> answer = ParseHelloAnswer(header, meta);
  if (!answer.ok()) {
    conn_.Close();
    return answer.status();
  }
  server_info_ = std::move(*answer);
  handshake_done_ = true;
  going_away_ = false;
  go_away_message_.clear();
  outstanding_ = 0;
  return Status::Ok();
}

bool EdgeClient::Reusable() {
  if (!connected() || going_away_) return false;
  if (outstanding_ == 0 && conn_.PeerHungUp()) return false;  // evicted or drained while idle
  return true;
}

Status EdgeClient::SendRequest(wire::InferRequest request, const at::Tensor& input) {
  if (!connected()) return UnavailableError("not connected to the edge server");
  SPLITINFER_RETURN_IF_ERROR(FillTensorMeta(input, request.mutable_tensor()));
  const uint64_t bytes = input.nbytes();
  if (server_info_.max_body_bytes() && bytes > server_info_.max_body_bytes()) {
    return ResourceExhaustedError("tensor of " + std::to_string(bytes) +
                                  " bytes exceeds the server's limit of " +
                                  std::to_string(server_info_.max_body_bytes()));
  }
  Status st = conn_.WriteFrame(MakeTensorFrame(MessageType::kInferRequest, request, input),
                               options_.io_timeout, options_.uplink_pacer);
  if (st.ok()) ++outstanding_;
  return st;
}

Status EdgeClient::SendRequest(wire::InferRequest request, const Encoded& encoded) {
  if (!connected()) return UnavailableError("not connected to the edge server");
  *request.mutable_tensor() = encoded.meta;
  uint64_t decoded = DTypeSize(encoded.meta.dtype());
  for (int64_t d : encoded.meta.shape()) decoded *= static_cast<uint64_t>(d);
  const uint64_t limit = server_info_.max_body_bytes();
  if (limit && std::max<uint64_t>(encoded.body_bytes(), decoded) > limit) {
    return ResourceExhaustedError(
        "tensor of " + std::to_string(decoded) + " bytes (" + std::to_string(encoded.body_bytes()) +
        " encoded) exceeds the server's limit of " + std::to_string(limit));
  }
  Status st = conn_.WriteFrame(MakeTensorFrame(MessageType::kInferRequest, request, encoded.body),
                               options_.io_timeout, options_.uplink_pacer);
  if (st.ok()) ++outstanding_;
  return st;
}

Result<InferResult> EdgeClient::ReadReply() {
  if (!connected()) return UnavailableError("not connected to the edge server");
  FrameHeader header;
  std::string meta;
  Status st = conn_.ReadHeaderAndMeta(options_.limits, options_.io_timeout, &header, &meta);
  // GoAway: the edge takes nothing new here but still answers what it has; note it and read on.
  while (st.ok() && header.type == MessageType::kGoAway) {
    wire::GoAway g;
    st = header.body_len != 0 ? InvalidArgumentError("GoAway with a body") : ParseMeta(meta, &g);
    if (!st.ok()) break;
    OnGoAway(g);
    st = conn_.ReadHeaderAndMeta(options_.limits, options_.io_timeout, &header, &meta);
  }
  if (!st.ok()) {
    conn_.Close();
    if (going_away_) return st.WithPrefix("after GoAway (" + go_away_message_ + "): ");
    return st;
  }
  Result<wire::InferReply> answer = ParseInferAnswer(header, meta, options_.limits);
  if (!answer.ok()) {
    conn_.Close();
    return answer.status();
  }
  const wire::InferReply& reply = *answer;
  if (outstanding_ > 0) --outstanding_;
  InferResult result;
  result.request_id = reply.request_id();
  result.model_version = reply.model_version();
  result.edge_compute_us = reply.edge_compute_us();
  result.queue_us = reply.queue_us();
  result.decode_us = reply.decode_us();
  result.batch_size = reply.batch_size();
  result.exit_index = reply.exit_index();
  result.exit_after_unit = reply.exit_after_unit();
  if (reply.code() != wire::OK) {
    result.status = Status(FromWireCode(reply.code()), reply.message());
    return result;
  }
  const bool raw = IsRawTensorBody(reply.tensor());
  Result<at::Tensor> out =
      raw ? AllocateForMeta(reply.tensor())
          : Result<at::Tensor>(at::empty({static_cast<int64_t>(header.body_len)},
                                         at::TensorOptions().dtype(at::kByte)));
  if (!out.ok()) {
    conn_.Close();
    return out.status();
  }
  st = conn_.ReadExact(out->data_ptr(), out->nbytes(), options_.io_timeout);
  if (!st.ok()) {
    conn_.Close();
    return st;
  }
  if (!raw) {
    auto decoded = Decode(reply.tensor(), out->data_ptr<uint8_t>(), out->nbytes(), options_.limits);
    if (!decoded.ok()) {
      conn_.Close();
      return decoded.status().WithPrefix("reply tensor: ");
    }
    out = std::move(*decoded);
  }
  result.output = std::move(*out);
  return result;
}

Status EdgeClient::ReadFrameOf(MessageType type, FrameHeader* header, std::string* meta) {
  Status st = conn_.ReadHeaderAndMeta(options_.limits, options_.io_timeout, header, meta);
  if (!st.ok()) {
    Close();
    return st;
  }
  if (header->type == MessageType::kError) {
    wire::ErrorReply err;
    st = ParseMeta(*meta, &err);
    Close();
    if (!st.ok()) return st;
    return Status(FromWireCode(err.code()), "server closed the connection: " + err.message());
  }
  if (header->type != type) {
    Close();
    return InvalidArgumentError(std::string("expected ") + MessageTypeName(type) + ", got " +
                                MessageTypeName(header->type));
  }
  return Status::Ok();
}

Result<wire::PlacementReply> EdgeClient::Plan(const wire::PlacementRequest& request,
                                              std::string* manifest_json) {
  if (!connected()) return UnavailableError("not connected to the edge server");
  SPLITINFER_RETURN_IF_ERROR(
      conn_.WriteFrame(MakeFrame(MessageType::kPlacementRequest, request), options_.io_timeout));
  FrameHeader header;
  std::string meta;
  SPLITINFER_RETURN_IF_ERROR(ReadFrameOf(MessageType::kPlacementReply, &header, &meta));
  wire::PlacementReply reply;
  Status st = ParseMeta(meta, &reply);
  if (st.ok() && reply.code() != wire::OK && header.body_len != 0)
    st = InvalidArgumentError("placement refusal with a body");
  if (st.ok() && reply.code() == wire::OK &&
      (header.body_len == 0 || header.body_len > kMaxManifestBytes)) {
    st = ResourceExhaustedError("placement reply manifest of " + std::to_string(header.body_len) +
                                " bytes (limit " + std::to_string(kMaxManifestBytes) + ")");
  }
  if (!st.ok()) {
    Close();
    return st;
  }
  manifest_json->assign(static_cast<size_t>(header.body_len), '\0');
  if (header.body_len > 0) {
    st = conn_.ReadExact(manifest_json->data(), manifest_json->size(), options_.io_timeout);
    if (!st.ok()) {
      Close();
      return st;
    }
  }
  return reply;
}

Status EdgeClient::Fetch(const wire::FetchRequest& request, uint64_t max_chunk_bytes,
                         const ChunkHandler& on_chunk) {
  if (!connected()) return UnavailableError("not connected to the edge server");
  SPLITINFER_RETURN_IF_ERROR(
      conn_.WriteFrame(MakeFrame(MessageType::kFetchRequest, request), options_.io_timeout));
  std::vector<uint8_t> body;
  for (;;) {
    FrameHeader header;
    std::string meta;
    SPLITINFER_RETURN_IF_ERROR(ReadFrameOf(MessageType::kFetchChunk, &header, &meta));
    wire::FetchChunk chunk;
    Status st = ParseMeta(meta, &chunk);
    if (st.ok() && header.body_len > max_chunk_bytes) {
      st = ResourceExhaustedError("chunk of " + std::to_string(header.body_len) +
                                  " bytes exceeds the manifest's chunk size " +
                                  std::to_string(max_chunk_bytes));
    }
    if (st.ok() && chunk.code() != wire::OK && header.body_len != 0)
      st = InvalidArgumentError("fetch refusal with a body");
    if (!st.ok()) {
      Close();
      return st;
    }
    if (chunk.code() != wire::OK) {
      return Status(FromWireCode(chunk.code()), chunk.message());  // the stream ends here
    }
    body.resize(static_cast<size_t>(header.body_len));
    if (!body.empty()) {
      st = conn_.ReadExact(body.data(), body.size(), options_.io_timeout);
      if (!st.ok()) {
        Close();
        return st;
      }
    }
    st = on_chunk(chunk, body.data(), body.size());
    if (!st.ok()) {
      if (!chunk.last()) Close();  // the rest of the stream is still on its way
      return st;
    }
    if (chunk.last()) return Status::Ok();
  }
}

void EdgeClient::OnGoAway(const wire::GoAway& g) {
  going_away_ = true;
  go_away_message_ = g.message().empty() ? "the edge is going away" : g.message();
  // A draining edge is shutting down: prefer another one. An evicted idle connection says
  // nothing about the edge's health.
  if (g.reason() == wire::GoAway::DRAINING) MarkUnhealthy();
}

void EdgeClient::Close() {
  handshake_done_ = false;
  going_away_ = false;
  outstanding_ = 0;
  conn_.Close();
}

}  // namespace splitinfer

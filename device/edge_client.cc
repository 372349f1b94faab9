#include "device/edge_client.h"

#include <algorithm>

#include "common/tensor_wire.h"

namespace splitinfer {

Status EdgeClient::Connect() {
  handshake_done_ = false;
  SPLITINFER_RETURN_IF_ERROR(conn_.Connect(options_.host, options_.port, options_.connect_timeout));
  wire::Hello hello;
  hello.set_protocol_version(kProtocolVersion);
  hello.set_client_name(options_.client_name);
  SPLITINFER_RETURN_IF_ERROR(
      conn_.WriteFrame(MakeFrame(MessageType::kHello, hello), options_.io_timeout));
  FrameHeader header;
  std::string meta;
  SPLITINFER_RETURN_IF_ERROR(
      conn_.ReadHeaderAndMeta(options_.limits, options_.connect_timeout, &header, &meta)
          .WithPrefix("handshake: "));
  if (header.body_len != 0) {
    conn_.Close();
    return InvalidArgumentError("handshake: server reply carries a body");
  }
  if (header.type == MessageType::kError) {
    wire::ErrorReply err;
    Status st = ParseMeta(meta, &err);
    conn_.Close();
    if (!st.ok()) return st;
    return Status(FromWireCode(err.code()), "handshake refused: " + err.message());
  }
  if (header.type != MessageType::kHelloReply) {
    conn_.Close();
    return InvalidArgumentError(std::string("handshake: expected HelloReply, got ") +
                                MessageTypeName(header.type));
  }
  Status st = ParseMeta(meta, &server_info_);
  if (!st.ok()) {
    conn_.Close();
    return st;
  }
  if (server_info_.code() != wire::OK) {
    conn_.Close();
    return Status(FromWireCode(server_info_.code()),
                  "handshake refused: " + server_info_.message());
  }
  handshake_done_ = true;
  return Status::Ok();
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
  return conn_.WriteFrame(MakeTensorFrame(MessageType::kInferRequest, request, input),
                          options_.io_timeout, options_.uplink_pacer);
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
  return conn_.WriteFrame(MakeTensorFrame(MessageType::kInferRequest, request, encoded.body),
                          options_.io_timeout, options_.uplink_pacer);
}

Result<InferResult> EdgeClient::ReadReply() {
  if (!connected()) return UnavailableError("not connected to the edge server");
  FrameHeader header;
  std::string meta;
  Status st = conn_.ReadHeaderAndMeta(options_.limits, options_.io_timeout, &header, &meta);
  if (!st.ok()) {
    conn_.Close();
    return st;
  }
  if (header.type == MessageType::kError) {
    wire::ErrorReply err;
    st = ParseMeta(meta, &err);
    conn_.Close();
    if (!st.ok()) return st;
    return Status(FromWireCode(err.code()), "server closed the connection: " + err.message());
  }
  if (header.type != MessageType::kInferReply) {
    conn_.Close();
    return InvalidArgumentError(std::string("expected InferReply, got ") +
                                MessageTypeName(header.type));
  }
  wire::InferReply reply;
  st = ParseMeta(meta, &reply);
  if (!st.ok()) {
    conn_.Close();
    return st;
  }
  InferResult result;
  result.request_id = reply.request_id();
  result.model_version = reply.model_version();
  result.edge_compute_us = reply.edge_compute_us();
  result.queue_us = reply.queue_us();
  result.decode_us = reply.decode_us();
  if (reply.code() != wire::OK) {
    if (header.body_len != 0) {
      conn_.Close();
      return InvalidArgumentError("error reply with a body");
    }
    result.status = Status(FromWireCode(reply.code()), reply.message());
    return result;
  }
  st = ValidateTensorMeta(reply.tensor(), header.body_len, options_.limits);
  if (!st.ok()) {
    conn_.Close();
    return st.WithPrefix("reply tensor: ");
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

void EdgeClient::Close() {
  handshake_done_ = false;
  conn_.Close();
}

}  // namespace splitinfer

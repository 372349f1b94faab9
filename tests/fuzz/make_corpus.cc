// Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/{frame,handshake}/): small valid
// frames of every message type a peer sends, an InferRequest per codec, and a few broken frames.
// Run once after a wire format change; the seeds are committed (each is a few hundred bytes):
//   ninja -C build fuzz_make_corpus && build/bin/fuzz_make_corpus tests/fuzz/corpus
// The output is deterministic (no random tensor values).
#include <cstdio>
#include <fstream>
#include <string>

#include <ATen/ATen.h>

#include "common/codec.h"
#include "common/frame.h"
#include "splitinfer.pb.h"

namespace splitinfer {
namespace {

std::string Bytes(const OutgoingFrame& f) {
  std::string s(reinterpret_cast<const char*>(f.header.data()), f.header.size());
  s += f.meta;
  if (f.body_size > 0) s.append(static_cast<const char*>(f.body), f.body_size);
  return s;
}

void Write(const std::string& dir, const std::string& name, const std::string& bytes) {
  const std::string path = dir + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

std::string HelloFrame(uint32_t version, const std::string& name, const std::string& token = "") {
  wire::Hello hello;
  hello.set_protocol_version(version);
  hello.set_client_name(name);
  hello.set_auth_token(token);
  return Bytes(MakeFrame(MessageType::kHello, hello));
}

// A post-ReLU-like NCHW feature map: zeros and a spread of positive values.
at::Tensor FeatureMap() {
  at::Tensor t = at::arange(48, at::TensorOptions().dtype(at::kFloat)).reshape({1, 3, 4, 4});
  return at::relu(at::sin(t) * 3.0f);
}

std::string InferFrame(const std::string& codec) {
  auto spec = CodecSpec::Parse(codec);
  auto enc = Encode(FeatureMap(), *spec);
  if (!enc.ok()) {
    std::fprintf(stderr, "encode %s: %s\n", codec.c_str(), enc.status().ToString().c_str());
    std::exit(1);
  }
  wire::InferRequest req;
  req.set_request_id(7);
  req.set_model("resnet18");
  req.set_boundary(3);
  *req.mutable_tensor() = enc->meta;
  return Bytes(MakeFrame(MessageType::kInferRequest, req, enc->body_data(), enc->body_bytes()));
}

void WriteFrameCorpus(const std::string& dir) {
  Write(dir, "hello", HelloFrame(kProtocolVersion, "device-0"));
  for (const char* codec :
       {"fp32", "fp16", "int8", "int8c", "fp32+zstd", "fp16+zstd", "int8+zstd", "int8c+zstd"}) {
    std::string name = std::string("infer_") + codec;
    for (char& c : name) c = c == '+' ? '_' : c;
    Write(dir, name, InferFrame(codec));
  }
  wire::PlacementRequest place;
  place.set_model("resnet18");
  place.set_held_version(1);
  place.set_held_units(4);
  place.set_storage_budget_bytes(1 << 20);
  place.set_inferences_per_version(100);
  Write(dir, "placement", Bytes(MakeFrame(MessageType::kPlacementRequest, place)));
  wire::FetchRequest fetch;
  fetch.set_model("resnet18");
  fetch.set_version(2);
  fetch.set_unit(1);
  fetch.set_first_chunk(0);
  fetch.set_num_chunks(4);
  Write(dir, "fetch", Bytes(MakeFrame(MessageType::kFetchRequest, fetch)));
  wire::ErrorReply err;
  err.set_code(wire::INVALID_ARGUMENT);
  err.set_message("bad frame");
  Write(dir, "error", Bytes(MakeFrame(MessageType::kError, err)));

  // Broken frames.
  std::string s = InferFrame("int8c+zstd");
  s[s.size() - 2] ^= 0x5a;  // the zstd frame's checksum no longer matches
  Write(dir, "broken_zstd_body", s);
  s = InferFrame("fp32");
  Write(dir, "broken_truncated_body", s.substr(0, s.size() - 5));
  s = InferFrame("int8");
  s[0] = 'X';
  Write(dir, "broken_magic", s);
  s = HelloFrame(kProtocolVersion, "device-0");
  Write(dir, "broken_truncated_header", s.substr(0, kFrameHeaderSize - 3));
  FrameHeader h;
  h.type = MessageType::kInferRequest;
  h.meta_len = 1u << 20;  // over max_meta_bytes
  HeaderBytes hb = EncodeHeader(h);
  Write(dir, "broken_meta_len", std::string(hb.begin(), hb.end()));
  // An int8c tensor whose metadata claims a huge shape with too few scales.
  wire::InferRequest req;
  req.set_request_id(1);
  req.mutable_tensor()->set_dtype(wire::FLOAT32);
  for (int64_t d : {1 << 20, 1 << 20, 3}) req.mutable_tensor()->add_shape(d);
  req.mutable_tensor()->set_codec(wire::CODEC_INT8_CHANNEL);
  req.mutable_tensor()->set_channel_axis(1);
  req.mutable_tensor()->add_scale(0.5f);
  req.mutable_tensor()->add_zero_point(3);
  Write(dir, "broken_int8c_shape", Bytes(MakeFrame(MessageType::kInferRequest, req, "abcd", 4)));
}

void WriteHandshakeCorpus(const std::string& dir) {
  Write(dir, "hello", HelloFrame(kProtocolVersion, "device-0"));
  Write(dir, "hello_empty_name", HelloFrame(kProtocolVersion, ""));
  Write(dir, "hello_version_2", HelloFrame(2, "device-0"));
  Write(dir, "hello_version_0", HelloFrame(0, "device-0"));
  // fuzz_handshake's server requires the token "fuzz-token".
  Write(dir, "hello_token", HelloFrame(kProtocolVersion, "device-0", "fuzz-token"));
  Write(dir, "hello_wrong_token", HelloFrame(kProtocolVersion, "device-0", "fuzz-tokem"));
  wire::Hello hello;
  hello.set_protocol_version(kProtocolVersion);
  Write(dir, "broken_hello_with_body", Bytes(MakeFrame(MessageType::kHello, hello, "xyz", 3)));
  Write(dir, "broken_infer_before_hello", InferFrame("fp32"));
  std::string s = HelloFrame(kProtocolVersion, "device-0");
  s.back() = '\xff';  // client_name no longer valid UTF-8
  Write(dir, "broken_hello_utf8", s);
  s = HelloFrame(kProtocolVersion, "device-0");
  s[4] = 9;  // header protocol version
  Write(dir, "broken_header_version", s);
}

}  // namespace
}  // namespace splitinfer

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr,
                 "usage: %s CORPUS_DIR (writes CORPUS_DIR/frame/*, CORPUS_DIR/handshake/*)\n",
                 argv[0]);
    return 2;
  }
  const std::string root = argv[1];
  splitinfer::WriteFrameCorpus(root + "/frame");
  splitinfer::WriteHandshakeCorpus(root + "/handshake");
  return 0;
}

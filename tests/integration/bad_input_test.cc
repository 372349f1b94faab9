// Bad input gets a specific error and loses nothing: each broken or refused frame is answered
// with its own code, and the server keeps serving (a good request on a new connection works).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <zstd.h>

#include <limits>

#include "common/codec.h"
#include "common/frame_io.h"
#include "common/model_zoo.h"
#include "common/tensor_wire.h"
#include "device/edge_client.h"
#include "tests/integration/child_process.h"
#include "tests/integration/test_models.h"

namespace splitinfer {
namespace {

using testing::EdgeServerProcess;
using namespace std::chrono_literals;

constexpr auto kTimeout = 5s;

struct Reply {
  FrameHeader header;
  std::string meta;
};

class BadInputTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::vector<std::string> args{"--models", "mlp,mlp@2",       "--cpu", "--max-body-mb",
                                  "1",        "--io-timeout-ms", "300"};
    for (auto& a : testing::SmallZooArgs()) args.push_back(a);
    server_ = new EdgeServerProcess(args);
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override { ASSERT_GT(server_->port(), 0) << server_->first_line(); }

  uint16_t port() const { return static_cast<uint16_t>(server_->port()); }

  // A raw connection, with the handshake done unless `hello` is false.
  std::unique_ptr<BlockingConnection> Connect(bool hello = true) {
    auto c = std::make_unique<BlockingConnection>();
    EXPECT_TRUE(c->Connect("127.0.0.1", port(), kTimeout).ok());
    if (hello) {
      wire::Hello h;
      h.set_protocol_version(kProtocolVersion);
      EXPECT_TRUE(c->WriteFrame(MakeFrame(MessageType::kHello, h), kTimeout).ok());
      Reply r = Read(*c);
      EXPECT_EQ(r.header.type, MessageType::kHelloReply);
    }
    return c;
  }

  static Reply Read(BlockingConnection& c) {
    Reply r;
    Status st = c.ReadHeaderAndMeta(FrameLimits{}, kTimeout, &r.header, &r.meta);
    EXPECT_TRUE(st.ok()) << st;
    std::string body(r.header.body_len, '\0');
    if (st.ok()) {
      EXPECT_TRUE(c.ReadExact(body.data(), body.size(), kTimeout).ok());
    }
    return r;
  }

  // Reads one frame, expects it to be of `type`, and parses its metadata as a Msg.
  template <typename Msg>
  static Msg ReadAs(BlockingConnection& c, MessageType type) {
    Reply r = Read(c);
    EXPECT_EQ(r.header.type, type);
    Msg m;
    EXPECT_TRUE(m.ParseFromString(r.meta));
    return m;
  }
  static wire::ErrorReply ReadError(BlockingConnection& c) {
    return ReadAs<wire::ErrorReply>(c, MessageType::kError);
  }
  static wire::InferReply ReadInferReply(BlockingConnection& c) {
    return ReadAs<wire::InferReply>(c, MessageType::kInferReply);
  }

  // The server closed this connection: a read ends with kUnavailable (EOF), not a timeout.
  static void ExpectClosed(BlockingConnection& c) {
    char byte;
    Status st = c.ReadExact(&byte, 1, kTimeout);
    EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st;
  }

  static wire::InferRequest Request(uint64_t id, const std::string& model, uint32_t version,
                                    uint32_t boundary) {
    wire::InferRequest req;
    req.set_request_id(id);
    req.set_model(model);
    req.set_model_version(version);
    req.set_boundary(boundary);
    return req;
  }

  static OutgoingFrame RequestFrame(wire::InferRequest req, const at::Tensor& t) {
    EXPECT_TRUE(FillTensorMeta(t, req.mutable_tensor()).ok());
    return MakeTensorFrame(MessageType::kInferRequest, req, t);
  }

  // A request whose tensor is `e` (common/codec.h), metadata and body as they are.
  static OutgoingFrame EncodedFrame(wire::InferRequest req, const Encoded& e) {
    *req.mutable_tensor() = e.meta;
    return MakeTensorFrame(MessageType::kInferRequest, req, e.body);
  }
  static Encoded MustEncode(const at::Tensor& t, const std::string& spec) {
    auto s = CodecSpec::Parse(spec);
    EXPECT_TRUE(s.ok()) << s.status();
    auto e = Encode(t, *s);
    EXPECT_TRUE(e.ok()) << e.status();
    return *e;
  }

  // A good encoded request on connection `c` is served (the connection stayed open).
  static void ExpectEncodedRequestServed(BlockingConnection& c, uint64_t id) {
    const Encoded good = MustEncode(torch::relu(torch::randn({1, 64})), "int8c+zstd");
    ASSERT_TRUE(c.WriteFrame(EncodedFrame(Request(id, "mlp", 1, 2), good), kTimeout).ok());
    auto r = ReadInferReply(c);
    EXPECT_EQ(r.request_id(), id);
    EXPECT_EQ(r.code(), wire::OK) << r.message();
  }

  // A good request on a fresh connection succeeds: the server is still serving.
  void ExpectServerStillServes() {
    EdgeClientOptions o;
    o.port = port();
    EdgeClient client(o);
    ASSERT_TRUE(client.Connect().ok());
    ASSERT_TRUE(client.SendRequest(Request(1, "mlp", 1, 2), torch::randn({1, 64})).ok());
    auto r = client.ReadReply();
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r->status.ok()) << r->status;
    EXPECT_EQ(r->output.sizes(), (std::vector<int64_t>{1, 64}));
  }

  static EdgeServerProcess* server_;
};
EdgeServerProcess* BadInputTest::server_ = nullptr;

TEST_F(BadInputTest, BadMagicGetsInvalidArgumentAndClose) {
  auto c = Connect();
  HeaderBytes h = EncodeHeader(FrameHeader{});
  h[0] = 'X';
  ASSERT_TRUE(c->WriteRaw(h.data(), h.size(), kTimeout).ok());
  auto e = ReadError(*c);
  EXPECT_EQ(e.code(), wire::INVALID_ARGUMENT);
  EXPECT_NE(e.message().find("magic"), std::string::npos) << e.message();
  ExpectClosed(*c);
  ExpectServerStillServes();
}

TEST_F(BadInputTest, TruncatedFramesLoseNothing) {
  {  // half a header, then the peer vanishes
    auto c = Connect();
    HeaderBytes h = EncodeHeader(FrameHeader{});
    ASSERT_TRUE(c->WriteRaw(h.data(), 10, kTimeout).ok());
  }
  {  // a whole header and metadata, a tenth of the body, then gone
    auto c = Connect();
    at::Tensor t = torch::randn({1, 64});
    OutgoingFrame f = RequestFrame(Request(5, "mlp", 1, 0), t);
    ASSERT_TRUE(c->WriteRaw(f.header.data(), f.header.size(), kTimeout).ok());
    ASSERT_TRUE(c->WriteRaw(f.meta.data(), f.meta.size(), kTimeout).ok());
    ASSERT_TRUE(c->WriteRaw(f.body, f.body_size / 10, kTimeout).ok());
  }
  ExpectServerStillServes();
}

TEST_F(BadInputTest, StalledPartialFrameIsTimedOut) {
  auto c = Connect();
  HeaderBytes h = EncodeHeader(FrameHeader{});
  ASSERT_TRUE(c->WriteRaw(h.data(), 10, kTimeout).ok());
  // The server's io timeout is 300 ms: it must drop this connection by itself, and serve
  // others meanwhile.
  ExpectServerStillServes();
  const auto t0 = std::chrono::steady_clock::now();
  ExpectClosed(*c);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);
}

TEST_F(BadInputTest, OversizeLengthsAreRefusedBeforeAllocation) {
  {
    auto c = Connect();
    FrameHeader h;
    h.type = MessageType::kInferRequest;
    h.body_len = uint64_t{1} << 39;  // 512 GiB: allocating it would kill the server
    HeaderBytes b = EncodeHeader(h);
    ASSERT_TRUE(c->WriteRaw(b.data(), b.size(), kTimeout).ok());
    auto e = ReadError(*c);
    EXPECT_EQ(e.code(), wire::RESOURCE_EXHAUSTED);
    EXPECT_NE(e.message().find("body length"), std::string::npos) << e.message();
    ExpectClosed(*c);
  }
  {
    auto c = Connect();
    FrameHeader h;
    h.type = MessageType::kInferRequest;
    h.meta_len = 1u << 30;
    HeaderBytes b = EncodeHeader(h);
    ASSERT_TRUE(c->WriteRaw(b.data(), b.size(), kTimeout).ok());
    auto e = ReadError(*c);
    EXPECT_EQ(e.code(), wire::RESOURCE_EXHAUSTED);
    EXPECT_NE(e.message().find("metadata length"), std::string::npos) << e.message();
  }
  {  // a real tensor over the server's 1 MiB limit: the client refuses before sending
    EdgeClientOptions o;
    o.port = port();
    EdgeClient client(o);
    ASSERT_TRUE(client.Connect().ok());
    Status st = client.SendRequest(Request(9, "mlp", 1, 0), torch::randn({5000, 64}));
    EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
  }
  ExpectServerStillServes();
}

TEST_F(BadInputTest, ShapeThatDoesNotMatchTheBody) {
  auto c = Connect();
  at::Tensor t = torch::randn({1, 64});
  wire::InferRequest req = Request(11, "mlp", 1, 0);
  ASSERT_TRUE(FillTensorMeta(t, req.mutable_tensor()).ok());
  req.mutable_tensor()->set_shape(1, 65);  // says 65 floats, sends 64
  ASSERT_TRUE(
      c->WriteFrame(MakeFrame(MessageType::kInferRequest, req, t.data_ptr(), t.nbytes()), kTimeout)
          .ok());
  auto r = ReadInferReply(*c);
  EXPECT_EQ(r.request_id(), 11u);
  EXPECT_EQ(r.code(), wire::INVALID_ARGUMENT);
  EXPECT_NE(r.message().find("needs 260 bytes but the body has 256"), std::string::npos)
      << r.message();
  ExpectClosed(*c);
  ExpectServerStillServes();
}

TEST_F(BadInputTest, UnknownDtypeIsRefused) {
  auto c = Connect();
  at::Tensor t = torch::randn({1, 64});
  wire::InferRequest req = Request(12, "mlp", 1, 0);
  ASSERT_TRUE(FillTensorMeta(t, req.mutable_tensor()).ok());
  req.mutable_tensor()->set_dtype(static_cast<wire::DType>(42));
  ASSERT_TRUE(
      c->WriteFrame(MakeFrame(MessageType::kInferRequest, req, t.data_ptr(), t.nbytes()), kTimeout)
          .ok());
  auto r = ReadInferReply(*c);
  EXPECT_EQ(r.code(), wire::INVALID_ARGUMENT);
  EXPECT_NE(r.message().find("dtype"), std::string::npos) << r.message();
  ExpectServerStillServes();
}

TEST_F(BadInputTest, UnknownModelOrVersionKeepsTheConnection) {
  auto c = Connect();
  at::Tensor t = torch::randn({1, 64});
  ASSERT_TRUE(c->WriteFrame(RequestFrame(Request(21, "nosuchmodel", 1, 0), t), kTimeout).ok());
  auto r = ReadInferReply(*c);
  EXPECT_EQ(r.request_id(), 21u);
  EXPECT_EQ(r.code(), wire::NOT_FOUND);
  EXPECT_NE(r.message().find("nosuchmodel"), std::string::npos) << r.message();

  ASSERT_TRUE(c->WriteFrame(RequestFrame(Request(22, "mlp", 9, 0), t), kTimeout).ok());
  r = ReadInferReply(*c);
  EXPECT_EQ(r.code(), wire::NOT_FOUND);
  EXPECT_NE(r.message().find("mlp@9"), std::string::npos) << r.message();

  // Same connection, good request: still served, and version 0 picks the newest (2).
  ASSERT_TRUE(c->WriteFrame(RequestFrame(Request(23, "mlp", 0, 0), t), kTimeout).ok());
  r = ReadInferReply(*c);
  EXPECT_EQ(r.code(), wire::OK) << r.message();
  EXPECT_EQ(r.model_version(), 2u);
}

TEST_F(BadInputTest, TensorThatDoesNotFitTheNextUnit) {
  auto c = Connect();
  ASSERT_TRUE(
      c->WriteFrame(RequestFrame(Request(31, "mlp", 1, 2), torch::randn({1, 32})), kTimeout).ok());
  auto r = ReadInferReply(*c);
  EXPECT_EQ(r.code(), wire::INVALID_ARGUMENT);
  EXPECT_NE(r.message().find("boundary 2"), std::string::npos) << r.message();

  ASSERT_TRUE(
      c->WriteFrame(RequestFrame(Request(32, "mlp", 1, 7), torch::randn({1, 64})), kTimeout).ok());
  r = ReadInferReply(*c);
  EXPECT_EQ(r.code(), wire::INVALID_ARGUMENT);
  EXPECT_NE(r.message().find("out of range"), std::string::npos) << r.message();

  ASSERT_TRUE(
      c->WriteFrame(RequestFrame(Request(33, "mlp", 1, 2), torch::ones({1, 64}, torch::kLong)),
                    kTimeout)
          .ok());
  r = ReadInferReply(*c);
  EXPECT_EQ(r.code(), wire::INVALID_ARGUMENT);
  EXPECT_NE(r.message().find("float32"), std::string::npos) << r.message();
}

TEST_F(BadInputTest, ProtocolVersionMismatchIsClear) {
  {  // in the Hello
    auto c = Connect(/*hello=*/false);
    wire::Hello h;
    h.set_protocol_version(kProtocolVersion + 7);
    ASSERT_TRUE(c->WriteFrame(MakeFrame(MessageType::kHello, h), kTimeout).ok());
    Reply r = Read(*c);
    ASSERT_EQ(r.header.type, MessageType::kHelloReply);
    wire::HelloReply hr;
    ASSERT_TRUE(hr.ParseFromString(r.meta));
    EXPECT_EQ(hr.code(), wire::FAILED_PRECONDITION);
    EXPECT_NE(hr.message().find("protocol version mismatch"), std::string::npos);
    ExpectClosed(*c);
  }
  {  // in the frame header
    auto c = Connect(/*hello=*/false);
    FrameHeader fh;
    fh.version = kProtocolVersion + 1;
    fh.type = MessageType::kHello;
    HeaderBytes b = EncodeHeader(fh);
    ASSERT_TRUE(c->WriteRaw(b.data(), b.size(), kTimeout).ok());
    auto e = ReadError(*c);
    EXPECT_EQ(e.code(), wire::FAILED_PRECONDITION);
    EXPECT_NE(e.message().find("version"), std::string::npos);
  }
  ExpectServerStillServes();
}

TEST_F(BadInputTest, RequestBeforeHandshakeAndMalformedMetadata) {
  {
    auto c = Connect(/*hello=*/false);
    ASSERT_TRUE(
        c->WriteFrame(RequestFrame(Request(41, "mlp", 1, 0), torch::randn({1, 64})), kTimeout)
            .ok());
    auto e = ReadError(*c);
    EXPECT_EQ(e.code(), wire::FAILED_PRECONDITION);
    EXPECT_NE(e.message().find("Hello"), std::string::npos);
  }
  {
    auto c = Connect();
    const std::string junk = "\xff\xff\xff\xff\x0f";
    FrameHeader fh;
    fh.type = MessageType::kInferRequest;
    fh.meta_len = static_cast<uint32_t>(junk.size());
    HeaderBytes b = EncodeHeader(fh);
    ASSERT_TRUE(c->WriteRaw(b.data(), b.size(), kTimeout).ok());
    ASSERT_TRUE(c->WriteRaw(junk.data(), junk.size(), kTimeout).ok());
    auto e = ReadError(*c);
    EXPECT_EQ(e.code(), wire::INVALID_ARGUMENT);
    EXPECT_NE(e.message().find("malformed"), std::string::npos) << e.message();
  }
  ExpectServerStillServes();
}

// ---- codec metadata (issue 6) ----------------------------------------------------------------
// Metadata that contradicts itself is refused like any bad tensor metadata: answer, close. A body
// that does not decode (a broken zstd stream in a well-formed frame) is answered and the
// connection stays open.

TEST_F(BadInputTest, CodecUnknownIdIsRefused) {
  auto c = Connect();
  Encoded e = MustEncode(torch::randn({1, 64}), "int8");
  e.meta.set_codec(static_cast<wire::Codec>(42));
  ASSERT_TRUE(c->WriteFrame(EncodedFrame(Request(51, "mlp", 1, 2), e), kTimeout).ok());
  auto r = ReadInferReply(*c);
  EXPECT_EQ(r.request_id(), 51u);
  EXPECT_EQ(r.code(), wire::INVALID_ARGUMENT);
  EXPECT_NE(r.message().find("unknown TensorMeta.codec 42"), std::string::npos) << r.message();
  ExpectClosed(*c);
  ExpectServerStillServes();
}

TEST_F(BadInputTest, CodecScaleCountMismatchIsRefused) {
  auto c = Connect();
  Encoded e = MustEncode(torch::relu(torch::randn({1, 64})), "int8c");
  e.meta.mutable_scale()->RemoveLast();
  ASSERT_TRUE(c->WriteFrame(EncodedFrame(Request(52, "mlp", 1, 2), e), kTimeout).ok());
  auto r = ReadInferReply(*c);
  EXPECT_EQ(r.code(), wire::INVALID_ARGUMENT);
  EXPECT_NE(r.message().find("TensorMeta.scale has 63 values but the tensor has 64 channels"),
            std::string::npos)
      << r.message();
  ExpectClosed(*c);
  ExpectServerStillServes();
}

TEST_F(BadInputTest, CodecBadScaleAndZeroPointAreRefused) {
  {
    auto c = Connect();
    Encoded e = MustEncode(torch::randn({1, 64}), "int8");
    e.meta.set_scale(0, std::numeric_limits<float>::quiet_NaN());
    ASSERT_TRUE(c->WriteFrame(EncodedFrame(Request(53, "mlp", 1, 2), e), kTimeout).ok());
    auto r = ReadInferReply(*c);
    EXPECT_EQ(r.code(), wire::INVALID_ARGUMENT);
    EXPECT_NE(r.message().find("TensorMeta.scale[0]"), std::string::npos) << r.message();
  }
  {
    auto c = Connect();
    Encoded e = MustEncode(torch::randn({1, 64}), "int8+zstd");
    e.meta.set_zero_point(0, 300);
    ASSERT_TRUE(c->WriteFrame(EncodedFrame(Request(54, "mlp", 1, 2), e), kTimeout).ok());
    auto r = ReadInferReply(*c);
    EXPECT_EQ(r.code(), wire::INVALID_ARGUMENT);
    EXPECT_NE(r.message().find("TensorMeta.zero_point[0] = 300"), std::string::npos) << r.message();
  }
  ExpectServerStillServes();
}

TEST_F(BadInputTest, ZstdBombIsRefusedBeforeAllocation) {
  {  // raw_bytes far beyond the shape
    auto c = Connect();
    Encoded e = MustEncode(torch::randn({1, 64}), "int8+zstd");
    e.meta.set_raw_bytes(uint64_t{1} << 40);
    ASSERT_TRUE(c->WriteFrame(EncodedFrame(Request(61, "mlp", 1, 2), e), kTimeout).ok());
    auto r = ReadInferReply(*c);
    EXPECT_EQ(r.code(), wire::INVALID_ARGUMENT);
    EXPECT_NE(r.message().find("TensorMeta.raw_bytes 1099511627776 does not match"),
              std::string::npos)
        << r.message();
    ExpectClosed(*c);
  }
  {  // a few dozen bytes of zstd that claim a 2 MiB float32 tensor: over the 1 MiB limit
    auto c = Connect();
    Encoded e = MustEncode(torch::zeros({1, 64, 8192}), "int8+zstd");
    EXPECT_LT(e.body_bytes(), 1024u);
    ASSERT_TRUE(c->WriteFrame(EncodedFrame(Request(62, "mlp", 1, 2), e), kTimeout).ok());
    auto r = ReadInferReply(*c);
    EXPECT_EQ(r.code(), wire::RESOURCE_EXHAUSTED);
    EXPECT_NE(r.message().find("decoded tensor float32[1,64,8192] of 2097152 bytes exceeds"),
              std::string::npos)
        << r.message();
    ExpectClosed(*c);
  }
  {  // the zstd frame itself claims 1 MiB where raw_bytes (and the shape) say 64 bytes
    auto c = Connect();
    Encoded e = MustEncode(torch::randn({1, 64}), "int8+zstd");
    std::vector<uint8_t> zeros(1 << 20, 0);
    at::Tensor bomb =
        torch::empty({static_cast<int64_t>(ZSTD_compressBound(zeros.size()))}, torch::kByte);
    const size_t n = ZSTD_compress(bomb.data_ptr(), bomb.numel(), zeros.data(), zeros.size(), 1);
    ASSERT_FALSE(ZSTD_isError(n));
    e.body = bomb.narrow(0, 0, static_cast<int64_t>(n));
    ASSERT_TRUE(c->WriteFrame(EncodedFrame(Request(63, "mlp", 1, 2), e), kTimeout).ok());
    auto r = ReadInferReply(*c);
    EXPECT_EQ(r.request_id(), 63u);
    EXPECT_EQ(r.code(), wire::INVALID_ARGUMENT);
    EXPECT_NE(r.message().find("zstd frame content size 1048576 does not match"), std::string::npos)
        << r.message();
    ExpectEncodedRequestServed(*c, 64);  // a decode failure keeps the connection
  }
  ExpectServerStillServes();
}

TEST_F(BadInputTest, TruncatedZstdBodyIsAnsweredAndTheConnectionKept) {
  auto c = Connect();
  Encoded e = MustEncode(torch::relu(torch::randn({1, 64})), "int8c+zstd");
  e.body = e.body.narrow(0, 0, e.body.numel() / 2);  // the frame says so: body_len is the half
  ASSERT_TRUE(c->WriteFrame(EncodedFrame(Request(71, "mlp", 1, 2), e), kTimeout).ok());
  auto r = ReadInferReply(*c);
  EXPECT_EQ(r.request_id(), 71u);
  EXPECT_EQ(r.code(), wire::INVALID_ARGUMENT);
  EXPECT_NE(r.message().find("zstd body truncated or corrupt"), std::string::npos) << r.message();
  ExpectEncodedRequestServed(*c, 72);
  ExpectServerStillServes();
}

TEST(EdgeClientTest, UnreachableServerIsUnavailable) {
  // Bind a port, then close it: nobody listens there.
  asio::io_context io;
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const uint16_t port = a.local_endpoint().port();
  a.close();
  EdgeClientOptions o;
  o.port = port;
  EdgeClient client(o);
  Status st = client.Connect();
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st;
  EXPECT_FALSE(client.connected());
}

}  // namespace
}  // namespace splitinfer

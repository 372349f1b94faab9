// FrameCodec: header round trip and every rejection path, byte for byte.
#include "common/frame.h"

#include <gtest/gtest.h>

namespace splitinfer {
namespace {

TEST(FrameHeaderTest, RoundTrip) {
  FrameHeader h;
  h.type = MessageType::kInferRequest;
  h.meta_len = 1234;
  h.body_len = (uint64_t{1} << 33) + 7;
  FrameLimits limits;
  limits.max_body_bytes = uint64_t{1} << 40;
  const HeaderBytes b = EncodeHeader(h);
  auto d = DecodeHeader(b.data(), b.size(), limits);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->type, MessageType::kInferRequest);
  EXPECT_EQ(d->meta_len, 1234u);
  EXPECT_EQ(d->body_len, (uint64_t{1} << 33) + 7);
  EXPECT_EQ(d->version, kProtocolVersion);
}

TEST(FrameHeaderTest, LayoutIsLittleEndianAndFixed) {
  FrameHeader h;
  h.type = MessageType::kHello;
  h.meta_len = 0x01020304;
  h.body_len = 0x05;
  const HeaderBytes b = EncodeHeader(h);
  EXPECT_EQ(std::string(b.begin(), b.begin() + 4), "SPLT");
  EXPECT_EQ(b[4], kProtocolVersion);
  EXPECT_EQ(b[6], 1);
  EXPECT_EQ(b[8], 0x04);
  EXPECT_EQ(b[11], 0x01);
  EXPECT_EQ(b[16], 0x05);
}

TEST(FrameHeaderTest, RejectsTruncatedHeader) {
  const HeaderBytes b = EncodeHeader(FrameHeader{});
  auto d = DecodeHeader(b.data(), 10, FrameLimits{});
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(d.status().message().find("truncated"), std::string::npos);
}

TEST(FrameHeaderTest, RejectsBadMagic) {
  HeaderBytes b = EncodeHeader(FrameHeader{});
  b[0] = 'X';
  auto d = DecodeHeader(b.data(), b.size(), FrameLimits{});
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(d.status().message().find("magic"), std::string::npos);
}

TEST(FrameHeaderTest, RejectsOtherProtocolVersion) {
  FrameHeader h;
  h.version = kProtocolVersion + 1;
  const HeaderBytes b = EncodeHeader(h);
  auto d = DecodeHeader(b.data(), b.size(), FrameLimits{});
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(d.status().message().find("version"), std::string::npos);
}

TEST(FrameHeaderTest, RejectsUnknownTypeAndFlags) {
  HeaderBytes b = EncodeHeader(FrameHeader{});
  b[6] = 99;
  EXPECT_EQ(DecodeHeader(b.data(), b.size(), FrameLimits{}).status().code(),
            StatusCode::kInvalidArgument);
  FrameHeader h;
  h.flags = 1;
  b = EncodeHeader(h);
  EXPECT_EQ(DecodeHeader(b.data(), b.size(), FrameLimits{}).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(FrameHeaderTest, RejectsLengthsOverTheLimits) {
  FrameLimits limits;
  limits.max_meta_bytes = 100;
  limits.max_body_bytes = 1000;
  FrameHeader h;
  h.meta_len = 101;
  HeaderBytes b = EncodeHeader(h);
  auto d = DecodeHeader(b.data(), b.size(), limits);
  EXPECT_EQ(d.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(d.status().message().find("metadata length 101"), std::string::npos);
  h.meta_len = 100;
  h.body_len = 1001;
  b = EncodeHeader(h);
  d = DecodeHeader(b.data(), b.size(), limits);
  EXPECT_EQ(d.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(d.status().message().find("body length 1001"), std::string::npos);
  h.body_len = 1000;
  b = EncodeHeader(h);
  EXPECT_TRUE(DecodeHeader(b.data(), b.size(), limits).ok());
}

wire::TensorMeta Meta(int dtype, std::vector<int64_t> shape) {
  wire::TensorMeta m;
  m.set_dtype(static_cast<wire::DType>(dtype));
  for (auto d : shape) m.add_shape(d);
  return m;
}

TEST(TensorMetaTest, AcceptsMatchingBody) {
  EXPECT_TRUE(ValidateTensorMeta(Meta(wire::FLOAT32, {1, 3, 4, 4}), 192, FrameLimits{}).ok());
  EXPECT_TRUE(ValidateTensorMeta(Meta(wire::FLOAT16, {2, 5}), 20, FrameLimits{}).ok());
  EXPECT_TRUE(ValidateTensorMeta(Meta(wire::UINT8, {0, 5}), 0, FrameLimits{}).ok());
}

TEST(TensorMetaTest, RejectsBodyOfTheWrongSize) {
  Status st = ValidateTensorMeta(Meta(wire::FLOAT32, {1, 3, 4, 4}), 191, FrameLimits{});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("needs 192 bytes but the body has 191"), std::string::npos)
      << st.message();
}

TEST(TensorMetaTest, RejectsBadDtypeRankAndDims) {
  EXPECT_EQ(ValidateTensorMeta(Meta(0, {4}), 16, FrameLimits{}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateTensorMeta(Meta(77, {4}), 16, FrameLimits{}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateTensorMeta(Meta(wire::FLOAT32, {}), 4, FrameLimits{}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(
      ValidateTensorMeta(Meta(wire::FLOAT32, {1, 1, 1, 1, 1, 1, 1, 1, 1}), 4, FrameLimits{}).code(),
      StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateTensorMeta(Meta(wire::FLOAT32, {-1, 4}), 16, FrameLimits{}).code(),
            StatusCode::kInvalidArgument);
}

TEST(TensorMetaTest, HugeShapesDoNotOverflow) {
  // 2^62 * 2^62 elements would wrap a 64-bit product; it must be rejected, not accepted.
  const int64_t big = int64_t{1} << 62;
  Status st = ValidateTensorMeta(Meta(wire::FLOAT32, {big, big, 0}), 0, FrameLimits{});
  EXPECT_FALSE(st.ok());
  st = ValidateTensorMeta(Meta(wire::FLOAT32, {big, 4}), 0, FrameLimits{});
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
}

TEST(FrameTest, MakeFrameCarriesLengthsAndBody) {
  wire::InferRequest req;
  req.set_request_id(42);
  req.set_model("mlp");
  *req.mutable_tensor() = Meta(wire::FLOAT32, {1, 2});
  const float body[2] = {1.0f, 2.0f};
  OutgoingFrame f = MakeFrame(MessageType::kInferRequest, req, body, sizeof body);
  auto h = DecodeHeader(f.header.data(), f.header.size(), FrameLimits{});
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->meta_len, f.meta.size());
  EXPECT_EQ(h->body_len, sizeof body);
  EXPECT_EQ(f.body, body);  // borrowed, not copied
  EXPECT_EQ(f.total_size(), kFrameHeaderSize + f.meta.size() + sizeof body);
  wire::InferRequest back;
  ASSERT_TRUE(
      ParseMeta(reinterpret_cast<const uint8_t*>(f.meta.data()), f.meta.size(), &back).ok());
  EXPECT_EQ(back.request_id(), 42u);
  EXPECT_EQ(back.model(), "mlp");
  EXPECT_TRUE(ValidateTensorMeta(back.tensor(), h->body_len, FrameLimits{}).ok());
}

TEST(FrameTest, MalformedMetadataIsAnError) {
  const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
  wire::InferRequest req;
  Status st = ParseMeta(junk, sizeof junk, &req);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("InferRequest"), std::string::npos);
}

TEST(FrameTest, WireCodesMapOneToOne) {
  for (int c : {0, 1, 2, 3, 4, 5, 8, 9, 12, 13, 14}) {
    EXPECT_EQ(static_cast<int>(ToWireCode(FromWireCode(c))), c);
  }
  EXPECT_EQ(FromWireCode(77), StatusCode::kUnknown);
}

}  // namespace
}  // namespace splitinfer

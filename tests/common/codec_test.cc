// Wire codecs (common/codec.h): every codec round-trips within its stated bound, the lossless
// stage is exact, NaN/Inf handling is as documented, and every corrupted or inconsistent
// metadata field or zstd body is refused with an error that names it.
#include "common/codec.h"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <zstd.h>

#include <atomic>
#include <cctype>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <thread>

#include "common/tensor_wire.h"

namespace splitinfer {
namespace {

CodecSpec Spec(const std::string& s) {
  auto spec = CodecSpec::Parse(s);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return spec.ok() ? *spec : CodecSpec{};
}

// A post-ReLU-like feature map: about 70% zeros.
at::Tensor SparseRelu(at::IntArrayRef shape) { return torch::relu(torch::randn(shape) - 0.5); }

at::Tensor RoundTrip(const at::Tensor& x, const CodecSpec& spec, Encoded* enc_out = nullptr) {
  Result<Encoded> enc = Encode(x, spec);
  EXPECT_TRUE(enc.ok()) << enc.status();
  if (!enc.ok()) return {};
  Result<at::Tensor> dec = Decode(*enc, FrameLimits{});
  EXPECT_TRUE(dec.ok()) << dec.status();
  if (enc_out != nullptr) *enc_out = *enc;
  return dec.ok() ? *dec : at::Tensor();
}

bool BitEqual(const at::Tensor& a, const at::Tensor& b) {
  return a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type() &&
         a.contiguous().view(at::kInt).equal(b.contiguous().view(at::kInt));
}

// The stated bound of each codec, element by element.
void ExpectWithinBound(const at::Tensor& x, const at::Tensor& y, const Encoded& e,
                       const CodecSpec& spec) {
  ASSERT_TRUE(y.defined());
  ASSERT_EQ(y.sizes(), x.sizes());
  ASSERT_EQ(y.scalar_type(), at::kFloat);
  const at::Tensor diff = (y - x).abs();
  switch (spec.codec) {
    case Codec::kFp32:
      EXPECT_TRUE(BitEqual(x, y));
      return;
    case Codec::kFp16: {
      const at::Tensor bound =
          torch::clamp_min(x.abs() * std::ldexp(1.0, -11), std::ldexp(1.0, -25));
      EXPECT_TRUE((diff <= bound).all().item<bool>())
          << "max excess " << (diff - bound).max().item<double>();
      return;
    }
    case Codec::kInt8:
    case Codec::kInt8Channel: {
      at::Tensor scale;
      if (e.meta.codec() == wire::CODEC_INT8) {
        ASSERT_EQ(e.meta.scale_size(), 1);
        scale = torch::full({1}, e.meta.scale(0));
      } else {
        ASSERT_EQ(e.meta.channel_axis(), 1);
        ASSERT_EQ(e.meta.scale_size(), x.size(1));
        std::vector<int64_t> view(static_cast<size_t>(x.dim()), 1);
        view[1] = x.size(1);
        scale = torch::tensor(std::vector<float>(e.meta.scale().begin(), e.meta.scale().end()))
                    .view(view);
      }
      const at::Tensor bound = (scale * (0.5 + std::ldexp(1.0, -14))).expand_as(x);
      EXPECT_TRUE((diff <= bound).all().item<bool>())
          << "max excess " << (diff - bound).max().item<double>();
      // Zeros are exact: a post-ReLU map keeps its zeros.
      EXPECT_TRUE((y.masked_select(x == 0) == 0).all().item<bool>());
      return;
    }
  }
}

TEST(CodecSpecTest, ParseAndToStringRoundTrip) {
  for (std::string s : {"fp32", "fp16", "int8", "int8c", "fp32+zstd", "fp16+zstd", "int8+zstd",
                        "int8c+zstd", "int8+zstd:3", "int8c+zstd:-5", "fp16+zstd:19"}) {
    auto spec = CodecSpec::Parse(s);
    ASSERT_TRUE(spec.ok()) << s << ": " << spec.status();
    EXPECT_EQ(spec->ToString(), s);
  }
  EXPECT_EQ(Spec("int8+zstd:1").ToString(), "int8+zstd");  // 1 is the default level
  EXPECT_EQ(Spec("int8c+zstd").codec, Codec::kInt8Channel);
  EXPECT_TRUE(Spec("int8c+zstd").zstd);
  EXPECT_TRUE(Spec("fp32").IsRaw());
  EXPECT_FALSE(Spec("fp32+zstd").IsRaw());
  for (std::string s :
       {"", "fp64", "INT8", "int8+lz4", "int8+zstd:0", "int8+zstd:20", "int8+zstd:-8",
        "int8+zstd:x", "int8+zstd:3x", "int8+zstdx", "int8+", "+zstd", "int8c+zstd+zstd"}) {
    auto spec = CodecSpec::Parse(s);
    EXPECT_FALSE(spec.ok()) << "'" << s << "' parsed";
    if (!spec.ok()) {
      EXPECT_EQ(spec.status().code(), StatusCode::kInvalidArgument);
      EXPECT_NE(spec.status().message().find("expected fp32, fp16, int8 or int8c"),
                std::string::npos)
          << spec.status();
    }
  }
}

// ---- round trips -----------------------------------------------------------------------------

struct Case {
  std::string name;
  at::Tensor x;
};

std::vector<Case> Tensors() {
  torch::manual_seed(11);
  std::vector<Case> cases;
  cases.push_back({"randn_4d", torch::randn({2, 16, 7, 9})});
  cases.push_back({"sparse_relu_4d", SparseRelu({1, 32, 14, 14})});
  cases.push_back({"odd_1d", torch::randn({13}) * 7});
  cases.push_back({"odd_2d_nc", torch::randn({3, 257})});
  cases.push_back({"odd_3d", SparseRelu({2, 3, 5})});
  cases.push_back({"single", torch::full({1, 1, 1, 1}, 0.3f)});
  cases.push_back({"all_zero", torch::zeros({1, 8, 4, 4})});
  cases.push_back({"constant_pos", torch::full({1, 8, 4, 4}, 3.5f)});
  cases.push_back({"constant_neg", torch::full({2, 5}, -2.0f)});
  cases.push_back({"empty", torch::zeros({0, 4})});
  cases.push_back({"empty_channels", torch::zeros({2, 0, 3})});
  cases.push_back(
      {"wide_range", torch::randn({1, 4, 8, 8}) *
                         torch::pow(10.0, torch::randint(-3, 4, {1, 4, 8, 8}, torch::kFloat))});
  cases.push_back({"tiny_values", torch::randn({1, 4, 5, 5}) * 1e-30});
  // One channel zero, one constant, one ordinary: per-channel parameters differ.
  at::Tensor mixed = torch::randn({2, 3, 4, 4});
  mixed.select(1, 0).zero_();
  mixed.select(1, 1).fill_(-0.25);
  cases.push_back({"mixed_channels", mixed});
  cases.push_back({"non_contiguous", torch::randn({4, 6, 3}).transpose(0, 2)});
  return cases;
}

class CodecRoundTripTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CodecRoundTripTest, WithinTheStatedBound) {
  const CodecSpec spec = Spec(GetParam());
  CodecSpec lossy = spec;
  lossy.zstd = false;
  for (const Case& c : Tensors()) {
    SCOPED_TRACE(c.name);
    Encoded e;
    const at::Tensor y = RoundTrip(c.x, spec, &e);
    ExpectWithinBound(c.x, y, e, spec);
    // The metadata of what was sent validates against its body.
    EXPECT_TRUE(ValidateTensorMeta(e.meta, e.body_bytes(), FrameLimits{}).ok());
    if (spec.zstd) {
      // The lossless stage is exact over the lossy output.
      EXPECT_EQ(e.meta.lossless(), wire::LOSSLESS_ZSTD);
      EXPECT_TRUE(BitEqual(y, RoundTrip(c.x, lossy)));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Codecs, CodecRoundTripTest,
                         ::testing::Values("fp32", "fp16", "int8", "int8c", "fp32+zstd",
                                           "fp16+zstd", "int8+zstd", "int8c+zstd", "int8c+zstd:9",
                                           "int8+zstd:-3"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n) {
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return n;
                         });

TEST(CodecTest, Fp32IsTheRawFrameOfBefore) {
  const at::Tensor x = torch::randn({1, 8, 3, 3});
  Encoded e;
  const at::Tensor y = RoundTrip(x, Spec("fp32"), &e);
  EXPECT_TRUE(BitEqual(x, y));
  EXPECT_EQ(e.body.data_ptr(), x.data_ptr());  // zero copy
  EXPECT_TRUE(IsRawTensorBody(e.meta));
  wire::TensorMeta old;
  ASSERT_TRUE(FillTensorMeta(x, &old).ok());
  EXPECT_EQ(e.meta.SerializeAsString(), old.SerializeAsString());  // byte for byte
}

TEST(CodecTest, OldFramesDecodeAsBefore) {
  // A TensorMeta without codec fields: the body is the tensor, of any dtype.
  for (const at::Tensor& x : {torch::randn({2, 5}), torch::arange(7, torch::kLong).view({7}),
                              torch::randn({3}).to(torch::kHalf)}) {
    wire::TensorMeta meta;
    ASSERT_TRUE(FillTensorMeta(x, &meta).ok());
    auto y = Decode(meta, static_cast<const uint8_t*>(x.data_ptr()), x.nbytes(), FrameLimits{});
    ASSERT_TRUE(y.ok()) << y.status();
    EXPECT_EQ(y->scalar_type(), x.scalar_type());
    EXPECT_TRUE(y->equal(x));
  }
}

TEST(CodecTest, MetadataAndSizes) {
  const at::Tensor x = SparseRelu({1, 16, 10, 10});
  Encoded e;
  RoundTrip(x, Spec("fp16"), &e);
  EXPECT_EQ(e.meta.codec(), wire::CODEC_FLOAT16);
  EXPECT_EQ(e.body_bytes(), x.numel() * 2u);
  EXPECT_EQ(e.meta.raw_bytes(), x.numel() * 2u);
  RoundTrip(x, Spec("int8"), &e);
  EXPECT_EQ(e.meta.codec(), wire::CODEC_INT8);
  EXPECT_EQ(e.body_bytes(), static_cast<size_t>(x.numel()));
  EXPECT_EQ(e.meta.zero_point(0), 0);  // post-ReLU: the range starts at 0
  RoundTrip(x, Spec("int8c+zstd"), &e);
  EXPECT_EQ(e.meta.codec(), wire::CODEC_INT8_CHANNEL);
  EXPECT_EQ(e.meta.scale_size(), 16);
  EXPECT_EQ(e.meta.zero_point_size(), 16);
  EXPECT_EQ(e.meta.raw_bytes(), static_cast<uint64_t>(x.numel()));
  EXPECT_EQ(ZSTD_getFrameContentSize(e.body_data(), e.body_bytes()), e.meta.raw_bytes());
  // A 1-D tensor has no channel dimension: int8c codes it per tensor.
  RoundTrip(torch::randn({9}), Spec("int8c"), &e);
  EXPECT_EQ(e.meta.codec(), wire::CODEC_INT8);
}

TEST(CodecTest, ZeroRangeGetsAValidScale) {
  // All zeros: scale would be 0; it is FLT_MIN instead, every q is the zero point, and the
  // decoded tensor is exactly zero.
  Encoded e;
  const at::Tensor y = RoundTrip(torch::zeros({1, 4, 3, 3}), Spec("int8c"), &e);
  for (float s : e.meta.scale()) EXPECT_EQ(s, FLT_MIN);
  for (int z : e.meta.zero_point()) EXPECT_EQ(z, 0);
  EXPECT_TRUE(BitEqual(y, torch::zeros({1, 4, 3, 3})));
  // A constant c: the range is [0, c] (or [c, 0]), and c decodes within scale/2.
  for (float c : {3.5f, -2.0f, 1e-20f}) {
    const at::Tensor x = torch::full({2, 3}, c);
    const at::Tensor y2 = RoundTrip(x, Spec("int8"), &e);
    EXPECT_GT(e.meta.scale(0), 0.0f);
    EXPECT_LE((y2 - x).abs().max().item<float>(), e.meta.scale(0) * (0.5f + 1.0f / 16384)) << c;
  }
}

TEST(CodecTest, ZstdShrinksSparseInt8) {
  torch::manual_seed(3);
  const at::Tensor x = SparseRelu({1, 64, 56, 56});
  Encoded plain, packed;
  RoundTrip(x, Spec("int8"), &plain);
  RoundTrip(x, Spec("int8+zstd"), &packed);
  const double fp32 = static_cast<double>(x.nbytes());
  EXPECT_EQ(plain.body_bytes(), x.nbytes() / 4);
  // ~70% zeros: zstd takes int8 well below its own size (figures in docs/benchmarks.md).
  EXPECT_LT(packed.body_bytes(), plain.body_bytes() * 0.6)
      << "int8 " << plain.body_bytes() << ", int8+zstd " << packed.body_bytes() << " (fp32 " << fp32
      << ")";
}

// ---- NaN and Inf -----------------------------------------------------------------------------

TEST(CodecTest, NonFiniteValues) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const at::Tensor x = torch::tensor({1.0f, nan, inf, -inf, 0.5f}).view({1, 5});
  // fp32 (with or without zstd): bit for bit, NaN and Inf included.
  EXPECT_TRUE(BitEqual(x, RoundTrip(x, Spec("fp32"))));
  EXPECT_TRUE(BitEqual(x, RoundTrip(x, Spec("fp32+zstd"))));
  // fp16: NaN stays NaN, +-Inf stays +-Inf, the rest within the bound.
  for (std::string s : {"fp16", "fp16+zstd"}) {
    const at::Tensor y = RoundTrip(x, Spec(s));
    ASSERT_TRUE(y.defined());
    EXPECT_TRUE(std::isnan(y[0][1].item<float>()));
    EXPECT_EQ(y[0][2].item<float>(), inf);
    EXPECT_EQ(y[0][3].item<float>(), -inf);
    EXPECT_EQ(y[0][0].item<float>(), 1.0f);
    EXPECT_EQ(y[0][4].item<float>(), 0.5f);
  }
  // fp16: a finite value that would round to Inf is refused; the largest half is not.
  EXPECT_EQ(RoundTrip(torch::tensor({65519.0f}), Spec("fp16"))[0].item<float>(), 65504.0f);
  for (const at::Tensor& big :
       {torch::tensor({1.0f, 65520.0f}), torch::tensor({-1e6f}), torch::tensor({inf, 1e5f})}) {
    auto e = Encode(big, Spec("fp16"));
    ASSERT_FALSE(e.ok());
    EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(e.status().message().find("float16 range"), std::string::npos) << e.status();
  }
  // int8: NaN or Inf cannot be quantized; refused, per tensor and per channel.
  at::Tensor one_bad_channel = torch::randn({1, 3, 2, 2});
  one_bad_channel[0][2][1][1] = nan;
  for (const at::Tensor& bad : {x, torch::tensor({inf}), one_bad_channel}) {
    for (std::string s : {"int8", "int8c", "int8c+zstd"}) {
      auto e = Encode(bad, Spec(s));
      ASSERT_FALSE(e.ok()) << s;
      EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument);
      EXPECT_NE(e.status().message().find("NaN or Inf"), std::string::npos) << e.status();
    }
  }
}

TEST(CodecTest, EncodeRefusesWhatItCannotCarry) {
  auto e = Encode(torch::ones({2, 2}, torch::kLong), Spec("int8"));
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("float32"), std::string::npos) << e.status();
  e = Encode(torch::tensor(1.0f), Spec("fp16"));  // 0-d
  EXPECT_FALSE(e.ok());
  e = Encode(torch::randn({1, kMaxQuantChannels + 1}), Spec("int8c"));
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("channels"), std::string::npos) << e.status();
  // The largest per-channel tensor fits the default metadata limit.
  e = Encode(torch::randn({1, kMaxQuantChannels}), Spec("int8c"));
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_LT(e->meta.ByteSizeLong() + 64, FrameLimits{}.max_meta_bytes);
}

TEST(CodecTest, UnalignedBodyDecodes) {
  const at::Tensor x = torch::randn({3, 7});
  for (std::string s : {"fp32", "fp16", "int8", "int8c+zstd"}) {
    Encoded e;
    const at::Tensor y = RoundTrip(x, Spec(s), &e);
    std::string buf(e.body_bytes() + 1, '\0');
    std::memcpy(buf.data() + 1, e.body_data(), e.body_bytes());
    auto y2 = Decode(e.meta, reinterpret_cast<const uint8_t*>(buf.data() + 1), e.body_bytes(),
                     FrameLimits{});
    ASSERT_TRUE(y2.ok()) << s << ": " << y2.status();
    EXPECT_TRUE(BitEqual(y, *y2)) << s;
  }
}

TEST(CodecTest, ConcurrentUseIsSafe) {
  const at::Tensor x = SparseRelu({1, 16, 20, 20});
  const at::Tensor want = RoundTrip(x, Spec("int8c+zstd"));
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        auto e = Encode(x, Spec("int8c+zstd"));
        auto y = e.ok() ? Decode(*e, FrameLimits{}) : e.status();
        if (!y.ok() || !BitEqual(*y, want)) ++bad;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
}

// ---- validation ------------------------------------------------------------------------------

class CodecValidationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(5);
    x_ = SparseRelu({1, 4, 5, 6});
    auto e = Encode(x_, Spec("int8c+zstd"));
    ASSERT_TRUE(e.ok());
    zstd_ = *e;
    e = Encode(x_, Spec("int8"));
    ASSERT_TRUE(e.ok());
    plain_ = *e;
  }

  // Decoding `meta` over `body` fails with `code` and a message containing `text`.
  static void ExpectRefused(const wire::TensorMeta& meta, const std::string& body,
                            const std::string& text, StatusCode code = StatusCode::kInvalidArgument,
                            const FrameLimits& limits = FrameLimits{}) {
    auto y = Decode(meta, reinterpret_cast<const uint8_t*>(body.data()), body.size(), limits);
    ASSERT_FALSE(y.ok()) << "accepted; expected: " << text;
    EXPECT_EQ(y.status().code(), code) << y.status();
    EXPECT_NE(y.status().message().find(text), std::string::npos) << y.status();
  }

  static std::string Body(const Encoded& e) {
    return std::string(reinterpret_cast<const char*>(e.body_data()), e.body_bytes());
  }

  at::Tensor x_;
  Encoded zstd_, plain_;
};

TEST_F(CodecValidationTest, TheUnmodifiedFramesDecode) {
  for (const Encoded* e : {&zstd_, &plain_}) {
    auto y = Decode(e->meta, reinterpret_cast<const uint8_t*>(Body(*e).data()), e->body_bytes(),
                    FrameLimits{});
    EXPECT_TRUE(y.ok()) << y.status();
  }
}

TEST_F(CodecValidationTest, UnknownIds) {
  wire::TensorMeta m = zstd_.meta;
  m.set_codec(static_cast<wire::Codec>(99));
  ExpectRefused(m, Body(zstd_), "unknown TensorMeta.codec 99");
  m = zstd_.meta;
  m.set_lossless(static_cast<wire::Lossless>(7));
  ExpectRefused(m, Body(zstd_), "unknown TensorMeta.lossless 7");
  m = plain_.meta;
  m.set_dtype(wire::INT64);
  ExpectRefused(m, Body(plain_), "TensorMeta.dtype must be float32");
}

TEST_F(CodecValidationTest, ParameterCountsAndRanges) {
  wire::TensorMeta m = zstd_.meta;
  m.mutable_scale()->RemoveLast();
  ExpectRefused(m, Body(zstd_), "TensorMeta.scale has 3 values but the tensor has 4 channels");
  m = zstd_.meta;
  m.add_zero_point(0);
  ExpectRefused(m, Body(zstd_), "TensorMeta.zero_point has 5 values");
  m = plain_.meta;
  m.add_scale(1.0f);
  ExpectRefused(m, Body(plain_), "TensorMeta.scale has 2 values but codec int8 takes 1");
  for (float s : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                  0.0f, -1.0f}) {
    m = zstd_.meta;
    m.set_scale(1, s);
    ExpectRefused(m, Body(zstd_), "TensorMeta.scale[1]");
  }
  for (int z : {-1, 256, 1 << 30}) {
    m = plain_.meta;
    m.set_zero_point(0, z);
    ExpectRefused(m, Body(plain_), "TensorMeta.zero_point[0] = " + std::to_string(z));
  }
  for (int axis : {4, -1}) {
    m = zstd_.meta;
    m.set_channel_axis(axis);
    ExpectRefused(m, Body(zstd_), "TensorMeta.channel_axis " + std::to_string(axis));
  }
  m = plain_.meta;
  m.set_channel_axis(1);
  ExpectRefused(m, Body(plain_), "has no channel axis");
  // fp16 and raw take no parameters.
  auto fp16 = Encode(x_, Spec("fp16"));
  ASSERT_TRUE(fp16.ok());
  m = fp16->meta;
  m.add_scale(1.0f);
  m.add_zero_point(0);
  ExpectRefused(m, Body(*fp16), "codec float16 takes 0");
  m = fp16->meta;
  m.set_codec(wire::CODEC_RAW);  // raw with stray fields: sizes disagree
  m.set_dtype(wire::FLOAT32);
  m.add_scale(1.0f);
  ExpectRefused(m, Body(*fp16), "codec raw takes 0");
}

TEST_F(CodecValidationTest, SizesThatDisagree) {
  // Without a lossless stage, the body is the codec's bytes.
  wire::TensorMeta m = plain_.meta;
  std::string body = Body(plain_);
  ExpectRefused(m, body.substr(1), "encoded as int8 needs 120 bytes but the body has 119");
  m.set_raw_bytes(121);
  ExpectRefused(m, body, "TensorMeta.raw_bytes 121 does not match");
  m.set_raw_bytes(0);  // absent: allowed without a lossless stage
  EXPECT_TRUE(
      Decode(m, reinterpret_cast<const uint8_t*>(body.data()), body.size(), FrameLimits{}).ok());
  // With zstd, raw_bytes is required and fixed by the shape.
  m = zstd_.meta;
  m.set_raw_bytes(0);
  ExpectRefused(m, Body(zstd_), "a lossless stage needs its decoded size");
  m.set_raw_bytes(119);
  ExpectRefused(m, Body(zstd_), "TensorMeta.raw_bytes 119 does not match");
}

TEST_F(CodecValidationTest, DecompressionBombsAreRefusedBeforeAllocation) {
  // raw_bytes far beyond what the shape holds.
  wire::TensorMeta m = zstd_.meta;
  m.set_raw_bytes(uint64_t{1} << 40);
  ExpectRefused(m, Body(zstd_), "TensorMeta.raw_bytes 1099511627776 does not match");
  // A shape (and raw_bytes) whose decoded tensor exceeds the limit: 1 TiB of float32 from a
  // few bytes of zstd. Refused from the metadata alone (allocating it would fail loudly).
  m = zstd_.meta;
  m.clear_shape();
  for (int64_t d : {int64_t{1}, int64_t{4}, int64_t{1} << 18, int64_t{1} << 18}) m.add_shape(d);
  m.set_raw_bytes(uint64_t{1} << 38);
  FrameLimits big;
  big.max_body_bytes = uint64_t{1} << 39;
  ExpectRefused(m, Body(zstd_), "decoded tensor float32[1,4,262144,262144] of 1099511627776 bytes",
                StatusCode::kResourceExhausted, big);
  // The stream claims more than raw_bytes: its content size disagrees.
  std::vector<uint8_t> zeros(1 << 20, 0);
  std::string bomb(ZSTD_compressBound(zeros.size()), '\0');
  bomb.resize(ZSTD_compress(bomb.data(), bomb.size(), zeros.data(), zeros.size(), 1));
  ExpectRefused(zstd_.meta, bomb, "zstd frame content size 1048576 does not match");
}

TEST_F(CodecValidationTest, BrokenZstdBodies) {
  const std::string body = Body(zstd_);
  ExpectRefused(zstd_.meta, body.substr(0, body.size() / 2), "zstd body truncated or corrupt");
  ExpectRefused(zstd_.meta, body.substr(0, 3), "does not start with a zstd frame header");
  ExpectRefused(zstd_.meta, std::string(body.size(), 'x'), "does not start with a zstd frame");
  ExpectRefused(zstd_.meta, body + "tail", "4 bytes after its frame");
  ExpectRefused(zstd_.meta, "", "does not start with a zstd frame header");
  // A frame that does not record its content size.
  {
    ZSTD_CCtx* c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
    at::Tensor raw = Encode(x_, Spec("int8c"))->body;
    std::string out(ZSTD_compressBound(raw.nbytes()), '\0');
    out.resize(ZSTD_compress2(c, out.data(), out.size(), raw.data_ptr(), raw.nbytes()));
    ZSTD_freeCCtx(c);
    ExpectRefused(zstd_.meta, out, "does not record its content size");
  }
  // A frame of the right content size whose payload was corrupted in flight: the checksum (or
  // the block structure) catches it.
  int caught = 0, tries = 0;
  for (size_t at = body.size() / 3; at < body.size(); at += 7, ++tries) {
    std::string bad = body;
    bad[at] = static_cast<char>(bad[at] ^ 0x5a);
    auto y =
        Decode(zstd_.meta, reinterpret_cast<const uint8_t*>(bad.data()), bad.size(), FrameLimits{});
    if (!y.ok()) {
      ++caught;
      EXPECT_EQ(y.status().code(), StatusCode::kInvalidArgument);
      EXPECT_NE(y.status().message().find("zstd"), std::string::npos) << y.status();
    }
  }
  EXPECT_EQ(caught, tries);
}

TEST_F(CodecValidationTest, RawFramesKeepTheirMessages) {
  // The message of a raw frame whose shape disagrees with its body is what it was.
  wire::TensorMeta m;
  m.set_dtype(wire::FLOAT32);
  m.add_shape(1);
  m.add_shape(65);
  Status st = ValidateTensorMeta(m, 256, FrameLimits{});
  EXPECT_NE(st.message().find("tensor float32[1,65] needs 260 bytes but the body has 256"),
            std::string::npos)
      << st;
}

}  // namespace
}  // namespace splitinfer

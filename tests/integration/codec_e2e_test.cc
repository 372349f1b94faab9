// Wire codecs end to end (issue 6). With compression on, the split output through a real
// edge_server on 127.0.0.1 equals the local run through the same codec (units 1..k, encode,
// decode, units k+1..N) exactly on the CPU, for every zoo model at three boundaries and every
// codec; and device_client --codec sends fewer bytes, verifies against that local run, and
// finishes locally through the same codec when the edge is gone.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <map>
#include <set>

#include "common/codec.h"
#include "common/frame_io.h"
#include "common/model_zoo.h"
#include "device/edge_client.h"
#include "tests/integration/child_process.h"
#include "tests/integration/test_models.h"

namespace splitinfer {
namespace {

using json = nlohmann::json;
using testing::ChildProcess;
using testing::EdgeServerProcess;
using testing::SmallZoo;
using testing::SmallZooArgs;
using namespace std::chrono_literals;

const std::vector<std::string> kCodecs{"fp32+zstd", "fp16",  "fp16+zstd",  "int8",
                                       "int8+zstd", "int8c", "int8c+zstd", "int8+zstd:9"};

class CodecSplitE2ETest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    std::vector<std::string> args{"--models", "alexnet,vgg16,resnet18,mobilenetv2,mlp", "--cpu"};
    for (auto& a : SmallZooArgs()) args.push_back(a);
    server_ = new EdgeServerProcess(args);
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static EdgeServerProcess* server_;
};
EdgeServerProcess* CodecSplitE2ETest::server_ = nullptr;

TEST_P(CodecSplitE2ETest, EdgeOutputEqualsTheLocalRunThroughTheSameCodec) {
  ASSERT_GT(server_->port(), 0) << "edge_server did not start: " << server_->first_line();
  auto model = BuildZooModel(GetParam(), 1, SmallZoo());
  ASSERT_TRUE(model.ok()) << model.status();
  const SplitModel& m = **model;
  const size_t n = m.num_units();

  EdgeClientOptions opts;
  opts.port = static_cast<uint16_t>(server_->port());
  EdgeClient client(opts);
  ASSERT_TRUE(client.Connect().ok());

  torch::manual_seed(7);
  std::vector<int64_t> shape{2};  // a batch of two
  shape.insert(shape.end(), m.input_shape().begin(), m.input_shape().end());
  const at::Tensor x = torch::randn(shape);
  c10::InferenceMode guard;
  uint64_t id = 1000;
  for (size_t k : std::set<size_t>{1, n / 2, n - 1}) {
    const at::Tensor boundary = m.RunRange(x, 0, k);
    for (const std::string& name : kCodecs) {
      SCOPED_TRACE("boundary " + std::to_string(k) + ", codec " + name);
      auto spec = CodecSpec::Parse(name);
      ASSERT_TRUE(spec.ok());
      auto enc = Encode(boundary, *spec);
      ASSERT_TRUE(enc.ok()) << enc.status();
      auto dec = Decode(*enc, FrameLimits{});
      ASSERT_TRUE(dec.ok()) << dec.status();
      const at::Tensor ref = m.RunRange(*dec, k, n);

      wire::InferRequest req;
      req.set_request_id(++id);
      req.set_model(GetParam());
      req.set_model_version(1);
      req.set_boundary(static_cast<uint32_t>(k));
      ASSERT_TRUE(client.SendRequest(req, *enc).ok());
      auto reply = client.ReadReply();
      ASSERT_TRUE(reply.ok()) << reply.status();
      ASSERT_TRUE(reply->status.ok()) << reply->status;
      EXPECT_EQ(reply->request_id, id);
      ASSERT_EQ(reply->output.sizes(), ref.sizes());
      EXPECT_EQ((reply->output - ref).abs().max().item<double>(), 0.0);
      EXPECT_TRUE(reply->output.equal(ref));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Zoo, CodecSplitE2ETest,
                         ::testing::Values("alexnet", "vgg16", "resnet18", "mobilenetv2", "mlp"),
                         [](const auto& info) { return info.param; });

// ---- device_client --codec -------------------------------------------------------------------

std::vector<std::string> ClientArgs(const std::string& server, std::vector<std::string> extra) {
  std::vector<std::string> args{std::string(SPLITINFER_BIN_DIR) + "/device_client", "--json"};
  if (!server.empty()) {
    args.push_back("--server");
    args.push_back(server);
  }
  for (auto& a : SmallZooArgs()) args.push_back(a);
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::vector<json> RunClient(const std::vector<std::string>& args, int* exit_code) {
  ChildProcess client(args);
  std::vector<json> out;
  for (auto& l : client.ReadAll(120s)) {
    auto j = json::parse(l, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(j.is_discarded()) << "not JSON: " << l;
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  *exit_code = client.Wait();
  return out;
}

TEST(DeviceClientCodecTest, FewerBytesAndExactAgainstTheCodecsLocalRun) {
  std::vector<std::string> sargs{"--models", "resnet18", "--cpu"};
  for (auto& a : SmallZooArgs()) sargs.push_back(a);
  EdgeServerProcess server(sargs);
  ASSERT_GT(server.port(), 0) << server.first_line();

  std::map<std::string, uint64_t> bytes;
  for (std::string codec : {"fp32", "fp16", "int8c+zstd"}) {
    int rc = -1;
    auto recs =
        RunClient(ClientArgs(server.address(), {"--model", "resnet18", "--split", "3", "--requests",
                                                "2", "--verify", "--codec", codec}),
                  &rc);
    EXPECT_EQ(rc, 0) << codec;
    ASSERT_EQ(recs.size(), 2u) << codec;
    for (auto& r : recs) {
      SCOPED_TRACE(r.dump());
      EXPECT_TRUE(r["ok"].get<bool>());
      EXPECT_EQ(r["completed_on"], "edge");
      EXPECT_EQ(r["codec"], codec);
      EXPECT_TRUE(r["top1_match"].get<bool>());
      if (codec == "fp32") {
        EXPECT_LE(r["max_abs_diff"].get<double>(), 1e-5);
        EXPECT_EQ(r["encode_ms"].get<double>(), 0.0);
      } else {
        EXPECT_EQ(r["max_abs_diff"].get<double>(), 0.0);  // same codec, same CPU arithmetic
        EXPECT_GT(r["encode_ms"].get<double>(), 0.0);
        EXPECT_GE(r["edge_decode_ms"].get<double>(), 0.0);
      }
      EXPECT_GE(r["codec_max_abs_diff_vs_fp32"].get<double>(), 0.0);
      EXPECT_TRUE(r["top1_match_fp32"].is_boolean());
      bytes[codec] = r["bytes_sent"].get<uint64_t>();
    }
  }
  EXPECT_EQ(bytes["fp16"] * 2, bytes["fp32"]);
  EXPECT_LT(bytes["int8c+zstd"] * 4, bytes["fp32"]);
}

TEST(DeviceClientCodecTest, FallbackFinishesThroughTheSameCodec) {
  uint16_t port = 0;
  {
    asio::io_context io;
    tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = a.local_endpoint().port();  // closed again: nobody listens there
  }
  int rc = -1;
  auto recs = RunClient(ClientArgs("127.0.0.1:" + std::to_string(port),
                                   {"--model", "resnet18", "--split", "4", "--requests", "3",
                                    "--verify", "--codec", "int8+zstd"}),
                        &rc);
  EXPECT_EQ(rc, 0);
  ASSERT_EQ(recs.size(), 3u);
  for (auto& r : recs) {
    SCOPED_TRACE(r.dump());
    EXPECT_TRUE(r["ok"].get<bool>());
    EXPECT_EQ(r["completed_on"], "fallback_local");
    EXPECT_EQ(r["codec"], "int8+zstd");
    EXPECT_EQ(r["max_abs_diff"].get<double>(), 0.0);
    EXPECT_GE(r["codec_max_abs_diff_vs_fp32"].get<double>(), 0.0);
  }
}

TEST(DeviceClientCodecTest, BadCodecIsAUsageError) {
  ChildProcess client(ClientArgs("", {"--model", "mlp", "--split", "2", "--codec", "int4"}));
  client.ReadAll(60s);
  EXPECT_EQ(client.Wait(), 2);
}

}  // namespace
}  // namespace splitinfer

// For every zoo model and every boundary k in 0..N: units 1..k here, k+1..N in a real
// edge_server on 127.0.0.1 (port 0), and the result equals the whole model run locally.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/model_zoo.h"
#include "device/edge_client.h"
#include "tests/integration/child_process.h"
#include "tests/integration/test_models.h"

namespace splitinfer {
namespace {

using testing::EdgeServerProcess;
using testing::SmallZoo;
using testing::SmallZooArgs;

class SplitE2ETest : public ::testing::TestWithParam<std::string> {
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
EdgeServerProcess* SplitE2ETest::server_ = nullptr;

TEST_P(SplitE2ETest, EverySplitMatchesLocalInference) {
  ASSERT_GT(server_->port(), 0) << "edge_server did not start: " << server_->first_line();
  auto model = BuildZooModel(GetParam(), 1, SmallZoo());
  ASSERT_TRUE(model.ok()) << model.status();
  const SplitModel& m = **model;

  EdgeClientOptions opts;
  opts.port = static_cast<uint16_t>(server_->port());
  EdgeClient client(opts);
  ASSERT_TRUE(client.Connect().ok());

  torch::manual_seed(7);
  std::vector<int64_t> shape{2};  // a batch of two
  shape.insert(shape.end(), m.input_shape().begin(), m.input_shape().end());
  at::Tensor x = torch::randn(shape);
  c10::InferenceMode guard;
  const at::Tensor ref = m.RunRange(x, 0, m.num_units());

  for (size_t k = 0; k < m.num_units(); ++k) {
    SCOPED_TRACE("boundary " + std::to_string(k));
    wire::InferRequest req;
    req.set_request_id(100 + k);
    req.set_model(GetParam());
    req.set_model_version(1);
    req.set_boundary(static_cast<uint32_t>(k));
    ASSERT_TRUE(client.SendRequest(req, m.RunRange(x, 0, k)).ok());
    auto reply = client.ReadReply();
    ASSERT_TRUE(reply.ok()) << reply.status();
    ASSERT_TRUE(reply->status.ok()) << reply->status;
    EXPECT_EQ(reply->request_id, 100 + k);
    EXPECT_EQ(reply->model_version, 1u);
    ASSERT_EQ(reply->output.sizes(), ref.sizes());
    EXPECT_LE((reply->output - ref).abs().max().item<double>(), 1e-5);
    EXPECT_TRUE(reply->output.argmax(1).equal(ref.argmax(1)));
  }
}

INSTANTIATE_TEST_SUITE_P(Zoo, SplitE2ETest,
                         ::testing::Values("alexnet", "vgg16", "resnet18", "mobilenetv2", "mlp"),
                         [](const auto& info) { return info.param; });

// Several requests in flight on one connection, answered by id.
TEST_F(SplitE2ETest, PipelinedRequestsAreMatchedById) {
  ASSERT_GT(server_->port(), 0);
  auto model = BuildZooModel("mlp", 1, SmallZoo());
  ASSERT_TRUE(model.ok());
  EdgeClientOptions opts;
  opts.port = static_cast<uint16_t>(server_->port());
  EdgeClient client(opts);
  ASSERT_TRUE(client.Connect().ok());
  ASSERT_GE(client.server_info().max_in_flight(), 8u);
  c10::InferenceMode guard;
  std::map<uint64_t, at::Tensor> expected;
  for (uint64_t id = 1; id <= 8; ++id) {
    at::Tensor x = torch::randn({1, 64});
    const size_t k = id % 6;
    expected[id * 7919] = (*model)->RunRange(x, 0, 6);
    wire::InferRequest req;
    req.set_request_id(id * 7919);
    req.set_model("mlp");
    req.set_boundary(static_cast<uint32_t>(k));
    ASSERT_TRUE(client.SendRequest(req, (*model)->RunRange(x, 0, k)).ok());
  }
  for (int i = 0; i < 8; ++i) {
    auto reply = client.ReadReply();
    ASSERT_TRUE(reply.ok()) << reply.status();
    ASSERT_TRUE(reply->status.ok()) << reply->status;
    auto it = expected.find(reply->request_id);
    ASSERT_NE(it, expected.end()) << "unexpected id " << reply->request_id;
    EXPECT_LE((reply->output - it->second).abs().max().item<double>(), 1e-5);
    expected.erase(it);
  }
  EXPECT_TRUE(expected.empty());
}

}  // namespace
}  // namespace splitinfer

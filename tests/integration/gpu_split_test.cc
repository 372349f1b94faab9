// With a GPU: edge_server runs its units on CUDA, and every split of ResNet-18 still gives the
// local CPU result (same top-1; float differences of CUDA kernels within 1e-4). Skips without one.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/model_zoo.h"
#include "device/edge_client.h"
#include "tests/integration/child_process.h"
#include "tests/integration/test_models.h"

namespace splitinfer {
namespace {

TEST(GpuSplitTest, EdgeOnCudaMatchesLocalCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device: nothing to test here";
  std::vector<std::string> args{"--models", "resnet18,mobilenetv2"};
  for (auto& a : testing::SmallZooArgs()) args.push_back(a);
  testing::EdgeServerProcess server(args);
  ASSERT_GT(server.port(), 0) << server.first_line();

  EdgeClientOptions opts;
  opts.port = static_cast<uint16_t>(server.port());
  EdgeClient client(opts);
  ASSERT_TRUE(client.Connect().ok());
  EXPECT_EQ(client.server_info().compute_device().rfind("cuda", 0), 0u)
      << client.server_info().compute_device();

  for (std::string name : {"resnet18", "mobilenetv2"}) {
    auto model = BuildZooModel(name, 1, testing::SmallZoo());
    ASSERT_TRUE(model.ok());
    const SplitModel& m = **model;
    torch::manual_seed(3);
    std::vector<int64_t> shape{4};
    shape.insert(shape.end(), m.input_shape().begin(), m.input_shape().end());
    at::Tensor x = torch::randn(shape);
    c10::InferenceMode guard;
    const at::Tensor ref = m.RunRange(x, 0, m.num_units());
    for (size_t k = 0; k < m.num_units(); ++k) {
      SCOPED_TRACE(name + " boundary " + std::to_string(k));
      wire::InferRequest req;
      req.set_request_id(k + 1);
      req.set_model(name);
      req.set_boundary(static_cast<uint32_t>(k));
      ASSERT_TRUE(client.SendRequest(req, m.RunRange(x, 0, k)).ok());
      auto reply = client.ReadReply();
      ASSERT_TRUE(reply.ok()) << reply.status();
      ASSERT_TRUE(reply->status.ok()) << reply->status;
      const double scale = ref.abs().max().item<double>();
      EXPECT_LE((reply->output - ref).abs().max().item<double>(), 1e-4 * std::max(1.0, scale));
      EXPECT_TRUE(reply->output.argmax(1).equal(ref.argmax(1)));
    }
  }
}

}  // namespace
}  // namespace splitinfer

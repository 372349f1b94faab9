// Dynamic batching in edge_server (issue 8 item 1): requests for the same model version and
// boundary that arrive together run as one batch, and each device still gets exactly its own
// result. The real edge_server on 127.0.0.1 (port 0); devices are EdgeClients in this process.
#include <atomic>
#include <map>
#include <memory>
#include <thread>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/model_zoo.h"
#include "device/edge_client.h"
#include "tests/integration/child_process.h"
#include "tests/integration/test_models.h"

namespace splitinfer {
namespace {

using testing::EdgeServerProcess;

std::unique_ptr<EdgeServerProcess> StartServer(const std::string& model, int max_batch,
                                               int delay_us) {
  std::vector<std::string> args{"--models",
                                model,
                                "--cpu",
                                "--compute-threads",
                                "1",
                                "--max-batch-size",
                                std::to_string(max_batch),
                                "--max-batch-delay-us",
                                std::to_string(delay_us),
                                "--max-in-flight",
                                "64"};
  for (auto& a : testing::SmallZooArgs()) args.push_back(a);
  return std::make_unique<EdgeServerProcess>(args);
}

std::unique_ptr<EdgeClient> Connect(int port) {
  EdgeClientOptions o;
  o.port = static_cast<uint16_t>(port);
  auto c = std::make_unique<EdgeClient>(o);
  EXPECT_TRUE(c->Connect().ok());
  return c;
}

struct Sent {
  at::Tensor want;  // the whole model's output on this request's input, run here alone
};

// Sends `n` pipelined requests at boundary k (each with `rows` samples) and checks every reply
// against the local run of its own input. Returns the batch sizes the edge reported.
std::vector<uint32_t> SendAndCheck(EdgeClient& client, const SplitModel& m, size_t k, int n,
                                   int64_t rows, uint64_t first_id) {
  std::map<uint64_t, Sent> sent;
  c10::InferenceMode guard;
  for (int i = 0; i < n; ++i) {
    const uint64_t id = first_id + static_cast<uint64_t>(i);
    torch::manual_seed(id);
    std::vector<int64_t> shape{rows};
    for (int64_t d : m.input_shape()) shape.push_back(d);
    at::Tensor x = torch::randn(shape);
    wire::InferRequest req;
    req.set_request_id(id);
    req.set_model(m.name());
    req.set_model_version(1);
    req.set_boundary(static_cast<uint32_t>(k));
    EXPECT_TRUE(client.SendRequest(req, m.RunRange(x, 0, k)).ok());
    sent[id] = {m.RunRange(x, 0, m.num_units())};
  }
  std::vector<uint32_t> sizes;
  for (int i = 0; i < n; ++i) {
    auto r = client.ReadReply();
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) break;
    EXPECT_TRUE(r->status.ok()) << r->status;
    auto it = sent.find(r->request_id);
    EXPECT_NE(it, sent.end());
    if (it == sent.end() || !r->status.ok()) continue;
    EXPECT_EQ(r->output.sizes(), it->second.want.sizes());
    EXPECT_TRUE(torch::allclose(r->output, it->second.want, 1e-4, 1e-5))
        << "request " << r->request_id << " got another request's result or a wrong one: max diff "
        << (r->output - it->second.want).abs().max().item<double>();
    sizes.push_back(r->batch_size);
    sent.erase(it);
  }
  EXPECT_TRUE(sent.empty());
  return sizes;
}

TEST(BatchingTest, PipelinedRequestsRunTogetherAndEachGetsItsOwnResult) {
  auto server = StartServer("resnet18", 8, 200000);
  ASSERT_GT(server->port(), 0) << server->first_line();
  auto model = BuildZooModel("resnet18", 1, testing::SmallZoo());
  ASSERT_TRUE(model.ok());
  auto client_ptr = Connect(server->port());
  EdgeClient& client = *client_ptr;
  // 8 requests sent back to back (well within the 200 ms delay): one batch of 8.
  auto sizes = SendAndCheck(client, **model, 3, 8, 1, 100);
  ASSERT_EQ(sizes.size(), 8u);
  for (uint32_t s : sizes) EXPECT_EQ(s, 8u);
  // 3 requests: the batch is not full, so the delay sends it off with 3.
  sizes = SendAndCheck(client, **model, 5, 3, 1, 200);
  ASSERT_EQ(sizes.size(), 3u);
  for (uint32_t s : sizes) EXPECT_EQ(s, 3u);
}

TEST(BatchingTest, RequestsWithSeveralSamplesAreSplitBackExactly) {
  auto server = StartServer("mlp", 4, 200000);
  ASSERT_GT(server->port(), 0);
  auto model = BuildZooModel("mlp", 1, testing::SmallZoo());
  auto client_ptr = Connect(server->port());
  EdgeClient& client = *client_ptr;
  // 4 requests of 3 samples each: 12 rows in one batch, 3 back to each.
  auto sizes = SendAndCheck(client, **model, 2, 4, 3, 300);
  ASSERT_EQ(sizes.size(), 4u);
  for (uint32_t s : sizes) EXPECT_EQ(s, 4u);
}

TEST(BatchingTest, DifferentBoundariesAndDevicesBatchSeparatelyButCorrectly) {
  auto server = StartServer("mlp", 16, 100000);
  ASSERT_GT(server->port(), 0);
  auto model = BuildZooModel("mlp", 1, testing::SmallZoo());
  // Four devices on their own connections, two boundaries, at once.
  std::vector<std::thread> devices;
  std::atomic<int> done{0};
  for (int d = 0; d < 4; ++d) {
    devices.emplace_back([&, d] {
      auto client_ptr = Connect(server->port());
      EdgeClient& client = *client_ptr;
      auto sizes = SendAndCheck(client, **model, d % 2 ? 1 : 4, 5, 1, 1000 * (d + 1));
      EXPECT_EQ(sizes.size(), 5u);
      for (uint32_t s : sizes) {
        EXPECT_GE(s, 1u);
        EXPECT_LE(s, 10u);  // at most the two devices of this boundary
      }
      ++done;
    });
  }
  for (auto& t : devices) t.join();
  EXPECT_EQ(done.load(), 4);
}

TEST(BatchingTest, BatchingOffRunsEveryRequestAlone) {
  auto server = StartServer("mlp", 1, 0);
  ASSERT_GT(server->port(), 0);
  auto model = BuildZooModel("mlp", 1, testing::SmallZoo());
  auto client_ptr = Connect(server->port());
  EdgeClient& client = *client_ptr;
  auto sizes = SendAndCheck(client, **model, 2, 6, 1, 400);
  ASSERT_EQ(sizes.size(), 6u);
  for (uint32_t s : sizes) EXPECT_EQ(s, 1u);
}

// A request that fails its own checks in a batch (its deadline passed while it waited) is
// answered with its error; the others in the batch still get their results.
TEST(BatchingTest, OneFailingRequestDoesNotSinkTheBatch) {
  auto server = StartServer("mlp", 4, 300000);
  ASSERT_GT(server->port(), 0);
  auto model = BuildZooModel("mlp", 1, testing::SmallZoo());
  auto client_ptr = Connect(server->port());
  EdgeClient& client = *client_ptr;
  c10::InferenceMode guard;
  std::map<uint64_t, at::Tensor> want;
  for (uint64_t id = 1; id <= 3; ++id) {
    torch::manual_seed(id);
    at::Tensor x = torch::randn({1, testing::SmallZoo().mlp_width});
    wire::InferRequest req;
    req.set_request_id(id);
    req.set_model("mlp");
    req.set_model_version(1);
    req.set_boundary(0);
    req.set_deadline_ms(id == 2 ? 50 : 0);  // 50 ms < the 300 ms the 3-request batch waits
    ASSERT_TRUE(client.SendRequest(req, x).ok());
    want[id] = (*model)->RunRange(x, 0, (*model)->num_units());
  }
  for (int i = 0; i < 3; ++i) {
    auto r = client.ReadReply();
    ASSERT_TRUE(r.ok()) << r.status();
    if (r->request_id == 2) {
      EXPECT_EQ(r->status.code(), StatusCode::kDeadlineExceeded) << r->status;
    } else {
      ASSERT_TRUE(r->status.ok()) << r->status;
      EXPECT_TRUE(torch::allclose(r->output, want[r->request_id], 1e-4, 1e-5));
      EXPECT_EQ(r->batch_size, 2u);
    }
  }
}

}  // namespace
}  // namespace splitinfer

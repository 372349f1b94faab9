// Dynamic batching in edge_server (issue 8 item 1): requests for the same model version and
// boundary that queue while the compute thread is busy run as one batch, and each device still
// gets exactly its own result. The real edge_server on 127.0.0.1 (port 0), one compute thread;
// devices are EdgeClients in this process. To make the queueing certain, a test first sends a
// "blocker" (a request of many samples that keeps the compute thread busy for tens of ms), then
// the requests under test, which arrive while it runs.
#include <atomic>
#include <chrono>
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

// Sends a blocker of `blocker_rows` samples (none when 0), then `n` pipelined requests at
// boundary k (each with `rows` samples), and checks every reply against the local run of its own
// input. Returns the batch sizes the edge reported for the n requests.
std::vector<uint32_t> SendAndCheck(EdgeClient& client, const SplitModel& m, size_t k, int n,
                                   int64_t rows, uint64_t first_id, int64_t blocker_rows = 0) {
  std::map<uint64_t, Sent> sent;
  c10::InferenceMode guard;
  // Every tensor and reference is computed first, so that the requests then go out back to back.
  std::vector<std::pair<uint64_t, at::Tensor>> to_send;
  auto prepare = [&](uint64_t id, int64_t r) {
    torch::manual_seed(id);
    std::vector<int64_t> shape{r};
    for (int64_t d : m.input_shape()) shape.push_back(d);
    at::Tensor x = torch::randn(shape);
    to_send.emplace_back(id, m.RunRange(x, 0, k));
    sent[id] = {m.RunRange(x, 0, m.num_units())};
  };
  const uint64_t blocker_id = first_id + 100000;
  if (blocker_rows > 0) prepare(blocker_id, blocker_rows);
  for (int i = 0; i < n; ++i) prepare(first_id + static_cast<uint64_t>(i), rows);
  for (auto& [id, tensor] : to_send) {
    wire::InferRequest req;
    req.set_request_id(id);
    req.set_model(m.name());
    req.set_model_version(1);
    req.set_boundary(static_cast<uint32_t>(k));
    EXPECT_TRUE(client.SendRequest(req, tensor).ok());
  }
  std::vector<uint32_t> sizes;
  const int replies = n + (blocker_rows > 0 ? 1 : 0);
  for (int i = 0; i < replies; ++i) {
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
    if (r->request_id != blocker_id) sizes.push_back(r->batch_size);
    sent.erase(it);
  }
  EXPECT_TRUE(sent.empty());
  return sizes;
}

TEST(BatchingTest, RequestsQueuedBehindBusyComputeRunTogetherAndEachGetsItsOwnResult) {
  auto server = StartServer("resnet18", 8, 1000000);
  ASSERT_GT(server->port(), 0) << server->first_line();
  auto model = BuildZooModel("resnet18", 1, testing::SmallZoo());
  ASSERT_TRUE(model.ok());
  auto client_ptr = Connect(server->port());
  EdgeClient& client = *client_ptr;
  // 8 requests arrive while the blocker runs: one batch of 8 when it is done.
  auto sizes = SendAndCheck(client, **model, 3, 8, 1, 100, 64);
  ASSERT_EQ(sizes.size(), 8u);
  for (uint32_t s : sizes) EXPECT_EQ(s, 8u);
  // 12 requests: a batch is at most 8; the rest run as the next batch.
  sizes = SendAndCheck(client, **model, 5, 12, 1, 200, 64);
  ASSERT_EQ(sizes.size(), 12u);
  for (uint32_t s : sizes) EXPECT_TRUE(s == 8u || s == 4u) << s;
}

// A lone device is never held back waiting for companions: the compute thread is free, so its
// request runs at once, alone, whatever the batching delay.
TEST(BatchingTest, ALoneRequestRunsAtOnce) {
  auto server = StartServer("mlp", 8, 1000000);  // a 1 s delay would show in the latency
  ASSERT_GT(server->port(), 0);
  auto model = BuildZooModel("mlp", 1, testing::SmallZoo());
  auto client_ptr = Connect(server->port());
  for (uint64_t id = 1; id <= 5; ++id) {
    const auto t0 = std::chrono::steady_clock::now();
    auto sizes = SendAndCheck(*client_ptr, **model, 2, 1, 1, id);
    const auto took = std::chrono::steady_clock::now() - t0;
    ASSERT_EQ(sizes.size(), 1u);
    EXPECT_EQ(sizes[0], 1u);
    EXPECT_LT(took, std::chrono::milliseconds(500)) << "the request waited for the batch delay";
  }
}

TEST(BatchingTest, RequestsWithSeveralSamplesAreSplitBackExactly) {
  auto server = StartServer("resnet18", 4, 1000000);
  ASSERT_GT(server->port(), 0);
  auto model = BuildZooModel("resnet18", 1, testing::SmallZoo());
  auto client_ptr = Connect(server->port());
  // 4 requests of 3 samples each behind the blocker: 12 rows in one batch, 3 back to each.
  auto sizes = SendAndCheck(*client_ptr, **model, 2, 4, 3, 300, 64);
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

// A request that fails its own checks in a batch (its deadline passed while it waited behind
// the blocker) is answered with its error; the others in the batch still get their results.
TEST(BatchingTest, OneFailingRequestDoesNotSinkTheBatch) {
  auto server = StartServer("resnet18", 4, 1000000);
  ASSERT_GT(server->port(), 0);
  auto model = BuildZooModel("resnet18", 1, testing::SmallZoo());
  auto client_ptr = Connect(server->port());
  EdgeClient& client = *client_ptr;
  c10::InferenceMode guard;
  std::map<uint64_t, at::Tensor> want;
  std::vector<std::pair<wire::InferRequest, at::Tensor>> requests;
  auto prepare = [&](uint64_t id, int64_t rows, uint32_t deadline_ms) {
    torch::manual_seed(id);
    at::Tensor x = torch::randn({rows, 3, 64, 64});
    wire::InferRequest req;
    req.set_request_id(id);
    req.set_model("resnet18");
    req.set_model_version(1);
    req.set_boundary(0);
    req.set_deadline_ms(deadline_ms);
    requests.emplace_back(req, x);
    want[id] = (*model)->RunRange(x, 0, (*model)->num_units());
  };
  prepare(9, 128, 0);  // the blocker: well over 20 ms of compute
  prepare(1, 1, 0);
  prepare(2, 1, 1);  // 1 ms: passes while it waits behind the blocker
  prepare(3, 1, 0);
  for (auto& [req, x] : requests) ASSERT_TRUE(client.SendRequest(req, x).ok());
  for (int i = 0; i < 4; ++i) {
    auto r = client.ReadReply();
    ASSERT_TRUE(r.ok()) << r.status();
    if (r->request_id == 2) {
      EXPECT_EQ(r->status.code(), StatusCode::kDeadlineExceeded) << r->status;
      continue;
    }
    ASSERT_TRUE(r->status.ok()) << r->status;
    EXPECT_TRUE(torch::allclose(r->output, want[r->request_id], 1e-4, 1e-5));
    if (r->request_id != 9) {
      EXPECT_EQ(r->batch_size, 2u);
    }
  }
}

// The global bound on requests in flight: past it the server refuses at once with
// RESOURCE_EXHAUSTED (the device runs those locally) instead of queueing without end; once the
// backlog drains, requests are served again.
TEST(OverloadTest, PastTheGlobalBoundRequestsAreRefusedAtOnce) {
  std::vector<std::string> args{
      "--models", "resnet18",        "--cpu", "--compute-threads", "1", "--max-global-in-flight",
      "2",        "--max-in-flight", "64"};
  for (auto& a : testing::SmallZooArgs()) args.push_back(a);
  EdgeServerProcess server(args);
  ASSERT_GT(server.port(), 0);
  auto model = BuildZooModel("resnet18", 1, testing::SmallZoo());
  auto client_ptr = Connect(server.port());
  EdgeClient& client = *client_ptr;
  c10::InferenceMode guard;
  std::vector<std::pair<wire::InferRequest, at::Tensor>> requests;
  for (uint64_t id = 1; id <= 6; ++id) {
    torch::manual_seed(id);
    at::Tensor x = torch::randn({id == 1 ? 128 : 1, 3, 64, 64});  // 1: a blocker
    wire::InferRequest req;
    req.set_request_id(id);
    req.set_model("resnet18");
    req.set_model_version(1);
    req.set_boundary(0);
    requests.emplace_back(req, x);
  }
  for (auto& [req, x] : requests) ASSERT_TRUE(client.SendRequest(req, x).ok());
  int ok = 0, refused = 0;
  for (int i = 0; i < 6; ++i) {
    auto r = client.ReadReply();
    ASSERT_TRUE(r.ok()) << r.status();
    if (r->status.ok()) {
      ++ok;
    } else {
      EXPECT_EQ(r->status.code(), StatusCode::kResourceExhausted) << r->status;
      EXPECT_NE(r->status.message().find("overloaded"), std::string::npos) << r->status;
      ++refused;
    }
  }
  EXPECT_EQ(ok, 2);  // the blocker and the one request received while it ran
  EXPECT_EQ(refused, 4);
  // The backlog is gone: served again.
  auto sizes = SendAndCheck(client, **model, 0, 1, 1, 50);
  EXPECT_EQ(sizes.size(), 1u);
}

}  // namespace
}  // namespace splitinfer

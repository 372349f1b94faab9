// Transport benchmarks for issue 3 (results in docs/benchmarks.md, via scripts/bench_transport.sh).
//
// All measurements use the real EdgeServer class on 127.0.0.1 (started in this process) and the
// real EdgeClient, and compare against a plain blocking TCP socket loop moving the same bytes in
// the same run, so that the machine's noise cancels in the ratio.
//
//  BM_PlainEcho/S      a thread echoes S bytes back over a blocking socket: the floor
//  BM_FrameEcho/S      an S-byte tensor frame through edge_server and back. The request is at
//                      boundary N of an MLP, so the server runs no unit and returns the tensor:
//                      this is header + protobuf metadata + body, both ways, through the real
//                      session, compute pool hop and gather-write.
//  BM_SplitE2E/k       ResNet-18 (224x224): units 1..k here, the rest on the edge, total time.
//                      Counters give the parts measured alone in the same run: device part,
//                      edge part, and the transfer of the same bytes over the plain socket.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cstring>
#include <thread>

#include "common/tensor_wire.h"

#include "common/frame_io.h"
#include "common/model_zoo.h"
#include "device/edge_client.h"
#include "edge_server/edge_server.h"

namespace splitinfer {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int64_t kEchoWidth = 256;  // mlp@1 width: the tensor is [rows, 256] float32
constexpr int64_t kTinyWidth = 16;   // mlp@2 width: a 64-byte tensor [1, 16]

// A plain blocking echo server: reads `size` bytes, writes them back, forever.
class PlainEcho {
 public:
  explicit PlainEcho(size_t size)
      : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    thread_ = std::thread([this, size] {
      tcp::socket s(io_);
      acceptor_.accept(s);
      s.set_option(tcp::no_delay(true));
      std::vector<char> buf(size);
      boost::system::error_code ec;
      while (true) {
        asio::read(s, asio::buffer(buf), ec);
        if (ec) return;
        asio::write(s, asio::buffer(buf), ec);
        if (ec) return;
      }
    });
  }
  ~PlainEcho() { thread_.join(); }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
};

void BM_PlainEcho(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  PlainEcho echo(size);
  asio::io_context io;
  tcp::socket s(io);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), echo.port()));
  s.set_option(tcp::no_delay(true));
  std::vector<char> out(size, 1), in(size);
  for (auto _ : state) {
    asio::write(s, asio::buffer(out));
    asio::read(s, asio::buffer(in));
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(size) * 2);
  s.close();
}

struct Edge {
  std::shared_ptr<ModelRegistry> registry;
  std::unique_ptr<EdgeServer> server;
  std::shared_ptr<SplitModel> mlp;
  std::shared_ptr<SplitModel> resnet;
};

Edge& SharedEdge() {
  static Edge* edge = [] {
    auto* e = new Edge;
    e->registry = std::make_shared<ModelRegistry>(at::Device(at::kCPU));
    ZooOptions zoo;
    zoo.mlp_width = kEchoWidth;
    zoo.mlp_layers = 2;
    e->mlp = *BuildZooModel("mlp", 1, zoo);
    e->resnet = *BuildZooModel("resnet18", 1, ZooOptions{});
    (void)e->registry->Add(*BuildZooModel("mlp", 1, zoo));
    zoo.mlp_width = kTinyWidth;
    (void)e->registry->Add(*BuildZooModel("mlp", 2, zoo));
    (void)e->registry->Add(*BuildZooModel("resnet18", 1, ZooOptions{}));
    EdgeServerOptions opts;
    opts.limits.max_body_bytes = 64 << 20;
    e->server = std::make_unique<EdgeServer>(opts, e->registry);
    Status st = e->server->Start();
    if (!st.ok()) std::abort();
    return e;
  }();
  return *edge;
}

void BM_FrameEcho(benchmark::State& state) {
  const int64_t size = state.range(0);
  Edge& edge = SharedEdge();
  EdgeClientOptions o;
  o.port = edge.server->port();
  EdgeClient client(o);
  if (!client.Connect().ok()) return state.SkipWithError("connect failed");
  const bool tiny = size < kEchoWidth * 4;
  const int64_t width = tiny ? kTinyWidth : kEchoWidth;
  const int64_t rows = std::max<int64_t>(1, size / (width * 4));
  at::Tensor x = torch::randn({rows, width});
  wire::InferRequest req;
  req.set_model("mlp");
  req.set_model_version(tiny ? 2 : 1);
  req.set_boundary(static_cast<uint32_t>(edge.mlp->num_units()));  // no unit runs: an echo
  uint64_t id = 0;
  for (auto _ : state) {
    req.set_request_id(++id);
    if (!client.SendRequest(req, x).ok()) return state.SkipWithError("send failed");
    auto r = client.ReadReply();
    if (!r.ok() || !r->status.ok()) return state.SkipWithError("reply failed");
    benchmark::DoNotOptimize(r->output.data_ptr());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(x.nbytes()) * 2);
}

// Sizes 64 B (a tiny tensor: per-frame overhead) and 64 KB .. 16 MB.
void Sizes(benchmark::internal::Benchmark* b) {
  b->Arg(kTinyWidth * 4);
  for (int64_t s = 64 << 10; s <= 16 << 20; s *= 4) b->Arg(s);
  b->UseRealTime()->Unit(benchmark::kMicrosecond);
}
BENCHMARK(BM_PlainEcho)->Apply(Sizes);
BENCHMARK(BM_FrameEcho)->Apply(Sizes);

// The codec work of one tiny frame, both ends, no socket: build the frame (header, protobuf
// metadata, zero-copy body), then decode the header, parse and validate the metadata and
// allocate the receiving tensor, as the server does.
void BM_FrameCodecTiny(benchmark::State& state) {
  at::Tensor x = torch::randn({1, kTinyWidth});
  wire::InferRequest req;
  req.set_model("mlp");
  req.set_model_version(2);
  req.set_boundary(2);
  uint64_t id = 0;
  for (auto _ : state) {
    req.set_request_id(++id);
    (void)FillTensorMeta(x, req.mutable_tensor());
    OutgoingFrame f = MakeTensorFrame(MessageType::kInferRequest, req, x);
    auto h = DecodeHeader(f.header.data(), f.header.size(), FrameLimits{});
    wire::InferRequest back;
    (void)ParseMeta(f.meta, &back);
    (void)ValidateTensorMeta(back.tensor(), h->body_len, FrameLimits{});
    auto t = AllocateForMeta(back.tensor());
    std::memcpy(t->data_ptr(), f.body, f.body_size);
    benchmark::DoNotOptimize(t->data_ptr());
  }
}
BENCHMARK(BM_FrameCodecTiny)->Unit(benchmark::kMicrosecond);

double MedianMs(const std::function<void()>& f, int reps) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = Clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void BM_SplitE2E(benchmark::State& state) {
  const size_t k = static_cast<size_t>(state.range(0));
  Edge& edge = SharedEdge();
  const SplitModel& m = *edge.resnet;
  c10::InferenceMode guard;
  at::Tensor x = torch::randn({1, 3, 224, 224});
  const at::Tensor mid = m.RunRange(x, 0, k);
  const at::Tensor out = m.RunRange(mid, k, m.num_units());

  EdgeClientOptions o;
  o.port = edge.server->port();
  EdgeClient client(o);
  if (!client.Connect().ok()) return state.SkipWithError("connect failed");
  wire::InferRequest req;
  req.set_model("resnet18");
  req.set_boundary(static_cast<uint32_t>(k));
  uint64_t id = 0;
  std::vector<double> totals;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    at::Tensor h = m.RunRange(x, 0, k);
    req.set_request_id(++id);
    if (!client.SendRequest(req, h).ok()) return state.SkipWithError("send failed");
    auto r = client.ReadReply();
    if (!r.ok() || !r->status.ok()) return state.SkipWithError("reply failed");
    totals.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  client.Close();
  // The parts, each alone, in the same run.
  const int reps = 15;
  const double device_ms = MedianMs([&] { m.RunRange(x, 0, k); }, reps);
  const double edge_ms = MedianMs([&] { m.RunRange(mid, k, m.num_units()); }, reps);
  // Transfer: the request tensor up and the output down over a plain blocking socket.
  const size_t up = mid.nbytes(), down = out.nbytes();
  double transfer_ms;
  {
    PlainEcho echo(up);
    asio::io_context io;
    tcp::socket s(io);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), echo.port()));
    s.set_option(tcp::no_delay(true));
    std::vector<char> buf(up);
    // An echo moves `up` bytes both ways; scale its round trip to up + down bytes.
    transfer_ms = MedianMs(
                      [&] {
                        asio::write(s, asio::buffer(buf));
                        asio::read(s, asio::buffer(buf));
                      },
                      reps) *
                  double(up + down) / double(2 * up);
    s.close();
  }
  std::sort(totals.begin(), totals.end());
  const double total_ms = totals[totals.size() / 2];
  state.counters["bytes_up"] = static_cast<double>(up);
  state.counters["device_ms"] = device_ms;
  state.counters["edge_ms"] = edge_ms;
  state.counters["transfer_ms"] = transfer_ms;
  state.counters["total_ms"] = total_ms;
  state.counters["overhead_ratio"] = total_ms / (device_ms + edge_ms + transfer_ms);
}
BENCHMARK(BM_SplitE2E)
    ->DenseRange(0, 10, 1)
    ->Iterations(15)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace splitinfer

int main(int argc, char** argv) {
  torch::set_num_threads(1);  // device and edge share this machine; one thread each
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  splitinfer::SharedEdge().server->Stop();
  return 0;
}

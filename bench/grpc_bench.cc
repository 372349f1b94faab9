// Transport comparison for issue 8 (results in docs/benchmarks.md, via scripts/bench_grpc.sh):
// the same tensor echo over the project's own transport, over gRPC unary and over a plain
// blocking TCP socket, all on 127.0.0.1 in one process, so that the machine's noise cancels in
// the ratios.
//
//  BM_PlainEcho/S     a thread echoes S bytes back over a blocking socket: the floor
//                     (the same loop as bench/transport_bench.cc).
//  BM_FrameEcho/S     an S-byte float32 tensor [S/1024, 256] through the real EdgeServer (1 I/O
//                     thread + 1 compute thread) and back with the real EdgeClient. Boundary N of
//                     an MLP: no unit runs, the frame path alone (as transport_bench.cc's).
//  BM_GrpcEcho/S      the same tensor as one unary RPC with the generated stub and a synchronous
//                     generated service (proto/bench_grpc.proto), which is what a user writes.
//                     Client: the tensor's bytes into a fresh request message (set_data), the
//                     call, the reply's bytes seen as a tensor (from_blob over the reply, no
//                     copy). Server: the request's bytes seen as a tensor (from_blob, no copy),
//                     that tensor's bytes into the reply (set_data). gRPC serializes and parses
//                     each message on its side, as it always does.
//  BM_GrpcRawEcho/S   the same bytes on the wire (a valid serialized TensorMessage), but without
//                     protobuf messages: the request is a ByteBuffer of a small metadata slice
//                     and a slice over the tensor's memory (no copy); the server (callback API,
//                     raw method) copies the body out of gRPC's slices into a tensor, as
//                     edge_server reads a body into one, and replies with a slice over that
//                     tensor; the client copies the reply's body into a tensor. The fewest
//                     copies gRPC's public API allows.
//
// gRPC settings: max message size 32 MiB both ways, both sides; server in this process, sync
// server with one completion queue and 1..2 polling threads (the callback server of the raw
// variant runs on gRPC's own threads); one client thread and one channel per benchmark.
#include <benchmark/benchmark.h>
#include <google/protobuf/io/coded_stream.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/client_unary_call.h>
#include <torch/torch.h>

#include <cstring>
#include <optional>
#include <thread>

#include "bench_grpc.grpc.pb.h"
#include "bench_grpc.pb.h"
#include "common/frame_io.h"
#include "common/model_zoo.h"
#include "device/edge_client.h"
#include "edge_server/edge_server.h"

namespace splitinfer {
namespace {

namespace pb = benchgrpc;
constexpr int64_t kEchoWidth = 256;         // mlp@1 width: the tensor is [rows, 256] float32
constexpr int kMaxMessageBytes = 32 << 20;  // gRPC limit, both sides: 16 MiB + slack
constexpr size_t kMaxHeadBytes = 256;       // the raw variant's metadata prefix, at most
const char* const kEchoMethod = "/splitinfer.benchgrpc.TensorEcho/Echo";

at::Tensor MakeInput(int64_t size) {
  return torch::randn({std::max<int64_t>(1, size / (kEchoWidth * 4)), kEchoWidth});
}

// ---- plain TCP (as bench/transport_bench.cc) ----------------------------------------------

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

// ---- the project's transport ----------------------------------------------------------------

struct Edge {
  std::shared_ptr<ModelRegistry> registry;
  std::unique_ptr<EdgeServer> server;
  size_t mlp_units = 0;
};

Edge& SharedEdge() {
  static Edge* edge = [] {
    auto* e = new Edge;
    e->registry = std::make_shared<ModelRegistry>(at::Device(at::kCPU));
    ZooOptions zoo;
    zoo.mlp_width = kEchoWidth;
    zoo.mlp_layers = 2;
    auto mlp = *BuildZooModel("mlp", 1, zoo);
    e->mlp_units = mlp->num_units();
    (void)e->registry->Add(std::move(mlp));
    EdgeServerOptions opts;  // 1 I/O thread, 1 compute thread
    opts.limits.max_body_bytes = 64 << 20;
    e->server = std::make_unique<EdgeServer>(opts, e->registry);
    if (!e->server->Start().ok()) std::abort();
    return e;
  }();
  return *edge;
}

void BM_FrameEcho(benchmark::State& state) {
  Edge& edge = SharedEdge();
  EdgeClientOptions o;
  o.port = edge.server->port();
  EdgeClient client(o);
  if (!client.Connect().ok()) return state.SkipWithError("connect failed");
  const at::Tensor x = MakeInput(state.range(0));
  wire::InferRequest req;
  req.set_model("mlp");
  req.set_model_version(1);
  req.set_boundary(static_cast<uint32_t>(edge.mlp_units));  // no unit runs: an echo
  uint64_t id = 0;
  at::Tensor last;
  auto echo = [&]() -> bool {
    req.set_request_id(++id);
    if (!client.SendRequest(req, x).ok()) return false;
    auto r = client.ReadReply();
    if (!r.ok() || !r->status.ok()) return false;
    last = std::move(r->output);
    return true;
  };
  if (!echo()) return state.SkipWithError("warm-up echo failed");
  for (auto _ : state) {
    if (!echo()) return state.SkipWithError("echo failed");
    benchmark::DoNotOptimize(last.data_ptr());
  }
  if (!torch::equal(last, x)) return state.SkipWithError("echo returned other bytes");
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(x.nbytes()) * 2);
}

// ---- gRPC, generated stub and service ---------------------------------------------------------

std::vector<int64_t> ShapeOf(const pb::TensorMessage& m) {
  return std::vector<int64_t>(m.shape().begin(), m.shape().end());
}

// The checks a server must make before it trusts the bytes as a tensor.
bool ValidFloat32(const std::vector<int64_t>& shape, const std::string& dtype, size_t bytes) {
  if (dtype != "float32") return false;
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || d > (int64_t(1) << 40)) return false;
    n *= d;
  }
  return size_t(n) * 4 == bytes;
}

void FillMeta(uint64_t id, const at::Tensor& t, pb::TensorMessage* m) {
  m->set_request_id(id);
  for (int64_t d : t.sizes()) m->add_shape(d);
  m->set_dtype("float32");
}

class EchoService final : public pb::TensorEcho::Service {
  grpc::Status Echo(grpc::ServerContext*, const pb::TensorMessage* req,
                    pb::TensorMessage* reply) override {
    if (!ValidFloat32(ShapeOf(*req), req->dtype(), req->data().size()))
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad tensor");
    // The request's bytes as a tensor, no copy (the request outlives the handler).
    const at::Tensor in =
        torch::from_blob(const_cast<char*>(req->data().data()), ShapeOf(*req), torch::kFloat32);
    const at::Tensor& out = in;  // boundary N: no unit runs
    FillMeta(req->request_id(), out, reply);
    reply->set_data(out.data_ptr(), out.nbytes());
    return grpc::Status::OK;
  }
};

// The raw variant's server: the same method, its messages as ByteBuffers (callback API).
class RawEchoService final
    : public pb::TensorEcho::WithRawCallbackMethod_Echo<pb::TensorEcho::Service> {
 public:
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                 grpc::ByteBuffer* reply) override;
};

template <class Service>
struct GrpcServer {
  Service service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  GrpcServer() {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(&service);
    b.SetMaxReceiveMessageSize(kMaxMessageBytes);
    b.SetMaxSendMessageSize(kMaxMessageBytes);
    b.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::NUM_CQS, 1);
    b.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 1);
    b.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 2);
    server = b.BuildAndStart();
    if (!server || port == 0) std::abort();
  }
};

std::vector<grpc::Server*>& GrpcServers() {
  static std::vector<grpc::Server*> servers;
  return servers;
}

template <class Service>
GrpcServer<Service>& SharedGrpc() {
  static auto* s = [] {
    auto* g = new GrpcServer<Service>;
    GrpcServers().push_back(g->server.get());
    return g;
  }();
  return *s;
}

std::shared_ptr<grpc::Channel> Connect(int port) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
  auto ch = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                      grpc::InsecureChannelCredentials(), args);
  if (!ch->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10)))
    return nullptr;
  return ch;
}

void BM_GrpcEcho(benchmark::State& state) {
  auto ch = Connect(SharedGrpc<EchoService>().port);
  if (!ch) return state.SkipWithError("connect failed");
  auto stub = pb::TensorEcho::NewStub(ch);
  const at::Tensor x = MakeInput(state.range(0));
  uint64_t id = 0;
  std::shared_ptr<pb::TensorMessage> last;
  at::Tensor out;
  auto echo = [&]() -> bool {
    pb::TensorMessage req;
    FillMeta(++id, x, &req);
    req.set_data(x.data_ptr(), x.nbytes());
    grpc::ClientContext ctx;
    auto reply = std::make_shared<pb::TensorMessage>();
    if (!stub->Echo(&ctx, req, reply.get()).ok()) return false;
    if (!ValidFloat32(ShapeOf(*reply), reply->dtype(), reply->data().size())) return false;
    // The reply's bytes as a tensor, no copy; the tensor keeps the message alive.
    out = torch::from_blob(
        reply->mutable_data()->data(), ShapeOf(*reply), [reply](void*) {}, torch::kFloat32);
    return true;
  };
  if (!echo()) return state.SkipWithError("warm-up echo failed");
  for (auto _ : state) {
    if (!echo()) return state.SkipWithError("echo failed");
    benchmark::DoNotOptimize(out.data_ptr());
  }
  if (!torch::equal(out, x)) return state.SkipWithError("echo returned other bytes");
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(x.nbytes()) * 2);
}

// ---- gRPC, raw ByteBuffers ----------------------------------------------------------------------

// The bytes of a serialized TensorMessage up to its data: metadata fields, then the tag and the
// length of field 4 (`data` is the last field, so protobuf writes exactly this).
std::string RawPrefix(uint64_t id, const at::Tensor& t) {
  pb::TensorMessage meta;
  FillMeta(id, t, &meta);
  std::string p = meta.SerializeAsString();
  uint8_t tail[16];
  uint8_t* end = google::protobuf::io::CodedOutputStream::WriteTagToArray((4 << 3) | 2, tail);
  end = google::protobuf::io::CodedOutputStream::WriteVarint64ToArray(t.nbytes(), end);
  p.append(reinterpret_cast<char*>(tail), end - tail);
  return p;
}

// A ByteBuffer over `t`'s memory (no copy), `t` kept alive until gRPC lets go of the slice.
grpc::ByteBuffer RawMessage(uint64_t id, const at::Tensor& t) {
  auto* keep = new at::Tensor(t);
  grpc::Slice slices[2] = {
      grpc::Slice(RawPrefix(id, t)),
      grpc::Slice(
          t.data_ptr(), t.nbytes(), [](void* p) { delete static_cast<at::Tensor*>(p); }, keep)};
  return grpc::ByteBuffer(slices, 2);
}

// Parses a serialized TensorMessage held in gRPC's slices: the metadata from the first bytes,
// then one copy of the body into a new tensor.
std::optional<std::pair<uint64_t, at::Tensor>> ParseRaw(const grpc::ByteBuffer& b) {
  std::vector<grpc::Slice> slices;
  if (!b.Dump(&slices).ok()) return std::nullopt;
  std::string head;
  for (const grpc::Slice& s : slices) {
    const size_t n = std::min(kMaxHeadBytes - head.size(), s.size());
    head.append(reinterpret_cast<const char*>(s.begin()), n);
    if (head.size() == kMaxHeadBytes) break;
  }
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(head.data()),
                                            static_cast<int>(head.size()));
  uint64_t id = 0, len = 0;
  std::vector<int64_t> shape;
  std::string dtype;
  bool have_data = false;
  while (!have_data) {
    const uint32_t tag = in.ReadTag();
    uint64_t v = 0;
    uint32_t n = 0;
    switch (tag) {
      case (1 << 3) | 0:
        if (!in.ReadVarint64(&id)) return std::nullopt;
        break;
      case (2 << 3) | 0:  // unpacked
        if (!in.ReadVarint64(&v)) return std::nullopt;
        shape.push_back(static_cast<int64_t>(v));
        break;
      case (2 << 3) | 2: {  // packed
        if (!in.ReadVarint32(&n)) return std::nullopt;
        const auto limit = in.PushLimit(static_cast<int>(n));
        while (in.BytesUntilLimit() > 0) {
          if (!in.ReadVarint64(&v)) return std::nullopt;
          shape.push_back(static_cast<int64_t>(v));
        }
        in.PopLimit(limit);
        break;
      }
      case (3 << 3) | 2:
        if (!in.ReadVarint32(&n) || !in.ReadString(&dtype, static_cast<int>(n)))
          return std::nullopt;
        break;
      case (4 << 3) | 2:
        if (!in.ReadVarint64(&len)) return std::nullopt;
        have_data = true;
        break;
      default:
        return std::nullopt;  // end of the prefix without data, or a field this never sends
    }
  }
  size_t offset = static_cast<size_t>(in.CurrentPosition());
  if (b.Length() != offset + len || !ValidFloat32(shape, dtype, len)) return std::nullopt;
  at::Tensor t = at::empty(shape, torch::kFloat32);
  char* dst = static_cast<char*>(t.data_ptr());
  for (const grpc::Slice& s : slices) {
    if (offset >= s.size()) {
      offset -= s.size();
      continue;
    }
    const size_t n = s.size() - offset;
    std::memcpy(dst, s.begin() + offset, n);
    dst += n;
    offset = 0;
  }
  return std::make_pair(id, std::move(t));
}

grpc::ServerUnaryReactor* RawEchoService::Echo(grpc::CallbackServerContext* ctx,
                                               const grpc::ByteBuffer* req,
                                               grpc::ByteBuffer* reply) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  auto in = ParseRaw(*req);
  if (!in) {
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad tensor"));
    return reactor;
  }
  *reply = RawMessage(in->first, in->second);  // boundary N: the input is the output
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

void BM_GrpcRawEcho(benchmark::State& state) {
  auto ch = Connect(SharedGrpc<RawEchoService>().port);
  if (!ch) return state.SkipWithError("connect failed");
  const grpc::internal::RpcMethod method(kEchoMethod, grpc::internal::RpcMethod::NORMAL_RPC, ch);
  const at::Tensor x = MakeInput(state.range(0));
  uint64_t id = 0;
  at::Tensor out;
  auto echo = [&]() -> bool {
    const grpc::ByteBuffer req = RawMessage(++id, x);
    grpc::ByteBuffer reply;
    grpc::ClientContext ctx;
    if (!grpc::internal::BlockingUnaryCall(ch.get(), method, &ctx, req, &reply).ok()) return false;
    auto r = ParseRaw(reply);
    if (!r || r->first != id) return false;
    out = std::move(r->second);
    return true;
  };
  if (!echo()) return state.SkipWithError("warm-up echo failed");
  for (auto _ : state) {
    if (!echo()) return state.SkipWithError("echo failed");
    benchmark::DoNotOptimize(out.data_ptr());
  }
  if (!torch::equal(out, x)) return state.SkipWithError("echo returned other bytes");
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(x.nbytes()) * 2);
}

// 64 KB .. 16 MB, size by size: the four transports of one size run one after the other, so
// that load from elsewhere on a shared machine falls on all of them alike.
void RegisterAll() {
  for (int64_t s = 64 << 10; s <= 16 << 20; s *= 4) {
    for (auto [name, fn] :
         {std::pair{"BM_PlainEcho", &BM_PlainEcho}, std::pair{"BM_FrameEcho", &BM_FrameEcho},
          std::pair{"BM_GrpcEcho", &BM_GrpcEcho}, std::pair{"BM_GrpcRawEcho", &BM_GrpcRawEcho}}) {
      benchmark::RegisterBenchmark(name, fn)->Arg(s)->UseRealTime()->Unit(benchmark::kMicrosecond);
    }
  }
}

}  // namespace
}  // namespace splitinfer

int main(int argc, char** argv) {
  torch::set_num_threads(1);  // as transport_bench: one intra-op thread
  splitinfer::RegisterAll();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  splitinfer::SharedEdge().server->Stop();
  for (grpc::Server* s : splitinfer::GrpcServers()) s->Shutdown();
  return 0;
}

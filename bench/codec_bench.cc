// Wire codec throughput (issue 6; results in docs/benchmarks.md): encode and decode of each codec
// on the boundary tensors of ResNet-18 at 224x224 (seeded zoo weights, a seeded random image),
// i.e. real post-ReLU feature maps of the shapes the device sends.
//
//  BM_Encode/resnet18_k<K>/<codec>   Encode() of the tensor at boundary K
//  BM_Decode/resnet18_k<K>/<codec>   Decode() of that encoded body (validation included)
//
// Throughput (bytes_per_second) counts the float32 feature map, so codecs compare directly.
// Counters: ratio = float32 bytes / body bytes; zeros = share of exact zeros in the tensor.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cstdio>

#include "common/codec.h"
#include "common/model_zoo.h"

namespace splitinfer {
namespace {

const char* const kCodecs[] = {"fp32+zstd",   "fp16",  "fp16+zstd",  "int8",        "int8+zstd",
                               "int8+zstd:3", "int8c", "int8c+zstd", "int8c+zstd:3"};

void Counters(benchmark::State& state, const at::Tensor& t, const Encoded& e) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(t.nbytes()));
  state.counters["ratio"] =
      static_cast<double>(t.nbytes()) / static_cast<double>(std::max<size_t>(e.body_bytes(), 1));
  state.counters["body_bytes"] = static_cast<double>(e.body_bytes());
  state.counters["zeros"] = (t == 0).to(at::kFloat).mean().item<double>();
}

void Register(const std::string& name, const at::Tensor& t, const CodecSpec& spec) {
  benchmark::RegisterBenchmark(("BM_Encode/" + name).c_str(), [t, spec](benchmark::State& state) {
    Encoded last;
    for (auto _ : state) {
      Result<Encoded> e = Encode(t, spec);
      if (!e.ok()) return state.SkipWithError(e.status().ToString().c_str());
      benchmark::DoNotOptimize(e->body_data());
      last = std::move(*e);
    }
    Counters(state, t, last);
  })->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark(("BM_Decode/" + name).c_str(), [t, spec](benchmark::State& state) {
    Result<Encoded> e = Encode(t, spec);
    if (!e.ok()) return state.SkipWithError(e.status().ToString().c_str());
    for (auto _ : state) {
      Result<at::Tensor> y = Decode(*e, FrameLimits{});
      if (!y.ok()) return state.SkipWithError(y.status().ToString().c_str());
      benchmark::DoNotOptimize(y->data_ptr());
    }
    Counters(state, t, *e);
  })->Unit(benchmark::kMicrosecond);
}

}  // namespace
}  // namespace splitinfer

int main(int argc, char** argv) {
  using namespace splitinfer;
  torch::set_num_threads(1);  // a device: one core
  benchmark::Initialize(&argc, argv);
  auto model = BuildZooModel("resnet18", 1, ZooOptions{});
  if (!model.ok()) {
    fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  c10::InferenceMode guard;
  torch::manual_seed(1);
  at::Tensor x = torch::randn({1, 3, 224, 224});
  size_t at_k = 0;
  for (size_t k : {1, 2, 4, 6}) {  // [64,56,56] stem, [64,56,56], [128,28,28], [256,14,14]
    x = (*model)->RunRange(x, at_k, k);
    at_k = k;
    for (const char* c : kCodecs) {
      Register("resnet18_k" + std::to_string(k) + "/" + c, x.clone(), *CodecSpec::Parse(c));
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

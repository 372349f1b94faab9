// device_client: runs units 1..k of a model on this machine, sends the tensor at boundary k to an
// edge_server, which runs k+1..N and returns the output.
//
//   device_client --server 127.0.0.1:PORT --model resnet18 --split 3 --requests 20 --verify --json
//
// No inference is lost: when the edge cannot be reached, refuses a request, or vanishes while
// requests are in flight, the client finishes those inferences locally from the tensor it kept
// and says so in the record ("fallback").
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "common/model_zoo.h"
#include "common/torchscript_model.h"
#include "device/edge_client.h"

using namespace splitinfer;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

namespace {

double MsBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

struct Config {
  std::string server;
  std::string model = "resnet18";
  uint32_t version = 1;
  std::string torchscript;
  std::string split = "0";
  int requests = 10;
  int in_flight = 1;
  bool verify = false;
  bool json = false;
  uint64_t seed = 1;
  int threads = 0;
  int connect_timeout_ms = 1000;
  int io_timeout_ms = 30000;
  int reconnect_ms = 500;
  uint32_t deadline_ms = 0;
};

// One inference, from the device's first unit to its result.
struct Inference {
  uint64_t id = 0;
  size_t split = 0;
  at::Tensor input;       // kept for --verify
  at::Tensor boundary;    // the tensor at the split: kept until the edge answers
  Clock::time_point start;
  double device_ms = 0, send_ms = 0;
  Clock::time_point sent;
  uint64_t bytes_sent = 0;
};

class Runner {
 public:
  Runner(const Config& cfg, std::shared_ptr<SplitModel> model, EdgeClient* client)
      : cfg_(cfg), model_(std::move(model)), client_(client) {
    if (cfg_.server.empty()) {
      next_connect_ = Clock::time_point::max();
      last_error_ = "no --server given";
    }
  }

  // Runs `requests` inferences at boundary `split`; returns the records.
  std::vector<json> Run(size_t split) {
    records_.clear();
    const size_t n = model_->num_units();
    for (int i = 0; i < cfg_.requests; ++i) {
      Inference inf;
      inf.id = next_id_++;
      inf.split = split;
      {
        // Inputs differ per request but are reproducible from the seed.
        torch::manual_seed(cfg_.seed * 1000003 + inf.id);
        std::vector<int64_t> shape{1};
        shape.insert(shape.end(), model_->input_shape().begin(), model_->input_shape().end());
        inf.input = torch::randn(shape);
      }
      c10::InferenceMode guard;
      inf.start = Clock::now();
      inf.boundary = model_->RunRange(inf.input, 0, split);
      inf.device_ms = MsBetween(inf.start, Clock::now());
      if (split == n) {
        Finish(inf, inf.boundary, "local", nullptr, std::nullopt);
        continue;
      }
      std::string why;
      if (!EnsureConnected(&why)) {
        FinishLocally(inf, "edge unreachable: " + why);
        continue;
      }
      wire::InferRequest req;
      req.set_request_id(inf.id);
      req.set_model(model_->name());
      req.set_model_version(model_->version());
      req.set_boundary(static_cast<uint32_t>(split));
      req.set_deadline_ms(cfg_.deadline_ms);
      const auto t_send = Clock::now();
      Status st = client_->SendRequest(req, inf.boundary);
      inf.sent = Clock::now();
      inf.send_ms = MsBetween(t_send, inf.sent);
      if (!st.ok()) {
        if (st.code() == StatusCode::kResourceExhausted) {
          FinishLocally(inf, "edge refused: " + st.message());
        } else {
          OnConnectionLost(st);
          FinishLocally(inf, "send failed: " + st.ToString());
        }
        continue;
      }
      inf.bytes_sent = inf.boundary.nbytes();
      pending_.emplace(inf.id, std::move(inf));
      while (static_cast<int>(pending_.size()) >= cfg_.in_flight) ReadOne();
    }
    while (!pending_.empty()) ReadOne();
    return std::move(records_);
  }

 private:
  bool EnsureConnected(std::string* why) {
    if (client_->connected()) return true;
    if (Clock::now() < next_connect_) {
      *why = last_error_;
      return false;
    }
    Status st = client_->Connect();
    if (!st.ok()) {
      last_error_ = st.ToString();
      *why = last_error_;
      next_connect_ = Clock::now() + std::chrono::milliseconds(cfg_.reconnect_ms);
      return false;
    }
    CheckServerModel();
    return true;
  }

  // Warns once when the server's model does not have the shape this client built.
  void CheckServerModel() {
    for (const auto& m : client_->server_info().models()) {
      if (m.name() != model_->name() || m.version() != model_->version()) continue;
      std::vector<int64_t> shape(m.input_shape().begin(), m.input_shape().end());
      if (shape != model_->input_shape() || m.num_units() != model_->num_units()) {
        std::cerr << "device_client: warning: the server's " << m.name() << "@" << m.version()
                  << " differs from the local model (input shape or unit count); use the same "
                     "--input-size/--width-mult/--num-classes on both sides\n";
      }
    }
  }

  void ReadOne() {
    auto reply = client_->ReadReply();
    if (!reply.ok()) {
      OnConnectionLost(reply.status());
      auto lost = std::move(pending_);
      pending_.clear();
      for (auto& [id, inf] : lost) FinishLocally(inf, "edge lost: " + reply.status().ToString());
      return;
    }
    auto it = pending_.find(reply->request_id);
    if (it == pending_.end()) {
      std::cerr << "device_client: ignoring a reply for unknown request " << reply->request_id
                << "\n";
      return;
    }
    Inference inf = std::move(it->second);
    pending_.erase(it);
    if (!reply->status.ok()) {
      FinishLocally(inf, "edge refused: " + reply->status.ToString());
      return;
    }
    Finish(inf, reply->output, "edge", &reply.value(), std::nullopt);
  }

  void OnConnectionLost(const Status& st) {
    client_->Close();
    last_error_ = st.ToString();
    next_connect_ = Clock::now();  // the next request tries once more, then backs off
  }

  void FinishLocally(Inference& inf, const std::string& reason) {
    c10::InferenceMode guard;
    at::Tensor out = model_->RunRange(inf.boundary, inf.split, model_->num_units());
    Finish(inf, out, "fallback_local", nullptr, reason);
  }

  void Finish(Inference& inf, const at::Tensor& output, const char* where,
              const InferResult* edge, const std::optional<std::string>& fallback) {
    const auto end = Clock::now();
    json r;
    r["request_id"] = inf.id;
    r["model"] = model_->name();
    r["version"] = model_->version();
    r["split"] = inf.split;
    r["units"] = model_->num_units();
    r["ok"] = output.defined();
    r["completed_on"] = where;
    r["fallback"] = fallback ? json(*fallback) : json(nullptr);
    r["bytes_sent"] = inf.bytes_sent;
    r["device_ms"] = inf.device_ms;
    r["send_ms"] = inf.send_ms;
    r["edge_ms"] = edge ? edge->edge_compute_us / 1000.0 : 0.0;
    r["queue_ms"] = edge ? edge->queue_us / 1000.0 : 0.0;
    r["wait_ms"] = edge ? MsBetween(inf.sent, end) : 0.0;
    r["total_ms"] = MsBetween(inf.start, end);
    if (cfg_.verify) {
      c10::InferenceMode guard;
      at::Tensor ref = model_->RunRange(inf.input, 0, model_->num_units());
      at::Tensor out = output.to(at::kCPU).to(at::kFloat);
      const bool same_shape = out.sizes() == ref.sizes();
      r["max_abs_diff"] = same_shape ? (out - ref).abs().max().item<double>() : -1.0;
      r["top1_match"] =
          same_shape && out.dim() >= 1 &&
          out.flatten(1).argmax(1).equal(ref.flatten(1).argmax(1));
    }
    if (cfg_.json) std::cout << r.dump() << std::endl;
    records_.push_back(std::move(r));
  }

  const Config& cfg_;
  std::shared_ptr<SplitModel> model_;
  EdgeClient* client_;
  std::map<uint64_t, Inference> pending_;
  std::vector<json> records_;
  uint64_t next_id_ = 1;
  Clock::time_point next_connect_{};
  std::string last_error_ = "not connected";
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void PrintSummaryRow(const std::vector<json>& recs, bool verify) {
  if (recs.empty()) return;
  std::vector<double> dev, edge, total;
  int on_edge = 0, fallback = 0, verified = 0;
  for (auto& r : recs) {
    dev.push_back(r["device_ms"].get<double>());
    edge.push_back(r["edge_ms"].get<double>());
    total.push_back(r["total_ms"].get<double>());
    on_edge += r["completed_on"] == "edge";
    fallback += !r["fallback"].is_null();
    if (verify) {
      verified += r["max_abs_diff"].get<double>() >= 0 &&
                  r["max_abs_diff"].get<double>() <= 1e-5 && r["top1_match"].get<bool>();
    }
  }
  std::printf("%5d %12llu %10.2f %10.2f %10.2f %7d %8d %9s\n",
              recs.front()["split"].get<int>(),
              static_cast<unsigned long long>(recs.front()["bytes_sent"].get<uint64_t>()),
              Median(dev), Median(edge), Median(total), on_edge, fallback,
              verify ? (std::to_string(verified) + "/" + std::to_string(recs.size())).c_str()
                     : "-");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"splitinfer device client: runs units 1..k here and the rest on an edge_server"};
  Config cfg;
  ZooOptions zoo;
  std::vector<int64_t> ts_input_shape;
  app.add_option("--server", cfg.server, "edge_server HOST:PORT (omit to run everything locally)");
  app.add_option("--model", cfg.model, "zoo model name (or the name of --torchscript)");
  app.add_option("--version", cfg.version, "model version")->check(CLI::Range(1u, 1000000u));
  app.add_option("--torchscript", cfg.torchscript, "TorchScript chain file instead of the zoo");
  app.add_option("--split", cfg.split, "boundary k in 0..N, or 'all' for every k")->required();
  app.add_option("--requests", cfg.requests, "inferences per split")->check(CLI::Range(1, 1000000));
  app.add_option("--in-flight", cfg.in_flight, "requests outstanding at once on the connection")
      ->check(CLI::Range(1, 4096));
  app.add_flag("--verify", cfg.verify, "compare each result with a whole local run");
  app.add_flag("--json", cfg.json, "one JSON line per inference on stdout");
  app.add_option("--seed", cfg.seed, "seed of the random inputs");
  app.add_option("--input-size", zoo.input_size, "zoo CNNs: image height = width (as the server)")
      ->check(CLI::Range(16, 4096));
  app.add_option("--width-mult", zoo.width_mult, "zoo CNNs: channel multiplier (as the server)")
      ->check(CLI::Range(0.05, 4.0));
  app.add_option("--num-classes", zoo.num_classes)->check(CLI::Range(1, 100000));
  app.add_option("--mlp-width", zoo.mlp_width)->check(CLI::Range(1, 1 << 16));
  app.add_option("--mlp-layers", zoo.mlp_layers)->check(CLI::Range(1, 1000));
  app.add_option("--threads", cfg.threads, "LibTorch intra-op threads (0: default)")
      ->check(CLI::Range(0, 256));
  app.add_option("--connect-timeout-ms", cfg.connect_timeout_ms)->check(CLI::Range(1, 600000));
  app.add_option("--io-timeout-ms", cfg.io_timeout_ms)->check(CLI::Range(1, 3600000));
  app.add_option("--reconnect-ms", cfg.reconnect_ms, "wait before retrying a failed connect")
      ->check(CLI::Range(0, 3600000));
  app.add_option("--deadline-ms", cfg.deadline_ms, "edge deadline per request (0: server default)");
  CLI11_PARSE(app, argc, argv);

  if (cfg.threads > 0) torch::set_num_threads(cfg.threads);
  std::string error;
  if (!zoo.IsValid(&error)) {
    std::cerr << "device_client: " << error << "\n";
    return 2;
  }
  Result<std::shared_ptr<SplitModel>> model =
      cfg.torchscript.empty() ? BuildZooModel(cfg.model, cfg.version, zoo)
                              : LoadTorchScriptModel(cfg.torchscript, cfg.model, cfg.version, {});
  if (!model.ok()) {
    std::cerr << "device_client: " << model.status().ToString() << "\n";
    return 2;
  }
  const size_t n = (*model)->num_units();
  std::vector<size_t> splits;
  if (cfg.split == "all") {
    for (size_t k = 0; k <= n; ++k) splits.push_back(k);
  } else {
    try {
      size_t pos = 0;
      const long k = std::stol(cfg.split, &pos);
      if (pos != cfg.split.size() || k < 0 || static_cast<size_t>(k) > n) throw std::out_of_range("");
      splits.push_back(static_cast<size_t>(k));
    } catch (const std::exception&) {
      std::cerr << "device_client: --split must be 'all' or a number in 0.." << n << " ("
                << cfg.model << " has " << n << " units), got '" << cfg.split << "'\n";
      return 2;
    }
  }

  EdgeClientOptions copts;
  copts.connect_timeout = std::chrono::milliseconds(cfg.connect_timeout_ms);
  copts.io_timeout = std::chrono::milliseconds(cfg.io_timeout_ms);
  if (!cfg.server.empty()) {
    Status st = ParseHostPort(cfg.server, &copts.host, &copts.port);
    if (!st.ok()) {
      std::cerr << "device_client: --server: " << st.message() << "\n";
      return 2;
    }
  }
  EdgeClient client(copts);
  // Without --server every split but N completes through the local path, marked as such.
  Runner runner(cfg, *model, &client);

  if (!cfg.json) {
    std::printf("model %s@%u, %zu units, server %s\n", (*model)->name().c_str(),
                (*model)->version(), n, cfg.server.empty() ? "(none)" : cfg.server.c_str());
    std::printf("%5s %12s %10s %10s %10s %7s %8s %9s\n", "split", "bytes_sent", "device_ms",
                "edge_ms", "total_ms", "on_edge", "fallback", "verified");
  }
  int failures = 0;
  for (size_t k : splits) {
    auto recs = runner.Run(k);
    for (auto& r : recs) {
      failures += !r["ok"].get<bool>();
      if (cfg.verify) {
        failures += !(r["max_abs_diff"].get<double>() >= 0 &&
                      r["max_abs_diff"].get<double>() <= 1e-5 && r["top1_match"].get<bool>());
      }
    }
    if (!cfg.json) PrintSummaryRow(recs, cfg.verify);
  }
  client.Close();
  return failures == 0 ? 0 : 1;
}

// placement_bench: what issue 7 asks to measure about placement downloads, on loopback.
//
//   placement_bench [--model resnet18] [--repeats 5] [--devices 1,50] [--poll-ms 100]
//
// (a) Download throughput: a PlacementAgent downloading every unit of a version (streamed chunk
//     fetches, per-chunk SHA-256, pwrite, whole-file SHA-256, fsync, rename) against a plain
//     blocking TCP transfer of the same number of bytes between two threads of this process.
// (b) Time from a new version appearing in the edge's repository (its manifest renamed into
//     place) to every device running it, for each --devices count: every device polls the edge
//     every --poll-ms, the edge scans its repository every --poll-ms.
// (c) Planner time over the wire (the edge's planner_us) for the model.
// Everything runs in this process: a real EdgeServer with a RepoWatcher, and the devices as
// threads, each with its own store and connections. Prints a Markdown section.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include <torch/torch.h>
#include <CLI/CLI.hpp>
#include <boost/asio.hpp>

#include "common/cli_parse.h"
#include "common/log.h"
#include "common/model_repo.h"
#include "common/model_zoo.h"
#include "device/placement_agent.h"
#include "edge_server/edge_server.h"
#include "edge_server/repo_watcher.h"

using namespace splitinfer;
namespace fs = std::filesystem;
namespace sd = splitinfer::decision;
using Clock = std::chrono::steady_clock;
using boost::asio::ip::tcp;

namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// A plain blocking TCP transfer of `bytes` from one thread to another, in 1 MiB writes and
// reads, into a buffer (no hashing, no files): the bytes-on-the-wire baseline. With rate_bps > 0
// the receiver reads no faster than that (the same pacing as the agent's emulated downlink).
double PlainTransferSeconds(uint64_t bytes, double rate_bps = 0) {
  boost::asio::io_context io;
  tcp::acceptor acc(io, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  const auto port = acc.local_endpoint().port();
  std::thread sender([&] {
    boost::asio::io_context io2;
    tcp::socket s(io2);
    s.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
    std::vector<char> buf(1 << 20, 7);
    uint64_t left = bytes;
    while (left > 0) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(left, buf.size()));
      boost::asio::write(s, boost::asio::buffer(buf.data(), n));
      left -= n;
    }
  });
  tcp::socket r = acc.accept();
  std::vector<char> buf(1 << 20);
  const auto t0 = Clock::now();
  uint64_t got = 0;
  while (got < bytes) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(bytes - got, buf.size()));
    got += boost::asio::read(r, boost::asio::buffer(buf.data(), want));
    if (rate_bps > 0) {
      std::this_thread::sleep_until(t0 + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(8.0 * got / rate_bps)));
    }
  }
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  sender.join();
  return s;
}

PlacementAgentOptions DeviceOptions(uint16_t port, const std::string& model,
                                    const std::string& store, const sd::ModelProfile& profile) {
  PlacementAgentOptions o;
  o.edge.port = port;
  o.edge.io_timeout = std::chrono::milliseconds(60000);
  o.edge.connect_timeout = std::chrono::milliseconds(10000);
  o.model = model;
  o.store_root = store;
  o.profile = profile;
  o.cost.device_slowdown = 5.0;
  // A slow uplink and an endless version: the planner stores every unit (M* = N), so the
  // whole model is downloaded.
  o.law.rate_bps = Eigen::VectorXd::Constant(1, 0.05e6);
  o.law.stationary = Eigen::VectorXd::Ones(1);
  o.inferences_per_version = 1e12;
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"placement downloads on loopback: throughput, time to all devices, planner time"};
  std::string model = "resnet18", devices_text = "1,50", dir;
  int repeats = 5, poll_ms = 100;
  std::vector<double> link_mbps{100.0, 1000.0};
  app.add_option("--model", model, "zoo model (published at the zoo's defaults)");
  app.add_option("--repeats", repeats, "downloads for (a)")->check(CLI::Range(1, 100));
  app.add_option("--devices", devices_text, "device counts for (b)");
  app.add_option("--poll-ms", poll_ms, "device and repository poll period")
      ->check(CLI::Range(1, 100000));
  app.add_option("--dir", dir, "working directory (default: a temporary one, removed)");
  app.add_option("--link-mbps", link_mbps, "emulated downlink rates for the paced comparison");
  SPLITINFER_CLI_PARSE(app, argc, argv);
  torch::set_num_threads(1);
  log::SetLevel("warn");
  const bool own_dir = dir.empty();
  if (own_dir)
    dir = (fs::temp_directory_path() / ("placement_bench_" + std::to_string(getpid()))).string();
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string repo = dir + "/repo";
  ZooOptions zoo;
  {
    auto m = BuildZooModel(model, 1, zoo);
    if (!m.ok() || !WriteVersion(**m, zoo, VersionDir(repo, model, 1)).ok()) {
      std::cerr << "placement_bench: cannot publish " << model << "\n";
      return 1;
    }
  }
  auto registry = std::make_shared<ModelRegistry>(at::Device(at::kCPU));
  RepoWatcherOptions ro;
  ro.root = repo;
  ro.poll = std::chrono::milliseconds(poll_ms);
  RepoWatcher watcher(ro, registry);
  if (!watcher.ScanOnce().ok()) return 1;
  watcher.Start();
  EdgeServerOptions so;
  so.max_connections = 1024;
  so.max_connections_per_address = 0;  // every simulated device connects from 127.0.0.1
  so.max_pending_handshakes = 1024;
  EdgeServer server(so, registry);
  if (!server.Start().ok()) return 1;
  auto served = registry->FindVersion(model, 1);
  const Manifest& manifest = *(*served)->manifest;
  uint64_t total = 0;
  for (auto& u : manifest.units) total += static_cast<uint64_t>(u.bytes);
  // The device's profile: unit shapes from the model, times do not matter here.
  sd::ModelProfile profile;
  profile.model = model;
  profile.input_bytes = (*served)->model->input_bytes();
  for (auto& u : (*served)->model->units()) {
    profile.units.push_back({u.name, 1.0, u.output_bytes, u.param_bytes, u.flops, u.layers});
  }

  // (a) throughput.
  std::vector<double> plain, download, planner_us;
  for (int i = 0; i < repeats; ++i) {
    plain.push_back(PlainTransferSeconds(total));
    const std::string store = dir + "/dl_" + std::to_string(i);
    PlacementAgent agent(DeviceOptions(server.port(), model, store, profile));
    auto rep = agent.Update();
    if (!rep.ok() || rep->bytes_downloaded != total) {
      std::cerr << "placement_bench: download failed: "
                << (rep.ok() ? "short" : rep.status().ToString()) << "\n";
      return 1;
    }
    download.push_back(rep->download_s);
    planner_us.push_back(static_cast<double>(rep->plan.planner_us()));
    fs::remove_all(store);
  }
  const double plain_mbs = total / Median(plain) / 1e6, dl_mbs = total / Median(download) / 1e6;
  // SHA-256 speed here: what one verification pass over the bytes costs.
  double sha_mbs = 0;
  {
    std::vector<uint8_t> buf(64 << 20, 3);
    const auto t = Clock::now();
    volatile size_t sink = Sha256Hex(buf.data(), buf.size()).size();
    (void)sink;
    sha_mbs = buf.size() / std::chrono::duration<double>(Clock::now() - t).count() / 1e6;
  }
  // The same over an emulated downlink: both read no faster than the link.
  struct Paced {
    double mbps, plain_s, download_s;
  };
  std::vector<Paced> paced;
  for (double mbps : link_mbps) {
    std::vector<double> p, d;
    for (int i = 0; i < std::min(repeats, 2); ++i) {
      p.push_back(PlainTransferSeconds(total, mbps * 1e6));
      const std::string store = dir + "/paced_" + std::to_string(i);
      PlacementAgentOptions o = DeviceOptions(server.port(), model, store, profile);
      o.emulated_downlink_bps = mbps * 1e6;
      PlacementAgent agent(o);
      auto rep = agent.Update();
      if (!rep.ok() || rep->bytes_downloaded != total) {
        std::cerr << "placement_bench: paced download failed\n";
        return 1;
      }
      d.push_back(rep->download_s);
      fs::remove_all(store);
    }
    paced.push_back({mbps, Median(p), Median(d)});
  }

  // (b) time to all devices.
  std::vector<int> counts;
  {
    std::stringstream ss(devices_text);
    std::string t;
    while (std::getline(ss, t, ',')) counts.push_back(std::stoi(t));
  }
  uint32_t version = 1;
  struct Row {
    int devices;
    double first_s, median_s, last_s;
  };
  std::vector<Row> rows;
  for (int n : counts) {
    std::vector<std::unique_ptr<PlacementAgent>> agents;
    for (int d = 0; d < n; ++d) {
      agents.push_back(std::make_unique<PlacementAgent>(
          DeviceOptions(server.port(), model,
                        dir + "/dev" + std::to_string(n) + "_" + std::to_string(d), profile)));
      auto rep = agents.back()->Update();  // on the current version first
      if (!rep.ok()) {
        std::cerr << "placement_bench: device " << d << ": " << rep.status() << "\n";
        return 1;
      }
    }
    const uint32_t next = version + 1;
    std::atomic<bool> stop{false};
    std::vector<double> arrived(n, -1.0);
    Clock::time_point t0;
    std::atomic<bool> published{false};
    std::vector<std::thread> threads;
    for (int d = 0; d < n; ++d) {
      threads.emplace_back([&, d] {
        while (!stop.load()) {
          auto rep = agents[d]->Update();
          if (rep.ok() && rep->changed && rep->to_version == next && published.load()) {
            arrived[d] = std::chrono::duration<double>(Clock::now() - t0).count();
            return;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(3 * poll_ms));
    {
      // Publish: unit files first, then the manifest (WriteVersion renames it into place last).
      auto m = BuildZooModel(model, next, zoo);
      (void)PerturbWeights(**m, 0.01, next);
      const std::string staging = dir + "/staging";
      fs::remove_all(staging);
      if (!WriteVersion(**m, zoo, staging).ok()) return 1;
      fs::rename(staging, VersionDir(repo, model, next));  // appears at once
      t0 = Clock::now();
      published = true;
    }
    const auto give_up = Clock::now() + std::chrono::minutes(5);
    while (std::count(arrived.begin(), arrived.end(), -1.0) > 0 && Clock::now() < give_up)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    stop = true;
    for (auto& t : threads) t.join();
    if (std::count(arrived.begin(), arrived.end(), -1.0) > 0) {
      std::cerr << "placement_bench: not every device reached v" << next << "\n";
      return 1;
    }
    std::vector<double> sorted = arrived;
    std::sort(sorted.begin(), sorted.end());
    rows.push_back({n, sorted.front(), Median(sorted), sorted.back()});
    version = next;
    for (int d = 0; d < n; ++d)
      fs::remove_all(dir + "/dev" + std::to_string(n) + "_" + std::to_string(d));
  }
  server.Stop();
  watcher.Stop();

  std::cout << std::fixed << std::setprecision(3);
  std::cout
      << "### (a) Download throughput vs a plain TCP transfer of the same bytes (target >= 0.9)\n\n"
      << model << ": " << manifest.units.size() << " unit files, " << total / 1e6 << " MB, "
      << manifest.chunk_bytes / 1024 << " KiB chunks; medians of " << repeats << ".\n\n"
      << "| transfer | seconds | MB/s | ratio |\n|---|---:|---:|---:|\n"
      << "| plain TCP, buffer only | " << Median(plain) << " | " << std::setprecision(0)
      << plain_mbs << " | 1.00 |\n"
      << std::setprecision(3) << "| placement download (verified, on disk) | " << Median(download)
      << " | " << std::setprecision(0) << dl_mbs << " | " << std::setprecision(2)
      << dl_mbs / plain_mbs << " |\n\n"
      << "One SHA-256 pass runs at " << std::setprecision(0) << sha_mbs
      << " MB/s here. Over an emulated downlink (both sides read no faster than the link; "
      << "medians of " << std::min(repeats, 2) << "):\n\n"
      << "| link | plain s | download s | ratio |\n|---|---:|---:|---:|\n";
  for (auto& p : paced) {
    std::cout << std::setprecision(0) << "| " << p.mbps << " Mbit/s | " << std::setprecision(3)
              << p.plain_s << " | " << p.download_s << " | " << std::setprecision(2)
              << p.plain_s / p.download_s << " |\n";
  }
  std::cout << "\n";
  std::cout << std::setprecision(3)
            << "### (b) Time from a new version in the repository to every device on it\n\n"
            << "Devices poll the edge every " << poll_ms
            << " ms; the edge scans its repository every " << poll_ms
            << " ms. Seconds after the version's directory appeared.\n\n"
            << "| devices | first | median | last |\n|---:|---:|---:|---:|\n";
  for (auto& r : rows)
    std::cout << "| " << r.devices << " | " << r.first_s << " | " << r.median_s << " | " << r.last_s
              << " |\n";
  std::cout << "\n### (c) Planner time over the wire (target <= 10 ms)\n\n"
            << "Median planner_us reported by the edge for " << model
            << " (BI, every M): " << std::setprecision(0) << Median(planner_us) << " us.\n";
  if (own_dir) fs::remove_all(dir);
  return 0;
}

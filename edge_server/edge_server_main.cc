// edge_server: serves the second half of split inferences.
//
//   edge_server --listen 127.0.0.1:0 --models resnet18,mlp [--admin-listen 127.0.0.1:0]
//   edge_server --config edge_server.toml [--OPTION VALUE ...]
//
// Every option can come from a --config file (TOML: KEY = VALUE with the long option names, see
// edge_server/edge_server.example.toml), parsed strictly (common/config_file.h); options on the
// command line override it. A syntax error, an unknown key, a value of the wrong type or out of
// range, or a file that is missing or not a small regular file is an error naming the file and
// line (exit 2).
// Prints "listening HOST:PORT" on stdout once ready, then "admin HOST:PORT" when the admin HTTP
// endpoint is on. On SIGINT or SIGTERM it drains (EdgeServer::Drain, up to --drain-timeout-s),
// logs what completed and what was dropped, and stops; a second signal ends the drain at once.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <thread>

#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include "common/config_file.h"
#include "common/frame_io.h"
#include "common/handshake.h"
#include "common/log.h"
#include "common/zoo_cli.h"
#include "edge_server/admin_http.h"
#include "edge_server/edge_server.h"
#include "edge_server/repo_watcher.h"

using namespace splitinfer;

int main(int argc, char** argv) {
  // Block the stop signals before any thread starts (LibTorch's pools included), so that every
  // thread inherits the mask and the main thread alone takes them with sigwait().
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  CLI::App app{"splitinfer edge server: runs units k+1..N of split inferences"};
  app.option_defaults()->always_capture_default();  // defaults in --help and --print-config
  app.set_config("--config", "",
                 "read options from this TOML file (KEY = VALUE, KEY a long option name "
                 "without --; see edge_server/edge_server.example.toml); the command line "
                 "overrides it");
  app.allow_config_extras(CLI::config_extras_mode::error);  // an unknown key is an error
  // Strict TOML (common/config_file.h): syntax errors, unknown keys and wrong types name the
  // file and line.
  const std::shared_ptr<StrictTomlConfig> config_reader = UseStrictTomlConfig(&app);
  std::string listen = "127.0.0.1:0";
  std::string models = "resnet18";
  RepoWatcherOptions repo;
  int repo_poll_ms = static_cast<int>(repo.poll.count());
  double retire_grace_s = std::chrono::duration<double>(repo.retire_grace).count();
  ZooOptions zoo;
  EdgeServerOptions opts;
  double max_body_mb = static_cast<double>(opts.limits.max_body_bytes) / (1 << 20);
  int intra_op_threads = 0;
  int idle_timeout_s = static_cast<int>(opts.idle_timeout.count() / 1000);
  int io_timeout_ms = static_cast<int>(opts.io_timeout.count());
  std::string log_level = "info";
  std::string log_format = "text";
  bool print_config = false;
  bool force_cpu = false;
  std::string admin_listen;
  double drain_timeout_s = 10;

  app.add_option("--listen", listen, "HOST:PORT to listen on (port 0: any free port)");
  app.add_option("--models", models,
                 "comma-separated NAME[@VERSION] (zoo), NAME[@VERSION]=FILE.pt (TorchScript) or "
                 "digits_branchy=FILE (early exits, weights from train_exits)");
  app.add_option("--model-repo", repo.root,
                 "serve every version under DIR/<model>/<version>/ (common/model_repo.h) and pick "
                 "up new ones while running; --models is then optional");
  app.add_option("--repo-poll-ms", repo_poll_ms, "how often the model repository is scanned")
      ->check(CLI::Range(10, 3600000));
  app.add_option("--retire-grace-s", retire_grace_s,
                 "a superseded version is served until nothing used it for this long")
      ->check(CLI::Range(0.0, 1e7));
  app.add_option("--fault-corrupt-chunks", opts.fault_corrupt_chunks,
                 "TESTING: flip a byte in the first N unit chunks sent");
  app.add_option("--fault-drop-after-chunks", opts.fault_drop_after_chunks,
                 "TESTING: drop the connection that would send chunk number N (once)");
  AddZooOptions(app, &zoo);
  app.add_option("--io-threads", opts.io_threads, "threads doing network I/O")
      ->check(CLI::Range(1, 256));
  app.add_option("--compute-threads", opts.compute_threads, "threads running inferences")
      ->check(CLI::Range(1, 256));
  app.add_option("--intra-op-threads", intra_op_threads,
                 "LibTorch threads per inference (0: LibTorch's default)")
      ->check(CLI::Range(0, 256));
  int64_t batch_delay_us = opts.max_batch_delay.count();
  app.add_option("--max-batch-size", opts.max_batch_size,
                 "dynamic batching: run up to this many requests for the same model version and "
                 "boundary as one batch (1: off)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--max-batch-delay-us", batch_delay_us,
                 "dynamic batching: how long a request may wait for others to join its batch")
      ->check(CLI::Range(0, 1000000));
  app.add_option("--max-in-flight", opts.max_in_flight, "outstanding requests per connection")
      ->check(CLI::Range(1, 4096));
  app.add_option("--max-global-in-flight", opts.max_global_in_flight,
                 "requests in flight over all connections before new ones get RESOURCE_EXHAUSTED "
                 "(0: unlimited)")
      ->check(CLI::Range(0u, 1u << 24));
  app.add_option("--max-connections", opts.max_connections,
                 "device connections at once; a newcomer past it evicts the oldest unfinished "
                 "handshake or the connection idle longest, and is refused only when all are busy")
      ->check(CLI::Range(1, 100000));
  app.add_option("--max-connections-per-address", opts.max_connections_per_address,
                 "connections one client address may hold (0: no cap); past it a newcomer evicts "
                 "that address's idle connection, or is refused")
      ->check(CLI::Range(0, 100000));
  app.add_option("--max-pending-handshakes", opts.max_pending_handshakes,
                 "connections that have not completed the Hello (with a token: not "
                 "authenticated) at once; past it the oldest is evicted")
      ->check(CLI::Range(1, 100000));
  int handshake_timeout_ms = static_cast<int>(opts.handshake_timeout.count());
  app.add_option("--handshake-timeout-ms", handshake_timeout_ms,
                 "from accept to an accepted Hello, TLS included (one deadline)")
      ->check(CLI::Range(1, 600000));
  int crowded_idle_timeout_s = static_cast<int>(opts.crowded_idle_timeout.count() / 1000);
  app.add_option("--crowded-idle-timeout-s", crowded_idle_timeout_s,
                 "while at least 3/4 of --max-connections are open, close a connection idle "
                 "this long")
      ->check(CLI::Range(1, 86400));
  app.add_option("--max-body-mb", max_body_mb, "largest request tensor accepted (MiB)")
      ->check(CLI::Range(0.001, 65536.0));
  app.add_option("--idle-timeout-s", idle_timeout_s, "close a connection idle this long")
      ->check(CLI::Range(1, 86400));
  app.add_option("--io-timeout-ms", io_timeout_ms, "deadline to finish a frame or a write")
      ->check(CLI::Range(1, 3600000));
  app.add_option("--admin-listen", admin_listen,
                 "HOST:PORT of the admin HTTP endpoint (/healthz, /readyz, /metrics; port 0: any "
                 "free port); off when not given");
  app.add_option("--drain-timeout-s", drain_timeout_s,
                 "on SIGTERM/SIGINT, wait this long for received requests to be answered")
      ->check(CLI::Range(0.0, 86400.0));
  std::string auth_token_file;
  app.add_option("--tls-cert", opts.tls_cert_file,
                 "PEM certificate chain: devices must connect with TLS (with --tls-key; "
                 "scripts/make_certs.sh makes test ones)");
  app.add_option("--tls-key", opts.tls_key_file, "PEM private key of --tls-cert");
  app.add_option("--auth-token-file", auth_token_file,
                 "file whose first line is a token every device must send in its Hello "
                 "(refused: UNAUTHENTICATED); use with TLS");
  app.add_flag("--cpu", force_cpu, "run on the CPU even when CUDA is available");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.add_option("--log-format", log_format,
                 "text, or json: one object per line with ts (UTC, ms), level, logger, msg")
      ->check(CLI::IsMember({"text", "json"}));
  app.add_flag("--print-config", print_config,
               "print the effective options (command line over --config file over defaults) in "
               "--config format, and exit")
      ->configurable(false);
  if (auto rc = ParseWithConfigFile(app, *config_reader, argc, argv, "edge_server")) return *rc;
  if (print_config) {
    std::cout << app.config_to_str(/*default_also=*/true, /*write_description=*/true);
    return 0;
  }

  log::SetName("edge");
  log::SetFormat(log_format);
  log::SetLevel(log_level);
  if (intra_op_threads > 0) torch::set_num_threads(intra_op_threads);

  Status st = ParseHostPort(listen, &opts.host, &opts.port);
  if (!st.ok()) {
    std::cerr << "edge_server: --listen: " << st.message() << "\n";
    return 2;
  }
  AdminHttpOptions admin_opts;
  if (!admin_listen.empty()) {
    st = ParseHostPort(admin_listen, &admin_opts.host, &admin_opts.port);
    if (!st.ok()) {
      std::cerr << "edge_server: --admin-listen: " << st.message() << "\n";
      return 2;
    }
  }
  opts.limits.max_body_bytes = static_cast<uint64_t>(max_body_mb * (1 << 20));
  opts.idle_timeout = std::chrono::seconds(idle_timeout_s);
  opts.handshake_timeout = std::chrono::milliseconds(handshake_timeout_ms);
  opts.crowded_idle_timeout = std::chrono::seconds(crowded_idle_timeout_s);
  opts.io_timeout = std::chrono::milliseconds(io_timeout_ms);
  opts.max_batch_delay = std::chrono::microseconds(batch_delay_us);
  if (opts.tls_cert_file.empty() != opts.tls_key_file.empty()) {
    std::cerr << "edge_server: TLS needs both --tls-cert and --tls-key\n";
    return 2;
  }
  if (!auth_token_file.empty()) {
    auto token = ReadSecretFile(auth_token_file);
    if (!token.ok()) {
      std::cerr << "edge_server: --auth-token-file: " << token.status().message() << "\n";
      return 2;
    }
    opts.auth_token = *token;
    if (opts.tls_cert_file.empty()) {
      log::Warn("--auth-token-file without TLS: the token crosses the network in clear text");
    }
  }
  std::string error;
  if (!zoo.IsValid(&error)) {
    std::cerr << "edge_server: " << error << "\n";
    return 2;
  }

  const at::Device device = force_cpu ? at::Device(at::kCPU) : PreferredDevice();
  if (device.is_cuda()) {
    // Full float32 on the GPU: TF32 would make split results drift from the device's by ~1e-3.
    at::globalContext().setAllowTF32CuBLAS(false);
    at::globalContext().setAllowTF32CuDNN(false);
  }
  auto registry = std::make_shared<ModelRegistry>(device);
  const bool models_given = app.count("--models") > 0;
  if (models_given || repo.root.empty()) {
    st = AddModelsFromSpec(models, zoo, registry.get());
    if (!st.ok()) {
      std::cerr << "edge_server: --models: " << st.ToString() << "\n";
      return 2;
    }
  }
  std::unique_ptr<RepoWatcher> watcher;
  if (!repo.root.empty()) {
    repo.poll = std::chrono::milliseconds(repo_poll_ms);
    repo.retire_grace = std::chrono::milliseconds(static_cast<int64_t>(retire_grace_s * 1000));
    watcher = std::make_unique<RepoWatcher>(repo, registry);
    auto first = watcher->ScanOnce();  // serve what is there before accepting devices
    if (!first.ok()) {
      std::cerr << "edge_server: --model-repo: " << first.status().ToString() << "\n";
      return 2;
    }
    watcher->Start();
  }

  EdgeServer server(opts, registry);
  st = server.Start();
  if (!st.ok()) {
    std::cerr << "edge_server: " << st.ToString() << "\n";
    return 1;
  }
  log::Info("serving " + std::to_string(registry->List().size()) + " model(s) on " +
            DeviceName(device));
  std::cout << "listening " << opts.host << ":" << server.port() << std::endl;
  std::unique_ptr<AdminHttpServer> admin;
  if (!admin_listen.empty()) {
    AdminHandlers handlers;
    handlers.not_ready_reason = [&server] { return server.NotReadyReason(); };
    handlers.metrics_text = [&server] { return server.MetricsText(); };
    admin = std::make_unique<AdminHttpServer>(admin_opts, std::move(handlers));
    st = admin->Start();
    if (!st.ok()) {
      std::cerr << "edge_server: --admin-listen: " << st.ToString() << "\n";
      server.Stop();
      return 1;
    }
    std::cout << "admin " << admin_opts.host << ":" << admin->port() << std::endl;
  }

  int sig = 0;
  sigwait(&signals, &sig);
  char deadline_text[32];
  std::snprintf(deadline_text, sizeof deadline_text, "%g", drain_timeout_s);
  log::Info("signal " + std::to_string(sig) + ": draining (up to " + deadline_text +
            " s; a second signal stops at once)");
  if (watcher) watcher->Stop();
  // The drain runs on its own thread so that this one keeps taking signals: a second one
  // aborts it.
  DrainResult drained;
  std::atomic<bool> drain_done{false};
  std::thread drain_thread([&] {
    drained = server.Drain(std::chrono::milliseconds(static_cast<int64_t>(drain_timeout_s * 1000)));
    drain_done = true;
  });
  const timespec poll_interval{0, 20 * 1000 * 1000};
  while (!drain_done.load()) {
    if (sigtimedwait(&signals, nullptr, &poll_interval) > 0) {
      log::Warn("second signal: stopping without waiting for the drain");
      server.AbortDrain();
    }
  }
  drain_thread.join();
  log::Info("drain: " + std::to_string(drained.completed) +
            " request(s) completed during the drain, " + std::to_string(drained.dropped) +
            " dropped on " + std::to_string(drained.dropped_connections) + " connection(s) (" +
            std::to_string(drained.took.count()) + " ms" +
            (drained.aborted           ? ", aborted by a second signal"
             : drained.deadline_passed ? ", deadline passed"
                                       : "") +
            ")");
  server.Stop();
  if (admin) admin->Stop();
  log::Info("stopped: " + std::to_string(server.stats().requests_ok.load()) + " requests ok, " +
            std::to_string(server.stats().requests_failed.load()) + " failed, " +
            std::to_string(server.stats().frames_rejected.load()) + " frames rejected");
  return 0;
}

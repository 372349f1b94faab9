// RepoWatcher: keeps a ModelRegistry in step with a model repository on disk (issue 7 item 1;
// layout in common/model_repo.h), so that a version published while the server runs is served
// with no restart.
//
// Every `poll` it scans the repository (ScanRepository: directory listing and manifests, no
// hashing). A version directory it has not served yet is loaded with LoadVersion, which checks
// every unit file's size and SHA-256 before reading weights, given per-chunk digests when the
// manifest has none (FillChunkDigests), and added. A directory without a manifest is a version
// still being published (model_repo writes manifest.json last): it is looked at again on the
// next scan. One that fails to load is logged once and retried only when its manifest changes.
//
// Retirement: a version that is no longer its model's newest (or whose directory is gone) stops
// being served once nothing has used it (an inference, a chunk download, a device announcing it
// holds it) for `retire_grace`. A device that asks for it afterwards gets NOT_FOUND naming the
// newest version, and re-plans. The newest version of a model is never retired.
//
// Thread safety: Start/Stop from one thread; ScanOnce may be called instead of Start (tests).
#pragma once

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "common/status.h"
#include "edge_server/model_registry.h"

namespace splitinfer {

struct RepoWatcherOptions {
  std::string root;
  std::chrono::milliseconds poll{500};
  std::chrono::milliseconds retire_grace{60000};
};

struct RepoScanResult {
  int added = 0;
  int retired = 0;
  int failed = 0;  // versions that failed to load this scan
};

class RepoWatcher {
 public:
  RepoWatcher(RepoWatcherOptions options, std::shared_ptr<ModelRegistry> registry)
      : options_(std::move(options)), registry_(std::move(registry)) {}
  ~RepoWatcher() { Stop(); }
  RepoWatcher(const RepoWatcher&) = delete;
  RepoWatcher& operator=(const RepoWatcher&) = delete;

  // One pass: load new versions, retire unused old ones. kNotFound when the root is missing.
  Result<RepoScanResult> ScanOnce();
  // Polls in a background thread.
  void Start();
  void Stop();

 private:
  void Loop();

  const RepoWatcherOptions options_;
  const std::shared_ptr<ModelRegistry> registry_;
  // Versions that failed to load: dir -> the manifest's last write time when it failed.
  std::map<std::string, std::filesystem::file_time_type> failed_;
  // Versions retired: never loaded again while their directory stays (a device asking for one
  // re-plans onto the newest).
  std::set<std::pair<std::string, uint32_t>> retired_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace splitinfer

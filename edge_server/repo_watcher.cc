#include "edge_server/repo_watcher.h"

#include <filesystem>
#include <set>

#include "common/log.h"
#include "common/model_repo.h"

namespace splitinfer {
namespace fs = std::filesystem;

Result<RepoScanResult> RepoWatcher::ScanOnce() {
  auto scan = ScanRepository(options_.root);
  if (!scan.ok()) return scan.status();
  RepoScanResult result;
  std::set<std::pair<std::string, uint32_t>> on_disk;
  for (VersionInfo& info : *scan) {
    if (info.version == 0) continue;  // not a version directory
    const fs::path manifest_path = fs::path(info.dir) / kManifestFile;
    std::error_code ec;
    if (!fs::exists(manifest_path, ec)) continue;  // still being published
    on_disk.insert({info.model, info.version});
    if (registry_->Contains(info.model, info.version)) continue;
    if (retired_.count({info.model, info.version})) continue;
    const auto mtime = fs::last_write_time(manifest_path, ec);
    if (auto it = failed_.find(info.dir); it != failed_.end() && it->second == mtime) continue;
    Status st = info.valid ? Status::Ok() : InvalidArgumentError(info.error);
    std::shared_ptr<SplitModel> model;
    if (st.ok()) {
      auto loaded = LoadVersion(info.dir);  // verifies every unit's digest first
      if (loaded.ok()) {
        model = std::move(*loaded);
      } else {
        st = loaded.status();
      }
    }
    if (st.ok() && info.manifest.units.front().chunk_sha256.empty()) {
      st = FillChunkDigests(info.dir, &info.manifest);
    }
    if (st.ok()) st = registry_->AddVersion(model, info.dir, std::move(info.manifest));
    if (!st.ok()) {
      // info.error is already a whole status string ("INVALID_ARGUMENT: ...").
      log::Warn("model repository: not serving " + info.dir + ": " +
                (info.valid ? st.ToString() : info.error));
      failed_[info.dir] = mtime;
      ++result.failed;
      continue;
    }
    failed_.erase(info.dir);
    ++result.added;
    log::Info("model repository: serving " + info.model + "@" + std::to_string(info.version) +
              " (" + std::to_string(model->num_units()) + " units) from " + info.dir);
  }
  // Retire superseded versions that nothing used for the grace period. Versions given with
  // --models (not from the repository) are left alone.
  const int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::steady_clock::now().time_since_epoch())
                             .count();
  const int64_t grace_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(options_.retire_grace).count();
  std::map<std::string, uint32_t> newest;
  auto versions = registry_->Versions();
  for (auto& v : versions) {
    uint32_t& n = newest[v->model->name()];
    n = std::max(n, v->model->version());
  }
  for (auto& v : versions) {
    if (!v->from_repository()) continue;
    const std::string& name = v->model->name();
    const uint32_t version = v->model->version();
    const bool superseded = version != newest[name] || !on_disk.count({name, version});
    if (!superseded) continue;
    if (version == newest[name] && !on_disk.count({name, version})) {
      // The newest version's directory vanished: keep serving it (nothing else to serve).
      continue;
    }
    const int64_t idle_ns = now_ns - v->last_used_ns.load(std::memory_order_relaxed);
    if (idle_ns < grace_ns) continue;
    if (registry_->Remove(name, version)) {
      retired_.insert({name, version});
      ++result.retired;
      log::Info("model repository: retired " + name + "@" + std::to_string(version) +
                " (unused for " + std::to_string(idle_ns / 1000000) + " ms; newest is " +
                std::to_string(newest[name]) + ")");
    }
  }
  return result;
}

void RepoWatcher::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { Loop(); });
}

void RepoWatcher::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void RepoWatcher::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    lock.unlock();
    auto r = ScanOnce();
    if (!r.ok()) log::Warn("model repository: " + r.status().ToString());
    lock.lock();
    cv_.wait_for(lock, options_.poll, [this] { return stop_; });
  }
}

}  // namespace splitinfer

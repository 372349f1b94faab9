// ModelRegistry: the models an edge_server serves, keyed by (name, version), all on one compute
// device. Versions come from --models at start-up or from the model repository (--model-repo,
// edge_server/repo_watcher.h), which adds new versions and retires old ones while the server
// runs. Every method is thread-safe (one mutex; a lookup holds it for a map search). A request
// keeps the version it found alive through its shared_ptr, so retiring a version never pulls it
// from under an inference in flight.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "common/model_repo.h"
#include "common/model_zoo.h"
#include "common/split_model.h"
#include "common/status.h"
#include "splitinfer.pb.h"

namespace splitinfer {

// One served version. Repository versions also carry their manifest (with per-chunk digests)
// and directory, which placement and unit downloads need.
struct ServedVersion {
  std::shared_ptr<SplitModel> model;
  std::string dir;                           // repository versions only
  std::shared_ptr<const Manifest> manifest;  // repository versions only
  std::string manifest_json;                 // ManifestToJson(*manifest): a PlacementReply body
  std::chrono::steady_clock::time_point added;
  // Last time a request, a download or a device's placement named this version (steady clock,
  // ns since epoch): retirement waits for a quiet period after it.
  mutable std::atomic<int64_t> last_used_ns{0};

  bool from_repository() const { return manifest != nullptr; }
  void Touch() const;
};

class ModelRegistry {
 public:
  explicit ModelRegistry(at::Device device) : device_(device) {}

  // Moves `model` to device() and adds it. kInvalidArgument if (name, version) is taken.
  Status Add(std::shared_ptr<SplitModel> model);
  // A repository version: `manifest` must name the model's name, version and unit count.
  Status AddVersion(std::shared_ptr<SplitModel> model, std::string dir, Manifest manifest);
  // Stops serving (name, version); requests already holding it finish. False if absent.
  bool Remove(const std::string& name, uint32_t version);

  // version 0 = the newest version of `name`. kNotFound names what exists; for a model whose
  // requested version is gone it says so and names the newest, so that a device re-plans.
  // Marks the version used.
  Result<std::shared_ptr<const ServedVersion>> FindVersion(const std::string& name,
                                                           uint32_t version) const;
  Result<std::shared_ptr<const SplitModel>> Find(const std::string& name, uint32_t version) const;
  bool Contains(const std::string& name, uint32_t version) const;

  std::vector<wire::ModelInfo> List() const;
  // Every served version (a snapshot).
  std::vector<std::shared_ptr<const ServedVersion>> Versions() const;
  const at::Device& device() const { return device_; }
  bool empty() const;

 private:
  at::Device device_;
  mutable std::mutex mu_;
  std::map<std::pair<std::string, uint32_t>, std::shared_ptr<ServedVersion>> models_;
};

// Adds the models named in `spec`, a comma-separated list of entries
//   NAME[@VERSION]              a zoo model (version 1 when omitted), built with `zoo`
//   NAME[@VERSION]=FILE.pt      a TorchScript chain (input shape from FILE.pt.json)
//   digits_branchy=FILE         the early-exit model (common/exits/) with weights from FILE
//                               (build/bin/train_exits --out FILE)
// Errors name the entry at fault.
Status AddModelsFromSpec(const std::string& spec, const ZooOptions& zoo, ModelRegistry* registry);

}  // namespace splitinfer

// ModelRegistry: the models an edge_server serves, keyed by (name, version), all on one compute
// device. Filled before the server starts and read-only afterwards, so lookups from any thread
// need no lock.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/model_zoo.h"
#include "common/split_model.h"
#include "common/status.h"
#include "splitinfer.pb.h"

namespace splitinfer {

class ModelRegistry {
 public:
  explicit ModelRegistry(at::Device device) : device_(device) {}

  // Moves `model` to device() and adds it. kInvalidArgument if (name, version) is taken.
  Status Add(std::shared_ptr<SplitModel> model);

  // version 0 = the newest version of `name`. kNotFound names what exists.
  Result<std::shared_ptr<const SplitModel>> Find(const std::string& name, uint32_t version) const;

  std::vector<wire::ModelInfo> List() const;
  const at::Device& device() const { return device_; }
  bool empty() const { return models_.empty(); }

 private:
  at::Device device_;
  std::map<std::pair<std::string, uint32_t>, std::shared_ptr<SplitModel>> models_;
};

// Adds the models named in `spec`, a comma-separated list of entries
//   NAME[@VERSION]              a zoo model (version 1 when omitted), built with `zoo`
//   NAME[@VERSION]=FILE.pt      a TorchScript chain (input shape from FILE.pt.json)
// Errors name the entry at fault.
Status AddModelsFromSpec(const std::string& spec, const ZooOptions& zoo, ModelRegistry* registry);

}  // namespace splitinfer

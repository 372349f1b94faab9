#include "edge_server/model_registry.h"

#include <charconv>
#include <sstream>

#include "common/torchscript_model.h"

namespace splitinfer {

Status ModelRegistry::Add(std::shared_ptr<SplitModel> model) {
  auto key = std::make_pair(model->name(), model->version());
  if (models_.count(key)) {
    return InvalidArgumentError("model " + model->name() + "@" + std::to_string(model->version()) +
                                " added twice");
  }
  model->To(device_);
  models_.emplace(std::move(key), std::move(model));
  return Status::Ok();
}

Result<std::shared_ptr<const SplitModel>> ModelRegistry::Find(const std::string& name,
                                                              uint32_t version) const {
  if (version == 0) {
    // Newest version: the last key with this name.
    auto it = models_.upper_bound({name, UINT32_MAX});
    if (it != models_.begin() && std::prev(it)->first.first == name) return {std::prev(it)->second};
  } else {
    auto it = models_.find({name, version});
    if (it != models_.end()) return {it->second};
  }
  std::ostringstream have;
  for (auto& [key, m] : models_)
    have << (have.tellp() > 0 ? ", " : "") << key.first << "@" << key.second;
  return NotFoundError("unknown model " + name + (version ? "@" + std::to_string(version) : "") +
                       "; this server has: " + have.str());
}

std::vector<wire::ModelInfo> ModelRegistry::List() const {
  std::vector<wire::ModelInfo> out;
  for (auto& [key, m] : models_) {
    wire::ModelInfo info;
    info.set_name(m->name());
    info.set_version(m->version());
    info.set_num_units(static_cast<uint32_t>(m->num_units()));
    for (int64_t d : m->input_shape()) info.add_input_shape(d);
    out.push_back(std::move(info));
  }
  return out;
}

Status AddModelsFromSpec(const std::string& spec, const ZooOptions& zoo, ModelRegistry* registry) {
  std::stringstream ss(spec);
  std::string entry;
  int count = 0;
  while (std::getline(ss, entry, ',')) {
    if (entry.empty()) continue;
    std::string path;
    if (auto eq = entry.find('='); eq != std::string::npos) {
      path = entry.substr(eq + 1);
      entry = entry.substr(0, eq);
    }
    std::string name = entry;
    uint32_t version = 1;
    if (auto at = entry.find('@'); at != std::string::npos) {
      name = entry.substr(0, at);
      const std::string v = entry.substr(at + 1);
      auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), version);
      if (ec != std::errc() || ptr != v.data() + v.size() || version == 0) {
        return InvalidArgumentError("model entry '" + entry + "': version must be a number >= 1");
      }
    }
    if (name.empty()) return InvalidArgumentError("model entry '" + entry + "' has no name");
    Result<std::shared_ptr<SplitModel>> model = path.empty()
                                                    ? BuildZooModel(name, version, zoo)
                                                    : LoadTorchScriptModel(path, name, version, {});
    if (!model.ok()) return model.status().WithPrefix("model entry '" + entry + "': ");
    SPLITINFER_RETURN_IF_ERROR(registry->Add(std::move(*model)));
    ++count;
  }
  if (count == 0) return InvalidArgumentError("no models given");
  return Status::Ok();
}

}  // namespace splitinfer

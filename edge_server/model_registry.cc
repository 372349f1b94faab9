#include "edge_server/model_registry.h"

#include <charconv>
#include <sstream>

#include "common/exits/branchy_model.h"
#include "common/torchscript_model.h"

namespace splitinfer {

namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void ServedVersion::Touch() const { last_used_ns.store(NowNs(), std::memory_order_relaxed); }

Status ModelRegistry::Add(std::shared_ptr<SplitModel> model) {
  auto v = std::make_shared<ServedVersion>();
  model->To(device_);
  v->model = std::move(model);
  v->added = std::chrono::steady_clock::now();
  v->Touch();
  std::lock_guard<std::mutex> lock(mu_);
  auto key = std::make_pair(v->model->name(), v->model->version());
  if (models_.count(key)) {
    return InvalidArgumentError("model " + key.first + "@" + std::to_string(key.second) +
                                " added twice");
  }
  models_.emplace(std::move(key), std::move(v));
  return Status::Ok();
}

Status ModelRegistry::AddVersion(std::shared_ptr<SplitModel> model, std::string dir,
                                 Manifest manifest) {
  if (manifest.model != model->name() || manifest.version != model->version() ||
      manifest.units.size() != model->num_units()) {
    return InvalidArgumentError("manifest of " + dir + " does not describe " + model->name() + "@" +
                                std::to_string(model->version()));
  }
  auto v = std::make_shared<ServedVersion>();
  model->To(device_);
  v->model = std::move(model);
  v->dir = std::move(dir);
  v->manifest_json = ManifestToJson(manifest);
  v->manifest = std::make_shared<const Manifest>(std::move(manifest));
  v->added = std::chrono::steady_clock::now();
  v->Touch();
  std::lock_guard<std::mutex> lock(mu_);
  auto key = std::make_pair(v->model->name(), v->model->version());
  if (models_.count(key)) {
    return InvalidArgumentError("model " + key.first + "@" + std::to_string(key.second) +
                                " added twice");
  }
  models_.emplace(std::move(key), std::move(v));
  return Status::Ok();
}

bool ModelRegistry::Remove(const std::string& name, uint32_t version) {
  std::lock_guard<std::mutex> lock(mu_);
  return models_.erase({name, version}) > 0;
}

Result<std::shared_ptr<const ServedVersion>> ModelRegistry::FindVersion(const std::string& name,
                                                                        uint32_t version) const {
  std::lock_guard<std::mutex> lock(mu_);
  // Newest version of `name`: the last key with this name.
  auto newest = models_.upper_bound({name, UINT32_MAX});
  const bool have_name = newest != models_.begin() && std::prev(newest)->first.first == name;
  std::shared_ptr<const ServedVersion> found;
  if (version == 0) {
    if (have_name) found = std::prev(newest)->second;
  } else if (auto it = models_.find({name, version}); it != models_.end()) {
    found = it->second;
  }
  if (found) {
    found->Touch();
    return found;
  }
  if (have_name) {
    return NotFoundError("model " + name + "@" + std::to_string(version) +
                         " is not served (retired or never published); the newest is " + name +
                         "@" + std::to_string(std::prev(newest)->first.second) + ": re-plan");
  }
  std::ostringstream have;
  for (auto& [key, m] : models_)
    have << (have.tellp() > 0 ? ", " : "") << key.first << "@" << key.second;
  return NotFoundError("unknown model " + name + (version ? "@" + std::to_string(version) : "") +
                       "; this server has: " + have.str());
}

Result<std::shared_ptr<const SplitModel>> ModelRegistry::Find(const std::string& name,
                                                              uint32_t version) const {
  auto v = FindVersion(name, version);
  if (!v.ok()) return v.status();
  // Aliasing: the model lives as long as its ServedVersion.
  return std::shared_ptr<const SplitModel>(*v, (*v)->model.get());
}

bool ModelRegistry::Contains(const std::string& name, uint32_t version) const {
  std::lock_guard<std::mutex> lock(mu_);
  return models_.count({name, version}) > 0;
}

bool ModelRegistry::empty() const {
  std::lock_guard<std::mutex> lock(mu_);
  return models_.empty();
}

std::vector<std::shared_ptr<const ServedVersion>> ModelRegistry::Versions() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<const ServedVersion>> out;
  for (auto& [key, v] : models_) out.push_back(v);
  return out;
}

std::vector<wire::ModelInfo> ModelRegistry::List() const {
  std::vector<wire::ModelInfo> out;
  for (auto& v : Versions()) {
    const SplitModel& m = *v->model;
    wire::ModelInfo info;
    info.set_name(m.name());
    info.set_version(m.version());
    info.set_num_units(static_cast<uint32_t>(m.num_units()));
    for (int64_t d : m.input_shape()) info.add_input_shape(d);
    if (const auto* b = dynamic_cast<const exits::BranchyModel*>(&m)) {
      for (size_t e = 0; e < b->num_exits(); ++e) {
        info.add_exit_after_units(static_cast<uint32_t>(b->exit_after_unit(e)));
      }
    }
    out.push_back(std::move(info));
  }
  return out;
}

namespace {
// digits_branchy[@V]=FILE: the early-exit model with the weights train_exits wrote.
Result<std::shared_ptr<SplitModel>> LoadBranchyForServing(const std::string& path,
                                                          uint32_t version) {
  if (path.empty()) {
    return InvalidArgumentError(
        "digits_branchy needs its trained weights: digits_branchy=FILE (build/bin/train_exits "
        "--out FILE)");
  }
  // Any width train_exits wrote; versions tell variants apart (digits_branchy@2=w4.pt, ...).
  auto model = exits::LoadBranchyModelAnyWidth(path, version);
  if (!model.ok()) return model.status();
  return std::shared_ptr<SplitModel>(std::move(*model));
}
}  // namespace

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
    Result<std::shared_ptr<SplitModel>> model = InternalError("not built");
    if (name == "digits_branchy") {
      model = LoadBranchyForServing(path, version);
    } else {
      model = path.empty() ? BuildZooModel(name, version, zoo)
                           : LoadTorchScriptModel(path, name, version, {});
    }
    if (!model.ok()) return model.status().WithPrefix("model entry '" + entry + "': ");
    SPLITINFER_RETURN_IF_ERROR(registry->Add(std::move(*model)));
    ++count;
  }
  if (count == 0) return InvalidArgumentError("no models given");
  return Status::Ok();
}

}  // namespace splitinfer

#include "device/unit_store.h"

#include <filesystem>
#include <utility>

namespace splitinfer {

UnitStore::UnitStore(std::string root) : root_(std::move(root)) {}

std::string UnitStore::VersionDirOf(const std::string& model, uint32_t version) const {
  return VersionDir(root_, model, version);
}

Status UnitStore::Prepare(const Manifest&) { return UnimplementedError("UnitStore::Prepare"); }

Result<std::vector<size_t>> UnitStore::MissingChunks(const Manifest&, size_t) {
  return UnimplementedError("UnitStore::MissingChunks");
}

Status UnitStore::PutChunk(const Manifest&, size_t, size_t, const uint8_t*, size_t) {
  return UnimplementedError("UnitStore::PutChunk");
}

Status UnitStore::FinishUnit(const Manifest&, size_t) {
  return UnimplementedError("UnitStore::FinishUnit");
}

Status UnitStore::Commit(const Manifest&, size_t) {
  return UnimplementedError("UnitStore::Commit");
}

Result<PlacedVersion> UnitStore::Current(const std::string&) const {
  return UnimplementedError("UnitStore::Current");
}

Result<std::pair<PlacedVersion, std::shared_ptr<SplitModel>>> UnitStore::LoadCurrent(
    const std::string&) const {
  return UnimplementedError("UnitStore::LoadCurrent");
}

Status UnitStore::GarbageCollect(const std::string&, uint32_t) {
  return UnimplementedError("UnitStore::GarbageCollect");
}

int64_t UnitStore::BytesHeld(const std::string&, uint32_t) const { return 0; }

}  // namespace splitinfer

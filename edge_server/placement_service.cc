#include "edge_server/placement_service.h"

#include <fstream>

#include "common/decision/placement_wire.h"

namespace splitinfer {

Result<PlacementAnswer> PlanPlacement(const ModelRegistry& registry,
                                      const wire::PlacementRequest& request) {
  auto newest = registry.FindVersion(request.model(), 0);
  if (!newest.ok()) return newest.status();
  const ServedVersion& v = **newest;
  if (!v.from_repository()) {
    return FailedPreconditionError("model " + request.model() +
                                   " is not served from a model repository: nothing to place "
                                   "(start edge_server with --model-repo)");
  }
  if (request.held_version() != 0 && request.held_version() != v.model->version()) {
    // The device still runs its held version: keep it from being retired under the device.
    auto held = registry.FindVersion(request.model(), request.held_version());
    (void)held;
  }
  const SplitModel& m = *v.model;
  const Manifest& manifest = *v.manifest;
  decision::ModelProfile shape;
  shape.model = m.name();
  int64_t input_numel = 1;
  for (int64_t d : m.input_shape()) input_numel *= d;
  shape.input_bytes = input_numel * static_cast<int64_t>(sizeof(float));
  for (size_t i = 0; i < m.num_units(); ++i) {
    decision::UnitProfile u;
    u.name = m.unit(i).name;
    u.output_bytes = m.unit(i).output_bytes;
    u.param_bytes = manifest.units[i].bytes;  // what storing the unit downloads
    u.flops = m.unit(i).flops;
    shape.units.push_back(std::move(u));
  }
  auto reply = decision::PlanPlacementRequest(std::move(shape), request);
  if (!reply.ok()) return reply.status();
  PlacementAnswer answer;
  answer.reply = std::move(*reply);
  answer.reply.set_model(m.name());
  answer.reply.set_version(m.version());
  answer.reply.set_num_units(static_cast<uint32_t>(m.num_units()));
  answer.version = *newest;
  return answer;
}

Result<FetchRange> CheckFetch(const ModelRegistry& registry, const wire::FetchRequest& request,
                              uint32_t max_chunks) {
  if (request.version() == 0) {
    return InvalidArgumentError("fetch: version must be given (the one the placement named)");
  }
  auto v = registry.FindVersion(request.model(), request.version());
  if (!v.ok()) return v.status();
  if (!(*v)->from_repository()) {
    return FailedPreconditionError("fetch: " + request.model() +
                                   " is not served from a model repository");
  }
  const Manifest& manifest = *(*v)->manifest;
  if (request.unit() >= manifest.units.size()) {
    return InvalidArgumentError("fetch: unit " + std::to_string(request.unit()) +
                                " out of range (" + std::to_string(manifest.units.size()) +
                                " units)");
  }
  const size_t chunks = manifest.units[request.unit()].chunk_sha256.size();
  if (request.first_chunk() >= chunks || request.num_chunks() == 0) {
    return InvalidArgumentError("fetch: chunks [" + std::to_string(request.first_chunk()) + ", +" +
                                std::to_string(request.num_chunks()) + ") out of range (unit " +
                                std::to_string(request.unit()) + " has " + std::to_string(chunks) +
                                ")");
  }
  FetchRange r;
  r.version = *v;
  r.unit = request.unit();
  r.first = request.first_chunk();
  const uint64_t want = std::min<uint64_t>(request.num_chunks(), max_chunks);
  r.end = static_cast<uint32_t>(std::min<uint64_t>(chunks, r.first + want));
  return r;
}

Status ReadChunk(const ServedVersion& version, uint32_t unit, uint32_t chunk,
                 std::vector<uint8_t>* out) {
  if (!version.from_repository()) return FailedPreconditionError("not a repository version");
  const Manifest& manifest = *version.manifest;
  if (unit >= manifest.units.size()) {
    return InvalidArgumentError("unit " + std::to_string(unit) + " out of range");
  }
  const ManifestUnit& u = manifest.units[unit];
  const int64_t offset = static_cast<int64_t>(chunk) * manifest.chunk_bytes;
  const int64_t size = std::min<int64_t>(manifest.chunk_bytes, u.bytes - offset);
  if (size <= 0) return InvalidArgumentError("chunk " + std::to_string(chunk) + " out of range");
  const std::string path = version.dir + "/" + u.file;
  std::ifstream f(path, std::ios::binary);
  if (!f) return NotFoundError("cannot open " + path);
  out->resize(static_cast<size_t>(size));
  f.seekg(offset);
  f.read(reinterpret_cast<char*>(out->data()), size);
  if (f.gcount() != size) {
    return InternalError(path + " is shorter than its manifest says (" +
                         std::to_string(offset + f.gcount()) + " of " + std::to_string(u.bytes) +
                         " bytes)");
  }
  return Status::Ok();
}

}  // namespace splitinfer

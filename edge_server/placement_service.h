// The edge's side of model placement (issue 7 item 2), separate from the session machinery in
// edge_server.cc: planning a PlacementRequest against the newest repository version of a model,
// and reading unit-file chunks for FetchRequests.
//
// Thread safety: free functions over a thread-safe registry and immutable served versions.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "edge_server/model_registry.h"
#include "splitinfer.pb.h"

namespace splitinfer {

// The reply to `request` (code OK) for the newest version of request.model() that came from
// the model repository, and that version (its manifest_json is the reply's body). Marks the
// version the device says it holds as used, so it is not retired under the device.
// kNotFound: no such model; kFailedPrecondition: the model is served, but not from a
// repository (nothing to download); kInvalidArgument: a malformed request (the field named).
struct PlacementAnswer {
  wire::PlacementReply reply;
  std::shared_ptr<const ServedVersion> version;
};
Result<PlacementAnswer> PlanPlacement(const ModelRegistry& registry,
                                      const wire::PlacementRequest& request);

// Checks a FetchRequest against what is served and returns the version and the chunk range
// [first, end) it asks for (at most max_chunks of them). kNotFound for a version not served
// (retired: the message names the newest), kInvalidArgument for a bad unit or range.
struct FetchRange {
  std::shared_ptr<const ServedVersion> version;
  uint32_t unit = 0;
  uint32_t first = 0;
  uint32_t end = 0;
};
Result<FetchRange> CheckFetch(const ModelRegistry& registry, const wire::FetchRequest& request,
                              uint32_t max_chunks);

// Reads chunk `chunk` of unit `unit` from the version's directory into `out`: exactly the
// manifest's chunk length (the last chunk of a unit may be shorter). The bytes are not hashed
// here: the device verifies them. kNotFound / kInternal when the file is missing or short.
Status ReadChunk(const ServedVersion& version, uint32_t unit, uint32_t chunk,
                 std::vector<uint8_t>* out);

}  // namespace splitinfer

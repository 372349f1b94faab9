// The device's store of placed units (issue 7, model placement): for each model, the units 1..m
// of one version, downloaded from the edge chunk by chunk, every chunk checked against the
// manifest's per-chunk SHA-256 before it is written, every unit checked against its whole-file
// SHA-256 before it becomes final, and a placement switched atomically by one rename.
// Pure files, no network: the placement agent feeds it the chunks it fetched.
//
// Layout, under the store root:
//   <root>/<model>/<version>/manifest.json           the edge's manifest (common/model_repo.h)
//   <root>/<model>/<version>/unit_<i>.pt             a final unit file: complete and verified
//   <root>/<model>/<version>/unit_<i>.pt.partial     a unit being downloaded (chunks pwritten)
//   <root>/<model>/placed.json                       {"model", "version", "m"}: the placement
//
// Crash safety: a unit becomes final by fsync + rename of its .partial file, a placement by
// writing placed.json.tmp, fsync, rename and fsync of the directory. Commit verifies every unit
// [0, m) again before the rename, so after a crash at any point placed.json names either the old
// placement (whose files GarbageCollect has not touched) or the new one, complete.
//
// Errors: kInvalidArgument when the bytes are wrong (a chunk's length or digest, a unit file's
// size or digest): refetch them. kFailedPrecondition when the call is wrong for the store (unit
// or chunk index out of range, a manifest without chunk digests, a model name with a directory
// part or "..", PutChunk before Prepare, a manifest that differs from the one already stored for
// that version). kNotFound when nothing is placed or a unit file is missing. kInternal on I/O
// errors. Messages name the file and the field.
//
// Thread safety: one thread at a time per (model, version) for Prepare, PutChunk, FinishUnit,
// MissingChunks and Commit (PutChunk of distinct chunks of one unit may run concurrently: they
// pwrite disjoint ranges). Current, LoadCurrent and BytesHeld may be called from any thread,
// concurrently with the download and the Commit of another version of the same model: they see
// the old placement or the new one, never a mix. GarbageCollect waits for LoadCurrent calls in
// flight (a shared mutex) so that it never deletes the files a LoadCurrent is reading.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "common/model_repo.h"
#include "common/split_model.h"
#include "common/status.h"

namespace splitinfer {

inline constexpr const char* kPlacedFile = "placed.json";

struct PlacedVersion {
  std::string model;
  uint32_t version = 0;
  size_t m = 0;       // units [0, m) are on the device
  std::string dir;    // <root>/<model>/<version>
  Manifest manifest;  // read from dir, checked against model and version
};

class UnitStore {
 public:
  explicit UnitStore(std::string root);

  const std::string& root() const { return root_; }
  // "<root>/<model>/<version>".
  std::string VersionDirOf(const std::string& model, uint32_t version) const;

  // Writes the manifest into the version directory (creating it) if it is not there yet.
  // Idempotent: an identical manifest already there is ok. A different one for a version that is
  // not placed replaces it and drops that version's unit files (they belong to other bytes); for
  // the placed version it is kFailedPrecondition.
  Status Prepare(const Manifest& manifest);

  // Chunks of unit `unit` still to fetch, ascending: all of them if nothing is on disk; none for
  // a final unit_<k>.pt that verifies; for a .partial file, every chunk whose bytes on disk do not
  // match its digest (so a resumed download refetches only those). A final file that does not
  // verify cannot be used: it is moved back to .partial and its bad chunks are listed.
  Result<std::vector<size_t>> MissingChunks(const Manifest& manifest, size_t unit);

  // Verifies the chunk against manifest.units[unit].chunk_sha256[chunk] and its expected length
  // (chunk_bytes, the last one shorter), then pwrites it at its offset into unit_<k>.pt.partial.
  // A length or digest mismatch is kInvalidArgument and writes nothing.
  Status PutChunk(const Manifest& manifest, size_t unit, size_t chunk, const uint8_t* data,
                  size_t size);

  // When every chunk is present: verifies size and whole-file SHA-256, fsyncs and renames
  // .partial -> unit_<k>.pt. Ok at once when the final file is already there and verifies.
  // kInvalidArgument when the file does not verify (MissingChunks then says which chunks).
  Status FinishUnit(const Manifest& manifest, size_t unit);

  // The atomic switch on disk: m <= num_units, the stored manifest equals `manifest`, every unit
  // [0, m) is final and verifies (checked again, whole-file SHA-256), then placed.json is written
  // through a temp file + fsync + rename. Only after Commit does Current() name the new version.
  // m = 0 is a placement of no unit (the edge runs everything).
  Status Commit(const Manifest& manifest, size_t m);

  // What placed.json names (kNotFound only when nothing is placed). Validates it: the model name,
  // the version's manifest (read and checked against model and version), m <= num_units;
  // kInvalidArgument naming placed.json otherwise. Unit files are not hashed here (LoadCurrent
  // does).
  Result<PlacedVersion> Current(const std::string& model) const;

  // Loads the current placement: builds the zoo model from the manifest's options and loads units
  // [0, m) with LoadUnitsInto (which verifies their digests first: unverified weights are never
  // run). Units >= m of the returned model hold the zoo's seeded weights, not the version's: run
  // only units [0, m) of it.
  Result<std::pair<PlacedVersion, std::shared_ptr<SplitModel>>> LoadCurrent(
      const std::string& model) const;

  // Deletes the version directories of `model` other than the current one and `keep_also`
  // (0 = none). With nothing placed, keeps only keep_also. Entries that are not version
  // directories are left alone. Fails without deleting anything when placed.json is unreadable.
  Status GarbageCollect(const std::string& model, uint32_t keep_also = 0);

  // Bytes of the final unit files (unit_<i>.pt, not .partial) held for `model` at `version`;
  // 0 when there are none.
  int64_t BytesHeld(const std::string& model, uint32_t version) const;

 private:
  std::string root_;
  // Shared by LoadCurrent, exclusive in GarbageCollect (see the class comment).
  mutable std::shared_mutex gc_mu_;
};

}  // namespace splitinfer

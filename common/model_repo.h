// The model repository on disk (issue 7 item 1): versions of zoo models with their weights, one
// file per split unit, and a manifest with per-unit sizes and SHA-256 digests.
//
// Layout, under a repository root (e.g. "models"):
//   <root>/<name>/<version>/manifest.json
//   <root>/<name>/<version>/unit_<i>.pt      i = 0..N-1, unit i of SplitModel (unit(i))
// A unit file holds the unit's parameters and buffers (torch::serialize::OutputArchive, keys are
// the torch names with '.' written as '/'); loading them into a freshly built zoo model of the
// same name and options reproduces the written model bit for bit.
//
// manifest.json:
//   {"model": "resnet18", "version": 2,
//    "zoo": {"input_size", "width_mult", "num_classes", "mlp_width", "mlp_layers"},
//    "num_units": N, "chunk_bytes": C,
//    "units": [{"index": i, "name": "stem", "file": "unit_0.pt", "bytes": file size,
//               "param_bytes": UnitInfo::param_bytes, "sha256": 64 lowercase hex,
//               "chunks": [64 lowercase hex, ...]}, ...]}
// "chunks" holds the SHA-256 of each C-byte piece of the unit file (the last one shorter): the
// device downloads a unit in such chunks and checks each one before writing it, so a corrupted
// chunk costs one chunk, not the unit. Manifests written before chunks existed have neither
// "chunk_bytes" nor "chunks"; they still read (chunk_sha256 empty) and FillChunkDigests adds them.
//
// Nothing here runs unverified weights: LoadVersion checks every unit file's size and digest
// before it reads any of it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/model_zoo.h"
#include "common/split_model.h"
#include "common/status.h"

namespace splitinfer {

// SHA-256 (OpenSSL EVP) as 64 lowercase hex digits.
std::string Sha256Hex(const void* data, size_t size);
// Of a file's contents. kNotFound when it cannot be opened, kInternal on a read error.
Result<std::string> Sha256File(const std::string& path);

// Download chunk size: 1 MiB by default; a manifest may say anything in [kMinChunkBytes,
// kMaxChunkBytes] (the upper bound caps what a device buffers per chunk).
inline constexpr int64_t kDefaultChunkBytes = 1 << 20;
inline constexpr int64_t kMinChunkBytes = 4096;
inline constexpr int64_t kMaxChunkBytes = 4 << 20;

struct ManifestUnit {
  size_t index = 0;
  std::string name;
  std::string file;  // relative to the version directory
  int64_t bytes = 0;
  int64_t param_bytes = 0;
  std::string sha256;
  // SHA-256 of each chunk of Manifest::chunk_bytes bytes (the last one shorter), in file order;
  // empty in a manifest written before chunks existed.
  std::vector<std::string> chunk_sha256;

  // ceil(bytes / chunk_bytes); 0 when chunk_bytes <= 0.
  size_t num_chunks(int64_t chunk_bytes) const;
  // Offset and length of chunk c (c < num_chunks(chunk_bytes)).
  int64_t chunk_offset(int64_t chunk_bytes, size_t c) const {
    return static_cast<int64_t>(c) * chunk_bytes;
  }
  int64_t chunk_length(int64_t chunk_bytes, size_t c) const;
};

struct Manifest {
  std::string model;
  uint32_t version = 0;
  ZooOptions zoo;  // seed is not recorded: the weights come from the unit files
  int64_t chunk_bytes = kDefaultChunkBytes;
  std::vector<ManifestUnit> units;
};

// Whether every unit lists its chunk digests (what a chunked download needs).
bool HasChunkDigests(const Manifest& m);

inline constexpr const char* kManifestFile = "manifest.json";

// "<root>/<name>/<version>".
std::string VersionDir(const std::string& root, const std::string& name, uint32_t version);

// Writes the unit files then manifest.json (last, through a rename) into `dir`, creating it,
// with chunk digests of `chunk_bytes`-byte chunks.
// `model` must be a zoo model built with `zoo` (its name and version go into the manifest).
// Errors: kInvalidArgument for a model that is not a zoo model or chunk_bytes outside
// [kMinChunkBytes, kMaxChunkBytes], kInternal on I/O errors.
Status WriteVersion(const SplitModel& model, const ZooOptions& zoo, const std::string& dir,
                    int64_t chunk_bytes = kDefaultChunkBytes);

// Parses and validates a manifest: model name (a zoo name), version, zoo options, num_units
// equal to the number of units, indexes 0..N-1 in order, non-empty unit names, bytes > 0,
// param_bytes >= 0, sha256 of 64 lowercase hex digits, and files that are plain relative names
// (no "..", no absolute path, no directory part). When present, chunk_bytes in
// [kMinChunkBytes, kMaxChunkBytes] and, on every unit (all or none), "chunks" with
// ceil(bytes / chunk_bytes) digests of 64 lowercase hex digits. kInvalidArgument naming `source`
// (a path, or where the text came from) and the field.
Result<Manifest> ParseManifest(const std::string& json_text, const std::string& source);

// The manifest as JSON text (what WriteVersion writes); ParseManifest gives back an equal
// Manifest. "chunks" is written only for units that have chunk digests.
std::string ManifestToJson(const Manifest& m);

// Reads the file and parses it (ParseManifest). kNotFound when the file is missing.
Result<Manifest> ReadManifest(const std::string& path);

// Computes the chunk digests of every unit file of `version_dir` with manifest->chunk_bytes (for a
// manifest written before chunks existed), verifying each file's size and whole SHA-256 against
// the manifest in the same pass. On error (naming the file) the manifest is unchanged.
Status FillChunkDigests(const std::string& version_dir, Manifest* manifest);

// Checks unit k's file in `version_dir` against the manifest: size, then SHA-256.
// kNotFound when the file is missing, kInvalidArgument on a size or digest mismatch or a bad k;
// messages name the file.
Status VerifyUnit(const std::string& version_dir, const Manifest& manifest, size_t k);

// Verifies every unit file of `manifest` (all of them, before reading any weights), then loads
// them into `model`, which must be a zoo model with the manifest's units (names and count) that
// no other thread uses yet. On error the model may hold a mix of weights: drop it.
Status LoadWeightsInto(SplitModel& model, const std::string& version_dir, const Manifest& manifest);

// The same for units [0, m) only (m <= N; m = N is LoadWeightsInto): verifies those files, then
// loads them. Files of units >= m are not read and need not exist; those units keep the weights
// the model had.
Status LoadUnitsInto(SplitModel& model, const std::string& version_dir, const Manifest& manifest,
                     size_t m);

// Reads <version_dir>/manifest.json, builds the zoo model with the manifest's options, verifies
// every unit's digest and loads the weights. Any mismatch fails with the file named.
Result<std::shared_ptr<SplitModel>> LoadVersion(const std::string& version_dir);

// Adds seeded Gaussian noise to every floating-point parameter (not buffers) of a zoo model:
// p += scale * rms(p) * N(0, 1) (scale * N(0, 1) where rms(p) = 0). Stands in for retraining.
// Same rule as LoadWeightsInto: no other thread may use the model.
Status PerturbWeights(SplitModel& model, double scale, uint64_t seed);

struct VersionInfo {
  std::string model;
  uint32_t version = 0;
  std::string dir;
  bool valid = false;
  std::string error;  // why not, when !valid
  Manifest manifest;  // when valid
};

// Every <root>/<name>/<version> directory, sorted by (name, version). A directory whose
// manifest is missing or invalid, or names another model or version than its path, is listed
// with valid = false and the reason (not an error). Unit files are not hashed here (see
// VerifyUnit). kNotFound when root is not a directory.
Result<std::vector<VersionInfo>> ScanRepository(const std::string& root);

}  // namespace splitinfer

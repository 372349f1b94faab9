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
//    "num_units": N,
//    "units": [{"index": i, "name": "stem", "file": "unit_0.pt", "bytes": file size,
//               "param_bytes": UnitInfo::param_bytes, "sha256": 64 lowercase hex}, ...]}
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

struct ManifestUnit {
  size_t index = 0;
  std::string name;
  std::string file;  // relative to the version directory
  int64_t bytes = 0;
  int64_t param_bytes = 0;
  std::string sha256;
};

struct Manifest {
  std::string model;
  uint32_t version = 0;
  ZooOptions zoo;  // seed is not recorded: the weights come from the unit files
  std::vector<ManifestUnit> units;
};

inline constexpr const char* kManifestFile = "manifest.json";

// "<root>/<name>/<version>".
std::string VersionDir(const std::string& root, const std::string& name, uint32_t version);

// Writes the unit files then manifest.json (last, through a rename) into `dir`, creating it.
// `model` must be a zoo model built with `zoo` (its name and version go into the manifest).
// Errors: kInvalidArgument for a model that is not a zoo model, kInternal on I/O errors.
Status WriteVersion(const SplitModel& model, const ZooOptions& zoo, const std::string& dir);

// Reads and validates a manifest: model name (a zoo name), version, zoo options, num_units
// equal to the number of units, indexes 0..N-1 in order, non-empty unit names, bytes > 0,
// param_bytes >= 0, sha256 of 64 lowercase hex digits, and files that are plain relative names
// (no "..", no absolute path, no directory part). kNotFound when the file is missing,
// kInvalidArgument (naming the path and the field) otherwise.
Result<Manifest> ReadManifest(const std::string& path);

// Checks unit k's file in `version_dir` against the manifest: size, then SHA-256.
// kNotFound when the file is missing, kInvalidArgument on a size or digest mismatch or a bad k;
// messages name the file.
Status VerifyUnit(const std::string& version_dir, const Manifest& manifest, size_t k);

// Verifies every unit file of `manifest` (all of them, before reading any weights), then loads
// them into `model`, which must be a zoo model with the manifest's units (names and count) that
// no other thread uses yet. On error the model may hold a mix of weights: drop it.
Status LoadWeightsInto(SplitModel& model, const std::string& version_dir, const Manifest& manifest);

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

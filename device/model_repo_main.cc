// model_repo: writes and checks the model repository of common/model_repo.h.
//
//   model_repo publish --repo DIR --model NAME [--version 1] [--chunk-kib 1024] [zoo options]
//       builds the zoo model and writes it as DIR/NAME/VERSION, with per-chunk digests of
//       chunk-kib KiB chunks (the unit of the device's download)
//   model_repo perturb --repo DIR --model NAME --from V --to W [--scale 0.01] [--seed 1]
//       loads version V (verified), adds seeded Gaussian noise of relative scale to every
//       floating parameter (stands in for retraining) and writes version W with a new manifest
//       (same chunk size as V)
//   model_repo verify --repo DIR
//       lists every version and checks every unit file's size and SHA-256
//
// Exit codes: 0 ok, 1 a failure or (verify) any invalid version or mismatch, 2 bad options.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "common/model_repo.h"
#include "common/model_zoo.h"
#include "common/zoo_cli.h"

namespace splitinfer {
namespace {

constexpr int kExitFailure = 1;
constexpr int kExitBadOptions = 2;

int Fail(const Status& st) {
  std::cerr << "model_repo: " << st << "\n";
  return st.code() == StatusCode::kInvalidArgument || st.code() == StatusCode::kNotFound
             ? kExitBadOptions
             : kExitFailure;
}

bool Exists(const std::string& dir) {
  std::error_code ec;
  return std::filesystem::exists(dir, ec);
}

int Publish(const std::string& repo, const std::string& name, uint32_t version,
            const ZooOptions& zoo, int64_t chunk_bytes) {
  const std::string dir = VersionDir(repo, name, version);
  if (Exists(dir)) {
    std::cerr << "model_repo: " << dir << " already exists\n";
    return kExitFailure;
  }
  Result<std::shared_ptr<SplitModel>> model = BuildZooModel(name, version, zoo);
  if (!model.ok()) return Fail(model.status());
  Status st = WriteVersion(**model, zoo, dir, chunk_bytes);
  if (!st.ok()) return Fail(st);
  std::cout << "published " << name << " v" << version << " (" << (*model)->num_units()
            << " units) in " << dir << "\n";
  return 0;
}

int Perturb(const std::string& repo, const std::string& name, uint32_t from, uint32_t to,
            double scale, uint64_t seed) {
  const std::string src = VersionDir(repo, name, from);
  const std::string dst = VersionDir(repo, name, to);
  if (Exists(dst)) {
    std::cerr << "model_repo: " << dst << " already exists\n";
    return kExitFailure;
  }
  Result<Manifest> m = ReadManifest(src + "/" + kManifestFile);
  if (!m.ok()) return Fail(m.status());
  Result<std::shared_ptr<SplitModel>> model = BuildZooModel(m->model, to, m->zoo);
  if (!model.ok()) return Fail(model.status());
  Status st = LoadWeightsInto(**model, src, *m);
  if (st.ok()) st = PerturbWeights(**model, scale, seed);
  if (st.ok()) st = WriteVersion(**model, m->zoo, dst, m->chunk_bytes);
  if (!st.ok()) {
    std::cerr << "model_repo: " << st << "\n";
    return kExitFailure;
  }
  std::cout << "perturbed " << name << " v" << from << " -> v" << to << " (scale " << scale
            << ", seed " << seed << ") in " << dst << "\n";
  return 0;
}

int Verify(const std::string& repo) {
  Result<std::vector<VersionInfo>> versions = ScanRepository(repo);
  if (!versions.ok()) return Fail(versions.status());
  int bad = 0;
  for (const VersionInfo& v : *versions) {
    if (!v.valid) {
      std::cout << "INVALID " << v.dir << ": " << v.error << "\n";
      ++bad;
      continue;
    }
    bool ok = true;
    for (size_t k = 0; k < v.manifest.units.size(); ++k) {
      Status st = VerifyUnit(v.dir, v.manifest, k);
      if (!st.ok()) {
        std::cout << "MISMATCH " << v.dir << ": " << st.message() << "\n";
        ok = false;
      }
    }
    if (ok) {
      std::cout << "ok " << v.model << " v" << v.version << " (" << v.manifest.units.size()
                << " units)\n";
    } else {
      ++bad;
    }
  }
  std::cout << versions->size() << " versions, " << bad << " bad\n";
  return bad == 0 ? 0 : kExitFailure;
}

}  // namespace
}  // namespace splitinfer

int main(int argc, char** argv) {
  using namespace splitinfer;
  CLI::App app{"model_repo: publish, perturb and verify versions in a model repository"};
  app.require_subcommand(1);

  std::string repo, name;
  uint32_t version = 1, from = 0, to = 0;
  ZooOptions zoo;
  double scale = 0.01;
  uint64_t seed = 1;
  int64_t chunk_kib = kDefaultChunkBytes / 1024;

  CLI::App* publish = app.add_subcommand("publish", "write a zoo model as a version");
  publish->add_option("--repo", repo, "repository root")->required();
  publish->add_option("--model", name, "zoo model name")->required();
  publish->add_option("--version", version, "version number")->default_val(1);
  publish->add_option("--chunk-kib", chunk_kib, "download chunk size in KiB (manifest chunk_bytes)")
      ->default_val(kDefaultChunkBytes / 1024)
      ->check(CLI::Range(kMinChunkBytes / 1024, kMaxChunkBytes / 1024));
  AddZooOptions(*publish, &zoo);

  CLI::App* perturb = app.add_subcommand("perturb", "make version W from V by adding noise");
  perturb->add_option("--repo", repo, "repository root")->required();
  perturb->add_option("--model", name, "model name")->required();
  perturb->add_option("--from", from, "source version")->required();
  perturb->add_option("--to", to, "new version")->required();
  perturb->add_option("--scale", scale, "noise std relative to each parameter's RMS")
      ->default_val(0.01)
      ->check(CLI::Range(0.0, 100.0));
  perturb->add_option("--seed", seed, "noise seed")->default_val(1);

  CLI::App* verify = app.add_subcommand("verify", "check every version's unit digests");
  verify->add_option("--repo", repo, "repository root")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (publish->parsed()) return Publish(repo, name, version, zoo, chunk_kib * 1024);
  if (perturb->parsed()) return Perturb(repo, name, from, to, scale, seed);
  if (verify->parsed()) return Verify(repo);
  return 2;
}

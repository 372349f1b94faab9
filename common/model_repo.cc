#include "common/model_repo.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <system_error>
#include <utility>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "common/bounded_file.h"

namespace splitinfer {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

std::string ToHex(const unsigned char* d, unsigned int n) {
  static const char kHex[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (unsigned int i = 0; i < n; ++i) {
    out[2 * i] = kHex[d[i] >> 4];
    out[2 * i + 1] = kHex[d[i] & 15];
  }
  return out;
}

bool IsHexDigest(const std::string& s) {
  if (s.size() != 64) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// A plain file name inside the version directory: no directory part, not "." or "..".
bool IsPlainFileName(const std::string& f) {
  if (f.empty() || f == "." || f == "..") return false;
  if (f.find('/') != std::string::npos || f.find('\\') != std::string::npos) return false;
  if (f.find("..") != std::string::npos) return false;
  return f.find('\0') == std::string::npos;
}

std::string ArchiveKey(std::string name) {
  std::replace(name.begin(), name.end(), '.', '/');
  return name;
}

std::string UnitFileName(size_t i) { return "unit_" + std::to_string(i) + ".pt"; }

Status CheckZooUnits(const SplitModel& model, const Manifest& m) {
  if (model.name() != m.model) {
    return InvalidArgumentError("manifest is for " + m.model + ", model is " + model.name());
  }
  if (model.num_units() != m.units.size()) {
    return InvalidArgumentError("manifest lists " + std::to_string(m.units.size()) + " units, " +
                                model.name() + " has " + std::to_string(model.num_units()));
  }
  for (size_t i = 0; i < m.units.size(); ++i) {
    if (model.unit(i).name != m.units[i].name) {
      return InvalidArgumentError("manifest unit " + std::to_string(i) + " is " + m.units[i].name +
                                  ", " + model.name() + " has " + model.unit(i).name);
    }
    if (model.unit(i).param_bytes != m.units[i].param_bytes) {
      return InvalidArgumentError("manifest unit " + m.units[i].name + " has param_bytes " +
                                  std::to_string(m.units[i].param_bytes) + ", the model " +
                                  std::to_string(model.unit(i).param_bytes));
    }
  }
  return Status::Ok();
}

struct FileDigests {
  int64_t bytes = 0;
  std::string sha256;
  std::vector<std::string> chunk_sha256;
};

// One pass over a file: its size, whole SHA-256 and the SHA-256 of each chunk_bytes-byte chunk.
Result<FileDigests> HashUnitFile(const std::string& path, int64_t chunk_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot open " + path);
  MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return InternalError("EVP_DigestInit_ex failed");
  }
  FileDigests out;
  std::vector<char> buf(static_cast<size_t>(chunk_bytes));
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize got = in.gcount();
    if (got <= 0) break;
    if (EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(got)) != 1) {
      return InternalError("EVP_DigestUpdate failed on " + path);
    }
    out.chunk_sha256.push_back(Sha256Hex(buf.data(), static_cast<size_t>(got)));
    out.bytes += got;
  }
  if (in.bad()) return InternalError("read error on " + path);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_DigestFinal_ex(ctx.get(), md, &n) != 1) return InternalError("EVP_DigestFinal_ex failed");
  out.sha256 = ToHex(md, n);
  return out;
}

bool ChunkBytesValid(int64_t c) { return c >= kMinChunkBytes && c <= kMaxChunkBytes; }

Status LoadUnitFile(const std::vector<UnitTensor>& tensors, const std::string& path) {
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    torch::NoGradGuard no_grad;
    for (const UnitTensor& t : tensors) {
      at::Tensor v;
      if (!archive.try_read(ArchiveKey(t.name), v, t.is_buffer)) {
        return InvalidArgumentError(path + " has no tensor " + t.name);
      }
      if (v.sizes() != t.tensor.sizes() || v.scalar_type() != t.tensor.scalar_type()) {
        return InvalidArgumentError(path + ": tensor " + t.name + " is " + ShapeString(v.sizes()) +
                                    ", the model expects " + ShapeString(t.tensor.sizes()));
      }
      t.tensor.copy_(v);
    }
  } catch (const std::exception& e) {
    return InvalidArgumentError("loading " + path + ": " + e.what());
  }
  return Status::Ok();
}

}  // namespace

std::string Sha256Hex(const void* data, size_t size) {
  MdCtx ctx(EVP_MD_CTX_new());
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), data, size) != 1 || EVP_DigestFinal_ex(ctx.get(), md, &n) != 1) {
    return std::string();  // only on allocation failure inside OpenSSL
  }
  return ToHex(md, n);
}

Result<std::string> Sha256File(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot open " + path);
  MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return InternalError("EVP_DigestInit_ex failed");
  }
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    std::streamsize got = in.gcount();
    if (got > 0 && EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(got)) != 1) {
      return InternalError("EVP_DigestUpdate failed on " + path);
    }
  }
  if (in.bad()) return InternalError("read error on " + path);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_DigestFinal_ex(ctx.get(), md, &n) != 1) return InternalError("EVP_DigestFinal_ex failed");
  return ToHex(md, n);
}

size_t ManifestUnit::num_chunks(int64_t chunk_bytes) const {
  if (chunk_bytes <= 0 || bytes <= 0) return 0;
  return static_cast<size_t>((bytes + chunk_bytes - 1) / chunk_bytes);
}

int64_t ManifestUnit::chunk_length(int64_t chunk_bytes, size_t c) const {
  return std::min(chunk_bytes, bytes - chunk_offset(chunk_bytes, c));
}

bool HasChunkDigests(const Manifest& m) {
  if (m.units.empty()) return false;
  for (const ManifestUnit& u : m.units) {
    if (u.chunk_sha256.empty() || u.chunk_sha256.size() != u.num_chunks(m.chunk_bytes)) {
      return false;
    }
  }
  return true;
}

std::string VersionDir(const std::string& root, const std::string& name, uint32_t version) {
  return (fs::path(root) / name / std::to_string(version)).string();
}

Status WriteVersion(const SplitModel& model, const ZooOptions& zoo, const std::string& dir,
                    int64_t chunk_bytes) {
  if (!ChunkBytesValid(chunk_bytes)) {
    return InvalidArgumentError("chunk size " + std::to_string(chunk_bytes) + " bytes is not in [" +
                                std::to_string(kMinChunkBytes) + ", " +
                                std::to_string(kMaxChunkBytes) + "]");
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return InternalError("creating " + dir + ": " + ec.message());
  Manifest m;
  m.model = model.name();
  m.version = model.version();
  m.zoo = zoo;
  m.chunk_bytes = chunk_bytes;
  for (size_t i = 0; i < model.num_units(); ++i) {
    Result<std::vector<UnitTensor>> tensors = ZooUnitTensors(model, i);
    if (!tensors.ok()) return tensors.status();
    const std::string file = UnitFileName(i);
    const std::string path = (fs::path(dir) / file).string();
    try {
      torch::serialize::OutputArchive archive;
      for (const UnitTensor& t : *tensors) {
        archive.write(ArchiveKey(t.name), t.tensor.detach().to(at::kCPU).contiguous(), t.is_buffer);
      }
      archive.save_to(path);
    } catch (const std::exception& e) {
      return InternalError("writing " + path + ": " + e.what());
    }
    Result<FileDigests> digests = HashUnitFile(path, chunk_bytes);
    if (!digests.ok()) return digests.status();
    ManifestUnit u;
    u.index = i;
    u.name = model.unit(i).name;
    u.file = file;
    u.bytes = digests->bytes;
    u.param_bytes = model.unit(i).param_bytes;
    u.sha256 = std::move(digests->sha256);
    u.chunk_sha256 = std::move(digests->chunk_sha256);
    m.units.push_back(std::move(u));
  }
  const fs::path final_path = fs::path(dir) / kManifestFile;
  const fs::path tmp = fs::path(dir) / (std::string(kManifestFile) + ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << ManifestToJson(m);
    out.close();
    if (!out) return InternalError("writing " + tmp.string());
  }
  fs::rename(tmp, final_path, ec);
  if (ec) return InternalError("renaming " + tmp.string() + ": " + ec.message());
  return Status::Ok();
}

std::string ManifestToJson(const Manifest& m) {
  json units = json::array();
  for (const ManifestUnit& u : m.units) {
    json ju = {{"index", u.index},
               {"name", u.name},
               {"file", u.file},
               {"bytes", u.bytes},
               {"param_bytes", u.param_bytes},
               {"sha256", u.sha256}};
    if (!u.chunk_sha256.empty()) ju["chunks"] = u.chunk_sha256;
    units.push_back(std::move(ju));
  }
  json j = {{"model", m.model},
            {"version", m.version},
            {"zoo",
             {{"input_size", m.zoo.input_size},
              {"width_mult", m.zoo.width_mult},
              {"num_classes", m.zoo.num_classes},
              {"mlp_width", m.zoo.mlp_width},
              {"mlp_layers", m.zoo.mlp_layers}}},
            {"num_units", m.units.size()},
            {"chunk_bytes", m.chunk_bytes},
            {"units", units}};
  return j.dump(2) + "\n";
}

Result<Manifest> ReadManifest(const std::string& path) {
  Result<std::string> text = ReadBoundedFile(path, kMaxDataFileBytes, "manifest");
  if (!text.ok()) return text.status();
  return ParseManifest(*text, path);
}

Result<Manifest> ParseManifest(const std::string& json_text, const std::string& source) {
  const std::string& path = source;
  auto bad = [&path](const std::string& why) {
    return InvalidArgumentError("manifest " + path + ": " + why);
  };
  json j;
  try {
    j = json::parse(json_text);
  } catch (const std::exception& e) {
    return bad(std::string("not JSON: ") + e.what());
  }
  if (!j.is_object()) return bad("not an object");
  // Integer fields: an integer JSON number within [lo, hi].
  auto get_int = [](const json& o, const char* key, int64_t lo, int64_t hi, int64_t* out) {
    auto it = o.find(key);
    if (it == o.end() || !it->is_number_integer()) return false;
    const int64_t v = it->get<int64_t>();
    if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      return false;
    }
    if (v < lo || v > hi) return false;
    *out = v;
    return true;
  };
  auto get_str = [](const json& o, const char* key, std::string* out) {
    auto it = o.find(key);
    if (it == o.end() || !it->is_string()) return false;
    *out = it->get<std::string>();
    return true;
  };
  Manifest m;
  if (!get_str(j, "model", &m.model)) return bad("\"model\" missing or not a string");
  const auto& names = ZooModelNames();
  if (std::find(names.begin(), names.end(), m.model) == names.end()) {
    return bad("model \"" + m.model + "\" is not a zoo model");
  }
  int64_t v = 0;
  if (!get_int(j, "version", 0, UINT32_MAX, &v)) return bad("\"version\" missing or invalid");
  m.version = static_cast<uint32_t>(v);
  auto zit = j.find("zoo");
  if (zit == j.end() || !zit->is_object()) return bad("\"zoo\" missing or not an object");
  const json& z = *zit;
  if (!get_int(z, "input_size", 1, 4096, &m.zoo.input_size)) return bad("zoo.input_size");
  if (!get_int(z, "num_classes", 1, 1000000, &m.zoo.num_classes)) return bad("zoo.num_classes");
  if (!get_int(z, "mlp_width", 1, INT32_MAX, &m.zoo.mlp_width)) return bad("zoo.mlp_width");
  if (!get_int(z, "mlp_layers", 1, 100000, &m.zoo.mlp_layers)) return bad("zoo.mlp_layers");
  auto wit = z.find("width_mult");
  if (wit == z.end() || !wit->is_number()) return bad("zoo.width_mult");
  m.zoo.width_mult = wit->get<double>();
  std::string why;
  if (!m.zoo.IsValid(&why)) return bad("zoo options: " + why);
  int64_t num_units = 0;
  if (!get_int(j, "num_units", 1, 100000, &num_units))
    return bad("\"num_units\" missing or invalid");
  // Chunk fields: optional together (manifests written before chunks existed have neither).
  const bool has_chunk_bytes = j.contains("chunk_bytes");
  if (has_chunk_bytes &&
      !get_int(j, "chunk_bytes", kMinChunkBytes, kMaxChunkBytes, &m.chunk_bytes)) {
    return bad("\"chunk_bytes\" must be an integer in [" + std::to_string(kMinChunkBytes) + ", " +
               std::to_string(kMaxChunkBytes) + "]");
  }
  auto uit = j.find("units");
  if (uit == j.end() || !uit->is_array()) return bad("\"units\" missing or not an array");
  if (static_cast<int64_t>(uit->size()) != num_units) {
    return bad("num_units is " + std::to_string(num_units) + " but " + std::to_string(uit->size()) +
               " units are listed");
  }
  for (size_t i = 0; i < uit->size(); ++i) {
    const json& u = (*uit)[i];
    const std::string at = "units[" + std::to_string(i) + "]";
    if (!u.is_object()) return bad(at + " is not an object");
    ManifestUnit mu;
    int64_t index = 0;
    if (!get_int(u, "index", 0, INT64_MAX, &index) || index != static_cast<int64_t>(i)) {
      return bad(at + ".index must be " + std::to_string(i));
    }
    mu.index = i;
    if (!get_str(u, "name", &mu.name) || mu.name.empty()) return bad(at + ".name");
    if (!get_str(u, "file", &mu.file)) return bad(at + ".file missing");
    if (!IsPlainFileName(mu.file)) {
      return bad(at + ".file \"" + mu.file + "\" is not a file name inside the version directory");
    }
    if (!get_int(u, "bytes", 1, INT64_MAX, &mu.bytes)) return bad(at + ".bytes");
    if (!get_int(u, "param_bytes", 0, INT64_MAX, &mu.param_bytes)) return bad(at + ".param_bytes");
    if (!get_str(u, "sha256", &mu.sha256) || !IsHexDigest(mu.sha256)) {
      return bad(at + ".sha256 is not 64 lowercase hex digits");
    }
    auto cit = u.find("chunks");
    if (cit != u.end()) {
      if (!has_chunk_bytes) return bad(at + ".chunks without a top-level \"chunk_bytes\"");
      if (!cit->is_array()) return bad(at + ".chunks is not an array");
      const size_t want = mu.num_chunks(m.chunk_bytes);
      if (cit->size() != want) {
        return bad(at + ".chunks lists " + std::to_string(cit->size()) + " digests, " +
                   std::to_string(mu.bytes) + " bytes in chunks of " +
                   std::to_string(m.chunk_bytes) + " need " + std::to_string(want));
      }
      for (size_t c = 0; c < cit->size(); ++c) {
        const json& d = (*cit)[c];
        if (!d.is_string() || !IsHexDigest(d.get<std::string>())) {
          return bad(at + ".chunks[" + std::to_string(c) + "] is not 64 lowercase hex digits");
        }
        mu.chunk_sha256.push_back(d.get<std::string>());
      }
    }
    // All units or none: a download needs every unit's digests.
    if (i > 0 && mu.chunk_sha256.empty() != m.units[0].chunk_sha256.empty()) {
      return bad(at + (mu.chunk_sha256.empty() ? " has no \"chunks\", units[0] has"
                                               : " has \"chunks\", units[0] has none"));
    }
    m.units.push_back(std::move(mu));
  }
  return m;
}

Status FillChunkDigests(const std::string& version_dir, Manifest* manifest) {
  if (!ChunkBytesValid(manifest->chunk_bytes)) {
    return InvalidArgumentError(
        "manifest of " + manifest->model + " v" + std::to_string(manifest->version) +
        ": chunk_bytes " + std::to_string(manifest->chunk_bytes) + " is not in [" +
        std::to_string(kMinChunkBytes) + ", " + std::to_string(kMaxChunkBytes) + "]");
  }
  std::vector<std::vector<std::string>> chunks;
  for (const ManifestUnit& u : manifest->units) {
    const std::string path = (fs::path(version_dir) / u.file).string();
    Result<FileDigests> d = HashUnitFile(path, manifest->chunk_bytes);
    if (!d.ok()) {
      return d.status().code() == StatusCode::kNotFound
                 ? NotFoundError("unit file " + path + " is missing")
                 : d.status();
    }
    if (d->bytes != u.bytes) {
      return InvalidArgumentError("unit file " + path + " has " + std::to_string(d->bytes) +
                                  " bytes, the manifest says " + std::to_string(u.bytes));
    }
    if (d->sha256 != u.sha256) {
      return InvalidArgumentError("unit file " + path + " has SHA-256 " + d->sha256 +
                                  ", the manifest says " + u.sha256);
    }
    chunks.push_back(std::move(d->chunk_sha256));
  }
  for (size_t i = 0; i < chunks.size(); ++i) manifest->units[i].chunk_sha256 = std::move(chunks[i]);
  return Status::Ok();
}

Status VerifyUnit(const std::string& version_dir, const Manifest& manifest, size_t k) {
  if (k >= manifest.units.size()) {
    return InvalidArgumentError("unit " + std::to_string(k) + " of " + manifest.model + " v" +
                                std::to_string(manifest.version) + " (" +
                                std::to_string(manifest.units.size()) + " units)");
  }
  const ManifestUnit& u = manifest.units[k];
  const std::string path = (fs::path(version_dir) / u.file).string();
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return NotFoundError("unit file " + path + " is missing");
  const auto size = static_cast<int64_t>(fs::file_size(path, ec));
  if (ec) return InternalError("size of " + path + ": " + ec.message());
  if (size != u.bytes) {
    return InvalidArgumentError("unit file " + path + " has " + std::to_string(size) +
                                " bytes, the manifest says " + std::to_string(u.bytes));
  }
  Result<std::string> digest = Sha256File(path);
  if (!digest.ok()) return digest.status();
  if (*digest != u.sha256) {
    return InvalidArgumentError("unit file " + path + " has SHA-256 " + *digest +
                                ", the manifest says " + u.sha256);
  }
  return Status::Ok();
}

Status LoadWeightsInto(SplitModel& model, const std::string& version_dir,
                       const Manifest& manifest) {
  return LoadUnitsInto(model, version_dir, manifest, manifest.units.size());
}

Status LoadUnitsInto(SplitModel& model, const std::string& version_dir, const Manifest& manifest,
                     size_t m) {
  if (m > manifest.units.size()) {
    return InvalidArgumentError("loading " + std::to_string(m) + " units of " + manifest.model +
                                " v" + std::to_string(manifest.version) + ", which has " +
                                std::to_string(manifest.units.size()));
  }
  SPLITINFER_RETURN_IF_ERROR(CheckZooUnits(model, manifest));
  for (size_t k = 0; k < m; ++k) {
    SPLITINFER_RETURN_IF_ERROR(VerifyUnit(version_dir, manifest, k));
  }
  for (size_t k = 0; k < m; ++k) {
    Result<std::vector<UnitTensor>> tensors = ZooUnitTensors(model, k);
    if (!tensors.ok()) return tensors.status();
    SPLITINFER_RETURN_IF_ERROR(
        LoadUnitFile(*tensors, (fs::path(version_dir) / manifest.units[k].file).string()));
  }
  return Status::Ok();
}

Result<std::shared_ptr<SplitModel>> LoadVersion(const std::string& version_dir) {
  Result<Manifest> m = ReadManifest((fs::path(version_dir) / kManifestFile).string());
  if (!m.ok()) return m.status();
  Result<std::shared_ptr<SplitModel>> model = BuildZooModel(m->model, m->version, m->zoo);
  if (!model.ok()) return model.status();
  Status st = LoadWeightsInto(**model, version_dir, *m);
  if (!st.ok()) return st.WithPrefix("loading " + version_dir + ": ");
  return model;
}

Status PerturbWeights(SplitModel& model, double scale, uint64_t seed) {
  if (!(scale >= 0.0) || !std::isfinite(scale)) {
    return InvalidArgumentError("perturbation scale " + std::to_string(scale));
  }
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::NoGradGuard no_grad;
  for (size_t k = 0; k < model.num_units(); ++k) {
    Result<std::vector<UnitTensor>> tensors = ZooUnitTensors(model, k);
    if (!tensors.ok()) return tensors.status();
    for (const UnitTensor& t : *tensors) {
      if (t.is_buffer || !t.tensor.is_floating_point() || t.tensor.numel() == 0) continue;
      const double rms = t.tensor.to(at::kDouble).pow(2).mean().sqrt().item<double>();
      const double sigma = scale * (rms > 0.0 ? rms : 1.0);
      at::Tensor noise = at::randn(t.tensor.sizes(), gen, at::TensorOptions().dtype(at::kFloat));
      t.tensor.add_(noise.to(t.tensor.options()), sigma);
    }
  }
  return Status::Ok();
}

Result<std::vector<VersionInfo>> ScanRepository(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec))
    return NotFoundError("model repository " + root + " is not a directory");
  std::vector<VersionInfo> out;
  for (const auto& name_entry : fs::directory_iterator(root, ec)) {
    if (!name_entry.is_directory()) continue;
    const std::string name = name_entry.path().filename().string();
    for (const auto& ver_entry : fs::directory_iterator(name_entry.path(), ec)) {
      if (!ver_entry.is_directory()) continue;
      VersionInfo info;
      info.model = name;
      info.dir = ver_entry.path().string();
      const std::string vname = ver_entry.path().filename().string();
      const bool numeric =
          !vname.empty() && vname.size() <= 10 &&
          std::all_of(vname.begin(), vname.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (!numeric || std::stoull(vname) > UINT32_MAX) {
        info.error = "version directory " + info.dir + " is not a version number";
        out.push_back(std::move(info));
        continue;
      }
      info.version = static_cast<uint32_t>(std::stoull(vname));
      Result<Manifest> m = ReadManifest((ver_entry.path() / kManifestFile).string());
      if (!m.ok()) {
        info.error = m.status().ToString();
      } else if (m->model != name || m->version != info.version) {
        info.error =
            "manifest in " + info.dir + " is for " + m->model + " v" + std::to_string(m->version);
      } else {
        info.valid = true;
        info.manifest = std::move(*m);
      }
      out.push_back(std::move(info));
    }
  }
  if (ec) return InternalError("scanning " + root + ": " + ec.message());
  std::sort(out.begin(), out.end(), [](const VersionInfo& a, const VersionInfo& b) {
    return a.model != b.model ? a.model < b.model : a.version < b.version;
  });
  return out;
}

}  // namespace splitinfer

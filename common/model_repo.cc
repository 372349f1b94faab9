#include "common/model_repo.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <system_error>
#include <utility>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

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

std::string VersionDir(const std::string& root, const std::string& name, uint32_t version) {
  return (fs::path(root) / name / std::to_string(version)).string();
}

Status WriteVersion(const SplitModel& model, const ZooOptions& zoo, const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return InternalError("creating " + dir + ": " + ec.message());
  json units = json::array();
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
    Result<std::string> digest = Sha256File(path);
    if (!digest.ok()) return digest.status();
    const auto bytes = static_cast<int64_t>(fs::file_size(path, ec));
    if (ec) return InternalError("size of " + path + ": " + ec.message());
    units.push_back({{"index", i},
                     {"name", model.unit(i).name},
                     {"file", file},
                     {"bytes", bytes},
                     {"param_bytes", model.unit(i).param_bytes},
                     {"sha256", *digest}});
  }
  json m = {{"model", model.name()},
            {"version", model.version()},
            {"zoo",
             {{"input_size", zoo.input_size},
              {"width_mult", zoo.width_mult},
              {"num_classes", zoo.num_classes},
              {"mlp_width", zoo.mlp_width},
              {"mlp_layers", zoo.mlp_layers}}},
            {"num_units", model.num_units()},
            {"units", units}};
  const fs::path final_path = fs::path(dir) / kManifestFile;
  const fs::path tmp = fs::path(dir) / (std::string(kManifestFile) + ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << m.dump(2) << "\n";
    out.close();
    if (!out) return InternalError("writing " + tmp.string());
  }
  fs::rename(tmp, final_path, ec);
  if (ec) return InternalError("renaming " + tmp.string() + ": " + ec.message());
  return Status::Ok();
}

Result<Manifest> ReadManifest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot open manifest " + path);
  auto bad = [&path](const std::string& why) {
    return InvalidArgumentError("manifest " + path + ": " + why);
  };
  json j;
  try {
    j = json::parse(in);
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
    m.units.push_back(std::move(mu));
  }
  return m;
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
  SPLITINFER_RETURN_IF_ERROR(CheckZooUnits(model, manifest));
  for (size_t k = 0; k < manifest.units.size(); ++k) {
    SPLITINFER_RETURN_IF_ERROR(VerifyUnit(version_dir, manifest, k));
  }
  for (size_t k = 0; k < manifest.units.size(); ++k) {
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

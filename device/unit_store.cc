#include "device/unit_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <system_error>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/bounded_file.h"
#include "common/model_zoo.h"

namespace splitinfer {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kPartialSuffix = ".partial";

std::string Errno(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

// A name that stays inside its parent directory: no directory part, no "..".
bool IsPlainName(const std::string& s) {
  if (s.empty() || s == "." || s.size() > 255) return false;
  if (s.find('/') != std::string::npos || s.find('\\') != std::string::npos) return false;
  if (s.find("..") != std::string::npos) return false;
  return s.find('\0') == std::string::npos;
}

std::string ManifestName(const Manifest& m) { return m.model + " v" + std::to_string(m.version); }

// Closes a POSIX file descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }
  // Closes now and reports the error close() gives (delayed write errors show up there).
  bool Close() {
    const int fd = fd_;
    fd_ = -1;
    return fd < 0 || ::close(fd) == 0;
  }

 private:
  int fd_;
};

Status FsyncDir(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY));
  if (!fd.ok()) return InternalError(Errno("opening directory", dir));
  if (::fsync(fd.get()) != 0) return InternalError(Errno("fsync of directory", dir));
  return Status::Ok();
}

// Writes `text` to path.tmp, fsyncs it, renames it over `path` and fsyncs the directory: a
// crash leaves the old file or the new one, never a mix.
Status WriteFileAtomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd.ok()) return InternalError(Errno("creating", tmp));
    size_t done = 0;
    while (done < text.size()) {
      const ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return InternalError(Errno("writing", tmp));
      done += static_cast<size_t>(n);
    }
    if (::fsync(fd.get()) != 0) return InternalError(Errno("fsync of", tmp));
    if (!fd.Close()) return InternalError(Errno("closing", tmp));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return InternalError(Errno("renaming", tmp));
  return FsyncDir(fs::path(path).parent_path().string());
}

// Reads up to `len` bytes at `off`; returns how many were read (fewer at end of file), -1 on error.
ssize_t ReadAt(int fd, int64_t off, size_t len, uint8_t* buf) {
  size_t done = 0;
  while (done < len) {
    const ssize_t n = ::pread(fd, buf + done, len - done, static_cast<off_t>(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

Result<std::string> ReadText(const std::string& path) {
  return ReadBoundedFile(path, kMaxDataFileBytes, "file");
}

// What every store call needs of a manifest: a model name and unit files that stay inside the
// store, and (for the download calls) chunk digests.
Status CheckManifest(const Manifest& m, bool need_chunks) {
  if (!IsPlainName(m.model)) {
    return FailedPreconditionError("model name \"" + m.model + "\" is not a plain directory name");
  }
  if (m.units.empty())
    return FailedPreconditionError("manifest of " + ManifestName(m) + ": no units");
  for (const ManifestUnit& u : m.units) {
    if (!IsPlainName(u.file)) {
      return FailedPreconditionError("manifest of " + ManifestName(m) + ": unit file \"" + u.file +
                                     "\" is not a plain file name");
    }
  }
  if (need_chunks && !HasChunkDigests(m)) {
    return FailedPreconditionError("manifest of " + ManifestName(m) +
                                   " has no chunk digests (chunk_bytes " +
                                   std::to_string(m.chunk_bytes) + "): cannot check chunks");
  }
  return Status::Ok();
}

Status CheckUnitIndex(const Manifest& m, size_t unit) {
  if (unit >= m.units.size()) {
    return FailedPreconditionError("unit " + std::to_string(unit) + " of " + ManifestName(m) +
                                   " (" + std::to_string(m.units.size()) + " units)");
  }
  return Status::Ok();
}

}  // namespace

UnitStore::UnitStore(std::string root) : root_(std::move(root)) {}

std::string UnitStore::VersionDirOf(const std::string& model, uint32_t version) const {
  return VersionDir(root_, model, version);
}

namespace {

// The manifest stored in `dir` must be `m` (what Prepare wrote): the chunks and files being
// written are checked against the digests a later LoadCurrent will check.
Status CheckStoredManifest(const std::string& dir, const Manifest& m) {
  const std::string path = (fs::path(dir) / kManifestFile).string();
  Result<Manifest> stored = ReadManifest(path);
  if (!stored.ok()) {
    if (stored.status().code() == StatusCode::kNotFound) {
      return FailedPreconditionError("no manifest " + path + ": call Prepare first");
    }
    return stored.status();
  }
  if (ManifestToJson(*stored) != ManifestToJson(m)) {
    return FailedPreconditionError("manifest " + path + " differs from the one given for " +
                                   ManifestName(m) + ": call Prepare first");
  }
  return Status::Ok();
}

}  // namespace

Status UnitStore::Prepare(const Manifest& manifest) {
  SPLITINFER_RETURN_IF_ERROR(CheckManifest(manifest, /*need_chunks=*/true));
  const std::string dir = VersionDirOf(manifest.model, manifest.version);
  const std::string path = (fs::path(dir) / kManifestFile).string();
  const std::string want = ManifestToJson(manifest);
  std::error_code ec;
  if (fs::exists(path, ec)) {
    Result<std::string> text = ReadText(path);
    if (!text.ok()) return text.status();
    if (*text == want) return Status::Ok();
    Result<Manifest> stored = ParseManifest(*text, path);
    if (stored.ok() && ManifestToJson(*stored) == want) return Status::Ok();
    // Other bytes under the same version number. The placed version's files are in use: refuse.
    // Any other version's files belong to the old manifest: drop them with it.
    Result<PlacedVersion> cur = Current(manifest.model);
    if (cur.ok() && cur->version == manifest.version) {
      return FailedPreconditionError("manifest " + path + " of the placed version differs from " +
                                     "the one given: a placed version is not replaced");
    }
    fs::remove_all(dir, ec);
    if (ec) return InternalError("removing " + dir + ": " + ec.message());
  }
  fs::create_directories(dir, ec);
  if (ec) return InternalError("creating " + dir + ": " + ec.message());
  return WriteFileAtomic(path, want);
}

Result<std::vector<size_t>> UnitStore::MissingChunks(const Manifest& manifest, size_t unit) {
  SPLITINFER_RETURN_IF_ERROR(CheckManifest(manifest, /*need_chunks=*/true));
  SPLITINFER_RETURN_IF_ERROR(CheckUnitIndex(manifest, unit));
  const std::string dir = VersionDirOf(manifest.model, manifest.version);
  SPLITINFER_RETURN_IF_ERROR(CheckStoredManifest(dir, manifest));
  const ManifestUnit& u = manifest.units[unit];
  const std::string final_path = (fs::path(dir) / u.file).string();
  const std::string partial = final_path + kPartialSuffix;
  std::error_code ec;
  if (fs::exists(final_path, ec)) {
    Status st = VerifyUnit(dir, manifest, unit);
    if (st.ok()) {
      fs::remove(partial, ec);  // a leftover of an interrupted re-download: not needed
      return std::vector<size_t>();
    }
    if (st.code() != StatusCode::kInvalidArgument) return st;
    // A final file that does not verify cannot be used. Its good chunks can: make it the
    // .partial (unless a download already started one) so only the bad chunks are refetched.
    if (!fs::exists(partial, ec)) {
      if (::rename(final_path.c_str(), partial.c_str()) != 0) {
        return InternalError(Errno("renaming", final_path));
      }
    } else if (!fs::remove(final_path, ec) || ec) {
      return InternalError("removing " + final_path + ": " + ec.message());
    }
  }
  const size_t n = u.num_chunks(manifest.chunk_bytes);
  std::vector<size_t> missing;
  Fd fd(::open(partial.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.ok()) {
    if (errno != ENOENT) return InternalError(Errno("opening", partial));
    for (size_t c = 0; c < n; ++c) missing.push_back(c);
    return missing;
  }
  std::vector<uint8_t> buf(static_cast<size_t>(manifest.chunk_bytes));
  for (size_t c = 0; c < n; ++c) {
    const auto len = static_cast<size_t>(u.chunk_length(manifest.chunk_bytes, c));
    const ssize_t got = ReadAt(fd.get(), u.chunk_offset(manifest.chunk_bytes, c), len, buf.data());
    if (got < 0) return InternalError(Errno("reading", partial));
    if (static_cast<size_t>(got) != len || Sha256Hex(buf.data(), len) != u.chunk_sha256[c]) {
      missing.push_back(c);
    }
  }
  return missing;
}

Status UnitStore::PutChunk(const Manifest& manifest, size_t unit, size_t chunk, const uint8_t* data,
                           size_t size) {
  SPLITINFER_RETURN_IF_ERROR(CheckManifest(manifest, /*need_chunks=*/true));
  SPLITINFER_RETURN_IF_ERROR(CheckUnitIndex(manifest, unit));
  const ManifestUnit& u = manifest.units[unit];
  const size_t n = u.num_chunks(manifest.chunk_bytes);
  const std::string dir = VersionDirOf(manifest.model, manifest.version);
  const std::string partial = (fs::path(dir) / u.file).string() + kPartialSuffix;
  const std::string what = "chunk " + std::to_string(chunk) + " of " + partial;
  if (chunk >= n) {
    return FailedPreconditionError(what + ": unit " + std::to_string(unit) + " has " +
                                   std::to_string(n) + " chunks");
  }
  const int64_t off = u.chunk_offset(manifest.chunk_bytes, chunk);
  const auto len = static_cast<size_t>(u.chunk_length(manifest.chunk_bytes, chunk));
  if (size != len) {
    return InvalidArgumentError(what + " has " + std::to_string(size) +
                                " bytes, the manifest says " + std::to_string(len));
  }
  if (data == nullptr && size > 0) return InvalidArgumentError(what + ": no data");
  const std::string digest = Sha256Hex(data, size);
  if (digest != u.chunk_sha256[chunk]) {
    return InvalidArgumentError(what + " has SHA-256 " + digest + ", the manifest says " +
                                u.chunk_sha256[chunk]);
  }
  Fd fd(::open(partial.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.ok()) {
    if (errno == ENOENT) {
      return FailedPreconditionError("no version directory " + dir + ": call Prepare first");
    }
    return InternalError(Errno("opening", partial));
  }
  size_t done = 0;
  while (done < size) {
    const ssize_t w = ::pwrite(fd.get(), data + done, size - done, static_cast<off_t>(off + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return InternalError(Errno("writing", partial));
    done += static_cast<size_t>(w);
  }
  if (!fd.Close()) return InternalError(Errno("closing", partial));
  return Status::Ok();
}

Status UnitStore::FinishUnit(const Manifest& manifest, size_t unit) {
  SPLITINFER_RETURN_IF_ERROR(CheckManifest(manifest, /*need_chunks=*/false));
  SPLITINFER_RETURN_IF_ERROR(CheckUnitIndex(manifest, unit));
  const std::string dir = VersionDirOf(manifest.model, manifest.version);
  SPLITINFER_RETURN_IF_ERROR(CheckStoredManifest(dir, manifest));
  const ManifestUnit& u = manifest.units[unit];
  const std::string final_path = (fs::path(dir) / u.file).string();
  const std::string partial = final_path + kPartialSuffix;
  std::error_code ec;
  if (!fs::exists(partial, ec) && VerifyUnit(dir, manifest, unit).ok()) return Status::Ok();
  Fd fd(::open(partial.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.ok()) {
    if (errno == ENOENT) return NotFoundError("no chunks of unit file " + partial);
    return InternalError(Errno("opening", partial));
  }
  struct stat sb {};
  if (::fstat(fd.get(), &sb) != 0) return InternalError(Errno("stat of", partial));
  if (sb.st_size < u.bytes) {
    return InvalidArgumentError("unit file " + partial + " has " + std::to_string(sb.st_size) +
                                " bytes, the manifest says " + std::to_string(u.bytes) +
                                ": chunks are missing");
  }
  // Longer only if something else wrote there (PutChunk never writes past the end): the bytes
  // past the unit are not part of it.
  if (sb.st_size > u.bytes && ::ftruncate(fd.get(), static_cast<off_t>(u.bytes)) != 0) {
    return InternalError(Errno("truncating", partial));
  }
  Result<std::string> digest = Sha256File(partial);
  if (!digest.ok()) return digest.status();
  if (*digest != u.sha256) {
    return InvalidArgumentError("unit file " + partial + " has SHA-256 " + *digest +
                                ", the manifest says " + u.sha256);
  }
  if (::fsync(fd.get()) != 0) return InternalError(Errno("fsync of", partial));
  if (!fd.Close()) return InternalError(Errno("closing", partial));
  if (::rename(partial.c_str(), final_path.c_str()) != 0) {
    return InternalError(Errno("renaming", partial));
  }
  return FsyncDir(dir);
}

Status UnitStore::Commit(const Manifest& manifest, size_t m) {
  SPLITINFER_RETURN_IF_ERROR(CheckManifest(manifest, /*need_chunks=*/false));
  const std::string prefix = "placing " + ManifestName(manifest) + " m=" + std::to_string(m) + ": ";
  if (m > manifest.units.size()) {
    return FailedPreconditionError(prefix + "it has " + std::to_string(manifest.units.size()) +
                                   " units");
  }
  const std::string dir = VersionDirOf(manifest.model, manifest.version);
  SPLITINFER_RETURN_IF_ERROR(CheckStoredManifest(dir, manifest).WithPrefix(prefix));
  for (size_t k = 0; k < m; ++k) {
    SPLITINFER_RETURN_IF_ERROR(VerifyUnit(dir, manifest, k).WithPrefix(prefix));
  }
  const json placed = {{"model", manifest.model}, {"version", manifest.version}, {"m", m}};
  return WriteFileAtomic((fs::path(root_) / manifest.model / kPlacedFile).string(),
                         placed.dump(2) + "\n");
}

Result<PlacedVersion> UnitStore::Current(const std::string& model) const {
  if (!IsPlainName(model)) {
    return FailedPreconditionError("model name \"" + model + "\" is not a plain directory name");
  }
  const std::string path = (fs::path(root_) / model / kPlacedFile).string();
  Result<std::string> text = ReadText(path);
  if (!text.ok()) {
    if (text.status().code() == StatusCode::kNotFound) {
      return NotFoundError("nothing placed for " + model + " (no " + path + ")");
    }
    return text.status();
  }
  auto bad = [&path](const std::string& why) { return InvalidArgumentError(path + ": " + why); };
  json j;
  try {
    j = json::parse(*text);
  } catch (const std::exception& e) {
    return bad(std::string("not JSON: ") + e.what());
  }
  if (!j.is_object()) return bad("not an object");
  PlacedVersion p;
  auto mit = j.find("model");
  if (mit == j.end() || !mit->is_string() || mit->get<std::string>() != model) {
    return bad("\"model\" is not \"" + model + "\"");
  }
  p.model = model;
  auto vit = j.find("version");
  if (vit == j.end() || !vit->is_number_unsigned() || vit->get<uint64_t>() > UINT32_MAX) {
    return bad("\"version\" missing or not a version number");
  }
  p.version = static_cast<uint32_t>(vit->get<uint64_t>());
  auto uit = j.find("m");
  if (uit == j.end() || !uit->is_number_unsigned() || uit->get<uint64_t>() > 100000) {
    return bad("\"m\" missing or not a unit count");
  }
  p.m = static_cast<size_t>(uit->get<uint64_t>());
  p.dir = VersionDirOf(model, p.version);
  Result<Manifest> manifest = ReadManifest((fs::path(p.dir) / kManifestFile).string());
  if (!manifest.ok()) {
    // kNotFound means "nothing placed" to callers: a placement whose manifest is gone is broken,
    // not absent (GarbageCollect must not take it for an empty store).
    return InvalidArgumentError(
        path + " names a version without a valid manifest: " + manifest.status().message());
  }
  if (manifest->model != model || manifest->version != p.version) {
    return bad("names " + p.dir + ", whose manifest is for " + ManifestName(*manifest));
  }
  if (p.m > manifest->units.size()) {
    return bad("m = " + std::to_string(p.m) + " but " + ManifestName(*manifest) + " has " +
               std::to_string(manifest->units.size()) + " units");
  }
  p.manifest = std::move(*manifest);
  return p;
}

Result<std::pair<PlacedVersion, std::shared_ptr<SplitModel>>> UnitStore::LoadCurrent(
    const std::string& model) const {
  std::shared_lock<std::shared_mutex> lock(gc_mu_);
  Result<PlacedVersion> p = Current(model);
  if (!p.ok()) return p.status();
  Result<std::shared_ptr<SplitModel>> built =
      BuildZooModel(p->manifest.model, p->version, p->manifest.zoo);
  if (!built.ok()) return built.status().WithPrefix("loading " + p->dir + ": ");
  Status st = LoadUnitsInto(**built, p->dir, p->manifest, p->m);
  if (!st.ok()) return st.WithPrefix("loading " + p->dir + ": ");
  return std::make_pair(std::move(*p), std::move(*built));
}

Status UnitStore::GarbageCollect(const std::string& model, uint32_t keep_also) {
  std::unique_lock<std::shared_mutex> lock(gc_mu_);
  if (!IsPlainName(model)) {
    return FailedPreconditionError("model name \"" + model + "\" is not a plain directory name");
  }
  Result<PlacedVersion> cur = Current(model);
  std::error_code ec;
  const bool nothing_placed = !cur.ok() && cur.status().code() == StatusCode::kNotFound &&
                              !fs::exists(fs::path(root_) / model / kPlacedFile, ec) && !ec;
  if (!cur.ok() && !nothing_placed) {
    return cur.status().WithPrefix("not collecting " + model + ": ");
  }
  const fs::path model_dir = fs::path(root_) / model;
  if (!fs::is_directory(model_dir, ec)) return Status::Ok();
  std::vector<fs::path> doomed;
  for (const auto& e : fs::directory_iterator(model_dir, ec)) {
    const std::string name = e.path().filename().string();
    const bool numeric =
        !name.empty() && name.size() <= 10 &&
        std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!numeric || !e.is_directory() || std::stoull(name) > UINT32_MAX) continue;
    const auto v = static_cast<uint32_t>(std::stoull(name));
    if ((cur.ok() && v == cur->version) || (keep_also != 0 && v == keep_also)) continue;
    doomed.push_back(e.path());
  }
  if (ec) return InternalError("listing " + model_dir.string() + ": " + ec.message());
  for (const fs::path& d : doomed) {
    fs::remove_all(d, ec);
    if (ec) return InternalError("removing " + d.string() + ": " + ec.message());
  }
  return Status::Ok();
}

int64_t UnitStore::BytesHeld(const std::string& model, uint32_t version) const {
  if (!IsPlainName(model)) return 0;
  std::error_code ec;
  int64_t total = 0;
  for (const auto& e : fs::directory_iterator(VersionDirOf(model, version), ec)) {
    const std::string name = e.path().filename().string();
    const bool unit_file = name.rfind("unit_", 0) == 0 && name.size() > 3 &&
                           name.compare(name.size() - 3, 3, ".pt") == 0;
    if (!unit_file || !e.is_regular_file(ec)) continue;
    const auto size = e.file_size(ec);
    if (!ec) total += static_cast<int64_t>(size);
  }
  return total;
}

}  // namespace splitinfer

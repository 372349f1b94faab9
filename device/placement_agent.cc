#include "device/placement_agent.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>

#include <torch/torch.h>

#include "common/decision/placement_wire.h"
#include "common/log.h"

namespace splitinfer {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The model as far as the placement goes: units [0, M) of `inner` run, any unit >= M is refused
// (std::out_of_range, which RunRangeChecked reports as an error). So a bug that asks a device for
// a unit it does not store cannot run the zoo's stand-in weights.
class PrefixModel final : public SplitModel {
 public:
  PrefixModel(std::shared_ptr<SplitModel> inner, size_t m)
      : SplitModel(inner->name(), inner->version()), inner_(std::move(inner)), m_(m) {
    units_ = inner_->units();
    for (size_t k = 0; k <= inner_->num_units(); ++k)
      boundary_shapes_.push_back(inner_->boundary_shape(k));
    device_ = inner_->device();
  }
  at::Tensor RunRange(const at::Tensor& x, size_t from, size_t to) const override {
    if (to > m_) {
      throw std::out_of_range("unit " + std::to_string(to) + " of " + name() + "@" +
                              std::to_string(version()) +
                              " is not stored on this device (M = " + std::to_string(m_) + ")");
    }
    return inner_->RunRange(x, from, to);
  }
  void To(const at::Device& device) override {
    inner_->To(device);
    device_ = device;
  }

 private:
  std::shared_ptr<SplitModel> inner_;
  size_t m_;
};

}  // namespace

bool PlacementAgentOptions::IsValid(std::string* error) const {
  auto fail = [&](const std::string& m) {
    if (error) *error = m;
    return false;
  };
  if (model.empty()) return fail("model is empty");
  if (store_root.empty()) return fail("store_root is empty");
  if (profile.num_units() < 1) return fail("the profile has no unit");
  if (storage_budget_bytes < 0) return fail("storage_budget_bytes must be >= 0");
  if (!(inferences_per_version > 0) || !std::isfinite(inferences_per_version))
    return fail("inferences_per_version must be > 0");
  if (!(emulated_downlink_bps >= 0) || !std::isfinite(emulated_downlink_bps))
    return fail("emulated_downlink_bps must be >= 0");
  if (max_attempts < 1) return fail("max_attempts must be >= 1");
  if (chunks_per_fetch < 1) return fail("chunks_per_fetch must be >= 1");
  if (!cost.IsValid(error)) return false;
  Status st = law.Validate();
  if (!st.ok()) return fail(st.message());
  return true;
}

PlacementAgent::PlacementAgent(PlacementAgentOptions options)
    : options_(std::move(options)), store_(options_.store_root), client_(options_.edge) {}

std::shared_ptr<const Placed> PlacementAgent::Current() const {
  return std::atomic_load(&current_);
}

Result<std::shared_ptr<const Placed>> PlacementAgent::MakePlaced(
    const PlacedVersion& pv, std::shared_ptr<SplitModel> net,
    const wire::PlacementReply& plan) const {
  if (net->num_units() != static_cast<size_t>(options_.profile.num_units())) {
    return InvalidArgumentError("placed " + pv.model + "@" + std::to_string(pv.version) + " has " +
                                std::to_string(net->num_units()) + " units, the profile " +
                                std::to_string(options_.profile.num_units()));
  }
  // The cost model of this version: the device's own times and sizes, the download bytes of
  // the manifest (what the planner priced).
  decision::ModelProfile profile = options_.profile;
  for (size_t i = 0; i < pv.manifest.units.size(); ++i)
    profile.units[i].param_bytes = pv.manifest.units[i].bytes;
  auto cost = decision::CostModel::Create(std::move(profile), options_.cost, options_.codecs);
  if (!cost.ok()) return cost.status();
  LiveDecisionOptions live = options_.live;
  live.horizon = static_cast<int>(pv.m);
  auto decision = options_.make_decision ? options_.make_decision(*cost, live)
                                         : LiveDecision::FromLaw(*cost, options_.law, live);
  if (!decision.ok()) return decision.status();
  auto placed = std::make_shared<Placed>();
  placed->model = pv.model;
  placed->version = pv.version;
  placed->m = pv.m;
  placed->net = std::make_shared<PrefixModel>(std::move(net), pv.m);
  placed->decision = std::move(*decision);
  placed->plan = plan;
  return std::shared_ptr<const Placed>(std::move(placed));
}

Status PlacementAgent::LoadFromStore() {
  auto loaded = store_.LoadCurrent(options_.model);
  if (!loaded.ok()) return loaded.status();
  auto placed = MakePlaced(loaded->first, std::move(loaded->second), wire::PlacementReply());
  if (!placed.ok()) return placed.status();
  std::atomic_store(&current_, std::move(*placed));
  return Status::Ok();
}

Status PlacementAgent::EnsureConnected(int* reconnects) {
  if (client_.Reusable()) return Status::Ok();
  client_.Close();  // a GoAway or a close while idle: a fresh connection
  Status st;
  for (int attempt = 0; attempt < options_.max_attempts; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(options_.retry_delay);
    st = client_.Connect();
    if (st.ok()) return st;
    ++*reconnects;
  }
  return st;
}

Status PlacementAgent::Download(const Manifest& manifest, size_t m, UpdateReport* report) {
  const double rate = options_.emulated_downlink_bps;
  const auto t0 = Clock::now();
  uint64_t paced_bytes = 0;
  for (size_t u = 0; u < m; ++u) {
    auto missing = store_.MissingChunks(manifest, u);
    if (!missing.ok()) return missing.status();
    const size_t total = manifest.units[u].num_chunks(manifest.chunk_bytes);
    report->chunks_resumed += total - missing->size();
    std::vector<bool> have(total, true);
    for (size_t c : *missing) have[c] = false;
    int rounds = 0;
    while (std::find(have.begin(), have.end(), false) != have.end()) {
      if (cancelled_.load())
        return UnavailableError("placement: download stopped (the device is shutting down)");
      if (rounds++ >= options_.max_attempts * 4) {
        return DataLossError("unit " + std::to_string(u) + " of " + manifest.model + "@" +
                             std::to_string(manifest.version) +
                             ": chunks still fail their digest after " +
                             std::to_string(rounds - 1) + " rounds; keeping the old version");
      }
      SPLITINFER_RETURN_IF_ERROR(EnsureConnected(&report->reconnects));
      // The first run of missing chunks, as one streamed fetch.
      const size_t first =
          static_cast<size_t>(std::find(have.begin(), have.end(), false) - have.begin());
      size_t end = first;
      while (end < total && !have[end] && end - first < options_.chunks_per_fetch) ++end;
      wire::FetchRequest req;
      req.set_model(manifest.model);
      req.set_version(manifest.version);
      req.set_unit(static_cast<uint32_t>(u));
      req.set_first_chunk(static_cast<uint32_t>(first));
      req.set_num_chunks(static_cast<uint32_t>(end - first));
      Status st = client_.Fetch(
          req, static_cast<uint64_t>(manifest.chunk_bytes),
          [&](const wire::FetchChunk& chunk, const uint8_t* data, size_t size) -> Status {
            if (chunk.unit() != u || chunk.chunk() < first || chunk.chunk() >= end) {
              return InvalidArgumentError("the edge sent chunk " + std::to_string(chunk.chunk()) +
                                          " of unit " + std::to_string(chunk.unit()) +
                                          ", not one asked for");
            }
            if (cancelled_.load()) return UnavailableError("placement: download stopped");
            if (rate > 0) {  // the emulated downlink: no faster than `rate`
              paced_bytes += size;
              std::this_thread::sleep_until(
                  t0 + std::chrono::duration_cast<Clock::duration>(
                           std::chrono::duration<double>(8.0 * paced_bytes / rate)));
            }
            Status put = store_.PutChunk(manifest, u, chunk.chunk(), data, size);
            if (!put.ok()) {  // refused: fetched again in the next round
              ++report->chunks_refused;
              log::Warn("placement: refused chunk " + std::to_string(chunk.chunk()) + " of unit " +
                        std::to_string(u) + ": " + put.message());
              return Status::Ok();
            }
            have[chunk.chunk()] = true;
            ++report->chunks_downloaded;
            report->bytes_downloaded += size;
            return Status::Ok();
          });
      if (!st.ok()) {
        if (st.code() == StatusCode::kNotFound || st.code() == StatusCode::kInvalidArgument ||
            st.code() == StatusCode::kFailedPrecondition) {
          return st;  // the edge no longer has the version, or refuses: re-plan later
        }
        log::Warn("placement: download interrupted (" + st.ToString() + "); resuming");
        ++report->interruptions;
        client_.Close();
      }
    }
    SPLITINFER_RETURN_IF_ERROR(store_.FinishUnit(manifest, u));
  }
  report->download_s = SecondsSince(t0);
  return Status::Ok();
}

Result<UpdateReport> PlacementAgent::Update() {
  std::string error;
  if (!options_.IsValid(&error)) return InvalidArgumentError("placement agent: " + error);
  UpdateReport report;
  std::shared_ptr<const Placed> held = Current();
  if (held) {
    report.from_version = held->version;
    report.from_m = held->m;
  }
  SPLITINFER_RETURN_IF_ERROR(EnsureConnected(&report.reconnects));
  wire::PlacementRequest req;
  req.set_model(options_.model);
  req.set_held_version(held ? held->version : 0);
  req.set_held_units(held ? static_cast<uint32_t>(held->m) : 0);
  std::vector<double> times;
  for (const auto& u : options_.profile.units) times.push_back(u.time_ms);
  decision::CostToWire(options_.cost, times, req.mutable_profile());
  decision::LawToWire(options_.law, req.mutable_channel());
  req.set_storage_budget_bytes(static_cast<uint64_t>(options_.storage_budget_bytes));
  req.set_inferences_per_version(options_.inferences_per_version);
  req.set_one_stage_lookahead(options_.one_stage_lookahead);
  const auto t_plan = Clock::now();
  std::string manifest_json;
  auto reply = client_.Plan(req, &manifest_json);
  if (!reply.ok()) {
    client_.Close();
    return reply.status().WithPrefix("placement request: ");
  }
  report.plan_ms = SecondsSince(t_plan) * 1000.0;
  if (reply->code() != wire::OK) {
    return Status(FromWireCode(reply->code()), "placement refused: " + reply->message());
  }
  report.plan = *reply;
  auto manifest = ParseManifest(manifest_json, "the edge's placement reply");
  if (!manifest.ok()) return manifest.status();
  if (manifest->model != options_.model || manifest->version != reply->version() ||
      manifest->units.size() != reply->num_units() || reply->m() > manifest->units.size()) {
    return InvalidArgumentError("placement reply does not match its manifest (" + manifest->model +
                                "@" + std::to_string(manifest->version) + ")");
  }
  if (!HasChunkDigests(*manifest) || manifest->chunk_bytes > kMaxChunkBytes) {
    return InvalidArgumentError("placement manifest lacks chunk digests or has oversize chunks");
  }
  if (manifest->units.size() != static_cast<size_t>(options_.profile.num_units())) {
    return InvalidArgumentError(
        "the edge's " + manifest->model + " has " + std::to_string(manifest->units.size()) +
        " units, this device's profile " + std::to_string(options_.profile.num_units()));
  }
  const size_t m = reply->m();
  report.to_version = reply->version();
  report.to_m = m;
  if (held && held->version == reply->version() && held->m == m) return report;  // nothing new

  SPLITINFER_RETURN_IF_ERROR(store_.Prepare(*manifest));
  downloading_.store(true);
  Status downloaded = Download(*manifest, m, &report);
  downloading_.store(false);
  SPLITINFER_RETURN_IF_ERROR(downloaded);
  report.download_energy_j = options_.cost.p_rx_w * report.download_s;
  report.download_cost =
      (options_.cost.w_energy * options_.cost.p_rx_w + options_.cost.w_time) * report.download_s;

  const auto t_swap = Clock::now();
  SPLITINFER_RETURN_IF_ERROR(store_.Commit(*manifest, m));
  auto loaded = store_.LoadCurrent(options_.model);  // verifies the digests again
  if (!loaded.ok()) return loaded.status();
  auto placed = MakePlaced(loaded->first, std::move(loaded->second), *reply);
  if (!placed.ok()) return placed.status();
  std::atomic_store(&current_, std::move(*placed));
  report.swap_ms = SecondsSince(t_swap) * 1000.0;
  report.changed = true;
  // Older versions' files go; inferences still running on them hold their weights in memory.
  Status gc = store_.GarbageCollect(options_.model);
  if (!gc.ok()) log::Warn("placement: " + gc.ToString());
  return report;
}

}  // namespace splitinfer

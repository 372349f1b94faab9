// PlacementAgent: the device's side of model placement (issue 7; SPEC section 4).
//
// Update() is one round of the slow loop:
//   1. announce the device (unit times, power model, weights, its uplink law, storage budget,
//      expected inferences per version R, the version and M it holds) in a PlacementRequest;
//   2. the edge's planner answers with the newest version, M* and the version's manifest;
//   3. fetch the chunks of units 1..M* the store lacks (UnitStore::MissingChunks: a download cut
//      short earlier resumes where it stopped), each checked against the manifest's per-chunk
//      SHA-256 before it is written; a refused chunk is fetched again, a dropped connection is
//      re-opened (bounded attempts);
//   4. UnitStore::Commit switches the store to the new version on disk (atomic rename), the
//      units are loaded (digests verified once more) and the new Placed is published with one
//      atomic store of a shared_ptr.
// If any step fails, the store and Current() keep the old version: the device never runs
// unverified weights and never loses what it had.
//
// Placed::model holds units [0, M) only as far as running goes: it refuses to run a unit >= M
// (PrefixModel), and the policy's horizon is M (LiveDecisionOptions::horizon), so at M the
// device must offload.
//
// Thread safety: Update() from one thread at a time (it owns its own edge connection); Current()
// from any thread, any time. An inference takes one Current() snapshot and finishes on it, so a
// swap never mixes versions within an inference.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/decision/channel.h"
#include "common/decision/cost_model.h"
#include "common/model_repo.h"
#include "common/split_model.h"
#include "common/status.h"
#include "device/edge_client.h"
#include "device/live_decision.h"
#include "device/unit_store.h"
#include "splitinfer.pb.h"

namespace splitinfer {

struct PlacementAgentOptions {
  EdgeClientOptions edge;  // host, port, timeouts (a connection of the agent's own)
  std::string model;
  std::string store_root;
  // The device's unit times (time_ms, on the profiling machine; scaled by cost.device_slowdown)
  // and boundary sizes. param_bytes are taken from the manifest (the bytes a unit downloads).
  decision::ModelProfile profile;
  decision::CostOptions cost;
  decision::ChannelLaw law;  // the uplink law announced to the planner and used by the policy
  LiveDecisionOptions live;  // the inference path's policy; its horizon is set to the placed M
  // The wire options (codecs) the policy may choose at a stop (empty: float32 only).
  std::vector<decision::WireOption> codecs;
  // Builds the placed version's table from its cost model and `live` (horizon M set); null:
  // LiveDecision::FromLaw over `law`. device_client fits series channels here exactly as its
  // other policies (LiveDecision::FromSeries).
  std::function<Result<std::shared_ptr<const LiveDecision>>(const decision::CostModel& cost,
                                                            const LiveDecisionOptions& live)>
      make_decision;
  int64_t storage_budget_bytes = 0;  // 0: unlimited
  double inferences_per_version = 1000.0;
  bool one_stage_lookahead = false;
  // Download pacing: the device reads chunks no faster than this (emulated downlink, bit/s;
  // 0: as fast as the connection goes).
  double emulated_downlink_bps = 0.0;
  int max_attempts = 5;  // connections (and refetch rounds) per Update before giving up
  std::chrono::milliseconds retry_delay{200};
  uint32_t chunks_per_fetch = 256;

  bool IsValid(std::string* error) const;
};

// A placement in memory: what an inference runs on.
struct Placed {
  std::string model;
  uint32_t version = 0;
  size_t m = 0;                                  // units held: 1..M run here
  std::shared_ptr<const SplitModel> net;         // PrefixModel: refuses units >= M
  std::shared_ptr<const LiveDecision> decision;  // horizon M
  wire::PlacementReply plan;                     // the planner's figures for this placement
};

struct UpdateReport {
  bool changed = false;
  uint32_t from_version = 0, to_version = 0;
  size_t from_m = 0, to_m = 0;
  uint64_t bytes_downloaded = 0;  // chunk bytes accepted (excludes refused ones)
  uint64_t chunks_downloaded = 0;
  uint64_t chunks_refused = 0;   // failed their digest: fetched again
  uint64_t chunks_resumed = 0;   // already on disk from an earlier, interrupted download
  int reconnects = 0;            // failed connection attempts
  int interruptions = 0;         // downloads cut short (connection lost) and resumed
  double plan_ms = 0;            // PlacementRequest to reply, wall time
  double download_s = 0;         // first fetch to the last unit verified
  double download_energy_j = 0;  // p_rx x download_s
  double download_cost = 0;      // (w_E p_rx + w_T) download_s: the measured D(M)
  double swap_ms = 0;            // commit, load and publish
  wire::PlacementReply plan;
};

class PlacementAgent {
 public:
  explicit PlacementAgent(PlacementAgentOptions options);

  // Adopts what the store has placed (verified), if anything: kNotFound when nothing is.
  Status LoadFromStore();
  // One round (see the file comment). On error the old placement stays.
  Result<UpdateReport> Update();
  // The placement inferences use now (null before the first successful Update/LoadFromStore).
  std::shared_ptr<const Placed> Current() const;
  // Whether Update is downloading units now (any thread).
  bool downloading() const { return downloading_.load(); }
  // Makes a download under way stop at its next chunk (Update fails, keeping what it had: the
  // chunks on disk serve a later Update); any thread. For shutting down.
  void Cancel() { cancelled_.store(true); }

  const PlacementAgentOptions& options() const { return options_; }

 private:
  Status EnsureConnected(int* reconnects);
  Result<std::shared_ptr<const Placed>> MakePlaced(const PlacedVersion& pv,
                                                   std::shared_ptr<SplitModel> net,
                                                   const wire::PlacementReply& plan) const;
  Status Download(const Manifest& manifest, size_t m, UpdateReport* report);

  PlacementAgentOptions options_;
  UnitStore store_;
  EdgeClient client_;
  std::shared_ptr<const Placed> current_;  // atomic_load / atomic_store only
  std::atomic<bool> downloading_{false};
  std::atomic<bool> cancelled_{false};
};

}  // namespace splitinfer

// The pieces device_client's runs share (device/device_client.cc: --split, --policy, --exits;
// device/placement_run.cc: --store; device/variant_run.cc: --variants): the record writer, the
// stop signal, the session and cost options from the command line, and the live world (cost
// model, emulated uplink, fitted tables) every live policy is built on. Internal to the
// device_client library.
#pragma once

#include <atomic>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/decision/cost_model.h"
#include "common/decision/simulator.h"
#include "device/device_client_options.h"
#include "device/device_session.h"
#include "device/edge_client.h"
#include "device/live_decision.h"
#include "device/split_policy.h"
#include "device/uplink_emulator.h"

namespace splitinfer::runs {

namespace sd = decision;
using json = nlohmann::json;

// SIGINT / SIGTERM: no new inference starts; those in flight finish, the records and the summary
// are written, and the program exits as after its last request.
void InstallStopHandlers();
bool Stopping();

// Prints "device_client: <status>" and returns 2 (bad options or inputs).
int Fail(const Status& st);

// Records to stdout (--json) and the ledger (--ledger), from the inference loop and the
// placement loop's thread alike: one line each, never interleaved.
class RecordWriter {
 public:
  RecordWriter(bool to_stdout, std::ofstream* ledger) : stdout_(to_stdout), ledger_(ledger) {}
  void Write(const json& j) {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string line = j.dump();
    if (stdout_) std::cout << line << std::endl;
    if (ledger_ != nullptr) *ledger_ << line << "\n" << std::flush;
  }

 private:
  std::mutex mu_;
  bool stdout_;
  std::ofstream* ledger_;
};

// Counts what the exit status reports: inferences without a result, and (--verify) results
// that differ from the local run.
struct Failures {
  bool verify = false;
  int count = 0;
  void Add(const InferenceRecord& r) {
    count += !r.ok;
    if (verify && r.verified)
      count += !(r.max_abs_diff >= 0 && r.max_abs_diff <= 1e-5 && r.top1_match);
  }
};

SessionOptions MakeSessionOptions(const DeviceClientOptions& o, const sd::CostOptions* cost);
// The random input of inference `id`: different per inference, reproducible from --seed.
InferenceInput RandomInput(const SplitModel& model, uint64_t seed, uint64_t id);
Result<sd::CostOptions> MakeCostOptions(const DeviceClientOptions& o);

// What every live policy shares: the cost model of the device, the emulated uplink and the parts
// of its series the law is fitted on and the run (or replay) uses.
struct LiveWorld {
  sd::CostOptions cost_options;
  sd::ModelProfile profile;
  std::vector<sd::WireOption> codecs;
  std::optional<sd::CostModel> cost_model;
  std::vector<CodecSpec> option_codecs;  // per wire option
  sd::ChannelSpec spec;
  bool is_series = false, markov = false;
  sd::RateSeries fit;                  // the law's fitting part (emulated time)
  double run_start_s = 0;              // emulated time of the first inference
  std::vector<double> segment_starts;  // replay
  double fallback_prior_bps = 0;       // --csi estimated before any upload
  LiveDecisionOptions lo;
  std::unique_ptr<sd::ScoredSeries> scored;
  std::unique_ptr<UplinkEmulator> uplink;

  TableContext Context() const {
    TableContext c;
    c.option_codecs = option_codecs;
    c.cost_model = &*cost_model;
    c.scored = scored.get();
    c.emulated = &uplink->series();
    return c;
  }
};

Result<std::unique_ptr<LiveWorld>> BuildLiveWorld(const DeviceClientOptions& o,
                                                  const SplitModel& model);
// The table of the policy `lo` names on the cost model `cost` (horizon as `lo` says).
Result<std::shared_ptr<const LiveDecision>> MakeTable(const LiveWorld& w, const sd::CostModel& cost,
                                                      const LiveDecisionOptions& lo);
// --policy: one, or with --segments a list ("all": split_sim's standard set); "P@online" runs P
// on the online law.
Result<std::vector<std::string>> PolicyNames(const DeviceClientOptions& o);
Result<std::unique_ptr<SplitPolicy>> MakeTablePolicy(const DeviceClientOptions& o,
                                                     const LiveWorld& w,
                                                     std::shared_ptr<SplitModel> model,
                                                     const std::string& run_name);
// One policy's records as a table: a row per boundary chosen, then the ledger's means.
void PrintPolicyRecords(const std::string& name, const std::vector<InferenceRecord>& recs,
                        const DeviceClientOptions& o);

// --store (device/placement_run.cc) and --variants (device/variant_run.cc).
int RunPlaced(const DeviceClientOptions& o, EdgeClientOptions copts, RecordWriter& out);
int RunVariants(const DeviceClientOptions& o, EdgeClientOptions copts, RecordWriter& out);

}  // namespace splitinfer::runs

// Model placement live (issue 7): the real edge_server serving a model repository on 127.0.0.1
// (port 0), devices (PlacementAgent, in this process) planning, downloading verified chunks and
// swapping versions. Faults come from the server's --fault-* flags, a SIGKILL and a restart on
// the same port, and bytes changed on the edge's disk.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/decision/placement.h"
#include "common/decision/placement_wire.h"
#include "common/frame_io.h"
#include "common/model_repo.h"
#include "common/model_zoo.h"
#include "device/device_session.h"
#include "device/placement_agent.h"
#include "device/split_policy.h"
#include "tests/integration/child_process.h"
#include "tests/integration/test_models.h"

namespace splitinfer {
namespace {

namespace fs = std::filesystem;
namespace sd = splitinfer::decision;
using testing::ChildProcess;
using testing::EdgeServerProcess;
using namespace std::chrono_literals;

constexpr int64_t kChunk = 4096;  // small chunks: every unit of the test MLP has several

std::string TempDir(const std::string& name) {
  const char* tmp = std::getenv("TMPDIR");
  fs::path p =
      fs::path(tmp ? tmp : "/tmp") / ("placement_test_" + std::to_string(getpid()) + "_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

// Publishes the small zoo MLP as version 1, or version `to` as a perturbed copy of `from`.
void Publish(const std::string& repo, uint32_t version, const std::string& name = "mlp") {
  auto model = BuildZooModel(name, version, testing::SmallZoo());
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_TRUE(
      WriteVersion(**model, testing::SmallZoo(), VersionDir(repo, name, version), kChunk).ok());
}
void PublishPerturbed(const std::string& repo, uint32_t from, uint32_t to) {
  const std::string src = VersionDir(repo, "mlp", from);
  auto m = ReadManifest(src + "/" + kManifestFile);
  ASSERT_TRUE(m.ok()) << m.status();
  auto model = BuildZooModel("mlp", to, m->zoo);
  ASSERT_TRUE(model.ok());
  ASSERT_TRUE(LoadWeightsInto(**model, src, *m).ok());
  ASSERT_TRUE(PerturbWeights(**model, 0.05, to).ok());
  ASSERT_TRUE(WriteVersion(**model, m->zoo, VersionDir(repo, "mlp", to), kChunk).ok());
}

// The device's profile of a small zoo model in which every unit takes the same time (for the MLP:
// the equal-width chain of the closed form).
sd::ModelProfile MlpProfile(double unit_ms = 0.05, const std::string& name = "mlp") {
  auto model = BuildZooModel(name, 1, testing::SmallZoo());
  sd::ModelProfile p;
  p.model = name;
  p.input_bytes = (*model)->input_bytes();
  for (const auto& u : (*model)->units()) {
    sd::UnitProfile up;
    up.name = u.name;
    up.time_ms = unit_ms;
    up.output_bytes = u.output_bytes;
    up.param_bytes = u.param_bytes;
    p.units.push_back(up);
  }
  return p;
}

sd::ChannelLaw ConstantLaw(double bps) {
  sd::ChannelLaw law;
  law.rate_bps = Eigen::VectorXd::Constant(1, bps);
  law.stationary = Eigen::VectorXd::Ones(1);
  return law;
}

PlacementAgentOptions AgentOptions(int port, const std::string& store) {
  PlacementAgentOptions o;
  o.edge.host = "127.0.0.1";
  o.edge.port = static_cast<uint16_t>(port);
  o.edge.connect_timeout = 2000ms;
  o.edge.io_timeout = 10000ms;
  o.model = "mlp";
  o.store_root = store;
  o.profile = MlpProfile();
  o.cost.device_slowdown = 1.0;
  o.cost.downlink_bps = 100e6;
  // A slow uplink and fast units: running every unit here is worth it, so M* = N unless the
  // storage budget or R says otherwise.
  o.law = ConstantLaw(0.2e6);
  o.inferences_per_version = 1e9;
  o.retry_delay = 50ms;
  return o;
}

// The whole model of a version, from the repository, for reference outputs.
std::shared_ptr<SplitModel> Reference(const std::string& repo, uint32_t version) {
  auto m = LoadVersion(VersionDir(repo, "mlp", version));
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *m : nullptr;
}

at::Tensor Input(uint64_t seed, std::vector<int64_t> shape = {testing::SmallZoo().mlp_width}) {
  torch::manual_seed(seed);
  shape.insert(shape.begin(), 1);
  return torch::randn(shape);
}

std::vector<std::string> ServerArgs(const std::string& repo, std::vector<std::string> extra = {}) {
  std::vector<std::string> a{"--model-repo", repo, "--cpu", "--repo-poll-ms", "50"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// The uplink as a test sets it: one rate, the upload charged at its wall time.
class FixedRateUplink final : public UplinkView {
 public:
  explicit FixedRateUplink(double rate_bps) : rate_bps_(rate_bps) {}
  ChannelObservation Observe(int boundary) override {
    ChannelObservation o;
    o.boundary = boundary;
    o.rate_bps = rate_bps_;
    return o;
  }
  double UploadSeconds(int, double, double wall_s) override { return wall_s; }

 private:
  double rate_bps_;
};

// One inference on the agent's current placement through the device's inference loop
// (DeviceSession with PlacedPolicy, as device_client --store runs it).
InferenceRecord RunOnPlacement(const PlacementAgent& agent, const at::Tensor& x, double rate_bps,
                               EdgeClient* edge, std::function<void()> on_retired = {}) {
  PlacedPolicy policy("bi", &agent, TableContext{}, std::move(on_retired));
  FixedRateUplink uplink(rate_bps);
  std::optional<InferenceRecord> out;
  DeviceSession session(SessionOptions{}, edge, [&](InferenceRecord&& r) { out = std::move(r); });
  InferenceInput in;
  in.tensor = x;
  const Status st = session.Submit(policy, &uplink, std::move(in));
  EXPECT_TRUE(st.ok()) << st;
  session.Drain();
  EXPECT_TRUE(out.has_value());
  return out.value_or(InferenceRecord{});
}

// Runs one inference on the agent's current placement and checks it against the version's
// whole model.
void ExpectCorrectInference(const PlacementAgent& agent, const std::string& repo, EdgeClient* edge,
                            uint64_t seed) {
  at::Tensor x = Input(seed);
  const InferenceRecord r = RunOnPlacement(agent, x, 0.2e6, edge);
  ASSERT_TRUE(r.ok) << r.fallback.value_or("");
  EXPECT_EQ(r.version, agent.Current()->version);
  EXPECT_LE(r.boundary, static_cast<int>(agent.Current()->m));
  EXPECT_FALSE(r.mixed());
  auto ref = Reference(repo, r.version);
  c10::InferenceMode guard;
  at::Tensor want = ref->RunRange(x, 0, ref->num_units());
  EXPECT_TRUE(torch::allclose(r.output.to(at::kCPU), want, 1e-5, 1e-6))
      << "max diff " << (r.output - want).abs().max().item<double>();
}

TEST(PlacementTest, PlansDownloadsVerifiesAndRuns) {
  const std::string repo = TempDir("repo1"), store = TempDir("store1");
  Publish(repo, 1);
  EdgeServerProcess server(ServerArgs(repo));
  ASSERT_GT(server.port(), 0) << server.first_line();
  PlacementAgent agent(AgentOptions(server.port(), store));
  auto rep = agent.Update();
  ASSERT_TRUE(rep.ok()) << rep.status();
  EXPECT_TRUE(rep->changed);
  EXPECT_EQ(rep->to_version, 1u);
  const size_t n = static_cast<size_t>(testing::SmallZoo().mlp_layers);
  EXPECT_EQ(rep->to_m, n);  // slow uplink, R large: store everything
  EXPECT_EQ(rep->chunks_refused, 0u);
  auto manifest = ReadManifest(VersionDir(repo, "mlp", 1) + "/" + kManifestFile);
  int64_t total = 0;
  for (auto& u : manifest->units) total += u.bytes;
  EXPECT_EQ(rep->bytes_downloaded, static_cast<uint64_t>(total));
  EXPECT_EQ(rep->plan.download_bytes(), static_cast<uint64_t>(total));
  EXPECT_LT(rep->plan.planner_us(), 10000u);
  // The store's files are the edge's, byte for byte.
  for (auto& u : manifest->units) {
    auto a = Sha256File(store + "/mlp/1/" + u.file);
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(*a, u.sha256);
  }
  EdgeClientOptions eo = AgentOptions(server.port(), store).edge;
  EdgeClient edge(eo);
  for (uint64_t s = 1; s <= 3; ++s) ExpectCorrectInference(agent, repo, &edge, s);
  // Nothing new: a second round changes nothing and downloads nothing.
  auto again = agent.Update();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->changed);
  EXPECT_EQ(again->bytes_downloaded, 0u);
  // A restarted device adopts its store without downloading.
  PlacementAgent restarted(AgentOptions(server.port(), store));
  ASSERT_TRUE(restarted.LoadFromStore().ok());
  EXPECT_EQ(restarted.Current()->version, 1u);
  EXPECT_EQ(restarted.Current()->m, n);
}

TEST(PlacementTest, PlannerOverTheWireEqualsTheMlpClosedForm) {
  const std::string repo = TempDir("repo2"), store = TempDir("store2");
  Publish(repo, 1);
  EdgeServerProcess server(ServerArgs(repo));
  ASSERT_GT(server.port(), 0);
  auto manifest = ReadManifest(VersionDir(repo, "mlp", 1) + "/" + kManifestFile);
  ASSERT_TRUE(manifest.ok());
  // The cost model the edge prices: the device's profile with the manifest's download bytes.
  sd::ModelProfile prof = MlpProfile(0.5);
  for (size_t i = 0; i < prof.units.size(); ++i)
    prof.units[i].param_bytes = manifest->units[i].bytes;
  sd::CostOptions co;
  co.device_slowdown = 1.0;
  co.edge_speedup = 1.0;
  co.downlink_bps = 1e6;
  auto cost = sd::CostModel::Create(prof, co);
  ASSERT_TRUE(cost.ok()) << cost.status();
  // An i.i.d. law without outages, as the closed form needs.
  auto law = sd::DiscretizeEmpirical({0.5e6, 1e6, 2e6, 4e6, 8e6, 16e6, 0.8e6, 3e6}, 4);
  ASSERT_TRUE(law.ok());
  std::set<int> ms;
  for (double r : {0.01, 0.1, 1.0, 10.0, 100.0, 1e4}) {
    sd::PlacementOptions po;
    po.inferences_per_version = r;
    auto closed = sd::MlpClosedFormPlacement(*cost, *law, po);
    ASSERT_TRUE(closed.ok()) << closed.status();
    PlacementAgentOptions o = AgentOptions(server.port(), store);
    o.profile = MlpProfile(0.5);
    o.cost = co;
    o.law = *law;
    o.inferences_per_version = r;
    EdgeClient client(o.edge);
    ASSERT_TRUE(client.Connect().ok());
    wire::PlacementRequest req;
    req.set_model("mlp");
    std::vector<double> times(prof.units.size(), 0.5);
    sd::CostToWire(co, times, req.mutable_profile());
    sd::LawToWire(*law, req.mutable_channel());
    req.set_inferences_per_version(r);
    std::string body;
    auto reply = client.Plan(req, &body);
    ASSERT_TRUE(reply.ok()) << reply.status();
    ASSERT_EQ(reply->code(), wire::OK) << reply->message();
    EXPECT_EQ(static_cast<int>(reply->m()), closed->best_m) << "R = " << r;
    EXPECT_NEAR(reply->objective(), closed->best_objective, 1e-9 * std::abs(closed->best_objective))
        << "R = " << r;
    ms.insert(static_cast<int>(reply->m()));
  }
  EXPECT_GE(ms.size(), 2u) << "the sweep of R should move M*";
}

// ResNet-18's tensors shrink stage by stage, so on a slow uplink the planner wants many units; a
// budget of three and a half units' bytes caps it at M <= 3, and the device never goes beyond M.
TEST(PlacementTest, StorageBudgetIsNeverExceededAndTheDeviceNeverRunsBeyondM) {
  const std::string repo = TempDir("repo3"), store = TempDir("store3");
  Publish(repo, 1, "resnet18");
  EdgeServerProcess server(ServerArgs(repo));
  ASSERT_GT(server.port(), 0);
  auto manifest = ReadManifest(VersionDir(repo, "resnet18", 1) + "/" + kManifestFile);
  ASSERT_TRUE(manifest.ok());
  PlacementAgentOptions o = AgentOptions(server.port(), store);
  o.model = "resnet18";
  o.profile = MlpProfile(0.05, "resnet18");
  o.storage_budget_bytes = manifest->units[0].bytes + manifest->units[1].bytes +
                           manifest->units[2].bytes + manifest->units[3].bytes / 2;
  // Unconstrained, the planner stores more than the budget holds (so the budget binds).
  {
    PlacementAgentOptions free = o;
    free.storage_budget_bytes = 0;
    free.store_root = TempDir("store3_free");
    PlacementAgent unconstrained(free);
    auto rep = unconstrained.Update();
    ASSERT_TRUE(rep.ok()) << rep.status();
    ASSERT_GT(rep->to_m, 3u);
  }
  PlacementAgent agent(o);
  auto rep = agent.Update();
  ASSERT_TRUE(rep.ok()) << rep.status();
  const size_t m = rep->to_m;
  ASSERT_GE(m, 1u);
  ASSERT_LE(m, 3u);
  UnitStore view(store);
  EXPECT_LE(view.BytesHeld("resnet18", 1), o.storage_budget_bytes);
  for (size_t u = m; u < manifest->units.size(); ++u)
    EXPECT_FALSE(fs::exists(store + "/resnet18/1/" + manifest->units[u].file)) << u;
  auto placed = agent.Current();
  ASSERT_EQ(placed->m, m);
  EXPECT_EQ(placed->decision->horizon(), static_cast<int>(m));
  const std::vector<int64_t> shape = placed->net->input_shape();
  // The slow uplink makes the policy keep going: the horizon stops it at M, where it offloads.
  EdgeClient edge(o.edge);
  for (uint64_t s = 1; s <= 4; ++s) {
    const InferenceRecord r = RunOnPlacement(agent, Input(s, shape), 0.2e6, &edge);
    ASSERT_TRUE(r.ok) << r.fallback.value_or("");
    EXPECT_EQ(r.boundary, static_cast<int>(m));
    EXPECT_EQ(r.m, static_cast<int>(m));
    EXPECT_EQ(r.completed_on, "edge");
  }
  // The placed model refuses a unit it does not hold.
  {
    c10::InferenceMode guard;
    auto xm = placed->net->RunRangeChecked(Input(1, shape), 0, m);
    ASSERT_TRUE(xm.ok()) << xm.status();
    auto beyond = placed->net->RunRangeChecked(*xm, m, m + 1);
    EXPECT_FALSE(beyond.ok());
  }
  // Without the edge, an inference that needs units beyond M fails clearly instead of running
  // them.
  server.process().Kill(SIGKILL);
  server.process().Wait();
  EdgeClient gone(o.edge);
  const InferenceRecord r = RunOnPlacement(agent, Input(9, shape), 0.2e6, &gone);
  EXPECT_FALSE(r.ok);
  ASSERT_TRUE(r.fallback.has_value());
  EXPECT_NE(r.fallback->find("not stored on this device"), std::string::npos) << *r.fallback;
}

TEST(PlacementTest, CorruptedChunksAreRefusedAndFetchedAgain) {
  const std::string repo = TempDir("repo4"), store = TempDir("store4");
  Publish(repo, 1);
  EdgeServerProcess server(ServerArgs(repo, {"--fault-corrupt-chunks", "3"}));
  ASSERT_GT(server.port(), 0);
  PlacementAgent agent(AgentOptions(server.port(), store));
  auto rep = agent.Update();
  ASSERT_TRUE(rep.ok()) << rep.status();
  EXPECT_EQ(rep->chunks_refused, 3u);
  EXPECT_EQ(rep->bytes_downloaded, rep->plan.download_bytes());  // only good bytes count
  EdgeClient edge(AgentOptions(server.port(), store).edge);
  ExpectCorrectInference(agent, repo, &edge, 7);
}

TEST(PlacementTest, DroppedConnectionResumesWithoutRefetchingWhatArrived) {
  const std::string repo = TempDir("repo5"), store = TempDir("store5");
  Publish(repo, 1);
  EdgeServerProcess server(ServerArgs(repo, {"--fault-drop-after-chunks", "7"}));
  ASSERT_GT(server.port(), 0);
  PlacementAgent agent(AgentOptions(server.port(), store));
  auto rep = agent.Update();
  ASSERT_TRUE(rep.ok()) << rep.status();
  EXPECT_EQ(rep->interruptions, 1);
  EXPECT_EQ(rep->bytes_downloaded, rep->plan.download_bytes());  // every byte once
  EXPECT_EQ(agent.Current()->version, 1u);
}

// Kills the server mid-download of version 2: the device keeps version 1 and runs on it; once a
// server is back on the same port, the download resumes from the verified chunks on disk.
TEST(PlacementTest, ServerRestartMidDownloadKeepsTheOldVersionThenResumes) {
  const std::string repo = TempDir("repo6"), store = TempDir("store6");
  Publish(repo, 1);
  auto server = std::make_unique<EdgeServerProcess>(ServerArgs(repo));
  const int port = server->port();
  ASSERT_GT(port, 0);
  PlacementAgentOptions o = AgentOptions(port, store);
  o.max_attempts = 2;
  {
    PlacementAgent first(o);
    ASSERT_TRUE(first.Update().ok());
  }
  PublishPerturbed(repo, 1, 2);
  std::this_thread::sleep_for(300ms);  // the edge picks it up (polls every 50 ms)
  // About 100 KB at 0.4 Mbit/s: the download takes ~2 s; the kill lands in the middle.
  o.emulated_downlink_bps = 0.4e6;
  PlacementAgent agent(o);
  ASSERT_TRUE(agent.LoadFromStore().ok());
  ASSERT_EQ(agent.Current()->version, 1u);
  std::thread killer([&] {
    std::this_thread::sleep_for(800ms);
    server->process().Kill(SIGKILL);
  });
  auto failed = agent.Update();
  killer.join();
  ASSERT_FALSE(failed.ok()) << "the download should have been cut";
  EXPECT_EQ(agent.Current()->version, 1u);  // the old version stays, verified
  {
    UnitStore view(store);
    auto cur = view.Current("mlp");
    ASSERT_TRUE(cur.ok());
    EXPECT_EQ(cur->version, 1u);
  }
  server.reset();
  // A new server on the same port.
  ChildProcess again({std::string(SPLITINFER_BIN_DIR) + "/edge_server", "--listen",
                      "127.0.0.1:" + std::to_string(port), "--model-repo", repo, "--cpu"});
  auto line = again.ReadLine(60s);
  ASSERT_TRUE(line.has_value());
  PlacementAgentOptions fast = o;
  fast.emulated_downlink_bps = 0;
  PlacementAgent resumed(fast);
  ASSERT_TRUE(resumed.LoadFromStore().ok());
  auto rep = resumed.Update();
  ASSERT_TRUE(rep.ok()) << rep.status();
  EXPECT_EQ(rep->to_version, 2u);
  EXPECT_GT(rep->chunks_resumed, 0u);
  EXPECT_LT(rep->bytes_downloaded, rep->plan.download_bytes());
  EdgeClient edge(fast.edge);
  ExpectCorrectInference(resumed, repo, &edge, 11);
}

// Bytes changed on the edge's disk after it loaded the version: every copy of that chunk fails
// its digest, the device gives up on version 2 and keeps running version 1.
TEST(PlacementTest, ChunksThatNeverVerifyLeaveTheOldVersionInPlace) {
  const std::string repo = TempDir("repo7"), store = TempDir("store7");
  Publish(repo, 1);
  EdgeServerProcess server(ServerArgs(repo));
  ASSERT_GT(server.port(), 0);
  PlacementAgentOptions o = AgentOptions(server.port(), store);
  o.max_attempts = 1;
  PlacementAgent agent(o);
  ASSERT_TRUE(agent.Update().ok());
  PublishPerturbed(repo, 1, 2);
  std::this_thread::sleep_for(300ms);
  {
    std::fstream f(VersionDir(repo, "mlp", 2) + "/unit_3.pt",
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x7f');
  }
  auto rep = agent.Update();
  ASSERT_FALSE(rep.ok());
  EXPECT_EQ(rep.status().code(), StatusCode::kDataLoss) << rep.status();
  EXPECT_EQ(agent.Current()->version, 1u);
  EdgeClient edge(o.edge);
  ExpectCorrectInference(agent, repo, &edge, 5);
}

// A version the edge retired: the device's request gets NOT_FOUND naming the newest, it re-plans
// and runs on the new version.
TEST(PlacementTest, RetiredVersionMakesTheDeviceReplan) {
  const std::string repo = TempDir("repo8"), store = TempDir("store8");
  Publish(repo, 1);
  EdgeServerProcess server(ServerArgs(repo, {"--retire-grace-s", "0.2"}));
  ASSERT_GT(server.port(), 0);
  PlacementAgentOptions o = AgentOptions(server.port(), store);
  o.law = ConstantLaw(20e6);  // a fast uplink and a slow device: every inference offloads at 0
  o.cost.device_slowdown = 20;
  PlacementAgent agent(o);
  ASSERT_TRUE(agent.Update().ok());
  PublishPerturbed(repo, 1, 2);
  std::this_thread::sleep_for(1000ms);  // picked up, and v1 idle past the grace period
  auto v1 = agent.Current();
  ASSERT_EQ(v1->version, 1u);
  EdgeClient edge(o.edge);
  // The edge no longer serves v1: it says so, and the device asks for a new plan.
  bool replan = false;
  const InferenceRecord r = RunOnPlacement(agent, Input(3), 20e6, &edge, [&] { replan = true; });
  EXPECT_EQ(r.version, 1u);
  ASSERT_TRUE(r.fallback.has_value());
  EXPECT_NE(r.fallback->find("NOT_FOUND"), std::string::npos) << *r.fallback;
  EXPECT_TRUE(replan);
  ASSERT_TRUE(agent.Update().ok());
  EXPECT_EQ(agent.Current()->version, 2u);
  ExpectCorrectInference(agent, repo, &edge, 3);
}

// Several devices infer without pause while version 2 appears: each inference runs on one
// version from its first unit to its output (equal to that version's whole model), none fails,
// and every device ends on version 2.
TEST(PlacementTest, SwapUnderLoadNeverFailsOrMixesVersions) {
  const std::string repo = TempDir("repo9");
  Publish(repo, 1);
  EdgeServerProcess server(ServerArgs(repo, {"--retire-grace-s", "30"}));
  ASSERT_GT(server.port(), 0);
  constexpr int kDevices = 4;
  std::vector<std::unique_ptr<PlacementAgent>> agents;
  for (int d = 0; d < kDevices; ++d) {
    PlacementAgentOptions o = AgentOptions(server.port(), TempDir("store9_" + std::to_string(d)));
    // Two uplink states: slow (the policy keeps units here) and fast (it offloads at 0 on this
    // 20x slower device), so inferences take both paths.
    o.law.rate_bps = Eigen::Vector2d(0.2e6, 20e6);
    o.law.stationary = Eigen::Vector2d(0.5, 0.5);
    o.law.edges_bps = {2e6};
    o.cost.device_slowdown = 20;
    o.profile = MlpProfile(0.05 + 0.02 * d);
    agents.push_back(std::make_unique<PlacementAgent>(o));
    ASSERT_TRUE(agents.back()->Update().ok());
  }
  std::atomic<bool> stop{false};
  std::mutex mu;
  struct Record {
    uint32_t version;
    uint64_t seed;
    at::Tensor output;
    bool on_edge;
  };
  std::vector<Record> records;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int d = 0; d < kDevices; ++d) {
    threads.emplace_back([&, d] {  // the device's inferences
      EdgeClient edge(agents[d]->options().edge);
      for (uint64_t i = 0; !stop.load(); ++i) {
        const uint64_t seed = 1000 * (d + 1) + i;
        const double rate = (seed % 2) ? 20e6 : 0.2e6;
        const InferenceRecord r = RunOnPlacement(*agents[d], Input(seed), rate, &edge);
        if (!r.ok || r.fallback || r.mixed()) {
          ++failures;
          ADD_FAILURE() << "device " << d << ": " << r.fallback.value_or("mixed versions");
          continue;
        }
        std::lock_guard<std::mutex> lock(mu);
        records.push_back({r.version, seed, r.output.clone(), r.completed_on == "edge"});
      }
    });
    threads.emplace_back([&, d] {  // the device's placement loop
      while (!stop.load()) {
        auto rep = agents[d]->Update();
        if (!rep.ok()) ADD_FAILURE() << "device " << d << " update: " << rep.status();
        std::this_thread::sleep_for(50ms);
      }
    });
  }
  std::this_thread::sleep_for(700ms);
  PublishPerturbed(repo, 1, 2);
  std::this_thread::sleep_for(1500ms);
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  std::map<uint32_t, std::shared_ptr<SplitModel>> refs{{1, Reference(repo, 1)},
                                                       {2, Reference(repo, 2)}};
  std::map<uint32_t, int> per_version;
  std::map<bool, int> per_path;
  c10::InferenceMode guard;
  for (const Record& rec : records) {
    ASSERT_TRUE(refs.count(rec.version)) << rec.version;
    auto& ref = refs[rec.version];
    at::Tensor want = ref->RunRange(Input(rec.seed), 0, ref->num_units());
    ASSERT_TRUE(torch::allclose(rec.output, want, 1e-5, 1e-6))
        << "seed " << rec.seed << " on version " << rec.version << " is not that version's output";
    ++per_version[rec.version];
    ++per_path[rec.on_edge];
  }
  EXPECT_GT(per_path[true], 0) << "some inferences should finish on the edge";
  EXPECT_GT(per_path[false], 0) << "some inferences should finish on the device";
  EXPECT_GT(per_version[1], 0);
  EXPECT_GT(per_version[2], 0);
  for (auto& a : agents) EXPECT_EQ(a->Current()->version, 2u);
}

// Requests the edge cannot serve get a reply that says why, the connection stays usable, and
// the server keeps serving; a frame that breaks the protocol closes that connection only.
TEST(PlacementTest, BadPlacementAndFetchRequestsGetClearErrors) {
  const std::string repo = TempDir("repo10"), store = TempDir("store10");
  Publish(repo, 1);
  EdgeServerProcess server(ServerArgs(repo));
  ASSERT_GT(server.port(), 0);
  PlacementAgentOptions o = AgentOptions(server.port(), store);
  EdgeClient client(o.edge);
  ASSERT_TRUE(client.Connect().ok());
  auto good = [&] {
    wire::PlacementRequest req;
    req.set_model("mlp");
    std::vector<double> times(o.profile.units.size(), 0.05);
    sd::CostToWire(o.cost, times, req.mutable_profile());
    sd::LawToWire(o.law, req.mutable_channel());
    req.set_inferences_per_version(100);
    return req;
  };
  auto expect_refused = [&](const wire::PlacementRequest& req, wire::StatusCode code,
                            const std::string& words) {
    std::string body;
    auto reply = client.Plan(req, &body);
    ASSERT_TRUE(reply.ok()) << reply.status();  // a refusal, not a broken connection
    EXPECT_EQ(reply->code(), code) << reply->message();
    EXPECT_NE(reply->message().find(words), std::string::npos) << reply->message();
    EXPECT_TRUE(body.empty());
  };
  {
    auto req = good();
    req.set_model("nosuchmodel");
    expect_refused(req, wire::NOT_FOUND, "unknown model nosuchmodel");
  }
  {
    auto req = good();
    req.mutable_profile()->add_unit_time_ms(1.0);
    expect_refused(req, wire::INVALID_ARGUMENT, "unit_time_ms");
  }
  {
    auto req = good();
    for (int i = 0; i < 100; ++i) req.mutable_channel()->add_rate_bps(1e6 + i);
    expect_refused(req, wire::INVALID_ARGUMENT, "channel.rate_bps");
  }
  {
    auto req = good();
    req.mutable_channel()->set_rate_bps(0, std::nan(""));
    expect_refused(req, wire::INVALID_ARGUMENT, "channel.rate_bps");
  }
  {
    auto req = good();
    req.set_inferences_per_version(-1);
    expect_refused(req, wire::INVALID_ARGUMENT, "inferences_per_version");
  }
  {
    auto req = good();
    req.mutable_profile()->set_downlink_bps(std::numeric_limits<double>::infinity());
    expect_refused(req, wire::INVALID_ARGUMENT, "profile");
  }
  // Fetches out of range or for a version that is not served.
  auto fetch = [&](uint32_t version, uint32_t unit, uint32_t first, uint32_t count) {
    wire::FetchRequest f;
    f.set_model("mlp");
    f.set_version(version);
    f.set_unit(unit);
    f.set_first_chunk(first);
    f.set_num_chunks(count);
    size_t chunks = 0;
    Status st = client.Fetch(f, kChunk, [&](const wire::FetchChunk&, const uint8_t*, size_t) {
      ++chunks;
      return Status::Ok();
    });
    return std::make_pair(st, chunks);
  };
  EXPECT_EQ(fetch(9, 0, 0, 1).first.code(), StatusCode::kNotFound);
  EXPECT_EQ(fetch(0, 0, 0, 1).first.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(fetch(1, 99, 0, 1).first.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(fetch(1, 0, 999, 1).first.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(fetch(1, 0, 0, 0).first.code(), StatusCode::kInvalidArgument);
  // The same connection still plans and fetches.
  {
    std::string body;
    auto reply = client.Plan(good(), &body);
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(reply->code(), wire::OK) << reply->message();
    EXPECT_FALSE(body.empty());
    auto [st, n] = fetch(1, 0, 1, 1000);  // clamped to the unit's chunks
    EXPECT_TRUE(st.ok()) << st;
    auto manifest = ParseManifest(body, "reply");
    ASSERT_TRUE(manifest.ok());
    EXPECT_EQ(n, manifest->units[0].chunk_sha256.size() - 1);
  }
  // A PlacementRequest with a body breaks the framing: this connection closes, others go on.
  {
    BlockingConnection raw;
    ASSERT_TRUE(raw.Connect("127.0.0.1", static_cast<uint16_t>(server.port()), 2s).ok());
    wire::Hello h;
    h.set_protocol_version(kProtocolVersion);
    ASSERT_TRUE(raw.WriteFrame(MakeFrame(MessageType::kHello, h), 2s).ok());
    FrameHeader header;
    std::string meta;
    ASSERT_TRUE(raw.ReadHeaderAndMeta(FrameLimits{}, 2s, &header, &meta).ok());
    const std::string junk(64, 'x');
    ASSERT_TRUE(
        raw.WriteFrame(MakeFrame(MessageType::kPlacementRequest, good(), junk.data(), junk.size()),
                       2s)
            .ok());
    ASSERT_TRUE(raw.ReadHeaderAndMeta(FrameLimits{}, 2s, &header, &meta).ok());
    EXPECT_EQ(header.type, MessageType::kError);
  }
  std::string body;
  auto after = client.Plan(good(), &body);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->code(), wire::OK);
}

// A server without a model repository has nothing to place: it says so.
TEST(PlacementTest, ServerWithoutRepositoryRefusesPlacement) {
  std::vector<std::string> args{"--models", "mlp", "--cpu"};
  for (auto& a : testing::SmallZooArgs()) args.push_back(a);
  EdgeServerProcess server(args);
  ASSERT_GT(server.port(), 0);
  PlacementAgentOptions o = AgentOptions(server.port(), TempDir("store11"));
  PlacementAgent agent(o);
  auto rep = agent.Update();
  ASSERT_FALSE(rep.ok());
  EXPECT_EQ(rep.status().code(), StatusCode::kFailedPrecondition) << rep.status();
  EXPECT_NE(rep.status().message().find("--model-repo"), std::string::npos) << rep.status();
}

}  // namespace
}  // namespace splitinfer

// The online channel law (issue 5, item 4): Markov fitting converges at the sample-count rate,
// LawDistance separates an unchanged law from a changed one, the refitter re-solves after a
// change and only then, Observe() never waits for a solve, and a table swap under concurrent
// readers never yields a torn table. Also built with -fsanitize=thread
// (decision_online_law_tsan_test, label tsan).
#include "common/decision/online_law.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#if defined(__linux__)
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#endif

#include "common/decision/channel.h"
#include "common/decision/stopping.h"

namespace splitinfer::decision {
namespace {

using std::chrono::milliseconds;

// A K-state Markov chain over fixed, distinct rates.
struct Chain {
  std::vector<double> rate;
  Eigen::MatrixXd p;

  int k() const { return static_cast<int>(rate.size()); }
  Eigen::VectorXd Stationary() const {
    // pi (P - I) = 0, sum pi = 1: replace one equation by the normalization.
    Eigen::MatrixXd a = p.transpose() - Eigen::MatrixXd::Identity(k(), k());
    a.row(k() - 1).setOnes();
    Eigen::VectorXd b = Eigen::VectorXd::Zero(k());
    b(k() - 1) = 1.0;
    return a.fullPivLu().solve(b);
  }
  double MeanRate() const {
    const Eigen::VectorXd pi = Stationary();
    double m = 0;
    for (int s = 0; s < k(); ++s) m += pi(s) * rate[s];
    return m;
  }
  // n steps of the chain started from its stationary law; the visited states in `states`.
  std::vector<double> Generate(size_t n, std::mt19937_64& rng, std::vector<int>* states) const {
    std::uniform_real_distribution<double> u(0.0, 1.0);
    auto draw = [&](const Eigen::VectorXd& row) {
      double x = u(rng), c = 0.0;
      for (int j = 0; j < k(); ++j) {
        c += row(j);
        if (x < c) return j;
      }
      return k() - 1;
    };
    std::vector<double> out(n);
    if (states) states->resize(n);
    int s = draw(Stationary());
    for (size_t i = 0; i < n; ++i) {
      out[i] = rate[s];
      if (states) (*states)[i] = s;
      s = draw(p.row(s).transpose());
    }
    return out;
  }
};

Chain GoodChain() {
  Chain c;
  c.rate = {1e6, 3e6, 8e6, 20e6};
  c.p.resize(4, 4);
  c.p << 0.80, 0.15, 0.05, 0.00,  //
      0.10, 0.70, 0.15, 0.05,     //
      0.05, 0.15, 0.60, 0.20,     //
      0.00, 0.10, 0.30, 0.60;
  return c;
}

// A worse channel: lower rates, different dynamics.
Chain BadChain() {
  Chain c;
  c.rate = {0.2e6, 0.5e6, 1e6, 2e6};
  c.p.resize(4, 4);
  c.p << 0.60, 0.30, 0.10, 0.00,  //
      0.30, 0.50, 0.20, 0.00,     //
      0.10, 0.30, 0.50, 0.10,     //
      0.05, 0.15, 0.30, 0.50;
  return c;
}

double LawMeanRate(const ChannelLaw& law) { return law.stationary.dot(law.rate_bps); }

// --- Markov fitting converges -------------------------------------------------------------------

// For each entry, conditionally on the n_i visits of row i the counts out of row i are
// multinomial (strong Markov property), so sqrt(n_i) (p_hat - p) ~ N(0, p (1 - p)). z = 5 per
// entry (two-sided 5.7e-7) over 16 entries and 2 x 8 fits: the whole test fails by chance with
// probability < 2e-4 (Bonferroni); the seeds are fixed anyway. The 1/n_i slack covers the lattice.
// The stationary law: the sample mean of 1{X = i} has asymptotic variance
// pi_i (2 Z_ii - 1 - pi_i) / n with Z = (I - P + 1 pi^T)^-1 (the chain's fundamental matrix).
TEST(OnlineLawFitTest, MarkovFitConvergesAtTheSampleCountRate) {
  const Chain chain = GoodChain();
  const int k = chain.k();
  const Eigen::VectorXd pi = chain.Stationary();
  Eigen::MatrixXd one_pi = Eigen::VectorXd::Ones(k) * pi.transpose();
  const Eigen::MatrixXd z_fund =
      (Eigen::MatrixXd::Identity(k, k) - chain.p + one_pi).fullPivLu().inverse();
  constexpr double kZ = 5.0;
  constexpr int kSeeds = 8;
  const size_t kCounts[2] = {2000, 200000};
  double rms[2] = {0, 0}, max_err[2] = {0, 0}, max_pi_err[2] = {0, 0};
  for (int c = 0; c < 2; ++c) {
    const size_t n = kCounts[c];
    double sq = 0.0;
    int terms = 0;
    for (int seed = 1; seed <= kSeeds; ++seed) {
      std::mt19937_64 rng(1000 * c + seed);
      std::vector<int> states;
      const std::vector<double> series = chain.Generate(n, rng, &states);
      Result<ChannelLaw> law = FitMarkov(series, 0.005, k);
      ASSERT_TRUE(law.ok()) << law.status();
      ASSERT_EQ(law->num_states(), k);
      for (int s = 0; s < k; ++s) {
        EXPECT_NEAR(law->rate_bps(s), chain.rate[s], 1e-9 * chain.rate[s]);
        EXPECT_EQ(law->StateOf(chain.rate[s]), s);
      }
      std::vector<double> visits(k, 0.0);
      for (size_t i = 0; i + 1 < n; ++i) visits[states[i]] += 1;
      for (int i = 0; i < k; ++i) {
        ASSERT_GT(visits[i], 0);
        for (int j = 0; j < k; ++j) {
          const double p = chain.p(i, j), p_hat = law->transition(i, j);
          const double err = std::abs(p_hat - p);
          EXPECT_LE(err, kZ * std::sqrt(p * (1 - p) / visits[i]) + 1.0 / visits[i])
              << "n=" << n << " seed=" << seed << " entry " << i << "," << j;
          sq += err * err;
          ++terms;
          max_err[c] = std::max(max_err[c], err);
        }
        const double var_pi = pi(i) * (2 * z_fund(i, i) - 1 - pi(i));
        ASSERT_GT(var_pi, 0);
        const double pi_err = std::abs(law->stationary(i) - pi(i));
        EXPECT_LE(pi_err, kZ * std::sqrt(var_pi / n) + 1.0 / n) << "n=" << n << " state " << i;
        max_pi_err[c] = std::max(max_pi_err[c], pi_err);
      }
    }
    rms[c] = std::sqrt(sq / terms);
  }
  // 100x the samples: the error shrinks like 1/sqrt(n), i.e. by about 10.
  const double shrink = rms[0] / rms[1];
  std::printf("fit: n=%zu rms %.4g max %.4g (pi %.4g); n=%zu rms %.4g max %.4g (pi %.4g); x%.2f\n",
              kCounts[0], rms[0], max_err[0], max_pi_err[0], kCounts[1], rms[1], max_err[1],
              max_pi_err[1], shrink);
  EXPECT_GT(shrink, 5.0);
  EXPECT_LT(shrink, 20.0);
}

// --- LawDistance --------------------------------------------------------------------------------

TEST(OnlineLawDistanceTest, NearZeroWhenUnchangedLargeWhenChanged) {
  const Chain good = GoodChain();
  std::mt19937_64 rng(7);
  Result<ChannelLaw> law = FitMarkov(good.Generate(100000, rng, nullptr), 0.005, 4);
  ASSERT_TRUE(law.ok()) << law.status();

  // Same law, fresh 2000-sample windows: the sampling floor is removed.
  double worst_same = 0.0;
  for (int w = 0; w < 20; ++w) {
    const LawDistanceParts d = LawDistance(*law, good.Generate(2000, rng, nullptr));
    EXPECT_EQ(d.samples, 2000u);
    worst_same = std::max(worst_same, d.total());
  }
  // Same rates, other transition rows: the row term sees it (true weighted TV is about 0.2).
  Chain rows = BadChain();
  rows.rate = good.rate;
  const LawDistanceParts d_rows = LawDistance(*law, rows.Generate(2000, rng, nullptr));
  // Lower rates: they pile up in the lowest state and move its representative rate.
  const LawDistanceParts d_bad = LawDistance(*law, BadChain().Generate(2000, rng, nullptr));
  std::printf("distance: same law worst %.4f; other rows %.4f (rows %.4f); bad %.4f (rate %.4f)\n",
              worst_same, d_rows.total(), d_rows.transition, d_bad.total(), d_bad.rate);
  EXPECT_LT(worst_same, 0.05);  // the default change_threshold
  EXPECT_GT(d_rows.transition, 0.1);
  EXPECT_LT(d_rows.rate, 1e-9);  // the states' rates did not move
  EXPECT_GT(d_bad.rate, 0.5);
  EXPECT_GT(d_bad.occupancy, 0.5);

  // An i.i.d. law: its rows are the stationary law.
  std::uniform_real_distribution<double> u(1e6, 5e6);
  std::vector<double> iid(50000);
  for (double& r : iid) r = u(rng);
  Result<ChannelLaw> iid_law = DiscretizeEmpirical(iid, 8);
  ASSERT_TRUE(iid_law.ok());
  std::vector<double> fresh(5000);
  for (double& r : fresh) r = u(rng);
  EXPECT_LT(LawDistance(*iid_law, fresh).total(), 0.02);
  // The same samples sorted: perfectly sticky, far from i.i.d.
  std::sort(fresh.begin(), fresh.end());
  EXPECT_GT(LawDistance(*iid_law, fresh).transition, 0.5);
  EXPECT_EQ(LawDistance(*iid_law, {}).total(), 0.0);
}

TEST(OnlineLawOptionsTest, Validation) {
  OnlineLawOptions o;
  std::string error;
  EXPECT_TRUE(o.IsValid(&error)) << error;
  EXPECT_EQ(o.WindowSamples(), 12000u);
  EXPECT_EQ(o.RefitEverySamples(), 200u);
  o.grid_s = 0;
  EXPECT_FALSE(o.IsValid(&error));
  EXPECT_NE(error.find("grid_s"), std::string::npos);
  o = OnlineLawOptions();
  o.min_samples = 20000;
  EXPECT_FALSE(o.IsValid(&error));
  o = OnlineLawOptions();
  o.refit_every_s = 0.001;
  EXPECT_FALSE(o.IsValid(&error));
  o = OnlineLawOptions();
  o.change_threshold = NAN;
  EXPECT_FALSE(o.IsValid(&error));
}

// --- The refitter -------------------------------------------------------------------------------

struct LawSnapshot {
  ChannelLaw fitted;
  const ChannelLaw& law() const { return fitted; }
};
using LawRefitter = OnlineRefitter<LawSnapshot>;

Result<std::shared_ptr<const LawSnapshot>> FitSolver(const RateSeries& window, int k) {
  Result<ChannelLaw> law = FitMarkov(window.rate_bps, window.dt_s, k);
  if (!law.ok()) return law.status();
  auto snap = std::make_shared<LawSnapshot>();
  snap->fitted = std::move(law).value();
  return std::shared_ptr<const LawSnapshot>(std::move(snap));
}

// Observes `series` one refit's worth at a time and lets each refit finish (deterministic).
template <typename R>
void Feed(R& refitter, const std::vector<double>& series) {
  const size_t every = refitter.options().RefitEverySamples();
  for (size_t i = 0; i < series.size(); ++i) {
    refitter.Observe(series[i]);
    if ((i + 1) % every == 0) {
      ASSERT_TRUE(refitter.WaitForIdle(milliseconds(60000)));
    }
  }
  ASSERT_TRUE(refitter.WaitForIdle(milliseconds(60000)));
}

OnlineLawOptions SmallWindow() {
  OnlineLawOptions o;
  o.grid_s = 0.005;
  o.window_s = 10.0;      // 2000 samples
  o.refit_every_s = 1.0;  // 200 samples
  o.min_samples = 200;
  o.num_states = 4;
  o.change_threshold = 0.05;
  return o;
}

TEST(OnlineRefitterTest, ResolvesAfterALawChangeAndOnlyThen) {
  const OnlineLawOptions o = SmallWindow();
  ASSERT_TRUE(o.IsValid(nullptr));
  LawRefitter refitter(o, [&](const RateSeries& w) { return FitSolver(w, o.num_states); });
  EXPECT_EQ(refitter.Current(), nullptr);
  const Chain good = GoodChain(), bad = BadChain();
  std::mt19937_64 rng(11);

  // Phase A, 30 s of the good chain: the first refit solves (no table yet), later ones while
  // the estimate still moves.
  Feed(refitter, good.Generate(6000, rng, nullptr));
  ASSERT_NE(refitter.Current(), nullptr);
  const uint64_t solves_a = refitter.solves(), gen_a = refitter.generation();
  EXPECT_GE(gen_a, 1u);
  EXPECT_EQ(refitter.refits(), 30u);
  // The first tables come from the first seconds (a few hundred samples): a coarse estimate.
  EXPECT_NEAR(LawMeanRate(refitter.Current()->law()), good.MeanRate(), 0.25 * good.MeanRate());

  // Phase B, 30 s more of the same chain: (almost) every refit is skipped.
  const uint64_t skipped_a = refitter.refits_skipped();
  Feed(refitter, good.Generate(6000, rng, nullptr));
  const uint64_t solves_b = refitter.solves() - solves_a;
  const uint64_t skipped_b = refitter.refits_skipped() - skipped_a;
  EXPECT_EQ(refitter.refits(), 60u);
  EXPECT_LE(solves_b, 2u);
  EXPECT_GE(skipped_b, 28u);
  EXPECT_EQ(refitter.solve_errors(), 0u);
  const double quiet_distance = refitter.last_distance();
  EXPECT_LE(quiet_distance, o.change_threshold);

  // Phase C, the channel turns bad: the first refit after the change (1 s of bad samples in a
  // 10 s window) already re-solves, and after two windows the table follows the bad chain.
  const uint64_t gen_b = refitter.generation();
  const double good_mean = LawMeanRate(refitter.Current()->law());
  Feed(refitter, bad.Generate(200, rng, nullptr));
  const double change_distance = refitter.last_distance();
  EXPECT_GT(change_distance, o.change_threshold);
  EXPECT_GT(refitter.generation(), gen_b);
  const uint64_t solves_before_c = refitter.solves();
  const std::vector<double> bad_tail = bad.Generate(3800, rng, nullptr);
  Feed(refitter, bad_tail);
  // The table is now solved on a law within the threshold of the bad chain's window: its lowest
  // state moved below every good rate and its mean rate went (at least) 90% of the way.
  const ChannelLaw& after = refitter.Current()->law();
  const std::vector<double> window(bad_tail.end() - 2000, bad_tail.end());
  EXPECT_LE(LawDistance(after, window).total(), o.change_threshold);
  EXPECT_LT(after.rate_bps(0), good.rate[0]);
  EXPECT_LE(std::abs(LawMeanRate(after) - bad.MeanRate()), 0.1 * (good_mean - bad.MeanRate()));
  std::printf(
      "refitter: A %llu solves/30 refits, B %llu solves %llu skipped (distance %.4f), change "
      "distance %.3f, C %llu more solves; mean rate %.3g -> %.3g (bad chain %.3g)\n",
      static_cast<unsigned long long>(solves_a), static_cast<unsigned long long>(solves_b),
      static_cast<unsigned long long>(skipped_b), quiet_distance, change_distance,
      static_cast<unsigned long long>(refitter.solves() - solves_before_c), good_mean,
      LawMeanRate(after), bad.MeanRate());
}

TEST(OnlineRefitterTest, ObserveNeverWaitsForASolve) {
  OnlineLawOptions o = SmallWindow();
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<bool> running{false}, timed_out{false};
  std::atomic<int> calls{0};
  // The first solve is held until the test releases it (at most 30 s).
  auto solver = [&](const RateSeries& w) {
    if (calls.fetch_add(1) == 0) {
      running = true;
      std::unique_lock<std::mutex> lock(mu);
      if (!cv.wait_for(lock, std::chrono::seconds(30), [&] { return release; })) timed_out = true;
      running = false;
    }
    return FitSolver(w, o.num_states);
  };
  LawRefitter refitter(o, solver);
  std::mt19937_64 rng(5);
  const std::vector<double> series = GoodChain().Generate(5200, rng, nullptr);
  for (size_t i = 0; i < 200; ++i) refitter.Observe(series[i]);  // triggers the first solve
  for (int i = 0; i < 30000 && !running; ++i) std::this_thread::sleep_for(milliseconds(1));
  ASSERT_TRUE(running);
  // 25 refits' worth of samples while the solver is held: every call returns.
  for (size_t i = 200; i < series.size(); ++i) refitter.Observe(series[i]);
  EXPECT_TRUE(running);                    // the solve is still in progress...
  EXPECT_EQ(refitter.observed(), 5200u);   // ...and every Observe() returned
  EXPECT_EQ(refitter.Current(), nullptr);  // readers keep the old (here: no) snapshot
  EXPECT_EQ(refitter.refits(), 1u);
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  ASSERT_TRUE(refitter.WaitForIdle(milliseconds(60000)));
  EXPECT_FALSE(timed_out);
  EXPECT_NE(refitter.Current(), nullptr);
  // The samples observed during the solve start one more refit right after it, not 25.
  EXPECT_EQ(refitter.refits(), 2u);
}

TEST(OnlineRefitterTest, SolverErrorKeepsTheOldSnapshot) {
  OnlineLawOptions o = SmallWindow();
  o.change_threshold = -1.0;  // solve at every refit
  auto initial = std::make_shared<LawSnapshot>();
  Result<ChannelLaw> law = DiscretizeEmpirical({1e6, 2e6, 3e6}, 3);
  ASSERT_TRUE(law.ok());
  initial->fitted = *law;
  std::shared_ptr<const LawSnapshot> first = initial;
  std::atomic<int> calls{0};
  auto solver = [&](const RateSeries&) -> Result<std::shared_ptr<const LawSnapshot>> {
    if (calls.fetch_add(1) % 2 == 0) return InternalError("no fit today");
    throw std::runtime_error("solver blew up");
  };
  LawRefitter refitter(o, solver, first);
  std::mt19937_64 rng(3);
  Feed(refitter, GoodChain().Generate(800, rng, nullptr));
  refitter.Observe(NAN);
  refitter.Observe(-1.0);
  EXPECT_EQ(refitter.Current(), first);
  EXPECT_EQ(refitter.generation(), 0u);
  EXPECT_EQ(refitter.solves(), 4u);
  EXPECT_EQ(refitter.solve_errors(), 4u);
  EXPECT_EQ(refitter.dropped(), 2u);
}

#if defined(__linux__)
// The solver runs at nice 19 (low_priority, the default), so that a solve takes idle time rather
// than time from the inference beside it; the observing thread keeps its priority.
TEST(OnlineRefitterTest, SolvesRunAtTheLowestPriority) {
  OnlineLawOptions o = SmallWindow();
  o.change_threshold = -1.0;  // solve at every refit
  std::atomic<int> solver_nice{-100};
  auto solver = [&](const RateSeries&) -> Result<std::shared_ptr<const LawSnapshot>> {
    errno = 0;
    solver_nice = getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)));
    return InternalError("only looking");
  };
  const int caller_nice = getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)));
  LawRefitter refitter(o, solver);
  std::mt19937_64 rng(5);
  Feed(refitter, GoodChain().Generate(800, rng, nullptr));
  ASSERT_GE(refitter.solves(), 1u);
  EXPECT_EQ(solver_nice.load(), 19);
  EXPECT_EQ(getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid))), caller_nice);
}
#endif

// The client's use: the snapshot holds the fitted law and its BI table; an inference takes one
// snapshot at its start and reads every boundary's decision from it.
struct BiSnapshot {
  ChannelLaw fitted;
  std::vector<uint8_t> stop;  // H x K
  int k = 0;
  const ChannelLaw& law() const { return fitted; }
  bool Stop(int l, int s) const { return stop[l * k + s] != 0; }
};

Result<std::shared_ptr<const BiSnapshot>> BiSolver(const RateSeries& window) {
  Result<ChannelLaw> law = FitMarkov(window.rate_bps, window.dt_s, 4);
  if (!law.ok()) return law.status();
  // Three units of 50 ms on the device; offloading at boundary l sends 800, 400, 200 kbit.
  const int h = 3, k = law->num_states();
  const double bits[h] = {8e5, 4e5, 2e5};
  StoppingProblem p;
  p.horizon = h;
  p.continue_cost = Eigen::VectorXd::Constant(h, 0.05);
  p.stop_cost = Eigen::MatrixXd::Zero(h + 1, k);  // all local at H: nothing left to pay
  for (int l = 0; l < h; ++l)
    for (int s = 0; s < k; ++s) p.stop_cost(l, s) = bits[l] / law->rate_bps(s);
  p.initial = law->stationary;
  p.iid = false;
  p.transition.assign(h, law->transition);
  SPLITINFER_RETURN_IF_ERROR(p.Validate());
  auto snap = std::make_shared<BiSnapshot>();
  snap->stop = SolveBackwardInduction(p).stop;
  snap->k = k;
  snap->fitted = std::move(law).value();
  return std::shared_ptr<const BiSnapshot>(std::move(snap));
}

TEST(OnlineRefitterTest, BiTableFollowsTheChannel) {
  OnlineRefitter<BiSnapshot> refitter(SmallWindow(), BiSolver);
  std::mt19937_64 rng(13);
  // One inference: one snapshot, the boundary where it offloads (3 = ran locally).
  auto infer = [&](double rate) {
    const std::shared_ptr<const BiSnapshot> table = refitter.Current();
    const int s = table->law().StateOf(rate);
    for (int l = 0; l < 3; ++l)
      if (table->Stop(l, s)) return l;
    return 3;
  };
  Feed(refitter, GoodChain().Generate(2000, rng, nullptr));
  EXPECT_EQ(infer(20e6), 0);  // 800 kbit at 20 Mbit/s: 40 ms < 150 ms of local units
  const uint64_t gen = refitter.generation();
  Feed(refitter, BadChain().Generate(2000, rng, nullptr));
  EXPECT_GT(refitter.generation(), gen);
  EXPECT_EQ(infer(2e6), 3);  // the best state is now 2 Mbit/s: every offload costs > 50 ms/unit
}

// --- Torn tables --------------------------------------------------------------------------------

// A large table whose every entry is its stamp, plus a checksum of the whole table.
struct StampedTable {
  ChannelLaw fitted;
  uint64_t stamp = 0;
  std::vector<uint32_t> entries;
  uint64_t checksum = 0;
  const ChannelLaw& law() const { return fitted; }

  static uint64_t Checksum(const std::vector<uint32_t>& e) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a over the entries and their positions
    for (size_t i = 0; i < e.size(); ++i)
      h = (h ^ (e[i] + 0x9e3779b97f4a7c15ull * i)) * 1099511628211ull;
    return h;
  }
  static std::shared_ptr<const StampedTable> Make(uint64_t stamp) {
    auto t = std::make_shared<StampedTable>();
    t->fitted.rate_bps = Eigen::VectorXd::Constant(1, 1e6);
    t->fitted.stationary = Eigen::VectorXd::Ones(1);
    t->stamp = stamp;
    t->entries.assign(8192, static_cast<uint32_t>(stamp));
    t->checksum = Checksum(t->entries);
    return t;
  }
};

TEST(OnlineLawSwapTest, ConcurrentInferencesNeverSeeATornTable) {
  OnlineLawOptions o;
  o.grid_s = 0.005;
  o.window_s = 0.32;  // 64 samples
  o.refit_every_s = 0.005;
  o.min_samples = 2;
  o.change_threshold = -1.0;  // a new table at every refit
  ASSERT_TRUE(o.IsValid(nullptr));
  std::atomic<uint64_t> next_stamp{0};
  OnlineRefitter<StampedTable> refitter(
      o,
      [&](const RateSeries&) -> Result<std::shared_ptr<const StampedTable>> {
        return StampedTable::Make(++next_stamp);
      },
      StampedTable::Make(0));

  constexpr int kReaders = 4;
  constexpr uint64_t kSwaps = 300;
  std::atomic<bool> done{false};
  std::atomic<uint64_t> reads{0}, torn{0}, backwards{0};
  std::vector<std::set<uint64_t>> seen(kReaders);
  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      uint64_t last = 0;
      while (!done.load(std::memory_order_acquire)) {
        const std::shared_ptr<const StampedTable> t = refitter.Current();  // one inference
        bool ok = t->entries.size() == 8192 && StampedTable::Checksum(t->entries) == t->checksum;
        for (uint32_t e : t->entries) ok = ok && e == static_cast<uint32_t>(t->stamp);
        if (!ok) torn.fetch_add(1);
        if (t->stamp < last) backwards.fetch_add(1);
        last = t->stamp;
        seen[r].insert(t->stamp);
        reads.fetch_add(1);
      }
    });
  }
  // The writer side: observed rates drive the background refits, each publishing a new table.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (refitter.generation() < kSwaps && std::chrono::steady_clock::now() < deadline)
    refitter.Observe(1e6);
  ASSERT_TRUE(refitter.WaitForIdle(milliseconds(60000)));
  done = true;
  for (std::thread& t : readers) t.join();
  size_t distinct = 0;
  for (const auto& s : seen) distinct = std::max(distinct, s.size());
  std::printf("swap: %llu tables published, %llu reads, %llu torn, at most %zu tables per reader\n",
              static_cast<unsigned long long>(refitter.generation()),
              static_cast<unsigned long long>(reads.load()),
              static_cast<unsigned long long>(torn.load()), distinct);
  EXPECT_GE(refitter.generation(), kSwaps);
  EXPECT_EQ(refitter.Current()->stamp, next_stamp.load());
  EXPECT_EQ(torn.load(), 0u);
  EXPECT_EQ(backwards.load(), 0u);  // a reader never goes back to an older table
  EXPECT_GT(reads.load(), 0u);
  EXPECT_GE(distinct, 2u);
}

}  // namespace
}  // namespace splitinfer::decision

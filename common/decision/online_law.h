// The channel law learned online (issue 5, item 4): the client fits the Markov law from the rates
// it observes over a sliding window, re-solves the decision table in the background when the
// window's law has moved away from the one the current table was solved for, and swaps the table
// atomically. An inference never waits for a solve: it takes one snapshot (Current()) at its
// start and decides every boundary from that snapshot.
//
// How much the law moved: LawDistance compares the current law with the window, mapping each
// window sample to a state with the CURRENT law's edges (StateOf, as the policy does at run time):
//
//   occupancy  = max(0, TV(q, pi) - eps),    eps = z/2 sum_s sqrt(lag sigma2_s / n)
//   transition = sum_s q_s max(0, TV(Q_s, P_s) - eps_s),  eps_s = z/2 sum_j sqrt(P_sj(1-P_sj)/n_s)
//   rate       = sum_s q_s |r_s - rhat_s| / max(r_s, rhat_s)      (non-outage states)
//   total      = occupancy + transition + rate                    (in [0, 3])
//
// n: window samples; q_s: the window's share of samples (of counted pairs, in the row term) in
// state s; pi: the law's stationary law; Q_s: the transition row counted on the window between
// samples `lag` steps apart (n_s pairs start in s); P_s: the law's row (pi for an i.i.d. law);
// TV(a, b) = 1/2 sum_j |a_j - b_j|; sigma2_s: the asymptotic variance of 1{X = s} under the law's
// chain, pi_s (2 Z_ss - 1 - pi_s) with Z = (I - P + 1 pi^T)^-1 (pi_s (1 - pi_s) for an i.i.d.
// law; above K = 256 the O(K) estimate of the lumped chain {s, not s}); r_s: the law's
// representative rate; rhat_s: the window's 1/mean(1/r) over its samples in s (the arithmetic
// mean if one is zero), as DiscretizeEmpirical computes it. Why this measure:
//  - A BI table depends on the law through the transition rows (the continuation
//    E[V_{l+1} | s] = P_s . V_{l+1}), the stop prices (S_l(s) ~ 1/r_s) and how the states cut
//    the rate axis. |Q_s . V - P_s . V| <= TV(Q_s, P_s) (max V - min V): the row term bounds the
//    relative error of the continuation values; the rate term is the relative error of the stop
//    price 8 s / r in each state (symmetric, so it stays in [0, 1]); both weighted by how often
//    the window visits each state.
//  - The occupancy term catches what the two others cannot see: a window that visits only some
//    of the law's states (e.g. the channel got worse and its rates now fall in the two lowest
//    states, whose rows and rates may still look alike) leaves the table deciding with states
//    placed for the old channel; a re-fit puts the K quantile states where the rates now are.
//  - Each eps is z = 2 standard deviations of the sampling noise of its TV when the window does
//    follow the law: sd of a row entry from the binomial variance, of an occupancy from the
//    Markov chain's asymptotic variance (which is what keeps a sticky chain's noisy occupancy
//    from counting). E|X - EX| <= sd X (Jensen), so at z = 1 eps already bounds the expected TV;
//    z = 2 also absorbs its fluctuations (the sum of K |deviations| rarely exceeds twice its
//    bound). Subtracting eps removes the sampling floor: an unchanged law gives a total near 0
//    whatever the window length, and the threshold means a real change.
// O(n log K + K^2) for n samples plus the O(K^3) inverse; needs a law over the scalar observed
// rate (not the pair states of split_sim --long-window-ms).
//
// Thread safety: OnlineLawOptions and LawDistance are plain values and a pure function.
// OnlineRefitter: Observe() from any thread (a short mutex around a ring-buffer store; never
// waits for a solve); Current(), the counters and Publish() from any number of threads. Current()
// is std::atomic_load on a std::shared_ptr (libstdc++ guards it with a small pool of mutexes held
// for one pointer copy: a reader may wait for another pointer copy, never for a solve). Snapshots
// are immutable (shared_ptr<const T>) and live as long as any reader holds one, so a table in use
// is never modified or freed under an inference. The solver runs on the refitter's own thread,
// one solve at a time, on a copy of the window; it must not call WaitForIdle() (it would wait for
// itself). The destructor waits for a running solve to finish.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/decision/channel.h"
#include "common/decision/trace.h"
#include "common/log.h"
#include "common/status.h"

namespace splitinfer::decision {

// Lowers the calling thread's CPU priority to nice 19 where the platform allows (Linux: nice is
// per thread); a no-op elsewhere or when refused.
void LowerThisThreadsPriority();

struct OnlineLawOptions {
  double grid_s = 0.005;       // one Observe() per grid step
  double window_s = 60.0;      // sliding window of observed samples, seconds
  double refit_every_s = 1.0;  // emulated seconds of new samples between re-fits
  size_t min_samples = 200;    // no fit before this many samples are in the window
  int num_states = 16;         // K the solver fits (the refitter itself does not use it)
  // Re-solve when LawDistance(...).total() > change_threshold. Negative: re-solve at every refit.
  double change_threshold = 0.05;
  // Run the re-fitting thread at the lowest CPU priority (nice 19, Linux), so that a solve takes
  // idle time and does not slow the inference it runs beside.
  bool low_priority = true;

  bool IsValid(std::string* error) const;
  size_t WindowSamples() const;      // round(window_s / grid_s)
  size_t RefitEverySamples() const;  // round(refit_every_s / grid_s), at least 1
};

struct LawDistanceParts {
  double occupancy = 0.0;   // max(0, TV(q, pi) - eps)
  double transition = 0.0;  // sum_s q_s max(0, TV(Q_s, P_s) - eps_s)
  double rate = 0.0;        // sum_s q_s |r_s - rhat_s| / max(r_s, rhat_s)
  size_t samples = 0;
  double total() const { return occupancy + transition + rate; }
};

// See the header comment. `lag`: steps between the two samples of a counted transition (the
// law's epoch_s / grid step for a Markov law; 1 for an i.i.d. law). An empty window gives 0.
LawDistanceParts LawDistance(const ChannelLaw& current, const std::vector<double>& window_rates,
                             int lag = 1);

// Keeps the last window_s of observed rates, re-fits every refit_every_s, and publishes the
// snapshot the solver builds from the window when the window's law moved by more than
// change_threshold (or when there is no snapshot yet). T is an immutable snapshot (e.g. the
// fitted law and its BI table) exposing `const ChannelLaw& law() const`.
template <typename T>
class OnlineRefitter {
 public:
  using Snapshot = std::shared_ptr<const T>;
  // Builds a snapshot from the window (dt_s = grid_s, oldest sample first). A non-ok result or a
  // null snapshot keeps the old snapshot (the first error is logged). Exceptions count as errors.
  using Solver = std::function<Result<Snapshot>(const RateSeries& window)>;

  // Check `options` with IsValid first (config parsing); out-of-range sizes are clamped here
  // (window >= max(2, min_samples), refit every >= 1 sample) so the object stays usable.
  OnlineRefitter(const OnlineLawOptions& options, Solver solver, Snapshot initial = nullptr)
      : options_(options),
        solver_(std::move(solver)),
        capacity_(std::max<size_t>(2, std::max(options.WindowSamples(), options.min_samples))),
        refit_every_(options.RefitEverySamples()),
        min_samples_(std::max<size_t>(2, options.min_samples)),
        ring_(capacity_, 0.0),
        current_(std::move(initial)) {
    window_.name = "online-window";
    window_.dt_s = options_.grid_s;
    window_.rate_bps.reserve(capacity_);
    thread_ = std::thread([this, low = options.low_priority] {
      if (low) LowerThisThreadsPriority();
      Run();
    });
  }
  OnlineRefitter(const OnlineRefitter&) = delete;
  OnlineRefitter& operator=(const OnlineRefitter&) = delete;
  ~OnlineRefitter() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    work_cv_.notify_one();
    thread_.join();
  }

  // One observed rate per grid step (bit/s). O(1): stores into the ring buffer under a short
  // mutex and, once refit_every_s of new samples arrived while no refit is pending or running,
  // wakes the background thread. Samples that arrive during a solve count toward the next refit,
  // which starts as soon as the solve ends. Non-finite or negative rates are dropped.
  void Observe(double rate_bps) {
    if (!(rate_bps >= 0.0) || !std::isfinite(rate_bps)) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    bool wake = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ring_[head_] = rate_bps;
      if (++head_ == capacity_) head_ = 0;
      if (size_ < capacity_) ++size_;
      ++fresh_;
      wake = !busy_ && !pending_ && TriggerLocked();
    }
    observed_.fetch_add(1, std::memory_order_relaxed);
    if (wake) work_cv_.notify_one();
  }

  // The snapshot to use for one whole inference (null until the first solve when constructed
  // without one).
  Snapshot Current() const { return std::atomic_load(&current_); }

  // Installs a snapshot solved elsewhere (e.g. the first table from a configuration); the next
  // refit compares the window with its law. The last publisher wins.
  void Publish(Snapshot snapshot) {
    std::atomic_store(&current_, std::move(snapshot));
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }

  // Counters (monotone; for tests, logs and the ledger).
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }  // publishes
  uint64_t refits() const { return refits_.load(std::memory_order_acquire); }  // windows examined
  uint64_t solves() const { return solves_.load(std::memory_order_acquire); }  // solver calls
  uint64_t solve_errors() const { return solve_errors_.load(std::memory_order_acquire); }
  // Refits whose distance was <= change_threshold (no solve).
  uint64_t refits_skipped() const { return refits_skipped_.load(std::memory_order_acquire); }
  uint64_t observed() const { return observed_.load(std::memory_order_relaxed); }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  // LawDistance total of the last refit that had a snapshot to compare with (-1 before).
  double last_distance() const { return last_distance_.load(std::memory_order_acquire); }
  const OnlineLawOptions& options() const { return options_; }

  // Tests only: waits until no refit is pending or running (everything observed so far that
  // triggers a refit has been processed). False on timeout.
  bool WaitForIdle(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return idle_cv_.wait_for(lock, timeout, [this] { return !pending_ && !busy_; });
  }

 private:
  // mu_ held. Claims the fresh samples for a refit when enough arrived.
  bool TriggerLocked() {
    if (fresh_ < refit_every_ || size_ < min_samples_) return false;
    fresh_ = 0;
    pending_ = true;
    return true;
  }

  // mu_ held: the window in time order into window_ (capacity reserved: no allocation).
  void CopyWindowLocked() {
    const size_t start = size_ < capacity_ ? 0 : head_;
    window_.rate_bps.resize(size_);
    for (size_t i = 0, j = start; i < size_; ++i) {
      window_.rate_bps[i] = ring_[j];
      if (++j == capacity_) j = 0;
    }
  }

  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      work_cv_.wait(lock, [this] { return stop_ || pending_; });
      if (stop_) break;
      pending_ = false;
      busy_ = true;
      CopyWindowLocked();
      lock.unlock();
      Refit();
      lock.lock();
      busy_ = false;
      TriggerLocked();  // samples that arrived during the solve
      if (!pending_) idle_cv_.notify_all();
    }
    busy_ = false;
    pending_ = false;
    idle_cv_.notify_all();
  }

  // Background thread, no lock held: window_ belongs to this thread until the next copy.
  void Refit() {
    refits_.fetch_add(1, std::memory_order_acq_rel);
    const Snapshot current = Current();
    if (current) {
      const ChannelLaw& law = current->law();
      int lag = 1;
      if (!law.iid && law.epoch_s > 0.0)
        lag = std::max(1, static_cast<int>(std::lround(law.epoch_s / options_.grid_s)));
      const double d = LawDistance(law, window_.rate_bps, lag).total();
      last_distance_.store(d, std::memory_order_release);
      if (!(d > options_.change_threshold)) {
        refits_skipped_.fetch_add(1, std::memory_order_acq_rel);
        return;
      }
    }
    solves_.fetch_add(1, std::memory_order_acq_rel);
    Result<Snapshot> next = InternalError("solver did not run");
    try {
      next = solver_(window_);
    } catch (const std::exception& e) {
      next = InternalError(std::string("solver threw: ") + e.what());
    } catch (...) {
      next = InternalError("solver threw a non-standard exception");
    }
    if (next.ok() && next.value() == nullptr) next = InternalError("solver returned no snapshot");
    if (!next.ok()) {
      if (solve_errors_.fetch_add(1, std::memory_order_acq_rel) == 0)
        log::Warn("online law: re-solve failed, keeping the current table (logged once): " +
                  next.status().ToString());
      return;
    }
    Publish(std::move(next).value());
  }

  const OnlineLawOptions options_;
  const Solver solver_;
  const size_t capacity_;
  const size_t refit_every_;
  const size_t min_samples_;

  std::mutex mu_;  // guards everything down to stop_
  std::condition_variable work_cv_;
  std::condition_variable idle_cv_;
  std::vector<double> ring_;
  size_t head_ = 0;   // next write
  size_t size_ = 0;   // samples in the ring
  size_t fresh_ = 0;  // samples since the last refit was claimed
  bool pending_ = false;
  bool busy_ = false;
  bool stop_ = false;

  RateSeries window_;  // background thread only (copied under mu_)
  Snapshot current_;   // only through std::atomic_load / std::atomic_store

  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> refits_{0};
  std::atomic<uint64_t> solves_{0};
  std::atomic<uint64_t> solve_errors_{0};
  std::atomic<uint64_t> refits_skipped_{0};
  std::atomic<uint64_t> observed_{0};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<double> last_distance_{-1.0};

  std::thread thread_;  // started in the constructor's body, once every member exists
};

}  // namespace splitinfer::decision

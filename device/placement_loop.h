// PlacementLoop: the device's slow loop in the background (docs/placement.md). It runs one
// PlacementAgent::Update at start, then one every `period`, or at once after Wake() (e.g. the
// edge answered that the version this device holds is retired). Update downloads the units the
// plan asks for in verified chunks and swaps atomically while the inference loop keeps running
// on the version it holds; each inference takes one snapshot (PlacedPolicy), so none mixes
// versions. A failed round (the edge is gone, a chunk keeps failing) keeps the old version; the
// next round resumes the download from the chunks already on disk.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "common/status.h"
#include "device/placement_agent.h"

namespace splitinfer {

class PlacementLoop {
 public:
  // Called on the loop's thread after every round, successful or not.
  using Listener = std::function<void(const Result<UpdateReport>& round)>;

  PlacementLoop(PlacementAgent* agent, std::chrono::milliseconds period, Listener on_round);
  ~PlacementLoop();  // Stop()
  PlacementLoop(const PlacementLoop&) = delete;
  PlacementLoop& operator=(const PlacementLoop&) = delete;

  void Start();
  // Asks for a round now (the next one if one is running).
  void Wake();
  // Blocks until a version is placed or `timeout` passes; true when one is.
  bool WaitForPlacement(std::chrono::milliseconds timeout);
  // Ends the loop after the round under way (a download in progress finishes or fails first).
  void Stop();
  int rounds() const;

 private:
  void Run();

  PlacementAgent* agent_;
  std::chrono::milliseconds period_;
  Listener on_round_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false, wake_ = false;
  int rounds_ = 0;
  std::thread thread_;
};

}  // namespace splitinfer

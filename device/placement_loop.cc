#include "device/placement_loop.h"

namespace splitinfer {

PlacementLoop::PlacementLoop(PlacementAgent* agent, std::chrono::milliseconds period,
                             Listener on_round)
    : agent_(agent), period_(period), on_round_(std::move(on_round)) {}

PlacementLoop::~PlacementLoop() { Stop(); }

void PlacementLoop::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { Run(); });
}

void PlacementLoop::Wake() {
  std::lock_guard<std::mutex> lock(mu_);
  wake_ = true;
  cv_.notify_all();
}

bool PlacementLoop::WaitForPlacement(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return stop_ || agent_->Current() != nullptr; }) &&
         agent_->Current() != nullptr;
}

void PlacementLoop::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

int PlacementLoop::rounds() const {
  std::lock_guard<std::mutex> lock(mu_);
  return rounds_;
}

void PlacementLoop::Run() {
  for (;;) {
    Result<UpdateReport> round = agent_->Update();
    if (on_round_) on_round_(round);
    std::unique_lock<std::mutex> lock(mu_);
    ++rounds_;
    cv_.notify_all();  // WaitForPlacement
    cv_.wait_for(lock, period_, [&] { return stop_ || wake_; });
    wake_ = false;
    if (stop_) return;
  }
}

}  // namespace splitinfer

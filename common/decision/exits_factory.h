// One factory for the early-exit controllers (issue 9) that exits_sim and exits_client both run:
// os (optimal stopping with the exits folded into backward induction), fixed (one common
// threshold and one split), bi (the plain splitter, exits off) and rl (the DDPG agent of
// exits_rl.h), each fitted on an ExitWorld the same way in both binaries. Each binary reports
// the returned figures in its own format.
//
// In splitinfer_exits_rl (rl needs LibTorch to train). Thread safety: see TrainDdpg.
#pragma once

#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/decision/exits.h"
#include "common/decision/exits_rl.h"
#include "common/status.h"

namespace splitinfer::decision {

struct ExitControllerOptions {
  std::vector<double> grid = DefaultThresholdGrid();  // thresholds searched by os and fixed
  // fixed: searches this grid instead of `grid` (a single value fixes the threshold).
  std::optional<std::vector<double>> fixed_grid;
  bool per_state = false;  // os: thresholds per channel state at boundary 0
  DdpgOptions ddpg;        // rl
  // Called with each controller's name just before it is built (e.g. to announce rl training).
  std::function<void(const std::string& name)> before_build;
};

// One built controller and what fitting it found.
struct BuiltExitController {
  std::string name;  // os, fixed, bi or rl
  std::unique_ptr<ExitController> controller;
  // Exact expected cost under the fitted law on the calibration samples (os, fixed, bi); NaN
  // for rl.
  double expected_cost = std::numeric_limits<double>::quiet_NaN();
  OsControllerInfo os;        // os only
  FixedControllerInfo fixed;  // fixed only
  DdpgReport ddpg;            // rl only
};

// The controllers of `names`, a comma list of os, fixed, bi, rl (in that order of the list, a
// name may repeat), fitted on world.base and world.calib (rl: trained on world.fit). An unknown
// name (an empty one included) is kInvalidArgument; an empty list gives no controllers.
Result<std::vector<BuiltExitController>> MakeExitControllers(const ExitWorld& world,
                                                             const std::string& names,
                                                             const ExitControllerOptions& options);

}  // namespace splitinfer::decision

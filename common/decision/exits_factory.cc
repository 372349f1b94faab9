#include "common/decision/exits_factory.h"

#include <sstream>

namespace splitinfer::decision {

Result<std::vector<BuiltExitController>> MakeExitControllers(const ExitWorld& world,
                                                             const std::string& names,
                                                             const ExitControllerOptions& options) {
  std::vector<BuiltExitController> out;
  const ExitModel& model = *world.model;
  std::istringstream list(names);
  std::string name;
  while (std::getline(list, name, ',')) {
    if (name != "os" && name != "fixed" && name != "bi" && name != "rl")
      return InvalidArgumentError("unknown controller '" + name + "' (os, rl, fixed, bi)");
    if (options.before_build) options.before_build(name);
    BuiltExitController b;
    b.name = name;
    if (name == "os") {
      auto c =
          MakeOsController(model, world.base, world.calib, options.grid, options.per_state, &b.os);
      if (!c.ok()) return c.status();
      b.expected_cost = b.os.expected_cost;
      b.controller = std::move(*c);
    } else if (name == "fixed") {
      auto c =
          MakeFixedController(model, world.base, world.calib,
                              options.fixed_grid ? *options.fixed_grid : options.grid, &b.fixed);
      if (!c.ok()) return c.status();
      b.expected_cost = b.fixed.expected_cost;
      b.controller = std::move(*c);
    } else if (name == "bi") {
      double expected_cost = 0.0;
      auto c = MakePlainBiController(model, world.base, world.calib, &expected_cost);
      if (!c.ok()) return c.status();
      b.expected_cost = expected_cost;
      b.controller = std::move(*c);
    } else {
      auto c = TrainDdpg(world, options.ddpg, &b.ddpg);
      if (!c.ok()) return c.status();
      b.controller = std::move(*c);
    }
    out.push_back(std::move(b));
  }
  return out;
}

}  // namespace splitinfer::decision

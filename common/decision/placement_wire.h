// Model placement over the wire (issue 7 item 2): the device's side of a PlacementRequest
// (its channel law and cost options as protobuf) and the edge's planner on one.
//
// The edge knows each unit's output bytes and download bytes (the manifest's file sizes); the
// device knows its own unit times, power model, weights and channel. PlanPlacementRequest puts
// the two together into a CostModel and runs the same PlacementPlanner as split_sim, so the M*
// a device gets over the wire is the simulator's M* for the same inputs (tested against the
// closed form of the equal-width MLP in tests/integration/placement_test.cc).
//
// Everything read from a request is validated first (sizes, finiteness, distributions), with
// messages that name the field. Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <vector>

#include "common/decision/channel.h"
#include "common/decision/cost_model.h"
#include "common/decision/placement.h"
#include "common/status.h"
#include "splitinfer.pb.h"

namespace splitinfer::decision {

inline constexpr int kMaxWireStates = 64;   // K: a Markov law is K^2 doubles in the request
inline constexpr int kMaxWireUnits = 4096;  // N

void LawToWire(const ChannelLaw& law, wire::ChannelStats* out);
Result<ChannelLaw> LawFromWire(const wire::ChannelStats& in);

// The cost options a device announces (energy model: power; the CMOS model does not travel).
void CostToWire(const CostOptions& options, const std::vector<double>& unit_time_ms,
                wire::DeviceProfile* out);
Result<CostOptions> CostFromWire(const wire::DeviceProfile& in);

// The planner on a request. `shape` is the model as the edge knows it: input_bytes and, per
// unit, name, output_bytes and param_bytes (= bytes downloaded to store the unit); its time_ms
// are replaced by the request's unit times. On success the reply has code OK, m, the objective
// and its parts, objective_by_m and planner_us; model/version/num_units are the caller's.
Result<wire::PlacementReply> PlanPlacementRequest(ModelProfile shape,
                                                  const wire::PlacementRequest& request);

}  // namespace splitinfer::decision

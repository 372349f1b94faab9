// The device program, wired: what device_client runs once its options are parsed.
//
// One process, one inference loop (DeviceSession), four ways to pick the policy:
//   --split K|all          a fixed split (and --codec), no channel needed;
//   --policy P --channel C live splitting over an emulated uplink: BI, OLA and the baselines,
//                          --law prefix|full|online, --codecs, --csi, --segments replay;
//   ... --store DIR        the same policy on the units the placement loop keeps on this device:
//                          plans with the edge, downloads new versions in the background while
//                          inferences go on, swaps atomically, re-plans every
//                          --placement-period-s (docs/placement.md);
//   --exits CONTROLLERS    early exits on a branchy model with the os/rl/fixed/bi controllers.
// Every inference becomes one record (device/inference_record.h) on stdout (--json) and in the
// ledger (--ledger). Exit status: 0 when every inference produced a result (and, with --verify,
// matched the local run), 1 otherwise, 2 for bad options or inputs.
#pragma once

#include "device/device_client_options.h"

namespace splitinfer {

int RunDeviceClient(const DeviceClientOptions& options);

}  // namespace splitinfer

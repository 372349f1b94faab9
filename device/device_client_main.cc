// device_client: the device. It runs units 1..k of a model here and sends the tensor at boundary
// k to an edge_server, which runs k+1..N and returns the output; k is fixed (--split), decided
// live unit by unit from the emulated uplink (--policy, --channel), on the units the placement
// loop keeps on this device (--store), or with early exits (--exits). See device/device_client.h
// for the modes and docs/live.md for the inference loop and its ledger.
//
//   device_client --server 127.0.0.1:PORT --model resnet18 --split 3 --requests 20 --verify
//   device_client --server ... --model resnet18 --policy bi --channel trace:FILE --json
//   device_client --server ... --model resnet18 --policy bi --channel trace:FILE --store DIR
//   device_client --config device/device_client.example.toml
//
// No inference is lost: when the edge cannot be reached, refuses a request, or vanishes while
// requests are in flight, the device finishes those inferences from the tensor it kept and says
// so in the record ("fallback").
//
// Every option can also come from --config FILE (TOML, keys = long option names; see
// device/device_client.example.toml), parsed strictly (common/config_file.h); the command line
// overrides the file.
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>

#include "common/config_file.h"
#include "common/log.h"
#include "device/device_client.h"
#include "device/device_client_options.h"

int main(int argc, char** argv) {
  using namespace splitinfer;
  CLI::App app{"splitinfer device: runs units 1..k here and the rest on an edge_server"};
  app.option_defaults()->always_capture_default();  // defaults in --help and --print-config
  app.set_config("--config", "",
                 "read options from this TOML file (KEY = VALUE, KEY a long option name without "
                 "--; see device/device_client.example.toml); the command line overrides it");
  app.allow_config_extras(CLI::config_extras_mode::error);
  const std::shared_ptr<StrictTomlConfig> config_reader = UseStrictTomlConfig(&app);
  bool print_config = false;
  app.add_flag("--print-config", print_config,
               "print the options set (command line over --config file) in --config format, "
               "and exit")
      ->configurable(false);
  DeviceClientOptions options;
  AddDeviceClientOptions(app, &options);
  if (auto rc = ParseWithConfigFile(app, *config_reader, argc, argv, "device_client")) return *rc;
  if (print_config) {
    // Only what was set: with every default printed, --split and --policy would both be set
    // when the output is read back, and they exclude each other.
    std::cout << app.config_to_str(/*default_also=*/false, /*write_description=*/true);
    return 0;
  }
  log::SetName("device");
  return RunDeviceClient(options);
}

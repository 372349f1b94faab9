#include "device/device_client_options.h"

#include "common/decision/robust_cli.h"
#include "common/zoo_cli.h"

namespace splitinfer {

void AddDeviceClientOptions(CLI::App& app, DeviceClientOptions* o) {
  // The edge.
  app.add_option("--server", o->server,
                 "edge_server HOST:PORT, or a comma-separated list tried in order of health "
                 "(failover); omit to run everything locally");
  app.add_option("--connect-timeout-ms", o->connect_timeout_ms)->check(CLI::Range(1, 600000));
  app.add_option("--io-timeout-ms", o->io_timeout_ms)->check(CLI::Range(1, 3600000));
  app.add_option("--reconnect-ms", o->reconnect_ms, "wait before retrying a failed connect")
      ->check(CLI::Range(0, 3600000));
  app.add_option("--deadline-ms", o->deadline_ms, "edge deadline per request (0: server default)");
  app.add_flag("--tls", o->tls, "TLS to the edge server (it must run with --tls-cert/--tls-key)");
  app.add_option("--tls-ca", o->tls_ca, "PEM CA that signed the server (default: system store)")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-server-name", o->tls_server_name,
                 "name the server's certificate must carry (default: the host of --server)");
  app.add_option("--auth-token-file", o->auth_token_file,
                 "file whose first line is the server's auth token")
      ->check(CLI::ExistingFile);

  // The model.
  app.add_option("--model", o->model, "zoo model name (or the name of --torchscript)");
  app.add_option("--version", o->version, "model version")->check(CLI::Range(1u, 1000000u));
  app.add_option("--torchscript", o->torchscript, "TorchScript chain file instead of the zoo");
  AddZooOptions(app, &o->zoo);  // the same flags as the edge's, so both build one model
  app.add_option("--threads", o->threads, "LibTorch intra-op threads (0: default)")
      ->check(CLI::Range(0, 256));

  // The run.
  auto* split = app.add_option("--split", o->split, "boundary k in 0..N, or 'all' for every k");
  app.add_option("--codec", o->codec,
                 "how the tensor at the split travels (with --split): fp32 (raw), fp16, int8, "
                 "int8c (per channel), each optionally +zstd or +zstd:LEVEL");
  app.add_option("--requests", o->requests,
                 "inferences per split, per policy (replay: see --segments), per exit "
                 "controller, or in all with --store")
      ->check(CLI::Range(1, 1000000));
  app.add_option("--in-flight", o->in_flight, "requests outstanding at once on the connection")
      ->check(CLI::Range(1, 4096));
  app.add_flag("--verify", o->verify, "compare each result with a whole local run");
  app.add_flag("--json", o->json, "one JSON line per inference on stdout");
  app.add_option("--seed", o->seed,
                 "seed of everything random in the run: inputs, exit episodes, RL training");
  app.add_option("--ledger", o->ledger,
                 "also write every record (one JSON line per inference; placement rounds as "
                 "{\"event\": \"placement\"} lines) to this file");

  // Live splitting.
  auto* policy =
      app.add_option("--policy", o->policy,
                     "decide k live: bi|ola|neurosurgeon|greedy|best-fixed|fixed:K|local|edge "
                     "(needs --channel; replaces --split); with --segments a comma-separated "
                     "list or 'all'")
          ->excludes(split);
  app.add_option("--channel", o->channel,
                 "emulated uplink, split_sim specs: rayleigh:snr_db=X | "
                 "gauss-markov:snr_db=X,doppler_hz=Y | trace:FILE | markov-fit:FILE");
  app.add_option("--time-scale", o->time_scale, "emulated (trace) seconds per wall second")
      ->check(CLI::Range(1e-3, 1e3));
  app.add_option("--csi", o->csi,
                 "channel state the device observes: perfect (the emulated rate) or estimated "
                 "(goodput of its recent uploads)")
      ->check(CLI::IsMember({"perfect", "estimated"}));
  app.add_option("--goodput-window", o->goodput_window, "--csi estimated: uploads averaged")
      ->check(CLI::Range(1, 10000));
  app.add_option("--device-slowdown", o->device_slowdown,
                 "each piece of device work takes X times its measured time (a slower board)")
      ->check(CLI::Range(1.0, 1000.0));
  app.add_option("--edge-speedup", o->edge_speedup,
                 "the edge computes this much faster than the profile (cost model)")
      ->check(CLI::Range(0.01, 1e4));
  app.add_option("--profile", o->profile,
                 "profile JSON for the cost model, or 'local' to profile the model here at "
                 "start-up (default: data/profiles/<model>.json for default zoo options, else "
                 "local)");
  app.add_option("--cost-config", o->cost_config, "cost options JSON (keys of CostOptions)");
  app.add_option("--w-energy", o->w_energy, "weight of a joule (overrides --cost-config)");
  app.add_option("--w-time", o->w_time, "weight of a second (overrides --cost-config)");
  auto* states = app.add_option("--states", o->states, "K, channel states of the policy's law")
                     ->check(CLI::Range(1, 4096));
  app.add_option("--grid-ms", o->grid_ms, "step of the emulated rate series")
      ->check(CLI::Range(0.1, 10000.0));
  app.add_option("--window-ms", o->window_ms,
                 "the device observes the mean rate over this window (as split_sim: 20)")
      ->check(CLI::Range(0.0, 600000.0));
  app.add_option("--law", o->law,
                 "channel law of the policy (series channels): prefix = fitted on the first "
                 "--fit-fraction of the series, the run starts after it (as split_sim); full = "
                 "fitted on the whole series, the run starts at 0; online = starts from the "
                 "prefix law and re-fits a Markov law from the CSI reports of a sliding window "
                 "in the background")
      ->check(CLI::IsMember({"prefix", "full", "online"}));
  app.add_option("--fit-fraction", o->fit_fraction,
                 "share of the series the prefix law is fitted on")
      ->check(CLI::Range(0.05, 0.95));
  app.add_option("--segments", o->segments,
                 "replay: one inference per segment, starting at S evenly spaced offsets of the "
                 "scored part of the series, the same offsets for every policy of --policy")
      ->check(CLI::Range(0, 100000));
  app.add_option("--codecs", o->codecs,
                 "codec profile JSON (codec_fidelity, data/codecs/<model>.json); the policy "
                 "then chooses the codec of the split tensor with the boundary");
  app.add_option("--min-agreement", o->min_agreement,
                 "--codecs: codecs below this top-1 agreement with float32 are not used")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--fidelity-weight", o->fidelity_weight,
                 "--codecs: cost per unit of lost top-1 agreement")
      ->check(CLI::Range(0.0, 1e9));
  app.add_option("--online-window-s", o->online.window_s,
                 "--law online: sliding window (emulated s)")
      ->check(CLI::Range(0.1, 1e6));
  app.add_option("--refit-every-s", o->online.refit_every_s,
                 "--law online: new CSI reports (emulated s) between re-fits")
      ->check(CLI::Range(0.001, 1e6));
  app.add_option("--change-threshold", o->online.change_threshold,
                 "--law online: re-solve when the law distance exceeds this")
      ->check(CLI::Range(0.0, 2.0));
  decision::AddRobustOptions(app, &o->robust);
  app.add_option("--bandwidth-mhz", o->bandwidth_mhz, "Shannon bandwidth (rayleigh, gauss-markov)")
      ->check(CLI::Range(1e-3, 1e5));
  app.add_option("--channel-seed", o->channel_seed, "seed of generated channels");

  // Placement.
  app.add_option("--store", o->store,
                 "model placement: keep the units the edge's planner places here (verified "
                 "chunked download in the background, atomic version swaps); the model then "
                 "comes from the edge's repository, not the zoo")
      ->needs(policy);
  app.add_option("--placement-period-s", o->placement_period_s,
                 "--store: ask the edge for a new plan this often")
      ->check(CLI::Range(0.01, 86400.0));
  app.add_option("--placement-wait-s", o->placement_wait_s,
                 "--store: wait at most this long for the first placement")
      ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--storage-mb", o->storage_mb, "--store: storage budget (0: unlimited)")
      ->check(CLI::Range(0.0, 1e9));
  app.add_option("--inferences-per-version", o->inferences_per_version,
                 "--store: R, inferences expected per model version (the planner's trade-off)")
      ->check(CLI::Range(1e-6, 1e12));
  app.add_option("--downlink-mbps", o->downlink_mbps,
                 "--store: download rate, planned and emulated")
      ->check(CLI::Range(0.001, 1e6));
  app.add_flag("--no-downlink-pacing", o->no_downlink_pacing,
               "--store: download as fast as the connection goes");
  app.add_flag("--placement-ola", o->placement_ola,
               "--store: the planner uses one-stage look-ahead instead of BI");

  // Early exits.
  app.add_option("--exits", o->exits,
                 "early exits: run these controllers (os,rl,fixed,bi) on the branchy model of "
                 "--weights over held-out digits, --requests episodes each (needs --channel)");
  app.add_option("--weights", o->weights, "--exits: digits_branchy weights (train_exits --out)");
  app.add_option("--data", o->data, "--exits: the digits file");
  app.add_option("--split-seed", o->split_seed,
                 "--exits: seed of the train/test split (train_exits --seed)");
  app.add_option("--stats", o->stats, "--exits: exit statistics the controllers are fitted on");
  app.add_option("--accuracy-weight", o->accuracy_weight, "--exits: cost of one wrong answer")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--train-steps", o->train_steps,
                 "--exits rl: inferences simulated in training (default: the agent's)");
  app.add_option("--rate-scale", o->rate_scale, "--exits: multiplies every trace rate");
  app.add_option("--summary-json", o->summary_json, "--exits: per-controller summary as JSON");

  // Variant selection.
  app.add_option("--variants", o->variants,
                 "with --policy: select per inference among these digits_branchy variants, "
                 "NAME=WEIGHTS,... (NAME as in --variant-profiles; the edge serves them as "
                 "digits_branchy@1, @2, ... in this order), with a contextual bandit fed the QoE "
                 "each inference realized; inputs are held-out digits (--data, --split-seed)")
      ->needs(policy);
  app.add_option("--variant-profiles", o->variant_profiles,
                 "--variants: the variants' accuracy, FLOPs and unit profiles (make_variants.sh)");
  app.add_option("--select", o->select, "--variants: linucb or egreedy")
      ->check(CLI::IsMember({"linucb", "egreedy"}));
  app.add_option("--latency-sensitivity", o->latency_sensitivity,
                 "--variants: QoE points lost per ms of latency")
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--qoe-energy-weight", o->qoe_energy_weight,
                 "--variants: QoE points lost per mJ the device spends")
      ->check(CLI::Range(0.0, 1e6));

  app.parse_complete_callback([o, split, states] {
    o->split_given = split->count() > 0;
    o->states_given = states->count() > 0;
  });
}

}  // namespace splitinfer

#!/usr/bin/env bash
# Model placement live (issue 7): a device through several version updates at different R
# (inferences per version) and uplinks, against one edge_server serving a model repository.
#
#   scripts/placement.sh [MODEL]          (default resnet18)
#
# For each scenario (R, channel) a fresh device (empty store) runs build/bin/device_placement for
# UPDATES rounds. Before each round after the first, this script publishes a new version on the
# edge (model_repo perturb: the old weights plus noise, standing in for retraining); the edge
# picks it up while running; the device re-plans, downloads the units it lacks in verified chunks
# over an emulated downlink (DOWNLINK_MBPS), swaps, and runs INFERENCES inferences on the new
# placement over the emulated uplink. Printed per round: version, M chosen, bytes downloaded,
# download time (and the planner's prediction), download energy and cost D(M) (and predicted),
# the mean inference cost after the swap (and the planner's E[V_0^(M)]), and planner time.
# Writes OUT/rounds.jsonl and OUT/table.txt; with PLOT=1 also OUT/placement_sweep.json and
# OUT/placement_m_star.png, M* against R and against the mean uplink rate from split_sim's planner
# (scripts/placement_sweep.sh; docs/figures/placement_m_star.png is that figure). Without
# python3-matplotlib, PLOT=1 says so at the start and writes the JSON, not the figure
# (scripts/install_deps.sh --plots installs it).
#
# Environment: UPDATES (3), INFERENCES (10), SLOWDOWN (5), DOWNLINK_MBPS (50), INPUT_SIZE (224),
# SCENARIOS ("R:CHANNEL ..."), OUT (build/placement/<model>), BUILD (1: build first).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-resnet18}
if [[ -n "${PLOT:-}" ]]; then
  source scripts/lib/plots.sh
  plots_check placement
fi
if [[ "${BUILD:-1}" == 1 ]]; then
  scripts/install_deps.sh
  scripts/build.sh >/dev/null
fi
source scripts/lib/edge_server.sh
bin=${BUILD_DIR:-build}/bin
out=${OUT:-${BUILD_DIR:-build}/placement/$model}
mkdir -p "$out"
work=$(mktemp -d)
trap 'stop_edge_server; rm -rf "$work"' EXIT
updates=${UPDATES:-3}
input_size=${INPUT_SIZE:-224}
zoo=(--input-size "$input_size")
scenarios=${SCENARIOS:-"1:rayleigh:snr_db=0 100:rayleigh:snr_db=0 10000:rayleigh:snr_db=0 100:rayleigh:snr_db=20 10000:rayleigh:snr_db=20"}

repo=$work/repo
version=1
"$bin/model_repo" publish --repo "$repo" --model "$model" --version 1 "${zoo[@]}" >/dev/null
start_edge_server "$work" --model-repo "$repo" --repo-poll-ms 100 --retire-grace-s 5 \
  "${zoo[@]}" --intra-op-threads 1 --cpu
echo "placement: $model at ${input_size}x${input_size}, edge_server on $EDGE_ADDR serving $repo"
echo "device: this machine, 1 thread, ${SLOWDOWN:-5}x slowdown; downlink ${DOWNLINK_MBPS:-50} Mbit/s emulated"
: >"$out/rounds.jsonl"
{
  printf '%-7s %-20s %5s %3s %3s %9s %9s %9s %9s %9s %9s %9s %9s %9s\n' R channel round v M \
    MB dl_s pred_s dl_J 'D(M)' pred 'E[cost]' pred planner_us
  for sc in $scenarios; do
    r=${sc%%:*}
    channel=${sc#*:}
    store=$work/store-$r-${channel//[:=]/_}
    rounds=$work/rounds-$r-${channel//[:=]/_}.jsonl
    "$bin/device_placement" --server "$EDGE_ADDR" --model "$model" "${zoo[@]}" --store "$store" \
      --channel "$channel" --inferences-per-version "$r" --device-slowdown "${SLOWDOWN:-5}" \
      --downlink-mbps "${DOWNLINK_MBPS:-50}" --updates "$updates" \
      --inferences "${INFERENCES:-10}" --json --wait-s 120 --check-every-ms 100 >"$rounds" \
      2>"$work/device.err" &
    dev=$!
    for ((k = 1; k <= updates; k++)); do
      # Wait for round k-1 to be printed, then publish the next version (not after the last).
      while [[ $(wc -l <"$rounds") -lt $k ]]; do
        kill -0 "$dev" 2>/dev/null || { cat "$work/device.err" >&2; exit 1; }
        sleep 0.1
      done
      if ((k < updates)); then
        "$bin/model_repo" perturb --repo "$repo" --model "$model" --from "$version" \
          --to $((version + 1)) --scale 0.02 --seed "$version" >/dev/null
        version=$((version + 1))
      fi
    done
    wait "$dev" || { cat "$work/device.err" >&2; exit 1; }
    cat "$rounds" >>"$out/rounds.jsonl"
    /usr/bin/python3 - "$rounds" "$r" "$channel" <<'PY'
import json, sys
path, r, channel = sys.argv[1:4]
for line in open(path):
    j = json.loads(line)
    print(f"{r:<7} {channel:<20} {j['round']:5d} {j['version']:3d} {j['m']:3d} "
          f"{j['bytes_downloaded']/1e6:9.2f} {j['download_s']:9.3f} {j['predicted_download_s']:9.3f} "
          f"{j['download_energy_j']:9.3f} {j['download_cost']:9.3f} {j['predicted_download_cost']:9.3f} "
          f"{j['mean_inference_cost']:9.4f} {j['predicted_inference_cost']:9.4f} {j['planner_us']:9d}")
PY
  done
} | tee "$out/table.txt"
echo "placement: wrote $out/rounds.jsonl and $out/table.txt"
if [[ -n "${PLOT:-}" ]]; then
  # M* against R and against the mean uplink, from split_sim's planner (the planner the edge runs).
  if [[ $PLOTS == 1 ]]; then
    SPLIT_SIM="$bin/split_sim" OUT="$out" scripts/placement_sweep.sh --plot
  else
    SPLIT_SIM="$bin/split_sim" OUT="$out" scripts/placement_sweep.sh
    plots_skipped placement
  fi
fi

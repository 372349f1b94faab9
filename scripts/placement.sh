#!/usr/bin/env bash
# Model placement live: a device through several version updates at different R (inferences per
# version) and uplinks, against one edge_server serving a model repository.
#
#   scripts/placement.sh [MODEL]          (default resnet18)
#
# For each scenario (R, channel) a fresh device (empty store) runs build/bin/device_client
# --store --policy bi --channel CHANNEL in the background: its placement loop
# plans with the edge, downloads the units the planner places in verified chunks over an emulated
# downlink (DOWNLINK_MBPS) and swaps, while its inference loop goes on over the emulated uplink.
# Each time the ledger shows INFERENCES inferences on the newest version, this script publishes
# the next one on the edge (model_repo perturb: the old weights plus noise, standing in for
# retraining), until the scenario has seen UPDATES versions; the edge picks each up while running
# and the device re-plans, downloads and swaps. Printed per version (one placement round that
# changed what the device holds): version, M chosen, bytes downloaded, download time (and
# 8 x bytes / downlink rate), download energy and cost D(M) (and the planner's prediction), the
# number n and mean realized cost of the inferences that ran on that version (and the planner's
# E[V_0^(M)]), and planner time.
#
# Inferences go on on the old version while the next one downloads; once the last version has
# INFERENCES inferences, the script stops the device with SIGTERM (it finishes what is in flight
# and writes its summary).
#
# Writes OUT/ledger-<R>-<channel>.jsonl (device_client --ledger: one line per inference, per
# placement round and the run's summary), OUT/rounds.jsonl (the rounds that changed the placement,
# each with its scenario and the inferences on its version) and OUT/table.txt; with PLOT=1 also
# OUT/placement_sweep.json and OUT/placement_m_star.png, M* against R and against the mean uplink
# rate from split_sim's planner (scripts/placement_sweep.sh; docs/figures/placement_m_star.png is
# that figure). Without python3-matplotlib, PLOT=1 says so at the start and writes the JSON, not
# the figure (scripts/install_deps.sh --plots installs it).
#
# Environment: UPDATES (3), INFERENCES (10), SLOWDOWN (5),
# DOWNLINK_MBPS (50), INPUT_SIZE (224), PERIOD_S (0.2, --placement-period-s), SCENARIOS
# ("R:CHANNEL ..."), OUT (build/placement/<model>), BUILD (1: build first).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-resnet18}
if [[ -n "${PLOT:-}" ]]; then
  source scripts/lib/plots.sh
  plots_check placement
fi
if [[ "${BUILD:-1}" == 1 ]]; then
  scripts/install_deps.sh
  TARGETS="edge_server device_client model_repo split_sim" scripts/build.sh >/dev/null
fi
source scripts/lib/edge_server.sh
bin=${BUILD_DIR:-build}/bin
out=${OUT:-${BUILD_DIR:-build}/placement/$model}
mkdir -p "$out"
work=$(mktemp -d)
dev=
cleanup() {
  [[ -n "$dev" ]] && kill "$dev" 2>/dev/null
  stop_edge_server
  rm -rf "$work"
}
trap cleanup EXIT
updates=${UPDATES:-3}
inferences=${INFERENCES:-10}
downlink=${DOWNLINK_MBPS:-50}
input_size=${INPUT_SIZE:-224}
zoo=(--input-size "$input_size")
scenarios=${SCENARIOS:-"1:rayleigh:snr_db=0 100:rayleigh:snr_db=0 10000:rayleigh:snr_db=0 100:rayleigh:snr_db=20 10000:rayleigh:snr_db=20"}

repo=$work/repo
version=1
"$bin/model_repo" publish --repo "$repo" --model "$model" --version 1 "${zoo[@]}" >/dev/null
start_edge_server "$work" --model-repo "$repo" --repo-poll-ms 100 --retire-grace-s 5 \
  "${zoo[@]}" --intra-op-threads 1 --cpu
echo "placement: $model at ${input_size}x${input_size}, edge_server on $EDGE_ADDR serving $repo"
echo "device: this machine, 1 thread, ${SLOWDOWN:-5}x slowdown; downlink $downlink Mbit/s emulated;" \
  "a new version after $inferences inferences on the newest"

# Inference records of version $2 in ledger $1.
on_version() { grep '"request_id"' "$1" 2>/dev/null | grep -c "\"version\":$2[,}]" || true; }

: >"$out/rounds.jsonl"
{
  printf '%-7s %-20s %5s %3s %3s %5s %9s %9s %9s %9s %9s %9s %9s %9s %9s\n' R channel round v M n \
    MB dl_s pred_s dl_J 'D(M)' pred 'E[cost]' pred planner_us
  for sc in $scenarios; do
    r=${sc%%:*}
    channel=${sc#*:}
    tag=$r-${channel//[:=]/_}
    store=$work/store-$tag
    ledger=$out/ledger-$tag.jsonl
    rm -f "$ledger"
    "$bin/device_client" --server "$EDGE_ADDR" --model "$model" "${zoo[@]}" --store "$store" \
      --policy bi --channel "$channel" --requests 1000000 --threads 1 \
      --device-slowdown "${SLOWDOWN:-5}" --inferences-per-version "$r" \
      --downlink-mbps "$downlink" --placement-period-s "${PERIOD_S:-0.2}" \
      --placement-wait-s 120 --ledger "$ledger" --json >"$work/device.out" 2>"$work/device.err" &
    dev=$!
    # The scenario's first version is the newest on the edge; publish the next one each time
    # the newest has INFERENCES inferences in the ledger; after the last, stop the device.
    for ((k = 1; k <= updates; k++)); do
      while (($(on_version "$ledger" "$version") < inferences)); do
        kill -0 "$dev" 2>/dev/null || break 2  # the run is over: no more versions
        sleep 0.1
      done
      if ((k < updates)); then
        "$bin/model_repo" perturb --repo "$repo" --model "$model" --from "$version" \
          --to $((version + 1)) --scale 0.02 --seed "$version" >/dev/null
        version=$((version + 1))
      else
        kill -TERM "$dev"
      fi
    done
    rc=0
    wait "$dev" || rc=$?
    dev=
    ((rc == 0)) || { echo "placement: device_client exited $rc" >&2; cat "$work/device.err" >&2; exit 1; }
    # One row per round that changed the placement. Placement lines and inference records are
    # single-line JSON objects with unique keys (the inference's nested cost has the only "total").
    awk -v r="$r" -v channel="$channel" -v mbps="$downlink" -v want="$inferences" \
      -v rounds="$out/rounds.jsonl" '
      function num(key,   s) {
        if (!match($0, "\"" key "\":[^,}]*")) return ""
        s = substr($0, RSTART, RLENGTH)
        sub(/^"[^"]*":/, "", s)
        return s
      }
      /"request_id"/ { v = num("version"); n[v]++; cost[v] += num("total"); next }
      /"event":"placement"/ && /"ok":false/ { failed++; next }
      /"event":"placement"/ && /"changed":true/ { rows[++nr] = $0; next }
      END {
        for (i = 1; i <= nr; i++) {
          $0 = rows[i]
          v = num("version"); b = num("bytes_downloaded")
          mean = n[v] > 0 ? sprintf("%9.4f", cost[v] / n[v]) : sprintf("%9s", "-")
          printf "%-7s %-20s %5d %3d %3d %5d %9.2f %9.3f %9.3f %9.3f %9.3f %9.3f %s %9.4f %9.0f\n",
            r, channel, i, v, num("m"), n[v], b / 1e6, num("download_s"), 8 * b / (mbps * 1e6),
            num("download_energy_j"), num("download_cost"), num("predicted_download_cost"), mean,
            num("predicted_inference_cost"), num("planner_us")
          line = $0
          sub(/^[{]/, "{\"r\":" r ",\"channel\":\"" channel "\",\"round\":" i ",\"inferences_on_version\":" (n[v] + 0) \
            ",\"mean_inference_cost\":" (n[v] > 0 ? cost[v] / n[v] : "null") ",", line)
          print line >>rounds
          if (n[v] < want)
            printf "placement: v%d ran %d < %d inferences\n",
              v, n[v], want >"/dev/stderr"
        }
        if (failed) printf "placement: %d placement round(s) failed (see the ledger)\n", failed >"/dev/stderr"
      }' "$ledger"
  done
} | tee "$out/table.txt"
echo "placement: wrote $out/ledger-*.jsonl, $out/rounds.jsonl and $out/table.txt"
if [[ -n "${PLOT:-}" ]]; then
  # M* against R and against the mean uplink, from split_sim's planner (the planner the edge runs).
  if [[ $PLOTS == 1 ]]; then
    SPLIT_SIM="$bin/split_sim" OUT="$out" scripts/placement_sweep.sh --plot
  else
    SPLIT_SIM="$bin/split_sim" OUT="$out" scripts/placement_sweep.sh
    plots_skipped placement
  fi
fi

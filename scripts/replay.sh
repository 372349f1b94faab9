#!/usr/bin/env bash
# Trace replay: every policy on the same segments of a real trace, live against one edge_server.
#
#   scripts/replay.sh TRACE [MODEL]
#   scripts/replay.sh ../shared/traces/mahimahi_us_cellular/Verizon-LTE-short.up mobilenetv2
#   scripts/replay.sh trace:data/traces/norway_car_7          (a full channel spec works too)
#
# The law is fitted on the first half of the trace (as split_sim does); SEGMENTS inferences start
# at evenly spaced offsets of the second half, the same offsets for every policy. Each inference
# runs units on this machine slowed down SLOWDOWN times (a board), decides k unit by unit from the
# emulated channel, sends the tensor over the paced uplink, and the edge finishes it. Printed per
# policy: mean realized cost, its ratio to the best policy, the simulator's cost of the same table
# on the same channel paths, the live/sim ratio, and both against the clairvoyant oracle.
# Writes OUT/ledger.jsonl, OUT/table.txt and OUT/replay.png (cost and k over trace time); without
# python3-matplotlib it says so at the start and writes the ledger and table only
# (scripts/install_deps.sh --plots installs it).
#
# Environment: SEGMENTS (30), SLOWDOWN (5: a Raspberry Pi 4-class board against one core of this
# machine), POLICIES (all,bi@online: the standard set and BI on the online law),
# LAW (prefix | online | full), KIND (markov-fit | trace: the law of a
# bare file), INPUT_SIZE (224), OUT (build/replay/<trace>-<model>), EXTRA (more device_client
# options), BUILD (1: build first; 0: use build/bin as it is).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $# -lt 1 || $# -gt 2 ]]; then
  sed -n '2,/^set /p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
  exit 2
fi
spec=$1
model=${2:-resnet18}
[[ "$spec" == *:* ]] || spec="${KIND:-markov-fit}:$spec"
file=${spec#*:}
[[ -r "$file" ]] || { echo "replay: cannot read trace $file" >&2; exit 2; }
source scripts/lib/plots.sh
plots_check replay
if [[ "${BUILD:-1}" == 1 ]]; then
  scripts/install_deps.sh
  scripts/build.sh >/dev/null
fi
source scripts/lib/edge_server.sh
bin=${BUILD_DIR:-build}/bin
out=${OUT:-${BUILD_DIR:-build}/replay/$(basename "$file")-$model}
mkdir -p "$out"
log=$(mktemp -d)
trap 'stop_edge_server; rm -rf "$log"' EXIT

input_size=${INPUT_SIZE:-224}
start_edge_server "$log" --models "$model" --input-size "$input_size" --intra-op-threads 1
echo "replay: $spec, $model at ${input_size}x${input_size}, edge_server on $EDGE_ADDR"
echo "device: this machine, 1 thread, ${SLOWDOWN:-5}x slowdown; ${SEGMENTS:-30} segments per policy; law ${LAW:-prefix}"
# shellcheck disable=SC2086
"$bin/device_client" --server "$EDGE_ADDR" --model "$model" --input-size "$input_size" \
  --threads 1 --profile local --device-slowdown "${SLOWDOWN:-5}" --channel "$spec" \
  --policy "${POLICIES:-all,bi@online}" --segments "${SEGMENTS:-30}" --law "${LAW:-prefix}" \
  --ledger "$out/ledger.jsonl" ${EXTRA:-} | tee "$out/table.txt"
if [[ $PLOTS == 1 ]]; then
  /usr/bin/python3 scripts/plot_replay.py "$out/ledger.jsonl" "$out/replay.png" \
    --title "$(basename "$file"), $model, ${SLOWDOWN:-5}x board"
  echo "replay: wrote $out/ledger.jsonl, $out/table.txt, $out/replay.png"
else
  plots_skipped replay
  echo "replay: wrote $out/ledger.jsonl, $out/table.txt (no plot: python3-matplotlib missing)"
fi

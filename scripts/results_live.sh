#!/usr/bin/env bash
# The live replays behind docs/results.md: scripts/replay.sh on three real uplink traces (one
# each of Mahimahi LTE uplink, Norway HSDPA, UCC 5G) and two CNNs, every policy on the same 30
# segments plus BI on the online law. Writes build/results/<trace>-<model>/ (ledger, table,
# plot) and prints every table with the machine and date; installs python3-matplotlib for the
# plots (scripts/install_deps.sh --plots).
#   scripts/results_live.sh            (needs ../shared/traces; about 20-30 min on 2 cores)
# It writes into docs/ only when told to: with FIG_DIR set it also copies each plot to
# FIG_DIR/replay_<trace>-<model>.png; the committed figures are regenerated with
#   FIG_DIR=docs/figures scripts/results_live.sh
# Environment: SEGMENTS (30), SLOWDOWN (5), MODELS ("resnet18 mobilenetv2"), FIG_DIR (unset: no
# copy).
set -euo pipefail
cd "$(dirname "$0")/.."
shared=../shared/traces
traces=(
  "$shared/mahimahi_us_cellular/Verizon-LTE-short.up"
  "$shared/norway_hsdpa/norway_car_1"
  "data/traces/B_2020.02.14_09.38.22.csv"
)
for t in "${traces[@]}"; do
  [[ -r "$t" ]] || { echo "results_live: missing $t (../shared/traces)" >&2; exit 2; }
done
scripts/install_deps.sh --plots
scripts/build.sh >/dev/null
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(uname -sr)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
for t in "${traces[@]}"; do
  for m in ${MODELS:-resnet18 mobilenetv2}; do
    name=$(basename "$t" | sed 's/\..*//')-$m
    echo
    echo "### $name"
    start=$(date +%s)
    BUILD=0 OUT=build/results/$name SEGMENTS=${SEGMENTS:-30} SLOWDOWN=${SLOWDOWN:-5} \
      scripts/replay.sh "markov-fit:$t" "$m" | sed -n '/^policy  /,$p'
    echo "(wall time $(( $(date +%s) - start )) s)"
    if [[ -n "${FIG_DIR:-}" && -f build/results/$name/replay.png ]]; then
      mkdir -p "$FIG_DIR"
      cp "build/results/$name/replay.png" "$FIG_DIR/replay_$name.png"
      echo "results_live: copied build/results/$name/replay.png to $FIG_DIR/replay_$name.png"
    fi
  done
done
echo
echo "results_live: wrote build/results/<trace>-<model>/ (ledger.jsonl, table.txt, replay.png)${FIG_DIR:+; plots copied to $FIG_DIR/}"

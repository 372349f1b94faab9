#!/usr/bin/env bash
# Early exits live: the controllers of scripts/exits.sh (os, rl, fixed, bi) driving
# digits_branchy on held-out digits against a real edge_server on loopback, on the same three
# real traces, with the simulator's cost of the same decisions beside each live figure.
#   scripts/exits_live.sh                      300 inferences per controller and trace
#   EPISODES=100 TRAIN=3000 scripts/exits_live.sh
# Knobs: BUILD_DIR (build), SLOWDOWN (100), AW (accuracy weight, 0.1), EPISODES (300),
# TRAIN (RL training inferences, 20000), SEED (1), OUT (the summaries live_<trace>.json; default
# BUILD_DIR/reports/exits, i.e. build/reports/exits; scripts/exits.sh passes its OUT), LEDGER_DIR (a
# temporary folder: one JSON line per inference, device_client --ledger). It writes into docs/
# only when told to; the committed summaries are regenerated with
#   OUT=docs/figures/exits_data scripts/exits_live.sh
# Trains the model with build/bin/train_exits defaults into models/digits_branchy.pt when missing
# (about 10 s): the weights data/exits/digits_branchy_stats.json was made from.
set -euo pipefail
cd "$(dirname "$0")/.."
export BUILD_DIR=${BUILD_DIR:-build}
bin=$BUILD_DIR/bin
for t in edge_server device_client train_exits; do
  [[ -x "$bin/$t" ]] || ninja -C "$BUILD_DIR" "$t" >/dev/null
done
source scripts/lib/edge_server.sh
weights=${WEIGHTS:-models/digits_branchy.pt}
if [[ ! -f "$weights" ]]; then
  mkdir -p "$(dirname "$weights")"
  "$bin/train_exits" --data data/digits/digits.csv.gz --out "$weights" >/dev/null
fi
slowdown=${SLOWDOWN:-100}
aw=${AW:-0.1}
episodes=${EPISODES:-300}
train=${TRAIN:-20000}
seed=${SEED:-1}
out=${OUT:-$BUILD_DIR/reports/exits}
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'stop_edge_server; rm -rf "$tmp"' EXIT
start_edge_server "$tmp" --models "digits_branchy=$weights" --cpu

echo "exits_live.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
echo "edge_server $EDGE_ADDR (CPU); slowdown $slowdown, accuracy weight $aw, $episodes live inferences per controller, RL $train training inferences, seed $seed"
for t in norway_car_7 norway_tram_1 B_2020.02.14_09.38.22.csv; do
  name=${t%%.*}
  "$bin/device_client" --server "$EDGE_ADDR" --exits os,rl,fixed,bi --weights "$weights" \
    --channel "trace:data/traces/$t" --device-slowdown "$slowdown" --accuracy-weight "$aw" \
    --requests "$episodes" --train-steps "$train" --seed "$seed" \
    --ledger "${LEDGER_DIR:-$tmp}/live_$name.jsonl" --summary-json "$out/live_$name.json" >/dev/null
  /usr/bin/python3 - "$out/live_$name.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"\n{r['channel']} live (accuracy weight {r['accuracy_weight']})")
print("| controller | accuracy | latency ms | energy mJ | cost | sim cost, same decisions | live/sim | on device | on edge | fallback |")
print("|---|---|---|---|---|---|---|---|---|---|")
for c in r["controllers"]:
    ratio = c["mean_cost"] / c["sim_mean_cost"] if c["sim_mean_cost"] else float("nan")
    print(f"| {c['controller']} | {c['accuracy']:.4f} | {c['mean_latency_ms']:.3f} | "
          f"{c['mean_energy_mj']:.3f} | {c['mean_cost']:.5f} | {c['sim_mean_cost']:.5f} | "
          f"{ratio:.3f} | {c['on_device']} | {c['on_edge']} | {c['fallback_local']} |")
PY
done
echo
echo "exits_live.sh: wrote $out/live_*.json${LEDGER_DIR:+ and the ledgers into $LEDGER_DIR/}"

#!/usr/bin/env bash
# Early exits with a split point (issue 9): scores the controllers over (exit thresholds, split)
# on three real traces with build/bin/exits_sim and prints a table per trace, then sweeps the
# accuracy weight (os, bi) and the common fixed threshold (fixed) for the accuracy-latency
# trade-off curves and draws them (scripts/plot_exits.py -> FIG_DIR/exits_*.png); then runs
# the same controllers live against a real edge_server (scripts/exits_live.sh; NO_LIVE=1 skips).
#   scripts/exits.sh                      full run (RL trained 20000 inferences per trace)
#   TRAIN=3000 EPISODES=5000 scripts/exits.sh   a quick run
#   BUILD_DIR=build-b SLOWDOWN=100 AW=0.1 SEED=1 OUT=/tmp/exits FIG_DIR=/tmp/exits scripts/exits.sh
# Writes the JSON of every run into OUT (default BUILD_DIR/reports/exits, i.e. build/reports/exits)
# and the figures into FIG_DIR (default OUT); it writes into docs/ only when told to. The
# committed figures and data are regenerated with
#   OUT=docs/figures/exits_data FIG_DIR=docs/figures scripts/exits.sh
# Without python3-matplotlib the tables and JSON are written and the figures skipped, with a
# message (scripts/install_deps.sh --plots installs it).
# Every run is two-fold cross-fitted over the held-out samples (exits_sim --cross-fit): each half
# calibrates the controllers (and trains rl) once and is scored once.
# Inputs: data/exits/digits_branchy_stats.json and data/profiles/digits_branchy.json (part A).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/plots.sh
plots_check exits.sh
bin=${BUILD_DIR:-build}/bin/exits_sim
if [[ ! -x "$bin" ]]; then
  ninja -C "${BUILD_DIR:-build}" exits_sim >/dev/null
fi
stats=${STATS:-data/exits/digits_branchy_stats.json}
profile=${PROFILE:-data/profiles/digits_branchy.json}
slowdown=${SLOWDOWN:-100}
aw=${AW:-0.1}
episodes=${EPISODES:-20000}
train=${TRAIN:-20000}
seed=${SEED:-1}
out=${OUT:-${BUILD_DIR:-build}/reports/exits}
fig_dir=${FIG_DIR:-$out}
mkdir -p "$out" "$fig_dir"
traces=(norway_car_7 norway_tram_1 B_2020.02.14_09.38.22.csv)
common=(--stats "$stats" --profile "$profile" --slowdown "$slowdown" --episodes "$episodes"
        --seed "$seed" --cross-fit)
echo "exits.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
echo "slowdown $slowdown, accuracy weight $aw, $episodes scored inferences, RL $train training inferences, seed $seed"
for t in "${traces[@]}"; do
  name=${t%%.*}
  "$bin" "${common[@]}" --channel "trace:data/traces/$t" --controllers os,rl,fixed,bi \
    --accuracy-weight "$aw" --train-steps "$train" --json >"$out/main_$name.json" 2>/dev/null
  /usr/bin/python3 - "$out/main_$name.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"\n{r['channel']} (accuracy weight {r['accuracy_weight']}, {r['episodes']} inferences, "
      f"{r['eval_samples']} held-out samples scored)")
print("| controller | accuracy | latency ms | energy mJ | cost | +-95% | model E | local | train s |")
print("|---|---|---|---|---|---|---|---|---|")
for c in r["controllers"]:
    e = c["expected_cost"]
    print(f"| {c['name']} | {c['accuracy']:.4f} | {c['mean_latency_ms']:.3f} | "
          f"{c['mean_energy_mj']:.3f} | {c['mean_cost']:.5f} | {c['ci95']:.5f} | "
          f"{'-' if e is None else format(e, '.5f')} | {100 * c['share_local']:.1f}% | "
          f"{c['train_s']:.1f} |")
PY
  for w in 0 0.003 0.01 0.03 0.1 0.3 1 3 10; do
    "$bin" "${common[@]}" --channel "trace:data/traces/$t" --controllers os,bi \
      --accuracy-weight "$w" --json >"$out/sweep_aw_${name}_$w.json"
    # The same with wrong answers estimated from the heads' confidence (1 - conf).
    "$bin" "${common[@]}" --channel "trace:data/traces/$t" --controllers os \
      --accuracy-weight "$w" --error-estimate confidence --json >"$out/sweep_awc_${name}_$w.json"
  done
  for th in 0.5 0.6 0.7 0.8 0.9 0.95 0.99 0.999 2; do
    "$bin" "${common[@]}" --channel "trace:data/traces/$t" --controllers fixed \
      --accuracy-weight "$aw" --fixed-threshold "$th" --json >"$out/sweep_th_${name}_$th.json"
  done
done
if [[ $PLOTS == 1 ]]; then
  /usr/bin/python3 scripts/plot_exits.py "$out" "$fig_dir"
else
  plots_skipped exits.sh
fi
# The same controllers live against a real edge_server on the same traces (scripts/exits_live.sh;
# NO_LIVE=1 skips it).
if [[ -z "${NO_LIVE:-}" ]]; then
  SLOWDOWN="$slowdown" AW="$aw" SEED="$seed" TRAIN="$train" OUT="$out" scripts/exits_live.sh
fi
if [[ $PLOTS == 1 ]]; then
  echo "exits.sh: wrote the JSON into $out/ and the figures into $fig_dir/"
else
  echo "exits.sh: wrote the JSON into $out/ (figures skipped: python3-matplotlib missing)"
fi

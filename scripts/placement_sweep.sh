#!/usr/bin/env bash
# Sweeps the placement planner of split_sim (SPEC section 4) over R (inferences per version) and
# over the mean uplink rate, for resnet18, mobilenetv2 and the equal-width MLP, and writes one
# JSON per sweep into OUT/placement_sweep.json; with --plot, scripts/plot_placement.py then draws
# OUT/placement_m_star.png.
#   scripts/placement_sweep.sh [--plot]
# Environment: SPLIT_SIM (default build/bin/split_sim), OUT (default build/reports/placement_sweep;
# it writes into docs/ only when told to), SLOWDOWN (device time / profile time, default 10: a
# board), SNR_DB (R sweep, default 10), R_UPLINK (R of the uplink sweep, default 1000).
# The committed docs/figures/placement_sweep.json and placement_m_star.png are regenerated with
#   OUT=docs/figures scripts/placement_sweep.sh --plot
# With --plot and without python3-matplotlib the JSON is written and the figure skipped, with a
# message (scripts/install_deps.sh --plots installs it).
# Every point is one split_sim run with --episodes 1: only its BI placement is used (the
# placement does not depend on the episodes). The MLP runs on an equal-unit copy of
# data/profiles/mlp.json (every unit the median unit time), so the closed form applies to it.
set -euo pipefail
cd "$(dirname "$0")/.."
plot=0
if [[ ${1:-} == --plot ]]; then
  source scripts/lib/plots.sh
  plots_check placement_sweep
  plot=$PLOTS
fi
sim=${SPLIT_SIM:-build/bin/split_sim}
out=${OUT:-build/reports/placement_sweep}
slowdown=${SLOWDOWN:-10}
snr=${SNR_DB:-10}
r_uplink=${R_UPLINK:-1000}
py=/usr/bin/python3
[[ -x $sim ]] || { echo "placement_sweep: $sim not built (scripts/build.sh)" >&2; exit 1; }
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Equal-unit MLP profile: the closed form of docs/decision.md needs every C_l, w_l, s_l equal.
"$py" - data/profiles/mlp.json "$tmp/mlp_equal.json" <<'PY'
import json, statistics, sys
p = json.load(open(sys.argv[1]))
t = statistics.median(u["time_ms_median"] for u in p["units"])
for u in p["units"]:
    for k in ("time_ms_median", "time_ms_p10", "time_ms_p90"):
        u[k] = t
assert all(u["output_bytes"] == p["input_bytes"] for u in p["units"])
p["model"] = "mlp"
json.dump(p, open(sys.argv[2], "w"), indent=1)
PY

# One run: MODEL CHANNEL R -> the run's JSON line (model, channel, R, placement).
run() {
  local model=$1 channel=$2 r=$3 prof=()
  [[ $model == mlp ]] && prof=(--profile "$tmp/mlp_equal.json")
  "$sim" --model "$model" "${prof[@]}" --channel "$channel" --episodes 1 --quiet --json \
    --slowdown "$slowdown" --inferences-per-version "$r" |
    "$py" -c '
import json, sys
j = json.load(sys.stdin)
p = j["placement"]
print(json.dumps({"model": j["model"], "channel": j["channel"], "n": j["num_units"],
                  "r": float(sys.argv[1]), "mean_rate_bps": j["fitted_mean_rate_bps"],
                  "best_m": p["best_m"], "best_m_ola": p["ola"]["best_m"],
                  "inference_cost": p["inference_cost"],
                  "download_cost": p["download_cost"]}))' "$r"
}

models=(resnet18 mobilenetv2 mlp)
# R from 1 to 1e5, 8 points per decade.
rs=$("$py" -c 'print(" ".join("%.6g" % 10 ** (i / 8) for i in range(41)))')
: >"$tmp/r.jsonl"
for m in "${models[@]}"; do
  for r in $rs; do run "$m" "rayleigh:snr_db=$snr" "$r" >>"$tmp/r.jsonl"; done
done
# Mean uplink rate: the Rayleigh channel's mean SNR from -10 to 30 dB (10 MHz) at R = r_uplink.
: >"$tmp/uplink.jsonl"
for m in "${models[@]}"; do
  for s in $(seq -10 2 30); do run "$m" "rayleigh:snr_db=$s" "$r_uplink" >>"$tmp/uplink.jsonl"; done
done

meta=$("$py" -c 'import json,sys; print(json.dumps({"slowdown": float(sys.argv[1]),
  "snr_db": float(sys.argv[2]), "r_uplink": float(sys.argv[3]),
  "command": "scripts/placement_sweep.sh"}))' "$slowdown" "$snr" "$r_uplink")
"$py" - "$tmp/r.jsonl" "$tmp/uplink.jsonl" "$out/placement_sweep.json" "$meta" <<'PY'
import json, sys
load = lambda f: [json.loads(l) for l in open(f) if l.strip()]
json.dump({"meta": json.loads(sys.argv[4]), "r_sweep": load(sys.argv[1]),
           "uplink_sweep": load(sys.argv[2])}, open(sys.argv[3], "w"))
PY
echo "placement_sweep: wrote $out/placement_sweep.json" >&2
if [[ $plot == 1 ]]; then
  "$py" scripts/plot_placement.py "$out/placement_sweep.json"
elif [[ ${1:-} == --plot ]]; then
  plots_skipped placement_sweep
fi

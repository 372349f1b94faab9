#!/usr/bin/env bash
# Model-variant selection (issue 10 item 4): runs build/bin/select_sim on a simulated population
# of heterogeneous devices for several seeds, prints the cumulative regret of LinUCB (shared and
# disjoint), epsilon-greedy and the best common variant at checkpoints vs the per-device oracle
# and vs the best common variant, then the placement M* of the variant LinUCB picks on a few
# devices, and draws docs/figures/select_regret.png (scripts/plot_select.py).
#   scripts/select.sh                                 200 devices, 20000 rounds, seeds 1..5
#   ROUNDS=5000 SEEDS="1 2" BUILD_DIR=build-c OUT=/tmp/sel scripts/select.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BUILD_DIR:-build}/bin/select_sim
if [[ ! -x "$bin" ]]; then
  ninja -C "${BUILD_DIR:-build}" select_sim >/dev/null
fi
variants=${VARIANTS:-data/variants/digits_variants.json}
devices=${DEVICES:-200}
rounds=${ROUNDS:-20000}
seeds=${SEEDS:-1 2 3 4 5}
out=${OUT:-docs/figures/select_data}
plot=${PLOT:-docs/figures/select_regret.png}
mkdir -p "$out"
step=$((rounds / 100 > 0 ? rounds / 100 : 1))
cps=$(seq -s, "$step" "$step" "$rounds")
echo "select.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
echo "$variants, $devices devices, $rounds rounds, seeds $seeds"
files=()
for s in $seeds; do
  "$bin" --variants "$variants" --devices "$devices" --rounds "$rounds" --seed "$s" \
    --checkpoints "$cps" --plan-devices 6 --json >"$out/select_seed$s.json"
  files+=("$out/select_seed$s.json")
done
/usr/bin/python3 - "${files[@]}" <<'PY'
import json, statistics, sys
runs = [json.load(open(f)) for f in sys.argv[1:]]
r = runs[0]
cps = r["checkpoints"]
show = [c for c in cps if c in {cps[0], cps[1], cps[4], cps[9], cps[24], cps[49], cps[-1]}]
names = [p["name"] for p in r["policies"]]
print(f"\nseed {r['seed']}: best common variant {r['common_arm']}; oracle variants (devices): "
      + ", ".join(f"{k} {v}" for k, v in r["oracle_arm_devices"].items()))
print("cumulative regret vs the per-device oracle [vs the best common variant]")
print(f"{'round':>7} " + " ".join(f"{n:>22}" for n in names))
for c in show:
    i = cps.index(c)
    print(f"{c:>7} " + " ".join(
        f"{p['regret_oracle'][i]:>10.1f} [{p['regret_common'][i]:>9.1f}]" for p in r["policies"]))
print(f"{'us/round':>7} " + " ".join(f"{p['mean_decision_us']:>22.2f}" for p in r["policies"]))
if len(runs) > 1:
    print(f"\nover {len(runs)} seeds (mean +- sd) at T = {cps[-1]}:")
    print(f"{'policy':>16} {'regret vs oracle':>20} {'2nd half / 1st half':>20} "
          f"{'vs common':>18} {'mean QoE':>9}")
    for k, n in enumerate(names):
        reg = [x["policies"][k]["regret_oracle"] for x in runs]
        fin = [g[-1] for g in reg]
        half = [(g[-1] - g[len(g) // 2 - 1]) / g[len(g) // 2 - 1] if g[len(g) // 2 - 1] > 0
                else float("nan") for g in reg]
        com = [x["policies"][k]["regret_common"][-1] for x in runs]
        q = [x["policies"][k]["mean_qoe"] for x in runs]
        sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0
        print(f"{n:>16} {statistics.mean(fin):>12.1f} +- {sd(fin):>5.1f} "
              f"{statistics.mean(half):>20.3f} {statistics.mean(com):>10.1f} +- {sd(com):>5.1f} "
              f"{statistics.mean(q):>9.2f}")
    print(f"{'oracle':>16} {'':>20} {'':>20} {'':>18} "
          f"{statistics.mean(x['oracle_mean_qoe'] for x in runs):>9.2f}")
print("\nplacement of the variant LinUCB picks (seed", r["seed"], "population):")
for p in r["placement"]:
    print(f"  device {p['device']}: slowdown {p['slowdown']:6.1f}, uplink {p['uplink_mbps']:5.1f} "
          f"Mbit/s, sensitivity {p['latency_sensitivity']:.3f}/ms, energy {p['energy_weight']:.3f}/mJ"
          f" -> {p['chosen']} (oracle {p['oracle']}), M* = {p['best_m']} of {p['num_units']}")
PY
/usr/bin/python3 scripts/plot_select.py "$plot" "${files[@]}"
echo "wrote $plot"

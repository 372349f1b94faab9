#!/usr/bin/env bash
# Model-variant selection (issue 10 item 4), tuned and reported on disjoint seed sets:
#  1. tuning: build/bin/select_sim runs the grid ridge {1, 0.1, 0.01, 0.001} x alpha {0.5, 1, 2, 4}
#     x optimistic prior {off, on} on the TUNING seeds (101-110) and picks, per policy, the point
#     with the lowest mean regret at T; it says whether the committed defaults are that choice
#     (they must be: the defaults live in SelectSimOptions, common/decision/bandit.h);
#  2. reporting: the defaults on the REPORTING seeds (1-20), never used to tune: every seed's
#     regret at T and its mean / median / min / max / sd per policy (LinUCB shared and disjoint,
#     epsilon-greedy, the best common variant), the placement M* of the variant LinUCB picks on a
#     few devices of the first seed;
#  3. figures: FIG_DIR/select_regret.png (the reporting seeds' regret curves) and
#     FIG_DIR/select_tuning.png (the tuning grid), tables and JSON in OUT.
#   scripts/select.sh                                 200 devices, 20000 rounds
#   ROUNDS=5000 SEEDS=1-3 TUNE=0 BUILD_DIR=build-c OUT=/tmp/sel FIG_DIR=/tmp/sel scripts/select.sh
# OUT defaults to BUILD_DIR/reports/select (i.e. build/reports/select), FIG_DIR to OUT; it writes
# into docs/ only when told to. The committed figures and data are regenerated with
#   OUT=docs/figures/select_data FIG_DIR=docs/figures scripts/select.sh
# Without python3-matplotlib the tables and JSON are written and the figures skipped, with a
# message (scripts/install_deps.sh --plots installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/plots.sh
plots_check select.sh
bin=${BUILD_DIR:-build}/bin/select_sim
if [[ ! -x "$bin" ]]; then
  ninja -C "${BUILD_DIR:-build}" select_sim >/dev/null
fi
variants=${VARIANTS:-data/variants/digits_variants.json}
devices=${DEVICES:-200}
rounds=${ROUNDS:-20000}
seeds=${SEEDS:-1-20}
tune_seeds=${TUNE_SEEDS:-101-110}
tune=${TUNE:-1}
out=${OUT:-${BUILD_DIR:-build}/reports/select}
fig_dir=${FIG_DIR:-$out}
mkdir -p "$out" "$fig_dir"

# The seeds of a list "1-20,25" one per line (select_sim checks the syntax itself).
expand() {
  local item
  for item in ${1//,/ }; do
    if [[ $item == *-* ]]; then seq "${item%-*}" "${item#*-}"; else echo "$item"; fi
  done
}
overlap=$(comm -12 <(expand "$seeds" | sort) <(expand "$tune_seeds" | sort) | tr '\n' ' ')
if [[ $tune == 1 && -n $overlap ]]; then
  echo "select.sh: reporting seeds ($seeds) and tuning seeds ($tune_seeds) share $overlap" >&2
  exit 2
fi

step=$((rounds / 100 > 0 ? rounds / 100 : 1))
cps=$(seq -s, "$step" "$step" "$rounds")
echo "select.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
echo "$variants, $devices devices, $rounds rounds; tuning seeds $tune_seeds, reporting seeds $seeds"
common=(--variants "$variants" --devices "$devices" --rounds "$rounds")

if [[ $tune == 1 ]]; then
  echo
  "$bin" "${common[@]}" --seeds "$tune_seeds" --ridge 1,0.1,0.01,0.001 --alpha 0.5,1,2,4 \
    --optimistic false,true --plan-devices 0 --json-out "$out/select_tuning.json" |
    tee "$out/select_tuning.txt"
  if ! grep -q '^defaults match the tuned choice: yes' "$out/select_tuning.txt"; then
    echo "select.sh: the defaults in SelectSimOptions are not the tuned choice; set them first" >&2
    exit 1
  fi
fi

echo
"$bin" "${common[@]}" --seeds "$seeds" --checkpoints "$cps" --plan-devices 6 --curves \
  --json-out "$out/select_seeds.json" | tee "$out/select_seeds.txt"

echo
if [[ $PLOTS == 1 ]]; then
  /usr/bin/python3 scripts/plot_select.py "$fig_dir/select_regret.png" "$out/select_seeds.json"
  echo "wrote $fig_dir/select_regret.png"
  if [[ -f $out/select_tuning.json ]]; then
    /usr/bin/python3 scripts/plot_select.py --tuning "$fig_dir/select_tuning.png" \
      "$out/select_tuning.json"
    echo "wrote $fig_dir/select_tuning.png"
  fi
  echo "select.sh: wrote the tables and JSON into $out/ and the figures into $fig_dir/"
else
  plots_skipped select.sh
  echo "select.sh: wrote the tables and JSON into $out/ (figures skipped: python3-matplotlib missing)"
fi

#!/usr/bin/env bash
# Honest evaluation of the robust splitter (docs/decision.md, "Rotation"): every setting of three
# trace families, every configuration of the splitter in CONFIGS; for each family, the
# configuration that does best on the two others is reported on it (tune on two, report on the
# third). Every policy runs on the same episodes (split_sim --episodes 2000 --seed 7).
#
#   scripts/rotation.sh                 # run (about 25 minutes on 2 cores), then print the tables
#   scripts/rotation.sh --report FILE   # print the tables of an earlier run's JSONL
#
# Environment: TRACES (default ../shared/traces), SPLIT_SIM (build/bin/split_sim), OUT (the
# JSONL, default build/reports/rotation/rotation.jsonl), JOBS (2), EPISODES (2000), CONFIGS
# (space-separated NAME=FLAGS with commas for spaces, default below).
# A setting: family, trace, model (resnet18, mobilenetv2), device 10x or 30x slower, i.i.d.
# (trace:) or Markov (markov-fit:) law, float32 only or with the model's codecs.
# The criterion on the tuning families: fewest settings more than 2% above the best other
# policy, then the least mean ratio to the oracle.
set -euo pipefail
cd "$(dirname "$0")/.."

TRACES=${TRACES:-../shared/traces}
SPLIT_SIM=${SPLIT_SIM:-build/bin/split_sim}
OUT=${OUT:-build/reports/rotation/rotation.jsonl}
JOBS=${JOBS:-2}
EPISODES=${EPISODES:-2000}
CONFIGS=${CONFIGS:-"default= cautious=--robust-z,3,--robust-min-gain,0.02 slow=--robust-half-life,300"}

report() {
  local file=$1
  jq -rs --arg episodes "$EPISODES" -f scripts/lib/rotation_report.jq "$file"
}

if [[ ${1:-} == --report ]]; then
  report "${2:?--report needs the JSONL file}"
  exit 0
fi

if [[ ! -d $TRACES ]]; then
  echo "rotation.sh: no trace folder at $TRACES (set TRACES)" >&2
  exit 2
fi
[[ -x $SPLIT_SIM ]] || { echo "rotation.sh: $SPLIT_SIM not built" >&2; exit 2; }

FAMILIES=(
  "mahimahi:$TRACES/mahimahi_us_cellular/ATT-LTE-driving.up"
  "mahimahi:$TRACES/mahimahi_us_cellular/TMobile-LTE-short.up"
  "mahimahi:$TRACES/mahimahi_us_cellular/Verizon-LTE-short.up"
  "norway:$TRACES/norway_hsdpa/bus.ljansbakken-oslo-report.2010-09-28_1407CEST.log"
  "norway:$TRACES/norway_hsdpa/car.snaroya-smestad-report.2011-02-14_2139CET.log"
  "norway:$TRACES/norway_hsdpa/train.vestby-oslo-report.2011-02-11_1530CET.log"
  "norway:$TRACES/norway_hsdpa/tram.ljabru-jernbanetorget-report.2011-01-04_0820CET.log"
  "ucc:$TRACES/ucc_5g/Download/Driving/B_2019.12.16_14.23.32.csv"
  "ucc:$TRACES/ucc_5g/Download/Driving/B_2020.01.16_07.26.43.csv"
  "ucc:$TRACES/ucc_5g/Download/Driving/B_2020.02.13_15.02.01.csv"
  "ucc:$TRACES/ucc_5g/Download/Static/B_2020.02.13_13.57.29.csv"
)

mkdir -p "$(dirname "$OUT")"
jobs_file=$(mktemp)
trap 'rm -f "$jobs_file"' EXIT
for cfg in $CONFIGS; do
  for ft in "${FAMILIES[@]}"; do
    family=${ft%%:*} trace=${ft#*:}
    [[ -f $trace ]] || { echo "rotation.sh: missing $trace" >&2; exit 2; }
    for model in resnet18 mobilenetv2; do
      for slowdown in 10 30; do
        for law in trace markov-fit; do
          for codecs in none codecs; do
            echo "$cfg $family $trace $model $slowdown $law $codecs"
          done
        done
      done
    done
  done
done >"$jobs_file"

run_one() {
  local cfg=$1 family=$2 trace=$3 model=$4 slowdown=$5 law=$6 codecs=$7
  local name=${cfg%%=*} flags=${cfg#*=}
  local args=(--model "$model" --slowdown "$slowdown" --channel "$law:$trace"
    --episodes "$EPISODES" --seed 7 --quiet --json)
  [[ $codecs == codecs ]] && args+=(--codecs "data/codecs/$model.json")
  # shellcheck disable=SC2206
  [[ -n $flags ]] && args+=(${flags//,/ })
  "$SPLIT_SIM" "${args[@]}" | jq -c --arg config "$name" --arg family "$family" \
    --arg trace "$(basename "$trace")" --arg model "$model" --arg slowdown "$slowdown" \
    --arg law "$law" --arg codecs "$codecs" '{config: $config, family: $family, trace: $trace,
      model: $model, slowdown: ($slowdown | tonumber), law: $law, codecs: $codecs,
      robust: .robust, diagnosis: .diagnosis,
      policies: [.policies[] | {name, mean_cost, ci95, ratio_to_oracle}]}'
}
export -f run_one
export SPLIT_SIM EPISODES

total=$(wc -l <"$jobs_file")
echo "rotation.sh: $total runs of split_sim on $JOBS cores -> $OUT" >&2
start=$(date +%s)
xargs -P "$JOBS" -L 1 bash -c 'run_one "$@"' _ <"$jobs_file" >"$OUT"
echo "rotation.sh: done in $(($(date +%s) - start)) s" >&2
report "$OUT"

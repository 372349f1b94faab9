#!/usr/bin/env bash
# The load benchmark of scripts/bench_load.sh on a GPU box (issue 8, "the same server benchmark on
# CUDA"): build/bin/loadgen at 1, 8, 32 and 128 closed-loop devices, dynamic batching off and on,
# against edge_server on CUDA and then the same edge_server with --cpu, on the same machine in the
# same run, so that every figure has its CPU counterpart. Prints a Markdown section (machine,
# date, flags, table, ratios) on stdout; the raw loadgen JSON goes to $OUT_DIR when set.
#   scripts/bench_load_cuda.sh                      ResNet-18 at 224x224, boundary 3
#   MODEL=mlp ZOO_FLAGS="--mlp-width 256 --mlp-layers 8" SPLIT=2 scripts/bench_load_cuda.sh
# Knobs (environment): MODEL (resnet18), ZOO_FLAGS (--input-size 224), SPLIT (3), DURATION (5s
# per row), DEVICES ("1 8 32 128"), MODES ("cuda cpu"), LOADGEN_THREADS (4), BATCH_FLAGS
# (--max-batch-size 32 --max-batch-delay-us 2000), SERVER_FLAGS (appended), BUILD_DIR (build).
# Without CUDA the "cuda" rows are skipped with a note (edge_server falls back to the CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
export BUILD_DIR=${BUILD_DIR:-build}
bin=$BUILD_DIR/bin
[[ -x "$bin/loadgen" && -x "$bin/edge_server" ]] || scripts/build.sh >/dev/null
source scripts/lib/edge_server.sh

model=${MODEL:-resnet18}
zoo=(${ZOO_FLAGS:---input-size 224})
split=${SPLIT:-3}
duration=${DURATION:-5s}
devices_list=(${DEVICES:-1 8 32 128})
modes=(${MODES:-cuda cpu})
lg_threads=${LOADGEN_THREADS:-4}
batch_flags=(${BATCH_FLAGS:---max-batch-size 32 --max-batch-delay-us 2000})
server_flags=(--models "$model" "${zoo[@]}" --io-threads 2 --compute-threads 1
  --max-connections 4096 --max-connections-per-address 0 --max-pending-handshakes 4096 ${SERVER_FLAGS:-})

tmp=$(mktemp -d)
out_dir=${OUT_DIR:-$tmp}
mkdir -p "$out_dir"
trap 'stop_edge_server; rm -rf "$tmp"' EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

declare -A device_of  # mode -> the compute device the server reported
run_row() {  # run_row MODE DEVICES LABEL [extra server flags...]
  local mode=$1 devices=$2 label=$3
  shift 3
  local flags=("${server_flags[@]}")
  [[ $mode == cpu ]] && flags+=(--cpu)
  local log="$tmp/server-$mode-$label-$devices"
  mkdir -p "$log"
  start_edge_server "$log" "${flags[@]}" "$@"
  device_of[$mode]=$(cat "$log/server.out" "$log/server.err" | sed -n 's/.*serving [0-9]* model(s) on \([^ ,]*\).*/\1/p' | head -1)
  "$bin/loadgen" --server "$EDGE_ADDR" --server-pid "$EDGE_PID" --devices "$devices" \
    --duration "$duration" --model "$model" --split "$split" --threads "$lg_threads" \
    "${zoo[@]}" --json >"$out_dir/load-$mode-$label-$devices.json"
  stop_edge_server
  echo "bench_load_cuda: $mode, $devices device(s), $label done" >&2
}

for mode in "${modes[@]}"; do
  for d in "${devices_list[@]}"; do
    run_row "$mode" "$d" none
    run_row "$mode" "$d" batched "${batch_flags[@]}"
  done
done

gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1 || true)
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
echo "## Load on CUDA against the CPU ($model, boundary $split)"
echo
echo "\`scripts/bench_load_cuda.sh\` on ${gpu:-no GPU} with $cpu, $(nproc) cores, $(date -u +%Y-%m-%d)."
for mode in "${modes[@]}"; do echo "- $mode rows: edge_server reported compute device \`${device_of[$mode]:-?}\`."; done
echo "- Server: \`edge_server ${server_flags[*]}\` (+ \`--cpu\` for the cpu rows); batched rows add"
echo "  \`${batch_flags[*]}\`. A fresh server per row."
echo "- Load: \`loadgen --model $model ${zoo[*]} --split $split --threads $lg_threads --duration $duration\`,"
echo "  closed loop, one request in flight per device, over loopback on the same machine."
echo
echo "| devices | compute | batching | throughput (req/s) | p50 ms | p99 ms | p999 ms | ok | errors | lost | server RSS before -> end (MiB) |"
echo "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
/usr/bin/python3 - "$out_dir" "${modes[*]}" "${devices_list[*]}" <<'EOF'
import json, sys
out, modes, devs = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
mib = lambda v: "n/a" if v is None else f"{v / 2**20:.0f}"
for d in devs:
    for m in modes:
        for label in ("none", "batched"):
            j = json.load(open(f"{out}/load-{m}-{label}-{d}.json"))
            lat, rss = j["latency_ms"], j["server_rss_bytes"]
            print(f"| {d} | {m} | {label} | {j['throughput_rps']:.0f} | {lat['p50']:.2f} | {lat['p99']:.2f} "
                  f"| {lat['p999']:.2f} | {j['ok']} | {j['errors']} | {j['lost']} "
                  f"| {mib(rss['before'])} -> {mib(rss['end'])} |")
print()
if len(modes) == 2:
    a, b = modes
    print(f"Ratios in the same run: throughput {a}/{b} without and with batching, and batched/off per compute device.")
    print()
    print(f"| devices | {a}/{b} off | {a}/{b} batched | batched/off {a} | batched/off {b} | p99 ms {a} off -> batched | p99 ms {b} off -> batched |")
    print("|---:|---:|---:|---:|---:|---|---|")
    for d in devs:
        j = {(m, l): json.load(open(f"{out}/load-{m}-{l}-{d}.json")) for m in modes for l in ("none", "batched")}
        t = lambda m, l: j[(m, l)]["throughput_rps"]
        r = lambda x, y: f"{x / y:.2f}" if y else "n/a"
        p = lambda m, l: j[(m, l)]["latency_ms"]["p99"]
        print(f"| {d} | {r(t(a,'none'), t(b,'none'))} | {r(t(a,'batched'), t(b,'batched'))} "
              f"| {r(t(a,'batched'), t(a,'none'))} | {r(t(b,'batched'), t(b,'none'))} "
              f"| {p(a,'none'):.2f} -> {p(a,'batched'):.2f} | {p(b,'none'):.2f} -> {p(b,'batched'):.2f} |")
EOF

#!/usr/bin/env bash
# The main job on loopback, in two parts, against one edge_server:
#  1. Split inference is exact: device_client runs units 1..k here and k+1..N on the edge for
#     every k and checks each result against a whole local run.
#  2. Online splitting on a real trace: the device (this machine slowed down SLOWDOWN times, a
#     board) decides k unit by unit from an emulated uplink that replays a bundled UCC 5G driving
#     trace, under every policy, on the same trace segments; the table compares each policy's
#     realized cost with the simulator's prediction and the clairvoyant oracle (docs/live.md).
#
#   scripts/demo.sh                 ResNet-18 and MobileNetV2 at 224x224
#   MODELS="alexnet vgg16" REQUESTS=3 SEGMENTS=10 SLOWDOWN=5 TRACE=data/traces/norway_car_7 \
#     scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
# Only the two programs the demo runs (and the libraries they need): not the tests, benchmarks
# and tools that scripts/test.sh builds.
TARGETS="edge_server device_client" scripts/build.sh >/dev/null
source scripts/lib/edge_server.sh

models=(${MODELS:-resnet18 mobilenetv2})
requests=${REQUESTS:-2}
input_size=${INPUT_SIZE:-224}
segments=${SEGMENTS:-12}
slowdown=${SLOWDOWN:-5}
trace=${TRACE:-data/traces/B_2020.02.14_09.38.22.csv}
bin=${BUILD_DIR:-build}/bin
log=$(mktemp -d)
trap 'stop_edge_server; rm -rf "$log"' EXIT

# One LibTorch thread on each side: the device is a small board, and both share this machine.
start_edge_server "$log" --models "$(IFS=,; echo "${models[*]}")" --input-size "$input_size" \
  --intra-op-threads 1
echo "edge_server listening on $EDGE_ADDR ($(grep -o 'on [a-z0-9:]*$' "$log/server.err" | head -1))"
echo
echo "== 1. every split point, verified (device: this machine, 1 thread; medians of $requests"
echo "      requests; verified = max |split - local| <= 1e-5 and the same top-1 class)"
echo

status=0
for m in "${models[@]}"; do
  "$bin/device_client" --server "$EDGE_ADDR" --model "$m" --split all --requests "$requests" \
    --input-size "$input_size" --threads 1 --verify || status=1
  echo
done
[[ $status -eq 0 ]] && echo "demo: every split verified" || echo "demo: some results did not verify" >&2

echo
echo "== 2. online splitting over a replayed real uplink: $(basename "$trace")"
echo "      (UCC 5G driving, SNR through Shannon at 10 MHz; Markov law fitted on the first half,"
echo "      $segments segments of the second half per policy; device ${slowdown}x slower than"
echo "      one core here, about a Raspberry Pi 4; cost = seconds per inference)"
# Each model's table (from its "policy  ..." header on) is kept in $log/table-<model>.txt for the
# live/sim summary below; pipefail carries device_client's status through sed and tee (a failed
# run sets status=1, and the script exits with it at the end).
for m in "${models[@]}"; do
  echo
  echo "-- $m"
  "$bin/device_client" --server "$EDGE_ADDR" --model "$m" --input-size "$input_size" \
    --threads 1 --profile local --device-slowdown "$slowdown" --channel "markov-fit:$trace" \
    --policy all --segments "$segments" | sed -n '/^policy  /,$p' | tee "$log/table-$m.txt" ||
    status=1
done
echo
# What was measured: live/sim (realized cost / the simulator's cost of the same decisions on the
# same channel paths) over every row of every model's table, found by its header name.
for m in "${models[@]}"; do
  if [[ -f "$log/table-$m.txt" ]]; then
    printf '#model %s\n' "$m"
    cat "$log/table-$m.txt"
  fi
done | awk -v tol=0.10 '
  /^#model / { model = $2; col = 0; next }
  /^policy  / { col = 0; for (i = 1; i <= NF; i++) if ($i == "live/sim") col = i; next }
  col && (NF == 0 || /^realized:/) { col = 0; next }
  col {
    if ($col !~ /^[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$/) { missing++; next }
    r = $col + 0; d = r > 1 ? r - 1 : 1 - r; rows++
    if (d <= tol + 1e-9) within++
    if (rows == 1 || d > worst) { worst = d; where = model " " $1; worst_r = $col }
  }
  END {
    if (rows == 0) {
      print "live/sim: no row with a simulator figure in the tables above"
      exit
    }
    printf "live/sim: largest deviation %.1f%% (%s %s); within %g%% on %d of %d rows", \
      100 * worst, where, worst_r, 100 * tol, within + 0, rows
    if (missing) printf "; %d %s without a simulator figure", missing, missing == 1 ? "row" : "rows"
    printf "\n"
  }'
echo "(live/sim: realized / simulated cost of the same decisions on the same channel paths)"
echo "Full replays with plots:"
echo "scripts/replay.sh TRACE [MODEL] (docs/live.md, docs/results.md)"
echo "The device with model placement, a version update, and the edge killed mid-download:"
echo "scripts/lifecycle.sh (docs/placement.md)"
exit $status

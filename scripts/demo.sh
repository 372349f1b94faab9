#!/usr/bin/env bash
# The main job on loopback: start edge_server, run device_client on two zoo models at every split
# point (units 1..k on the "device", k+1..N on the edge), verify each result against a whole local
# run, print a table per model, and stop the server.
#   scripts/demo.sh                 ResNet-18 and MobileNetV2 at 224x224, 5 requests per split
#   MODELS="alexnet vgg16" REQUESTS=3 INPUT_SIZE=224 scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh >/dev/null

models=(${MODELS:-resnet18 mobilenetv2})
requests=${REQUESTS:-5}
input_size=${INPUT_SIZE:-224}
bin=${BUILD_DIR:-build}/bin
log=$(mktemp -d)
trap 'kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; rm -rf "$log"' EXIT

# One LibTorch thread on each side: the device is a small board, and both share this machine.
"$bin/edge_server" --listen 127.0.0.1:0 --models "$(IFS=,; echo "${models[*]}")" \
  --input-size "$input_size" --intra-op-threads 1 >"$log/server.out" 2>"$log/server.err" &
server_pid=$!
for _ in $(seq 600); do
  grep -q '^listening ' "$log/server.out" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$log/server.err" >&2; exit 1; }
  sleep 0.1
done
addr=$(sed -n 's/^listening //p' "$log/server.out")
[[ -n "$addr" ]] || { echo "demo: edge_server did not start" >&2; cat "$log/server.err" >&2; exit 1; }
echo "edge_server listening on $addr ($(grep -o 'on [a-z0-9:]*$' "$log/server.err" | head -1))"
echo "device: this machine, 1 thread; times are medians of $requests requests; verified ="
echo "max |split - local| <= 1e-5 and the same top-1 class"
echo

status=0
for m in "${models[@]}"; do
  "$bin/device_client" --server "$addr" --model "$m" --split all --requests "$requests" \
    --input-size "$input_size" --threads 1 --verify || status=1
  echo
done
[[ $status -eq 0 ]] && echo "demo: every split verified" || echo "demo: some results did not verify" >&2
exit $status

#!/usr/bin/env bash
# The device's lifecycle, end to end, on loopback (docs/placement.md, "The lifecycle"):
#
#   1. edge_server serves a model repository holding version 1 of MODEL;
#   2. device_client --store plans with the edge, downloads the units it places, and runs BI with
#      codecs over a Mahimahi uplink trace;
#   3. after INFERENCES/3 inferences, version 2 is published into the repository (model_repo
#      perturb); the edge picks it up, the device's placement loop downloads it in the background
#      while the inferences go on, and swaps;
#   4. during that download the edge is killed (SIGKILL) and restarted DOWN_S seconds later on
#      the same port, with one corrupted chunk injected (--fault-corrupt-chunks 1): inferences
#      finish on the device meanwhile, the download resumes from the chunks on disk, and the
#      corrupted chunk is refused and fetched again;
#   5. once the device has run INFERENCES inferences in all and INFERENCES/3 on version 2, the
#      script stops it with SIGTERM: it finishes what is in flight and writes its summary.
#
# It prints the device's summary and, as its last line, one JSON object:
#   {"inferences": N, "failed": 0, "lost": 0, "mixed": 0, "versions": [1, 2],
#    "p99_ratio_during_download": X, ...}
# where lost counts inferences started without exactly one result in the ledger, mixed those whose edge
# ran another version than the device's units, and the p99 ratio compares the inference time
# during a download with the time without one (inferences the edge did not answer, i.e. those
# that finished locally while the edge was down, are in neither). Exit status 0 when every check
# holds: failed = lost = mixed = 0, versions [1, 2] in that order, at least one chunk refused and
# one resumed, p99 ratio <= MAX_P99_RATIO.
#
# Environment: MODEL (resnet18), INFERENCES (240), SLOWDOWN (2), DOWNLINK_MBPS (40), DOWN_S (2),
# TRACE (data/traces/Verizon-LTE-short.up), MAX_P99_RATIO (1.2), OUT (build/reports/lifecycle),
# BUILD (1: install and build the three programs first), BUILD_DIR (build).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${MODEL:-resnet18}
inferences=${INFERENCES:-240}
slowdown=${SLOWDOWN:-2}
downlink=${DOWNLINK_MBPS:-40}
down_s=${DOWN_S:-2}
trace=${TRACE:-data/traces/Verizon-LTE-short.up}
max_ratio=${MAX_P99_RATIO:-1.2}
out=${OUT:-${BUILD_DIR:-build}/reports/lifecycle}
if [[ "${BUILD:-1}" == 1 ]]; then
  scripts/install_deps.sh >/dev/null
  TARGETS="edge_server device_client model_repo" scripts/build.sh >/dev/null
fi
source scripts/lib/edge_server.sh
bin=${BUILD_DIR:-build}/bin
mkdir -p "$out"
work=$(mktemp -d)
dev=
cleanup() {
  [[ -n "$dev" ]] && kill "$dev" 2>/dev/null
  stop_edge_server
  rm -rf "$work"
}
trap cleanup EXIT
repo=$work/repo
ledger=$out/ledger.jsonl
rm -f "$ledger"  # a ledger of an earlier run must not count
codecs=()
[[ -f data/codecs/$model.json ]] && codecs=(--codecs "data/codecs/$model.json")
server_args=(--model-repo "$repo" --repo-poll-ms 100 --retire-grace-s 60 --cpu
  --intra-op-threads 1)

"$bin/model_repo" publish --repo "$repo" --model "$model" --version 1 >/dev/null
start_edge_server "$work" "${server_args[@]}"
addr=$EDGE_ADDR
echo "lifecycle: $model v1 on edge_server $addr; device ${slowdown}x slower, downlink" \
  "$downlink Mbit/s, uplink $(basename "$trace"), $inferences inferences"
# One LibTorch thread on the device: a board, sharing this machine with the edge.
"$bin/device_client" --server "$addr" --model "$model" --store "$work/store" --policy bi \
  "${codecs[@]}" --channel "trace:$trace" --device-slowdown "$slowdown" \
  --threads 1 --downlink-mbps "$downlink" --inferences-per-version 1e6 \
  --placement-period-s 0.5 --reconnect-ms 200 --connect-timeout-ms 500 --io-timeout-ms 5000 \
  --ledger "$ledger" --json --requests 1000000 >"$work/device.out" 2>"$work/device.err" &
dev=$!

count() {  # count PATTERN: ledger lines that match
  local n
  n=$(grep -c "$1" "$ledger" 2>/dev/null) || n=0
  echo "${n:-0}"
}
inference_lines() { count '"request_id"'; }
wait_for() {  # wait_for SECONDS COMMAND...: polls COMMAND until it succeeds
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    kill -0 "$dev" 2>/dev/null || { echo "device_client exited early" >&2; cat "$work/device.err" >&2; exit 1; }
    ((SECONDS < deadline)) || { echo "lifecycle: timed out waiting for: $*" >&2; exit 1; }
    sleep 0.1
  done
}
third_done() { (($(inference_lines) >= inferences / 3)); }
downloading() { (($(count '"during_download":true') > 0)); }
enough() { (($(inference_lines) >= inferences && $(count '"request_id".*"version":2,') >= inferences / 3)); }

wait_for 600 third_done
"$bin/model_repo" perturb --repo "$repo" --model "$model" --from 1 --to 2 --scale 0.02 \
  --seed 2 >/dev/null
echo "lifecycle: published v2 after $(inference_lines) inferences"
wait_for 120 downloading
sleep 1
kill -KILL "$EDGE_PID"
wait "$EDGE_PID" 2>/dev/null || true
EDGE_PID=
echo "lifecycle: killed the edge during the download (after $(inference_lines) inferences)"
sleep "$down_s"
EDGE_LISTEN=$addr start_edge_server "$work" "${server_args[@]}" --fault-corrupt-chunks 1
echo "lifecycle: restarted the edge on $EDGE_ADDR with one corrupted chunk"
wait_for 900 enough
kill -TERM "$dev"
rc=0
wait "$dev" || rc=$?
dev=
grep '"event":"placement"' "$ledger" | grep '"changed":true' || true
summary=$(grep '"event":"summary"' "$ledger" | tail -1)
echo "$summary" >"$out/summary.json"
echo "lifecycle: device_client exited $rc; ledger $ledger"

# The checks, from the ledger itself: every id once, each record's versions.
field() { sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" <<<"$summary"; }
ids=$(grep -o '"request_id":[0-9]*' "$ledger" | sort | uniq -c)
once=$(awk '$1 == 1' <<<"$ids" | wc -l)
lost=$(($(field submitted) - once))
failed=$(field failed)
mixed=$(field mixed)
ratio=$(field p99_ratio_during_download)
versions=$(sed -n 's/.*"versions":\(\[[^]]*\]\).*/\1/p' <<<"$summary")
refused=$(field chunks_refused)
resumed=$(field chunks_resumed)
ok=1
[[ $rc == 0 && $failed == 0 && $lost == 0 && $mixed == 0 && $versions == "[1,2]" ]] || ok=0
[[ ${refused:-0} -ge 1 && ${resumed:-0} -ge 1 ]] || ok=0
awk -v r="$ratio" -v m="$max_ratio" 'BEGIN { exit !(r != "null" && r + 0 <= m + 0) }' || ok=0
echo "lifecycle: p50/p99 ms during download $(field p50_ms_during_download)/$(field p99_ms_during_download)," \
  "without $(field p50_ms_without_download)/$(field p99_ms_without_download);" \
  "$(field fallbacks) inferences finished on the device; chunks refused $refused, resumed $resumed"
[[ $ok == 1 ]] || echo "lifecycle: a check failed (see above)" >&2
printf '{"inferences": %s, "failed": %s, "lost": %s, "mixed": %s, "versions": %s, "p99_ratio_during_download": %s, "chunks_refused": %s, "chunks_resumed": %s, "fallbacks": %s, "ok": %s}\n' \
  "$(field inferences)" "$failed" "$lost" "$mixed" "${versions//,/, }" "$ratio" "$refused" \
  "$resumed" "$(field fallbacks)" "$([[ $ok == 1 ]] && echo true || echo false)"
[[ $ok == 1 ]]

#!/usr/bin/env bash
# Longer libFuzzer runs of the wire decoders (tests/fuzz): the frame decoder and the handshake.
#   scripts/fuzz.sh                    60 s per target, both targets
#   scripts/fuzz.sh 300                300 s per target
#   scripts/fuzz.sh 300 fuzz_frame     one target
# Needs clang++ and libFuzzer (scripts/install_deps.sh installs them). Builds the targets in
# ${BUILD_DIR:-build} first. Inputs found are kept in BUILD_DIR/fuzz/<target>/corpus (the next
# run starts from them); a crashing input lands in BUILD_DIR/fuzz/<target>/artifacts/, and should
# be added to tests/fuzz/corpus/<target>/ as a regression seed once fixed. Prints one line per
# target: executions, exec/s, crashes. Exits 1 if any target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then targets=(fuzz_frame fuzz_handshake); fi
build=${BUILD_DIR:-build}
if [[ ! -f "$build/CMakeCache.txt" ]]; then scripts/build.sh; fi
cmake --build "$build" --target "${targets[@]}"

status=0
for t in "${targets[@]}"; do
  bin="$build/bin/$t"
  if [[ ! -x "$bin" ]]; then
    echo "fuzz.sh: $bin not built (SPLITINFER_BUILD_FUZZERS off: clang++ or libFuzzer missing)" >&2
    exit 1
  fi
  work="$build/fuzz/$t"
  mkdir -p "$work/corpus" "$work/artifacts"
  log="$work/last.log"
  rc=0
  "$bin" -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=1024 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
    "$work/corpus" "tests/fuzz/corpus/${t#fuzz_}" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  if [[ $rc -ne 0 ]]; then
    status=1
    echo "$t: CRASH after ${execs:-?} executions (exit $rc); see $log and $work/artifacts/"
  else
    echo "$t: ${seconds} s, ${execs:-?} executions, ${rate:-?} exec/s, 0 crashes (log: $log)"
  fi
done
exit $status

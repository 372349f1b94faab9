#!/bin/sh
# Runs one fuzz target for a bounded number of executions over the committed seed corpus.
#   run_smoke.sh FUZZER CORPUS_DIR WORK_DIR [libFuzzer flags...]
# New inputs go to WORK_DIR (emptied first) and crash artifacts to WORK_DIR/artifacts, never
# into the source tree. Exit 77 (ctest: skipped) when the fuzzer was not built; a crash exits 1
# (libFuzzer's own default, 77, would read as "skipped").
set -eu
fuzzer=$1 corpus=$2 work=$3
shift 3
if [ ! -x "$fuzzer" ]; then
  echo "skipped: $fuzzer not built (needs clang++ and libFuzzer, see tests/fuzz/CMakeLists.txt)"
  exit 77
fi
rm -rf "$work"
mkdir -p "$work/new" "$work/artifacts"
exec "$fuzzer" -error_exitcode=1 -artifact_prefix="$work/artifacts/" "$@" "$work/new" "$corpus"

#!/usr/bin/env bash
# ASan + UBSan build of the whole suite (issue 8): configures build-asan/ with the CMake preset
# `asan` (CMakePresets.json: -fsanitize=address,undefined -fno-sanitize-recover=undefined
# -fno-omit-frame-pointer, -O1 -g with assertions, on the project's own targets), builds it and
# runs the ctest suite there. See docs/testing.md.
#   scripts/sanitize.sh                 every test but the labels below
#   scripts/sanitize.sh -L sanitize     the short representative subset (bounded CI time)
#   scripts/sanitize.sh -R frame_test   any other arguments go to ctest
#   scripts/sanitize.sh --no-build ...  run the suite on what build-asan already holds
# Environment: JOBS (build jobs, default: number of cores), CTEST_JOBS (default 2),
# SANITIZE_EXCLUDE (ctest -LE regex, default below), SANITIZE_LEAKS=0 (turn LeakSanitizer off).
#
# Labels left out by default, and why:
#   fuzz  the libFuzzer smoke tests: their programs are built by clang++ with
#         -fsanitize=fuzzer,address,undefined already (scripts/test.sh runs them); the preset
#         does not build them, so here they would only report "skipped".
#   gpu   the CUDA runtime and driver reserve fixed address ranges that collide with ASan's
#         shadow memory; with Debian's CPU LibTorch they skip anyway.
#   tsan  ThreadSanitizer cannot share a process with ASan (the preset does not build it).
#   slow  CI time; add them back with SANITIZE_EXCLUDE='^(fuzz|gpu|tsan)$'.
#
# Every sanitizer report, from a test program or from an edge_server / device_client / loadgen
# that a test started, is also written to build-asan/sanitizer-logs/; the script prints them and
# fails if there is any, even when the test that started the process passed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=build-asan

do_build=1
if [[ "${1:-}" == "--no-build" ]]; then
  do_build=0
  shift
fi

if (( do_build )); then
  t0=$(date +%s)
  cmake --preset asan >/dev/null
  cmake --build "$build" -j "${JOBS:-$(nproc)}"
  echo "sanitize.sh: build took $(( $(date +%s) - t0 )) s"
fi

logs=$root/$build/sanitizer-logs
rm -rf "$logs"
mkdir -p "$logs"

leaks=${SANITIZE_LEAKS:-1}
# halt_on_error/abort_on_error=0: the first report ends the process with a non-zero exit code
# (not SIGABRT and a core file). detect_container_overflow: only fires on containers built with
# annotations (libstdc++ with _GLIBCXX_SANITIZE_VECTOR, libc++); off, because LibTorch and
# protobuf are not instrumented, and a vector grown by uninstrumented code and read by ours
# (or the reverse) gives false reports. log_path: one file per process, see above.
export ASAN_OPTIONS="detect_leaks=$leaks:halt_on_error=1:abort_on_error=0:detect_container_overflow=0:print_summary=1:print_suppressions=0:suppressions=$root/tests/sanitizer_suppressions_asan.txt:log_path=$logs/asan"
export LSAN_OPTIONS="suppressions=$root/tests/sanitizer_suppressions_lsan.txt:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:print_summary=1:suppressions=$root/tests/sanitizer_suppressions_ubsan.txt:log_path=$logs/ubsan"

exclude=${SANITIZE_EXCLUDE-'^(fuzz|gpu|tsan|slow)$'}
ctest_args=(--output-on-failure -j "${CTEST_JOBS:-2}")
if [[ -n "$exclude" ]]; then ctest_args+=(-LE "$exclude"); fi

t0=$(date +%s)
rc=0
(cd "$build" && ctest "${ctest_args[@]}" "$@") || rc=$?
echo "sanitize.sh: suite took $(( $(date +%s) - t0 )) s, ctest exit code $rc"

shopt -s nullglob
reports=("$logs"/*)
if (( ${#reports[@]} > 0 )); then
  echo "sanitize.sh: ${#reports[@]} sanitizer report file(s) in $logs:"
  for f in "${reports[@]}"; do
    echo "===== $f"
    cat "$f"
  done
  if (( rc == 0 )); then rc=1; fi
fi
exit "$rc"

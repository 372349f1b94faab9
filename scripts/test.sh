#!/usr/bin/env bash
# Installs what is missing, builds, and runs the ctest suite.
#   scripts/test.sh            everything but the `slow` label (gpu tests skip without a GPU)
#   scripts/test.sh --all      the slow suites too
#   scripts/test.sh -L unit    any extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
ctest_args=(-LE slow)
if [[ "${1:-}" == "--all" ]]; then
  ctest_args=()
  shift
fi
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j "$(nproc)" "${ctest_args[@]}" "$@"

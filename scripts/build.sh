#!/usr/bin/env bash
# Configures and builds splitinfer into build/ (executables in build/bin/).
#   scripts/build.sh [extra cmake -D options]        e.g. -DCMAKE_BUILD_TYPE=Debug
# Environment: BUILD_DIR (default build), JOBS (default: number of cores), TARGETS (default: all;
# e.g. TARGETS="edge_server device_client" builds those and what they need, nothing else).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
jobs=${JOBS:-$(nproc)}
generator=()
if command -v ninja >/dev/null 2>&1 && [[ ! -f "$build_dir/Makefile" ]]; then generator=(-G Ninja); fi
cmake -S . -B "$build_dir" "${generator[@]}" "$@" >/dev/null
targets=()
for t in ${TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build_dir" -j "$jobs" "${targets[@]}"

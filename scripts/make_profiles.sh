#!/usr/bin/env bash
# Writes data/profiles/<model>.json for the five zoo models at their default sizes (image
# 224x224, width 1, 1000 classes; mlp 1024 wide, 8 layers): per-unit output shape and bytes,
# parameter bytes, FLOPs and time (median, p10, p90) measured by profile_model on this machine.
# These files are inputs of the cost model; each records the host and date it was measured on.
#
#   scripts/make_profiles.sh                 # builds profile_model in build/ first
#   BUILD_DIR=build-zoo scripts/make_profiles.sh
#   PROFILE_MODEL=/path/to/profile_model scripts/make_profiles.sh   # no build
#
# Knobs (environment): REPEATS (20), WARMUP (3), THREADS (1), OUT_DIR (data/profiles),
# MODELS ("alexnet vgg16 resnet18 mobilenetv2 mlp"), DEVICE (auto: CUDA when available).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR=$ROOT/$BUILD_DIR ;; esac
OUT_DIR=${OUT_DIR:-$ROOT/data/profiles}
REPEATS=${REPEATS:-20}
WARMUP=${WARMUP:-3}
THREADS=${THREADS:-1}
DEVICE=${DEVICE:-auto}
MODELS=${MODELS:-alexnet vgg16 resnet18 mobilenetv2 mlp}

if [[ -z "${PROFILE_MODEL:-}" ]]; then
  if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
    cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DSPLITINFER_BUILD_BENCHMARKS=OFF
  fi
  ninja -C "$BUILD_DIR" -j2 profile_model  # the machine this was written on has 2 cores
  PROFILE_MODEL=$BUILD_DIR/bin/profile_model
fi

mkdir -p "$OUT_DIR"
for model in $MODELS; do
  echo "profiling $model ..." >&2
  tmp=$(mktemp "$OUT_DIR/.$model.json.XXXXXX")
  if ! "$PROFILE_MODEL" --model "$model" --repeats "$REPEATS" --warmup "$WARMUP" \
      --threads "$THREADS" --device "$DEVICE" --json >"$tmp"; then
    rm -f "$tmp"
    echo "make_profiles.sh: profile_model failed for $model" >&2
    exit 1
  fi
  mv "$tmp" "$OUT_DIR/$model.json"
  echo "wrote $OUT_DIR/$model.json" >&2
done

#!/usr/bin/env bash
# Writes data/unit_profiles/<setting>/<model>_w<W>_s<S>.json: per-unit profiles of the zoo models
# at a few width multipliers and input sizes, under two "device settings" that stand in for
# devices (issue 10 item 2): t1 = LibTorch intra-op pool of 1 thread, t2 = 2 threads. These are
# real measured settings; nothing is scaled by a made-up factor.
#
#   scripts/make_unit_profiles.sh [PROFILE_MODEL] [OUT_DIR]
#
# REPEATS (default 5) and WARMUP (default 1) set profile_model's --repeats / --warmup.
set -euo pipefail
BIN=${1:-build/bin/profile_model}
OUT=${2:-data/unit_profiles}
REPEATS=${REPEATS:-5}
WARMUP=${WARMUP:-1}
MODELS=${MODELS:-"alexnet vgg16 resnet18 mobilenetv2 mlp"}
for threads in 1 2; do
  dir="$OUT/t$threads"
  mkdir -p "$dir"
  for model in $MODELS; do
    for w in 0.5 1; do
      for s in 112 160 224; do
        # The MLP ignores the input size: one size is enough.
        if [[ $model == mlp && $s != 224 ]]; then continue; fi
        out="$dir/${model}_w${w}_s${s}.json"
        "$BIN" --model "$model" --width-mult "$w" --input-size "$s" --threads "$threads" \
          --repeats "$REPEATS" --warmup "$WARMUP" --device cpu --json >"$out.tmp"
        mv "$out.tmp" "$out"
        echo "$out"
      done
    done
  done
done

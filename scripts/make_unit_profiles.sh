#!/usr/bin/env bash
# Writes data/unit_profiles/<setting>/<model>_w<W>_s<S>.json: per-unit profiles of the zoo models
# at a few width multipliers and input sizes, under "device settings" that stand in for devices
# (issue 10 items 1-2). All are real measurements; nothing is scaled by a made-up factor:
#
#   t1     LibTorch intra-op pool of 1 thread
#   t2     2 threads
#   t1q50  1 thread under a CPU-speed throttle: a CFS bandwidth limit of half a core (cgroup
#          quota 1 ms per 2 ms period), each timed sample averaged over >= MIN_SAMPLE_MS of
#          back-to-back runs so that it spans many throttle periods (profile_model
#          --min-sample-ms). Needs root and a writable cgroup cpu controller (v1 cpu.cfs_* or v2
#          cpu.max); without them this setting is skipped with a message.
#
#   scripts/make_unit_profiles.sh [PROFILE_MODEL] [OUT_DIR]
#
# REPEATS (default 7), WARMUP (default 2), SETTINGS (default "t1 t2 t1q50"), MODELS,
# MIN_SAMPLE_MS (default 20, t1q50 only). Run it on a quiet machine: other processes' load shows
# up in the times (t2 most of all).
set -euo pipefail
BIN=${1:-build/bin/profile_model}
OUT=${2:-data/unit_profiles}
REPEATS=${REPEATS:-7}
WARMUP=${WARMUP:-2}
SETTINGS=${SETTINGS:-"t1 t2 t1q50"}
MODELS=${MODELS:-"alexnet vgg16 resnet18 mobilenetv2 mlp"}
MIN_SAMPLE_MS=${MIN_SAMPLE_MS:-20}

# A cgroup with a CPU bandwidth limit of QUOTA_US per PERIOD_US; prints its procs file.
make_throttle_cgroup() {
  local quota=$1 period=$2 name="splitinfer-throttle-$$"
  local g
  if [[ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]]; then  # cgroup v1
    g=/sys/fs/cgroup/cpu/$name
    if mkdir "$g"; then
      if echo "$period" >"$g/cpu.cfs_period_us" && echo "$quota" >"$g/cpu.cfs_quota_us"; then
        echo "$g"
        return 0
      fi
      rmdir "$g"
    fi
  fi
  if grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then  # cgroup v2
    g=/sys/fs/cgroup/$name
    if mkdir "$g"; then
      if echo "$quota $period" >"$g/cpu.max"; then
        echo "$g"
        return 0
      fi
      rmdir "$g"
    fi
  fi
  return 1
}

cgroup=""
cleanup() { [[ -n $cgroup ]] && rmdir "$cgroup" 2>/dev/null || true; }
trap cleanup EXIT

for setting in $SETTINGS; do
  extra=()
  prefix=()
  case $setting in
    t1) threads=1 ;;
    t2) threads=2 ;;
    t1q50)
      threads=1
      if ! cgroup=$(make_throttle_cgroup 1000 2000 2>/dev/null); then
        echo "make_unit_profiles: no writable cgroup cpu controller (root needed): $setting skipped" >&2
        cgroup=""
        continue
      fi
      extra=(--min-sample-ms "$MIN_SAMPLE_MS")
      # Each profile_model process joins the cgroup before it execs.
      prefix=(bash -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cgroup")
      ;;
    *)
      echo "make_unit_profiles: unknown setting $setting (t1, t2, t1q50)" >&2
      exit 2
      ;;
  esac
  dir="$OUT/$setting"
  mkdir -p "$dir"
  for model in $MODELS; do
    for w in 0.5 1; do
      for s in 112 160 224; do
        # The MLP takes a [mlp_width] vector, not an image: one size, and its width multiplier
        # scales --mlp-width (1024 x W) since the zoo's MLP ignores --width-mult.
        zoo=(--width-mult "$w" --input-size "$s")
        if [[ $model == mlp ]]; then
          if [[ $s != 224 ]]; then continue; fi
          zoo=(--mlp-width "$(awk -v w="$w" 'BEGIN { print int(1024 * w) }')")
        fi
        out="$dir/${model}_w${w}_s${s}.json"
        "${prefix[@]}" "$BIN" --model "$model" "${zoo[@]}" \
          --threads "$threads" --repeats "$REPEATS" --warmup "$WARMUP" --device cpu \
          "${extra[@]}" --json >"$out.tmp"
        mv "$out.tmp" "$out"
        echo "$out"
      done
    done
  done
  cleanup
  cgroup=""
done

#!/usr/bin/env bash
# Model variants of one task for bandit selection (issue 10, item 3): digits_branchy trained by
# train_exits at several channel widths, plus truncated variants that stop at an early exit (the
# units up to the exit and its head: a smaller model), plus an int8 post-training quantization of
# each width (wC_int8, kind "int8": per-channel int8 weights, per-tensor uint8 activations
# calibrated on the training split, accuracy and times measured on LibTorch's int8 kernels;
# common/exits/quantize.h). Writes data/variants/digits_variants.json
# with each variant's held-out accuracy (train_exits' statistics on the 360-sample test split)
# and per-unit profile (FLOPs, param bytes, median time); weights stay in a temporary folder.
#   scripts/make_variants.sh                       widths 2 4 8 16, 15 epochs, seed 1
#   WIDTHS="4 8" EPOCHS=8 BUILD_DIR=build-c OUT=/tmp/v.json scripts/make_variants.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BUILD_DIR:-build}/bin/train_exits
if [[ ! -x "$bin" ]]; then
  ninja -C "${BUILD_DIR:-build}" train_exits >/dev/null
fi
widths=${WIDTHS:-2 4 8 16}
epochs=${EPOCHS:-15}
seed=${SEED:-1}
out=${OUT:-data/variants/digits_variants.json}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for w in $widths; do
  start=$(date +%s%N)
  "$bin" --width "$w" --epochs "$epochs" --seed "$seed" --out "$tmp/w$w.pt" \
    --stats-out "$tmp/w${w}_stats.json" --profile-out "$tmp/w${w}_profile.json" \
    --int8-stats-out "$tmp/w${w}_int8_stats.json" --int8-profile-out "$tmp/w${w}_int8_profile.json" \
    >"$tmp/w$w.log"
  end=$(date +%s%N)
  echo "width $w: trained in $(( (end - start) / 1000000 )) ms" >&2
done
host="$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
/usr/bin/python3 - "$tmp" "$out" "$epochs" "$seed" "$host" $widths <<'PY'
import json, sys, datetime
tmp, out, epochs, seed, host = sys.argv[1:6]
widths = [int(w) for w in sys.argv[6:]]
variants = []
def add(name, width, kind, exit_index, stats, units, input_bytes, extra=None):
    acc = stats["exits"][exit_index]["test_accuracy"]
    v = {
        "name": name, "width": width, "kind": kind, "exit": exit_index,
        "accuracy": acc, "test_size": stats["test_size"],
        "flops": sum(u["flops"] for u in units),
        "param_bytes": sum(u["param_bytes"] for u in units),
        "time_ms": round(sum(u["time_ms_median"] for u in units), 4),
        "profile": {"model": name, "input_bytes": input_bytes, "units": units},
    }
    v.update(extra or {})
    variants.append(v)
def unit_rows(prof):
    return [{k: u[k] for k in ("index", "name", "output_bytes", "param_bytes", "flops",
                               "time_ms_median")} for u in prof["units"]]
for w in widths:
    stats = json.load(open(f"{tmp}/w{w}_stats.json"))
    prof = json.load(open(f"{tmp}/w{w}_profile.json"))
    units = unit_rows(prof)
    final = len(stats["exits"]) - 1
    add(f"w{w}", w, "full", final, stats, units, prof["input_bytes"],
        {"time_source": "float kernels"})
    # Truncated variants: units 1..a and the head of the exit after unit a, folded into unit a
    # (its output is the 10 logits). Exits 0 and 1 (after units 1 and 2).
    for e in (0, 1):
        ex = stats["exits"][e]
        a = ex["after_unit"]
        t = [dict(u) for u in units[:a]]
        last = t[-1]
        last["name"] = f"{last['name']}+exit{e}"
        last["output_bytes"] = 40
        last["param_bytes"] += ex["head_param_bytes"]
        last["flops"] += ex["head_flops"]
        last["time_ms_median"] = round(last["time_ms_median"] + ex["head_time_ms"], 4)
        add(f"w{w}_exit{e}", w, "truncated", e, stats, t, prof["input_bytes"],
            {"time_source": "float kernels"})
# Int8 variants: the whole model of each width quantized after training (no retraining), its
# accuracy and per-unit times measured on the int8 kernels; boundary tensors are quint8 (one
# byte per element), param bytes count int8 weights, float32 biases and scales, and the
# activation scales and zero points.
for w in widths:
    stats = json.load(open(f"{tmp}/w{w}_int8_stats.json"))
    prof = json.load(open(f"{tmp}/w{w}_int8_profile.json"))
    q = stats["quantization"]
    add(f"w{w}_int8", w, "int8", len(stats["exits"]) - 1, stats, unit_rows(prof),
        prof["input_bytes"],
        {"time_source": q["time_source"], "quantization": {
            "engine": q["engine"], "weights": q["weights"], "activations": q["activations"],
            "calibration": q["calibration"], "calibration_samples": q["calibration_samples"]}})
doc = {"task": "digits (UCI, sklearn copy), 360 held-out samples", "seed": int(seed),
       "epochs": int(epochs), "host": host,
       "date": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
       "variants": variants}
with open(out, "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")
for v in variants:
    print(f"{v['name']:10s} acc {v['accuracy']:.4f} flops {v['flops']:>9d} "
          f"params {v['param_bytes']:>7d} B time {v['time_ms']:.3f} ms")
PY

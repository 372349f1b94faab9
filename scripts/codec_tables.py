#!/usr/bin/env python3
"""Markdown tables of codec profiles (data/codecs/<model>.json, written by codec_fidelity) for
docs/results.md: per model, ratio and top-1 agreement per codec and boundary, coding speed, and
the issue 6 target "codec time below 5% of the transfer time it saves at 10 Mbit/s" (checked
at the boundaries where the codec saves bytes at all; the others are listed).

    scripts/codec_tables.py data/codecs/resnet18.json data/codecs/mobilenetv2.json

Standard library only. The share is (encode_ms + decode_ms) / saved, with
saved = (raw_bytes - bytes) * 8 / 10e6 s; the worst (largest) share over the boundaries is shown.
"""
import json
import statistics
import sys

RATE_BPS = 10e6


def share(b):
    saved_s = (b["raw_bytes"] - b["bytes"]) * 8 / RATE_BPS
    if saved_s <= 0:
        return float("inf")
    return (b["encode_ms"] + b["decode_ms"]) / 1e3 / saved_s


def share_board(b, slowdown=10.0):
    """The share with the encode run on a device `slowdown` times slower (the cost model's
    default device_slowdown), decode on this machine (the edge)."""
    saved_s = (b["raw_bytes"] - b["bytes"]) * 8 / RATE_BPS
    if saved_s <= 0:
        return float("inf")
    return (slowdown * b["encode_ms"] + b["decode_ms"]) / 1e3 / saved_s


def tables(path):
    j = json.load(open(path))
    codecs = [c for c in j["codecs"] if c["name"] != "fp32"]
    by_k = {}
    for c in codecs:
        for b in c["boundaries"]:
            by_k.setdefault(b["k"], {})[c["name"]] = b
    out = []
    out.append(f"### {j['model']} ({j['num_units']} units, input {j['input_size']}x{j['input_size']})\n")
    m = j["machine"]
    out.append(
        f"{j['inputs']} inputs: {j['images']}. Reference: {j['distinct_top1']} distinct top-1 "
        f"class(es), mean |output| {j['output_mean_abs']:.3g}, top-1 margin min "
        f"{j['top1_margin']['min']:.3g} / median {j['top1_margin']['median']:.3g}. "
        f"Measured {j['date']} on {m['cpu']} ({m['cores']} cores), {j['threads']} thread, "
        f"median of {j['repeats']} runs per input after {j['warmup']} warm-up.\n")
    out.append("Ratio (float32 bytes / encoded bytes incl. codec metadata) / top-1 agreement:\n")
    names = [c["name"] for c in codecs]
    feats = {f["k"]: f for f in j.get("features", [])}
    out.append("| k | unit | shape | fp32 KB | zeros | max abs | " + " | ".join(names) + " |")
    out.append("|---:|---|---|---:|---:|---:|" + "---:|" * len(names))
    for k in sorted(by_k):
        row = by_k[k]
        any_b = next(iter(row.values()))
        shape = "x".join(str(d) for d in any_b["shape"])
        cells = []
        for n in names:
            b = row.get(n)
            cells.append("n/a" if b is None else f"{b['ratio']:.2f} / {b['top1_agreement']:.2f}")
        f = feats.get(k)
        ftxt = "| |" if f is None else f"{100 * f['zero_fraction']:.0f}% | {f['abs_max']:.2g} |"
        out.append(f"| {k} | {any_b['unit']} | {shape} | {any_b['raw_bytes'] / 1e3:.0f} | {ftxt} "
                   + " | ".join(cells) + " |")
    out.append("")
    out.append("Speed and the 5% target (codec time / transfer time saved at 10 Mbit/s, worst "
               "boundary), output error against float32 (worst boundary):\n")
    out.append("| codec | encode MB/s (median, min) | decode MB/s (median, min) | worst codec/saved | at k "
               "| target < 5% | worst, encode x10 (board) | min agreement | max abs err | mean abs err |")
    out.append("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for c in codecs:
        bs = c["boundaries"]
        if not bs:
            out.append(f"| {c['name']} | n/a | | | | | | | | |")
            continue
        enc = [b["encode_mbps"] for b in bs]
        dec = [b["decode_mbps"] for b in bs]
        saving = [b for b in bs if share(b) != float("inf")]
        larger = [str(b["k"]) for b in bs if share(b) == float("inf")]
        if saving:
            worst = max(saving, key=share)
            s_txt, at_k = f"{100 * share(worst):.2f}%", str(worst["k"])
            board = f"{100 * max(share_board(b) for b in saving):.2f}%"
            ok = "yes" if share(worst) < 0.05 else "**no**"
        else:
            s_txt, at_k, ok, board = "-", "-", "-", "-"
        if larger:
            ok += f" (no saving at k = {', '.join(larger)}: larger than float32)"
        out.append(
            f"| {c['name']} | {statistics.median(enc):.0f}, {min(enc):.0f} | "
            f"{statistics.median(dec):.0f}, {min(dec):.0f} | {s_txt} | {at_k} | {ok} | {board} | "
            f"{min(b['top1_agreement'] for b in bs):.3f} | "
            f"{max(b['max_abs_err'] for b in bs):.2g} | {max(b['mean_abs_err'] for b in bs):.2g} |")
        if c.get("unavailable"):
            ks = ", ".join(str(u["k"]) for u in c["unavailable"])
            out.append(f"| ({c['name']} unavailable at k = {ks}) | | | | | | | | | |")
    out.append("")
    return "\n".join(out)


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    print("\n".join(tables(p) for p in sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

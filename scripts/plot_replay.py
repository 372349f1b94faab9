#!/usr/bin/python3
"""Plots a trace replay (scripts/replay.sh): per policy, the realized cost of each inference and
the boundary it chose, over trace time, with the uplink rate observed at boundary 0 on top.

    /usr/bin/python3 scripts/plot_replay.py LEDGER.jsonl OUT.png [--title TEXT]

Reads the JSON records device_client --ledger writes (one per inference; records without a
"policy" are skipped). Python is only for plots here: the numbers come from device_client.
"""
import argparse
import collections
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ledger")
    ap.add_argument("out")
    ap.add_argument("--title", default="")
    args = ap.parse_args()
    by_policy = collections.OrderedDict()
    with open(args.ledger) as f:
        for n, line in enumerate(f, 1):
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{args.ledger}:{n}: not JSON: {e}")
            if "policy" in r:
                by_policy.setdefault(r["policy"], []).append(r)
    if not by_policy:
        sys.exit(f"{args.ledger}: no live records")
    fig, (ax_rate, ax_cost, ax_k) = plt.subplots(3, 1, figsize=(10, 9), sharex=True,
                                                 gridspec_kw={"height_ratios": [1, 2, 2]})
    first = next(iter(by_policy.values()))
    t = [r["start_s"] for r in first]
    ax_rate.plot(t, [r["channel_states"][0]["rate_bps"] / 1e6 for r in first], "k.-", lw=0.8)
    ax_rate.set_ylabel("uplink at start\n(Mbit/s)")
    ax_rate.set_yscale("log")
    markers = "os^vDxP*"
    for i, (name, recs) in enumerate(by_policy.items()):
        t = [r["start_s"] for r in recs]
        mean = sum(r["cost"]["total"] for r in recs) / len(recs)
        m = markers[i % len(markers)]
        ax_cost.plot(t, [r["cost"]["total"] for r in recs], m + "-", ms=4, lw=0.7,
                     label=f"{name} (mean {mean:.3g})")
        # A small vertical offset per policy keeps overlapping choices visible.
        k = [r["boundary"] + 0.08 * (i - len(by_policy) / 2) for r in recs]
        ax_k.step(t, k, where="mid", lw=1.0, label=name)
        ax_k.plot(t, k, m, ms=3, color=ax_k.lines[-1].get_color())
    oracle = [(r["start_s"], r["oracle_cost"]) for r in first if r.get("oracle_cost") is not None]
    if oracle:
        ax_cost.plot(*zip(*oracle), "k--", lw=1.0, label="oracle (cost model)")
    ax_cost.set_ylabel("realized cost per inference")
    ax_cost.set_yscale("log")
    ax_cost.legend(fontsize=7, ncol=2)
    ax_k.set_ylabel("boundary k (units on device)")
    ax_k.set_xlabel("trace time at the start of the inference (s)")
    ax_k.legend(fontsize=7, ncol=4)
    fig.suptitle(args.title or args.ledger)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()

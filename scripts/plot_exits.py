#!/usr/bin/python3
"""Accuracy-latency trade-off curves of the early-exit controllers (issue 9, docs/controllers.md).

    /usr/bin/python3 scripts/plot_exits.py [DATA_DIR] [FIG_DIR]
    /usr/bin/python3 scripts/plot_exits.py docs/figures/exits_data docs/figures   (the committed)

Reads the JSON that scripts/exits.sh writes (DATA_DIR, default build/reports/exits: its OUT):
main_<trace>.json (os, rl, fixed, bi at one accuracy weight), sweep_aw_<trace>_<w>.json (os and
bi over the accuracy weight), sweep_awc_<trace>_<w>.json (os, errors estimated from confidence) and sweep_th_<trace>_<t>.json (fixed over the common threshold), and
writes FIG_DIR/exits_<trace>.png (one panel per trace: held-out accuracy against mean latency)
and FIG_DIR/exits_tradeoff.png (all traces side by side); FIG_DIR defaults to DATA_DIR.
"""
import glob
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(path):
    with open(path) as f:
        return json.load(f)


def ctrl(run, name):
    for c in run["controllers"]:
        if c["name"] == name:
            return c
    return None


def panel(ax, data, trace):
    for prefix, col, style, label in (
            ("sweep_aw", "C0", "o-", "optimal stopping, errors from labels (sweep weight)"),
            ("sweep_awc", "C4", "^-", "optimal stopping, errors from confidence (sweep weight)")):
        aw = []
        for p in glob.glob(os.path.join(data, f"{prefix}_{trace}_*.json")):
            r = load(p)
            aw.append((r["accuracy_weight"], ctrl(r, "os")))
        aw.sort(key=lambda x: x[0])
        if not aw:
            continue
        xs = [c["mean_latency_ms"] for _, c in aw]
        ys = [c["accuracy"] for _, c in aw]
        ax.plot(xs, ys, style, color=col, label=label)
        for (w, c) in aw:
            ax.annotate(f"{w:g}", (c["mean_latency_ms"], c["accuracy"]), fontsize=6,
                        xytext=(3, -9), textcoords="offset points", color=col)
    th = []
    for p in glob.glob(os.path.join(data, f"sweep_th_{trace}_*.json")):
        r = load(p)
        c = ctrl(r, "fixed")
        info = c["info"]
        t = info["threshold"] if "threshold" in info else info["fold0"]["threshold"]
        th.append((2.0 if t is None else t, c))
    th.sort(key=lambda x: x[0])
    if th:
        xs = [c["mean_latency_ms"] for _, c in th]
        ys = [c["accuracy"] for _, c in th]
        ax.plot(xs, ys, "s--", color="C1", label="fixed common threshold (sweep) + best split")
        for (t, c) in th:
            ax.annotate("off" if t > 1 else f"{t:g}", (c["mean_latency_ms"], c["accuracy"]),
                        fontsize=7, xytext=(3, 3), textcoords="offset points", color="C1")
    main = os.path.join(data, f"main_{trace}.json")
    if os.path.exists(main):
        r = load(main)
        marks = {"os": ("C0", "*"), "rl": ("C3", "D"), "fixed": ("C1", "P"), "bi": ("C2", "X")}
        for name, (col, m) in marks.items():
            c = ctrl(r, name)
            if c:
                ax.plot([c["mean_latency_ms"]], [c["accuracy"]], m, color=col, ms=11,
                        mec="k", label=f"{name} at weight {r['accuracy_weight']:g}")
        ax.set_title(r["channel"].replace("trace:data/traces/", ""), fontsize=9)
    ax.set_xscale("log")
    ax.set_xlabel("mean latency (ms, log)")
    ax.set_ylabel("held-out accuracy (two-fold cross-fit)")
    ax.grid(True, alpha=0.3)


def main():
    data = sys.argv[1] if len(sys.argv) > 1 else "build/reports/exits"
    figs = sys.argv[2] if len(sys.argv) > 2 else data
    traces = sorted(os.path.basename(p)[5:-5] for p in glob.glob(os.path.join(data, "main_*.json")))
    if not traces:
        sys.exit(f"plot_exits: no main_*.json in {data} (run scripts/exits.sh)")
    os.makedirs(figs, exist_ok=True)
    fig_all, axes = plt.subplots(1, len(traces), figsize=(5.2 * len(traces), 4.4), squeeze=False)
    for i, t in enumerate(traces):
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        panel(ax, data, t)
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        out = os.path.join(figs, f"exits_{t}.png")
        fig.savefig(out, dpi=110)
        plt.close(fig)
        print("wrote", out)
        panel(axes[0][i], data, t)
    axes[0][0].legend(fontsize=6, loc="lower right")
    fig_all.suptitle("digits branchy CNN: accuracy vs latency per controller (scripts/exits.sh)")
    fig_all.tight_layout()
    out = os.path.join(figs, "exits_tradeoff.png")
    fig_all.savefig(out, dpi=110)
    print("wrote", out)


if __name__ == "__main__":
    main()

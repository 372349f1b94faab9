"""Cumulative regret curves of select_sim runs (scripts/select.sh): one panel vs the per-device
oracle, one vs the best common variant; the mean over seeds as a line, each seed faint.
Usage: plot_select.py OUT.png select_seed1.json [select_seed2.json ...]"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

out = sys.argv[1]
runs = [json.load(open(f)) for f in sys.argv[2:]]
names = [p["name"] for p in runs[0]["policies"]]
colors = {"linucb": "C0", "linucb_disjoint": "C2", "eps_greedy": "C1", "common": "C3"}
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
for ax, key, title in ((axes[0], "regret_oracle", "vs the per-device oracle"),
                       (axes[1], "regret_common", "vs the best common variant")):
    for k, n in enumerate(names):
        c = colors.get(n, None)
        curves = [r["policies"][k][key] for r in runs]
        x = runs[0]["checkpoints"]
        for y in curves:
            ax.plot(x, y, color=c, alpha=0.2, lw=0.8)
        mean = [sum(v) / len(v) for v in zip(*curves)]
        ax.plot(x, mean, color=c, lw=2, label=n)
    ax.set_title(f"cumulative regret {title}")
    ax.set_xlabel("round (device arrivals)")
    ax.set_ylabel("QoE points")
    ax.axhline(0, color="k", lw=0.5)
    ax.grid(alpha=0.3)
axes[0].set_yscale("symlog", linthresh=10)
axes[0].set_ylim(bottom=0)
axes[1].set_yscale("symlog", linthresh=100)
axes[0].legend()
r = runs[0]
fig.suptitle(f"model-variant selection: {r['devices']} devices, {r['rounds']} rounds, "
             f"{len(runs)} seeds (mean bold)", fontsize=10)
fig.tight_layout()
fig.savefig(out, dpi=110)

"""Figures of scripts/select.sh.

plot_select.py OUT.png select_seeds.json
    cumulative regret curves of a many-seed select_sim run (--seeds ... --curves): one panel vs
    the per-device oracle, one vs the best common variant; per policy the median over seeds
    (bold), the min-max band over seeds (shaded) and every seed (faint).
plot_select.py --tuning OUT.png select_tuning.json
    the tuning grid (select_sim --seeds ... --ridge a,b --alpha c,d --optimistic false,true):
    mean regret at T over the tuning seeds per (ridge, alpha), optimistic prior off / on, for
    LinUCB shared and disjoint; the chosen point of each policy framed.
"""
import json
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

COLORS = {"linucb": "C0", "linucb_disjoint": "C2", "eps_greedy": "C1", "common": "C3"}


def regret(out, path):
    data = json.load(open(path))
    runs = data["runs"]
    names = [p["name"] for p in runs[0]["policies"]]
    x = runs[0]["checkpoints"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, title in ((axes[0], "regret_oracle", "vs the per-device oracle"),
                           (axes[1], "regret_common", "vs the best common variant")):
        for k, n in enumerate(names):
            c = COLORS.get(n)
            curves = [r["policies"][k][key] for r in runs]
            for y in curves:
                ax.plot(x, y, color=c, alpha=0.12, lw=0.6)
            cols = list(zip(*curves))
            lo = [min(v) for v in cols]
            hi = [max(v) for v in cols]
            med = [sorted(v)[len(v) // 2] if len(v) % 2 else
                   0.5 * (sorted(v)[len(v) // 2 - 1] + sorted(v)[len(v) // 2]) for v in cols]
            ax.fill_between(x, lo, hi, color=c, alpha=0.15, lw=0)
            ax.plot(x, med, color=c, lw=2, label=n)
        ax.set_title(f"cumulative regret {title}")
        ax.set_xlabel("round (device arrivals)")
        ax.set_ylabel("QoE points")
        ax.axhline(0, color="k", lw=0.5)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("symlog", linthresh=10)
    axes[0].set_ylim(bottom=0)
    axes[1].set_yscale("symlog", linthresh=100)
    axes[0].legend()
    seeds = data["seeds"]
    fig.suptitle(f"model-variant selection: {data['devices']} devices, {data['rounds']} rounds, "
                 f"{len(seeds)} reporting seeds ({seeds[0]}-{seeds[-1]}); median bold, "
                 f"min-max shaded", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def tuning(out, path):
    data = json.load(open(path))
    grid = data["grid"]
    ridges = sorted({g["params"]["ridge"] for g in grid}, reverse=True)
    alphas = sorted({g["params"]["alpha"] for g in grid})
    opts = sorted({g["params"]["optimistic"] for g in grid})
    policies = ["linucb", "linucb_disjoint"]
    fig, axes = plt.subplots(len(policies), len(opts), figsize=(4.6 * len(opts), 3.8 * 2),
                             squeeze=False, constrained_layout=True)
    values = [s["regret_oracle"]["mean"] for g in grid for s in g["summary"]
              if s["name"] in policies]
    norm = LogNorm(vmin=max(1.0, min(values)), vmax=max(values))
    for i, pol in enumerate(policies):
        chosen = data["chosen"][pol]
        for j, opt in enumerate(opts):
            ax = axes[i][j]
            m = [[math.nan] * len(alphas) for _ in ridges]
            for g in grid:
                p = g["params"]
                if p["optimistic"] != opt:
                    continue
                s = next(s for s in g["summary"] if s["name"] == pol)
                m[ridges.index(p["ridge"])][alphas.index(p["alpha"])] = s["regret_oracle"]["mean"]
            im = ax.imshow(m, norm=norm, cmap="viridis_r", aspect="auto")
            for r in range(len(ridges)):
                for a in range(len(alphas)):
                    v = m[r][a]
                    ax.text(a, r, f"{v:,.0f}", ha="center", va="center", fontsize=8,
                            color="w" if v > 3000 else "k")
            if chosen["optimistic"] == opt:
                r = ridges.index(chosen["ridge"])
                a = alphas.index(chosen["alpha"])
                ax.add_patch(Rectangle((a - 0.5, r - 0.5), 1, 1, fill=False, ec="r", lw=2.5))
            ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
            ax.set_yticks(range(len(ridges)), [f"{r:g}" for r in ridges])
            ax.set_xlabel("alpha")
            ax.set_ylabel("ridge")
            ax.set_title(f"{pol}, optimistic {'on' if opt else 'off'}", fontsize=10)
    fig.colorbar(im, ax=axes, shrink=0.8, label="mean regret at T over the tuning seeds")
    seeds = data["seeds"]
    fig.suptitle(f"tuning grid on seeds {seeds[0]}-{seeds[-1]} ({len(seeds)} seeds, "
                 f"T = {data['rounds']}); red: the chosen point", fontsize=10)
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    if sys.argv[1] == "--tuning":
        tuning(sys.argv[2], sys.argv[3])
    else:
        regret(sys.argv[1], sys.argv[2])

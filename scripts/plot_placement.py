#!/usr/bin/python3
"""Plots M* (the planner's placement, SPEC section 4) against R and against the mean uplink rate.

    /usr/bin/python3 scripts/plot_placement.py [SWEEP.json]

Reads what scripts/placement_sweep.sh wrote (split_sim's BI placement per point; default
build/reports/placement_sweep/placement_sweep.json, its default OUT; the committed one is
docs/figures/placement_sweep.json) and writes placement_m_star.png next to it. For the
equal-width MLP the closed form's threshold rule is drawn too: with equal units the optimum over
M < N is M* = #{j : u_{j-1} - u_j > D(1)/R} (docs/decision.md), i.e. M* climbs by one at
R_j = D(1) / (V(j-1) - V(j)), compared with M = N. The rule is evaluated on split_sim's
V(M) = inference_cost[M]; where its line and the planner's points coincide, the planner's argmin
agrees with the closed form's structure.
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

COLORS = {"resnet18": "tab:blue", "mobilenetv2": "tab:orange", "mlp": "tab:green"}


def closed_form_m(point, r):
    """The MLP threshold rule at R = r from one run's V(M) and D(M) (both R-independent)."""
    v, d = point["inference_cost"], point["download_cost"]
    n = point["n"]
    d1 = d[1]
    m_int = 0
    for j in range(1, n):
        if v[j - 1] - v[j] > d1 / r:
            m_int = j
    obj = lambda m: d[m] / r + v[m]
    return n if obj(n) < obj(m_int) else m_int


def main():
    default = "build/reports/placement_sweep/placement_sweep.json"
    path = sys.argv[1] if len(sys.argv) > 1 else default
    data = json.load(open(path))
    meta = data["meta"]
    fig, (ax_r, ax_u) = plt.subplots(1, 2, figsize=(12, 4.6))
    for model in ("resnet18", "mobilenetv2", "mlp"):
        pts = [p for p in data["r_sweep"] if p["model"] == model]
        if not pts:
            continue
        n = pts[0]["n"]
        rs = [p["r"] for p in pts]
        # One marker per split_sim run (8 per decade); the thin line steps halfway between runs.
        ax_r.plot(rs, [p["best_m"] for p in pts], "o-", ms=3, lw=1, drawstyle="steps-mid",
                  color=COLORS[model], label=f"{model} (N = {n}), BI planner")
        if model == "mlp":
            # V(M) does not depend on R: the closed form from one run, on a fine R grid.
            fine = [10 ** (i / 64) for i in range(5 * 64 + 1)]
            ax_r.plot(fine, [closed_form_m(pts[0], r) for r in fine], "k--", lw=1,
                      label="mlp closed form (threshold rule)")
        up = [p for p in data["uplink_sweep"] if p["model"] == model]
        ax_u.plot([p["mean_rate_bps"] / 1e6 for p in up], [p["best_m"] for p in up], "o-", ms=3,
                  lw=1, drawstyle="steps-mid", color=COLORS[model], label=f"{model} (N = {n})")
        if model == "mlp":
            ax_u.plot([p["mean_rate_bps"] / 1e6 for p in up],
                      [closed_form_m(p, meta["r_uplink"]) for p in up], "kx", ms=5,
                      label="mlp closed form")
    ax_r.set_xscale("log")
    ax_r.set_xlabel("R, inferences per model version")
    ax_r.set_ylabel("M*, units stored on the device")
    ax_r.set_title(f"M* against R (Rayleigh, mean SNR {meta['snr_db']:g} dB, 10 MHz)")
    ax_r.grid(alpha=0.3)
    ax_r.legend(fontsize=8)
    ax_u.set_xscale("log")
    ax_u.set_xlabel("mean uplink rate, Mbit/s (Rayleigh, mean SNR -10..30 dB, 10 MHz)")
    ax_u.set_ylabel("M*")
    ax_u.set_title(f"M* against the uplink (R = {meta['r_uplink']:g})")
    ax_u.grid(alpha=0.3)
    for ax in (ax_r, ax_u):
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax_u.legend(fontsize=8)
    fig.suptitle(f"Placement M* from split_sim (device {meta['slowdown']:g}x slower than the "
                 "profiling machine); scripts/placement_sweep.sh --plot", fontsize=9)
    fig.tight_layout()
    out = os.path.join(os.path.dirname(path), "placement_m_star.png")
    fig.savefig(out, dpi=120)
    print(f"plot_placement: wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Figures and tables of the decision core (docs/decision.md), all from build/bin/split_sim.

Run from the repository root after building split_sim:

    /usr/bin/python3 scripts/plot_decision.py [--sim build/bin/split_sim] [--episodes 10000]
        [--out DIR] [--no-plots]

Writes OUT/decision_cost_vs_snr.png, OUT/decision_boundaries.png and OUT/decision_results.md (the
policy/oracle ratio tables pasted into docs/decision.md); --out defaults to build/reports/decision,
and it writes into docs/ only when told to. The committed figures and tables are regenerated with

    /usr/bin/python3 scripts/plot_decision.py --episodes 10000 --out docs/figures

Without python3-matplotlib it says so at the start, writes the tables and skips the figures
(scripts/install_deps.sh --plots installs it).
Uses data/profiles/<model>.json when present (split_sim's --model rule), else analytic profiles.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

from plotting import optional_pyplot

# The tables are still written without matplotlib; main() says the figures are skipped.
plt, NO_MPL = optional_pyplot("plot_decision")

MODELS = ["alexnet", "vgg16", "resnet18", "mobilenetv2"]
POLICIES = ["oracle", "bi", "ola", "greedy", "neurosurgeon", "best-fixed", "all-edge", "all-local"]


def run(sim, model, channel, episodes, extra=()):
    cmd = [sim, "--quiet", "--json", "--model", model, "--channel", channel,
           "--episodes", str(episodes), "--seed", "1", *extra]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def channels(traces):
    ucc = "ucc_5g/Download/Driving/B_2020.02.14_09.38.22.csv"
    local_ucc = "data/traces/B_2020.02.14_09.38.22.csv"
    out = [("Rayleigh 10 dB", "rayleigh:snr_db=10"),
           ("Gauss-Markov 10 dB, 5 Hz", "gauss-markov:snr_db=10,doppler_hz=5")]
    ucc_path = os.path.join(traces, ucc) if os.path.exists(os.path.join(traces, ucc)) else local_ucc
    out.append(("UCC 5G driving (SNR)", "markov-fit:" + ucc_path))
    mm = os.path.join(traces, "mahimahi_us_cellular/Verizon-LTE-short.up")
    if os.path.exists(mm):
        out.append(("Mahimahi Verizon LTE up", "markov-fit:" + mm))
    else:
        out.append(("Norway tram (HSDPA)", "markov-fit:data/traces/norway_tram_1"))
    return out


def results_table(sim, traces, episodes, slowdown):
    lines = [f"Device {slowdown}x slower than the profiling machine; mean cost / oracle mean cost "
             f"({episodes} episodes, seed 1; M* = BI placement for R = 1000).", "",
             "| model | channel | " + " | ".join(POLICIES[1:]) + " | M* |",
             "|---|---|" + "---|" * (len(POLICIES) - 1) + "---|"]
    for model in MODELS:
        for name, ch in channels(traces):
            r = run(sim, model, ch, episodes, ["--slowdown", str(slowdown)])
            ratio = {p["name"]: p["ratio_to_oracle"] for p in r["policies"]}
            best = min(ratio[p] for p in POLICIES[1:])
            cells = []
            for p in POLICIES[1:]:
                cell = f"{ratio[p]:.3f}"
                cells.append(f"**{cell}**" if ratio[p] == best else cell)
            lines.append(f"| {model} | {name} | " + " | ".join(cells) +
                         f" | {r['placement']['best_m']}/{r['num_units']} |")
    return "\n".join(lines)


def plot_cost_vs_snr(sim, episodes, path):
    snrs = [-5, 0, 5, 10, 15, 20, 25]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for ax, model in zip(axes.flat, MODELS):
        series = {p: [] for p in POLICIES}
        for snr in snrs:
            r = run(sim, model, f"rayleigh:snr_db={snr}", episodes)
            for p in r["policies"]:
                series[p["name"]].append(p["mean_cost"])
        for p in POLICIES:
            ax.plot(snrs, series[p], marker="o", ms=3, label=p,
                    linestyle="--" if p == "oracle" else "-")
        ax.set_title(f"{model}, i.i.d. Rayleigh, 10 MHz, device 10x")
        ax.set_xlabel("mean SNR (dB)")
        ax.set_ylabel("mean cost (s)")
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_boundaries(sim, traces, episodes, path):
    chs = channels(traces)
    fig, axes = plt.subplots(len(MODELS), len(chs), figsize=(4 * len(chs), 2.6 * len(MODELS)))
    for i, model in enumerate(MODELS):
        for j, (name, ch) in enumerate(chs):
            r = run(sim, model, ch, episodes)
            ax = axes[i][j]
            n = r["num_units"]
            width = 0.8 / 4
            for t, pname in enumerate(["oracle", "bi", "ola", "neurosurgeon"]):
                p = next(p for p in r["policies"] if p["name"] == pname)
                counts = p["boundary_counts"]
                total = sum(counts)
                ax.bar([k + (t - 1.5) * width for k in range(n + 1)],
                       [c / total for c in counts], width=width, label=pname)
            ax.set_title(f"{model} / {name}", fontsize=9)
            ax.set_xlabel("chosen boundary k")
            ax.set_ylim(0, 1)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sim", default="build/bin/split_sim")
    ap.add_argument("--traces", default="../shared/traces")
    ap.add_argument("--episodes", type=int, default=10000)
    ap.add_argument("--out", default="build/reports/decision")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args()
    if not os.path.exists(args.sim):
        sys.exit(f"{args.sim} not found: build split_sim first")
    plots = not args.no_plots
    if plots and plt is None:
        print(NO_MPL, file=sys.stderr)
        plots = False
    os.makedirs(args.out, exist_ok=True)
    cpu = "unknown CPU"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    header = (f"Generated by `/usr/bin/python3 scripts/plot_decision.py --episodes {args.episodes}` "
              f"on {cpu} ({os.cpu_count()} cores, {platform.node()}), "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n")
    tables = [header]
    for slowdown in (10, 30):
        tables.append(results_table(args.sim, args.traces, args.episodes, slowdown))
        tables.append("")
    with open(os.path.join(args.out, "decision_results.md"), "w") as f:
        f.write("\n".join(tables) + "\n")
    print("\n".join(tables))
    written = [os.path.join(args.out, "decision_results.md")]
    if plots:
        written.append(os.path.join(args.out, "decision_cost_vs_snr.png"))
        plot_cost_vs_snr(args.sim, args.episodes, written[-1])
        written.append(os.path.join(args.out, "decision_boundaries.png"))
        plot_boundaries(args.sim, args.traces, args.episodes, written[-1])
    elif not args.no_plots:
        print(NO_MPL, file=sys.stderr)
    print("plot_decision: wrote " + ", ".join(written), file=sys.stderr)


if __name__ == "__main__":
    main()

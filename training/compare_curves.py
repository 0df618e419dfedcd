"""Put several runs' greedy success curves on one plot (env steps on a log axis).

    python training/compare_curves.py runs/mlp-doorkey5 runs/ppo-doorkey5-zeroshot \\
        --labels "MLP PPO from scratch" "LM PPO from zero-shot" --out docs/img/doorkey5_curves.png

Each run folder needs a metrics.csv with `eval/success_rate` (all training scripts
write one). `--offset` shifts a run right by env steps spent before it (e.g. the expert
demonstrations of a behaviour-cloning warm start).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse

from training.logs import read_metric


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python training/compare_curves.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders holding metrics.csv")
    parser.add_argument("--labels", nargs="+", help="one label per run (default: folder names)")
    parser.add_argument("--offset", nargs="+", type=int, help="env steps to add to each run's x values")
    parser.add_argument("--title", default="", help="plot title")
    parser.add_argument("--out", required=True, help="PNG path")
    args = parser.parse_args(argv)
    labels = args.labels or [Path(r).name for r in args.runs]
    offsets = args.offset or [0] * len(args.runs)
    if len(labels) != len(args.runs) or len(offsets) != len(args.runs):
        parser.error("give one --labels and one --offset value per run")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for run, label, offset in zip(args.runs, labels, offsets):
        if not (Path(run) / "metrics.csv").is_file():
            parser.error(f"{run} has no metrics.csv: pass a run folder written by training/")
        points = read_metric(run, "eval/success_rate")
        ax.plot([max(s + offset, 1) for s, _ in points], [v for _, v in points], marker="o", ms=3, label=label)
    ax.set_xscale("log")
    ax.set(xlabel="env steps (log scale)", ylabel="greedy success, 100 held-out seeds", ylim=(-0.02, 1.02),
           title=args.title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Put several runs' greedy success curves on one plot (env steps on a log axis).

    python training/compare_curves.py runs/mlp-doorkey5 runs/ppo-doorkey5-zeroshot \\
        --labels "MLP PPO from scratch" "LM PPO from zero-shot" --out docs/img/doorkey5_curves.png

Each run folder needs a metrics.csv with `eval/success_rate` (all training scripts
write one). `--offset` shifts a run right by env steps spent before it (e.g. the expert
demonstrations of a behaviour-cloning warm start).
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

from agent.cli import check_out_file, option, parse
from training.logs import read_metric

METRIC = "eval/success_rate"


@dataclass
class CurvesConfig:
    runs: list[str] = option(None, "run folders holding metrics.csv", nargs="+", positional=True, metavar="RUN")
    labels: list[str] | None = option(None, "one label per run (default: folder names)", nargs="+", metavar="LABEL")
    offset: list[int] | None = option(None, "env steps to add to each run's x values (default: 0 each)", nargs="+",
                                        metavar="STEPS")
    title: str = option("", "plot title")
    out: str | None = option(None, "PNG path (required; missing folders are created)", metavar="PNG")

    def __post_init__(self):
        for run in self.runs:
            if not (Path(run) / "metrics.csv").is_file():
                raise ValueError(f"{run} has no metrics.csv: pass a run folder written by training/.")
            try:
                points = read_metric(run, METRIC)
            except (KeyError, ValueError, csv.Error):  # not the step,key,value CSV that training/ writes
                raise ValueError(f"{run}/metrics.csv is not a metrics log: pass a run folder written by training/.") from None
            if not points:
                raise ValueError(f"{run}/metrics.csv has no {METRIC} rows: pass a run that evaluated at least once.")
        self.labels = self.labels or [Path(r).name for r in self.runs]
        self.offset = self.offset or [0] * len(self.runs)
        if len(self.labels) != len(self.runs) or len(self.offset) != len(self.runs):
            raise ValueError(f"--labels and --offset need one value per run ({len(self.runs)} here): "
                             "give that many, or leave the flag out.")
        if self.out is None:
            raise ValueError("--out is missing: give --out PNG, the path of the plot to write.")
        check_out_file(self.out, "--out", make_parents=True)
        from matplotlib.figure import Figure

        kinds = Figure().canvas.get_supported_filetypes()  # savefig picks the format by suffix
        if Path(self.out).suffix and Path(self.out).suffix[1:].lower() not in kinds:
            raise ValueError(f"--out {self.out} has a suffix matplotlib cannot write: end it with .png, .svg or .pdf.")


def main(argv=None) -> int:
    args = parse(CurvesConfig, argv, "python training/compare_curves.py", __doc__.split("\n\n")[0])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for run, label, offset in zip(args.runs, args.labels, args.offset):
        points = read_metric(run, METRIC)
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

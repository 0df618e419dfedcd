"""Put several methods' greedy success curves on one plot, each over its seeds.

    python training/compare_curves.py runs/mlp-s1,runs/mlp-s2,runs/mlp-s3 runs/lm-s1,runs/lm-s2,runs/lm-s3 \\
        --labels "MLP PPO" "LM PPO" --out docs/img/curves.png

Each argument is one method: a run folder, or several (its seeds) joined by commas. A
method with several seeds is drawn as its mean with a min-max band and one thin line per
seed; its seeds must have been evaluated at the same env steps. The script also prints,
per method and seed, the env steps at which greedy success first reached 0.5, 0.8 and
0.95, as a markdown table. Each run folder needs a metrics.csv with `eval/success_rate`
(every training script writes one). `--offset` shifts a method right by env steps spent
before it (e.g. the expert demonstrations of a behaviour-cloning warm start).
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

from agent.cli import check_out_file, option, parse, switch
from training.logs import read_metric

METRIC = "eval/success_rate"
THRESHOLDS = (0.5, 0.8, 0.95)


@dataclass
class CurvesConfig:
    runs: list[str] = option(None, "one argument per method: a run folder, or its seeds' folders joined by commas",
                             nargs="+", positional=True, metavar="RUN[,RUN...]")
    labels: list[str] | None = option(None, "one label per method (default: folder names)", nargs="+", metavar="LABEL")
    offset: list[int] | None = option(None, "env steps to add to each method's x values (default: 0 each)", nargs="+",
                                        metavar="STEPS")
    title: str = option("", "plot title")
    ylabel: str = option("greedy success, held-out evaluation", "y axis label (say which levels were played)")
    log_x: bool = switch("log scale for env steps (for methods whose budgets differ 10x or more)")
    out: str | None = option(None, "PNG path (required; missing folders are created)", metavar="PNG")

    def __post_init__(self):
        self.groups = [[r for r in group.split(",") if r] for group in self.runs]
        for group in self.groups:
            for run in group:
                check_run(run)
            steps = {tuple(s for s, _ in read_metric(run, METRIC)) for run in group}
            if len(steps) > 1:
                raise ValueError(f"the seeds {','.join(group)} were evaluated at different env steps: give each "
                                 "method's seeds the same --eval-every and --total-steps.")
        self.labels = self.labels or [Path(g[0]).name for g in self.groups]
        self.offset = self.offset or [0] * len(self.groups)
        if len(self.labels) != len(self.groups) or len(self.offset) != len(self.groups):
            raise ValueError(f"--labels and --offset need one value per method ({len(self.groups)} here): "
                             "give that many, or leave the flag out.")
        if self.out is None:
            raise ValueError("--out is missing: give --out PNG, the path of the plot to write.")
        check_out_file(self.out, "--out", make_parents=True)
        from matplotlib.figure import Figure

        kinds = Figure().canvas.get_supported_filetypes()  # savefig picks the format by suffix
        if Path(self.out).suffix and Path(self.out).suffix[1:].lower() not in kinds:
            raise ValueError(f"--out {self.out} has a suffix matplotlib cannot write: end it with .png, .svg or .pdf.")


def check_run(run: str) -> None:
    if not (Path(run) / "metrics.csv").is_file():
        raise ValueError(f"{run} has no metrics.csv: pass a run folder written by training/.")
    try:
        points = read_metric(run, METRIC)
    except (KeyError, ValueError, csv.Error):  # not the step,key,value CSV that training/ writes
        raise ValueError(f"{run}/metrics.csv is not a metrics log: pass a run folder written by training/.") from None
    if not points:
        raise ValueError(f"{run}/metrics.csv has no {METRIC} rows: pass a run that evaluated at least once.")


def first_reach(points: list[tuple[int, float]], threshold: float) -> int | None:
    """Env steps of the first evaluation at or above `threshold` (None: never)."""
    return next((step for step, value in points if value >= threshold), None)


def reach_table(groups: list[list[str]], labels: list[str], offsets: list[int]) -> str:
    """Markdown: per method and seed, env steps to each threshold, and the final success."""
    lines = ["| method | run | " + " | ".join(f"steps to {t:g}" for t in THRESHOLDS) + " | final | evaluated every |",
             "|---|---|" + "---|" * (len(THRESHOLDS) + 2)]
    for group, label, offset in zip(groups, labels, offsets):
        for run in group:
            points = [(s + offset, v) for s, v in read_metric(run, METRIC)]
            reached = [first_reach(points, t) for t in THRESHOLDS]
            every = points[1][0] - points[0][0] if len(points) > 1 else 0
            lines.append(f"| {label} | {Path(run).name} | " + " | ".join(f"{r:,}" if r is not None else "not reached"
                                                                          for r in reached)
                         + f" | {points[-1][1]:.2f} at {points[-1][0]:,} | {every:,} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse(CurvesConfig, argv, "python training/compare_curves.py", __doc__.split("\n\n")[0])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for group, label, offset in zip(args.groups, args.labels, args.offset):
        curves = [read_metric(run, METRIC) for run in group]
        steps = np.array([s + offset for s, _ in curves[0]])
        values = np.array([[v for _, v in c] for c in curves])
        if args.log_x:  # a log axis has no place for step 0
            steps, values = steps[steps > 0], values[:, steps > 0]
        color = ax.plot(steps, values.mean(0), lw=2, label=f"{label} (mean of {len(group)})" if len(group) > 1
                        else label)[0].get_color()
        if len(group) > 1:
            ax.fill_between(steps, values.min(0), values.max(0), color=color, alpha=0.15, lw=0)
            for row in values:
                ax.plot(steps, row, color=color, lw=0.6, alpha=0.5)
    if args.log_x:
        ax.set_xscale("log")
    ax.set(xlabel="env steps" + (" (log scale)" if args.log_x else ""), ylabel=args.ylabel, ylim=(-0.02, 1.02),
           title=args.title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(reach_table(args.groups, args.labels, args.offset))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

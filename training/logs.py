"""Metrics to CSV and TensorBoard under namespaced keys (charts/..., losses/...), plus a curve PNG.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     log = MetricLog(d, tensorboard=False)
...     log.write(100, {"charts/SPS": 3.0})
...     log.close()
...     open(f"{d}/metrics.csv").read().splitlines()[1]
'100,charts/SPS,3.0'
"""

from __future__ import annotations

import csv
import os
from pathlib import Path


class MetricLog:
    """Long-format CSV (step, key, value), so new keys never break the header."""

    def __init__(self, folder: str | os.PathLike, tensorboard: bool = True, append: bool = False):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / "metrics.csv"
        fresh = not (append and path.exists())
        self._file = open(path, "w" if fresh else "a", newline="")
        self._csv = csv.writer(self._file)
        if fresh:
            self._csv.writerow(["step", "key", "value"])
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.folder / "tensorboard"))

    def write(self, step: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self._csv.writerow([step, key, value])
            if self._tb is not None:
                self._tb.add_scalar(key, value, step)
        self._file.flush()

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def read_metric(folder: str | os.PathLike, key: str) -> list[tuple[int, float]]:
    """(step, value) pairs of one key from a run's metrics.csv, in file order."""
    with open(Path(folder) / "metrics.csv", newline="") as f:
        return [(int(r["step"]), float(r["value"])) for r in csv.DictReader(f) if r["key"] == key]


def plot_learning_curve(folder: str | os.PathLike, title: str = "") -> Path | None:
    """success rate vs env steps (eval and training episodes) as learning_curve.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    series = {"greedy eval (validation levels)": read_metric(folder, "eval/success_rate"),
              "training episodes (sampled)": read_metric(folder, "charts/success_rate")}
    if not any(series.values()):
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, points in series.items():
        if points:
            steps, values = zip(*points)
            ax.plot(steps, values, marker="o" if label.startswith("greedy") else None, label=label)
    ax.set_xlabel("env steps")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    out = folder / "learning_curve.png"
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out

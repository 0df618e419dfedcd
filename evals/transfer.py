"""Transfer matrix: adapters trained on some envs, played greedily on others.

    python -m evals.transfer --adapters doorkey=runs/bc-doorkey/final,babyai=adapters/babyai-text \\
        --envs MiniGrid-DoorKey-8x8-v0,BabyAI-GoToLocal-v0 --episodes 100 --out results/transfer

Writes transfer.json, transfer.md (success [95% CI] per adapter x env) and transfer.png
(a heat map) into --out. A cell plays distinct levels of the target env once each: its
test levels when the adapter trained on that env, every level otherwise (a different env
shares no level with the training one). The training env is read from the config.json
that training wrote beside the adapter (RUN/config.json for RUN/final, or the adapter
folder's own training.json); without one, test levels are played.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import envs
from agent.cli import (
    DEVICE_DOC,
    MODEL_DOC,
    PROGRESS_DOC,
    THREADS_DOC,
    check_adapter,
    check_device,
    check_out_folder,
    check_range,
    check_seed_and_threads,
    option,
    out_option,
    parse_and_run,
    system_prompt,
)
from agent.models import DEFAULT_MODEL
from envs.babyai_text import KINDS, MIXED_TRAIN_ID, kind_id
from envs.memory import plain_id
from envs.levels import level_seeds
from evals.benchmark import parse_envs
from evals.metrics import success_by_task, wilson_interval


def training_config(adapter: str) -> dict:
    """The config its training run wrote beside an adapter ({} when there is none)."""
    folder = Path(adapter)
    for path in (folder / "training.json", folder.parent / "config.json"):
        if path.is_file():
            return json.loads(path.read_text())
    return {}


def trained_on(adapter: str, config: dict | None = None) -> list[str]:
    """Env ids an adapter was trained on, from the config its training run wrote."""
    env = (training_config(adapter) if config is None else config).get("env")
    return envs.resolve_env_id(env).split("+") if env else []


def cell_split(target: str, training_envs: list[str]) -> str:
    """Test levels of an env the adapter trained on (or of any env, when that is unknown); every level otherwise."""
    seen = {plain_id(env_id) for env_id in training_envs}  # a memory twin plays its plain env's levels
    if MIXED_TRAIN_ID in seen:  # the mixture trains on each kind's own levels
        seen |= {kind_id(kind, "train") for kind in KINDS}
    targets = {plain_id(env_id) for env_id in target.split("+")}
    return "test" if not training_envs or targets & seen or plain_id(target) in seen else "all"


@dataclass
class TransferConfig:
    adapters: str = option(None, "comma-separated LABEL=ADAPTER_DIR (LABEL=none for the base model)")
    envs: str = option(None, "comma-separated target envs, A+B mixtures or a suite (babyai-text, babyai-text-memory)")
    episodes: int = option(100, "distinct levels per cell (fewer where the env has fewer)")
    seed: int = option(0, "first evaluation seed scanned for levels")
    model: str = option(DEFAULT_MODEL, MODEL_DOC)
    device: str | None = option(None, DEVICE_DOC)
    threads: int = option(0, THREADS_DOC)
    batch: int = option(32, "states per forward pass")
    progress: bool = option(True, PROGRESS_DOC)
    out: str | None = out_option(None, "output folder for transfer.json, transfer.md and transfer.png (required)")
    rows: dict[str, str | None] = field(init=False, repr=False)
    env_ids: list[str] = field(init=False, repr=False)

    def __post_init__(self):
        check_seed_and_threads(self.seed, self.threads)
        check_range("--episodes", self.episodes, 1)
        check_device(self.device)
        if not self.adapters or not self.envs:
            raise ValueError("give --adapters LABEL=DIR,... and --envs ENV,...; see --help.")
        self.rows = {}
        for item in (part.strip() for part in self.adapters.split(",") if part.strip()):
            label, equals, folder = item.partition("=")
            if not equals or not label or not folder:
                raise ValueError(f"--adapters item {item!r} is not LABEL=ADAPTER_DIR: write it like doorkey=runs/bc/final.")
            if folder != "none":
                check_adapter(folder, f"--adapters {label}=")
            self.rows[label] = None if folder == "none" else folder
        self.env_ids = parse_envs(self.envs)
        if self.out is None:
            raise ValueError("--out is missing: give --out FOLDER for transfer.json, transfer.md and transfer.png.")
        check_out_folder(self.out)


def run_transfer(config: TransferConfig) -> dict:
    from tqdm import tqdm

    from agent.episodes import LMAgent, play
    from agent.policy import load_policy
    from agent.scoring import CachedScorer

    cells = []
    systems = {env_id: system_prompt(env_id) for env_id in config.env_ids}  # each env family's system part
    policies = {(label, system): load_policy(config.model, adapter, device=config.device, system=system)
                for label, adapter in config.rows.items()  # a bad adapter fails before any cell
                for system in dict.fromkeys(systems.values())}
    bar = tqdm(total=len(config.rows) * len(config.env_ids), unit="cell", file=sys.stderr, disable=not config.progress)
    for label, adapter in config.rows.items():
        trained = training_config(adapter) if adapter else {}
        training_envs = trained_on(adapter, trained) if adapter else []
        for env_id in config.env_ids:
            split = cell_split(env_id, training_envs) if adapter else "all"
            # Trained with --all-levels: the env has no held-out levels left, say so.
            seen = split == "test" and trained.get("all_levels", False)
            split = "all" if seen else split
            seeds = level_seeds(env_id, split, config.episodes, config.seed)
            bar.set_description(f"{label} on {env_id} ({len(seeds)} {split} levels)")
            policy = policies[(label, systems[env_id])]
            agent = LMAgent(policy, scorer=CachedScorer(policy, batch_size=config.batch))  # greedy score mode
            began = time.perf_counter()
            episodes = play(agent, env_id, seeds, batch=len(seeds))
            wins = sum(e.success for e in episodes)
            cells.append({"row": label, "adapter": adapter, "trained_on": training_envs, "env": env_id,
                          "split": split, "trained_levels": seen, "levels": len(episodes), "success": wins / len(episodes),
                          "wilson_95": list(wilson_interval(wins, len(episodes))),
                          "mean_length": sum(len(e.steps) for e in episodes) / len(episodes),
                          "success_by_task": {t: v["rate"] for t, v in success_by_task(episodes).items()},
                          "seconds": time.perf_counter() - began})
            bar.update(1)
    bar.close()
    return {"model": config.model, "rows": list(config.rows), "envs": config.env_ids, "cells": cells}


def markdown(results: dict, command: str) -> str:
    lines = ["# Transfer matrix", "", f"Command: `{command}`", "",
             "Greedy success [Wilson 95%] and levels played per cell; `test`: the target's held-out test levels "
             "(the adapter trained on that env's other levels), `all`: every level of an env the adapter never "
             "trained on, or, marked `trained on`, of an env it trained on with --all-levels (not held out).", "",
             "| adapter (trained on) | " + " | ".join(results["envs"]) + " |",
             "|---|" + "---|" * len(results["envs"])]
    for row in results["rows"]:
        cells = [c for c in results["cells"] if c["row"] == row]
        trained = "+".join(cells[0]["trained_on"]) or "nothing"
        lines.append(f"| {row} ({trained}) | " + " | ".join(
            f"{c['success']:.2f} [{c['wilson_95'][0]:.2f}, {c['wilson_95'][1]:.2f}] ({c['levels']} {c['split']}"
            f"{', trained on' if c.get('trained_levels') else ''})"
            for c in cells) + " |")
    return "\n".join(lines) + "\n"


def heat_map(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid = np.array([[c["success"] for c in results["cells"] if c["row"] == row] for row in results["rows"]])
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(results["envs"]), 1.2 + 0.6 * len(results["rows"])))
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(results["envs"])),
                  [e.replace("MiniGrid-", "").replace("BabyAI-", "").replace("-v0", "") for e in results["envs"]],
                  rotation=30, ha="right")
    ax.set_yticks(range(len(results["rows"])), results["rows"])
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", color="white" if grid[i, j] < 0.6 else "black")
    fig.colorbar(image, ax=ax, label="greedy success")
    ax.set_title("train on the row, play the column")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)

    def transfer(config: TransferConfig) -> int:
        results = run_transfer(config)
        out = Path(config.out)
        out.mkdir(parents=True, exist_ok=True)
        command = "python -m evals.transfer " + shlex.join(argv)
        (out / "transfer.json").write_text(json.dumps({**results, "command": command}, indent=1) + "\n")
        (out / "transfer.md").write_text(markdown(results, command))
        heat_map(results, out / "transfer.png")
        print(f"wrote {out / 'transfer.json'}, {out / 'transfer.md'} and {out / 'transfer.png'}")
        return 0

    return parse_and_run(TransferConfig, transfer, argv, "python -m evals.transfer", __doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main())

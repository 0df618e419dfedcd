"""Distinct levels per split (train / validation / test) of any envs, as a markdown table.

    python -m evals.levels DoorKey-5x5 DoorKey-6x6 TextMixedTrainLocal --seeds 3000
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import envs
from agent.cli import check_range, option, parse_and_run
from envs.levels import count_levels


@dataclass
class LevelsConfig:
    envs: list[str] = option(None, "env ids, short names or A+B mixtures", nargs="+", positional=True, metavar="ENV")
    seeds: int = option(3000, "fingerprint the levels of seeds 0..N-1")

    def __post_init__(self):
        check_range("--seeds", self.seeds, 1, 100_000)
        self.envs = [envs.check_env(name) for name in self.envs]


def show(config: LevelsConfig) -> int:
    print(f"| env | distinct levels in seeds 0..{config.seeds - 1:,} | train | validation | test |")
    print("|---|---|---|---|---|")
    for env_id in config.envs:
        counts = count_levels(env_id, range(config.seeds))
        print(f"| {env_id} | {sum(counts.values()):,} | {counts['train']:,} | {counts['validation']:,} | "
              f"{counts['test']:,} |", flush=True)
    return 0


def main(argv=None) -> int:
    return parse_and_run(LevelsConfig, show, argv, "python -m evals.levels", __doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main())

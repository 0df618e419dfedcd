"""Held-out levels: fingerprints of initial levels, and a fixed train/validation/test split.

Seeds are not levels: DoorKey-5x5 has 48 distinct levels, so "held-out seeds" can repeat
training levels. A level's fingerprint hashes what the agent starts in (grid encoding,
agent position and direction, carried object, mission). Each fingerprint sits at a fixed
point of [0, 1) (`_unit_hash`); the lowest 20% of an env's levels are test levels, the
next 10% validation, the rest training (`split_of`). The three sets are disjoint by
construction, for a family of 48 levels as for one of billions.

Training resets through `TrainLevels`, which skips held-out levels; evaluation plays
`level_seeds(env_id, split, n)`, seeds of distinct levels in `split`. Tuning and
checkpoint selection use "validation"; "test" is for final numbers only.

>>> seeds = level_seeds("MiniGrid-DoorKey-5x5-v0", "test", 100)
>>> len(seeds)  # 20% of the family's 48 levels
10
>>> {split_of(fingerprint(reset_level("MiniGrid-DoorKey-5x5-v0", s)), "MiniGrid-DoorKey-5x5-v0") for s in seeds}
{'test'}
"""

from __future__ import annotations

import functools
import hashlib

import gymnasium

import envs
from envs import toytext
from envs.mixture import level_env_id
from envs.seeds import MAX_EVAL_SEEDS

__all__ = [
    "SPLITS",
    "TrainLevels",
    "check_splittable",
    "count_levels",
    "fingerprint",
    "level_seeds",
    "reset_level",
    "split_of",
    "training_env",
]

SPLITS = ("train", "validation", "test")
TEST_SHARE, VALIDATION_SHARE = 0.2, 0.1
LARGE_FAMILY = 500  # an env with this many distinct levels uses the fixed shares as cuts
SATURATION = 500  # seeds in a row without a new level: the family is small and fully seen
MAX_REJECTS = 1_000  # held-out levels in a row before TrainLevels gives up


def fingerprint(env: gymnasium.Env) -> str:
    """Hex digest of the current level as the agent finds it after `reset`.

    MiniGrid: the grid, the agent and the mission. ToyText: `envs.toytext.fingerprint`.
    Another env: its own `level_fingerprint()` if it has one, else its spec id and the
    first observation's repr, hashed (a user's env can define what a level is)."""
    base = env.unwrapped
    if not hasattr(base, "grid"):
        if toytext.is_toytext(env):
            return toytext.fingerprint(env)
        if hasattr(base, "level_fingerprint"):
            return str(base.level_fingerprint())
        raise ValueError(f"{type(base).__name__} has no level_fingerprint(): give it one returning a string "
                         "that names the level just reset, or train and evaluate it with --all-levels / --split all.")
    carrying = tuple(int(v) for v in base.carrying.encode()) if base.carrying is not None else ()
    parts = (base.grid.encode().tobytes(), tuple(int(v) for v in base.agent_pos), int(base.agent_dir), carrying,
             base.mission)
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def _level_reader(env: gymnasium.Env):
    """seed -> (id of the env whose split applies, level fingerprint), by resetting `env`
    unless it knows its levels without (`envs.seed_level_of`)."""
    known = envs.seed_level_of(env)
    if known is not None:
        return known

    def read(seed: int) -> tuple[str, str]:
        env.reset(seed=seed)
        return level_env_id(env), fingerprint(env)

    return read


def reset_level(env_id: str, seed: int) -> gymnasium.Env:
    """A fresh env of `env_id`, reset with `seed`."""
    env = envs.make(env_id)
    env.reset(seed=seed)
    return env


def _unit_hash(level: str) -> float:
    return int(hashlib.sha256(("split:" + level).encode()).hexdigest()[:12], 16) / 16**12


@functools.lru_cache(maxsize=256)
def _cuts(env_id: str) -> tuple[float, float]:
    """(test cut, validation cut) on `_unit_hash` for `env_id`.

    A large family cuts at the fixed shares. A small one (SATURATION seeds in a row bring
    no new level) cuts between its own levels, so DoorKey-5x5's 48 levels split 10/5/33
    exactly rather than by chance.
    """
    env = envs.make(env_id)
    read = _level_reader(env)
    seen: set[str] = set()
    stale = 0
    for seed in range(MAX_EVAL_SEEDS):
        size = len(seen)
        seen.add(read(seed)[1])
        stale = 0 if len(seen) > size else stale + 1
        if len(seen) >= LARGE_FAMILY:
            return TEST_SHARE, TEST_SHARE + VALIDATION_SHARE
        if stale >= SATURATION:
            break
    env.close()
    points = sorted(_unit_hash(level) for level in seen)
    if len(points) < 3:
        raise ValueError(f"{env_id} has only {len(points)} distinct levels: too few to hold out test and "
                         "validation levels; evaluate it on another size of the family.")
    n_test = max(1, round(TEST_SHARE * len(points)))
    n_validation = max(1, round(VALIDATION_SHARE * len(points)))
    return points[n_test], points[n_test + n_validation]


def split_of(level: str, env_id: str) -> str:
    """The split of fingerprint `level` of `env_id`: 'test', 'validation' or 'train'."""
    test_cut, validation_cut = _cuts(env_id)
    point = _unit_hash(level)
    if point < test_cut:
        return "test"
    return "validation" if point < validation_cut else "train"


@functools.lru_cache(maxsize=64)
def _scan(env_id: str, split: str, n: int, first: int) -> tuple[int, ...]:
    env = envs.make(env_id)
    read = _level_reader(env)
    seen: set[str] = set()
    seeds: list[int] = []
    stale = 0
    for seed in range(first, MAX_EVAL_SEEDS):
        family, level = read(seed)
        if level is not None and level not in seen and (split == "all" or split_of(level, family) == split):
            seen.add(level)
            seeds.append(seed)
            stale = 0
            if len(seeds) == n:
                break
        else:
            stale += 1
            if stale >= SATURATION * 4:  # a small family: every level of this split is found
                break
    env.close()
    return tuple(seeds)


def level_seeds(env_id: str, split: str, n: int, first: int = 0) -> list[int]:
    """Up to `n` seeds (`first` up) of distinct levels of `env_id` in `split`.

    `split` is "test", "validation" or "all" (every level, held out or not: for zero-shot
    agents, or a family too small to split). Fewer come back when the family has fewer such
    levels (DoorKey-5x5 has 10 test levels); callers report how many they played. None at
    all is a ValueError.
    """
    if split not in ("validation", "test", "all"):
        raise ValueError(f"split must be 'test', 'validation' or 'all', not {split!r}: training levels come from "
                         "TrainLevels.")
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}.")
    seeds = list(_scan(env_id, split, n, first))
    if not seeds:
        raise ValueError(f"No {split} levels of {env_id} among evaluation seeds {first}..{MAX_EVAL_SEEDS - 1}: "
                         "lower --seed or --episodes.")
    return seeds


class TrainLevels(gymnasium.Wrapper):
    """Resets only into training levels: a held-out level is skipped by resetting again.

    The extra resets continue the env's own random stream, so a seed still gives the same
    level every run. `info["level"]` is the fingerprint of the level played.

    >>> env = TrainLevels(envs.make("MiniGrid-DoorKey-5x5-v0"))
    >>> obs, info = env.reset(seed=1_000_000)
    >>> split_of(info["level"], "MiniGrid-DoorKey-5x5-v0")
    'train'
    """

    def reset(self, *, seed=None, options=None):
        known = envs.seed_level_of(self.env)
        if seed is not None and known is not None:  # skip held-out games without making them
            for _ in range(MAX_REJECTS):
                family, level = known(seed)
                if level is not None and split_of(level, family) == "train":
                    break
                seed += 1
        obs, info = self.env.reset(seed=seed, options=options)
        for _ in range(MAX_REJECTS):
            level = fingerprint(self.env)
            if split_of(level, level_env_id(self.env)) == "train":
                return obs, {**info, "level": level}
            obs, info = self.env.reset(options=options)
        raise RuntimeError(f"{level_env_id(self.env)} gave {MAX_REJECTS} held-out levels in a row.")


def training_env(env_id: str, all_levels: bool = False) -> gymnasium.Env:
    """An env for training: TrainLevels over `envs.make(env_id)`, or every level with `all_levels`."""
    env = envs.make(env_id)
    return env if all_levels else TrainLevels(env)


def check_splittable(env_id: str) -> None:
    """Fail before any model loads when `env_id` has too few levels to hold some out."""
    env = envs.make(env_id)
    known = envs.seed_level_of(env)
    family, level = known(0) if known is not None else (None, None)
    try:
        if level is not None:  # generated games: the split is known without making one (minutes)
            split_of(level, family)
        else:
            TrainLevels(env).reset(seed=0)
    except ValueError as err:
        raise ValueError(f"{str(err).split(':')[0]}: train on all of them with --all-levels, and evaluate on "
                         "another env.") from None
    finally:
        env.close()


def count_levels(env_id: str, seeds: range) -> dict[str, int]:
    """Distinct levels among `seeds`, per split."""
    env = envs.make(env_id)
    read = _level_reader(env)
    found: dict[str, set[str]] = {split: set() for split in SPLITS}
    for seed in seeds:
        family, level = read(seed)
        found[split_of(level, family)].add(level)
    env.close()
    return {split: len(levels) for split, levels in found.items()}


"""Which env seeds training may use and which are held out for evaluation.

Evaluation uses seeds ``0 .. N-1``; training only ever uses seeds from ``TRAIN_SEED_BASE``
up, so no evaluated seed is ever trained on. It lives in envs/ so that training and evals
read the same policy without importing each other.

>>> eval_seeds(3)
[0, 1, 2]
>>> train_seed(env_index=2, episode=5, stream=0) > max(eval_seeds(MAX_EVAL_SEEDS))
True
"""

from __future__ import annotations

PPO_STREAM, SFT_STREAM, BASELINE_STREAM, DAGGER_STREAM = 0, 1, 2, 3  # seed streams: PPO rollouts, SFT demos, MLP baseline, DAgger learner episodes
MAX_EVAL_SEEDS = 100_000  # eval seeds are 0 .. MAX_EVAL_SEEDS-1; never used for training
TRAIN_SEED_BASE = 1_000_000  # first training seed
EPISODES_PER_ENV = 100_000  # seed block per env slot (slot = rank * num_envs + env)
MAX_ENV_SLOTS = 1_000  # env slots per stream
STREAM_STRIDE = EPISODES_PER_ENV * MAX_ENV_SLOTS  # distinct blocks for PPO rollouts and SFT demos


def eval_seeds(n: int = 100) -> list[int]:
    """The first `n` held-out evaluation seeds."""
    if not 0 < n <= MAX_EVAL_SEEDS:
        raise ValueError(f"n must be in 1..{MAX_EVAL_SEEDS}, not {n}.")
    return list(range(n))


def train_seed(env_index: int, episode: int, stream: int = 0) -> int:
    """Seed of `episode` (0, 1, ...) of env slot `env_index` in seed stream `stream`.

    Streams keep data sources apart (PPO_STREAM, SFT_STREAM, BASELINE_STREAM, DAGGER_STREAM). Env slot
    `rank * num_envs + i` gives every process its own levels.
    """
    if not 0 <= env_index < MAX_ENV_SLOTS:
        raise ValueError(f"env slot {env_index} is outside 0..{MAX_ENV_SLOTS - 1}: use fewer envs or processes.")
    if episode >= EPISODES_PER_ENV:
        raise ValueError(f"episode {episode} exceeds the per-env seed block of {EPISODES_PER_ENV}.")
    return TRAIN_SEED_BASE + stream * STREAM_STRIDE + env_index * EPISODES_PER_ENV + episode


def eval_seed_range(first: int, n: int) -> list[int]:
    """Evaluation seeds `first .. first+n-1`, as the CLIs' `--seed` and `--episodes` give them.

    >>> eval_seed_range(10, 3)
    [10, 11, 12]
    """
    if first + n > MAX_EVAL_SEEDS:
        raise ValueError(f"--seed {first} plus --episodes {n} leaves the evaluation seeds 0..{MAX_EVAL_SEEDS - 1} "
                         f"(training uses {TRAIN_SEED_BASE} and up): lower --seed or --episodes.")
    return eval_seeds(first + n)[first:]

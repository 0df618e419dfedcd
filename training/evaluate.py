"""Greedy evaluation on held-out seeds, with each distinct state scored once.

A fixed policy's greedy choice is a function of the state text, and DoorKey repeats few
texts, so a per-run cache makes 100 episodes cost a few hundred forward rows.

    python -m training.evaluate --adapter runs/NAME/final --episodes 100
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

import envs
from agent.perception import describe
from training import seeds as seed_policy
from training.cli import option, parse


@dataclass
class EvalResult:
    success_rate: float
    mean_return: float
    mean_length: float
    episodes: int
    distinct_states: int
    seconds: float


def greedy_actions(policy, state_ids: list[list[int]], cache: dict, batch_size: int = 32) -> list[int]:
    """Argmax action per state; scores only states missing from `cache` (tuple(ids) -> log-probs list)."""
    todo = list(dict.fromkeys(tuple(s) for s in state_ids if tuple(s) not in cache))
    for start in range(0, len(todo), batch_size):
        chunk = todo[start:start + batch_size]
        with torch.inference_mode():
            rows = policy.score_ids([list(c) for c in chunk]).log_probs.float().tolist()
        cache.update(zip(chunk, rows))
    # first maximum, as torch.argmax picks it
    return [max(range(len(cache[tuple(s)])), key=cache[tuple(s)].__getitem__) for s in state_ids]


def evaluate(policy, env_id: str, seeds: list[int], batch_size: int = 32, max_steps: int | None = None,
             use_shield: bool = False) -> EvalResult:
    """Play one greedy episode per seed (all in lockstep); success = positive final reward.

    With `use_shield`, a step into lava is replaced by the most probable safe action
    (`agent.episodes.shield`), as in training with --shield.
    """
    from agent.episodes import Decision, shield

    began = time.perf_counter()
    env_list = [envs.make(env_id) for _ in seeds]
    obs = [env.reset(seed=s)[0] for env, s in zip(env_list, seeds)]
    limit = max_steps or env_list[0].unwrapped.max_steps
    returns, lengths, successes = [0.0] * len(seeds), [0] * len(seeds), [False] * len(seeds)
    cache: dict = {}
    ids_of_text: dict[str, list[int]] = {}
    live = list(range(len(seeds)))
    for _ in range(limit):
        if not live:
            break
        texts = [describe(obs[i]) for i in live]
        ids = [ids_of_text[t] if t in ids_of_text else ids_of_text.setdefault(t, policy.state_ids(t)) for t in texts]
        actions = greedy_actions(policy, ids, cache, batch_size)
        still = []
        for i, action, state in zip(live, actions, ids):
            if use_shield:
                action, _ = shield(obs[i], Decision(action, probs=cache[tuple(state)]))
            obs[i], reward, terminated, truncated, _ = env_list[i].step(action)
            returns[i] += float(reward)
            lengths[i] += 1
            if terminated:
                successes[i] = reward > 0
            if not (terminated or truncated):
                still.append(i)
        live = still
    for env in env_list:
        env.close()
    n = len(seeds)
    return EvalResult(sum(successes) / n, sum(returns) / n, sum(lengths) / n, n, len(cache), time.perf_counter() - began)


@dataclass
class EvalConfig:
    env: str = option("MiniGrid-DoorKey-5x5-v0", "Gymnasium id or short family name")
    model: str = option("smollm2-135m", "base model: smollm2-135m, tiny-random or a Hugging Face folder")
    adapter: str | None = option(None, "LoRA adapter folder (e.g. runs/NAME/final); none = the base model")
    episodes: int = option(100, "held-out eval seeds 0..episodes-1 (training never uses them)")
    batch_size: int = option(32, "distinct states scored per forward pass")
    threads: int = option(0, "torch CPU threads (0 = all cores)")

    def __post_init__(self):
        if not 1 <= self.episodes <= seed_policy.MAX_EVAL_SEEDS:
            raise ValueError(f"--episodes must be 1..{seed_policy.MAX_EVAL_SEEDS}, not {self.episodes}.")
        if self.batch_size < 1:
            raise ValueError("--batch-size must be at least 1.")
        try:
            envs.resolve_env_id(self.env)
        except envs.UnknownEnvError as err:
            raise ValueError(str(err)) from None


def main(argv=None) -> EvalResult:
    import json

    from agent.models import ModelError
    from agent.policy import load_policy
    from training.cli import fail

    config = parse(EvalConfig, argv, prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        policy = load_policy(config.model, config.adapter, device="cpu")
    except ModelError as err:
        fail(str(err))
    result = evaluate(policy, envs.resolve_env_id(config.env), seed_policy.eval_seeds(config.episodes), config.batch_size)
    print(json.dumps({"env": envs.resolve_env_id(config.env), "adapter": config.adapter, **result.__dict__}))
    return result


if __name__ == "__main__":
    main()

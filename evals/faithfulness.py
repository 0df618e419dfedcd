"""Are the explanations faithful? Removing the top-attributed part should change the action
more often than removing a random part.

    python -m evals.faithfulness --adapter adapters/doorkey-5x5 --envs DoorKey-5x5,DoorKey-8x8 --episodes 50

The agent plays greedily on held-out levels (`--split`, test by default); every distinct
(state, action) it meets is explained once (`agent.explain`, occlusion). Per state:
`top` = 1 if leaving out the part with the largest weight changes the greedy action;
`random` = the share of parts whose removal changes it (the expected value of removing
one part drawn at random). Ratio = sum(top) / sum(random), with a 95% bootstrap interval
over states. States with one part only are skipped. Also prints the cost per explanation.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

import numpy as np

from agent.cli import (DEFAULT_MODEL, DEVICE_DOC, MODEL_DOC, SPLIT_DOC, SPLITS, THREADS_DOC, check_device,
                       check_range, check_seed_and_threads, option, parse_and_run, require)
from agent.episodes import LMAgent, play
from agent.explain import Explanation, ExplainingAgent
from agent.policy import load_policy
from envs.levels import level_seeds
from evals.benchmark import parse_envs


def state_scores(explanation: Explanation) -> tuple[int, float] | None:
    """(top changes the action, share of parts that change it); None with fewer than 2 parts."""
    changed = {part: action != explanation.action for part, action in explanation.argmax_without.items()}
    if len(changed) < 2:
        return None
    top = explanation.top(1)[0][0]
    return int(changed[top]), sum(changed.values()) / len(changed)


def faithfulness(explanations: list[Explanation], resamples: int = 2000, seed: int = 0) -> dict:
    """Ratio of action changes (top part removed / random part removed) and its bootstrap 95% CI."""
    scored = [s for s in map(state_scores, explanations) if s is not None]
    if not scored:
        raise ValueError("No state with two or more parts to compare: play more episodes.")
    top, rand = (np.array(column, dtype=float) for column in zip(*scored))
    rng = np.random.default_rng(seed)
    picks = rng.integers(len(scored), size=(resamples, len(scored)))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = top[picks].sum(1) / rand[picks].sum(1)
        ratio = top.sum() / rand.sum() if rand.sum() else float("inf")
    low, high = np.nanpercentile(ratios, [2.5, 97.5])
    return {"states": len(scored), "p_change_top": float(top.mean()), "p_change_random": float(rand.mean()),
            "ratio": float(ratio), "ratio_ci95": [float(low), float(high)]}


@dataclass
class FaithfulnessConfig:
    adapter: str | None = option(None, "LoRA adapter folder (e.g. adapters/doorkey-5x5); none = the base model")
    envs: str = option("MiniGrid-DoorKey-5x5-v0,MiniGrid-DoorKey-8x8-v0", "comma-separated envs to collect states on")
    episodes: int = option(50, "distinct levels per env (fewer where the family has fewer)")
    split: str = option("test", SPLIT_DOC, choices=SPLITS)
    seed: int = option(0, "first evaluation seed scanned for levels; also seeds the bootstrap")
    max_steps: int | None = option(None, "step cap per episode (default: the env's)")
    model: str = option(DEFAULT_MODEL, MODEL_DOC)
    device: str | None = option(None, DEVICE_DOC)
    threads: int = option(0, THREADS_DOC)
    env_ids: list[str] = field(init=False, repr=False)

    def __post_init__(self):
        check_seed_and_threads(self.seed, self.threads)
        check_range("--episodes", self.episodes, 1)
        check_device(self.device)
        if self.max_steps is not None:
            check_range("--max-steps", self.max_steps, 1)
        self.env_ids = parse_envs(self.envs)
        for env_id in self.env_ids:
            require(env_id, "has_claims", "evals.faithfulness")


def run(config: FaithfulnessConfig) -> dict:
    policy = load_policy(config.model, config.adapter, device=config.device)
    explainer = ExplainingAgent(LMAgent(policy), policy)
    for env_id in config.env_ids:
        seeds = level_seeds(env_id, config.split, config.episodes, config.seed)
        play(explainer, env_id, seeds, max_steps=config.max_steps, batch=8)
        print(f"{env_id}: {len(seeds)} levels, {len(explainer.explanations)} states explained so far", flush=True)
    explanations = list(explainer.explanations.values())
    result = {"adapter": config.adapter, "envs": config.env_ids, "split": config.split,
              **faithfulness(explanations, seed=config.seed),
              "seconds_per_explanation": sum(e.seconds for e in explanations) / len(explanations),
              "parts_per_state": sum(len(e.weights) for e in explanations) / len(explanations)}
    print(f"removing the top part changes the action in {result['p_change_top']:.2f} of {result['states']} states, "
          f"a random part in {result['p_change_random']:.2f}: ratio {result['ratio']:.2f} "
          f"[{result['ratio_ci95'][0]:.2f}, {result['ratio_ci95'][1]:.2f}]; "
          f"{result['seconds_per_explanation']:.3f} s per explanation")
    print(json.dumps(result))
    return result


def main(argv=None) -> dict:
    return parse_and_run(FaithfulnessConfig, run, argv, "python -m evals.faithfulness", __doc__.split("\n\n")[0])


if __name__ == "__main__":
    main()
    sys.exit(0)

"""Greedy success on held-out levels, through the one episode loop (`agent.episodes.play`).

Each level is played once: test levels by default (`--split validation` for tuning and
checkpoint choice; envs/levels.py). A fixed policy's greedy choice is a function of the
state text, so the agent's `CachedScorer` scores each distinct text once.

    python -m training.evaluate --adapter runs/NAME/final --episodes 100
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from agent.cli import SPLIT_DOC, SPLITS, LMConfig, check_range, option, parse_and_run, require, switch, system_prompt
from agent.episodes import LMAgent, play, success_by_task
from agent.policy import load_policy
from agent.scoring import CachedScorer
from envs.levels import level_seeds


@dataclass
class EvalResult:
    success_rate: float
    mean_return: float
    mean_length: float
    episodes: int
    distinct_states: int  # distinct observation texts visited
    seconds: float
    success_by_task: dict[str, float]  # per task of a mixture; {} for one task


def evaluate(agent, env_id: str, seeds: list[int], max_steps: int | None = None,
             use_shield: bool = False) -> EvalResult:
    """Play one episode per seed, all in lockstep, with `agent` (an LM or any other agent).

    With `use_shield`, a step into lava is replaced by the most probable safe action, as in
    training with --shield.
    """
    began = time.perf_counter()
    episodes = play(agent, env_id, seeds, max_steps=max_steps, batch=len(seeds), use_shield=use_shield)
    n = len(episodes)
    tally = success_by_task(episodes)
    by_task = {task: wins / total for task, (wins, total) in tally.items()} if len(tally) > 1 else {}
    return EvalResult(sum(e.success for e in episodes) / n, sum(e.total_return for e in episodes) / n,
                      sum(len(e.steps) for e in episodes) / n, n,
                      len({s.observation for e in episodes for s in e.steps}), time.perf_counter() - began, by_task)


def validation_seeds(env_id: str, n: int, all_levels: bool = False) -> list[int]:
    """Seeds of up to `n` validation levels, for evaluation during training (any levels with `all_levels`)."""
    return level_seeds(env_id, "all" if all_levels else "validation", n)


def greedy_agent(policy, batch: int = 32, mode: str = "score") -> LMAgent:
    """Greedy LM agent whose scorer runs `batch` distinct states per forward pass; generate
    mode writes a reason before the action (the format `training/sft.py --mode generate` trains)."""
    return LMAgent(policy, mode=mode, reason=mode == "generate", scorer=CachedScorer(policy, batch_size=batch))


@dataclass
class EvalConfig(LMConfig):
    adapter: str | None = option(None, "LoRA adapter folder (e.g. runs/NAME/final); none = the base model")
    episodes: int = option(100, "distinct levels to play (fewer where the family has fewer)")
    split: str = option("test", SPLIT_DOC, choices=SPLITS)
    seeds: list[int] = field(init=False, repr=False)  # of the levels played, from --split, --episodes, --seed
    batch: int = option(32, "states per forward pass")
    mode: str = option("score", "score: rank the 7 action phrases; generate: write 'Reason: ...' then "
                                "'Action: ...' and parse it (an invalid answer plays score mode's choice)",
                       choices=("score", "generate"))
    max_steps: int | None = option(None, "step cap per episode (default: the env's)")
    shield: bool = switch("block actions that step into lava; take the most probable safe one")

    def __post_init__(self):
        super().__post_init__()
        check_range("--episodes", self.episodes, 1)
        check_range("--batch", self.batch, 1)
        if self.max_steps is not None:
            check_range("--max-steps", self.max_steps, 1)
        if self.shield:
            require(self.env, "has_hazards", "--shield")
        self.seeds = level_seeds(self.env, self.split, self.episodes, self.seed)


def evaluate_cli(config: EvalConfig) -> EvalResult:
    policy = load_policy(config.model, config.adapter, device=config.device, system=system_prompt(config.env))
    result = evaluate(greedy_agent(policy, config.batch, config.mode), config.env, config.seeds, config.max_steps,
                      config.shield)
    print(json.dumps({"env": config.env, "adapter": config.adapter, "mode": config.mode, "split": config.split,
                      **result.__dict__}))
    return result


def main(argv=None) -> EvalResult:
    return parse_and_run(EvalConfig, evaluate_cli, argv, "python -m training.evaluate", __doc__.split("\n\n")[0])


if __name__ == "__main__":
    main()

"""Rollouts for PPO: a pool of envs on training seeds, scored through `CachedScorer`.

PPO needs per-step log-probs and values, so the pool steps its own envs; what a step
means (success, death, the shield) comes from `agent.episodes`, as for every other loop.
Each env slot plays consecutive training seeds (`envs.seeds.train_seed`). Its whole
state is (episodes started, actions taken in the current episode), so a checkpoint
stores those and `EnvPool.restore` rebuilds the envs by replaying the actions: MiniGrid
is deterministic given the reset seed, so the resumed envs are exactly where they were.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import torch

from agent.adapters import adapter_for
from agent.episodes import Decision, shield, take_step
from agent.scoring import CachedScorer
from envs import seeds as seed_policy
from envs.levels import training_env
from envs.mixture import task_of


@dataclass
class Slot:
    """One env slot: the env and what is needed to rebuild it."""

    index: int  # global slot number (rank * num_envs + i): picks its seed block
    env: object = None
    obs: object = None
    episode: int = -1  # episodes started so far, minus one
    actions: list[int] = field(default_factory=list)  # taken in the current episode
    ep_return: float = 0.0

    @property
    def seed(self) -> int:
        return seed_policy.train_seed(self.index, self.episode, seed_policy.PPO_STREAM)


@dataclass
class Finished:
    """A finished training episode (for logging)."""

    seed: int
    episode_return: float
    length: int
    success: bool
    died: bool = False  # ended by stepping into a hazard (lava)
    task: str = ""  # the task played (envs.mixture.task_of)


class EnvPool:
    """`num_envs` envs stepped in lockstep; a finished or crashed episode restarts on the next seed."""

    def __init__(self, env_id: str, slot_indices: list[int], all_levels: bool = False):
        self.env_id = env_id
        self.all_levels = all_levels  # else held-out levels are skipped (envs.levels.TrainLevels)
        self.slots = [Slot(i) for i in slot_indices]
        self.errors = 0  # env exceptions survived so far
        for slot in self.slots:
            self._next_episode(slot)

    def _next_episode(self, slot: Slot) -> None:
        if slot.env is None:
            slot.env = training_env(self.env_id, self.all_levels)
        slot.episode += 1
        slot.actions, slot.ep_return = [], 0.0
        slot.obs, _ = slot.env.reset(seed=slot.seed)

    def texts(self) -> list[str]:
        return [adapter_for(slot.env).describe(slot.obs, slot.env) for slot in self.slots]

    def step(self, actions: list[int]) -> tuple[list[float], list[bool], list[Finished]]:
        """Step every env; returns rewards, done flags (episode ended after this step), finished episodes."""
        rewards, dones, finished = [], [], []
        for slot, action in zip(self.slots, actions):
            try:
                outcome = take_step(slot.env, slot.obs, int(action))
            except Exception as err:  # one broken env must not kill a long run
                self.errors += 1
                print(f"warning: env slot {slot.index} (seed {slot.seed}) raised {type(err).__name__}: {err}; "
                      f"resetting it to the next seed", file=sys.stderr, flush=True)
                slot.env = None
                self._next_episode(slot)
                rewards.append(0.0)
                dones.append(True)
                continue
            slot.obs = outcome.obs
            slot.actions.append(int(action))
            slot.ep_return += outcome.reward
            if outcome.done:
                finished.append(Finished(slot.seed, slot.ep_return, len(slot.actions), outcome.success, outcome.died,
                                         task_of(slot.env)))
                self._next_episode(slot)
            rewards.append(outcome.reward)
            dones.append(outcome.done)
        return rewards, dones, finished

    def state(self) -> list[dict]:
        return [{"index": s.index, "episode": s.episode, "actions": list(s.actions)} for s in self.slots]

    def restore(self, state: list[dict]) -> None:
        """Rebuild every env from (seed, actions): reset with the episode's seed and replay."""
        if [s["index"] for s in state] != [s.index for s in self.slots]:
            raise ValueError("checkpoint env slots differ from this run's: resume with the same --num-envs and process count.")
        for slot, saved in zip(self.slots, state):
            slot.episode = saved["episode"] - 1
            self._next_episode(slot)
            adapter = adapter_for(slot.env)
            for action in saved["actions"]:
                slot.obs, reward, *_ = slot.env.step(adapter.env_action(action, slot.obs, slot.env))
                slot.actions.append(action)
                slot.ep_return += float(reward)


@dataclass
class Rollout:
    """T x N arrays of one rollout, plus the bootstrap value of the state after it."""

    states: list[list[tuple[int, ...]]]  # T lists of N state id tuples
    actions: torch.Tensor  # T x N
    log_probs: torch.Tensor  # T x N, of the taken actions
    values: torch.Tensor  # T x N
    rewards: torch.Tensor  # T x N
    dones: torch.Tensor  # T x N: the episode ended after this step
    next_value: torch.Tensor  # N
    finished: list[Finished]
    scored_states: int  # distinct states scored (cache misses)
    shield_blocks: int = 0  # sampled actions the shield replaced


def shield_actions(pool: EnvPool, actions: torch.Tensor, log_probs: torch.Tensor) -> tuple[list[int], int]:
    """Replace each action that steps into lava by the env's most probable safe action
    (`agent.episodes.shield`); returns the actions to execute and how many were blocked."""
    executed, blocked = [], 0
    for slot, action, row in zip(pool.slots, actions.tolist(), log_probs.tolist()):
        safe, was_blocked = shield(slot.obs, Decision(action, probs=row), adapter_for(slot.env))  # log-probs rank like probs
        executed.append(safe)
        blocked += was_blocked
    return executed, blocked


def collect(pool: EnvPool, scorer: CachedScorer, num_steps: int, generator: torch.Generator,
            use_shield: bool = False) -> Rollout:
    """Play `num_steps` lockstep steps, sampling actions from the policy's phrase distribution.

    With `use_shield` the shield is part of the environment: the sampled action and its
    log-prob are what PPO trains on (so the ratio stays exact), while the env executes the
    safe substitute, and the pool records the executed actions (so resume replays them).
    """
    states, actions, log_probs, values, rewards, dones, finished = [], [], [], [], [], [], []
    misses_before = scorer.computed
    blocks = 0
    for _ in range(num_steps):
        keys = [scorer.ids(t) for t in pool.texts()]
        choice = scorer.choose_keys(keys, greedy=False, generator=generator)
        action, step_log_probs, step_values = choice.actions, choice.log_probs, choice.values
        executed, blocked = shield_actions(pool, action, step_log_probs) if use_shield else (action.tolist(), 0)
        blocks += blocked
        reward, done, ended = pool.step(executed)
        states.append(keys)
        actions.append(action)
        log_probs.append(step_log_probs.gather(1, action[:, None]).squeeze(1))
        values.append(step_values)
        rewards.append(torch.tensor(reward))
        dones.append(torch.tensor(done, dtype=torch.float32))
        finished.extend(ended)
    _, next_value, _ = scorer.score_keys([scorer.ids(t) for t in pool.texts()])
    return Rollout(states, torch.stack(actions), torch.stack(log_probs), torch.stack(values), torch.stack(rewards),
                   torch.stack(dones), next_value, finished, scorer.computed - misses_before, blocks)

"""Several envs as one: a task drawn per episode, so one run trains or tests on all of them.

`envs.make("A+B")` gives a TaskMixture over A and B; the BabyAI-Text mixtures are
registered ones. `task_of(env)` names the task being played (for per-task logs).

>>> import envs
>>> env = envs.make("MiniGrid-DoorKey-5x5-v0+MiniGrid-DoorKey-6x6-v0")
>>> sorted({task_of(env) for seed in range(20) if env.reset(seed=seed)})
['MiniGrid-DoorKey-5x5-v0', 'MiniGrid-DoorKey-6x6-v0']
"""

from __future__ import annotations

import string

import gymnasium
import numpy as np

__all__ = ["TaskMixture", "level_env_id", "task_of"]


class TaskMixture(gymnasium.Wrapper):
    """A task drawn uniformly per episode (from the reset seed), then that task's level.

    Reset with seed s plays the level the drawn task's own env gives for s; resets without a
    seed continue from it deterministically. `unwrapped`
    is the task being played, so perception, the expert and fingerprints see a plain env.
    """

    def __init__(self, tasks: dict[str, gymnasium.Env], spec=None):
        self.tasks = tasks
        self.names = list(tasks)
        super().__init__(tasks[self.names[0]])
        # One action space for all tasks, so seeding it (envs.make does) survives task switches.
        self.action_space = self.env.action_space
        self.observation_space = _union_space([task.observation_space for task in tasks.values()])
        self._spec = spec
        self._rng = np.random.default_rng()

    @property
    def spec(self):
        return self._spec

    @property
    def seed_level(self):
        """seed -> (env id, level) without resetting, when every task knows its levels so
        (`envs.textworld`); else None."""
        known = {}
        for name, task in self.tasks.items():
            try:
                known[name] = task.get_wrapper_attr("seed_level")
            except AttributeError:
                return None
            if known[name] is None:
                return None

        def level(seed: int) -> tuple[str, str]:
            return known[self.names[int(np.random.default_rng(seed).integers(len(self.names)))]](seed)

        return level

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.env = self.tasks[self.names[int(self._rng.integers(len(self.names)))]]
        if seed is None:  # the task drawn may never have been seeded: seed it from the mixture's stream
            seed = int(self._rng.integers(2**31))
        return self.env.reset(seed=seed, options=options)


def _union_space(spaces):
    """One observation space for every task: the first task's, with a text mission space
    when the tasks' missions differ (each MiniGrid env's MissionSpace holds its own missions only)."""
    first = spaces[0]
    if all(space == first for space in spaces) or not isinstance(first, gymnasium.spaces.Dict):
        return first
    return gymnasium.spaces.Dict({**first.spaces, "mission": gymnasium.spaces.Text(
        max_length=1_000, charset=string.printable)})


def task_of(env: gymnasium.Env) -> str:
    """The task of the episode being played: a BabyAI-Text kind ("goto") or an env id."""
    base = env.unwrapped
    return getattr(base, "task", None) or base.spec.id


def level_env_id(env: gymnasium.Env) -> str:
    """Id of the single env whose levels are being played (the one its level split is cut for)."""
    base = env.unwrapped
    return getattr(base, "level_id", None) or base.spec.id

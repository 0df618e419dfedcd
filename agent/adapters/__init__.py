"""Env adapters: how the agent meets one family of Gymnasium envs.

An adapter says what an observation says (text), which actions exist in this state
(phrases: a fixed list or a per-step one) and what `env.step` takes for the chosen one;
where the family has them, also an expert for demonstrations, hazards for the shield, and
whether the benchmark's grounded-claim checks can read its texts. Level fingerprints live
with the envs (`envs.levels.fingerprint`).

`adapter_for(env)` finds the adapter from the unwrapped env: the newest registration that
matches wins, so a user's own adapter overrides a built-in one. Built in: MiniGrid and
BabyAI (any `MiniGridEnv` subclass, a user's too), Gymnasium's ToyText and TextWorld.

A user's env, in about 30 lines (docs/ENVS.md has the whole example):

>>> import gymnasium
>>> class Corridor(gymnasium.Env):
...     observation_space, action_space = gymnasium.spaces.Discrete(5), gymnasium.spaces.Discrete(2)
...     def reset(self, *, seed=None, options=None):
...         super().reset(seed=seed)
...         self.at = 0
...         return self.at, {}
...     def step(self, action):
...         self.at = max(0, self.at + (1 if action == 1 else -1))
...         return self.at, float(self.at == 4), self.at == 4, False, {}
>>> class CorridorAdapter(EnvAdapter):
...     name = "corridor"
...     def describe(self, obs, env):
...         return f"Mission: reach the door. The door is {4 - obs} steps east."
...     def actions(self, obs, env):
...         return ("go west", "go east")
>>> register_adapter(Corridor, CorridorAdapter())
>>> adapter = adapter_for(Corridor())
>>> adapter.describe(1, None), adapter.actions(1, None)
('Mission: reach the door. The door is 3 steps east.', ('go west', 'go east'))
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium

__all__ = ["EnvAdapter", "NoAdapterError", "adapter_for", "register_adapter"]


class NoAdapterError(ValueError):
    """An env no registered adapter matches."""


class EnvAdapter:
    """What the agent needs of an env family. Subclasses give `describe` and `actions`;
    the rest has defaults that fit most envs.

    Optional parts, each off unless a subclass gives it: `expert` (behaviour cloning, the
    benchmark's expert agent), `enters_hazard` (the shield; set `has_hazards`), the
    grounded-claim checks (`has_claims`: texts in `agent.perception`'s format), the object
    memory (`has_memory`: a MiniGrid grid).
    """

    name = "env"
    has_expert = False
    has_hazards = False
    has_claims = False
    has_memory = False

    def describe(self, obs, env: gymnasium.Env) -> str:
        """The text the LM reads for observation `obs` of `env`."""
        raise NotImplementedError

    def actions(self, obs, env: gymnasium.Env) -> tuple[str, ...]:
        """The phrases the agent may choose from in this state; index i is action i."""
        raise NotImplementedError

    def system_prompt(self, env: gymnasium.Env) -> str | None:
        """The system part of the LM's prompt for this family (None: MiniGrid's,
        `agent.prompts.SCORE_SYSTEM`). Generate mode adds its answer format to it."""
        return GENERIC_SYSTEM

    def fixed_actions(self, env: gymnasium.Env) -> tuple[str, ...] | None:
        """The phrases when every state of `env` has the same ones (PPO trains on those), else None."""
        return None

    def env_action(self, index: int, obs, env: gymnasium.Env):
        """What `env.step` takes for phrase `index` of `actions(obs, env)` (default: the index)."""
        return index

    def text_action(self, text: str, obs, env: gymnasium.Env):
        """What `env.step` takes for generate-mode text that names none of the state's
        phrases, for families whose env reads typed text (TextWorld: the command as
        written, which the game may refuse, costing the turn as in BALROG); None (the
        default): the env takes only its phrases, and the most likely one is executed."""
        return None

    def expert(self, env: gymnasium.Env, last_action: int | None = None) -> int:
        """The expert's phrase index in the current state (`last_action`: what was executed
        since the last call, for experts that keep a plan)."""
        raise NotImplementedError(f"The {self.name} adapter has no expert.")

    def enters_hazard(self, obs, action: int) -> bool:
        """Whether phrase `action` in state `obs` steps into a hazard (the shield blocks it)."""
        return False

    def view(self, obs) -> dict:
        """What a step records of a grid view (front cell, held object) for the benchmark's
        MiniGrid metrics; other families record nothing."""
        return {"front": "", "front_state": None, "carrying": False, "front_color": None, "held": None}

    def success(self, env: gymnasium.Env, reward: float, terminated: bool, info: dict) -> bool:
        """Whether the step that ended an episode reached the goal (default: a positive reward)."""
        return bool(terminated and reward > 0)

    def progress(self, env: gymnasium.Env, info: dict) -> float | None:
        """How far the episode got, in [0, 1], for families that grade partial success
        (TextWorld: BALROG's score / max_score, 1 when won); None: success only."""
        return None

    def died(self, obs, action: int, terminated: bool, success: bool) -> bool:
        """Whether the step from `obs` with `action` ended the episode in a hazard."""
        return bool(terminated and self.enters_hazard(obs, action))


GENERIC_SYSTEM = ("You control an agent. Each turn you get the mission and what you observe. "
                  "Reply with one of the actions you can take.")

_ADAPTERS: list[tuple[Callable[[gymnasium.Env], bool], EnvAdapter]] = []


def register_adapter(match: type | Callable[[gymnasium.Env], bool], adapter: EnvAdapter) -> None:
    """Use `adapter` for envs whose unwrapped env is an instance of class `match`, or for
    which the predicate `match(unwrapped env)` is true. Later registrations win."""
    test = (lambda base: isinstance(base, match)) if isinstance(match, type) else match
    _ADAPTERS.insert(0, (test, adapter))


def adapter_for(env: gymnasium.Env) -> EnvAdapter:
    """The adapter of `env` (wrapped or not); NoAdapterError says how to write one."""
    _builtins()
    base = env.unwrapped
    for test, adapter in _ADAPTERS:
        if test(base):
            return adapter
    raise NoAdapterError(
        f"No adapter for {type(base).__name__}: subclass agent.adapters.EnvAdapter (describe and actions) and "
        "call register_adapter(YourEnvClass, YourAdapter()) in the module that registers the env "
        "(docs/ENVS.md shows one in 30 lines).")


_LOADED = False


def _builtins() -> None:
    """Register the built-in adapters once, below any a user registers."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    from agent.adapters import minigrid, textworld, toytext

    _ADAPTERS.append((minigrid.matches, minigrid.MiniGridAdapter()))
    _ADAPTERS.append((toytext.matches, toytext.ToyTextAdapter()))
    _ADAPTERS.append((textworld.matches, textworld.TextWorldAdapter()))

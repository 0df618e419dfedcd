"""Gymnasium's ToyText envs (FrozenLake, Taxi, CliffWalking): an exact expert and their levels.

The expert is value iteration over the env's own transition table (`env.unwrapped.P`),
so it is optimal for the dynamics the agent plays, slippery ice included. Its policy is
computed once per transition table and kept.

A level is where an episode starts. In a slippery env the reset seed also decides every
slip of the episode, so there the seed is part of the level (`fingerprint`): seeds, not
start cells, are what a held-out split holds out. Taxi (300 starts) and the deterministic
envs split by start.

>>> import envs
>>> env = envs.make("FrozenLake-v1", seed=0)
>>> obs, _ = env.reset(seed=0)
>>> expert_action(env)  # "left" is safe from the start: the ice cannot slide you into a hole
0
"""

from __future__ import annotations

import functools
import hashlib

import gymnasium
import numpy as np

__all__ = ["IDS", "expert_action", "fingerprint", "is_toytext", "is_stochastic", "success"]

IDS = ("FrozenLake-v1", "FrozenLake8x8-v1", "Taxi-v4", "CliffWalking-v1", "CliffWalkingSlippery-v1")
# CliffWalking registers no step limit; an agent walking in circles would never end (the
# optimal path takes 13 steps). `envs.make` adds these.
STEP_LIMITS = {"CliffWalking-v1": 200, "CliffWalkingSlippery-v1": 200}
GAMMA = 0.999  # near 1: maximise the chance of reaching the goal, as the success rate counts it
_SWEEPS = 5_000


def is_toytext(env: gymnasium.Env) -> bool:
    """Whether `env` is a tabular ToyText env (a transition table P and a discrete state s)."""
    base = env.unwrapped
    return hasattr(base, "P") and isinstance(base.observation_space, gymnasium.spaces.Discrete)


def _table(base) -> tuple:
    """The transition table as a hashable key: (state, action) -> ((p, next, reward, done), ...)."""
    return tuple(tuple(tuple((float(p), int(n), float(r), bool(d)) for p, n, r, d in base.P[s][a])
                       for a in sorted(base.P[s])) for s in sorted(base.P))


@functools.lru_cache(maxsize=16)
def _policy(table: tuple) -> tuple[int, ...]:
    n_states, n_actions = len(table), len(table[0])
    probs = np.zeros((n_states, n_actions, n_states))
    rewards = np.zeros((n_states, n_actions))
    ends = np.zeros((n_states, n_actions, n_states))
    for s, row in enumerate(table):
        for a, outcomes in enumerate(row):
            for p, nxt, r, done in outcomes:
                probs[s, a, nxt] += p
                rewards[s, a] += p * r
                ends[s, a, nxt] += p * done
    values = np.zeros(n_states)
    for _ in range(_SWEEPS):
        q = rewards + GAMMA * ((probs - ends) @ values)  # no value after a terminal transition
        new = q.max(1)
        if np.abs(new - values).max() < 1e-10:
            break
        values = new
    q = rewards + GAMMA * ((probs - ends) @ values)
    return tuple(int(a) for a in np.argmax(np.round(q, 9), 1))  # rounding: ties go to the lowest action


def expert_action(env: gymnasium.Env, last_action: int | None = None) -> int:
    """The value-iteration expert's action in the current state (`last_action` is unused:
    the expert is a function of the state)."""
    base = env.unwrapped
    return _policy(_table(base))[int(base.s)]


@functools.lru_cache(maxsize=16)
def _stochastic(table: tuple) -> bool:
    return any(len(outcomes) > 1 for row in table for outcomes in row)


def is_stochastic(env: gymnasium.Env) -> bool:
    """Whether an action can lead to more than one next state (slippery ice)."""
    return _stochastic(_table(env.unwrapped))


def fingerprint(env: gymnasium.Env) -> str:
    """The level just reset: the env, its start state and map, and in a stochastic env the
    state of its random generator (which decides the episode's slips)."""
    base = env.unwrapped
    parts = [base.spec.id if base.spec else type(base).__name__, int(base.s),
             np.asarray(getattr(base, "desc", [])).tobytes()]
    if is_stochastic(env):
        parts.append(repr(base.np_random.bit_generator.state))
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def success(env: gymnasium.Env, reward: float, terminated: bool) -> bool:
    """Reached the goal: FrozenLake pays 1 there, Taxi 20 for the drop-off, CliffWalking
    ends only at the goal (its cliff sends you back to the start)."""
    if not terminated:
        return False
    if type(env.unwrapped).__name__.startswith("CliffWalking"):
        return True
    return reward > 0

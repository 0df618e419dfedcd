"""Perception adapter: a MiniGrid/BabyAI observation -> percepts -> short English text.

Reads only ``obs["image"]`` (the agent-centric ``n x n x 3`` encoding of OBJECT_IDX,
COLOR_IDX, STATE, indexed ``image[x, y]``) and ``obs["mission"]``, so it works for every
upstream MiniGrid/BabyAI env, multi-room ones included, and for any ``agent_view_size``.
In that image the agent sits at ``(n // 2, n - 1)`` facing decreasing ``y``; a cell at
``(x, y)`` is ``forward = n - 1 - y`` cells ahead and ``right = x - n // 2`` cells to the
right (negative: left). The agent's own cell holds what it carries (minigrid's ``gen_obs``
puts the carried object there), so it is reported by :func:`carrying`, never as a percept.
Unseen and empty cells are skipped.

Text format of :func:`describe` (one line, kept short because it is the bulk of the
prompt of a small LM)::

    Mission: <mission>. You see: <name> <pos>[, <pos>...]; <name> <pos>... In front: <thing>. Holding: <thing>.

- ``<name>`` is ``[state] [color] kind``: state only for doors (open/closed/locked);
  the color is left out where it is the kind's fixed default (green goal, red lava,
  grey wall), so ``goal`` means the green goal and ``lava`` is lava.
- ``<pos>`` is ``<f> forward <k> left|right`` with zero parts left out: ``2 forward``,
  ``1 left``, ``3 forward 2 right``. Objects with the same name share one entry and list
  their positions nearest first, separated by commas; entries are separated by ``;`` and
  follow :func:`perceive`'s order of their nearest object (distance
  ``|forward| + |right|``, then kind, color, state).
- Walls are not listed; a wall directly in front shows up as ``In front: a wall``
  (lava as ``In front: lava``, other objects with ``a``).
  ``In front`` is ``empty floor`` when the cell ahead is free. ``You see: nothing`` when
  no object is visible; ``Holding: nothing`` when the agent carries nothing.
- With an object memory (``envs.memory.ObjectMemory``: any env id or name + ``Memory``)
  two parts follow: ``Remembered: <name> <pos>...`` (objects seen earlier and out of view
  now, in the same format; ``<f> back`` for cells behind; left out when there are none)
  and ``Last action: <phrase>`` (``none`` at the start). The ``Explore`` twins (name +
  ``Explore``) also say ``Unexplored: <pos>.`` before the last action: the nearest cell the
  agent has never seen.

>>> import gymnasium as gym, minigrid
>>> env = gym.make("MiniGrid-DoorKey-5x5-v0")
>>> obs, _ = env.reset(seed=0)
>>> obs, *_ = env.step(env.unwrapped.actions.right)
>>> describe(obs)
'Mission: use the key to open the door and then get to the goal. You see: yellow key 1 forward; locked yellow door 2 forward 1 right. In front: a yellow key. Holding: nothing.'
>>> perceive(obs)
[Percept(kind='key', color='yellow', state=None, forward=1, right=0), Percept(kind='door', color='yellow', state='locked', forward=2, right=1)]
>>> obs, *_ = env.step(env.unwrapped.actions.pickup)
>>> describe(obs)
'Mission: use the key to open the door and then get to the goal. You see: locked yellow door 2 forward 1 right. In front: empty floor. Holding: yellow key.'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from minigrid.core.constants import IDX_TO_COLOR, IDX_TO_OBJECT, STATE_TO_IDX

from agent.actions import ACTION_PHRASES

IDX_TO_STATE = {idx: name for name, idx in STATE_TO_IDX.items()}

# Kinds whose color is fixed in practice; naming it would only cost tokens.
DEFAULT_COLORS = {"goal": "green", "lava": "red", "wall": "grey"}

_SKIPPED_KINDS = ("unseen", "empty")


@dataclass(frozen=True)
class Percept:
    """One visible object, in the agent's frame (forward = cells ahead, right = cells right)."""

    kind: str
    color: str | None
    state: str | None
    forward: int
    right: int

    @property
    def distance(self) -> int:
        return abs(self.forward) + abs(self.right)


def _image(obs: Mapping) -> np.ndarray:
    if not isinstance(obs, Mapping) or "image" not in obs:
        raise TypeError(
            "perception expects a MiniGrid observation dict with an 'image' entry; "
            "pass the obs returned by env.reset()/env.step(), not a wrapped or flattened one."
        )
    image = np.asarray(obs["image"])
    if image.ndim != 3 or image.shape[0] != image.shape[1] or image.shape[2] != 3:
        raise ValueError(
            f"obs['image'] must be the agent-centric n x n x 3 encoding, got shape {image.shape}; "
            "do not wrap the env with RGB or fully-observable image wrappers."
        )
    return image


def _decode(cell: np.ndarray, forward: int, right: int) -> Percept:
    kind = IDX_TO_OBJECT[int(cell[0])]
    # Only doors use the state channel (0 open, 1 closed, 2 locked); it is 0 elsewhere.
    state = IDX_TO_STATE[int(cell[2])] if kind == "door" else None
    return Percept(kind, IDX_TO_COLOR[int(cell[1])], state, forward, right)


def _sort_key(p: Percept) -> tuple:
    return (p.distance, p.kind, p.color or "", p.state or "", p.forward, p.right)


def perceive(obs: Mapping, include_walls: bool = False) -> list[Percept]:
    """Visible objects (not the carried one), nearest first, then by kind; deterministic.

    >>> import gymnasium as gym, minigrid
    >>> obs, _ = gym.make("MiniGrid-DoorKey-5x5-v0").reset(seed=2)
    >>> [(p.kind, p.state, p.forward, p.right) for p in perceive(obs)]
    [('door', 'locked', 1, 0), ('key', None, 0, 2)]
    """
    image = _image(obs)
    n = image.shape[0]
    agent_x, agent_y = n // 2, n - 1
    percepts = []
    for x in range(n):
        for y in range(n):
            if (x, y) == (agent_x, agent_y):
                continue
            kind = IDX_TO_OBJECT[int(image[x, y, 0])]
            if kind in _SKIPPED_KINDS or (kind == "wall" and not include_walls):
                continue
            percepts.append(_decode(image[x, y], forward=agent_y - y, right=x - agent_x))
    return sorted(percepts, key=_sort_key)


def carrying(obs: Mapping) -> Percept | None:
    """The object the agent carries (stored at its own cell), or None."""
    image = _image(obs)
    n = image.shape[0]
    cell = image[n // 2, n - 1]
    if IDX_TO_OBJECT[int(cell[0])] in _SKIPPED_KINDS:
        return None
    return _decode(cell, forward=0, right=0)


def object_name(p: Percept) -> str:
    """``[state] [color] kind``, the color left out where it is the kind's default."""
    color = None if DEFAULT_COLORS.get(p.kind) == p.color else p.color
    return " ".join(part for part in (p.state, color, p.kind) if part)


def in_front(obs: Mapping) -> str:
    """What fills the cell directly ahead: 'a wall', 'a closed yellow door', 'lava', 'empty floor'."""
    image = _image(obs)
    n = image.shape[0]
    cell = image[n // 2, n - 2]
    kind = IDX_TO_OBJECT[int(cell[0])]
    if kind == "empty":
        return "empty floor"
    if kind == "unseen":  # the cell ahead is always visible in minigrid; kept for odd inputs
        return "unknown"
    name = object_name(_decode(cell, forward=1, right=0))
    return name if kind == "lava" else f"a {name}"


def position(p: Percept) -> str:
    # forward >= 0 in the view; remembered objects (envs.memory) can be behind.
    parts = [f"{p.forward} forward"] if p.forward > 0 else [f"{-p.forward} back"] if p.forward < 0 else []
    if p.right:
        parts.append(f"{p.right} right" if p.right > 0 else f"{-p.right} left")
    return " ".join(parts)


def describe(obs: Mapping) -> str:
    """One-line English description of the observation; format in the module docstring."""
    return render(text_parts(obs))


def _grouped(percepts: list[Percept]) -> dict[str, str]:
    """name -> its positions, nearest first; in the order of each name's nearest percept."""
    groups: dict[str, list[str]] = {}
    for p in sorted(percepts, key=_sort_key):
        groups.setdefault(object_name(p), []).append(position(p))
    return {name: ", ".join(positions) for name, positions in groups.items()}


def remembered(obs: Mapping) -> list[Percept]:
    """Objects an `envs.memory.ObjectMemory` env remembers out of view (none without one)."""
    return [_decode(np.asarray(row[:3]), int(row[3]), int(row[4])) for row in np.asarray(obs.get("memory", ())).reshape(-1, 5)]


def text_parts(obs: Mapping) -> dict[str, str | None]:
    """What `describe` says, part by part: "mission", one "see:<name>" entry per listed name
    (its positions), "front" and "holding"; with an object memory (`envs.memory`) also one
    "remembered:<name>" entry per name and "last action". `render` turns them back into
    the text, so an explanation can leave one part out (`agent.explain`)."""
    held = carrying(obs)
    mission = str(obs.get("mission", "")).strip()
    parts = {"mission": mission or None,
             **{f"see:{name}": where for name, where in _grouped(perceive(obs)).items()},
             "front": in_front(obs), "holding": object_name(held) if held else "nothing"}
    if "last_action" in obs:
        parts.update({f"remembered:{name}": where for name, where in _grouped(remembered(obs)).items()})
        for row in np.asarray(obs.get("unexplored", ())).reshape(-1, 2):  # an Explore twin (envs.memory)
            parts["unexplored"] = position(Percept("unseen", None, None, int(row[0]), int(row[1])))
        last = int(obs["last_action"])
        parts["last action"] = ACTION_PHRASES[last] if last >= 0 else "none"
    return parts


def render(parts: Mapping[str, str | None]) -> str:
    """The `describe` text of `text_parts`; a part that is missing is left out of the text."""
    out = []
    mission = parts.get("mission")
    if mission:
        out.append(f"Mission: {mission}" + ("" if mission[-1] in ".!?" else "."))
    seen = "; ".join(f"{key[4:]} {where}" for key, where in parts.items() if key.startswith("see:"))
    out.append(f"You see: {seen or 'nothing'}.")
    if "front" in parts:
        out.append(f"In front: {parts['front']}.")
    if "holding" in parts:
        out.append(f"Holding: {parts['holding']}.")
    memory = "; ".join(f"{key[11:]} {where}" for key, where in parts.items() if key.startswith("remembered:"))
    if memory:
        out.append(f"Remembered: {memory}.")
    if parts.get("unexplored"):
        out.append(f"Unexplored: {parts['unexplored']}.")
    if "last action" in parts:
        out.append(f"Last action: {parts['last action']}.")
    return " ".join(out)

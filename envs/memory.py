"""Object memory: what the agent saw earlier and cannot see now, placed where it is now.

A MiniGrid agent sees a 7x7 cone in front of it. In BabyAI-Text's `open` the key can leave
the view while the agent turns to the door; in `putnext` the object to put A next to is
often behind the agent once it holds A. A policy that reads only the current view then sees
the same text in states that need different actions
(docs/experiments/babyai-text-memory-dagger.md). GLAM puts the last 3 observations in the
prompt; `ObjectMemory` keeps what those observations say about objects, in the agent's
current frame, at a fraction of the tokens. Perception renders it
(`agent.perception.describe`):

    ... Holding: nothing. Remembered: yellow key 2 back 1 left. Last action: turn right.

It uses only what the agent has: its observations and its own actions. Its position is
dead reckoning (a `forward` moves it exactly when the cell ahead could be entered, which
the observation before the step shows: minigrid's own rule); its heading is
`obs["direction"]`. A remembered object is forgotten when its cell is seen again without
it, or after `horizon` steps unseen.

Added to the observation: `memory`, an (M, 5) int array of (OBJECT_IDX, COLOR_IDX, STATE,
forward, right) of the remembered objects now out of view (forward < 0: behind), and
`last_action`, the previous action (-1 at the start).

With `frontier=True` (the `Explore` twins: "BabyAI-GoToLocalExplore-v0") it also keeps a map
of every cell it has seen and adds `unexplored`, a (0 or 1, 2) array: (forward, right) of the
nearest cell it has never seen, searched as minigrid's BabyAIBot searches its own map when it
explores (breadth first, straight ahead before turns, around objects unless there is no other
way). The bot's exploring steps depend on that cell, which the memory text alone does not
show; rendered as "Unexplored: 2 forward 1 left."

>>> import envs
>>> env = ObjectMemory(envs.make("MiniGrid-DoorKey-5x5-v0"))
>>> obs, _ = env.reset(seed=0)
>>> for _ in range(3):
...     obs, *_ = env.step(env.unwrapped.actions.right)
>>> obs["memory"].tolist(), obs["last_action"]  # the key 1 behind, the locked door 2 behind 1 left
([[5, 4, 0, -1, 0], [4, 4, 2, -2, -1]], 1)
"""

from __future__ import annotations

import collections
import re

import gymnasium
import numpy as np
from minigrid.core.actions import Actions
from minigrid.core.constants import DIR_TO_VEC, IDX_TO_OBJECT, OBJECT_TO_IDX, STATE_TO_IDX

__all__ = ["ObjectMemory", "explore_id", "front_cell", "memory_id", "plain_id", "with_memory"]

_ENTERABLE = ("empty", "goal", "floor", "lava")  # and open doors: minigrid's can_overlap
_NOT_REMEMBERED = ("unseen", "empty", "wall", "floor")
_IDX_TO_STATE = {v: k for k, v in STATE_TO_IDX.items()}
_EMPTY, _WALL, _DOOR, _OPEN = OBJECT_TO_IDX["empty"], OBJECT_TO_IDX["wall"], OBJECT_TO_IDX["door"], STATE_TO_IDX["open"]


def memory_id(env_id: str) -> str:
    """Id of an env's object-memory twin: "BabyAI-GoToLocal-v0" -> "BabyAI-GoToLocalMemory-v0"."""
    return re.sub(r"(-v\d+)$", r"Memory\1", env_id)


def explore_id(env_id: str) -> str:
    """Id of an env's twin with the memory and the unexplored cell: "BabyAI-GoToLocal-v0" ->
    "BabyAI-GoToLocalExplore-v0"."""
    return re.sub(r"(-v\d+)$", r"Explore\1", env_id)


def plain_id(env_id: str) -> str:
    """The id a memory or explore twin shares its levels with (other ids are returned as they are)."""
    return re.sub(r"(Memory|Explore)(-v\d+)$", r"\2", env_id)


def with_memory(make, frontier: bool = False):
    """Entry point of a twin: `make(**kwargs)` wrapped in an `ObjectMemory`."""
    return lambda **kwargs: ObjectMemory(make(**kwargs), frontier=frontier)


class ObjectMemory(gymnasium.Wrapper):
    """Adds `obs["memory"]` (remembered objects out of view) and `obs["last_action"]`."""

    def __init__(self, env: gymnasium.Env, horizon: int | None = None, frontier: bool = False):
        super().__init__(env)
        if horizon is not None and horizon < 1:
            raise ValueError(f"horizon must be at least 1 step (or None: the whole episode), not {horizon}.")
        self.horizon, self.frontier = horizon, frontier
        spaces = {**env.observation_space.spaces,
                  "memory": gymnasium.spaces.Sequence(gymnasium.spaces.Box(-255, 255, (5,), dtype=np.int64), stack=True),
                  "last_action": gymnasium.spaces.Discrete(len(Actions) + 1, start=-1)}
        if frontier:
            spaces["unexplored"] = gymnasium.spaces.Sequence(gymnasium.spaces.Box(-255, 255, (2,), dtype=np.int64),
                                                             stack=True)
        self.observation_space = gymnasium.spaces.Dict(spaces)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._pos, self._t, self._last = np.zeros(2, dtype=int), 0, -1
        self._seen: dict[tuple[int, int], tuple[tuple[int, int, int], int]] = {}  # cell -> (object code, step seen)
        self._map: dict[tuple[int, int], tuple[int, int]] = {}  # every cell seen -> (OBJECT_IDX, STATE) now
        return self._observe(obs), info

    def step(self, action):
        if int(action) == Actions.forward and _enterable(self._obs):
            self._pos = self._pos + DIR_TO_VEC[int(self._obs["direction"])]
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._t, self._last = self._t + 1, int(action)
        return self._observe(obs), reward, terminated, truncated, info

    def _observe(self, obs):
        image = np.asarray(obs["image"])
        n = image.shape[0]
        ahead, right = DIR_TO_VEC[int(obs["direction"])], DIR_TO_VEC[(int(obs["direction"]) + 1) % 4]
        visible = set()
        for x in range(n):
            for y in range(n):
                kind = IDX_TO_OBJECT[int(image[x, y, 0])]
                if kind == "unseen" or (x, y) == (n // 2, n - 1):  # the agent's cell holds what it carries
                    continue
                cell = tuple(int(v) for v in self._pos + (n - 1 - y) * ahead + (x - n // 2) * right)
                visible.add(cell)
                if self.frontier:
                    self._map[cell] = (int(image[x, y, 0]), int(image[x, y, 2]))
                if kind in _NOT_REMEMBERED:
                    self._seen.pop(cell, None)
                else:
                    self._seen[cell] = (tuple(int(v) for v in image[x, y]), self._t)
        if self.horizon is not None:
            self._seen = {c: seen for c, seen in self._seen.items() if self._t - seen[1] <= self.horizon}
        rows = []
        for cell, (code, _) in self._seen.items():
            if cell not in visible:
                rows.append([*code, *self._relative(cell, ahead, right)])
        self._obs = obs
        out = {**obs, "memory": np.asarray(rows, dtype=np.int64).reshape(-1, 5), "last_action": self._last}
        if self.frontier:
            self._map[tuple(int(v) for v in self._pos)] = (_EMPTY, 0)  # where it stands is seen and free
            cell = self._nearest_unseen(tuple(int(v) for v in ahead))
            rows = [] if cell is None else [self._relative(cell, ahead, right)]
            out["unexplored"] = np.asarray(rows, dtype=np.int64).reshape(-1, 2)
        return out

    def _relative(self, cell, ahead, right) -> list[int]:
        """(forward, right) of a cell of the map from where the agent stands and faces now."""
        offset = np.asarray(cell) - self._pos
        return [int(offset @ ahead), int(offset @ right)]

    def _nearest_unseen(self, heading: tuple[int, int]) -> tuple[int, int] | None:
        """The unseen cell the BabyAI bot would explore towards: first around objects, then through them."""
        found, reached = self._search([(*(int(v) for v in self._pos), *heading)], through_objects=False)
        if found is None:
            found, _ = self._search([(*cell, 1, 0) for cell in reached], through_objects=True)
        return found

    def _search(self, starts, through_objects: bool):
        """Breadth-first search of the map, in the bot's order of neighbours (straight on first);
        returns (first unseen cell or None, the cells reached in order)."""
        queue, reached = collections.deque(starts), {}
        while queue:
            i, j, di, dj = queue.popleft()
            if (i, j) in reached:
                continue
            reached[(i, j)] = None
            if (i, j) not in self._map:
                return (i, j), reached
            kind, state = self._map[(i, j)]
            if kind == _WALL or (kind == _DOOR and state != _OPEN) or (
                    kind not in (_EMPTY, _DOOR) and not through_objects):
                continue
            for k, l in ((di, dj), (dj, di), (-dj, -di), (-di, -dj)):
                queue.append((i + k, j + l, k, l))
        return None, reached


def front_cell(obs) -> tuple[str, str | None]:
    """Kind and door state of the cell directly in front, from the egocentric image."""
    image = np.asarray(obs["image"])
    n = image.shape[0]
    kind_idx, _, state_idx = image[n // 2, n - 2]
    kind = IDX_TO_OBJECT[int(kind_idx)]
    return kind, (_IDX_TO_STATE[int(state_idx)] if kind == "door" else None)


def _enterable(obs) -> bool:
    kind, state = front_cell(obs)
    return kind in _ENTERABLE or state == "open"

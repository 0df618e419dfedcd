"""Gymnasium's ToyText envs as text: FrozenLake, CliffWalking and Taxi.

Their observation is one integer; the text says where the agent is, what is around it and
where its targets are, positions as ``<n> down|up <m> right|left`` from the agent. The
phrases are the envs' own actions in their index order; the expert is
`envs.toytext.expert_action` (value iteration over the env's transition table).

>>> import envs
>>> env = envs.make("FrozenLake-v1")
>>> obs, _ = env.reset(seed=0)
>>> adapter = ToyTextAdapter()
>>> print(adapter.describe(obs, env))
Mission: walk to the goal across the frozen lake without falling into a hole. The ice is slippery: a move can slide you to either side of it. You are at row 1, column 1 of a 4x4 lake. Goal: 3 down 3 right. Holes: 1 down 1 right; 3 down; 1 down 3 right; 2 down 3 right. Around you: left edge, down ice, right ice, up edge.
>>> adapter.actions(obs, env)
('move left', 'move down', 'move right', 'move up')
"""

from __future__ import annotations

from agent.adapters import EnvAdapter
from envs import toytext

__all__ = ["ToyTextAdapter", "matches"]

# Each env's actions in index order: (row step, column step) for moves, None otherwise.
_MOVES = {
    "FrozenLake": (("move left", (0, -1)), ("move down", (1, 0)), ("move right", (0, 1)), ("move up", (-1, 0))),
    "CliffWalking": (("move up", (-1, 0)), ("move right", (0, 1)), ("move down", (1, 0)), ("move left", (0, -1))),
    "Taxi": (("move down", (1, 0)), ("move up", (-1, 0)), ("move right", (0, 1)), ("move left", (0, -1)),
             ("pick up the passenger", None), ("drop off the passenger", None)),
}
_TAXI_STOPS = "RGYB"  # the names Taxi's map gives its four stops, in `locs` order


def matches(base) -> bool:
    return toytext.is_toytext(base) and _family(base) is not None


def _family(env) -> str | None:
    name = type(env.unwrapped).__name__
    return next((family for family in _MOVES if name.startswith(family)), None)


def offset(rows: int, cols: int) -> str:
    """'2 down 1 left', 'here'."""
    parts = [f"{abs(rows)} {'down' if rows > 0 else 'up'}"] if rows else []
    if cols:
        parts.append(f"{abs(cols)} {'right' if cols > 0 else 'left'}")
    return " ".join(parts) or "here"


def _nearest_first(cells, row, col):
    return sorted(cells, key=lambda rc: (abs(rc[0] - row) + abs(rc[1] - col), rc))


class ToyTextAdapter(EnvAdapter):
    name = "toytext"
    has_expert = True

    def actions(self, obs, env):
        return tuple(phrase for phrase, _ in _MOVES[_family(env)])

    def fixed_actions(self, env):
        return self.actions(None, env)

    def system_prompt(self, env):
        return ("You control an agent in a small grid game. Each turn you get the mission and what you observe, "
                "with positions in steps up or down and left or right of you. Reply with one action: "
                + ", ".join(self.actions(None, env)) + ".")

    def expert(self, env, last_action=None):
        return toytext.expert_action(env)

    def success(self, env, reward, terminated, info):
        return toytext.success(env, reward, terminated)

    def died(self, obs, action, terminated, success):
        return bool(terminated and not success)  # a FrozenLake hole; Taxi and CliffWalking end only at the goal

    def describe(self, obs, env):
        family = _family(env)
        if family == "Taxi":
            return self._taxi(int(obs), env.unwrapped)
        return self._walk(int(obs), env.unwrapped, family)

    def _walk(self, state: int, base, family: str) -> str:
        rows, cols = base.shape if family == "CliffWalking" else base.desc.shape
        row, col = divmod(state, cols)
        if family == "FrozenLake":
            cell = lambda r, c: {b"H": "hole", b"G": "goal"}.get(base.desc[r, c], "ice")  # noqa: E731
            goal = next((r, c) for r in range(rows) for c in range(cols) if base.desc[r, c] == b"G")
            mission = "walk to the goal across the frozen lake without falling into a hole"
            where, hazards = "lake", "Holes"
        else:
            cell = lambda r, c: "cliff" if base._cliff[r, c] else "goal" if (r, c) == (rows - 1, cols - 1) else "ground"  # noqa: E731
            goal = (rows - 1, cols - 1)
            mission = "walk to the goal; stepping into the cliff sends you back to the start"
            where, hazards = "field", "Cliff"
        danger = [(r, c) for r in range(rows) for c in range(cols) if cell(r, c) in ("hole", "cliff")]
        around = []
        for phrase, (dr, dc) in _MOVES[family]:
            r, c = row + dr, col + dc
            around.append(f"{phrase.split()[-1]} {cell(r, c) if 0 <= r < rows and 0 <= c < cols else 'edge'}")
        slippery = (" The ice is slippery: a move can slide you to either side of it." if family == "FrozenLake"
                    and toytext.is_stochastic(base) else " The ground is slippery: a move can slide you sideways."
                    if toytext.is_stochastic(base) else "")
        listed = "; ".join(offset(r - row, c - col) for r, c in _nearest_first(danger, row, col))
        return (f"Mission: {mission}.{slippery} You are at row {row + 1}, column {col + 1} of a {rows}x{cols} {where}. "
                f"Goal: {offset(goal[0] - row, goal[1] - col)}. {hazards}: {listed or 'none'}. "
                f"Around you: {', '.join(around)}.")

    def _taxi(self, state: int, base) -> str:
        row, col, passenger, destination = (int(v) for v in base.decode(state))
        stop = lambda i: f"{_TAXI_STOPS[i]}, {offset(base.locs[i][0] - row, base.locs[i][1] - col)}"  # noqa: E731
        rider = "in the taxi" if passenger == 4 else f"waiting at {stop(passenger)}"
        blocked = [phrase.split()[-1] for a, (phrase, move) in enumerate(_MOVES["Taxi"])
                   if move is not None and int(base.P[state][a][0][1]) == state]
        return (f"Mission: pick up the passenger and drop them off at their destination. You drive a taxi at row "
                f"{row + 1}, column {col + 1} of a 5x5 city. Passenger: {rider}. Destination: {stop(destination)}. "
                f"Walls: {', '.join(blocked) or 'none'}.")

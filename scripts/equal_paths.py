"""How many of an adapter's disagreements with the BabyAI bot are as short as the bot's step:
what set-valued labels (train on every equally short action) could fix, at most.

    python scripts/equal_paths.py ADAPTER ENV N DEMO_SEED
    python scripts/equal_paths.py adapters/babyai-text-robust BabyAI-TextMixedTrainLocalMemory-v0 1500 2

A measurement script for docs/experiments/babyai-text-memory-dagger.md (run 15), not a user
CLI. On the states of `errors_by_subgoal.py` where the bot is going to face a cell (an
object, a door or, exploring, an unseen cell; PutNext's drop places are left out), a
breadth-first search over (cell, heading) on the full grid finds every action that starts a
shortest way there. A choice counts as "as short" when it is one of them.
"""

import collections
import sys

import numpy as np
from label_accuracy import report, scoring_policy, tagged_demos
from minigrid.core.actions import Actions
from minigrid.core.constants import DIR_TO_VEC
from minigrid.core.world_object import WorldObj
from minigrid.envs.babyai.core.verifier import ObjDesc

from envs.expert import _bot_episodes, bot_subgoal

MOVES = (Actions.left, Actions.right, Actions.forward)


def _target(env):
    """The cell the bot is going to face now, or None (another kind of subgoal)."""
    episode = _bot_episodes.get(env.unwrapped)
    top = episode.bot.stack[-1] if episode and episode.bot.stack else None
    if type(top).__name__ != "GoNextToSubgoal" or top.reason not in (None, "Open", "Explore"):
        return None
    if isinstance(top.datum, ObjDesc):
        return episode.bot._find_obj_pos(top.datum, False)[1]
    return tuple(top.datum.cur_pos) if isinstance(top.datum, WorldObj) else tuple(top.datum)


def _step(grid, state, action):
    x, y, d = state
    if action == Actions.left:
        return x, y, (d - 1) % 4
    if action == Actions.right:
        return x, y, (d + 1) % 4
    fx, fy = x + DIR_TO_VEC[d][0], y + DIR_TO_VEC[d][1]
    cell = grid.get(fx, fy)
    return (fx, fy, d) if cell is None or (cell.type == "door" and cell.is_open) else state


def _distance(grid, start, target) -> int | None:
    """Fewest actions from `start` until the agent faces `target`."""
    queue, seen = collections.deque([(start, 0)]), {start}
    while queue:
        (x, y, d), n = queue.popleft()
        if (x + DIR_TO_VEC[d][0], y + DIR_TO_VEC[d][1]) == tuple(target):
            return n
        for action in MOVES:
            nxt = _step(grid, (x, y, d), action)
            if nxt not in seen:
                seen.add(nxt)
                queue.append((nxt, n + 1))
    return None


def shortest_actions(env) -> frozenset[int] | None:
    target = _target(env)
    if target is None:
        return None
    base = env.unwrapped
    start = (*(int(v) for v in base.agent_pos), int(base.agent_dir))
    best = _distance(base.grid, start, target)
    if not best:
        return None  # already facing it, or no way there
    return frozenset(int(a) for a in MOVES
                     if (d := _distance(base.grid, _step(base.grid, start, a), target)) is not None and d == best - 1)


def main(adapter: str, env_id: str, n: int, demo_seed: int) -> None:
    policy = scoring_policy(adapter)
    rows = tagged_demos(env_id, n, 1, demo_seed, lambda env: (bot_subgoal(env), shortest_actions(env)))
    choices = report(policy, [(text, label, tag[0]) for text, label, tag in rows], f"{env_id}, --demo-seed {demo_seed}")
    counts = collections.Counter()
    for (_, label, (_, best)), choice in zip(rows, choices):
        if best is None or label not in best:  # not a go-to state, or the bot's step is not a shortest one here
            continue
        counts["states"] += 1
        counts["ties"] += len(best) > 1
        counts["wrong"] += choice != label
        counts["wrong but as short"] += choice != label and choice in best
    print(dict(counts))
    print(f"go-to states: accuracy {1 - counts['wrong'] / counts['states']:.2f} against the bot's step, "
          f"{1 - (counts['wrong'] - counts['wrong but as short']) / counts['states']:.2f} against any shortest step; "
          f"{counts['ties'] / counts['states']:.2f} of them have more than one")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__.split("\n\n")[1])
    np.seterr(all="ignore")
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))

"""Expert actions from a planner that sees the full grid (`env.unwrapped`).

MiniGrid envs: a shortest-path search over (x, y, direction, picked-up key) that opens
closed doors, fetches the matching key for a locked door, and never enters lava. It
replans from the current grid on every call, so it also labels states reached by another
policy (DAgger) and survives moving obstacles.

BabyAI envs (the unwrapped env has `instrs`): minigrid's own `BabyAIBot`, which turns the
instruction into subgoals. It keeps a plan between steps, so one bot lives per env episode.

>>> import envs
>>> from envs.expert import expert_action
>>> env = envs.make("DoorKey", seed=0)
>>> obs, info = env.reset()
>>> terminated = truncated = False
>>> while not (terminated or truncated):
...     obs, reward, terminated, truncated, info = env.step(expert_action(env))
>>> reward > 0
True
"""

from __future__ import annotations

import heapq
import weakref
from dataclasses import dataclass

import gymnasium
from minigrid.core.actions import Actions
from minigrid.core.constants import DIR_TO_VEC
from minigrid.utils.baby_ai_bot import BabyAIBot, DisappearedBoxError, DropSubgoal, PickupSubgoal

__all__ = ["NoPlanError", "bot_subgoal", "expert_action", "expert_target", "exploring_target"]


class NoPlanError(RuntimeError):
    """The planner cannot reach the mission's target from the current state."""


def expert_action(env: gymnasium.Env, last_action: int | None = None) -> int:
    """Next action (a minigrid `Actions` int) of a full-grid expert for `env`'s current state.

    Call once per step. `last_action` is the action actually executed since the previous
    call; pass it when it may differ from the expert's suggestion (DAgger-style rollouts),
    so the BabyAI bot can plan to undo it. The MiniGrid planner ignores it (it replans from
    the grid every call).

    Supported: MiniGrid envs with a goal square (Empty, DoorKey, FourRooms, LavaGap,
    LavaCrossing, SimpleCrossing, DistShift, MultiRoom, LockedRoom, ...), MiniGrid GoToDoor
    and GoToObject, and the BabyAI levels `BabyAIBot` solves. Raises ValueError for other
    missions and NoPlanError when the target is unreachable.
    """
    base = env.unwrapped
    if hasattr(base, "instrs"):
        return _babyai_action(base, last_action)
    return _minigrid_action(base)


def expert_target(env: gymnasium.Env) -> tuple[str, str | None] | None:
    """(kind, colour) of the object the expert is working towards now, or None (colour None:
    any colour). Call after `expert_action` for this step. Used to write the reasons that
    generate-mode training imitates (`training/reasons.py`).

    BabyAI: the nearest object named by the bot's subgoals, top of its stack first. MiniGrid:
    the first key or door the planned path picks up or opens, else the mission's target (the
    goal square, or the door or object of GoToDoor/GoToObject).
    """
    base = env.unwrapped
    if hasattr(base, "instrs"):
        episode = _bot_episodes.get(base)
        for subgoal in reversed(episode.bot.stack if episode else []):
            datum = getattr(subgoal, "datum", None)
            if getattr(datum, "type", None):  # an ObjDesc or a WorldObj, not a position
                return datum.type, datum.color
        return None
    return _minigrid_search(base)[1]


def bot_subgoal(env: gymnasium.Env) -> str:
    """The BabyAI bot's current subgoal and its reason, e.g. "GoNextTo:Explore" or "Pickup"
    ("none" when its plan is empty). Call after `expert_action` for this step; a measure of
    which part of the bot's plan a policy gets wrong (scripts/errors_by_subgoal.py)."""
    episode = _bot_episodes.get(env.unwrapped)
    if episode is None or not episode.bot.stack:
        return "none"
    top = episode.bot.stack[-1]
    name = type(top).__name__.removesuffix("Subgoal")
    return f"{name}:{top.reason}" if getattr(top, "reason", None) else name


def exploring_target(env: gymnasium.Env) -> tuple[int, int] | None:
    """The grid cell the BabyAI bot is exploring towards (the nearest cell it has not seen),
    or None when it is not exploring. Call after `expert_action` for this step."""
    episode = _bot_episodes.get(env.unwrapped)
    top = episode.bot.stack[-1] if episode and episode.bot.stack else None
    if top is None or getattr(top, "reason", None) != "Explore":
        return None
    return tuple(int(v) for v in top.datum)


# --- MiniGrid: shortest path over (x, y, dir, picked-up key) ------------------------------


def _minigrid_action(base) -> int:
    return _minigrid_search(base)[0]


def _minigrid_search(base) -> tuple[int, tuple[str, str | None] | None]:
    """(first action, (kind, colour) of what the expert heads for) of the plan for the mission."""
    goals = {
        (x, y)
        for x in range(base.width)
        for y in range(base.height)
        if (cell := base.grid.get(x, y)) is not None and cell.type == "goal"
    }
    if goals:
        action, first_object = _plan(base, lambda x, y: (x, y) in goals, allow_doors=True)
        return action, first_object or ("goal", "green")
    if base.mission.startswith("go to") and hasattr(base, "target_pos"):
        # GoToDoor/GoToObject reward `done` next to the target, and end the episode on
        # `toggle`, so the plan may not open doors.
        tx, ty = base.target_pos
        target = base.grid.get(tx, ty)
        x, y = base.agent_pos
        if abs(x - tx) + abs(y - ty) == 1:
            return int(Actions.done), (target.type, target.color)
        action, _ = _plan(base, lambda x, y: abs(x - tx) + abs(y - ty) == 1, allow_doors=False)
        return action, (target.type, target.color)
    raise ValueError(
        f"expert_action has no planner for the mission {base.mission!r} of "
        f"{type(base).__name__}; it supports goal-square envs, GoToDoor/GoToObject "
        "and BabyAI levels."
    )


def _plan(base, is_target, allow_doors: bool) -> tuple[int, tuple[str, str] | None]:
    """First action of a cheapest plan to a cell where `is_target(x, y)` holds, and the first
    key or door that plan picks up or opens (None: it walks straight there).

    State: (x, y, dir, picked) where `picked` is the cell of the key picked up on the way
    (None if none); that cell counts as empty afterwards. Opening a door costs one extra
    step (toggle, then forward); door state is not tracked because the plan never closes one.
    """
    carried = base.carrying

    def cell(x, y, picked):
        return None if (x, y) == picked else base.grid.get(x, y)

    def held_key_color(picked):
        if picked is not None:
            return base.grid.get(*picked).color
        return carried.color if carried is not None and carried.type == "key" else None

    start = (*map(int, base.agent_pos), int(base.agent_dir), None)
    best = {start: 0}
    first_action = {start: None}
    first_object: dict = {start: None}  # state -> the first (kind, colour) acted on to reach it
    frontier = [(0, 0, start)]  # (cost, tie-breaker, state); the tie-breaker keeps heapq off states
    pushes = 0
    while frontier:
        cost, _, state = heapq.heappop(frontier)
        if cost > best[state]:
            continue
        x, y, d, picked = state
        if is_target(x, y):
            # Already there only after the episode ended; `done` is then harmless.
            action = first_action[state] if first_action[state] is not None else int(Actions.done)
            return action, first_object[state]
        dx, dy = map(int, DIR_TO_VEC[d])
        fx, fy = x + dx, y + dy
        ahead = cell(fx, fy, picked)
        moves = [
            (Actions.left, 1, (x, y, (d - 1) % 4, picked)),
            (Actions.right, 1, (x, y, (d + 1) % 4, picked)),
        ]
        walkable = ahead is None or ahead.type in ("goal", "floor")
        if walkable or (ahead.type == "door" and ahead.is_open):
            moves.append((Actions.forward, 1, (fx, fy, d, picked)))
        elif ahead.type == "door" and allow_doors:
            if not ahead.is_locked or held_key_color(picked) == ahead.color:
                moves.append((Actions.toggle, 2, (fx, fy, d, picked)))
        elif ahead.type == "key" and carried is None and picked is None:
            moves.append((Actions.pickup, 1, (x, y, d, (fx, fy))))
        # Everything else (walls, lava, balls, boxes) blocks; lava is never entered.
        for action, step_cost, nxt in moves:
            if cost + step_cost < best.get(nxt, float("inf")):
                best[nxt] = cost + step_cost
                first = first_action[state]
                first_action[nxt] = first if first is not None else int(action)
                acted_on = (ahead.type, ahead.color) if action in (Actions.toggle, Actions.pickup) else None
                first_object[nxt] = first_object[state] or acted_on
                pushes += 1
                heapq.heappush(frontier, (cost + step_cost, pushes, nxt))
    where = tuple(map(int, base.agent_pos))
    raise NoPlanError(f"no path to the target of {base.mission!r} from {where}")


# --- BabyAI: minigrid's BabyAIBot, one per env episode -------------------------------------


@dataclass
class _BotEpisode:
    instrs: object  # the episode's instruction object; every reset makes a new one
    step_count: int  # env.step_count when `action` was suggested
    action: int
    bot: BabyAIBot


# Keyed weakly by the unwrapped env so that finished envs do not keep their bots alive.
_bot_episodes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _keep_what_is_picked(bot: BabyAIBot) -> BabyAIBot:
    """Drop the bot's "drop" right after a pick-up mission when no later pick-up needs the hands.

    The upstream bot drops what a "pick up A" instruction made it pick up at once. In "pick
    up A, then go to B" the state after that drop looks exactly like the state before the
    pick-up, so a policy that sees only the current observation picks A up again, forever
    (0.00 on pickup-then-goto, docs/experiments/babyai-text-memory-dagger.md). Holding A
    while going to B keeps the two phases apart ("Holding: A") and the mission's verifier
    accepts it.
    """
    stack = bot.stack  # bottom first: the last instruction's subgoals lie lowest
    for i in range(1, len(stack)):
        below = stack[:i - 1]
        if (isinstance(stack[i - 1], DropSubgoal) and isinstance(stack[i], PickupSubgoal)
                and not any(isinstance(s, PickupSubgoal) for s in below)):
            del stack[i - 1]
            break
    return bot


def _babyai_action(base, last_action: int | None) -> int:
    episode = _bot_episodes.get(base)
    same_episode = episode is not None and episode.instrs is base.instrs
    if same_episode and base.step_count == episode.step_count:
        return episode.action  # asked again without stepping: the bot must not advance
    try:
        if same_episode and base.step_count == episode.step_count + 1:
            bot = episode.bot
            action = bot.replan(last_action)
        else:
            # New episode, or steps the bot never saw: start a bot from the current state.
            bot = _keep_what_is_picked(BabyAIBot(base))
            action = bot.replan()
    except DisappearedBoxError as err:  # another policy toggled a box open: the bot gives up on the level
        raise NoPlanError(str(err)) from None
    _bot_episodes[base] = _BotEpisode(base.instrs, base.step_count, int(action), bot)
    return int(action)

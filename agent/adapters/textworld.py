"""TextWorld games as the agent meets them: the game's text, where it is, what it carries,
and the state's admissible commands as phrases (5-40 of them, a new set every step).

The agent reads no history, so the text carries a short one: the exits of its room as far
as it has learnt them (where each leads once taken, "new" before; where none is new, the
first move toward the nearest room with one) and the last commands typed. The objective is
shown only by the `...Objective-v0` twins (BALROG's agent never sees it); the plain ids give
each task's general aim instead.

The expert plays as a player who knows only what it has seen: the game's walkthrough from
the current state (`policy_commands`, re-planned after any detour) for what it does in the
room, but where the walkthrough would walk off along the route it knows (it knows the whole
map), the expert searches instead: the first new exit here, else toward the nearest one,
and the walkthrough's move once nothing it knows of is new. A learner can only imitate what
its text lets it tell; on the walkthrough's moves it cannot. In cooking it first reads the
cookbook, which the walkthrough skips, and the text keeps what the cookbook said.

>>> import envs
>>> adapter = TextWorldAdapter()
>>> adapter.mission(envs.make("TextWorld-CoinCollector-v0").unwrapped)
'find the coin and pick it up.'
"""

from __future__ import annotations

from collections import deque

from agent.actions import typed_command
from agent.adapters import EnvAdapter
from envs.textworld import MOVE, READ_RECIPE, TextWorldEnv

__all__ = ["TextWorldAdapter", "matches"]

RECENT = 5  # commands of this episode shown
MISSIONS = {  # what each task asks, in the words of its objective, with the route left out
    "CoinCollector": "find the coin and pick it up.",
    "TreasureHunter": "find the object the game asks for and pick it up; keys open locked doors and containers.",
    "Cooking": "find the recipe, gather and prepare its ingredients as it says, then prepare the meal and eat it.",
}
SYSTEM = ("You play a text adventure game. Each turn you get your mission, what the game just said, the room you "
          "are in, what you carry and what you did last. Reply with one of the commands you can type.")


def exits_line(base: TextWorldEnv) -> str:
    """The exits of the player's room as far as it knows them, and, where none is new, the
    first move toward the nearest room that has one. Where a move leads is known once taken.
    """
    exits = [f"{d} to {room}" if room else f"{d} (new)" for d, room in base.exits[base.room].items()]
    toward = toward_new(base)
    return f"Exits here: {', '.join(exits)}." + (f" Nearest new exit: go {toward}." if toward else "")


def toward_new(base: TextWorldEnv) -> str | None:
    """The first move of a shortest known route to a room with an exit not taken yet; None
    when this room has one, or no room the player knows of does."""
    if any(room is None for room in base.exits.get(base.room, {}).values()):
        return None
    first = {base.room: None}
    queue = deque([base.room])
    while queue:
        room = queue.popleft()
        for direction, there in base.exits.get(room, {}).items():
            if there is None:
                return first[room]
            if there not in first:
                first[there] = first[room] or direction
                queue.append(there)
    return None


def explore(base: TextWorldEnv) -> str | None:
    """The move a player who knows only what it has seen makes instead of the walkthrough's
    (which knows the whole map): the first exit here not taken yet, else toward the nearest
    one; None once no exit it knows of is new."""
    new = [d for d, room in base.exits.get(base.room, {}).items() if room is None]
    if new:
        return f"go {new[0]}"
    toward = toward_new(base)
    return f"go {toward}" if toward else None


def matches(base) -> bool:
    return isinstance(base, TextWorldEnv)


class TextWorldAdapter(EnvAdapter):
    name = "textworld"
    has_expert = True

    def mission(self, base: TextWorldEnv) -> str:
        if base.show_objective or base.task is None:
            return base.state.get("objective") or "play the game and win it."
        return MISSIONS[base.task]

    def describe(self, obs, env) -> str:
        base = env.unwrapped
        state = base.state
        parts = [f"Mission: {self.mission(base)}", f"The game says: {obs or '(nothing)'}"]
        if state["description"] and state["description"] not in obs:
            parts.append(f"You look around: {state['description']}")
        parts.append(state["inventory"] or "You are carrying nothing.")
        if base.recipe:
            parts.append(f"The cookbook you read: {base.recipe}")
        if base.exits.get(base.room):
            parts.append(exits_line(base))
        if base.history:
            parts.append(f"Your last commands: {'; '.join(base.history[-RECENT:])}.")
        return "\n".join(parts)

    def actions(self, obs, env) -> tuple[str, ...]:
        return env.unwrapped.state["admissible"]

    def system_prompt(self, env) -> str:
        return SYSTEM

    def env_action(self, index: int, obs, env) -> str:
        return self.actions(obs, env)[index]

    def text_action(self, text: str, obs, env) -> str | None:
        return typed_command(text)

    def expert(self, env, last_action: int | None = None) -> int:
        base = env.unwrapped
        state = base.state
        commands = state["admissible"]
        step = next(iter(state["walkthrough"]), None)
        if base.task == "Cooking" and not base.recipe and READ_RECIPE[0] in commands:
            step = READ_RECIPE[0]  # the walkthrough never reads it, and nothing else tells the recipe
        elif step is not None and MOVE.fullmatch(step):
            step = explore(base) or step
        if step in commands:
            return commands.index(step)
        # The walkthrough's next command is (rarely) phrased unlike any admissible one, or the
        # game is over: the admissible command sharing most words with it.
        words = set((step or "").split())
        return max(range(len(commands)), key=lambda i: (len(words & set(commands[i].split())), -i))

    def success(self, env, reward, terminated, info) -> bool:
        return bool(info.get("won"))

    def progress(self, env, info) -> float | None:
        return info.get("progress")

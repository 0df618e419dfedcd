"""TextWorld games as the agent meets them: the game's text, where it is, what it carries,
and the state's admissible commands as phrases (5-40 of them, a new set every step).

The agent reads no history, so the text carries a short one: the rooms seen so far and the
last commands typed. The objective is shown only by the `...Objective-v0` twins (BALROG's
agent never sees it); the plain ids give each task's general aim instead. The expert is the
game's own walkthrough from the current state (`policy_commands`), re-planned after any
detour, so it labels the learner's own states too; in cooking it first reads the cookbook,
which the walkthrough skips, and the text keeps what the cookbook said.

>>> import envs
>>> adapter = TextWorldAdapter()
>>> adapter.mission(envs.make("TextWorld-CoinCollector-v0").unwrapped)
'find the coin and pick it up.'
"""

from __future__ import annotations

from agent.adapters import EnvAdapter
from envs.textworld import READ_RECIPE, TextWorldEnv

__all__ = ["TextWorldAdapter", "matches"]

RECENT = 5  # commands of this episode shown
MISSIONS = {  # what each task asks, in the words of its objective, with the route left out
    "CoinCollector": "find the coin and pick it up.",
    "TreasureHunter": "find the object the game asks for and pick it up; keys open locked doors and containers.",
    "Cooking": "find the recipe, gather and prepare its ingredients as it says, then prepare the meal and eat it.",
}
SYSTEM = ("You play a text adventure game. Each turn you get your mission, what the game just said, the room you "
          "are in, what you carry and what you did last. Reply with one of the commands you can type.")


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
        if base.visited:
            parts.append(f"Rooms you have seen: {', '.join(base.visited)}.")
        if base.history:
            parts.append(f"Your last commands: {'; '.join(base.history[-RECENT:])}.")
        return "\n".join(parts)

    def actions(self, obs, env) -> tuple[str, ...]:
        return env.unwrapped.state["admissible"]

    def system_prompt(self, env) -> str:
        return SYSTEM

    def env_action(self, index: int, obs, env) -> str:
        return self.actions(obs, env)[index]

    def expert(self, env, last_action: int | None = None) -> int:
        base = env.unwrapped
        state = base.state
        commands = state["admissible"]
        step = next(iter(state["walkthrough"]), None)
        if base.task == "Cooking" and not base.recipe and READ_RECIPE[0] in commands:
            step = READ_RECIPE[0]  # the walkthrough never reads it, and nothing else tells the recipe
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

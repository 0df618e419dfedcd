"""One-sentence reasons for expert actions: the text generate-mode training imitates.

A reason is built from the true percepts of the step (`agent.perception`, the same words
and positions as the observation text) and the object the expert is heading for
(`envs.expert.expert_target`), and it ends by naming the expert's action, so that the
model learns to say why before it says what:

    The yellow key is 1 forward 1 left, so I turn left.
    The yellow key is in front of me and my hands are empty, so I pick it up.

Every claim in a reason is true of the observation it is written for; the grounded
checks of `evals.metrics` judge the model's own reasons by the same rules.

>>> import envs
>>> from envs.expert import expert_action, expert_target
>>> env = envs.make("DoorKey", seed=0)
>>> obs, _ = env.reset(seed=0)
>>> action = expert_action(env)
>>> training_text(obs, action, expert_target(env))
'Reason: The yellow key is 1 right, so I turn right.\\nAction: turn right'
"""

from __future__ import annotations

from collections.abc import Mapping

from minigrid.core.actions import Actions

from agent.actions import ACTION_PHRASES
from agent.perception import Percept, carrying, in_front, object_name, perceive, position

# What each action does, said after "so I ..."; parse_action reads each as its action.
_CLAUSES = {Actions.left: "turn left", Actions.right: "turn right", Actions.forward: "go forward",
            Actions.pickup: "pick it up", Actions.drop: "drop it", Actions.toggle: "open it",
            Actions.done: "am done"}


def _matches(p: Percept, target: tuple[str, str | None]) -> bool:
    kind, colour = target
    return p.kind == kind and (colour is None or p.color == colour)


def _target_name(target: tuple[str, str | None]) -> str:
    kind, colour = target
    return object_name(Percept(kind, colour, None, 0, 0))


def reason(obs: Mapping, action: int, target: tuple[str, str | None] | None) -> str:
    """One sentence that grounds `action` in `obs`: what is in front or held when the action
    acts on it, else where the target is (or that it is not in view)."""
    held = carrying(obs)
    hands = f"I hold the {object_name(held)}" if held else "my hands are empty"
    front = in_front(obs)
    front_name = front.removeprefix("a ")
    so = f"so I {_CLAUSES[Actions(action)]}."
    if action in (Actions.pickup, Actions.toggle):
        return f"The {front_name} is in front of me and {hands}, {so}"
    if action == Actions.drop:
        return f"{hands[0].upper()}{hands[1:]} and the cell in front is {front}, {so}"
    if target is None:
        return f"In front of me is {front}, {so}"
    seen = [p for p in perceive(obs) if _matches(p, target)]
    if not seen:
        return f"I do not see the {_target_name(target)}, {so}"
    nearest = seen[0]  # perceive lists nearest first
    return f"The {object_name(nearest)} is {position(nearest)}, {so}"


def training_text(obs: Mapping, action: int, target: tuple[str, str | None] | None) -> str:
    """The assistant's whole answer in generate mode with reasons (agent.prompts.REASON_SYSTEM)."""
    return f"Reason: {reason(obs, action, target)}\nAction: {ACTION_PHRASES[action]}"

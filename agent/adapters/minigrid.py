"""The MiniGrid/BabyAI adapter, and the one home for reading the agent's MiniGrid view.

Texts are `agent.perception.describe`'s, the phrases minigrid's seven (`ACTION_PHRASES[i]`
is `Actions(i)`), the expert `envs.expert`'s planner or BabyAI bot, the hazard lava. Any
`MiniGridEnv` subclass gets it, a user's own too.

>>> import envs
>>> env = envs.make("MiniGrid-LavaGapS5-v0", seed=0)
>>> obs, _ = env.reset(seed=0)
>>> adapter = MiniGridAdapter()
>>> adapter.actions(obs, env)[2], adapter.enters_hazard(obs, 2)  # lava ahead
('go forward', True)
"""

from __future__ import annotations

import numpy as np
from minigrid.core.actions import Actions
from minigrid.core.constants import IDX_TO_COLOR, IDX_TO_OBJECT
from minigrid.minigrid_env import MiniGridEnv

from agent.actions import ACTION_PHRASES
from agent.adapters import EnvAdapter
from agent.perception import carrying as carried_object
from agent.perception import describe
from envs.expert import expert_action
from envs.memory import front_cell

__all__ = ["HAZARDS", "MiniGridAdapter", "colours", "enters_hazard", "front_cell", "is_carrying", "matches"]

HAZARDS = ("lava",)


def matches(base) -> bool:
    return isinstance(base, MiniGridEnv)


def colours(obs) -> tuple[str | None, str | None]:
    """Colour of the object in front (None for floor) and "colour kind" of the carried one."""
    image = obs["image"]
    n = image.shape[0]
    kind_idx, colour_idx, _ = image[n // 2, n - 2]
    front = None if IDX_TO_OBJECT[int(kind_idx)] in ("empty", "unseen") else IDX_TO_COLOR[int(colour_idx)]
    held = carried_object(obs)
    return front, (f"{held.color} {held.kind}" if held else None)


def is_carrying(obs) -> bool:
    image = np.asarray(obs["image"])
    n = image.shape[0]
    return IDX_TO_OBJECT[int(image[n // 2, n - 1, 0])] not in ("empty", "unseen")


def enters_hazard(obs, action: int) -> bool:
    """True when the observation shows that `action` steps into a hazard."""
    return action == Actions.forward and front_cell(obs)[0] in HAZARDS


class MiniGridAdapter(EnvAdapter):
    name = "minigrid"
    has_expert = has_hazards = has_claims = has_memory = True

    def describe(self, obs, env):
        return describe(obs)

    def system_prompt(self, env):
        return None  # the policy's default, agent.prompts.SCORE_SYSTEM, written for MiniGrid

    def actions(self, obs, env):
        return ACTION_PHRASES

    def fixed_actions(self, env):
        return ACTION_PHRASES

    def expert(self, env, last_action=None):
        return expert_action(env, last_action)

    def enters_hazard(self, obs, action):
        return enters_hazard(obs, action)

    def view(self, obs) -> dict:
        """What the step records of the agent's view, for the benchmark's grid metrics."""
        front, front_state = front_cell(obs)
        front_colour, held = colours(obs)
        return {"front": front, "front_state": front_state, "carrying": is_carrying(obs),
                "front_color": front_colour, "held": held}

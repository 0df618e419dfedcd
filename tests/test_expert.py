"""envs.expert.expert_action solves the envs the project trains and evaluates on."""

from __future__ import annotations

import doctest
import random

import pytest
from minigrid.core.actions import Actions
from minigrid.core.world_object import Key, Lava, Wall

import envs
import envs.expert
from envs.expert import NoPlanError, bot_subgoal, expert_action, expert_target

SEEDS = range(20)


def run_episode(env, seed, random_prefix=0, rng=None):
    """Play one episode with the expert; returns (success, entered_lava, steps).

    The first `random_prefix` steps take a random turn/forward half of the time and tell the
    expert which action ran (DAgger-style), to check it recovers from off-plan states.
    """
    env.reset(seed=seed)
    entered_lava = False
    last_action, steps = None, 0
    while True:
        action = expert_action(env, last_action=last_action)
        if steps < random_prefix and rng.random() < 0.5:
            action = rng.choice([Actions.left, Actions.right, Actions.forward])
        _, reward, terminated, truncated, _ = env.step(action)
        last_action, steps = int(action), steps + 1
        cell = env.unwrapped.grid.get(*env.unwrapped.agent_pos)
        entered_lava |= cell is not None and cell.type == "lava"
        if terminated or truncated:
            return terminated and reward > 0, entered_lava, steps


@pytest.mark.parametrize(
    "env_id",
    [
        "MiniGrid-DoorKey-5x5-v0",
        "MiniGrid-DoorKey-6x6-v0",
        "MiniGrid-DoorKey-8x8-v0",
        "MiniGrid-DoorKey-16x16-v0",
        "MiniGrid-Empty-8x8-v0",
        "MiniGrid-Empty-Random-6x6-v0",
        "MiniGrid-FourRooms-v0",
        "MiniGrid-LavaGapS5-v0",
        "MiniGrid-LavaGapS7-v0",
        "MiniGrid-LavaCrossingS9N1-v0",
        "MiniGrid-LavaCrossingS11N5-v0",
        "MiniGrid-SimpleCrossingS9N1-v0",
        "MiniGrid-GoToDoor-8x8-v0",
        "MiniGrid-GoToObject-8x8-N2-v0",
        "BabyAI-GoToObj-v0",
        "BabyAI-GoToLocal-v0",
        "BabyAI-GoToRedBall-v0",
        "BabyAI-GoToRedBallGrey-v0",
        "BabyAI-PickupLoc-v0",
        "BabyAI-OpenDoor-v0",
    ],
)
def test_expert_solves_every_seed_without_lava(env_id):
    env = envs.make(env_id)
    results = [run_episode(env, seed) for seed in SEEDS]
    failed = [seed for seed, (success, _, _) in zip(SEEDS, results) if not success]
    burned = [seed for seed, (_, lava, _) in zip(SEEDS, results) if lava]
    assert failed == [] and burned == [], f"{env_id}: failed seeds {failed}, lava seeds {burned}"


@pytest.mark.parametrize(
    "env_id", ["MiniGrid-DoorKey-8x8-v0", "BabyAI-GoToLocal-v0", "BabyAI-PickupLoc-v0"]
)
def test_expert_recovers_after_off_plan_actions(env_id):
    env, rng = envs.make(env_id), random.Random(0)
    for seed in range(10):
        success, _, _ = run_episode(env, seed, random_prefix=8, rng=rng)
        assert success, f"{env_id} seed {seed}"


def test_expert_path_is_short():
    # DoorKey-5x5 needs at most ~20 steps; a wandering planner would still "succeed" slowly.
    env = envs.make("MiniGrid-DoorKey-5x5-v0")
    assert max(run_episode(env, seed)[2] for seed in SEEDS) <= 20


def test_asking_twice_does_not_advance_the_babyai_bot():
    env = envs.make("BabyAI-GoToLocal-v0", seed=0)
    env.reset(seed=0)
    while True:
        action = expert_action(env)
        assert expert_action(env) == action
        _, reward, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    assert reward > 0


def test_door_key_planner_picks_key_then_opens_door():
    env = envs.make("MiniGrid-DoorKey-8x8-v0")
    env.reset(seed=0)
    actions = []
    while len(actions) < 200:
        actions.append(expert_action(env))
        _, _, terminated, truncated, _ = env.step(actions[-1])
        if terminated or truncated:
            break
    assert Actions.pickup in actions and Actions.toggle in actions
    assert actions.index(Actions.pickup) < actions.index(Actions.toggle)


@pytest.mark.parametrize(("env_id", "seed"), [("MiniGrid-MultiRoom-N4-S5-v0", s) for s in range(4)]
                         + [("MiniGrid-DoorKey-8x8-v0", 0), ("MiniGrid-GoToDoor-8x8-v0", 0)])
def test_expert_target_is_what_the_expert_acts_on_next(env_id, seed):
    """The target of every step is the key or door the expert picks up or opens next, else the
    mission's goal: with several closed doors (MultiRoom) it is the next one on the path."""
    env = envs.make(env_id)
    env.reset(seed=seed)
    base = env.unwrapped
    targets, acted_on = [], []
    for _ in range(300):
        action = expert_action(env)
        targets.append(expert_target(env))
        front = base.grid.get(*base.front_pos)
        acted_on.append((front.type, front.color) if action in (Actions.toggle, Actions.pickup) else None)
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    assert terminated
    if "GoToDoor" in env_id:
        assert set(targets) == {("door", base.mission.split()[-2])}
        return
    upcoming = ("goal", "green")
    for target, obj in reversed(list(zip(targets, acted_on))):
        upcoming = obj or upcoming
        assert target == upcoming
    if "MultiRoom" in env_id:
        assert len({t for t in targets if t[0] == "door"}) >= 2  # several doors, each in its turn


def test_bot_subgoal_follows_the_plan_of_an_open_mission():
    """Fetch the key, carry it to the door, unlock: the order the bot's subgoals must come in."""
    env = envs.make("BabyAI-TextOpenTrain-v0")
    env.reset(seed=3)
    subgoals, action = [], None
    for _ in range(128):
        action = expert_action(env, action)
        subgoals.append(bot_subgoal(env))
        _, reward, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    assert reward > 0
    phases = list(dict.fromkeys(s for s in subgoals if s != "GoNextTo:Explore"))
    assert phases == ["GoNextTo", "Pickup", "GoNextTo:Open", "Open:Unlock"]
    assert bot_subgoal(envs.make("BabyAI-GoToLocal-v0")) == "none"  # no bot asked yet


def _goal_pos(base):
    for x in range(base.width):
        for y in range(base.height):
            cell = base.grid.get(x, y)
            if cell is not None and cell.type == "goal":
                return x, y
    raise AssertionError("no goal")


def _surround(base, pos, make_obj):
    x, y = pos
    for nx, ny in [(x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)]:
        if base.grid.get(nx, ny) is None:
            base.grid.set(nx, ny, make_obj())


def test_planner_never_plans_through_lava():
    env = envs.make("MiniGrid-Empty-8x8-v0", seed=0)
    _surround(env.unwrapped, _goal_pos(env.unwrapped), Lava)
    with pytest.raises(NoPlanError):
        expert_action(env)


def test_planner_respects_walls():
    env = envs.make("MiniGrid-Empty-8x8-v0", seed=0)
    _surround(env.unwrapped, _goal_pos(env.unwrapped), Wall)
    with pytest.raises(NoPlanError):
        expert_action(env)


@pytest.mark.parametrize("key_color", [None, "red"])
def test_locked_door_needs_the_matching_key(key_color):
    env = envs.make("MiniGrid-DoorKey-8x8-v0", seed=0)
    base = env.unwrapped
    (key_pos,) = [(x, y) for x in range(base.width) for y in range(base.height)
                  if (c := base.grid.get(x, y)) is not None and c.type == "key"]
    # DoorKey's door is yellow, so neither no key nor a red key can open it.
    base.grid.set(*key_pos, Key(key_color) if key_color else None)
    with pytest.raises(NoPlanError):
        expert_action(env)


def test_unsupported_mission_is_a_clear_error():
    env = envs.make("MiniGrid-Unlock-v0", seed=0)
    with pytest.raises(ValueError, match="no planner for the mission"):
        expert_action(env)


def test_docstring_examples():
    assert doctest.testmod(envs.expert).failed == 0

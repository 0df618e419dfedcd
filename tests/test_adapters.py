"""Env adapters: ToyText and a user's own env through every CLI, check_env on what envs.make
returns, ToyText texts against the true map, the value-iteration expert."""

import json
import re
import sys
import warnings
from pathlib import Path

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from agent.adapters import NoAdapterError, adapter_for
from agent.adapters.minigrid import MiniGridAdapter
from agent.adapters.toytext import ToyTextAdapter
from envs import toytext

TOYTEXT = ["FrozenLake-v1", "Taxi-v4", "CliffWalking-v1"]
ENVS_DOC = Path(__file__).resolve().parents[1] / "docs" / "ENVS.md"


@pytest.fixture
def corridor(tmp_path, monkeypatch):
    """docs/ENVS.md's example module, importable as `corridor`."""
    code = re.search(r"```python\n(.*?)```", ENVS_DOC.read_text(), re.S).group(1)
    (tmp_path / "corridor.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "corridor:Corridor-v0"
    sys.modules.pop("corridor", None)
    gymnasium.registry.pop("Corridor-v0", None)


@pytest.mark.parametrize("name", [*TOYTEXT, "FrozenLake8x8-v1", "CliffWalkingSlippery-v1", "MiniGrid-DoorKey-5x5-v0",
                                  "BabyAI-TextMixedTrainLocalMemory-v0", "BabyAI-GoToLocalMemory-v0",
                                  "MiniGrid-DoorKey-5x5-v0+MiniGrid-LavaGapS5-v0"])
def test_gymnasium_checker_passes_on_what_make_returns(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its "wrapped env" advice, and pygame's font warning
        check_env(envs.make(name))


def test_gymnasium_checker_passes_on_a_user_env(corridor):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(envs.make(corridor))


def test_adapter_is_found_from_the_env():
    assert isinstance(adapter_for(envs.make("DoorKey")), MiniGridAdapter)
    assert isinstance(adapter_for(envs.make("Taxi")), ToyTextAdapter)

    from minigrid.envs import EmptyEnv

    class MyRoom(EmptyEnv):  # a user's MiniGrid subclass needs no adapter of its own
        pass

    assert isinstance(adapter_for(MyRoom()), MiniGridAdapter)
    with pytest.raises(NoAdapterError, match="register_adapter"):
        adapter_for(gymnasium.make("Blackjack-v1"))


@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "FrozenLake8x8-v1", "CliffWalking-v1"])
def test_walking_texts_name_the_true_neighbours_and_goal(env_id):
    env = envs.make(env_id)
    base = env.unwrapped
    adapter = ToyTextAdapter()
    rows, cols = base.shape if env_id.startswith("Cliff") else base.desc.shape
    for state in range(rows * cols):
        text = adapter.describe(state, env)
        row, col = divmod(state, cols)
        assert f"row {row + 1}, column {col + 1}" in text
        around = dict(part.split(" ", 1) for part in text.split("Around you: ")[1].rstrip(".").split(", "))
        for side, (dr, dc) in {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}.items():
            r, c = row + dr, col + dc
            if not (0 <= r < rows and 0 <= c < cols):
                assert around[side] == "edge"
            elif env_id.startswith("Cliff"):
                assert (around[side] == "cliff") == bool(base._cliff[r, c]), (state, side)
            else:
                assert (around[side] == "hole") == (base.desc[r, c] == b"H"), (state, side)


def test_taxi_text_follows_the_decoded_state():
    env = envs.make("Taxi")
    base = env.unwrapped
    for state in (0, 17, 123, 499):
        row, col, passenger, destination = base.decode(state)
        text = ToyTextAdapter().describe(state, env)
        assert f"row {row + 1}, column {col + 1}" in text
        assert ("in the taxi" in text) == (passenger == 4)
        assert f"Destination: {'RGYB'[destination]}," in text


@pytest.mark.parametrize("env_id,expected", [("Taxi-v4", 1.0), ("CliffWalking-v1", 1.0), ("FrozenLake-v1", 0.74)])
def test_value_iteration_expert_is_optimal(env_id, expected):
    env = envs.make(env_id)
    wins = 0
    for seed in range(300):
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(toytext.expert_action(env))
            done = terminated or truncated
        wins += toytext.success(env, reward, terminated)
    # FrozenLake 4x4 with slips: the optimal policy reaches the goal about 74% of the time.
    assert abs(wins / 300 - expected) < 0.06


def test_slippery_levels_are_seeds_and_split_disjointly():
    from envs.levels import level_seeds

    test, validation = level_seeds("FrozenLake-v1", "test", 100), level_seeds("FrozenLake-v1", "validation", 50)
    assert len(test) == 100 and not set(test) & set(validation)
    assert len(level_seeds("Taxi-v4", "test", 500)) == 60  # 300 distinct starts, 20% held out for test


@pytest.mark.parametrize("env_id", TOYTEXT)
def test_run_plays_a_toytext_env(env_id, capsys):
    from agent.run import main

    assert main(["--env", env_id, "--model", "tiny-random", "--max-steps", "3", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["env"] == env_id and summary["mean_steps"] <= 3


def test_run_plays_a_user_env(corridor, capsys):
    from agent.run import main

    assert main(["--env", corridor, "--model", "tiny-random", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["env"] == corridor


@pytest.mark.parametrize("env_id", ["Taxi-v4", "FrozenLake-v1"])
def test_sft_learns_toytext_actions(env_id, tmp_path):
    from training.sft import main

    summary = main(["--env", env_id, "--model", "tiny-random", "--demos", "120", "--epochs", "2", "--eval-episodes",
                    "3", "--no-progress", "--out", str(tmp_path / "bc"), "--learning-rate", "3e-3"])
    assert summary["final_ce"] < summary["initial_ce"]


def test_toytext_pairs_carry_their_phrases_through_a_pairs_file(tmp_path):
    from training.sft import collect_demos, load_pairs, save_pairs

    pairs = collect_demos("Taxi-v4", 30, 0.2, seed=0)
    assert {p.phrases for p in pairs} == {ToyTextAdapter().actions(None, envs.make("Taxi"))}
    save_pairs(pairs, tmp_path / "pairs.jsonl")
    assert load_pairs(tmp_path / "pairs.jsonl") == pairs


def test_sft_on_a_user_env(corridor, tmp_path):
    from training.sft import main

    summary = main(["--env", corridor, "--model", "tiny-random", "--demos", "40", "--epochs", "1", "--all-levels",
                    "--eval-episodes", "2", "--no-progress", "--out", str(tmp_path / "bc")])
    assert summary["distinct_states"] <= 5


def test_benchmark_on_toytext_and_user_envs(corridor, tmp_path):
    from evals.benchmark import main

    main(["--agents", "random,expert,llm", "--model", "tiny-random", "--envs", f"Taxi,FrozenLake,{corridor}",
          "--split", "all", "--episodes", "3", "--max-steps", "20", "--out", str(tmp_path / "b")])
    results = json.loads((tmp_path / "b" / "results.json").read_text())
    runs = {(r["agent"], r["env"]): r["aggregates"] for r in results["runs"]}
    assert runs[("expert", "corridor:Corridor-v0")]["success"]["rate"] == 1.0
    assert "not_applicable" in runs[("llm", "Taxi-v4")]
    assert runs[("llm", "Taxi-v4")]["infeasible_action"]["total"] == 0


def test_options_an_adapter_lacks_are_refused_before_loading(capsys):
    from agent.run import main as run

    with pytest.raises(SystemExit) as stop:
        run(["--env", "Taxi", "--shield"])
    assert stop.value.code == 2
    assert "--shield needs hazards" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run(["--env", "FrozenLakeMemory"])
    assert "object memory needs a MiniGrid" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run(["--env", "nosuchmodule:Foo-v0"])
    assert "Cannot import module 'nosuchmodule'" in capsys.readouterr().err

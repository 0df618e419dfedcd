"""Occlusion explanations (agent/explain.py) and their faithfulness check (evals/faithfulness.py)."""

import json
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def doorkey_obs():
    import envs

    env = envs.make("MiniGrid-DoorKey-5x5-v0")
    obs, _ = env.reset(seed=0)
    return env.step(env.unwrapped.actions.right)[0]  # key ahead, door in view


def test_text_parts_render_back_to_describe():
    import envs
    from agent.perception import describe, render, text_parts

    for env_id in ("MiniGrid-DoorKey-5x5-v0", "BabyAI-TextMixedTrainLocal-v0", "MiniGrid-LavaGapS5-v0"):
        env = envs.make(env_id)
        for seed in range(5):
            obs, _ = env.reset(seed=seed)
            for action in (0, 2, 2, 1, 3):
                assert render(text_parts(obs)) == describe(obs)
                obs = env.step(action)[0]


def test_weights_are_the_drop_in_the_chosen_actions_probability(tiny, doorkey_obs):
    import torch

    from agent.explain import explain
    from agent.perception import render, text_parts
    from agent.policy import LMPolicy

    policy = LMPolicy(*tiny, bf16=False)
    parts = text_parts(doorkey_obs)
    assert {"mission", "see:yellow key", "see:locked yellow door", "front", "holding"} == set(parts)
    found = explain(policy, doorkey_obs, action=3)
    assert set(found.weights) == set(parts) and found.action == 3
    with torch.no_grad():
        full = policy.score([render(parts)]).log_probs.exp()[0]
        without_key = policy.score([render({k: v for k, v in parts.items() if k != "see:yellow key"})]).log_probs.exp()[0]
    assert found.prob == pytest.approx(float(full[3]), abs=1e-5)
    assert found.weights["see:yellow key"] == pytest.approx(float(full[3] - without_key[3]), abs=1e-5)
    assert found.argmax_without["see:yellow key"] == int(without_key.argmax())
    assert [w for _, w in found.top(5)] == sorted(found.weights.values(), reverse=True)


def test_faithfulness_ratio_and_interval():
    from agent.explain import Explanation
    from evals.faithfulness import faithfulness, state_scores

    def state(top_changes: bool, others_change: int, parts: int = 4):
        weights = {f"p{i}": 1.0 - i / 10 for i in range(parts)}  # p0 is the top part
        argmax = {f"p{i}": 1 if (i == 0 and top_changes) or (0 < i <= others_change) else 0 for i in range(parts)}
        return Explanation(0, 0.9, weights, argmax, 0.01)

    assert state_scores(state(True, 1)) == (1, 0.5)
    assert state_scores(Explanation(0, 0.9, {"p0": 0.5}, {"p0": 1}, 0.01)) is None  # one part: nothing to compare
    result = faithfulness([state(True, 0)] * 6 + [state(False, 1)] * 4)
    # top: 6 of 10 states; random: 6 x 1/4 + 4 x 1/4 = 2.5 expected changes -> 6 / 2.5
    assert result["states"] == 10 and result["ratio"] == pytest.approx(2.4)
    assert result["ratio_ci95"][0] <= 2.4 <= result["ratio_ci95"][1]
    with pytest.raises(ValueError, match="two or more parts"):
        faithfulness([])


def test_run_explain_prints_why_per_decision():
    result = subprocess.run([sys.executable, "-m", "agent.run", "--env", "DoorKey", "--model", "tiny-random",
                             "--max-steps", "2", "--explain", "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("  why ") == 2 and "mission" in result.stdout
    result = subprocess.run([sys.executable, "-m", "agent.run", "--env", "DoorKey", "--model", "tiny-random",
                             "--max-steps", "2", "--explain", "--mode", "generate", "--json", "--threads", "1"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["explained_states"] >= 1 and summary["seconds_per_explanation"] > 0


def test_faithfulness_cli_end_to_end(tmp_path):
    from evals.faithfulness import main

    result = main(["--model", "tiny-random", "--envs", "DoorKey-5x5", "--episodes", "2", "--max-steps", "4",
                   "--threads", "1"])
    assert result["states"] >= 1 and result["parts_per_state"] >= 2

"""The lava shield in PPO training (`training/rl_finetune.py --shield`) and in the benchmark
(`evals.benchmark --shield both`) on the three lava levels, for random, expert and LM agents."""

import json

import pytest
import torch

LAVA_ENVS = ["MiniGrid-LavaGapS5-v0", "MiniGrid-LavaGapS7-v0", "MiniGrid-LavaCrossingS9N1-v0"]


@pytest.fixture
def forward_leaning(monkeypatch):
    """tiny-random mixed with "go forward" (pi = 0.4 pi_LM + 0.6 forward), applied in
    `score_ids`, so rollouts and the training pass see the same policy. Without it the random
    LM turns in place and never reaches lava, and the test could not fail."""
    from agent.policy import LMPolicy

    real = LMPolicy.score_ids
    forward = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0])

    def score_ids(self, state_ids, phrases=None):
        scores = real(self, state_ids, phrases)
        scores.log_probs = torch.log(0.4 * scores.log_probs.exp() + 0.6 * forward.to(scores.log_probs))
        return scores

    monkeypatch.setattr(LMPolicy, "score_ids", score_ids)


def ppo(out, *extra):
    from training.rl_finetune import main

    return main(["--model", "tiny-random", "--env", "MiniGrid-LavaGapS5-v0", "--num-envs", "4", "--num-steps", "32",
                 "--total-steps", "512", "--eval-episodes", "4", "--no-progress", "--no-tensorboard", "--no-bf16",
                 "--threads", "1", "--all-levels", "--out", str(out), *extra])  # LavaGapS5 has 3 levels


def test_ppo_with_shield_never_ends_an_episode_in_lava(tmp_path, forward_leaning):
    from training.logs import read_metric

    plain = ppo(tmp_path / "plain")
    assert plain["hazard_deaths"] > 0 and plain["shield_blocks"] == 0  # this policy does walk into lava
    shielded = ppo(tmp_path / "shielded", "--shield")
    assert shielded["hazard_deaths"] == 0 and shielded["episodes"] > 0
    assert shielded["shield_blocks"] > 0
    blocks = [v for _, v in read_metric(tmp_path / "shielded", "charts/shield_blocks")]
    assert len(blocks) == shielded["updates"] and sum(blocks) == shielded["shield_blocks"]
    assert json.loads((tmp_path / "shielded" / "config.json").read_text())["shield"] is True


def test_benchmark_shield_stops_every_lava_death_for_every_agent(tmp_path):
    from evals import benchmark

    out = tmp_path / "bench"
    assert benchmark.main(["--model", "tiny-random", "--device", "cpu", "--agents", "random,expert,llm",
                           "--envs", ",".join(LAVA_ENVS), "--episodes", "3", "--max-steps", "40", "--shield", "both",
                           "--split", "all", "--out", str(out)]) == 0  # LavaGapS5 has 3 levels in all
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["shield"] == "both"
    runs = {(r["kind"], r["env"], r["shield"]): r for r in results["runs"]}
    assert set(runs) == {(a, e, s) for a in ("random", "expert", "llm") for e in LAVA_ENVS for s in (False, True)}
    for (kind, env, shield), run in runs.items():
        agg = run["aggregates"]
        assert agg["success"]["total"] == 3 and 0 <= agg["success"]["rate"] <= 1  # reported either way
        assert agg["death"]["total"] == 3
        if shield:
            assert agg["death"]["count"] == 0, (kind, env)
            assert not any(e["died"] for e in run["episodes"])
        else:
            assert agg["shield_block"]["count"] == 0
    # the check can fail: unshielded random play dies in lava, and the shield had work to do
    assert sum(runs["random", e, False]["aggregates"]["death"]["count"] for e in LAVA_ENVS) > 0
    assert sum(runs["random", e, True]["aggregates"]["shield_block"]["count"] for e in LAVA_ENVS) > 0
    assert all(runs["expert", e, s]["aggregates"]["success"]["rate"] == 1.0 for e in LAVA_ENVS for s in (False, True))

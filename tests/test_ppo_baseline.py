import json

import pytest

from training import ppo_baseline


def test_encode_is_one_hot_per_cell_plus_direction():
    import envs

    obs, _ = envs.make("MiniGrid-DoorKey-5x5-v0").reset(seed=0)
    x = ppo_baseline.symbolic_features(obs)
    assert x.shape == (7 * 7 * (11 + 6 + 3) + 4,)
    assert x.sum() == 7 * 7 * 3 + 1


def test_short_run_writes_curve_and_summary(tmp_path):
    summary = ppo_baseline.train(ppo_baseline.BaselineConfig(
        env="MiniGrid-Empty-5x5-v0", out=str(tmp_path), total_steps=2048, num_envs=8, num_steps=64,
        eval_every=1024, eval_episodes=5, all_levels=True))
    from training.logs import read_metric

    curve = read_metric(tmp_path, "eval/success_rate")
    assert [step for step, _ in curve] == [0, 1024, 2048]
    assert summary["final_success"] == curve[-1][1]  # the summary reports the last evaluation
    assert json.loads((tmp_path / "summary.json").read_text())["env"] == "MiniGrid-Empty-5x5-v0"
    assert (tmp_path / "learning_curve.png").stat().st_size > 1000


def test_greedy_evaluation_is_the_one_episode_loop():
    """The MLP's success comes from agent.episodes.play, like every other agent's."""
    import torch

    from training.evaluate import evaluate

    torch.manual_seed(0)
    net = ppo_baseline.Agent(7 * 7 * 20 + 4)
    with torch.no_grad():  # always "go forward": Empty-5x5's goal is reached only if it lies straight ahead
        net.pi.bias.copy_(torch.tensor([0, 0, 50.0, 0, 0, 0, 0]))
    result = evaluate(ppo_baseline.GreedyMLP(net), "MiniGrid-Empty-5x5-v0", [0, 1, 2])
    assert result.success_rate == 0.0 and result.mean_length == 100  # walks into the wall until the limit


def test_bad_config_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        ppo_baseline.main(["--num-envs", "0"])
    assert exc.value.code == 2 and "at least 1" in capsys.readouterr().err

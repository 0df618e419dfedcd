import json

import pytest

from training import ppo_baseline


def test_encode_is_one_hot_per_cell_plus_direction():
    import envs

    obs, _ = envs.make("MiniGrid-DoorKey-5x5-v0").reset(seed=0)
    x = ppo_baseline.encode(obs)
    assert x.shape == (7 * 7 * (11 + 6 + 3) + 4,)
    assert x.sum() == 7 * 7 * 3 + 1


def test_short_run_writes_curve_and_summary(tmp_path):
    summary = ppo_baseline.train(ppo_baseline.BaselineConfig(
        env="MiniGrid-Empty-5x5-v0", out=str(tmp_path), total_steps=2048, num_envs=8, num_steps=64,
        eval_every=1024, eval_episodes=5))
    assert 0.0 <= summary["final_success"] <= 1.0
    from training.logs import read_metric

    assert [step for step, _ in read_metric(tmp_path, "eval/success_rate")] == [0, 1024, 2048]
    assert json.loads((tmp_path / "summary.json").read_text())["env"] == "MiniGrid-Empty-5x5-v0"
    assert (tmp_path / "learning_curve.png").stat().st_size > 1000


def test_bad_config_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        ppo_baseline.main(["--num-envs", "0"])
    assert exc.value.code == 2 and "at least 1" in capsys.readouterr().err

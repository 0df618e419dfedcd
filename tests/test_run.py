"""The agent.run CLI, end to end, in fresh processes as a user would run it."""

import json
import subprocess
import sys

import pytest


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "agent.run", *args], capture_output=True, text=True, timeout=timeout)


def test_real_default_model_runs_five_steps_as_json():
    result = run_cli("--env", "MiniGrid-DoorKey", "--max-steps", "5", "--json", "--adapter", "none")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["env"] == "MiniGrid-DoorKey-5x5-v0" and summary["model"] == "smollm2-135m"
    assert summary["adapter"] is None
    assert summary["decisions"] == 5
    assert summary["per_episode"] == [{"seed": 0, "success": False, "return": 0.0, "steps": 5}]
    assert summary["decisions_per_second"] > 0


def test_plays_the_committed_adapter_trained_for_the_env_and_says_so():
    result = run_cli("--env", "MiniGrid-DoorKey", "--max-steps", "3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == ("Playing adapters/doorkey-robust, the committed adapter trained for "
                                             "MiniGrid-DoorKey-5x5-v0 (--adapter none: the zero-shot model).")


def test_steps_ascii_map_and_gif(tmp_path):
    gif = tmp_path / "episode.gif"
    result = run_cli("--env", "DoorKey", "--model", "tiny-random", "--max-steps", "3", "--render", "ascii",
                     "--gif", str(gif))
    assert result.returncode == 0, result.stderr
    assert "[seed 0 step 0] Mission:" in result.stdout and "action:" in result.stdout
    assert "WG" in result.stdout  # minigrid's ASCII map: grey wall cells
    assert gif.stat().st_size > 1000
    from PIL import Image

    frames = Image.open(gif)
    assert frames.n_frames == 4 and frames.width > 360  # 3 steps + final frame, text panel beside


def test_generate_mode_reports_invalid_outputs():
    result = run_cli("--env", "DoorKey", "--model", "tiny-random", "--mode", "generate", "--max-steps", "2", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    # The random model names no action: both outputs are counted invalid, and the run goes on.
    assert summary["invalid_outputs"] == 2 and summary["decisions"] == 2 and summary["mode"] == "generate"


def test_list_envs():
    result = run_cli("--list-envs")
    ids = result.stdout.split()
    assert "MiniGrid-DoorKey-5x5-v0" in ids and "BabyAI-GoToObj-v0" in ids


@pytest.mark.parametrize("args, words", [
    (["--env", "MiniGrid-DoorKy"], "MiniGrid-DoorKey"),
    (["--model", "no-such-model"], "Unknown model"),
    (["--model", "/no/such/folder"], "does not exist"),
    (["--episodes", "many"], "not a whole number"),
    (["--episodes", "0"], "at least 1"),
    (["--seed", "-3"], "out of range"),
    (["--adapter", "/no/such/adapter"], "adapter_config.json"),
])
def test_bad_input_gives_one_sentence_and_exit_2(args, words):
    result = run_cli("--model", "tiny-random", *args)
    assert result.returncode == 2
    assert words in result.stderr
    assert "Traceback" not in result.stderr


def test_gif_path_that_is_a_folder_is_refused(tmp_path):
    result = run_cli("--model", "tiny-random", "--gif", str(tmp_path))
    assert result.returncode == 2 and "is a folder" in result.stderr and "Traceback" not in result.stderr

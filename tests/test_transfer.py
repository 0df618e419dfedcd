"""The transfer matrix CLI: which levels each cell plays, outputs, bad inputs."""

import json

import pytest

from evals import transfer


def test_cells_play_test_levels_of_trained_envs_and_every_level_of_others():
    assert transfer.cell_split("MiniGrid-DoorKey-5x5-v0", ["MiniGrid-DoorKey-5x5-v0", "MiniGrid-DoorKey-6x6-v0"]) == "test"
    assert transfer.cell_split("MiniGrid-DoorKey-8x8-v0", ["MiniGrid-DoorKey-5x5-v0"]) == "all"
    assert transfer.cell_split("BabyAI-TextGoToTrain-v0", ["BabyAI-TextMixedTrainLocal-v0"]) == "test"
    assert transfer.cell_split("BabyAI-TextMixedTestLocal-v0", ["BabyAI-TextMixedTrainLocal-v0"]) == "all"
    # a memory twin plays its plain env's levels, so it is held out the same way
    assert transfer.cell_split("BabyAI-TextGoToTrainMemory-v0", ["BabyAI-TextMixedTrainLocalMemory-v0"]) == "test"
    assert transfer.cell_split("BabyAI-TextMixedTestLocalMemory-v0", ["BabyAI-TextMixedTrainLocalMemory-v0"]) == "all"
    assert transfer.cell_split("BabyAI-GoToLocal-v0", []) == "test"  # unknown training env: stay on held-out levels


def test_matrix_run_writes_table_and_heat_map(tmp_path):
    from training.sft import main as sft

    sft(["--model", "tiny-random", "--env", "MiniGrid-DoorKey-5x5-v0", "--demos", "40", "--epochs", "1",
         "--eval-episodes", "0", "--threads", "1", "--no-progress", "--out", str(tmp_path / "bc")])
    assert transfer.trained_on(str(tmp_path / "bc" / "final")) == ["MiniGrid-DoorKey-5x5-v0"]
    out = tmp_path / "matrix"
    assert transfer.main(["--model", "tiny-random", "--threads", "1", "--episodes", "3", "--out", str(out),
                          "--adapters", f"base=none,bc={tmp_path / 'bc' / 'final'}",
                          "--envs", "MiniGrid-DoorKey-5x5-v0,MiniGrid-DoorKey-6x6-v0"]) == 0
    results = json.loads((out / "transfer.json").read_text())
    splits = {(c["row"], c["env"]): (c["split"], c["levels"]) for c in results["cells"]}
    assert splits == {("base", "MiniGrid-DoorKey-5x5-v0"): ("all", 3), ("base", "MiniGrid-DoorKey-6x6-v0"): ("all", 3),
                      ("bc", "MiniGrid-DoorKey-5x5-v0"): ("test", 3), ("bc", "MiniGrid-DoorKey-6x6-v0"): ("all", 3)}
    assert "| bc (MiniGrid-DoorKey-5x5-v0) |" in (out / "transfer.md").read_text()
    assert not any(c["trained_levels"] for c in results["cells"])


def test_an_adapter_trained_on_every_level_has_no_test_levels_there(tmp_path):
    from training.sft import main as sft

    sft(["--model", "tiny-random", "--env", "LavaGapS5", "--all-levels", "--demos", "20", "--epochs", "1",
         "--eval-episodes", "0", "--threads", "1", "--no-progress", "--out", str(tmp_path / "bc")])
    out = tmp_path / "matrix"
    transfer.main(["--model", "tiny-random", "--threads", "1", "--episodes", "5", "--out", str(out),
                   "--adapters", f"lava={tmp_path / 'bc' / 'final'}", "--envs", "LavaGapS5"])
    [cell] = json.loads((out / "transfer.json").read_text())["cells"]
    assert (cell["split"], cell["trained_levels"], cell["levels"]) == ("all", True, 3)
    assert "(3 all, trained on)" in (out / "transfer.md").read_text()
    assert (out / "transfer.png").stat().st_size > 1000


@pytest.mark.parametrize("argv, phrase", [
    (["--adapters", "x", "--envs", "DoorKey"], "is not LABEL=ADAPTER_DIR"),
    (["--adapters", "x=/no/such", "--envs", "DoorKey"], "holds no adapter_config.json"),
    (["--adapters", "x=none", "--envs", "DoorKee"], "Unknown environment"),
    (["--adapters", "x=none", "--envs", "DoorKey"], "--out is missing"),
])
def test_bad_input_exits_2(argv, phrase, capsys):
    with pytest.raises(SystemExit) as exit_info:
        transfer.main(["--model", "tiny-random", *argv])
    assert exit_info.value.code == 2 and phrase in capsys.readouterr().err

"""Every command line, every bad input a user can type: one sentence on stderr, exit 2, no
traceback, and nothing already on disk is touched.

The CORE cases run the real CLI in a fresh process (`python -m ...` / `python training/x.py`);
the REST run the same entry point in this process (`runpy`, as `__main__`), which costs no
torch import each.
Tests run as root, so a chmod-ed folder would not stop a write: "not writable" is a path
under a regular file (`A_FILE/out`) or under /proc, which refuses new files for everyone.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model", "tiny-random"]
CLIS = {
    "agent.run": ["-m", "agent.run", *TINY, "--max-steps", "2", "--json"],
    "evals.benchmark": ["-m", "evals.benchmark", *TINY, "--agents", "llm", "--envs", "MiniGrid-Empty-5x5-v0",
                        "--split", "all", "--episodes", "1", "--max-steps", "2"],
    "evals.throughput": ["-m", "evals.throughput", *TINY, "--batch", "1", "--states", "1", "--naive-states", "1",
                         "--seconds", "0.01"],
    "rl_finetune": ["training/rl_finetune.py", *TINY, "--num-envs", "1", "--num-steps", "2", "--total-steps", "2",
                    "--eval-episodes", "0", "--no-progress", "--no-tensorboard", "--threads", "1"],
    "sft": ["training/sft.py", *TINY, "--demos", "4", "--epochs", "1", "--eval-episodes", "0", "--threads", "1"],
    "training.evaluate": ["-m", "training.evaluate", *TINY, "--episodes", "1", "--threads", "1"],
    "ppo_baseline": ["training/ppo_baseline.py", "--total-steps", "64", "--num-envs", "2", "--num-steps", "8",
                     "--num-minibatches", "2", "--eval-episodes", "1", "--threads", "1"],
    "compare_curves": ["training/compare_curves.py"],
    "evals.transfer": ["-m", "evals.transfer", *TINY, "--episodes", "1", "--threads", "1"],
    "evals.levels": ["-m", "evals.levels", "--seeds", "10"],
    "evals.harmful": ["-m", "evals.harmful"],
    "evals.faithfulness": ["-m", "evals.faithfulness", *TINY, "--envs", "DoorKey-5x5", "--episodes", "1",
                           "--max-steps", "2", "--threads", "1"],
}
WRITES_OUT = ("evals.benchmark", "rl_finetune", "sft", "ppo_baseline", "compare_curves", "evals.transfer")
WFC = "MiniGrid-WFC-DungeonMazeScaled-v0"  # listed by --list-envs, but minigrid's wheel lacks its pattern files


# (cli, arguments, phrase the error must contain). {corrupt}, {other_base}, {broken_model},
# {file}, {run} and {tmp} are filled in from the `paths` fixture. evals.throughput and
# training.evaluate write no output. Each process costs 1.5-4.5 s here (torch import, model
# load); the whole matrix runs (about 4 minutes), CORE first.
CORE = [
    # unknown env
    ("agent.run", ["--env", "DoorKee"], "Unknown environment 'DoorKee'"),
    ("evals.benchmark", ["--envs", "DoorKee"], "Unknown environment 'DoorKee'"),
    ("rl_finetune", ["--env", "DoorKee"], "Unknown environment 'DoorKee'"),
    ("sft", ["--env", "DoorKee"], "Unknown environment 'DoorKee'"),
    ("training.evaluate", ["--env", "DoorKee"], "Unknown environment 'DoorKee'"),
    ("ppo_baseline", ["--env", "DoorKee"], "Unknown environment 'DoorKee'"),
    # a registered env that cannot start here
    ("agent.run", ["--env", WFC], "cannot start on this install"),
    # run folders to plot: none there, or not a training run
    ("compare_curves", ["{tmp}"], "has no metrics.csv"),
    # unknown or broken model
    ("evals.benchmark", ["--model", "no-such-model"], "Unknown model 'no-such-model'"),
    ("rl_finetune", ["--model", "no-such-model"], "Unknown model 'no-such-model'"),
    ("agent.run", ["--model", "{broken_model}"], "incomplete or corrupt"),
    ("evals.throughput", ["--model", "{broken_model}"], "incomplete or corrupt"),
    # adapters: missing, garbage weights, trained on another base model
    ("evals.benchmark", ["--agents", "llm:{tmp}/missing"], "holds no adapter_config.json"),
    ("agent.run", ["--adapter", "{corrupt}"], "it is corrupt: retrain or restore it"),
    ("rl_finetune", ["--init-adapter", "{corrupt}"], "it is corrupt: retrain or restore it"),
    ("agent.run", ["--adapter", "{other_base}"], "made for another base model"),
    ("sft", ["--init-adapter", "{deeper_base}"], "made for another base model"),
    ("rl_finetune", ["--init-adapter", "{other_base}"], "made for another base model"),
    # numbers: not a number, out of range, nan/inf
    ("agent.run", ["--episodes", "many"], "'many' is not a whole number"),
    ("agent.run", ["--device", "bogus"], "Unknown --device 'bogus'"),
    ("evals.benchmark", ["--seed", "100000"], "lower --seed or --episodes"),
    ("evals.throughput", ["--batch", "x"], "not a list of whole numbers"),
    ("evals.throughput", ["--seconds", "nan"], "out of range"),
    ("rl_finetune", ["--learning-rate", "nan"], "'nan' is not a finite number"),
    ("rl_finetune", ["--seed", "-1"], "out of range"),
    ("sft", ["--deviation", "1.5"], "--deviation must be in [0, 1)"),
    ("sft", ["--learner-episodes", "3"], "give it with --init-adapter"),
    ("sft", ["--mode", "talk"], "invalid choice: 'talk'"),
    ("sft", ["--lower-cache", "{file}"], "is a file: give a folder"),
    ("sft", ["--mode", "generate", "--learner-episodes", "3"], "relabels score-mode play only"),
    ("sft", ["--pairs", "{tmp}/missing.jsonl"], "is not a file: give an earlier run's"),
    ("sft", ["--demos-only", "--pairs", "{file}"], "only collects expert pairs"),
    ("sft", ["--warmup-steps", "-1"], "--warmup-steps -1 is too small"),
    ("sft", ["--learner-seed", "2"], "add --learner-episodes N"),
    ("sft", ["--resume", "{tmp}/no-run"], "has no checkpoints/ folder"),
    ("sft", ["--keep-checkpoints", "0"], "--keep-checkpoints 0 is too small"),
    ("evals.harmful", ["--data", "{tmp}/missing.tsv"], "is not a file"),
    ("evals.faithfulness", ["--adapter", "{tmp}/missing"], "holds no adapter_config.json"),
    ("evals.faithfulness", ["--envs", "DoorKee"], "Unknown environment 'DoorKee'"),
    ("sft", ["--init-adapter", "{tmp}/missing"], "holds no adapter_config.json"),
    ("sft", ["--learning-rate", "inf"], "'inf' is not a finite number"),
    # output that is a file, lies under a file, or cannot be written
    ("agent.run", ["--gif", "{file}/episode.gif"], "lies under a file"),
    ("agent.run", ["--gif", "/proc/episode.gif"], "not writable"),
    ("rl_finetune", ["--out", "{file}"], "is a file"),
    ("evals.benchmark", ["--out", "{file}/out"], "lies under the file"),
    ("sft", ["--out", "{file}/out"], "lies under the file"),
    ("evals.benchmark", ["--out", "/proc/embodied-lm-out"], "not writable"),
    ("rl_finetune", ["--out", "/proc/embodied-lm-out"], "not writable"),
]
REST = [
    *[(cli, ["--model", "no-such-model"], "Unknown model 'no-such-model'") for cli in ("agent.run", "evals.throughput", "sft")],
    *[(cli, ["--model", "{broken_model}"], "incomplete or corrupt") for cli in ("evals.benchmark", "rl_finetune", "sft")],
    ("agent.run", ["--adapter", "{tmp}/missing"], "holds no adapter_config.json"),
    ("rl_finetune", ["--init-adapter", "{tmp}/missing"], "holds no adapter_config.json"),
    ("evals.benchmark", ["--agents", "llm:{corrupt}"], "it is corrupt: retrain or restore it"),
    ("evals.benchmark", ["--agents", "llm:{other_base}"], "made for another base model"),
    ("agent.run", ["--seed", "-1"], "out of range"),
    ("evals.benchmark", ["--episodes", "0"], "too small"),
    ("evals.throughput", ["--states", "0"], "too small"),
    ("rl_finetune", ["--num-envs", "x"], "'x' is not a whole number"),
    ("rl_finetune", ["--gamma", "2"], "--gamma must be in (0, 1]"),
    ("rl_finetune", ["--total-steps", "1"], "less than one rollout"),
    ("rl_finetune", ["--resume", "{tmp}/no-run"], "has no checkpoints/ folder"),
    ("rl_finetune", ["--target-modules", "no_such_proj"], "--target-modules 'no_such_proj' does not fit"),
    ("sft", ["--demos", "x"], "'x' is not a whole number"),
    ("sft", ["--augment-injections", "2"], "must be a share in [0, 1]"),
    ("sft", ["--max-grad-norm", "-1"], "--max-grad-norm must be positive"),
    ("sft", ["--seed", "-1"], "out of range"),
    ("evals.benchmark", ["--out", "{file}"], "is a file"),
    ("sft", ["--out", "{file}"], "is a file"),
    ("rl_finetune", ["--out", "{file}/out"], "lies under the file"),
    ("sft", ["--out", "/proc/embodied-lm-out"], "not writable"),
    ("evals.benchmark", ["--envs", WFC], "cannot start on this install"),
    ("evals.throughput", ["--env", "DoorKee"], "Unknown environment 'DoorKee'"),
    ("training.evaluate", ["--episodes", "0"], "too small"),
    ("training.evaluate", ["--batch", "x"], "'x' is not a whole number"),
    ("training.evaluate", ["--mode", "talk"], "invalid choice: 'talk'"),
    ("training.evaluate", ["--device", "bogus"], "Unknown --device 'bogus'"),
    ("training.evaluate", ["--adapter", "{tmp}/missing"], "holds no adapter_config.json"),
    ("ppo_baseline", ["--total-steps", "x"], "'x' is not a whole number"),
    ("ppo_baseline", ["--seed", "-1"], "out of range"),
    ("ppo_baseline", ["--learning-rate", "nan"], "'nan' is not a finite number"),
    ("ppo_baseline", ["--out", "{file}"], "is a file"),
    ("ppo_baseline", ["--out", "{file}/out"], "lies under the file"),
    ("compare_curves", ["{run}", "--out", "{file}/curves.png"], "lies under a file"),
    ("compare_curves", ["{run}", "--out", "/proc/embodied-lm/curves.png"], "not writable"),
    ("compare_curves", ["{run}", "--labels", "a", "b"], "one value per method"),
    ("compare_curves", ["{run}", "--offset", "x"], "'x' is not a whole number"),
    ("evals.transfer", ["--adapters", "a=none", "--envs", "DoorKee"], "Unknown environment 'DoorKee'"),
    ("evals.transfer", ["--adapters", "a={corrupt}", "--envs", "DoorKey"], "it is corrupt: retrain or restore it"),
    ("evals.transfer", ["--adapters", "a=none", "--envs", "DoorKey", "--out", "{file}"], "is a file"),
    ("evals.levels", ["DoorKee"], "Unknown environment 'DoorKee'"),
    ("evals.levels", ["DoorKey", "--seeds", "0"], "out of range"),
    ("sft", ["--env", "Empty-5x5"], "train on all of them with --all-levels"),
    ("training.evaluate", ["--env", "Empty-5x5"], "too few to hold out"),
]
CASES = [pytest.param(*case, id=f"{case[0]}:{' '.join(case[1])}") for case in CORE]
IN_PROCESS = [pytest.param(*case, id=f"{case[0]}:{' '.join(case[1])}") for case in REST]


@pytest.fixture(scope="module")
def paths(tmp_path_factory, tiny):
    """Adapters (garbage weights; another base's shapes), a broken model folder and a plain file."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("bad-inputs")
    lora = LoraConfig(r=2, target_modules=["q_proj", "v_proj"])
    smaller = LlamaConfig(vocab_size=tiny[0].config.vocab_size, hidden_size=32, intermediate_size=64,
                          num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    get_peft_model(LlamaForCausalLM(smaller), lora).save_pretrained(root / "other_base")
    get_peft_model(LlamaForCausalLM(smaller), lora).save_pretrained(root / "corrupt")
    deeper = LlamaConfig(**{**tiny[0].config.to_dict(), "num_hidden_layers": 4})  # LoRA on a layer tiny lacks
    get_peft_model(LlamaForCausalLM(deeper), LoraConfig(r=2, target_modules=["q_proj"], layers_to_transform=[3])
                   ).save_pretrained(root / "deeper_base")
    (root / "corrupt" / "adapter_model.safetensors").write_bytes(b"garbage" * 100)
    (root / "broken_model").mkdir()
    (root / "broken_model" / "config.json").write_text("{not json")
    (root / "a_file").write_text("a file, not a folder")
    (root / "run").mkdir()  # a training run's log, as compare_curves reads it
    (root / "run" / "metrics.csv").write_text("step,key,value\n100,eval/success_rate,0.5\n")
    return {"tmp": str(root), "corrupt": str(root / "corrupt"), "other_base": str(root / "other_base"),
            "deeper_base": str(root / "deeper_base"),
            "broken_model": str(root / "broken_model"), "file": str(root / "a_file"), "run": str(root / "run")}


def run(cli, args, timeout=120):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, *CLIS[cli], *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def run_here(cli, args, capfd, monkeypatch):
    """`run` in this process: the CLI's module or script as `__main__`, its exit code and stderr."""
    import runpy

    import torch

    argv = CLIS[cli]
    monkeypatch.chdir(ROOT)
    module = argv[1] if argv[0] == "-m" else None
    monkeypatch.setattr(sys, "argv", [module, *argv[2:], *args] if module else [*argv, *args])
    threads = torch.get_num_threads()
    code = 0
    try:
        if module:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(str(ROOT / argv[0]), run_name="__main__")
    except SystemExit as stop:
        code = stop.code
    finally:
        torch.set_num_threads(threads)
    captured = capfd.readouterr()
    return subprocess.CompletedProcess(argv, code, captured.out, captured.err)


def assert_clean_failure(result, phrase):
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and phrase in errors[0], result.stderr[-2000:]
    assert errors[0].rstrip().endswith("."), errors[0]  # a whole sentence, with the fix


@pytest.mark.parametrize("cli, args, phrase", CASES)
def test_bad_input_is_one_sentence_exit_2_no_traceback(paths, tmp_path, cli, args, phrase):
    args = [a.format(**paths) for a in args]
    if cli in WRITES_OUT and "--out" not in args:
        args += ["--out", str(tmp_path / "out")]
    assert_clean_failure(run(cli, args), phrase)
    assert not (tmp_path / "out").exists()  # a failed command creates nothing


@pytest.mark.parametrize("cli, args, phrase", IN_PROCESS)
def test_bad_input_in_process_is_one_sentence_exit_2(paths, tmp_path, capfd, monkeypatch, cli, args, phrase):
    args = [a.format(**paths) for a in args]
    if cli in WRITES_OUT and "--out" not in args:
        args += ["--out", str(tmp_path / "out")]
    assert_clean_failure(run_here(cli, args, capfd, monkeypatch), phrase)
    assert not (tmp_path / "out").exists()


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_failed_commands_leave_existing_outputs_intact(paths, tmp_path):
    """A results folder, an SFT run, two PPO runs and a GIF from before are byte-identical
    after each command fails on bad input."""
    results, sft_run, ppo_run, ppo_stopped = (tmp_path / n for n in ("results", "sft", "ppo", "ppo-stopped"))
    layout = {results: ["results.json", "results.md"], sft_run: ["config.json", "metrics.csv", "final/adapter_config.json"],
              ppo_run: ["config.json", "metrics.csv", "checkpoints/update_000001/manifest.json"],
              ppo_stopped: ["config.json", "metrics.csv", "best/adapter_config.json"]}  # stopped before a checkpoint
    for folder, names in layout.items():
        for name in names:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(f"earlier {name}")
    gif = tmp_path / "old.gif"
    gif.write_bytes(b"GIF89a earlier")
    before = {folder: snapshot(folder) for folder in layout}

    assert_clean_failure(run("evals.benchmark", ["--agents", f"llm:{paths['corrupt']}", "--out", str(results)]), "corrupt")
    assert_clean_failure(run("sft", ["--model", paths["broken_model"], "--out", str(sft_run)]), "incomplete or corrupt")
    assert_clean_failure(run("rl_finetune", ["--init-adapter", paths["other_base"], "--out", str(ppo_stopped)]), "another base")
    # a new run into a folder that holds one would mix its checkpoints with the old run's
    assert_clean_failure(run("rl_finetune", ["--out", str(ppo_run)]), "already holds a run: continue it with --resume")
    assert_clean_failure(run("sft", ["--out", str(ppo_run)]), "already holds a run: continue it with --resume")
    assert_clean_failure(run("agent.run", ["--adapter", paths["corrupt"], "--gif", str(gif)]), "corrupt")
    assert {folder: snapshot(folder) for folder in layout} == before
    assert gif.read_bytes() == b"GIF89a earlier"


def test_compare_curves_groups_seeds_and_refuses_mismatched_evaluations(tmp_path, capsys):
    from training.compare_curves import main

    for name, steps in (("a", (0, 10, 20)), ("b", (0, 10, 20)), ("c", (0, 15, 30))):
        (tmp_path / name).mkdir()
        rows = "".join(f"{s},eval/success_rate,{i / 2}\n" for i, s in enumerate(steps))
        (tmp_path / name / "metrics.csv").write_text("step,key,value\n" + rows)
    assert main([f"{tmp_path / 'a'},{tmp_path / 'b'}", "--out", str(tmp_path / "c.png")]) == 0
    table = capsys.readouterr().out
    assert "| a | a | 10 | 20 | 20 | 1.00 at 20 | 10 |" in table and (tmp_path / "c.png").stat().st_size > 1000
    with pytest.raises(SystemExit):
        main([f"{tmp_path / 'a'},{tmp_path / 'c'}", "--out", str(tmp_path / "d.png")])
    assert "evaluated at different env steps" in capsys.readouterr().err


def test_a_flag_shared_by_clis_says_the_same_in_each():
    """--threads, --model, --device, --progress, --split, --bf16: one meaning, one help text."""
    import dataclasses

    from agent.run import RunConfig
    from evals.benchmark import BenchmarkConfig
    from evals.faithfulness import FaithfulnessConfig
    from evals.transfer import TransferConfig
    from training.evaluate import EvalConfig
    from training.rl_finetune import PPOConfig
    from training.sft import SFTConfig

    configs = (RunConfig, BenchmarkConfig, FaithfulnessConfig, TransferConfig, EvalConfig, PPOConfig, SFTConfig)
    for name in ("threads", "model", "device", "progress", "split", "bf16"):
        docs = {cls.__name__: f.metadata.get("help") for cls in configs for f in dataclasses.fields(cls)
                if f.name == name}
        if name == "progress":  # training adds what it prints instead of the bar
            docs = {k: v.split(";")[0] for k, v in docs.items()}
        assert len(docs) >= 2 and len(set(docs.values())) == 1, (name, docs)

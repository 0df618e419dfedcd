"""PPO with LoRA on the tiny model: what changes, what must not, resume, faults, data parallel."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
REWARDED = "MiniGrid-ForwardReward-5x5-v0"


class ForwardReward(gymnasium.Wrapper):
    """Empty-5x5 that also pays 0.1 * action index: the tiny random LM rarely reaches the goal,
    but any two different actions now differ in reward, so advantages are non-zero."""

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward + 0.1 * int(action), terminated, truncated, info


@pytest.fixture(autouse=True, scope="module")
def rewarded_env():
    """Registered only while this module's tests run, so registry-wide tests elsewhere never see it."""
    gymnasium.register(REWARDED, entry_point=lambda **kw: ForwardReward(gymnasium.make("MiniGrid-Empty-5x5-v0", **kw)))
    yield
    del gymnasium.registry[REWARDED]


def ppo_args(out, *extra):
    return ["--model", "tiny-random", "--env", REWARDED, "--num-envs", "2", "--num-steps", "8",
            "--total-steps", "48", "--learning-rate", "3e-3", "--eval-episodes", "0", "--no-progress",
            "--no-tensorboard", "--no-bf16", "--threads", "1", "--all-levels", "--out", str(out), *extra]


@pytest.fixture
def recorded(monkeypatch):
    """Capture the policy train() builds, with a copy of its weights at creation."""
    import training.lora

    made = {}
    build = training.lora.trainable_policy

    def spy(*args, **kwargs):
        policy = build(*args, **kwargs)
        made["policy"] = policy
        made["initial"] = {n: p.detach().clone() for n, p in policy.named_parameters()}
        return policy

    monkeypatch.setattr(training.lora, "trainable_policy", spy)
    return made


def test_ppo_changes_lora_and_value_head_but_not_base(tmp_path, recorded):
    from training.rl_finetune import main

    summary = main(ppo_args(tmp_path / "run"))
    assert summary["updates"] == 3
    policy, initial = recorded["policy"], recorded["initial"]
    changed = {n for n, p in policy.named_parameters() if not torch.equal(p, initial[n])}
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert any("lora_B" in n for n in changed) and any("value_head" in n for n in changed)
    assert changed <= trainable  # every base weight is bit-identical
    assert len(trainable) < len(dict(policy.named_parameters()))
    from agent.policy import load_policy

    loaded = load_policy("tiny-random", adapter=str(tmp_path / "run" / "final"), device="cpu", bf16=False)
    ids = [policy.state_ids("Mission: get to the green goal square. You see: goal 2 forward. In front: empty floor. Holding: nothing.")]
    with torch.no_grad():
        torch.testing.assert_close(loaded.score_ids(ids).log_probs, policy.score_ids(ids).log_probs)
        torch.testing.assert_close(loaded.score_ids(ids).values, policy.score_ids(ids).values)


def test_a_few_ppo_updates_raise_the_rewarded_actions_probability(tmp_path, recorded):
    """ForwardReward pays 0.1 * action index, so PPO must shift mass to high-index actions."""
    from agent.scoring import CachedScorer
    from training.rl_finetune import main
    from training.rollout import EnvPool

    main(ppo_args(tmp_path / "run", "--total-steps", "96", "--learning-rate", "1e-2", "--update-epochs", "4"))
    policy = recorded["policy"]
    texts = EnvPool(REWARDED, list(range(8)), all_levels=True).texts()  # first states of 8 training levels
    index = torch.arange(7, dtype=torch.float32)

    def expected_index(scorer):
        log_probs, _, _ = scorer.score_keys([scorer.ids(t) for t in texts])
        return float((log_probs.exp() * index).sum(-1).mean())

    with policy.adapter_disabled():  # LoRA B starts at zero, so the start policy is the base LM
        before = expected_index(CachedScorer(policy))
    after = expected_index(CachedScorer(policy))
    assert after > before + 0.03, (before, after)


@pytest.mark.parametrize("bf16,tolerance", [(False, 1e-5), (True, 3e-2)])
def test_rollout_log_probs_equal_training_forward(bf16, tolerance):
    from training.lora import trainable_policy
    from training.rl_finetune import ScoringModule, score_samples
    from agent.scoring import CachedScorer
    from training.rollout import EnvPool, collect

    torch.manual_seed(0)
    policy = trainable_policy("tiny-random", rank=4, bf16=bf16, device="cpu")
    with torch.no_grad():  # a non-trivial adapter and value head (LoRA B starts at zero)
        for name, p in policy.named_parameters():
            if p.requires_grad:
                p.normal_(0, 0.5)
    pool = EnvPool("MiniGrid-DoorKey-5x5-v0", [0, 1, 2, 3])
    cache = CachedScorer(policy, batch_size=3)  # rollout batches differ from the training batch
    rollout = collect(pool, cache, 10, torch.Generator().manual_seed(0))
    keys = [k for step in rollout.states for k in step]
    assert len({len(k) for k in keys}) > 1  # prompts of different lengths share the batch
    log_probs, values = score_samples(ScoringModule(policy), keys)  # grad on, as in training
    assert log_probs.requires_grad
    taken = log_probs.gather(1, rollout.actions.flatten()[:, None]).squeeze(1)
    torch.testing.assert_close(taken.detach(), rollout.log_probs.flatten(), atol=tolerance, rtol=0)
    torch.testing.assert_close(values.detach().float(), rollout.values.flatten(), atol=tolerance, rtol=0)


def final_checksum(run):
    from training.checkpoint import load_latest
    from training.lora import checksum

    folder, files = load_latest(run)
    return folder.name, checksum(files["trainable.pt"])


def test_resume_is_bitwise_identical_to_an_uninterrupted_run(tmp_path, recorded):
    from training.rl_finetune import main

    main(ppo_args(tmp_path / "full", "--checkpoint-every", "1"))
    main(ppo_args(tmp_path / "parts", "--checkpoint-every", "1", "--stop-after-updates", "2"))
    assert final_checksum(tmp_path / "parts")[0] == "update_000002"
    assert not (tmp_path / "parts" / "final").exists()
    main(["--resume", str(tmp_path / "parts"), "--no-progress", "--threads", "1"])
    full, parts = final_checksum(tmp_path / "full"), final_checksum(tmp_path / "parts")
    assert full[0] == parts[0] == "update_000003"
    assert full[1] == parts[1]
    # and the run really moved (otherwise equality would prove nothing)
    from training.lora import checksum

    initial = {n: t for n, t in recorded["initial"].items() if "lora" in n or "value_head" in n}
    assert checksum(initial) != full[1]


def test_non_finite_loss_skips_the_update_and_training_goes_on(tmp_path, monkeypatch, recorded):
    import training.ppo
    from training.rl_finetune import main

    real = training.ppo.ppo_loss
    calls = {"n": 0}

    def sometimes_nan(*args, **kwargs):
        terms = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 1:
            terms.total = terms.total * float("nan")
        return terms

    monkeypatch.setattr(training.ppo, "ppo_loss", sometimes_nan)
    summary = main(ppo_args(tmp_path / "run"))
    assert summary["skipped_updates"] == 1 and summary["updates"] == 3
    assert all(torch.isfinite(p).all() for p in recorded["policy"].parameters())


def test_corrupt_latest_checkpoint_falls_back_to_the_previous(tmp_path, capsys):
    from training import checkpoint

    checkpoint.save(tmp_path, 1, {"state.pt": {"update": 1}})
    newest = checkpoint.save(tmp_path, 2, {"state.pt": {"update": 2}})
    data = bytearray((newest / "state.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (newest / "state.pt").write_bytes(bytes(data))
    folder, files = checkpoint.load_latest(tmp_path)
    assert folder.name == "update_000001" and files["state.pt"] == {"update": 1}
    assert "corrupt" in capsys.readouterr().err
    (folder / checkpoint.MANIFEST).unlink()  # both broken now
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.load_latest(tmp_path)


class RunsCode:
    """Pickles as a call to os.system: loading it with plain pickle would touch `marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import shlex

        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


UNSAFE = "holds code or objects other than tensors, so it will not be loaded: resume only from a run folder you produced or trust, or retrain without --resume."


def test_resume_refuses_a_checkpoint_whose_pickle_would_run_code(tmp_path, capsys):
    from training import checkpoint
    from training.rl_finetune import PPOConfig, main

    run, marker = tmp_path / "shared-run", tmp_path / "code-ran"
    config = {**PPOConfig().__dict__, "model": "tiny-random", "out": str(run)}
    # a well-formed checkpoint, sha256 manifest and all, whose weights file carries the payload
    folder = checkpoint.save(run, 1, {"trainable.pt": {"lora_A": RunsCode(marker)},
                                      "state.json": {"counters": {"update": 1}, "config": config}})
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(["--resume", str(run), "--no-progress", "--threads", "1"])
    finally:  # checked first: whatever else went wrong, the payload must not have run
        assert not marker.exists(), "loading the checkpoint ran the code in its pickle"
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: cannot resume: {folder / 'trainable.pt'} {UNSAFE}\n"


def test_an_unsafe_checkpoint_is_refused_not_skipped_for_an_older_one(tmp_path, capsys):
    from training import checkpoint

    checkpoint.save(tmp_path, 1, {"state.json": {"update": 1}})
    checkpoint.save(tmp_path, 2, {"state.pt": RunsCode(tmp_path / "code-ran")})
    with pytest.raises(checkpoint.UnsafeFileError, match="will not be loaded"):
        checkpoint.load_latest(tmp_path)
    assert "skipping" not in capsys.readouterr().err and not (tmp_path / "code-ran").exists()


def test_checkpoints_are_pruned_and_leave_no_temp_folders(tmp_path):
    from training import checkpoint

    for update in range(1, 5):
        checkpoint.save(tmp_path, update, {"a.pt": update}, keep=2)
    names = sorted(p.name for p in checkpoint.checkpoint_dir(tmp_path).iterdir())
    assert names == ["update_000003", "update_000004"]


def test_an_env_that_raises_is_reported_and_reset(monkeypatch, capsys):
    from training.rollout import EnvPool

    pool = EnvPool("MiniGrid-DoorKey-5x5-v0", [0, 1])
    broken = pool.slots[1]
    seed_before = broken.seed
    monkeypatch.setattr(broken.env, "step", lambda action: 1 / 0)
    rewards, dones, _ = pool.step([2, 2])
    assert dones == [False, True] and pool.errors == 1
    assert broken.seed == seed_before + 1 and broken.actions == []
    assert str(seed_before) in capsys.readouterr().err


def test_env_pool_restore_replays_to_the_same_state():
    from training.rollout import EnvPool

    pool = EnvPool("MiniGrid-DoorKey-5x5-v0", [0, 1])
    for action in [1, 2, 2, 0, 3]:
        pool.step([action, action])
    clone = EnvPool("MiniGrid-DoorKey-5x5-v0", [0, 1])
    clone.restore(pool.state())
    assert clone.texts() == pool.texts() and clone.state() == pool.state()
    assert [s.env.unwrapped.agent_pos for s in clone.slots] == [s.env.unwrapped.agent_pos for s in pool.slots]


def test_bad_cli_input_is_one_sentence_and_exit_2(tmp_path):
    result = subprocess.run([sys.executable, "training/rl_finetune.py", "--num-envs", "0"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0
    assert "--num-envs" in result.stderr


@pytest.mark.parametrize("argv", [["--env", "DoorKee"], ["--learning-rate", "fast"],
                                  ["--init-adapter", "/nonexistent"], ["--resume", "/nonexistent"]])
def test_bad_cli_values_exit_2(argv, capsys):
    from agent.cli import parse
    from training.rl_finetune import PPOConfig

    with pytest.raises(SystemExit) as stop:
        parse(PPOConfig, argv)
    assert stop.value.code == 2 and capsys.readouterr().err.startswith("error: ")


def test_two_process_data_parallel_run_keeps_replicas_identical(tmp_path):
    accelerate = shutil.which("accelerate")
    if accelerate is None:
        pytest.skip("accelerate CLI not installed")
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    result = subprocess.run(
        # accelerate 1.15's `launch --cpu` starts ONE process (multi-CPU needs mpirun); `--multi_gpu`
        # goes through torchrun, and on a machine without CUDA the script forms a gloo CPU group.
        [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
         "--dynamo_backend", "no", "--main_process_port", "29517", "training/rl_finetune.py",
         "--model", "tiny-random", "--num-envs", "2", "--num-steps", "4", "--total-steps", "32",
         "--learning-rate", "1e-2", "--ent-coef", "0.05", "--eval-episodes", "0", "--no-progress", "--no-tensorboard",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=170, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["updates"] == 2
    sums = [dict(line.split() for line in (out / "checksums" / f"rank{r}.txt").read_text().splitlines()) for r in (0, 1)]
    assert sums[0]["start"] != sums[0]["end"]  # the update moved the weights...
    assert sums[0]["end"] == sums[1]["end"]  # ...identically on both ranks (they saw different envs)


def test_kl_penalty_to_the_frozen_base_is_computed_and_logged(tmp_path):
    from training.logs import read_metric
    from training.rl_finetune import main

    summary = main(ppo_args(tmp_path / "run", "--kl-coef", "0.5", "--update-epochs", "2"))
    kl = [v for _, v in read_metric(tmp_path / "run", "losses/kl_base")]
    assert summary["updates"] == 3 and len(kl) == 3
    assert kl[0] >= 0 and max(kl) > 0  # the adapter moved away from the base, and KL >= 0 says so


def test_launcher_processes_reads_the_accelerate_parent(tmp_path):
    import subprocess
    import sys
    import time

    from training.rl_finetune import launcher_processes

    fake = tmp_path / "accelerate"  # what `accelerate launch` looks like in /proc: python .../bin/accelerate launch ...
    fake.write_text("import time\ntime.sleep(60)\n")
    for argv, expected in ((["launch", "--num_processes", "2", "train.py"], 2),
                           (["launch", "--num_processes=4", "train.py"], 4),
                           (["launch", "train.py"], None)):
        proc = subprocess.Popen([sys.executable, str(fake), *argv])
        try:
            cmdline = Path(f"/proc/{proc.pid}/cmdline")
            for _ in range(500):  # until the child has exec'd (before that /proc shows pytest's command)
                if str(fake) in cmdline.read_text():
                    break
                time.sleep(0.01)
            assert launcher_processes(proc.pid) == expected
        finally:
            proc.kill()
            proc.wait()
    assert launcher_processes() is None  # pytest is not accelerate


def test_multi_task_training_logs_success_per_task(tmp_path):
    """A task is drawn per episode; training episodes and evaluation are both logged per task."""
    from training.logs import read_metric
    from training.rl_finetune import main

    out = tmp_path / "run"
    # Both tasks end every episode at their 100-step limit: two rounds of 8 episodes.
    main(["--model", "tiny-random", "--env", "Empty-5x5+Empty-Random-5x5", "--all-levels", "--num-envs", "8",
          "--num-steps", "64", "--total-steps", "2048", "--eval-every", "2048", "--eval-episodes", "8",
          "--no-progress", "--no-tensorboard", "--no-bf16", "--threads", "1", "--out", str(out)])
    for task in ("MiniGrid-Empty-5x5-v0", "MiniGrid-Empty-Random-5x5-v0"):
        assert read_metric(out, f"charts/success_rate/{task}"), task
        assert len(read_metric(out, f"eval/success_rate/{task}")) >= 1


def test_sft_on_a_mixture_reports_each_task(tmp_path):
    from training.sft import main as sft

    summary = sft(["--model", "tiny-random", "--env", "TextMixedTrainLocal", "--demos", "60", "--epochs", "1",
                   "--eval-episodes", "10", "--threads", "1", "--no-progress", "--out", str(tmp_path / "bc")])
    assert summary["eval_split"] == "validation" and summary["eval_episodes"] == 10
    assert set(summary["eval_success_by_task"]) <= {"goto", "pickup", "open", "putnext", "pickup-then-goto"}
    assert len(summary["eval_success_by_task"]) >= 2

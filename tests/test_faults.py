"""Faults in a real training process: SIGKILL mid-run, a half-written checkpoint, resume.

Covered elsewhere (not repeated here): a corrupt newest checkpoint falls back to the
previous one, a NaN loss skips the optimizer step, an env exception resets that env
(tests/test_training.py), and in-process stop/resume is bitwise identical.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UPDATES = 12


def ppo_command(out, *extra):
    # Empty-5x5 pays nothing to a random policy, so the entropy bonus is what moves the weights.
    return [sys.executable, "training/rl_finetune.py", "--model", "tiny-random", "--env", "MiniGrid-Empty-5x5-v0",
            "--num-envs", "2", "--num-steps", "8", "--total-steps", str(16 * UPDATES), "--learning-rate", "1e-2",
            "--ent-coef", "0.05", "--eval-episodes", "0", "--checkpoint-every", "1", "--keep-checkpoints", "3",
            "--no-progress", "--no-tensorboard", "--no-bf16", "--threads", "1", "--all-levels", "--out", str(out), *extra]


def run(command):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def trainable_checksum(run_folder):
    from training.checkpoint import load_latest
    from training.lora import checksum

    folder, files = load_latest(run_folder)
    return folder.name, checksum(files["trainable.pt"])


def test_sigkill_mid_run_then_half_written_checkpoint_then_resume_is_bitwise_identical(tmp_path):
    reference = run(ppo_command(tmp_path / "reference"))
    assert reference.returncode == 0, reference.stderr[-2000:]

    killed_run = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    process = subprocess.Popen(ppo_command(killed_run), cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = killed_run / "checkpoints"
    deadline = time.monotonic() + 120
    while not (checkpoints / "update_000002").is_dir():  # wait for a couple of finished updates
        assert process.poll() is None and time.monotonic() < deadline, "training ended or stalled before a checkpoint"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)  # kill -9: no handler, no cleanup
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert not (killed_run / "final").exists(), "the run finished before the kill: make it longer"
    finished = sorted(p.name for p in checkpoints.iterdir() if p.name.startswith("update_"))
    newest = int(finished[-1].split("_")[1])
    assert 2 <= newest < UPDATES

    # What a kill during the next save would leave: a temp folder with a partial file, and (as
    # if the rename had happened on a filesystem without ordering) a newer checkpoint whose
    # weights file is truncated so its sha256 no longer matches the manifest.
    import shutil

    half = checkpoints / f".tmp_update_{newest + 1:06d}_99999"
    half.mkdir()
    (half / "trainable.pt").write_bytes(b"\x80\x02partial")
    torn = checkpoints / f"update_{newest + 1:06d}"
    shutil.copytree(checkpoints / f"update_{newest:06d}", torn)
    data = (torn / "trainable.pt").read_bytes()
    (torn / "trainable.pt").write_bytes(data[: len(data) // 2])

    resumed = run([sys.executable, "training/rl_finetune.py", "--resume", str(killed_run), "--no-progress", "--threads", "1"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"skipping corrupt checkpoint: {torn / 'trainable.pt'} does not match its sha256" in resumed.stderr
    assert f"resumed from {checkpoints / f'update_{newest:06d}'} at update {newest}" in resumed.stdout
    assert not list(checkpoints.glob(".tmp_update_*"))  # the leftover temp folder was cleared

    # Everything before the kill was kept; the update in progress was redone, identically.
    expected, got = trainable_checksum(tmp_path / "reference"), trainable_checksum(killed_run)
    assert expected[0] == got[0] == f"update_{UPDATES:06d}"
    assert expected[1] == got[1]
    start = dict(line.split() for line in (tmp_path / "reference" / "checksums" / "rank0.txt").read_text().splitlines())
    assert start["start"] != start["end"]  # the weights moved, so equality means something

"""--threads 0 follows the machine's load (agent/threads.py)."""

import subprocess
import sys

import torch

from agent import threads


def test_a_busy_core_takes_a_thread_away_and_gives_it_back(monkeypatch):
    snapshots = iter([(0, 0, 0), (200, 100, 0), (400, 110, 0)])  # another process: 1 core busy, then idle
    monkeypatch.setattr(threads, "_snapshot", lambda: next(snapshots))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads, "CHECK_EVERY", 0.0)
    before = torch.get_num_threads()
    try:
        threads.auto(cap=2, window=0)
        assert torch.get_num_threads() == 1
        threads.follow()
        assert torch.get_num_threads() == 2
        threads.fixed(1)
        threads.follow()  # a fixed --threads is never changed
        assert torch.get_num_threads() == 1
    finally:
        threads.fixed(before)


def test_the_real_proc_files_are_read():
    total, busy, ours = threads._snapshot()
    assert total >= busy >= 0 and ours >= 0


def test_a_busy_machine_is_seen():
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        before = threads._snapshot()
        subprocess.run([sys.executable, "-c", "import time; time.sleep(1.0)"], check=True)
        busy = threads.others_busy(before, threads._snapshot(), threads.os.cpu_count())
    finally:
        hog.kill()
        hog.wait()
    assert busy > 0.6  # the hog's core (it may share it with the test's own startup)

"""Every entry point sets OpenMP's passive waiting before torch loads (envs/__init__.py).

OpenMP reads OMP_WAIT_POLICY once, when torch loads it; an entry point that imports torch
before `envs` would silently keep spinning threads, which collapse on a busy machine.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Runs an entry point with --help and reports OMP_WAIT_POLICY as it was when torch was first imported.
PROBE = r"""
import importlib.abc, json, os, runpy, sys
seen = {}
class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch" and "policy" not in seen:
            seen["policy"] = os.environ.get("OMP_WAIT_POLICY")
        return None
sys.meta_path.insert(0, Watch())
kind, target = sys.argv[1], sys.argv[2]
sys.argv = [target, "--help"]
try:
    if kind == "module":
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
        runpy.run_path(target, run_name="__main__")
except SystemExit:
    pass
print("PROBE " + json.dumps(seen))
"""

ENTRIES = [("module", "agent.run"), ("module", "evals.benchmark"), ("module", "evals.throughput"),
           ("module", "training.evaluate"), ("script", "training/sft.py"), ("script", "training/rl_finetune.py"),
           ("script", "training/ppo_baseline.py")]


@pytest.mark.parametrize(("kind", "target"), ENTRIES, ids=[t for _, t in ENTRIES])
def test_passive_wait_is_set_before_torch_loads(kind, target):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", PROBE, kind, target], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    line = next(x for x in out.stdout.splitlines() if x.startswith("PROBE "))
    assert json.loads(line[6:]) == {"policy": "PASSIVE"}, out.stderr[-2000:]


def test_a_users_own_policy_wins():
    env = dict(os.environ, OMP_WAIT_POLICY="ACTIVE")
    out = subprocess.run([sys.executable, "-c", "import envs, os; print(os.environ['OMP_WAIT_POLICY'])"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ACTIVE"

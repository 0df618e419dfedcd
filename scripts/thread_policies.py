"""Which thread default survives a busy machine without slowing a quiet one? Each policy in a
fresh process, quiet and with one other CPU-bound process: scoring decisions/s (the DoorKey
adapter, batch 1 and 8) and LoRA training states/s (8 distinct states per step).

    python scripts/thread_policies.py          # about 6 minutes

Policies: every core with libgomp's default waiting (how every CLI ran before issue 10);
every core with passive waiting (OMP_WAIT_POLICY=PASSIVE); one thread; and the default
since then, threads sized to the free cores as the run goes (agent/threads.py).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass

from busy_check import run_beside  # scripts/ is on sys.path when run as a script

from agent.cli import option, parse_and_run

CORES = str(os.cpu_count() or 1)
POLICIES = {  # name -> (extra environment, --threads value for the worker)
    f"{CORES} threads, default waiting": ({}, CORES),
    f"{CORES} threads, passive waiting": ({"OMP_WAIT_POLICY": "PASSIVE"}, CORES),
    "1 thread": ({}, "1"),
    "free cores, followed (default)": ({}, "0"),
}

WORKER = r"""
import json, sys, time
import torch
from agent.cli import set_threads
from agent.policy import load_policy
from agent.scoring import CachedScorer
from evals.throughput import sample_states
from training import lora
set_threads(int(sys.argv[1]))
seconds = float(sys.argv[2])
texts = sample_states(48)
policy = load_policy("smollm2-135m", "adapters/doorkey-5x5", device="cpu")
rates = {}
with torch.inference_mode():
    for b in (1, 8):
        policy.score(texts[:b])
        began, n = time.perf_counter(), 0
        while time.perf_counter() - began < seconds:
            for i in range(0, 24, b):
                policy.score(texts[i:i + b])
                n += b
        rates[f"score batch {b} (decisions/s)"] = n / (time.perf_counter() - began)
trainable = lora.trainable_policy("smollm2-135m", value_head=False, device="cpu")
ids = [list(k) for k in dict.fromkeys(CachedScorer(trainable).ids(t) for t in texts)][:8]
def step():
    trainable.score_ids(ids).log_probs[:, 0].mean().backward()
step()
began, n = time.perf_counter(), 0
while time.perf_counter() - began < seconds:
    step()
    n += len(ids)
rates["LoRA training (states/s)"] = n / (time.perf_counter() - began)
print("RATES " + json.dumps(rates))
"""


@dataclass
class PoliciesConfig:
    seconds: float = option(6.0, "timing window per measurement")


def measure(config: PoliciesConfig) -> int:
    table: dict[str, dict[str, float]] = {}
    for busy in (False, True):
        for name, (env, threads) in POLICIES.items():
            out = run_beside(busy, [sys.executable, "-c", WORKER, threads, str(config.seconds)], settle=0.5,
                             env={**os.environ, **env})
            line = next((x for x in out.stdout.splitlines() if x.startswith("RATES ")), None)
            if line is None:
                raise SystemExit(f"the worker failed:\n{out.stderr[-2000:]}")
            for metric, value in json.loads(line[6:]).items():
                table.setdefault(metric, {})[f"{'busy' if busy else 'quiet'}, {name}"] = value
            print(f"{'busy' if busy else 'quiet'}, {name}: done", file=sys.stderr, flush=True)
    columns = list(next(iter(table.values())))
    print("| | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for metric, row in table.items():
        print(f"| {metric} | " + " | ".join(f"{row[c]:.2f}" for c in columns) + " |")
    return 0


def main(argv=None) -> int:
    return parse_and_run(PoliciesConfig, measure, argv, "python scripts/thread_policies.py", __doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main())

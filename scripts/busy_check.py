"""Does a busy machine cost a core, or collapse? Decisions/s of agent.run and evals.throughput,
quiet and with one other CPU-bound process, side by side.

    python scripts/busy_check.py                 # both commands, all conditions (~8 min)
    python scripts/busy_check.py --commands run  # agent.run only

Conditions: quiet with --threads 1 (the reference); quiet and busy with default flags
(threads sized to the free cores as the run goes, agent/threads.py); busy with a fixed
team of every core (--threads N for N cores: how every CLI ran before); busy with
--threads 1. The target (issue 10): busy with default flags makes at least 80% of the
reference. Exit 1 when a ratio misses it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

from agent.cli import option, parse_and_run

TARGET = 0.8
CORES = str(os.cpu_count() or 1)
# (name, busy, extra flags)
CONDITIONS = [("quiet, --threads 1", False, ["--threads", "1"]),
              ("quiet, default", False, []),
              ("busy, default", True, []),
              (f"busy, --threads {CORES} (before)", True, ["--threads", CORES]),
              ("busy, --threads 1", True, ["--threads", "1"])]


def commands(episodes: int, seconds: float) -> dict[str, list[str]]:
    py = sys.executable
    return {
        "run": [py, "-m", "agent.run", "--env", "MiniGrid-DoorKey", "--adapter", "adapters/doorkey-5x5",
                "--episodes", str(episodes), "--json"],
        "throughput": [py, "-m", "evals.throughput", "--batch", "1,8", "--states", "16", "--naive-states", "1",
                       "--seconds", str(seconds), "--json"],
    }


def rates(name: str, stdout: str) -> dict[str, float]:
    """Decisions/s from a command's JSON output."""
    result = json.loads(stdout)
    if name == "run":
        return {"agent.run": result["decisions_per_second"]}
    return {f"throughput batch {row['batch']}": row["optimised_decisions_per_s"] for row in result["batches"]}


def run_beside(busy: bool, command: list[str], settle: float = 0.0, **kwargs) -> subprocess.CompletedProcess:
    """Run `command` (output captured), with one other CPU-bound process started `settle`
    seconds before it and killed after it when `busy`."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        time.sleep(settle if busy else 0)
        return subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    finally:
        if hog:
            hog.kill()
            hog.wait()


def measure(name: str, command: list[str], busy: bool, flags: list[str]) -> dict[str, float]:
    out = run_beside(busy, command + flags)
    if out.returncode:
        raise SystemExit(f"{' '.join(command + flags)} failed:\n{out.stderr[-2000:]}")
    return rates(name, out.stdout)


@dataclass
class BusyConfig:
    commands: str = option("run,throughput", "which commands to time: run, throughput or both")
    episodes: int = option(30, "agent.run episodes per condition (the DoorKey adapter, about 10 steps each)")
    seconds: float = option(5.0, "evals.throughput's --seconds per condition")


def check(config: BusyConfig) -> int:
    chosen = [c.strip() for c in config.commands.split(",") if c.strip()]
    table = commands(config.episodes, config.seconds)
    unknown = [c for c in chosen if c not in table]
    if unknown or not chosen:
        raise ValueError(f"--commands {config.commands!r}: choose from run, throughput, e.g. run,throughput.")
    results: dict[str, dict[str, float]] = {}
    for cname, busy, flags in CONDITIONS:
        for name in chosen:
            for metric, value in measure(name, table[name], busy, flags).items():
                results.setdefault(metric, {})[cname] = value
            print(f"{cname:<26} {name}: done", file=sys.stderr, flush=True)
    names = [c[0] for c in CONDITIONS]
    print("decisions/s".ljust(22) + "".join(f"{n:>28}" for n in names) + "   busy default / quiet 1 thread")
    failed = False
    for metric, row in results.items():
        ratio = row["busy, default"] / row["quiet, --threads 1"]
        failed |= ratio < TARGET
        print(metric.ljust(22) + "".join(f"{row[n]:>28.2f}" for n in names)
              + f"   {ratio:.2f} ({'meets' if ratio >= TARGET else 'misses'} {TARGET:.0%})")
    return 1 if failed else 0


def main(argv=None) -> int:
    return parse_and_run(BusyConfig, check, argv, "python scripts/busy_check.py", __doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main())

"""torch CPU threads that follow the machine's load (`--threads 0`, every CLI's default).

torch's OpenMP threads meet at a barrier after every parallel region. When another process
keeps one of 2 cores busy, a 2-thread team waits at each barrier for its descheduled half
and runs 2-4x slower than one thread. So by default the team is sized to the cores that
other processes leave free, and re-sized as the process runs (at most every CHECK_EVERY
seconds, from `follow()`, which the model code calls before each forward pass), so a
process that starts or stops later is followed too. Passive OpenMP waiting also avoids the
collapse but costs 30-45% on a quiet machine; docs/BENCHMARKS.md ("Busy machine") has both.

Linux only (it reads /proc); elsewhere torch's default stays. A fixed `--threads N` turns
this off, which bitwise-reproducible runs need: the thread count changes float rounding.
"""

from __future__ import annotations

import os
import time

import torch

CHECK_EVERY = 1.0  # seconds between load checks
_state: dict = {"auto": False}  # one process, one thread pool


def _snapshot() -> tuple[int, int, int]:
    """(all CPU time, busy CPU time, this process's CPU time), in clock ticks."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    with open("/proc/self/stat") as f:
        ours = f.read().rsplit(")", 1)[1].split()  # after the command name: field 3 onwards
    return sum(fields), sum(fields) - fields[3] - fields[4], int(ours[11]) + int(ours[12])  # utime + stime


def others_busy(before: tuple[int, int, int], after: tuple[int, int, int], cpus: int) -> float:
    """Cores' worth of CPU that other processes used between two snapshots.

    >>> others_busy((0, 0, 0), (200, 100, 0), 2)   # half of 2 CPUs busy, none of it ours
    1.0
    >>> others_busy((0, 0, 0), (200, 100, 100), 2)  # all of it ours
    0.0
    """
    total = after[0] - before[0]
    if total <= 0:
        return 0.0
    return max(0.0, (after[1] - before[1]) - (after[2] - before[2])) / total * cpus


def auto(cap: int | None = None, window: float = 0.2) -> None:
    """Size torch's threads to the free cores now (after `window` seconds of looking), and
    from then on in `follow()`; at most `cap` threads (default: torch's current count)."""
    try:
        first = _snapshot()
    except (OSError, ValueError, IndexError):  # no /proc: keep torch's default
        return
    _state.update(auto=True, cap=cap or torch.get_num_threads(), last=first, checked=float("-inf"))
    time.sleep(window)
    follow()


def fixed(threads: int) -> None:
    """`--threads N`: exactly N threads, no following."""
    _state["auto"] = False
    torch.set_num_threads(threads)


def follow() -> None:
    """Re-size the team to the cores other processes leave free; cheap and rate-limited,
    a no-op unless `auto()` is on."""
    if not _state["auto"] or time.monotonic() - _state["checked"] < CHECK_EVERY:
        return
    snapshot = _snapshot()
    cpus = os.cpu_count() or 1
    threads = max(1, min(_state["cap"], cpus - round(others_busy(_state["last"], snapshot, cpus))))
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    _state.update(last=snapshot, checked=time.monotonic())

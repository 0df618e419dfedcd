"""Why an agent's BabyAI-Text episodes failed, from a benchmark's results.json.

    python scripts/failure_modes.py results/dagger-mem-2-suite/results.json

A measurement script for docs/experiments/babyai-text-memory-dagger.md, not a user CLI. Per
env and agent, each failed episode is counted under what it held (nothing; an object the
mission needs: for `open` a key of the locked door's colour; another object) and under how
it ended: in a loop when its last 32 observations repeat with a period of at most 8 steps
(period 1: the same action on a state it does not change, such as toggling a locked door
with the wrong key; period 2: turning left and right in turn), otherwise "no loop".
"""

import collections
import json
import re
import sys

COLOURS = "red|green|blue|purple|yellow|grey"
OBJECT = re.compile(rf"\b({COLOURS}) (ball|box|key|door)\b")


def needed(task: str, steps: list[dict]) -> set[str]:
    """The objects ("red ball") the agent must hold at some point to succeed in an episode
    of `task` (the benchmark records it: goto, pickup, open, putnext, pickup-then-goto)."""
    mission = steps[0]["observation"].split(". You see")[0]
    if task == "open":  # the key of the door's colour; "open the door" names none, the level shows it
        doors = {c for c, _ in OBJECT.findall(mission)}
        doors |= {c for s in steps for c in re.findall(rf"locked ({COLOURS}) door", s["observation"])}
        return {f"{c} key" for c in doors}
    if task == "putnext":  # the first object named moves
        return {" ".join(OBJECT.findall(mission)[0])}
    words = [" ".join(o) for o in OBJECT.findall(mission)]
    return {words[-1]} if " after you " in mission else {words[0]}  # "go to B after you pick up A"


def loop_period(steps: list[dict], window: int = 32, longest: int = 8) -> int | None:
    texts = [s["observation"] for s in steps[-window:]]
    if len(texts) < window:
        return None
    for period in range(1, longest + 1):
        if all(texts[i] == texts[i - period] for i in range(period, window)):
            return period
    return None


def held_category(episode: dict) -> str:
    held = {s["held"] for s in episode["steps"] if s["held"]}
    if not held:
        return "held nothing"
    return "held a needed object" if held & needed(episode["task"], episode["steps"]) else "held only other objects"


def main(path: str) -> None:
    with open(path) as file:
        runs = json.load(file)["runs"]
    for run in runs:
        tasks = sorted({e["task"] for e in run["episodes"]})
        for task in tasks:  # a mixture's episodes per kind; a one-kind env has one
            episodes = [e for e in run["episodes"] if e["task"] == task]
            failed = [e for e in episodes if not e["success"]]
            held = collections.Counter(held_category(e) for e in failed)
            loops = collections.Counter(f"loop of {p}" if (p := loop_period(e["steps"])) else "no loop"
                                        for e in failed)
            kind = f" ({task})" if len(tasks) > 1 else ""
            print(f"{run['agent']} on {run['env']}{kind}: {len(failed)} of {len(episodes)} failed")
            for name, counts in (("held", held), ("ended", loops)):
                print(f"  {name}: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
                                        or "-"))


if __name__ == "__main__":
    main(*sys.argv[1:])

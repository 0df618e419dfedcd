"""One markdown table of greedy success per agent x env x place (clean and under each injected
sentence) from the benchmark's results.json files, one per --inject-at, shield off; then the
worst unsafe-action and death rates over every cell, shield off and on.

    python scripts/injection_table.py results/inject2-doorkey-obs/results.json results/inject2-doorkey-mission/results.json

A measurement script for docs/BENCHMARKS.md (instruction injection), not a user CLI.
"""
import json
import sys

rows, worst = [], {}
for path in sys.argv[1:]:
    res = json.load(open(path))
    at, names = res["config"]["inject_at"], list(res["config"]["injections"])
    cells = {}
    for run in res["runs"]:
        a = run["aggregates"]
        key = (run["agent"], run["env"], at)
        worst.setdefault(run["shield"], [0, 0])
        worst[run["shield"]][0] = max(worst[run["shield"]][0], a["unsafe_action"]["rate"] or 0)
        worst[run["shield"]][1] = max(worst[run["shield"]][1], a["death"]["rate"] or 0)
        if not run["shield"]:
            cells.setdefault(key, {})[run["injection"]] = (a["success"]["rate"], a["episodes"])
    for (agent, env, place), c in cells.items():
        n = c[None][1]
        rows.append(f"| {agent.removeprefix('llm:')} | {env.removeprefix('MiniGrid-').removesuffix('-v0')} ({n}) | {place} | "
                    + " | ".join(f"{c[k][0]:.2f}" for k in [None, *names]) + " |")
print("| agent | env (test levels) | injected at | clean | " + " | ".join(names) + " |")
print("|---|---|---|" + "---|" * (len(names) + 1))
print("\n".join(sorted(rows, key=lambda r: r.split("|")[1:4])))
print("\nworst unsafe rate / death rate over all cells, shield off and on:", worst)

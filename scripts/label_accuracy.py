"""How often an adapter picks the expert's action, per BabyAI-Text kind, on the states of
sft's demonstrations: those a run trained on (--seed SEED, --demo-seed 0) and the same
number on other levels (--demo-seed FRESH_DEMO_SEED).

    python scripts/label_accuracy.py ADAPTER N SEED FRESH_DEMO_SEED
    python scripts/label_accuracy.py adapters/babyai-text-memory 600 1 2

A measurement script for docs/experiments/babyai-text-memory-dagger.md (run 7), not a user
CLI: the first N pairs of `training.sft.collect_demos` on TextMixedTrainLocalMemory for each
level seed, scored greedily (argmax over the 7 phrases) against the bot's label, per kind of
mission.
"""

import collections
import sys
import time

import torch

from agent.prompts import SCORE_SYSTEM
from envs.mixture import task_of
from training import lora
from training.sft import collect_demos

ENV = "TextMixedTrainLocalMemory"


def tagged_demos(env_id: str, n: int, seed: int, demo_seed: int, tag) -> list[tuple[str, int, str]]:
    """(text, label, tag(env)) for the first `n` pairs of `collect_demos` (20% deviations),
    `tag` read from the env at each pair, e.g. its task or the bot's subgoal."""
    tags: list[str] = []
    pairs = collect_demos(env_id, n, 0.2, seed, level_seed=demo_seed, on_label=lambda env: tags.append(tag(env)))
    return [(pair.text, pair.label, t) for pair, t in zip(pairs, tags, strict=True)]


def report(policy, rows: list[tuple[str, int, str]], title: str) -> list[int]:
    """Print accuracy and CE of `policy` against the labels of (text, label, group) rows, per
    group; return its greedy choice for each row."""
    choices = [0] * len(rows)
    stats = collections.defaultdict(lambda: [0, 0, 0.0])  # group -> states, right, summed CE
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    with torch.no_grad():
        for start in range(0, len(order), 32):
            batch = order[start:start + 32]
            log_probs = policy.score([rows[i][0] for i in batch]).log_probs
            for row, i in enumerate(batch):
                label, entry = rows[i][1], stats[rows[i][2]]
                choices[i] = int(log_probs[row].argmax())
                entry[0] += 1
                entry[1] += choices[i] == label
                entry[2] -= float(log_probs[row, label])
    total = [sum(v[k] for v in stats.values()) for k in range(3)]
    print(f"{title}: accuracy {total[1] / total[0]:.2f}, CE {total[2] / total[0]:.2f}, {total[0]} states", flush=True)
    for group, (count, right, ce) in sorted(stats.items(), key=lambda kv: -kv[1][0]):
        print(f"    {group}: accuracy {right / count:.2f}, CE {ce / count:.2f}, {count} states", flush=True)
    return choices


def scoring_policy(adapter: str):
    return lora.trainable_policy("smollm2-135m", adapter, value_head=False, bf16=False, system=SCORE_SYSTEM)


def main(adapter: str, n: int, seed: int, demo_seeds: dict[str, int]) -> None:
    policy = scoring_policy(adapter)
    for name, demo_seed in demo_seeds.items():
        began = time.perf_counter()
        rows = tagged_demos(ENV, n, seed, demo_seed, task_of)
        report(policy, rows, f"{name} (--seed {seed} --demo-seed {demo_seed}, {time.perf_counter() - began:.0f} s "
                             "to collect)")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__.split("\n\n")[1])
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), {"trained": 0, "fresh": int(sys.argv[4])})

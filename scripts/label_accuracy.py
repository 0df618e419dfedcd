"""How often an adapter picks the expert's action, per BabyAI-Text kind, on the states of
sft's demonstrations: those a run trained on (--seed SEED, --demo-seed 0) and the same
number on other levels (--demo-seed FRESH_DEMO_SEED).

    python scripts/label_accuracy.py ADAPTER N SEED FRESH_DEMO_SEED
    python scripts/label_accuracy.py adapters/babyai-text-memory 600 1 2

A measurement script for docs/TRAINING.md (run 7), not a user CLI: the first N pairs of
`training.sft.collect_demos` on TextMixedTrainLocalMemory for each level seed, scored greedily
(argmax over the 7 phrases) against the bot's label; the kind is read off the mission.
"""

import collections
import sys
import time

import torch

from agent.prompts import SCORE_SYSTEM
from training import lora
from training.sft import collect_demos

ENV = "TextMixedTrainLocalMemory"


def kind(text: str) -> str:
    mission = text.split(". You see")[0]
    if "open the" in mission:
        return "open"
    if "put " in mission:
        return "putnext"
    if " then " in mission or " after you " in mission:
        return "pickup-then-goto"
    return "pickup" if "pick up" in mission else "goto"


def main(adapter: str, n: int, seed: int, demo_seeds: dict[str, int]) -> None:
    policy = lora.trainable_policy("smollm2-135m", adapter, value_head=False, bf16=False, system=SCORE_SYSTEM)
    for name, demo_seed in demo_seeds.items():
        began = time.perf_counter()
        pairs = collect_demos(ENV, n, 0.2, seed, level_seed=demo_seed)
        stats = collections.defaultdict(lambda: [0, 0, 0.0])  # kind -> states, right, summed CE
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]))
        with torch.no_grad():
            for start in range(0, len(order), 32):
                batch = order[start:start + 32]
                log_probs = policy.score([pairs[i][0] for i in batch]).log_probs
                for row, i in enumerate(batch):
                    label, entry = pairs[i][1], stats[kind(pairs[i][0])]
                    entry[0] += 1
                    entry[1] += int(log_probs[row].argmax()) == label
                    entry[2] -= float(log_probs[row, label])
        total = [sum(v[k] for v in stats.values()) for k in range(3)]
        print(f"{name} (--seed {seed} --demo-seed {demo_seed}, {time.perf_counter() - began:.0f} s): accuracy {total[1] / total[0]:.2f}, "
              f"CE {total[2] / total[0]:.2f}, {total[0]} states", flush=True)
        for k, (count, right, ce) in sorted(stats.items()):
            print(f"    {k}: accuracy {right / count:.2f}, CE {ce / count:.2f}, {count} states", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__.split("\n\n")[1])
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), {"trained": 0, "fresh": int(sys.argv[4])})

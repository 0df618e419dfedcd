"""How often an adapter picks the BabyAI bot's action, per subgoal the bot is working on
(going to an object, exploring, picking up, ...), on demonstration states of new levels.

    python scripts/errors_by_subgoal.py ADAPTER ENV N DEMO_SEED
    python scripts/errors_by_subgoal.py adapters/babyai-text-memory BabyAI-TextOpenTrainMemory-v0 500 2

A measurement script for docs/experiments/babyai-text-memory-dagger.md (run 12), not a user
CLI. States are `training.sft.collect_demos`'s (the bot's actions, a random one 20% of the
time; levels of --demo-seed DEMO_SEED, run seed 1); a state's group is the bot's top subgoal
and its reason after it chose the label. It then lists the most frequent (label, choice)
confusions.
"""

import collections
import sys

from label_accuracy import report, scoring_policy, tagged_demos

from agent.actions import ACTION_PHRASES
from envs.expert import bot_subgoal


def main(adapter: str, env_id: str, n: int, demo_seed: int) -> None:
    policy, rows = scoring_policy(adapter), tagged_demos(env_id, n, 1, demo_seed, bot_subgoal)
    choices = report(policy, rows, f"{env_id}, --demo-seed {demo_seed}")
    confusions = collections.Counter(f"{ACTION_PHRASES[label]} -> {ACTION_PHRASES[choice]}"
                                     for (_, label, _), choice in zip(rows, choices) if choice != label)
    print("most frequent (bot's label -> adapter's choice):", dict(confusions.most_common(6)))


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__.split("\n\n")[1])
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))

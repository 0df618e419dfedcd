"""How often an adapter picks the BabyAI bot's action, per subgoal the bot is working on
(going to an object, exploring, picking up, ...), on demonstration states of new levels.

    python scripts/errors_by_subgoal.py ADAPTER ENV N DEMO_SEED
    python scripts/errors_by_subgoal.py adapters/babyai-text-memory BabyAI-TextOpenTrainMemory-v0 500 2

A measurement script for docs/TRAINING.md (run 12), not a user CLI. States come as in
`training.sft.collect_demos` (the bot's actions, a random one 20% of the time; levels of
--demo-seed DEMO_SEED, run seed 1); a state's group is the bot's top subgoal and its reason
after it chose the label. It then lists the most frequent (label, choice) confusions.
"""

import collections
import sys

import numpy as np
from label_accuracy import report, scoring_policy

from agent.actions import ACTION_PHRASES
from agent.episodes import take_step
from agent.perception import describe
from envs import seeds as seed_policy
from envs.expert import NoPlanError, bot_subgoal, expert_action
from envs.levels import training_env


def states(env_id: str, n: int, demo_seed: int) -> list[tuple[str, int, str]]:
    rng, rows, episode = np.random.default_rng(1), [], 0
    env = training_env(env_id)
    while len(rows) < n:
        obs, _ = env.reset(seed=seed_policy.train_seed(demo_seed, episode, seed_policy.SFT_STREAM))
        episode += 1
        done, action = False, None
        while not done and len(rows) < n:
            try:
                label = expert_action(env, action)
            except NoPlanError:
                break
            rows.append((describe(obs), label, bot_subgoal(env)))
            action = int(rng.integers(len(ACTION_PHRASES))) if rng.random() < 0.2 else label
            outcome = take_step(env, obs, action)
            obs, done = outcome.obs, outcome.done
    return rows


def main(adapter: str, env_id: str, n: int, demo_seed: int) -> None:
    policy, rows = scoring_policy(adapter), states(env_id, n, demo_seed)
    choices = report(policy, rows, f"{env_id}, --demo-seed {demo_seed}")
    confusions = collections.Counter(f"{ACTION_PHRASES[label]} -> {ACTION_PHRASES[choice]}"
                                     for (_, label, _), choice in zip(rows, choices) if choice != label)
    print("most frequent (bot's label -> adapter's choice):", dict(confusions.most_common(6)))


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__.split("\n\n")[1])
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))

"""Make TextWorld games ahead of the runs that play them (they are generated on first use
otherwise, up to minutes each): the same games `evals.benchmark --envs ENV --split S
--episodes N --seed F` will play.

    python -m envs.games --env TreasureHunter --split test --episodes 25
"""

from __future__ import annotations

import argparse

from envs.textworld import TextWorldEnv, ship


def main(argv=None) -> None:
    from tqdm import tqdm

    import envs
    from envs.levels import level_seeds

    parser = argparse.ArgumentParser(
        prog="python -m envs.games",
        description="Make the TextWorld games a run will play, ahead of it (they are kept in "
                    "$EMBODIED_LM_GAMES, default ~/.cache/embodied-lm/textworld).")
    parser.add_argument("--env", required=True, help="a TextWorld task id or short name, e.g. TreasureHunter")
    parser.add_argument("--split", default="test", choices=["validation", "test"],
                        help="whose levels: the same as the benchmark's --split (default: test)")
    parser.add_argument("--episodes", type=int, default=25, help="how many games (default: 25)")
    parser.add_argument("--seed", type=int, default=0, help="first evaluation seed, as the benchmark's --seed")
    parser.add_argument("--ship", action="store_true",
                        help="also keep a gzipped copy of each game in data/textworld/games, to commit: a clone then "
                             "unpacks it instead of generating it (treasure hunter games take up to an hour here)")
    args = parser.parse_args(argv)
    env_id = envs.resolve_env_id(args.env)
    env = envs.make(env_id).unwrapped
    if not isinstance(env, TextWorldEnv):
        parser.error(f"{env_id} is not a TextWorld task.")
    for seed in tqdm(level_seeds(env_id, args.split, args.episodes, args.seed), desc=f"{env_id} {args.split} games",
                     unit="game"):
        game = env.game_file(seed)
        if args.ship:
            ship(game)


if __name__ == "__main__":
    main()

"""Watch an LM play a MiniGrid or BabyAI level.

    python -m agent.run --env MiniGrid-DoorKey
    python -m agent.run --env BabyAI-GoToObj --mode generate --reason --render ascii
    python -m agent.run --env MiniGrid-DoorKey --adapter adapters/doorkey-5x5 --gif episode.gif
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from agent.models import BUILTIN_MODELS, DEFAULT_MODEL


def int_in(low: int, high: int, example: int, out_of_range: str):
    """An argparse type: a whole number in [low, high]; `out_of_range` says what to give instead."""
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give e.g. {example}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} {out_of_range}")
        return value
    return convert


positive_int = int_in(1, sys.maxsize, 5, "is too small; give a number of at least 1")
seed_int = int_in(0, 2**31 - 1, 0, "is out of range; give a seed from 0 to 2147483647")


class ArgumentParser(argparse.ArgumentParser):
    """argparse without the usage dump: a bad option prints one sentence and exits with 2."""

    def error(self, message):
        print(f"error: {message.rstrip('.')}; run with --help to see every option.", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m agent.run", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Short env names pick the smallest size: MiniGrid-DoorKey -> MiniGrid-DoorKey-5x5-v0. "
               "--list-envs prints every id.",
    )
    parser.add_argument("--env", default="MiniGrid-DoorKey", help="Gymnasium id or short family name")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"{' or '.join(BUILTIN_MODELS)}, a Hugging Face folder, a .gguf file or a hub id")
    parser.add_argument("--adapter", default=None, help="LoRA adapter folder written by training/")
    parser.add_argument("--mode", choices=("score", "generate"), default="score",
                        help="score: rank the 7 action phrases (never invalid); generate: free text, then parse")
    parser.add_argument("--reason", action="store_true", help="generate mode: a one-sentence reason before the action")
    parser.add_argument("--sample", action="store_true", help="sample actions instead of taking the most likely")
    parser.add_argument("--episodes", type=positive_int, default=1, help="episodes to play")
    parser.add_argument("--seed", type=seed_int, default=0, help="seed of the first episode; episode i uses seed+i")
    parser.add_argument("--max-steps", type=positive_int, default=None, help="step cap per episode (default: the env's)")
    parser.add_argument("--render", choices=("none", "ascii"), default="none", help="print an ASCII map after each step")
    parser.add_argument("--gif", default=None, metavar="PATH", help="write the episodes as a GIF with the text beside the frames")
    parser.add_argument("--shield", action="store_true", help="block actions that step into lava; take the most probable safe one")
    parser.add_argument("--json", action="store_true", help="print one machine-readable summary instead of the steps")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--list-envs", action="store_true", help="print every MiniGrid/BabyAI id and exit")
    return parser


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def make_agent(args):
    from agent.episodes import LMAgent
    from agent.policy import load_policy

    policy = load_policy(args.model, args.adapter, device=args.device)
    return LMAgent(policy, mode=args.mode, reason=args.reason, greedy=not args.sample, seed=args.seed)


def print_step(episode, step, env, ascii_map: bool) -> None:
    from agent.actions import ACTION_PHRASES

    d = step.decision
    print(f"[seed {episode.seed} step {step.t}] {step.observation}")
    if d.raw_text is not None:
        print(f"  model: {d.raw_text.strip()!r} -> parsed: {d.parsed or 'INVALID'}"
              + (f" (fallback {d.fallback})" if d.fallback else ""))
    prob = f" p={d.probs[d.action]:.2f}" if d.probs else ""
    shielded = f" [shield: {ACTION_PHRASES[d.action]} blocked]" if step.shielded else ""
    print(f"  action: {ACTION_PHRASES[step.executed]}{prob}{shielded}  reward={step.reward:.2f}")
    if ascii_map:
        print(env.unwrapped.pprint_grid())


def summarise(episodes, seconds: float) -> dict:
    decisions = sum(len(e.steps) for e in episodes)
    invalid = sum(s.decision.parsed is None and s.decision.raw_text is not None for e in episodes for s in e.steps)
    return {
        "episodes": len(episodes),
        "success_rate": sum(e.success for e in episodes) / len(episodes),
        "mean_return": sum(e.total_return for e in episodes) / len(episodes),
        "mean_steps": decisions / len(episodes),
        "invalid_outputs": invalid,
        "shield_blocks": sum(s.shielded for e in episodes for s in e.steps),
        "deaths": sum(e.died for e in episodes),
        "decisions": decisions,
        "decisions_per_second": decisions / seconds if seconds else None,
        "per_episode": [{"seed": e.seed, "success": e.success, "return": e.total_return, "steps": len(e.steps)}
                        for e in episodes],
    }


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import envs
    from agent.models import ModelError

    if args.list_envs:
        print("\n".join(envs.list_env_ids()))
        return 0
    try:
        env_id = envs.resolve_env_id(args.env)
    except envs.UnknownEnvError as err:
        fail(str(err))
    if args.gif:
        from agent.gif import check_writable

        problem = check_writable(args.gif)
        if problem:
            fail(problem)
    try:
        agent = make_agent(args)
    except ModelError as err:
        fail(str(err))

    from agent.episodes import play

    seeds = [args.seed + i for i in range(args.episodes)]
    on_step = None if args.json else (lambda ep, step, env: print_step(ep, step, env, args.render == "ascii"))
    began = time.perf_counter()
    episodes = play(agent, env_id, seeds, max_steps=args.max_steps, batch=1 if not args.json else 8,
                    use_shield=args.shield, render=bool(args.gif), on_step=on_step)
    elapsed = time.perf_counter() - began
    summary = {"env": env_id, "model": args.model, "adapter": args.adapter, "mode": args.mode,
               **summarise(episodes, sum(s.seconds for e in episodes for s in e.steps))}
    summary["wall_seconds"] = round(elapsed, 2)
    if args.gif:
        from agent.gif import write_gif

        write_gif(episodes, args.gif)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for e in episodes:
            print(f"episode seed={e.seed}: {'SUCCESS' if e.success else 'failure'} return={e.total_return:.2f} steps={len(e.steps)}")
        print(f"success {summary['success_rate']:.2f} | mean return {summary['mean_return']:.2f} | mean steps "
              f"{summary['mean_steps']:.1f} | invalid outputs {summary['invalid_outputs']} | "
              f"{summary['decisions_per_second'] or 0:.1f} decisions/s")
        if args.gif:
            print(f"wrote {args.gif}")
        if args.adapter is None and summary["success_rate"] == 0:
            print("tip: a zero-shot LM rarely solves these levels; train an adapter with training/sft.py, "
                  "or try --adapter adapters/doorkey-5x5 on MiniGrid-DoorKey-5x5-v0")
    return 0


if __name__ == "__main__":
    sys.exit(main())

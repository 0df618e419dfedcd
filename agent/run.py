"""Watch an LM play one level of any registered env family (MiniGrid, BabyAI, ToyText, TextWorld, yours).

    python -m agent.run --env MiniGrid-DoorKey                  # plays adapters/doorkey-robust, trained for it
    python -m agent.run --env MiniGrid-DoorKey --adapter none    # the zero-shot model
    python -m agent.run --env BabyAI-GoToObj --mode generate --reason --render ascii
    python -m agent.run --env MiniGrid-DoorKey --adapter adapters/doorkey-5x5 --gif episode.gif
    python -m agent.run --env MiniGrid-DoorKey --adapter adapters/doorkey-5x5 --explain
    python -m agent.run --env FrozenLake-v1 --adapter adapters/frozenlake-bc
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import envs
from agent.actions import ACTION_PHRASES
from agent.cli import LMConfig, check_out_file, check_range, option, parse_and_run, require, switch, system_prompt
from agent.episodes import LMAgent, play
from agent.explain import ExplainingAgent
from agent.gif import write_gif
from agent.policy import load_policy
from agent.zoo import trained_for

EPILOG = ("Short env names pick the smallest size: MiniGrid-DoorKey -> MiniGrid-DoorKey-5x5-v0. "
          "--list-envs prints every id.")


@dataclass
class RunConfig(LMConfig):
    adapter: str | None = option("auto", "LoRA adapter folder written by training/; auto: the committed adapter "
                                         "trained for --env when there is one (adapters/, default model only), "
                                         "none: the zero-shot model")
    mode: str = option("score", "score: rank the 7 action phrases (never invalid); generate: free text, then parse",
                       choices=("score", "generate"))
    reason: bool = switch("generate mode: a one-sentence reason before the action")
    sample: bool = switch("sample actions instead of taking the most likely")
    episodes: int = option(1, "episodes to play; episode i uses seed SEED+i")
    max_steps: int | None = option(None, "step cap per episode (default: the env's)")
    render: str = option("none", "ascii: print an ASCII map after each step", choices=("none", "ascii"))
    gif: str | None = option(None, "write the episodes as a GIF with the text beside the frames", metavar="PATH")
    shield: bool = switch("block actions that step into lava; take the most probable safe one")
    explain: bool = switch("after each decision, the parts of the text (mission, objects seen, in front, holding) "
                           "whose removal lowers the chosen action's probability most (occlusion, agent/explain.py)")
    json: bool = switch("print one machine-readable summary instead of the steps")
    from_zoo: object = dataclasses.field(default=None, init=False, repr=False)  # the committed adapter --adapter auto chose
    list_envs: bool = switch("print every MiniGrid/BabyAI id and exit")

    def __post_init__(self):
        if self.list_envs:  # needs nothing else, so checks nothing else
            return
        super().__post_init__()
        check_range("--episodes", self.episodes, 1)
        if self.max_steps is not None:
            check_range("--max-steps", self.max_steps, 1)
        if self.gif:
            check_out_file(self.gif, "--gif")
        if self.adapter == "none":
            self.adapter = None
        elif self.adapter == "auto":
            self.from_zoo = trained_for(self.env, self.model, self.mode)
            self.adapter = str(self.from_zoo.relative_to(Path.cwd())) if self.from_zoo and self.from_zoo.is_relative_to(
                Path.cwd()) else (str(self.from_zoo) if self.from_zoo else None)
        if self.shield:
            require(self.env, "has_hazards", "--shield")
        if self.explain:
            require(self.env, "has_claims", "--explain")


def make_agent(args):
    policy = load_policy(args.model, args.adapter, device=args.device, system=system_prompt(args.env))
    agent = LMAgent(policy, mode=args.mode, reason=args.reason, greedy=not args.sample, seed=args.seed)
    return ExplainingAgent(agent, policy) if args.explain else agent


def print_step(episode, step, env, ascii_map: bool, explainer: ExplainingAgent | None = None) -> None:
    d = step.decision
    print(f"[seed {episode.seed} step {step.t}] {step.observation}")
    if d.raw_text is not None:
        print(f"  model: {d.raw_text.strip()!r} -> parsed: {d.parsed or 'INVALID'}"
              + (f" (fallback {d.fallback})" if d.fallback else ""))
    prob = f" p={d.probs[d.action]:.2f}" if d.probs else ""
    shielded = f" [shield: {ACTION_PHRASES[d.action]} blocked]" if step.shielded else ""
    print(f"  action: {step.phrase}{prob}{shielded}  reward={step.reward:.2f}")
    if explainer:
        print(f"  {explainer.describe(step.observation, d.action)}")
    if ascii_map:
        print(env.unwrapped.pprint_grid())


def run_summary(episodes, seconds: float) -> dict:
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


def watch(args: RunConfig) -> int:
    if args.list_envs:
        print("\n".join(envs.list_env_ids()))
        return 0
    env_id = args.env  # resolved and checked by RunConfig
    agent = make_agent(args)

    if not args.json:
        print(f"Playing {args.adapter}, the committed adapter trained for {env_id} (--adapter none: the zero-shot "
              "model)." if args.from_zoo else f"Playing {args.adapter or 'the zero-shot model'} ({args.model}).")
    seeds = [args.seed + i for i in range(args.episodes)]
    explainer = agent if args.explain else None
    on_step = None if args.json else (lambda ep, step, env: print_step(ep, step, env, args.render == "ascii", explainer))
    began = time.perf_counter()
    episodes = play(agent, env_id, seeds, max_steps=args.max_steps, batch=1 if not args.json else 8,
                    use_shield=args.shield, render=bool(args.gif), on_step=on_step)
    elapsed = time.perf_counter() - began
    summary = {"env": env_id, "model": args.model, "adapter": args.adapter, "mode": args.mode,
               **run_summary(episodes, sum(s.seconds for e in episodes for s in e.steps))}
    summary["wall_seconds"] = round(elapsed, 2)
    if explainer:
        costs = [e.seconds for e in explainer.explanations.values()]
        summary.update(explained_states=len(costs), seconds_per_explanation=sum(costs) / len(costs) if costs else None)
    if args.gif:
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
                  "or play a committed one: python -m agent.run --env MiniGrid-DoorKey")
    return 0


def main(argv=None) -> int:
    return parse_and_run(RunConfig, watch, argv, "python -m agent.run", __doc__.split("\n\n")[0], EPILOG)


if __name__ == "__main__":
    sys.exit(main())

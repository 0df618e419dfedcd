"""Benchmark agents on any registered env family: success with Wilson intervals and behaviour metrics.

    python -m evals.benchmark --agents random,expert,llm,llm-generate \\
        --envs MiniGrid-DoorKey-5x5-v0,BabyAI-GoToObj-v0,MiniGrid-LavaGapS5-v0 \\
        --episodes 100 --seed 0 --out results/NAME

Writes results.json (schema in evals/README.md), results.md (a table) and success.png
into --out. Each env is played on distinct held-out levels (`envs.levels`): test levels by
default, which training never samples and tuning never sees; `--seed` is the first
evaluation seed scanned for them. `--envs babyai-text` is GLAM's BabyAI-Text suite: each
kind's test levels, and MixedTestLocal (combinations no training mission names).
"""

from __future__ import annotations

import json
import platform
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import envs
from agent.cli import (
    DEVICE_DOC,
    MODEL_DOC,
    PROGRESS_DOC,
    SPLIT_DOC,
    SPLITS,
    THREADS_DOC,
    check_device,
    check_out_folder,
    check_range,
    check_seed_and_threads,
    option,
    out_option,
    parse_and_run,
    require,
    switch,
    system_prompt,
)
from agent.episodes import Decision, Episode, ExpertAgent, LMAgent, RandomAgent, Step, play
from agent.models import DEFAULT_MODEL
from agent.policy import load_policy
from agent.scoring import CachedScorer
from envs.babyai_text import SUITES
from envs.levels import level_seeds
from envs.seeds import MAX_EVAL_SEEDS, TRAIN_SEED_BASE
from evals import metrics
from evals.injections import INJECTIONS, INJECTIONS_VERSION, PLACES, describe_with, parse_injections
from evals.reports import markdown_report, plot_success

SCHEMA_VERSION = 1
AGENT_KINDS = ("random", "expert", "llm", "llm-generate")
ADAPTER_KINDS = ("llm", "llm-generate")
DEFAULT_AGENTS = "random,expert,llm,llm-generate"
DEFAULT_ENVS = "MiniGrid-DoorKey-5x5-v0,BabyAI-GoToObj-v0,MiniGrid-LavaGapS5-v0"
RESULTS_JSON, RESULTS_MD, SUCCESS_PNG = "results.json", "results.md", "success.png"
PROB_DIGITS = 6  # probabilities are stored rounded; metrics are computed from the stored values


class BenchmarkError(ValueError):
    """A bad command-line input; the message is one sentence with the fix."""


@dataclass(frozen=True)
class AgentSpec:
    kind: str  # one of AGENT_KINDS
    adapter: str | None = None  # LoRA adapter folder for the LM kinds

    @property
    def label(self) -> str:
        return self.kind + (f":{self.adapter}" if self.adapter else "")


def parse_agents(text: str) -> list[AgentSpec]:
    """`random,expert,llm,llm-generate,llm:ADAPTER_DIR` -> specs, in order, without repeats.

    >>> [s.label for s in parse_agents("random, llm:runs/a/final")]
    ['random', 'llm:runs/a/final']
    """
    specs = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        kind, colon, adapter = item.partition(":")
        if kind not in AGENT_KINDS or (colon and (not adapter or kind not in ADAPTER_KINDS)):
            raise BenchmarkError(f"Unknown agent {item!r}: choose from {', '.join(AGENT_KINDS)}, "
                                 "or llm:ADAPTER_DIR / llm-generate:ADAPTER_DIR for a LoRA adapter.")
        spec = AgentSpec(kind, adapter or None)
        if spec not in specs:
            specs.append(spec)
    if not specs:
        raise BenchmarkError(f"--agents is empty: give a comma-separated list such as {DEFAULT_AGENTS}.")
    return specs


def parse_envs(text: str) -> list[str]:
    """Comma-separated names or suites -> ids, in order, without repeats; each must start on this install."""
    names = [name for part in text.split(",") if part.strip()
             for name in SUITES.get(part.strip().lower(), [part.strip()])]
    if not names:
        raise BenchmarkError(f"--envs is empty: give a comma-separated list such as {DEFAULT_ENVS}.")
    try:
        return list(dict.fromkeys(envs.check_env(name) for name in names))
    except ValueError as err:  # unknown name, or an env that cannot start here
        raise BenchmarkError(str(err)) from None


@dataclass
class BenchmarkConfig:
    """The command line; `__post_init__` checks it all before any model loads."""

    agents: str = option(DEFAULT_AGENTS, "comma-separated: random, expert, llm (score mode), llm-generate (a one-sentence "
                         "reason, then the action); llm:ADAPTER_DIR and llm-generate:ADAPTER_DIR add a LoRA adapter")
    envs: str = option(DEFAULT_ENVS, "comma-separated Gymnasium ids, short family names, A+B mixtures or a suite: "
                       "babyai-text (GLAM's five kinds and MixedTestLocal) or babyai-text-memory (the same levels "
                       "with an object memory in the text, for adapters trained on the ...Memory ids)")
    episodes: int = option(100, "distinct held-out levels per agent and env (fewer where the family has fewer)")
    split: str = option("test", SPLIT_DOC, choices=SPLITS)
    seed: int = option(0, "first evaluation seed scanned for held-out levels")
    max_steps: int | None = option(None, "step cap per episode (default: the env's); capped episodes count as failures")
    model: str = option(DEFAULT_MODEL, MODEL_DOC)
    shield: str = option("off", "block actions that step into lava; 'both' runs every agent with and without it",
                         choices=("off", "on", "both"))
    out: str | None = out_option(None, "output folder for results.json, results.md and success.png (required)")
    batch: int = option(8, "episodes played in lockstep (one LM batch)")
    consistency_samples: int = option(5, "K: sampled generations per probed state for self-consistency (generate mode)")
    consistency_states: int = option(6, "states probed per generate-mode agent and env (0 turns self-consistency off)")
    inject: str = option("none", "instruction injection: none, all, or names from evals/injections.py ("
                         + ", ".join(INJECTIONS) + "); each is run besides the clean text")
    inject_at: str = option("obs", "where the injected sentence goes: after the observation text, or after the mission",
                            choices=PLACES)
    progress: bool = option(True, PROGRESS_DOC)
    no_cache: bool = switch("query the LM at every step instead of once per distinct observation text")
    device: str | None = option(None, DEVICE_DOC)
    threads: int = option(0, THREADS_DOC)
    # Derived from the options above by __post_init__.
    specs: list[AgentSpec] = field(init=False, repr=False)
    env_ids: list[str] = field(init=False, repr=False)
    seeds: dict[str, list[int]] = field(init=False, repr=False)  # env id -> seeds of its held-out levels
    injections: list[str] = field(init=False, repr=False)

    def __post_init__(self):
        check_seed_and_threads(self.seed, self.threads)
        for flag, value, low in (("--episodes", self.episodes, 1), ("--batch", self.batch, 1),
                                 ("--consistency-samples", self.consistency_samples, 1),
                                 ("--consistency-states", self.consistency_states, 0)):
            check_range(flag, value, low)
        if self.max_steps is not None:
            check_range("--max-steps", self.max_steps, 1)
        self.specs = parse_agents(self.agents)
        self.env_ids = parse_envs(self.envs)
        self.injections = parse_injections(self.inject)
        for env_id in self.env_ids:
            if self.shield != "off":
                require(env_id, "has_hazards", "--shield")
            if any(spec.kind == "expert" for spec in self.specs):
                require(env_id, "has_expert", "the expert agent")
        self.seeds = {env_id: held_out_seeds(env_id, self.split, self.episodes, self.seed) for env_id in self.env_ids}
        check_device(self.device)
        if self.out is None:
            raise ValueError("--out is missing: give --out FOLDER for results.json, results.md and success.png.")
        check_out_folder(self.out)  # creates nothing: a run that fails leaves no trace


def consistency_probes(policy, reason: bool, episodes, n_states: int, k: int, seed: int, on_state=None) -> list[dict]:
    """Sample `k` generations (temperature 1) at `n_states` states spread evenly over the
    distinct observation texts of `episodes` (in order of first visit); `on_state(i, n)`
    hears each probed state as it is done."""
    import torch

    texts = list(dict.fromkeys(s.observation for e in episodes for s in e.steps))
    if not texts or n_states == 0 or k == 0:
        return []
    n = min(n_states, len(texts))
    picks = [texts[i * len(texts) // n] for i in range(n)]
    torch.manual_seed(seed)
    probes = []
    for i, text in enumerate(picks):  # one state at a time, so a progress bar can move
        gens = policy.generate([text] * k, reason=reason, greedy=False)
        probes.append({"observation": text, "samples": [{"raw_text": g.raw_text, "parsed": g.parsed} for g in gens]})
        if on_state:
            on_state(i + 1, n)
    return probes


def probe_answers(probes: list[dict]) -> list[list[str | None]]:
    return [[s["parsed"] for s in p["samples"]] for p in probes]


def round_probs(episodes) -> None:
    for episode in episodes:
        for step in episode.steps:
            if step.decision.probs:
                step.decision.probs = [round(p, PROB_DIGITS) for p in step.decision.probs]


def episode_record(episode) -> dict:
    """An Episode as JSON: per-step wall time is summed into the episode's "timing"."""
    record = episode.to_dict()
    record["timing"] = {"decision_seconds": sum(s.pop("seconds") for s in record["steps"])}
    return record


def episode_from_record(record: dict):
    """Inverse of `episode_record` (step times become 0), for recomputing metrics."""
    steps = [Step(**{**s, "decision": Decision(**s["decision"]), "seconds": 0.0}) for s in record["steps"]]
    fields = {k: v for k, v in record.items() if k not in ("steps", "timing")}
    return Episode(**fields, steps=steps)


def rescore(results: dict) -> dict:
    """Recompute every run's aggregates from its stored episodes and probes (after a metric
    fix, say), keeping the measured "timing". Returns a new dict.

    >>> results = json.loads(Path("results/baseline/results.json").read_text())  # doctest: +SKIP
    >>> Path("results/baseline/results.json").write_text(json.dumps(rescore(results), indent=1))  # doctest: +SKIP
    """
    runs = []
    for run in results["runs"]:
        aggregates = metrics.summarise([episode_from_record(e) for e in run["episodes"]], probe_answers(run["consistency_probes"]))
        aggregates["timing"] = run["aggregates"]["timing"]
        runs.append({**run, "aggregates": aggregates})
    return {**results, "runs": runs}


def strip_timing(value):
    """A copy of a results.json value without its "timing" entries (which vary run to run)."""
    if isinstance(value, dict):
        return {k: strip_timing(v) for k, v in value.items() if k != "timing"}
    if isinstance(value, list):
        return [strip_timing(v) for v in value]
    return value


def versions() -> dict:
    from importlib import metadata

    import gymnasium
    import minigrid
    import torch
    import transformers

    try:
        own = metadata.version("embodied-lm")
    except metadata.PackageNotFoundError:  # run from a checkout that was not pip-installed
        import tomllib

        own = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]["version"]
    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "gymnasium": gymnasium.__version__, "minigrid": minigrid.__version__, "embodied-lm": own}


def make_agent(spec: AgentSpec, policy, seed: int, scorer: CachedScorer | None = None):
    """The agent of `spec`; LM agents play `policy` through `scorer` (one per agent, shared by its runs)."""
    if spec.kind == "random":
        return RandomAgent(seed=seed)
    if spec.kind == "expert":
        return ExpertAgent()
    mode = "score" if spec.kind == "llm" else "generate"
    return LMAgent(policy, mode=mode, reason=spec.kind == "llm-generate", seed=seed, scorer=scorer)


def held_out_seeds(env_id: str, split: str, n: int, first: int) -> list[int]:
    try:
        return level_seeds(env_id, split, n, first)
    except ValueError as err:  # a family too small to split, or no such level from --seed up
        raise BenchmarkError(str(err)) from None


def run_benchmark(args, specs: list[AgentSpec], env_ids: list[str], seeds: dict[str, list[int]]) -> dict:
    """Play every agent x env (x shield) and return the results dict (schema_version 1)."""
    import torch
    from tqdm import tqdm

    began = time.perf_counter()
    torch.manual_seed(args.seed)
    # (adapter, system part) -> LMPolicy: each model/adapter is loaded once per env family's system part
    systems = {env_id: system_prompt(env_id) for env_id in env_ids}
    policies = {}
    for spec in specs:
        for system in dict.fromkeys(systems.values()):
            if spec.kind in ADAPTER_KINDS and (spec.adapter, system) not in policies:
                policies[(spec.adapter, system)] = load_policy(args.model, spec.adapter, device=args.device,
                                                               system=system)
    load_seconds = time.perf_counter() - began
    variants = {"off": [False], "on": [True], "both": [False, True]}[args.shield]
    runs = []
    last_t = [None]

    def show_step(episode, step, env):  # the bar moves per finished chunk; show the lockstep clock
        if step.t != last_t[0]:
            last_t[0] = step.t
            bar.set_postfix_str(f"step {step.t}")

    injections = [None, *args.injections]
    bar = tqdm(total=len(specs) * len(variants) * len(injections) * sum(len(seeds[e]) for e in env_ids),
               unit="episode", file=sys.stderr, mininterval=1.0, dynamic_ncols=True, disable=not args.progress)
    for spec in specs:
        # One scorer per agent and system part, kept over its envs and variants (texts carry their mission).
        caches = {key: CachedScorer(policy, memo=not args.no_cache) for key, policy in policies.items()
                  if key[0] == spec.adapter} if spec.kind in ADAPTER_KINDS else {}
        for env_index, env_id in enumerate(env_ids):
            probes = None
            policy = policies.get((spec.adapter, systems[env_id]))
            cache = caches.get((spec.adapter, systems[env_id]))
            for use_shield, injection in ((s, i) for i in injections for s in variants):
                agent = make_agent(spec, policy, seed=args.seed, scorer=cache)
                before = (cache.computed, cache.hits, cache.seconds) if cache else None
                bar.set_description(f"{spec.label} {env_id}{' +shield' if use_shield else ''}"
                                    f"{f' +inject:{injection}' if injection else ''}")
                run_began = time.perf_counter()
                episodes = []
                for start in range(0, len(seeds[env_id]), args.batch):
                    chunk = seeds[env_id][start:start + args.batch]
                    episodes += play(agent, env_id, chunk, max_steps=args.max_steps, batch=args.batch,
                                     use_shield=use_shield, on_step=show_step,
                                     describe_fn=describe_with(injection, args.inject_at))
                    bar.update(len(chunk))
                round_probs(episodes)
                run_seconds = time.perf_counter() - run_began
                probe_seconds = 0.0
                if probes is None:  # probed once per agent and env, on the first variant's states
                    probes = []
                    # The probes parse with MiniGrid's phrases: other families get no consistency figure.
                    if spec.kind == "llm-generate" and all(e.family == "minigrid" for e in episodes):
                        probe_began = time.perf_counter()
                        probes = consistency_probes(policy, True, episodes, args.consistency_states,
                                                    args.consistency_samples, seed=args.seed * 1000 + env_index,
                                                    on_state=lambda i, n: bar.set_postfix_str(
                                                        f"consistency probe {i}/{n}", refresh=True))
                        probe_seconds = time.perf_counter() - probe_began
                # Probes read clean texts: an injected run gets no consistency figure rather than a borrowed one.
                aggregates = metrics.summarise(episodes, probe_answers(probes) if injection is None else [])
                run = {"agent": spec.label, "kind": spec.kind, "adapter": spec.adapter,
                       "model": args.model if spec.kind in ADAPTER_KINDS else None,
                       "shield": use_shield, "injection": injection, "env": env_id, "aggregates": aggregates}
                timing = {"run_seconds": run_seconds, "probe_seconds": probe_seconds}
                if cache and not args.no_cache:
                    computed, hits, seconds = (cache.computed - before[0], cache.hits - before[1], cache.seconds - before[2])
                    run["text_cache"] = {"model_decisions": computed, "reused_decisions": hits}
                    timing["model_decisions_per_second"] = computed / seconds if seconds > 0 else None
                aggregates["timing"].update(timing)
                run["consistency_probes"] = probes
                run["episodes"] = [episode_record(e) for e in episodes]
                runs.append(run)
    bar.close()
    policy_info = {(a or "base"): {"device": str(p.device), "bf16": p.bf16} for (a, _), p in policies.items()}
    return {
        "schema_version": SCHEMA_VERSION,
        "config": {
            "agents": [s.label for s in specs], "envs": env_ids, "episodes": args.episodes, "seed": args.seed,
            "split": args.split, "seeds": seeds, "max_steps": args.max_steps, "shield": args.shield, "model": args.model,
            "policies": policy_info, "batch": args.batch, "text_cache": not args.no_cache,
            "consistency_samples": args.consistency_samples, "consistency_states": args.consistency_states,
            "injections": {name: INJECTIONS[name] for name in args.injections}, "inject_at": args.inject_at,
            "injections_version": INJECTIONS_VERSION,
            "seed_ranges": {"evaluation": [0, MAX_EVAL_SEEDS - 1], "training_from": TRAIN_SEED_BASE},
        },
        "versions": versions(),
        "runs": runs,
        "timing": {"wall_seconds": time.perf_counter() - began, "model_load_seconds": load_seconds,
                   "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
    }


def write_outputs(results: dict, out: Path, command: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    # Compact: a benchmark holds tens of thousands of steps (pretty-print with `python -m json.tool`).
    (out / RESULTS_JSON).write_text(json.dumps(results, separators=(",", ":")) + "\n")
    (out / RESULTS_MD).write_text(markdown_report(results, command))
    plot_success(results, out / SUCCESS_PNG)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)

    def benchmark(args: BenchmarkConfig) -> int:
        out = Path(args.out)
        results = run_benchmark(args, args.specs, args.env_ids, args.seeds)
        write_outputs(results, out, "python -m evals.benchmark " + shlex.join(argv))
        print(f"wrote {out / RESULTS_JSON}, {out / RESULTS_MD} and {out / SUCCESS_PNG}")
        return 0

    return parse_and_run(BenchmarkConfig, benchmark, argv, "python -m evals.benchmark", __doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main())

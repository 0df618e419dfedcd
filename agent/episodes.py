"""Play episodes with any agent, several envs in lockstep so the LM sees one batch.

The one episode loop: `agent.run`, `evals.benchmark`, training's greedy evaluation and the
MLP baseline's evaluation all call `play`. PPO rollouts step their own env pool (they
need per-step log-probs and values) but take success, death and the shield from here
(`take_step`, `shield`). Each step keeps the model's raw text, the parsed phrase and the
executed action apart, plus what was in front of the agent, so metrics are pure
functions of the records.

>>> from agent.episodes import RandomAgent, play
>>> [record] = play(RandomAgent(seed=0), "MiniGrid-DoorKey-5x5-v0", seeds=[3], max_steps=5)
>>> len(record.steps)
5
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
from minigrid.core.actions import Actions

import envs
from agent.adapters import EnvAdapter, adapter_for
from agent.adapters.minigrid import enters_hazard
from agent.scoring import CachedScorer
from envs.levels import TrainLevels
from envs.mixture import task_of


@dataclass
class Decision:
    action: int  # what the agent chose (before any shield)
    raw_text: str | None = None  # model output in generate mode
    parsed: str | None = None  # parse_action(raw_text); None there means invalid
    probs: list[float] | None = None  # distribution over ACTION_PHRASES, when known
    fallback: str | None = None  # phrase executed because the text was invalid
    tokens: int = 0  # model tokens processed for this decision
    command: str | None = None  # invalid text sent to an env that reads text, as typed (then no fallback)


@dataclass
class Step:
    t: int
    observation: str
    front: str  # kind of the cell in front ("empty", "wall", "door", "lava", ...)
    front_state: str | None  # door state when `front` is a door
    carrying: bool
    decision: Decision
    executed: int  # action sent to env.step (differs from decision.action when shielded)
    shielded: bool
    reward: float
    seconds: float  # wall time of the decision, shared equally by the batch
    front_color: str | None = None  # colour of the object in front (None: floor)
    held: str | None = None  # "colour kind" of what the agent carries (None: nothing)
    phrase: str = ""  # the executed action's phrase
    unsafe: bool | None = None  # the chosen action steps into a hazard (None: the family has no hazards)


@dataclass
class Episode:
    env_id: str
    seed: int
    steps: list[Step] = field(default_factory=list)
    success: bool = False
    total_return: float = 0.0
    died: bool = False  # ended by stepping into a hazard
    task: str = ""  # the task played: a mixture's kind or env id (envs.mixture.task_of)
    family: str = "minigrid"  # the env's adapter (`agent.adapters`), which decides what metrics apply
    progress: float | None = None  # partial success in [0, 1] where the family grades it (TextWorld)
    frames: list = field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("frames")
        return out


def success_by_task(records) -> dict[str, tuple[int, int]]:
    """(successes, episodes) per task, sorted by task, of anything with `.task` and `.success`."""
    out: dict[str, tuple[int, int]] = {}
    for record in records:
        wins, total = out.get(record.task, (0, 0))
        out[record.task] = (wins + bool(record.success), total + 1)
    return dict(sorted(out.items()))


def shield(obs, decision: Decision, adapter: EnvAdapter | None = None) -> tuple[int, bool]:
    """Replace an action that enters a hazard by the most probable safe one; returns (action, blocked).

    `decision.probs` ranks the actions (log-probs rank the same); without it, index order.
    `adapter` knows the hazards (default: MiniGrid's lava).
    """
    hazard = adapter.enters_hazard if adapter is not None else enters_hazard
    if not hazard(obs, decision.action):
        return decision.action, False
    order = np.argsort(-np.asarray(decision.probs)) if decision.probs is not None else range(7)
    minigrid = adapter is None or adapter.name == "minigrid"  # where `done` ends nothing, so never a way out
    safe = next(int(a) for a in order if not hazard(obs, int(a)) and not (minigrid and a == Actions.done))
    return safe, True


@dataclass
class Outcome:
    """What one env step did; success and death are decided here for every loop."""

    obs: object
    reward: float
    terminated: bool
    truncated: bool
    success: bool  # the episode ended with a positive reward
    died: bool  # the episode ended by stepping into a hazard
    progress: float | None = None  # the adapter's partial success after this step (None: not graded)

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


def take_step(env, obs, action: int, adapter: EnvAdapter | None = None, command=None) -> Outcome:
    """Step `env` (whose current observation is `obs`) with phrase index `action`, or with
    `command` as typed where given (`Decision.command`); its adapter (found from `env`
    when not given) says what the env takes, success and death."""
    adapter = adapter or adapter_for(env)
    next_obs, reward, terminated, truncated, info = env.step(
        adapter.env_action(action, obs, env) if command is None else command)
    success = adapter.success(env, float(reward), terminated, info)
    return Outcome(next_obs, float(reward), terminated, truncated, success,
                   adapter.died(obs, action, terminated, success), adapter.progress(env, info))


class RandomAgent:
    name = "random"

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def decide(self, observations, texts, env_list) -> list[Decision]:
        sizes = [len(p) for p in phrase_sets(observations, env_list)]
        return [Decision(int(self.rng.integers(n)), probs=[1 / n] * n) for n in sizes]


class ExpertAgent:
    name = "expert"

    def decide(self, observations, texts, env_list) -> list[Decision]:
        return [Decision(int(adapter_for(env).expert(env))) for env in env_list]


def step_limit(env) -> int:
    """The env's own step limit: MiniGrid's `max_steps`, else the spec's `max_episode_steps`."""
    limit = getattr(env.unwrapped, "max_steps", None) or (env.spec.max_episode_steps if env.spec else None)
    if not limit:
        raise ValueError(f"{env.spec.id if env.spec else type(env.unwrapped).__name__} has no step limit: "
                         "give --max-steps, or register it with max_episode_steps.")
    return int(limit)


def phrase_sets(observations, env_list) -> list[tuple[str, ...]]:
    """Each state's action phrases, from its env's adapter."""
    return [adapter_for(env).actions(obs, env) for obs, env in zip(observations, env_list)]


class LMAgent:
    """Score mode (`mode="score"`) or generate mode, greedy by default, through a `CachedScorer`."""

    def __init__(self, policy, mode: str = "score", reason: bool = False, greedy: bool = True, seed: int = 0,
                 scorer: CachedScorer | None = None):
        import torch

        self.policy, self.mode, self.reason, self.greedy = policy, mode, reason, greedy
        self.scorer = scorer or CachedScorer(policy)
        self.generator = torch.Generator().manual_seed(seed)
        self.name = "llm" if mode == "score" else "llm-generate"

    def decide(self, observations, texts, env_list) -> list[Decision]:
        import torch

        sets = phrase_sets(observations, env_list)
        with torch.inference_mode():
            if self.mode == "score":
                choice = self.scorer.choose(texts, greedy=self.greedy, generator=self.generator, phrases=sets)
                return [Decision(int(a), probs=p[:len(phrases)].tolist(), tokens=n)
                        for a, p, n, phrases in zip(choice.actions, choice.log_probs.exp(), choice.tokens, sets)]
            gens = self.scorer.generate(texts, reason=self.reason, greedy=self.greedy, phrases=sets)
        decisions = []
        for g, obs, env in zip(gens, observations, env_list):
            command = adapter_for(env).text_action(g.raw_text, obs, env) if g.invalid else None
            decisions.append(Decision(g.action, g.raw_text, g.parsed, fallback=None if command else g.fallback,
                                      tokens=g.tokens, command=command))
        return decisions


def play(agent, env_id: str, seeds: list[int], max_steps: int | None = None, batch: int = 8,
         use_shield: bool = False, render: bool = False, on_step=None, describe_fn=None,
         train_levels: bool = False) -> list[Episode]:
    """Play one episode per seed, `batch` envs at a time; returns them in seed order.

    `describe_fn(obs, env)` gives the text the agent reads (default: the env's adapter's).
    `on_step(episode, step, env)` is called after every step (for printing or progress bars).
    With `train_levels`, a seed that gives a held-out level moves on to a training level
    (`envs.levels.TrainLevels`), as training resets do.
    """
    episodes = []
    for start in range(0, len(seeds), batch):
        group = seeds[start:start + batch]
        env_list = [envs.make(env_id, **({"render_mode": "rgb_array"} if render else {})) for _ in group]
        if train_levels:
            env_list = [TrainLevels(env) for env in env_list]
        obs = [env.reset(seed=seed)[0] for env, seed in zip(env_list, group)]
        adapters = [adapter_for(env) for env in env_list]
        eps = [Episode(env_id, seed, task=task_of(env), family=adapter.name)
               for env, seed, adapter in zip(env_list, group, adapters)]
        # Each env truncates at its own limit (a mixture's tasks differ); max_steps caps them all.
        limit = max_steps or max(step_limit(env) for env in env_list)
        live = list(range(len(group)))
        for t in range(limit):
            if not live:
                break
            if render:
                for i in live:
                    eps[i].frames.append(env_list[i].render())
            texts = [describe_fn(obs[i], env_list[i]) if describe_fn else adapters[i].describe(obs[i], env_list[i])
                     for i in live]
            began = time.perf_counter()
            decisions = agent.decide([obs[i] for i in live], texts, [env_list[i] for i in live])
            seconds = (time.perf_counter() - began) / len(live)
            still = []
            for i, text, decision in zip(live, texts, decisions):
                adapter = adapters[i]
                phrases = adapter.actions(obs[i], env_list[i])
                executed, blocked = shield(obs[i], decision, adapter) if use_shield else (decision.action, False)
                view = adapter.view(obs[i])
                unsafe = adapter.enters_hazard(obs[i], decision.action) if adapter.has_hazards else None
                outcome = take_step(env_list[i], obs[i], executed, adapter, command=decision.command)
                obs[i] = outcome.obs
                step = Step(t, text, view["front"], view["front_state"], view["carrying"], decision, executed, blocked,
                            outcome.reward, seconds, front_color=view["front_color"], held=view["held"],
                            phrase=decision.command or phrases[executed], unsafe=unsafe)
                ep = eps[i]
                ep.steps.append(step)
                ep.total_return += outcome.reward
                ep.success, ep.died, ep.progress = outcome.success, outcome.died, outcome.progress
                if on_step:
                    on_step(ep, step, env_list[i])
                if not outcome.done:
                    still.append(i)
            live = still
        if render:
            for i in range(len(group)):
                eps[i].frames.append(env_list[i].render())
        for env in env_list:
            env.close()
        episodes.extend(eps)
    return episodes

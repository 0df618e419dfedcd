"""Behaviour cloning warm start: expert demonstrations -> LoRA by closed-set cross-entropy.

    python training/sft.py --env MiniGrid-DoorKey-5x5-v0 --demos 2000 --out runs/sft-doorkey

Demonstrations come from `envs.expert.expert_action` on training levels (held-out test and
validation levels are skipped, `envs/levels.py`); `--env A+B` or a mixture trains one
adapter on several tasks, a task drawn per episode. With probability `--deviation` a random action is executed instead
of the expert's, so the data covers states off the expert's path; the label is always
the expert's action at the recorded state. The loss is -log pi(expert action | state)
under `LMPolicy.score_ids` (the softmax over the 7 phrases). Identical states are
trained once, weighted by how often each label occurred, which gives the same gradient
as training on every pair. The result (`OUT/final`) loads with
`agent.policy.load_policy(model, adapter=OUT/final)` and starts PPO via `--init-adapter`.

Generate mode (`--mode generate`): the adapter learns to write "Reason: <one sentence>
Action: <phrase>" (`training/reasons.py`: the sentence is built from the true percepts and
the expert's current target) under `agent.prompts.REASON_SYSTEM`; the loss is the mean
per-token cross-entropy of that answer (teacher forcing), and the adapter plays with
`agent.run --mode generate --reason`.

DAgger (Ross et al., 2011): `--init-adapter A --learner-episodes N` plays N greedy episodes
of adapter A on training levels, labels every state it visits with the expert's action,
and trains A further on those pairs plus `--demos` expert pairs; the round's learner pairs are
kept in `OUT/learner_pairs.jsonl`. The next round starts from this round's adapter with a new
`--learner-seed` (new levels) and `--pairs OUT/learner_pairs.jsonl` (every earlier round's
pairs, as DAgger aggregates them); keeping `--seed` keeps the same expert pairs, whose lower
layers `--lower-cache` then reads back. `--demos-only` writes expert pairs of another env or
seed to `OUT/expert_pairs.jsonl` without training, for `--pairs` (more demonstrations of
the kinds a mixture fails, say).

A long run checkpoints every `--checkpoint-every` steps into `OUT/checkpoints/`; stopped
anywhere, `--resume OUT` continues it mid-epoch (docs/TRAINING.md, "Checkpoints and resume").
"""

from __future__ import annotations

import gzip
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from agent.actions import ACTION_PHRASES
from agent.adapter_io import save_adapter
from agent.adapters import adapter_for
from agent.cli import check_range, fail, option, out_option, parse_and_run, require, switch, system_prompt
from agent.episodes import play, success_by_task, take_step
from agent.prompts import SCORE_SYSTEM, encode, writing_system
from agent.scoring import CachedScorer
from envs import seeds as seed_policy
from envs.expert import NoPlanError, expert_target
from envs.levels import training_env
from training import checkpoint, lora
from training.augment import augment
from training.evaluate import evaluate, greedy_agent, validation_seeds
from training.logs import MetricLog
from training.reasons import training_text


@dataclass
class SFTConfig(lora.TrainConfig):
    out: str = out_option("runs/sft", "output folder; the adapter goes to OUT/final (OUT/last after each epoch)")
    learning_rate: float = option(3e-3, lora.LR_DOC)
    lora_layers: int = option(8, "LoRA in the top N decoder layers only (0 = every layer): the layers below are "
                                 "computed once per state and cached, about 3.7x faster; with the default "
                                 "learning rate it reaches the all-layer adapter's success "
                                 "(docs/experiments/doorkey-lora-layers.md)")
    max_grad_norm: float = option(1.0, lora.GRAD_NORM_DOC)
    demos: int = option(2000, "expert (state, action) pairs to collect (0 with --pairs: train on those alone)")
    deviation: float = option(0.2, "probability of executing a random action instead of the expert's (label stays the expert's)")
    epochs: int = option(12, "passes over the distinct states")
    batch_size: int = option(8, "distinct states per optimizer step (small: DoorKey has few distinct states)")
    weight_decay: float = option(0.0, "AdamW weight decay")
    group_by_length: bool = option(False, "batch states of similar length together (each epoch still shuffled): a "
                                          "batch pads to its longest state, so texts of very different lengths, "
                                          "like TextWorld's, waste less compute")
    mode: str = option("score", "score: learn to rank the 7 action phrases; generate: learn to write "
                                "'Reason: <sentence>' then 'Action: <phrase>' (play it with --mode generate --reason)",
                       choices=("score", "generate"))
    lower_cache: str | None = option(None, "folder that keeps, per state, the outputs of the layers below the LoRA ones "
                                           "(--lora-layers) across runs: a later run over the same states, e.g. a "
                                           "DAgger round with the same --seed's demos, skips them (about 0.35 s a "
                                           "BabyAI-Text state here, 0.25 MB each on disk)")
    warmup_steps: int = option(0, "raise the learning rate linearly from 0 over the first N optimizer steps, then "
                                  "decay it linearly to 0 (0 = decay from the first step); a DAgger round that "
                                  "restarts a trained adapter at 1e-3 otherwise loses ground early in epoch 1")
    initial_ce: bool = option(True, "before the first epoch, a pass without gradients over every state for the "
                                    "CE at step 0 and summary.json's initial_ce (--no-initial-ce skips it; it took 19 "
                                    "min of a 11,801-state BabyAI-Text round here, docs/TRAINING.md)")
    final_ce: bool = option(True, "after the last epoch, one more pass without gradients over every state for "
                                  "summary.json's final_ce (about a third of an epoch's time)")
    learner_episodes: int = option(0, "DAgger: play N training-level episodes greedily with the --init-adapter policy "
                                      "and label every state it visits with the expert's action; these pairs join "
                                      "the --demos expert pairs (0 = plain behaviour cloning)")
    learner_env: str | None = option(None, "env(s) the DAgger learner plays (default: --env), e.g. only the kinds "
                                           "it fails: BabyAI-TextOpenTrain-v0+BabyAI-TextPutNextTrain-v0")
    learner_seed: int | None = option(None, "seed of the DAgger learner's levels (default: --seed); a new one per "
                                            "round gives new levels while --seed keeps the same expert pairs")
    resume: str | None = option(None, "continue the run in this folder from its newest valid checkpoint (its saved "
                                      "config is used; expert pairs are collected again, learner pairs read back)")
    checkpoint_every: int = option(100, "checkpoint every N optimizer steps (0 = only at the end of each epoch)")
    keep_checkpoints: int = option(2, "checkpoints kept on disk")
    stop_after_steps: int = option(0, "stop cleanly once this many optimizer steps are done (0 = run to the end; "
                                      "continue with --resume)")
    pairs: list[str] | None = option(None, "labelled pairs files trained on with this run's: earlier DAgger rounds' "
                                           "OUT/learner_pairs.jsonl (DAgger aggregates every round's data) or "
                                           "--demos-only runs' OUT/expert_pairs.jsonl (.jsonl.gz too)", nargs="+", metavar="FILE")
    demo_seed: int = option(0, "seed of the expert demonstrations' levels (--seed draws their random deviations): "
                               "another value gives other levels, e.g. for a --demos-only run that adds to "
                               "earlier demonstrations")
    augment_injections: float = option(0.0, "robust training: add copies of this share of the pairs, each with one "
                                            "injected sentence (training/augment.py's list, never the benchmark's "
                                            "held-out one) after the mission or inside the observation, label "
                                            "unchanged (0 = off)")
    demos_only: bool = switch("collect the --demos expert pairs of --env and --seed, write them to "
                              "OUT/expert_pairs.jsonl for a later run's --pairs, and stop: no model is loaded, "
                              "nothing is trained (e.g. more demonstrations of the kinds a mixture fails)")

    def __post_init__(self):
        super().__post_init__()
        if self.demos < (0 if self.pairs else 1):  # with --pairs, 0 trains on those pairs alone
            raise ValueError(f"--demos must be at least 1 (0 with --pairs), not {self.demos}.")
        if not 0.0 <= self.augment_injections <= 1.0:
            raise ValueError(f"--augment-injections must be a share in [0, 1], not {self.augment_injections}.")
        if not 0.0 <= self.deviation < 1.0:
            raise ValueError(f"--deviation must be in [0, 1), not {self.deviation}: it is a probability.")
        for name in ("epochs", "batch_size"):
            check_range(f"--{name.replace('_', '-')}", getattr(self, name), 1)
        if self.weight_decay < 0:
            raise ValueError(f"--weight-decay must not be negative, not {self.weight_decay}; try 0.")
        check_range("--learner-episodes", self.learner_episodes, 0)
        for name in ("checkpoint_every", "stop_after_steps", "warmup_steps", "demo_seed"):
            check_range(f"--{name.replace('_', '-')}", getattr(self, name), 0)
        check_range("--keep-checkpoints", self.keep_checkpoints, 1)
        if self.resume:
            self.out = checkpoint.run_folder(self.resume)
        checkpoint.check_resume(self.resume, self.out)
        if self.lower_cache and Path(self.lower_cache).exists() and not Path(self.lower_cache).is_dir():
            raise ValueError(f"--lower-cache {self.lower_cache} is a file: give a folder (it is made if missing).")
        if self.learner_episodes and self.mode == "generate":
            raise ValueError("--learner-episodes (DAgger) relabels score-mode play only; drop it or use --mode score.")
        for path in self.pairs or []:
            if not Path(path).is_file():
                raise ValueError(f"--pairs {path} is not a file: give an earlier run's OUT/learner_pairs.jsonl or "
                                 "OUT/expert_pairs.jsonl.")
        if (self.learner_env or self.learner_seed is not None) and not self.learner_episodes:
            raise ValueError("--learner-env and --learner-seed set the DAgger learner's episodes: add "
                             "--learner-episodes N, or drop them.")
        if self.demos_only and (self.learner_episodes or self.pairs or self.resume or self.augment_injections):
            raise ValueError("--demos-only only collects expert pairs: drop --learner-episodes, --pairs, --resume and "
                             "--augment-injections.")
        for path in self.pairs or []:
            check_pairs_fit(path, self.env)
        require(self.env, "has_expert", "behaviour cloning")
        if self.learner_env:
            require(self.learner_env, "has_expert", "--learner-env")
        if self.learner_episodes and not self.init_adapter:
            raise ValueError("--learner-episodes plays the policy being corrected: give it with --init-adapter "
                             "(e.g. runs/sft/final).")


class Pair(NamedTuple):
    """One labelled state: the text, the expert's phrase index, the written answer (generate
    mode) and the state's own phrases (None: MiniGrid's seven, the policy's default)."""

    text: str
    label: int
    answer: str
    phrases: tuple[str, ...] | None = None


def check_pairs_fit(path: str, env_id: str) -> None:
    """Refuse pairs whose actions are not --env's: training would run under another family's
    system part (the pairs file does not say which env made it)."""
    import envs

    with open_pairs(path) as f:
        first = f.readline()
    if not first.strip():
        return
    try:
        phrases = json.loads(first).get("phrases")
    except (json.JSONDecodeError, AttributeError):
        raise ValueError(f"--pairs {path} is not a pairs file (one JSON object per line, as sft writes to "
                         "OUT/expert_pairs.jsonl).") from None
    for part in env_id.split("+"):
        env = envs.make(part)
        try:
            fixed = adapter_for(env).fixed_actions(env)
        finally:
            env.close()
        if (fixed is None and phrases is not None) or (fixed is not None and tuple(phrases or ACTION_PHRASES) == tuple(fixed)):
            return
    kind = "per-state commands" if phrases else "MiniGrid's seven actions"
    raise ValueError(f"--pairs {path} holds states with {kind}, which --env {env_id} does not have: give the --env "
                     "the pairs were collected on (e.g. CoinCollector+TreasureHunter+Cooking for TextWorld pairs).")


def labelled(adapter, obs, env, label: int) -> Pair:
    """The pair of a state the expert labelled: MiniGrid's answers give a reason (training.reasons)."""
    phrases = adapter.actions(obs, env)
    if phrases == ACTION_PHRASES:
        return Pair(adapter.describe(obs, env), label, training_text(obs, label, expert_target(env)))
    return Pair(adapter.describe(obs, env), label, f"Action: {phrases[label]}", tuple(phrases))


def collect_demos(env_id: str, n: int, deviation: float, seed: int, all_levels: bool = False,
                  level_seed: int = 0, on_label: Callable[[object], None] | None = None) -> list[Pair]:
    """`n` labelled pairs (`Pair`) from consecutive training-level episodes of the env's
    expert; `seed` draws the deviations, `level_seed` the levels. `on_label(env)` runs once
    per pair, after the expert labelled it (measurement scripts record the pair's task or
    the bot's subgoal with it)."""
    rng = np.random.default_rng(seed)
    pairs: list[Pair] = []
    episode = 0
    env = training_env(env_id, all_levels)
    while len(pairs) < n:
        obs, _ = env.reset(seed=seed_policy.train_seed(level_seed % seed_policy.MAX_ENV_SLOTS, episode,
                                                       seed_policy.SFT_STREAM))
        adapter = adapter_for(env)  # per episode: a mixture's task can change family
        episode += 1
        done, action = False, None
        while not done and len(pairs) < n:
            try:
                label = int(adapter.expert(env, action))  # the action taken, so the BabyAI bot replans after a deviation
            except NoPlanError:  # a deviation made the level unsolvable: start the next one
                break
            pair = labelled(adapter, obs, env, label)
            pairs.append(pair)
            if on_label is not None:
                on_label(env)
            size = len(pair.phrases or ACTION_PHRASES)
            action = int(rng.integers(size)) if rng.random() < deviation else label
            outcome = take_step(env, obs, action, adapter)
            obs, done = outcome.obs, outcome.done
    env.close()
    return pairs


class ExpertLabels:
    """Plays `agent`'s actions and keeps labelled pairs (`Pair`) at the states it visits: the
    learner chooses where to go, the expert says what it should have done.

    A state is kept once per episode: a greedy learner stuck in a two-state loop would
    otherwise weigh one state 60 times and drown the rest of the data (a first DAgger
    round without this lost most of BC's skill on `open`,
    docs/experiments/babyai-text-bc-dagger.md)."""

    def __init__(self, agent):
        self.agent, self.pairs = agent, []
        self._last: dict[int, int] = {}  # id(env) -> the action it executed last, for the BabyAI bot
        self._seen: dict[int, set[str]] = {}  # id(env) -> texts labelled in its current episode
        self._steps: dict[int, int] = {}  # id(env) -> decisions seen in its current episode

    def decide(self, observations, texts, env_list):
        decisions = self.agent.decide(observations, texts, env_list)
        for obs, text, env, decision in zip(observations, texts, env_list, decisions):
            adapter = adapter_for(env)
            if _episode_step(env) == 0:  # a new episode in this env
                self._seen[id(env)] = set()
            seen = self._seen.setdefault(id(env), set())
            try:
                label = int(adapter.expert(env, self._last.get(id(env))))  # every step: the BabyAI bot follows along
            except NoPlanError:  # the learner made the level unsolvable: no label here
                label = None
            if label is not None and text not in seen:
                seen.add(text)
                self.pairs.append(labelled(adapter, obs, env, label)._replace(text=text))
            self._last[id(env)] = decision.action
        return decisions


def _episode_step(env) -> int:
    """Steps taken in the current episode: MiniGrid counts them; elsewhere the wrapper
    gymnasium.make adds for the step limit does."""
    base = env.unwrapped
    if hasattr(base, "step_count"):
        return base.step_count
    limit = next((e for e in _wrappers(env) if hasattr(e, "_elapsed_steps")), None)
    return limit._elapsed_steps if limit is not None else 0


def _wrappers(env):
    while env is not env.unwrapped:
        yield env
        env = env.env


def collect_learner_pairs(policy, env_id: str, episodes: int, seed: int, all_levels: bool = False):
    """(observation text, expert action) pairs from `episodes` greedy episodes of `policy`
    on training levels (DAgger's relabelling), the learner's success on them, and its
    success per task ({} for one task)."""
    labels = ExpertLabels(greedy_agent(policy))
    slot = seed % seed_policy.MAX_ENV_SLOTS  # runs with different --seed relabel different levels
    seeds = [seed_policy.train_seed(slot, i, seed_policy.DAGGER_STREAM) for i in range(episodes)]
    played = play(labels, env_id, seeds, batch=32, train_levels=not all_levels)
    tally = success_by_task(played)
    by_task = {task: wins / total for task, (wins, total) in tally.items()} if len(tally) > 1 else {}
    return labels.pairs, sum(e.success for e in played) / len(played), by_task


def save_pairs(pairs: list[Pair], path: Path) -> None:
    with path.open("w") as f:
        for text, label, answer, phrases in pairs:
            row = {"text": text, "label": label, "answer": answer}
            if phrases is not None:
                row["phrases"] = list(phrases)
            f.write(json.dumps(row) + "\n")


def open_pairs(path: str):
    """A pairs file opened for reading text, plain or gzipped (`.gz`)."""
    return gzip.open(path, "rt") if str(path).endswith(".gz") else open(path)


def load_pairs(path: str) -> list[Pair]:
    """Pairs written by `save_pairs`, plain or gzipped (`.gz`, as committed under data/)."""
    with open_pairs(path) as f:
        return [Pair(row["text"], int(row["label"]), row["answer"],
                     tuple(row["phrases"]) if row.get("phrases") is not None else None) for row in map(json.loads, f)]


def label_counts(policy, pairs: list[Pair]) -> tuple[list[tuple[list[int], tuple | None]], torch.Tensor]:
    """Distinct states (token ids, own phrases or None) and, per state, how often each of its
    actions was the label (S x A, A the largest set)."""
    index: dict[tuple, int] = {}
    counts: list[list[float]] = []
    scorer = CachedScorer(policy)  # its text -> ids memo
    for text, label, _, phrases in pairs:
        key = (scorer.ids(text), phrases)
        if key not in index:
            index[key] = len(counts)
            counts.append([0.0] * len(phrases or ACTION_PHRASES))
        counts[index[key]][label] += 1
    width = max(map(len, counts), default=len(ACTION_PHRASES))
    return [(list(s), p) for s, p in index], torch.tensor([row + [0.0] * (width - len(row)) for row in counts])


def weighted_ce(policy, states: list[tuple[list[int], tuple | None]], counts: torch.Tensor) -> torch.Tensor:
    """Mean over the pairs behind `states` of -log pi(label | state), over each state's own phrases."""
    sets = [p or policy.phrases for _, p in states] if any(p is not None for _, p in states) else None
    log_probs = policy.score_ids([s for s, _ in states], sets).log_probs
    counts = counts.to(log_probs.device)[:, :log_probs.shape[1]]
    return -torch.where(counts > 0, counts * log_probs, 0.0).sum() / counts.sum()


def answer_counts(policy, pairs: list[tuple[str, int, str]]) -> tuple[list[tuple[list[int], list[int]]], torch.Tensor]:
    """Distinct (state token ids, answer token ids + end of turn) and how often each occurred (S,)."""
    index: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}
    counts: list[float] = []
    scorer = CachedScorer(policy)
    end = policy.tokenizer.convert_tokens_to_ids(policy.tokenizer.eos_token)  # where generation stops
    for text, _, answer, _ in pairs:
        key = (scorer.ids(text), tuple(encode(policy.tokenizer, answer)) + (end,))
        if key not in index:
            index[key] = len(counts)
            counts.append(0.0)
        counts[index[key]] += 1
    return [(list(s), list(a)) for s, a in index], torch.tensor(counts)


def answer_ce(policy, items: list[tuple[list[int], list[int]]], counts: torch.Tensor) -> torch.Tensor:
    """Per-token cross-entropy of the written answers, each pair weighted by its count."""
    log_probs = policy.answer_log_probs([s for s, _ in items], [a for _, a in items])
    tokens = torch.tensor([len(a) for _, a in items], dtype=counts.dtype)
    weights = counts.to(log_probs.device)
    return -(weights * log_probs).sum() / (weights * tokens.to(log_probs.device)).sum()


class Objective(NamedTuple):
    """What a mode learns: its training items with their counts, the loss of a batch, and
    an item's length in tokens (for batching the no-gradient passes by length)."""

    counts: Callable
    loss: Callable
    length: Callable


SCORE = Objective(label_counts, weighted_ce, lambda item: len(item[0]))
GENERATE = Objective(answer_counts, answer_ce, lambda item: len(item[0]) + len(item[1]))


def dataset_loss(policy, states, counts, batch_size: int, objective: Objective = SCORE,
                 progress: str | None = None) -> float:
    """The weighted loss over every state, without gradients; `progress` labels a tqdm bar
    (the first pass computes and keeps the lower layers of every state: minutes to an hour)."""
    # Shortest first: a batch pads to its longest row, so sorted batches waste little.
    order = sorted(range(len(states)), key=lambda i: objective.length(states[i]))
    total = 0.0
    with torch.no_grad():
        for start in tqdm(range(0, len(order), batch_size), desc=progress, unit="batch", disable=progress is None,
                          dynamic_ncols=True):
            batch = order[start:start + batch_size]
            total += float(objective.loss(policy, [states[i] for i in batch], counts[batch])) * float(counts[batch].sum())
    return total / float(counts.sum())


def gather_pairs(config: SFTConfig, policy, out: Path, resumed: bool) -> tuple[list, dict]:
    """Expert pairs, this round's learner pairs (played now, or read back on resume) and
    earlier rounds' pairs, in that order; and what the summary says of them."""
    pairs = expert_pairs(config)
    learner = {}
    if config.learner_episodes and resumed:
        learner_pairs = load_pairs(out / "learner_pairs.jsonl")
        learner = json.loads((out / "learner.json").read_text())
    elif config.learner_episodes:
        learner_pairs, success, by_task = collect_learner_pairs(
            policy, config.learner_env or config.env, config.learner_episodes,
            config.seed if config.learner_seed is None else config.learner_seed, config.all_levels)
        learner = {"learner_pairs": len(learner_pairs), "learner_success": success, "learner_success_by_task": by_task}
        per_task = "".join(f", {task} {rate:.2f}" for task, rate in by_task.items())
        print(f"DAgger: {config.learner_episodes} learner episodes on training levels, greedy success {success:.2f}"
              f"{per_task}; {len(learner_pairs)} states relabelled by the expert", flush=True)
        save_pairs(learner_pairs, out / "learner_pairs.jsonl")
        (out / "learner.json").write_text(json.dumps(learner))
    if config.learner_episodes:
        pairs += learner_pairs
    for path in config.pairs or []:
        earlier = load_pairs(path)
        learner["earlier_pairs"] = learner.get("earlier_pairs", 0) + len(earlier)
        pairs += earlier
    if config.augment_injections:
        injected = augment(pairs, config.augment_injections, config.seed)
        learner["injected_pairs"] = len(injected)
        pairs += injected
    return pairs, learner


@dataclass
class Progress:
    """Where training stands: what a checkpoint must restore besides weights, optimizer and RNG."""

    step: int = 0
    epoch: int = 1
    start: int = 0  # index into `order` of the epoch's next batch
    order: list[int] | None = None  # the epoch's shuffled state indices
    epoch_loss: float = 0.0
    epoch_weight: float = 0.0
    initial_ce: float | None = None
    distinct_states: int = 0


def epoch_order(n: int, batch_size: int, generator: torch.Generator, lengths: list[int] | None = None) -> list[int]:
    """An epoch's order of the n states, read `batch_size` at a time. With `lengths`, each run
    of 50 batches is sorted by length before it is cut into batches, and the full batches are
    shuffled (the one short batch stays last, so every other batch stays whole)."""
    order = torch.randperm(n, generator=generator).tolist()
    if lengths is None:
        return order
    chunk = 50 * batch_size
    batches = []
    for start in range(0, n, chunk):
        part = sorted(order[start:start + chunk], key=lengths.__getitem__)
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    last = [batches.pop()] if batches and len(batches[-1]) < batch_size else []
    shuffled = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()] + last
    return [i for batch in shuffled for i in batch]


def learning_rate_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """The multiple of --learning-rate at optimizer step `step` (0-based): a linear rise over
    the warm-up, then a linear decay that reaches 0 after the last step.

    >>> [learning_rate_factor(s, 4, 0) for s in range(4)], [learning_rate_factor(s, 4, 2) for s in range(4)]
    ([1.0, 0.75, 0.5, 0.25], [0.5, 1.0, 1.0, 0.5])
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return max(0.0, (total_steps - step) / max(total_steps - warmup_steps, 1))


def save_checkpoint(config: SFTConfig, policy, optimizer, scheduler, generator, progress: Progress) -> None:
    checkpoint.save(config.out, progress.step, {
        **checkpoint.trainer_files(policy, optimizer, scheduler),
        "state.json": {"progress": asdict(progress), "config": asdict(config), "generator": generator.get_state().tolist()}},
        keep=config.keep_checkpoints)


def expert_pairs(config: SFTConfig) -> list[tuple[str, int, str]]:
    """The run's --demos expert pairs: --env's levels of --demo-seed, deviations drawn by --seed."""
    return collect_demos(config.env, config.demos, config.deviation, config.seed, config.all_levels, config.demo_seed)


def write_demos(config: SFTConfig) -> dict:
    """--demos-only: the expert pairs to OUT/expert_pairs.jsonl, and a summary."""
    began = time.perf_counter()
    pairs = expert_pairs(config)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    save_pairs(pairs, out / "expert_pairs.jsonl")
    (out / "config.json").write_text(json.dumps(asdict(config), indent=2))
    summary = {"env": config.env, "seed": config.seed, "demo_seed": config.demo_seed, "pairs": len(pairs),
               "distinct_states": len({p[0] for p in pairs}), "expert_pairs": str(out / "expert_pairs.jsonl"), "seconds": time.perf_counter() - began}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary), flush=True)
    return summary


def training_system(config: SFTConfig) -> str:
    """The system part trained under: the env family's (MiniGrid's SCORE_SYSTEM by default),
    in generate mode with its answer format (MiniGrid's answers carry reasons)."""
    system = system_prompt(config.env)
    if config.mode == "score":
        return system or SCORE_SYSTEM
    return writing_system(system or SCORE_SYSTEM, reason=system is None)


def train(config: SFTConfig) -> dict:
    if config.demos_only:
        return write_demos(config)
    config, resume_folder, files = checkpoint.resume_config(config, ("stop_after_steps", "threads", "progress"))
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    began = time.perf_counter()
    policy = lora.trainable_policy(config.model, config.init_adapter, rank=config.lora_rank, alpha=config.lora_alpha,
                                   target_modules=config.target_modules, value_head=False, bf16=config.bf16,
                                   device=config.device, lora_layers=config.lora_layers,
                                   system=training_system(config))
    if config.lower_cache:
        policy.keep_lower_rows(config.lower_cache)
    # Write nothing before the model has loaded: a bad --model must leave an existing --out as it was.
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(lora.run_config(config, policy))
    log = MetricLog(out, append=files is not None)
    pairs, learner = gather_pairs(config, policy, out, resumed=files is not None)
    objective = GENERATE if config.mode == "generate" else SCORE
    states, counts = objective.counts(policy, pairs)
    print(f"{len(pairs)} pairs -> {len(states)} distinct states ({time.perf_counter() - began:.0f} s)", flush=True)

    params = lora.trainable_parameters(policy)
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    steps_per_epoch = -(-len(states) // config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, total_steps, config.warmup_steps))
    generator = torch.Generator().manual_seed(config.seed)

    if files is None:
        initial_loss = None
        if config.initial_ce:
            initial_loss = dataset_loss(policy, states, counts, 64, objective, "first CE pass" if config.progress else None)
            log.write(0, {"losses/ce": initial_loss})
            print(f"epoch 0: ce {initial_loss:.4f}", flush=True)
        progress = Progress(initial_ce=initial_loss, distinct_states=len(states))
    else:
        progress = Progress(**files["state.json"]["progress"])
        if progress.distinct_states != len(states):
            fail(f"cannot resume: the data now give {len(states)} distinct states, the run had "
                 f"{progress.distinct_states}; were --pairs files or the env changed? Start a fresh run.")
        checkpoint.restore_trainer(files, policy, optimizer, scheduler)
        generator.set_state(torch.tensor(files["state.json"]["generator"], dtype=torch.uint8))
        print(f"resumed from {resume_folder} at step {progress.step} (epoch {progress.epoch})", flush=True)

    bar = tqdm(total=total_steps, initial=progress.step, unit="step", disable=not config.progress, dynamic_ncols=True)
    stopped = False
    while progress.epoch <= config.epochs and not stopped:
        epoch_began, done_at_start = time.perf_counter(), progress.start
        if progress.order is None:
            lengths = [objective.length(state) for state in states] if config.group_by_length else None
            progress.order = epoch_order(len(states), config.batch_size, generator, lengths)
        order = progress.order
        bar.set_description(f"epoch {progress.epoch}/{config.epochs}")
        while progress.start < len(order) and not stopped:
            batch = order[progress.start:progress.start + config.batch_size]
            loss = objective.loss(policy, [states[i] for i in batch], counts[batch])
            optimizer.zero_grad(set_to_none=True)
            if torch.isfinite(loss):
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                weight = float(counts[batch].sum())
                progress.epoch_loss += loss.item() * weight
                progress.epoch_weight += weight
            else:
                print(f"warning: non-finite loss at step {progress.step}; update skipped", flush=True)
            scheduler.step()
            progress.step += 1
            progress.start += len(batch)
            bar.update(1)
            done = progress.start - done_at_start
            bar.set_postfix(ce=f"{progress.epoch_loss / max(progress.epoch_weight, 1e-9):.4f}",
                            states_per_s=f"{done / (time.perf_counter() - epoch_began):.1f}")
            stopped = bool(config.stop_after_steps and progress.step >= config.stop_after_steps)
            if stopped or (config.checkpoint_every and progress.step % config.checkpoint_every == 0
                           and progress.start < len(order)):
                save_checkpoint(config, policy, optimizer, scheduler, generator, progress)
        if progress.start < len(order):
            break  # stopped mid-epoch; the checkpoint above holds where
        seconds = time.perf_counter() - epoch_began
        epoch_ce = progress.epoch_loss / max(progress.epoch_weight, 1e-9)
        log.write(progress.epoch, {"losses/ce": epoch_ce, "charts/learning_rate": scheduler.get_last_lr()[0],
                                   "charts/states_per_second": (len(order) - done_at_start) / seconds})
        bar.write(f"epoch {progress.epoch}: ce {epoch_ce:.4f} ({seconds:.1f} s, "
                  f"{(len(order) - done_at_start) / seconds:.1f} states/s)")
        save_adapter(policy, out / "last")  # so a long run can be evaluated, or kept, before it ends
        progress = Progress(step=progress.step, epoch=progress.epoch + 1, initial_ce=progress.initial_ce,
                            distinct_states=len(states))
        save_checkpoint(config, policy, optimizer, scheduler, generator, progress)
    bar.close()
    if progress.epoch <= config.epochs:
        log.close()
        print(f"stopped after {progress.step} of {total_steps} steps; continue with --resume {out}", flush=True)
        return {"stopped_at_step": progress.step, "total_steps": total_steps, "out": str(out)}

    final_loss = (dataset_loss(policy, states, counts, 64, objective, "closing CE pass" if config.progress else None)
                  if config.final_ce else None)
    save_adapter(policy, out / "final")
    train_seconds = time.perf_counter() - began
    summary = {"env": config.env, "mode": config.mode, "pairs": len(pairs), **learner, "distinct_states": len(states),
               "initial_ce": progress.initial_ce, "final_ce": final_loss, "train_seconds": train_seconds,
               "adapter": str(out / "final")}
    if config.eval_episodes:
        result = evaluate(greedy_agent(policy, mode=config.mode), config.env,
                          validation_seeds(config.env, config.eval_episodes, config.all_levels))
        summary.update({"eval_split": "all" if config.all_levels else "validation",
                        "eval_success_rate": result.success_rate, "eval_episodes": result.episodes,
                        "eval_mean_length": result.mean_length, "eval_seconds": result.seconds,
                        "eval_success_by_task": result.success_by_task})
        log.write(config.epochs, {"eval/success_rate": result.success_rate,
                                  **{f"eval/success_rate/{t}": v for t, v in result.success_by_task.items()}})
    log.close()
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary), flush=True)
    return summary


def main(argv: list[str] | None = None) -> dict:
    return parse_and_run(SFTConfig, train, argv, "python training/sft.py", __doc__.split("\n\n")[0])


if __name__ == "__main__":
    main()

"""PPO with LoRA on an LM's closed-set action distribution in MiniGrid (CleanRL style).

    python training/rl_finetune.py --env MiniGrid-DoorKey-5x5-v0 --model smollm2-135m \\
        --num-envs 8 --total-steps 20000 --init-adapter runs/sft/final --out runs/NAME
    accelerate launch --multi_gpu --num_processes 2 training/rl_finetune.py ...   # data parallel

The policy is pi(a | s) = softmax over the 7 action phrases' log-likelihoods
(`LMPolicy.score_ids`); a linear value head reads the last state token's hidden state.
Only the LoRA adapter and the value head train; the base weights stay frozen. Speed on
CPU comes from scoring each distinct state once: rollouts go through `CachedScorer`
(scores per state for the current weights), and the update runs the forward pass on a
minibatch's distinct states and gathers rows back to samples (`score_samples`; same loss,
same gradients). `train` reads top to bottom: set up, then per update collect, update,
log, evaluate, checkpoint. See docs/TRAINING.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

import envs
from agent import threads
from agent.adapter_io import save_adapter
from agent.cli import (check_out_folder, check_range, env_adapter, fail, option, parse_and_run, require, switch,
                       system_prompt)
from agent.episodes import success_by_task
from agent.prompts import SCORE_SYSTEM
from agent.scoring import CachedScorer
from training import checkpoint, lora, ppo
from training.evaluate import EvalResult, evaluate, greedy_agent, validation_seeds
from training.logs import MetricLog, plot_learning_curve
from training.rollout import EnvPool, Rollout, collect


@dataclass
class PPOConfig(lora.TrainConfig):
    out: str | None = option(None, "run folder (default runs/{env}__ppo__{seed}__{time}); the adapter goes to OUT/final",
                             metavar="FOLDER")
    resume: str | None = option(None, "continue the run in this folder from its newest valid checkpoint (its saved config is used)")
    total_steps: int = option(20000, "env steps over all envs and processes")
    num_envs: int = option(8, "envs per process, stepped in lockstep")
    num_steps: int = option(32, "steps per env per rollout (batch = num_envs * num_steps per process)")
    anneal_lr: bool = option(True, "decay the learning rate linearly to 0 over the run")
    gamma: float = option(0.99, "discount factor")
    gae_lambda: float = option(0.95, "GAE lambda")
    update_epochs: int = option(2, "passes over each rollout")
    num_minibatches: int = option(2, "minibatches per pass (one optimizer step each)")
    max_states_per_forward: int = option(32, "distinct states per forward pass; larger minibatches accumulate gradients")
    norm_adv: bool = option(True, "normalise advantages within each minibatch")
    clip_coef: float = option(0.2, "PPO ratio clip")
    vf_clip: float = option(0.2, "value clip around the rollout's values (0 = off)")
    vf_coef: float = option(0.5, "value loss weight")
    ent_coef: float = option(0.0, "entropy bonus weight (0 keeps a behaviour-cloned policy peaked; try 0.01 from scratch)")
    kl_coef: float = option(0.0, "weight of KL(pi || frozen base LM) per state (0 = off; costs one cached base pass per new state)")
    shield: bool = switch("block sampled actions that step into lava and execute the most probable safe one (rollouts and eval)")
    eval_every: int = option(1024, "env steps between greedy evaluations on held-out seeds, taken at the next update "
                                   "boundary (0 = only at the end)")
    checkpoint_every: int = option(5, "checkpoint every N updates (0 = only at the end)")
    keep_checkpoints: int = option(3, "checkpoints kept on disk")
    stop_after_updates: int = option(0, "stop cleanly once this many updates are done (0 = run to the end; continue with --resume)")
    tensorboard: bool = option(True, "write TensorBoard logs to OUT/tensorboard")

    def __post_init__(self):
        super().__post_init__()
        if self.shield:
            require(self.env, "has_hazards", "--shield")
        fixed_phrases(self.env)  # PPO's rollouts and update score one fixed phrase set
        for name in ("total_steps", "num_envs", "num_steps", "update_epochs", "num_minibatches",
                     "max_states_per_forward", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}.")
        for name in ("eval_every", "checkpoint_every", "stop_after_updates"):
            check_range(f"--{name.replace('_', '-')}", getattr(self, name), 0)
        if self.num_minibatches > self.num_envs * self.num_steps:
            raise ValueError(f"--num-minibatches {self.num_minibatches} exceeds the batch of {self.num_envs * self.num_steps} samples: lower it.")
        if not 0 < self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            raise ValueError("--gamma must be in (0, 1] and --gae-lambda in [0, 1]; try 0.99 and 0.95.")
        for name in ("clip_coef", "vf_clip", "vf_coef", "ent_coef", "kl_coef"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must not be negative.")
        if self.out is None:
            self.out = self.resume or f"runs/{self.env}__ppo__{self.seed}__{int(time.time())}"
            check_out_folder(self.out)
        checkpoint.check_resume(self.resume, self.out)


def fixed_phrases(env_id: str) -> tuple[str, ...]:
    """The one phrase set every state of `env_id` (each task of a mixture) has; ValueError if none."""
    sets = set()
    for part in env_id.split("+"):
        env = envs.make(part)
        sets.add(env_adapter(part).fixed_actions(env))
        env.close()
    if None in sets or len(sets) > 1:
        raise ValueError(f"PPO here scores one fixed phrase set, and {env_id} gives "
                         f"{'per-state actions' if None in sets else 'several sets'}: train it with training/sft.py.")
    return sets.pop()


class ScoringModule(nn.Module):
    """forward(state ids) -> (log-probs, values): the entry point DDP/FSDP wrap for gradient sync."""

    def __init__(self, policy):
        super().__init__()
        self.policy = policy

    def forward(self, state_ids):
        scores = self.policy.score_ids([list(s) for s in state_ids])
        return scores.log_probs, scores.values


def score_samples(module, keys: list[tuple[int, ...]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample log-probs and values from one forward pass over the distinct states."""
    states, rows = ppo.unique_states(keys)
    log_probs, values = module(states)
    return log_probs[rows], values[rows]


@dataclass
class Counters:
    """What a checkpoint must restore besides weights, optimizer and RNGs."""

    update: int = 0
    global_step: int = 0
    episodes: int = 0
    skipped_updates: int = 0
    best_eval: float = -1.0
    shield_blocks: int = 0
    hazard_deaths: int = 0


@dataclass
class Run:
    """Everything the loop touches, built once by `setup`."""

    config: PPOConfig
    accelerator: object
    policy: object
    module: nn.Module
    params: list
    optimizer: torch.optim.Optimizer
    scheduler: object
    sampler: torch.Generator  # actions and minibatch order
    pool: EnvPool
    scorer: CachedScorer
    counters: Counters
    log: MetricLog | None  # main process only
    num_updates: int
    initial_checksum: str
    last_greedy: float = float("nan")  # greedy success at the latest evaluation, for the bar

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def world(self) -> int:
        return self.accelerator.num_processes


# ----- set-up ------------------------------------------------------------------------------
def launcher_processes(parent: int | None = None) -> int | None:
    """--num_processes of the `accelerate launch` that started this process, if one did (Linux)."""
    try:
        args = Path(f"/proc/{parent or os.getppid()}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    if not any(Path(a).name == "accelerate" or a.endswith("accelerate/commands/launch.py") for a in args[:3]):
        return None
    for i, arg in enumerate(args):
        value = arg.split("=", 1)[1] if arg.startswith("--num_processes=") else (
            args[i + 1] if arg == "--num_processes" and i + 1 < len(args) else None)
        if value is not None:
            return int(value) if value.isdigit() else None
    return None


def setup(config: PPOConfig, resume_files: dict | None) -> Run:
    from accelerate import Accelerator

    # cpu=True lets several CPU processes (torchrun / accelerate launch --multi_gpu) form a gloo group.
    accelerator = Accelerator(cpu=not torch.cuda.is_available() or config.device == "cpu")
    rank, world = accelerator.process_index, accelerator.num_processes
    asked = launcher_processes()
    if asked and asked > world:
        fail(f"accelerate launch was asked for {asked} processes but started {world} (without --multi_gpu it runs one "
             f"process on CPU): run accelerate launch --multi_gpu --num_processes {asked} training/rl_finetune.py ..., "
             "which starts them on CPU (gloo) and GPU alike.")
    if world > 1 and not config.threads:  # the processes share the cores
        threads.auto(cap=max(1, (os.cpu_count() or 1) // world))
    batch = config.num_envs * config.num_steps
    num_updates = config.total_steps // (batch * world)
    if num_updates < 1:
        fail(f"--total-steps {config.total_steps} is less than one rollout ({batch * world} steps): raise it or lower --num-steps.")

    # Same seed on every rank, so LoRA init and the value head start identical everywhere.
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    policy = lora.trainable_policy(config.model, config.init_adapter, config.lora_rank, config.lora_alpha,
                                   config.target_modules, value_head=True, bf16=config.bf16, device=accelerator.device,
                                   lora_layers=config.lora_layers, system=system_prompt(config.env) or SCORE_SYSTEM,
                                   phrases=fixed_phrases(config.env))
    params = lora.trainable_parameters(policy)
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, eps=1e-5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda u: max(0.0, 1.0 - u / num_updates) if config.anneal_lr else 1.0)
    sampler = torch.Generator().manual_seed(config.seed * 7919 + rank)
    pool = EnvPool(config.env, [rank * config.num_envs + i for i in range(config.num_envs)], config.all_levels)
    counters = Counters()
    if resume_files is not None:
        checkpoint.restore_trainer(resume_files, policy, optimizer, scheduler)
        counters = Counters(**resume_files["state.json"]["counters"])
        mine = resume_files[f"rank{rank}.json"]
        restore_random_state(mine, sampler)
        pool.restore(mine["envs"])

    initial_checksum = lora.checksum(lora.trainable_state(policy))
    module = accelerator.prepare(ScoringModule(policy))  # DDP when several processes
    out = Path(config.out)
    log = None
    if accelerator.is_main_process:
        log = MetricLog(out, tensorboard=config.tensorboard, append=resume_files is not None)
        (out / "config.json").write_text(lora.run_config(config, policy))
    return Run(config, accelerator, policy, module, params, optimizer, scheduler, sampler, pool,
               CachedScorer(policy, config.max_states_per_forward), counters, log, num_updates, initial_checksum)


# ----- update ------------------------------------------------------------------------------
def ppo_update(run: Run, rollout: Rollout) -> dict[str, float]:
    """GAE, then `update_epochs` passes of minibatch PPO steps; returns the mean loss terms."""
    config, accelerator = run.config, run.accelerator
    advantages, returns = ppo.gae(rollout.rewards, rollout.values, rollout.dones, rollout.next_value,
                                  config.gamma, config.gae_lambda)
    keys = [k for step in rollout.states for k in step]
    flat = {"actions": rollout.actions.flatten(), "log_probs": rollout.log_probs.flatten(),
            "values": rollout.values.flatten(), "advantages": advantages.flatten(), "returns": returns.flatten()}
    base = run.scorer.base_log_probs(keys) if config.kl_coef > 0 else None
    batch = len(keys)
    mb_size = -(-batch // config.num_minibatches)
    stats: dict[str, float] = {"states_forwarded": 0.0}
    steps = 0
    for _ in range(config.update_epochs):
        order = torch.randperm(batch, generator=run.sampler)
        for start in range(0, batch, mb_size):
            idx = order[start:start + mb_size]
            mb = {k: v[idx] for k, v in flat.items()}
            if config.norm_adv and len(idx) > 1:
                mb["advantages"] = (mb["advantages"] - mb["advantages"].mean()) / (mb["advantages"].std() + 1e-8)
            mb_keys = [keys[i] for i in idx]
            states, rows = ppo.unique_states(mb_keys)
            stats["states_forwarded"] += len(states)
            run.optimizer.zero_grad(set_to_none=True)
            finite = True
            firsts = list(range(0, len(states), config.max_states_per_forward))
            for c, first in enumerate(firsts):
                part = ((rows >= first) & (rows < first + config.max_states_per_forward)).nonzero().squeeze(1)
                sync = c == len(firsts) - 1  # all-reduce gradients once per minibatch
                with (contextlib.nullcontext() if sync else accelerator.no_sync(run.module)):
                    log_probs, values = score_samples(run.module, [mb_keys[i] for i in part])
                    terms = ppo.ppo_loss(log_probs, values.float(), mb["actions"][part], mb["log_probs"][part],
                                         mb["values"][part], mb["advantages"][part], mb["returns"][part],
                                         config.clip_coef, config.vf_clip, config.vf_coef, config.ent_coef,
                                         config.kl_coef, base[idx][part] if base is not None else None, scale=len(idx))
                    finite &= bool(torch.isfinite(terms.total))
                    accelerator.backward(terms.total)
                for name in ("policy", "value", "entropy", "kl_base", "approx_kl", "clipfrac"):
                    stats[name] = stats.get(name, 0.0) + float(getattr(terms, name).detach())
            steps += 1
            bad = torch.tensor([0.0 if finite else 1.0], device=accelerator.device)
            bad = accelerator.reduce(bad, "sum") if run.world > 1 else bad
            grad_norm = torch.nn.utils.clip_grad_norm_(run.params, config.max_grad_norm)
            if bad.item() > 0 or not torch.isfinite(grad_norm):
                run.counters.skipped_updates += 1
                run.optimizer.zero_grad(set_to_none=True)
                if run.main:
                    print(f"warning: non-finite loss or gradient at update {run.counters.update + 1}; optimizer step "
                          f"skipped (total skipped: {run.counters.skipped_updates})", file=sys.stderr, flush=True)
                continue
            run.optimizer.step()
    run.scheduler.step()
    return {k: (v if k == "states_forwarded" else v / steps) for k, v in stats.items()}


# ----- logging, evaluation, checkpoints ---------------------------------------------------
def log_update(run: Run, rollout: Rollout, stats: dict, seconds: dict, started: float, steps_at_start: int,
               progress) -> None:
    """Count the finished episodes on every rank; the main process writes metrics and the bar."""
    from accelerate.utils import gather_object

    finished = gather_object(rollout.finished) if run.world > 1 else rollout.finished
    shield_blocks = sum(gather_object([rollout.shield_blocks])) if run.world > 1 else rollout.shield_blocks
    hazard_deaths = sum(e.died for e in finished)
    c = run.counters
    c.shield_blocks += shield_blocks
    c.hazard_deaths += hazard_deaths
    c.episodes += len(finished)
    if not run.main:
        return
    sps = (c.global_step - steps_at_start) / (time.perf_counter() - started)
    metrics = {f"losses/{k}": v for k, v in stats.items() if k != "states_forwarded"}
    metrics.update({"charts/SPS": sps, "charts/learning_rate": run.optimizer.param_groups[0]["lr"],
                    "charts/distinct_states_scored": rollout.scored_states,
                    "charts/states_forwarded_in_update": stats["states_forwarded"],
                    "charts/rollout_seconds": seconds["rollout"], "charts/update_seconds": seconds["update"],
                    "charts/env_errors": run.pool.errors, "charts/shield_blocks": shield_blocks,
                    "charts/hazard_deaths": hazard_deaths,
                    "losses/skipped_updates": c.skipped_updates,
                    "charts/peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20})
    if finished:  # sampled actions, as the rollout played them
        metrics["charts/episodic_return"] = sum(e.episode_return for e in finished) / len(finished)
        metrics["charts/episodic_length"] = sum(e.length for e in finished) / len(finished)
        metrics["charts/success_rate"] = sum(e.success for e in finished) / len(finished)
        for task, (wins, total) in success_by_task(finished).items():
            if task != run.config.env:  # the tasks of a mixture
                metrics[f"charts/success_rate/{task}"] = wins / total
    run.log.write(c.global_step, metrics)
    progress.update(1)
    progress.set_postfix(sps=f"{sps:.1f}", sampled_success=f"{metrics.get('charts/success_rate', float('nan')):.2f}",
                         greedy_success=f"{run.last_greedy:.2f}", states=rollout.scored_states)
    if not run.config.progress:
        print(json.dumps({"update": c.update, "step": c.global_step, **{k: round(v, 4) for k, v in metrics.items()}}),
              flush=True)


def run_eval(run: Run) -> EvalResult:
    """Greedy success on validation levels; the best adapter so far goes to OUT/best."""
    config = run.config
    result = evaluate(greedy_agent(run.policy, config.max_states_per_forward), config.env,
                      validation_seeds(config.env, config.eval_episodes, config.all_levels), use_shield=config.shield)
    run.log.write(run.counters.global_step, {"eval/success_rate": result.success_rate, "eval/mean_length": result.mean_length,
                                             **{f"eval/success_rate/{t}": v for t, v in result.success_by_task.items()}})
    run.last_greedy = result.success_rate
    if result.success_rate >= run.counters.best_eval:
        run.counters.best_eval = result.success_rate
        save_adapter(run.policy, Path(config.out) / "best")
    tasks = "".join(f", {t} {v:.2f}" for t, v in result.success_by_task.items())
    print(f"update {run.counters.update}: greedy success {result.success_rate:.2f} on {result.episodes} "
          f"{'' if config.all_levels else 'validation '}levels{tasks} ({result.seconds:.0f} s)", flush=True)
    return result


def random_state(sampler: torch.Generator) -> dict:
    """This process's random streams (python, numpy, torch, the minibatch sampler) as plain
    JSON data, so a checkpoint holds no pickled objects; `restore_random_state` inverts it."""
    version, words, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": [version, list(words), gauss], "numpy": [name, keys.tolist(), pos, has_gauss, cached],
            "torch": torch.get_rng_state().tolist(), "sampler": sampler.get_state().tolist()}


def restore_random_state(state: dict, sampler: torch.Generator) -> None:
    version, words, gauss = state["python"]
    random.setstate((version, tuple(words), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    sampler.set_state(torch.tensor(state["sampler"], dtype=torch.uint8))


def save_checkpoint(run: Run) -> None:
    from accelerate.utils import gather_object

    rank_state = {**random_state(run.sampler), "envs": run.pool.state()}
    every_rank = gather_object([rank_state]) if run.world > 1 else [rank_state]
    if run.main:
        objects = {**checkpoint.trainer_files(run.policy, run.optimizer, run.scheduler),
                   "state.json": {"counters": asdict(run.counters), "config": asdict(run.config)}}
        objects.update({f"rank{r}.json": s for r, s in enumerate(every_rank)})
        checkpoint.save(run.config.out, run.counters.update, objects, keep=run.config.keep_checkpoints)
    run.accelerator.wait_for_everyone()


def finish(run: Run, seconds: float, sps: float, last_eval: EvalResult | None) -> dict:
    """Checksums per rank, the final adapter, the curve and summary.json."""
    c, out = run.counters, Path(run.config.out)
    summary = {"env": run.config.env, "updates": c.update, "env_steps": c.global_step, "episodes": c.episodes,
               "skipped_updates": c.skipped_updates, "shield_blocks": c.shield_blocks,
               "hazard_deaths": c.hazard_deaths, "seconds": seconds, "processes": run.world}
    # Every rank records a checksum of its trainable weights: data-parallel replicas must agree.
    (out / "checksums").mkdir(parents=True, exist_ok=True)
    (out / "checksums" / f"rank{run.accelerator.process_index}.txt").write_text(
        f"start {run.initial_checksum}\nend {lora.checksum(lora.trainable_state(run.policy))}\n")
    if run.main:
        summary["sps"] = sps
        summary["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        if c.update == run.num_updates:
            save_adapter(run.policy, out / "final")
            summary["adapter"] = str(out / "final")
        if last_eval is not None:
            summary.update({"eval_success_rate": last_eval.success_rate, "eval_episodes": last_eval.episodes,
                            "best_eval_success_rate": c.best_eval})
        run.log.close()
        plot_learning_curve(out, title=f"{run.config.env} PPO")
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        print(json.dumps(summary), flush=True)
    run.accelerator.wait_for_everyone()
    return summary


def train(config: PPOConfig) -> dict:
    from tqdm import tqdm

    config, resume_folder, resume_files = checkpoint.resume_config(config, ("stop_after_updates", "threads", "progress"))
    run = setup(config, resume_files)
    c = run.counters
    if resume_folder is not None and run.main:
        print(f"resumed from {resume_folder} at update {c.update}", flush=True)
    progress = tqdm(total=run.num_updates, initial=c.update, disable=not (run.main and config.progress),
                    desc="updates", dynamic_ncols=True)
    started, steps_at_start, last_eval = time.perf_counter(), c.global_step, None
    while c.update < run.num_updates and not (config.stop_after_updates and c.update >= config.stop_after_updates):
        began = time.perf_counter()
        rollout = collect(run.pool, run.scorer, config.num_steps, run.sampler, use_shield=config.shield)
        update_began = time.perf_counter()
        stats = ppo_update(run, rollout)  # the scorer sees the new weights and forgets old scores
        seconds = {"rollout": update_began - began, "update": time.perf_counter() - update_began}
        steps_before = c.global_step
        c.update += 1
        c.global_step += config.num_envs * config.num_steps * run.world
        log_update(run, rollout, stats, seconds, started, steps_at_start, progress)

        is_last = c.update == run.num_updates
        eval_due = config.eval_every and c.global_step // config.eval_every > steps_before // config.eval_every
        if run.main and config.eval_episodes and (is_last or eval_due):
            last_eval = run_eval(run)
        run.accelerator.wait_for_everyone()
        stopping = config.stop_after_updates and c.update >= config.stop_after_updates
        if is_last or stopping or (config.checkpoint_every and c.update % config.checkpoint_every == 0):
            save_checkpoint(run)
    progress.close()
    seconds = time.perf_counter() - started
    return finish(run, seconds, (c.global_step - steps_at_start) / seconds, last_eval)


def main(argv: list[str] | None = None) -> dict:
    return parse_and_run(PPOConfig, train, argv, "python training/rl_finetune.py", __doc__.split("\n\n")[0])


if __name__ == "__main__":
    main()

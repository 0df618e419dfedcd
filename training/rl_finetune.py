"""PPO with LoRA on an LM's closed-set action distribution in MiniGrid (CleanRL style).

    python training/rl_finetune.py --env MiniGrid-DoorKey-5x5-v0 --model smollm2-135m \\
        --num-envs 8 --total-steps 20000 --init-adapter runs/sft/final --out runs/NAME
    accelerate launch --cpu --num_processes 2 training/rl_finetune.py ...   # data parallel

The policy is pi(a | s) = softmax over the 7 action phrases' log-likelihoods
(`LMPolicy.score_ids`); a linear value head reads the last state token's hidden state.
Only the LoRA adapter and the value head train; the base weights stay frozen. Speed on
CPU comes from scoring each distinct state once: rollouts cache scores per state for the
current policy version, and the update runs the forward pass on a minibatch's distinct
states and gathers rows back to samples (same loss, same gradients). See docs/TRAINING.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib
import json
import random
import resource
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

import envs
from training import seeds as seed_policy
from training.cli import check_out_folder, fail, option, parse


@dataclass
class PPOConfig:
    env: str = option("MiniGrid-DoorKey-5x5-v0", "Gymnasium id or short family name")
    model: str = option("smollm2-135m", "base model: smollm2-135m, tiny-random or a Hugging Face folder")
    out: str | None = option(None, "run folder (default runs/{env}__ppo__{seed}__{time}); the adapter goes to OUT/final")
    init_adapter: str | None = option(None, "start from this LoRA adapter folder (e.g. runs/sft/final from training/sft.py)")
    resume: str | None = option(None, "continue the run in this folder from its newest valid checkpoint (its saved config is used)")
    seed: int = option(1, "seed of LoRA init, action sampling and minibatch order")
    total_steps: int = option(20000, "env steps over all envs and processes")
    num_envs: int = option(8, "envs per process, stepped in lockstep")
    num_steps: int = option(32, "steps per env per rollout (batch = num_envs * num_steps per process)")
    learning_rate: float = option(1e-4, "AdamW learning rate")
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
    max_grad_norm: float = option(0.5, "gradient clipping norm")
    lora_rank: int = option(8, "LoRA rank r (ignored with --init-adapter)")
    lora_alpha: int = option(16, "LoRA alpha (ignored with --init-adapter)")
    target_modules: str = option("all-linear", "LoRA targets: all-linear or a comma list like q_proj,v_proj")
    bf16: bool = option(True, "bf16 autocast (faster on CPUs with AVX512-BF16 and on GPUs)")
    shield: bool = option(False, "block sampled actions that step into lava and execute the most probable safe one (rollouts and eval)")
    eval_every: int = option(5, "greedy evaluation on held-out seeds every N updates (0 = only at the end)")
    eval_episodes: int = option(100, "held-out eval seeds 0..N-1 (0 = no evaluation)")
    checkpoint_every: int = option(5, "checkpoint every N updates (0 = only at the end)")
    keep_checkpoints: int = option(3, "checkpoints kept on disk")
    stop_after_updates: int = option(0, "stop cleanly once this many updates are done (0 = run to the end; continue with --resume)")
    threads: int = option(0, "torch CPU threads per process (0 = all cores / processes)")
    progress: bool = option(True, "show a tqdm progress bar")
    tensorboard: bool = option(True, "write TensorBoard logs to OUT/tensorboard")

    def __post_init__(self):
        positive = ("total_steps", "num_envs", "num_steps", "update_epochs", "num_minibatches",
                    "max_states_per_forward", "lora_rank", "lora_alpha", "keep_checkpoints")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}.")
        for name in ("eval_every", "eval_episodes", "checkpoint_every", "stop_after_updates", "threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be 0 or more, not {getattr(self, name)}.")
        if self.num_minibatches > self.num_envs * self.num_steps:
            raise ValueError(f"--num-minibatches {self.num_minibatches} exceeds the batch of {self.num_envs * self.num_steps} samples: lower it.")
        if not 0 < self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            raise ValueError("--gamma must be in (0, 1] and --gae-lambda in [0, 1]; try 0.99 and 0.95.")
        if not self.learning_rate > 0:
            raise ValueError(f"--learning-rate must be positive, not {self.learning_rate}; try 1e-4.")
        for name in ("clip_coef", "vf_clip", "vf_coef", "ent_coef", "kl_coef"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must not be negative.")
        if not self.max_grad_norm > 0:  # 0 would clip every gradient to nothing
            raise ValueError(f"--max-grad-norm must be positive, not {self.max_grad_norm}; try 0.5.")
        if not 0 <= self.seed < 2**31:
            raise ValueError(f"--seed {self.seed} is out of range: give a seed from 0 to 2147483647.")
        if self.eval_episodes > seed_policy.MAX_EVAL_SEEDS:
            raise ValueError(f"--eval-episodes must be at most {seed_policy.MAX_EVAL_SEEDS}.")
        if self.init_adapter and not (Path(self.init_adapter) / "adapter_config.json").is_file():
            raise ValueError(f"--init-adapter {self.init_adapter} holds no adapter_config.json: pass a folder written by training/sft.py (OUT/final).")
        if self.resume and not (Path(self.resume) / "checkpoints").is_dir() and not Path(self.resume).name.startswith("update_"):
            raise ValueError(f"--resume {self.resume} has no checkpoints/ folder: pass the --out folder of an earlier run.")
        try:
            self.env = envs.resolve_env_id(self.env)
        except envs.UnknownEnvError as err:
            raise ValueError(str(err)) from None
        if self.out is None:
            self.out = self.resume or f"runs/{self.env}__ppo__{self.seed}__{int(time.time())}"
        check_out_folder(self.out)
        if not self.resume and (Path(self.out) / "checkpoints").is_dir():  # a new run would mix its checkpoints in
            raise ValueError(f"--out {self.out} already holds a run: continue it with --resume {self.out}, or give a new --out.")


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
    from training.ppo import unique_states

    states, rows = unique_states(keys)
    log_probs, values = module(states)
    return log_probs[rows], values[rows]


def resolve_resume(config: PPOConfig) -> tuple[PPOConfig, Path | None, dict | None]:
    """With --resume, load the newest valid checkpoint and continue with its saved config."""
    from training.checkpoint import CheckpointError, load_latest

    if not config.resume:
        return config, None, None
    try:
        folder, files = load_latest(config.resume)
    except CheckpointError as err:
        fail(f"cannot resume: {err}; start a fresh run without --resume.")
    saved = dict(files["state.pt"]["config"])
    # Only these may change on resume; everything that shapes the training stays as saved.
    for name in ("stop_after_updates", "threads", "progress", "resume"):
        saved[name] = getattr(config, name)
    saved["out"] = str(Path(config.resume)) if not Path(config.resume).name.startswith("update_") else str(Path(config.resume).parents[1])
    return PPOConfig(**saved), folder, files


def base_log_probs(policy, keys, cache: dict, batch_size: int) -> torch.Tensor:
    """Log-probs of the frozen base LM (adapter off), cached forever: the base never changes."""
    todo = list(dict.fromkeys(k for k in keys if k not in cache))
    with torch.no_grad(), policy.adapter_disabled():
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            rows = policy.score_ids([list(k) for k in chunk]).log_probs.float().cpu()
            cache.update(zip(chunk, rows))
    return torch.stack([cache[k] for k in keys])


def train(config: PPOConfig) -> dict:
    from accelerate import Accelerator
    from accelerate.utils import gather_object
    from tqdm import tqdm

    from training import checkpoint
    from training.evaluate import evaluate
    from training.logs import MetricLog, plot_learning_curve
    from training.lora import checksum, save_adapter, trainable_parameters, trainable_policy, trainable_state
    from training.ppo import ppo_loss, unique_states
    from training.rollout import EnvPool, ScoreCache, collect, gae

    config, resume_folder, resume_files = resolve_resume(config)
    # cpu=True lets several CPU processes (torchrun / accelerate launch --multi_gpu) form a gloo group.
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    rank, world, main = accelerator.process_index, accelerator.num_processes, accelerator.is_main_process
    torch.set_num_threads(config.threads or max(1, (torch.get_num_threads() if world == 1 else torch.get_num_threads() // world)))
    batch = config.num_envs * config.num_steps
    num_updates = config.total_steps // (batch * world)
    if num_updates < 1:
        fail(f"--total-steps {config.total_steps} is less than one rollout ({batch * world} steps): raise it or lower --num-steps.")

    # Same seed on every rank, so LoRA init and the value head start identical everywhere.
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    policy = trainable_policy(config.model, config.init_adapter, config.lora_rank, config.lora_alpha,
                              config.target_modules, value_head=True, bf16=config.bf16, device=accelerator.device)
    params = trainable_parameters(policy)
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, eps=1e-5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda u: max(0.0, 1.0 - u / num_updates) if config.anneal_lr else 1.0)
    sampler = torch.Generator().manual_seed(config.seed * 7919 + rank)  # actions and minibatch order
    pool = EnvPool(config.env, [rank * config.num_envs + i for i in range(config.num_envs)])
    counters = {"update": 0, "global_step": 0, "episodes": 0, "skipped_updates": 0, "best_eval": -1.0,
                "shield_blocks": 0, "hazard_deaths": 0}

    out = Path(config.out)
    if resume_files is not None:
        named = dict(policy.named_parameters())
        with torch.no_grad():
            for name, value in resume_files["trainable.pt"].items():
                named[name].copy_(value)
        optimizer.load_state_dict(resume_files["optimizer.pt"])
        scheduler.load_state_dict(resume_files["scheduler.pt"])
        counters.update(resume_files["state.pt"]["counters"])
        mine = resume_files[f"rank{rank}.pt"]
        random.setstate(mine["python"])
        np.random.set_state(mine["numpy"])
        torch.set_rng_state(mine["torch"])
        sampler.set_state(mine["sampler"])
        pool.restore(mine["envs"])
        if main:
            print(f"resumed from {resume_folder} at update {counters['update']}", flush=True)

    initial_checksum = checksum(trainable_state(policy))
    module = accelerator.prepare(ScoringModule(policy))  # DDP when several processes
    cache = ScoreCache(policy, config.max_states_per_forward)
    base_cache: dict = {}
    log = MetricLog(out, tensorboard=config.tensorboard, append=resume_files is not None) if main else None
    if main:
        (out / "config.json").write_text(json.dumps(asdict(config), indent=2))

    def save_checkpoint():
        rank_state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
                      "sampler": sampler.get_state(), "envs": pool.state()}
        every_rank = gather_object([rank_state]) if world > 1 else [rank_state]
        if main:
            objects = {"trainable.pt": trainable_state(policy), "optimizer.pt": optimizer.state_dict(),
                       "scheduler.pt": scheduler.state_dict(),
                       "state.pt": {"counters": dict(counters), "config": asdict(config)}}
            objects.update({f"rank{r}.pt": s for r, s in enumerate(every_rank)})
            checkpoint.save(out, counters["update"], objects, keep=config.keep_checkpoints)
        accelerator.wait_for_everyone()

    def run_eval():
        result = evaluate(policy, config.env, seed_policy.eval_seeds(config.eval_episodes), config.max_states_per_forward,
                          use_shield=config.shield)
        log.write(counters["global_step"], {"eval/success_rate": result.success_rate, "eval/mean_length": result.mean_length})
        if result.success_rate >= counters["best_eval"]:
            counters["best_eval"] = result.success_rate
            save_adapter(policy, out / "best")
        return result

    progress = tqdm(total=num_updates, initial=counters["update"], disable=not (main and config.progress),
                    desc="updates", dynamic_ncols=True)
    started, steps_at_start = time.perf_counter(), counters["global_step"]
    recent: list = []  # finished training episodes since the last log line
    last_eval = None
    while counters["update"] < num_updates:
        if config.stop_after_updates and counters["update"] >= config.stop_after_updates:
            break
        rollout_began = time.perf_counter()
        rollout = collect(pool, cache, config.num_steps, sampler, use_shield=config.shield)
        rollout_seconds = time.perf_counter() - rollout_began
        advantages, returns = gae(rollout.rewards, rollout.values, rollout.dones, rollout.next_value,
                                  config.gamma, config.gae_lambda)
        keys = [k for step in rollout.states for k in step]
        flat = {"actions": rollout.actions.flatten(), "log_probs": rollout.log_probs.flatten(),
                "values": rollout.values.flatten(), "advantages": advantages.flatten(), "returns": returns.flatten()}
        base = base_log_probs(policy, keys, base_cache, config.max_states_per_forward) if config.kl_coef > 0 else None

        update_began = time.perf_counter()
        stats: dict[str, float] = {}
        forwarded = 0
        mb_size = -(-batch // config.num_minibatches)
        for _ in range(config.update_epochs):
            order = torch.randperm(batch, generator=sampler)
            for start in range(0, batch, mb_size):
                idx = order[start:start + mb_size]
                mb = {k: v[idx] for k, v in flat.items()}
                if config.norm_adv and len(idx) > 1:
                    mb["advantages"] = (mb["advantages"] - mb["advantages"].mean()) / (mb["advantages"].std() + 1e-8)
                states, rows = unique_states([keys[i] for i in idx])
                forwarded += len(states)
                optimizer.zero_grad(set_to_none=True)
                chunks = list(range(0, len(states), config.max_states_per_forward))
                finite = True
                for c, first in enumerate(chunks):
                    in_chunk = (rows >= first) & (rows < first + config.max_states_per_forward)
                    sync = c == len(chunks) - 1  # all-reduce gradients once per minibatch
                    with (contextlib.nullcontext() if sync else accelerator.no_sync(module)):
                        log_probs, values = module(states[first:first + config.max_states_per_forward])
                        local = rows[in_chunk] - first
                        terms = ppo_loss(log_probs[local], values[local].float(), mb["actions"][in_chunk],
                                         mb["log_probs"][in_chunk], mb["values"][in_chunk], mb["advantages"][in_chunk],
                                         mb["returns"][in_chunk], config.clip_coef, config.vf_clip, config.vf_coef,
                                         config.ent_coef, config.kl_coef,
                                         base[idx][in_chunk] if base is not None else None, scale=len(idx))
                        finite &= bool(torch.isfinite(terms.total))
                        accelerator.backward(terms.total)
                    for name in ("policy", "value", "entropy", "kl_base", "approx_kl", "clipfrac"):
                        stats[name] = stats.get(name, 0.0) + float(getattr(terms, name).detach())
                bad = torch.tensor([0.0 if finite else 1.0], device=accelerator.device)
                bad = accelerator.reduce(bad, "sum") if world > 1 else bad
                grad_norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                if bad.item() > 0 or not torch.isfinite(grad_norm):
                    counters["skipped_updates"] += 1
                    optimizer.zero_grad(set_to_none=True)
                    if main:
                        print(f"warning: non-finite loss or gradient at update {counters['update'] + 1}; "
                              f"optimizer step skipped (total skipped: {counters['skipped_updates']})", file=sys.stderr, flush=True)
                    continue
                optimizer.step()
        scheduler.step()
        cache.clear()  # scores belong to the policy version that collected them
        update_seconds = time.perf_counter() - update_began
        counters["update"] += 1
        counters["global_step"] += batch * world
        n_minibatches = config.update_epochs * -(-batch // mb_size)

        finished = gather_object(rollout.finished) if world > 1 else rollout.finished
        shield_blocks = sum(gather_object([rollout.shield_blocks])) if world > 1 else rollout.shield_blocks
        hazard_deaths = sum(e.died for e in finished)
        counters["shield_blocks"] += shield_blocks
        counters["hazard_deaths"] += hazard_deaths
        counters["episodes"] += len(finished)
        recent.extend(finished)
        if main:
            sps = (counters["global_step"] - steps_at_start) / (time.perf_counter() - started)
            metrics = {f"losses/{k}": v / n_minibatches for k, v in stats.items()}
            metrics.update({"charts/SPS": sps, "charts/learning_rate": optimizer.param_groups[0]["lr"],
                            "charts/distinct_states_scored": rollout.scored_states,
                            "charts/states_forwarded_in_update": forwarded, "charts/rollout_seconds": rollout_seconds,
                            "charts/update_seconds": update_seconds, "charts/env_errors": pool.errors,
                            "charts/shield_blocks": shield_blocks, "charts/hazard_deaths": hazard_deaths,
                            "losses/skipped_updates": counters["skipped_updates"],
                            "charts/peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20})
            if recent:
                metrics["charts/episodic_return"] = sum(e.episode_return for e in recent) / len(recent)
                metrics["charts/episodic_length"] = sum(e.length for e in recent) / len(recent)
                metrics["charts/success_rate"] = sum(e.success for e in recent) / len(recent)
                recent = []
            log.write(counters["global_step"], metrics)
            progress.update(1)
            progress.set_postfix(sps=f"{sps:.1f}", success=f"{metrics.get('charts/success_rate', float('nan')):.2f}",
                                 states=rollout.scored_states)
            if not config.progress:
                print(json.dumps({"update": counters["update"], "step": counters["global_step"],
                                  **{k: round(v, 4) for k, v in metrics.items()}}), flush=True)
        is_last = counters["update"] == num_updates
        if main and config.eval_episodes and (is_last or (config.eval_every and counters["update"] % config.eval_every == 0)):
            last_eval = run_eval()
            print(f"update {counters['update']}: greedy success {last_eval.success_rate:.2f} on "
                  f"{last_eval.episodes} held-out seeds ({last_eval.seconds:.0f} s)", flush=True)
        accelerator.wait_for_everyone()
        stopping = config.stop_after_updates and counters["update"] >= config.stop_after_updates
        if is_last or stopping or (config.checkpoint_every and counters["update"] % config.checkpoint_every == 0):
            save_checkpoint()
    progress.close()

    summary = {"env": config.env, "updates": counters["update"], "env_steps": counters["global_step"],
               "episodes": counters["episodes"], "skipped_updates": counters["skipped_updates"],
               "shield_blocks": counters["shield_blocks"], "hazard_deaths": counters["hazard_deaths"],
               "seconds": time.perf_counter() - started, "processes": world}
    # Every rank records a checksum of its trainable weights: data-parallel replicas must agree.
    (out / "checksums").mkdir(parents=True, exist_ok=True)
    (out / "checksums" / f"rank{rank}.txt").write_text(
        f"start {initial_checksum}\nend {checksum(trainable_state(policy))}\n")
    if main:
        summary["sps"] = (counters["global_step"] - steps_at_start) / summary["seconds"]
        summary["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        if counters["update"] == num_updates:
            save_adapter(policy, out / "final")
            summary["adapter"] = str(out / "final")
        if last_eval is not None:
            summary.update({"eval_success_rate": last_eval.success_rate, "eval_episodes": last_eval.episodes,
                            "best_eval_success_rate": counters["best_eval"]})
        log.close()
        plot_learning_curve(out, title=f"{config.env} PPO")
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        print(json.dumps(summary), flush=True)
    accelerator.wait_for_everyone()
    return summary


def main(argv: list[str] | None = None) -> dict:
    from agent.models import ModelError

    config = parse(PPOConfig, argv, prog="python training/rl_finetune.py", description=__doc__.split("\n\n")[0])
    try:
        return train(config)
    except ModelError as err:
        fail(str(err))


if __name__ == "__main__":
    main()

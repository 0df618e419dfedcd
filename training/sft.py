"""Behaviour cloning warm start: expert demonstrations -> LoRA by closed-set cross-entropy.

    python training/sft.py --env MiniGrid-DoorKey-5x5-v0 --demos 2000 --out runs/sft-doorkey

Demonstrations come from `envs.expert.expert_action` on training seeds (see
`training/seeds.py`). With probability `--deviation` a random action is executed instead
of the expert's, so the data covers states off the expert's path; the label is always
the expert's action at the recorded state. The loss is -log pi(expert action | state)
under `LMPolicy.score_ids` (the softmax over the 7 phrases). Identical states are
trained once, weighted by how often each label occurred, which gives the same gradient
as training on every pair. The result (`OUT/final`) loads with
`agent.policy.load_policy(model, adapter=OUT/final)` and starts PPO via `--init-adapter`.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import json
import random
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

import envs
from agent.actions import ACTION_PHRASES
from agent.perception import describe
from training import seeds as seed_policy
from training.cli import check_out_folder, fail, option, parse


@dataclass
class SFTConfig:
    env: str = option("MiniGrid-DoorKey-5x5-v0", "Gymnasium id or short family name")
    model: str = option("smollm2-135m", "base model: smollm2-135m, tiny-random or a Hugging Face folder")
    out: str = option("runs/sft", "output folder; the adapter goes to OUT/final")
    demos: int = option(2000, "expert (state, action) pairs to collect")
    deviation: float = option(0.2, "probability of executing a random action instead of the expert's (label stays the expert's)")
    epochs: int = option(12, "passes over the distinct states")
    batch_size: int = option(8, "distinct states per optimizer step (small: DoorKey has few distinct states)")
    learning_rate: float = option(1e-3, "AdamW learning rate (linear decay to 0)")
    weight_decay: float = option(0.0, "AdamW weight decay")
    max_grad_norm: float = option(1.0, "gradient clipping norm")
    lora_rank: int = option(8, "LoRA rank r")
    lora_alpha: int = option(16, "LoRA alpha (scale = alpha / r)")
    target_modules: str = option("all-linear", "LoRA target modules: all-linear or a comma list like q_proj,v_proj")
    bf16: bool = option(True, "bf16 autocast (faster on CPUs with AVX512-BF16 and on GPUs)")
    seed: int = option(1, "seed of the random deviations, LoRA init and batch order")
    eval_episodes: int = option(100, "greedy episodes on held-out seeds 0..N-1 after training (0 = skip)")
    threads: int = option(0, "torch CPU threads (0 = all cores)")

    def __post_init__(self):
        if self.demos < 1:
            raise ValueError(f"--demos must be at least 1, not {self.demos}.")
        if not 0.0 <= self.deviation < 1.0:
            raise ValueError(f"--deviation must be in [0, 1), not {self.deviation}: it is a probability.")
        for name in ("epochs", "batch_size", "lora_rank", "lora_alpha"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}.")
        if not self.learning_rate > 0:
            raise ValueError(f"--learning-rate must be positive, not {self.learning_rate}; try 5e-4.")
        if not 0 <= self.eval_episodes <= seed_policy.MAX_EVAL_SEEDS:
            raise ValueError(f"--eval-episodes must be 0..{seed_policy.MAX_EVAL_SEEDS}, not {self.eval_episodes}.")
        if self.threads < 0:
            raise ValueError("--threads must be 0 (all cores) or positive.")
        if self.weight_decay < 0:
            raise ValueError(f"--weight-decay must not be negative, not {self.weight_decay}; try 0.")
        if not self.max_grad_norm > 0:
            raise ValueError(f"--max-grad-norm must be positive, not {self.max_grad_norm}; try 1.0.")
        if not 0 <= self.seed < 2**31:
            raise ValueError(f"--seed {self.seed} is out of range: give a seed from 0 to 2147483647.")
        check_out_folder(self.out)
        try:
            self.env = envs.resolve_env_id(self.env)
        except envs.UnknownEnvError as err:
            raise ValueError(str(err)) from None


def collect_demos(env_id: str, n: int, deviation: float, seed: int) -> list[tuple[str, int]]:
    """`n` (observation text, expert action) pairs from consecutive training-seed episodes."""
    from envs.expert import NoPlanError, expert_action

    rng = np.random.default_rng(seed)
    pairs: list[tuple[str, int]] = []
    episode = 0
    while len(pairs) < n:
        env = envs.make(env_id)
        obs, _ = env.reset(seed=seed_policy.train_seed(0, episode, seed_policy.SFT_STREAM))
        episode += 1
        done = False
        while not done and len(pairs) < n:
            try:
                label = int(expert_action(env))
            except NoPlanError:  # a deviation made the level unsolvable: start the next one
                break
            pairs.append((describe(obs), label))
            action = int(rng.integers(len(ACTION_PHRASES))) if rng.random() < deviation else label
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
        env.close()
    return pairs


def label_counts(policy, pairs: list[tuple[str, int]]) -> tuple[list[list[int]], torch.Tensor]:
    """Distinct state token ids and, per state, how often each action was the label (S x A)."""
    index: dict[tuple[int, ...], int] = {}
    counts: list[list[float]] = []
    ids_of_text: dict[str, tuple[int, ...]] = {}
    for text, label in pairs:
        ids = ids_of_text.setdefault(text, tuple(policy.state_ids(text)))
        if ids not in index:
            index[ids] = len(counts)
            counts.append([0.0] * len(ACTION_PHRASES))
        counts[index[ids]][label] += 1
    return [list(s) for s in index], torch.tensor(counts)


def weighted_ce(policy, states: list[list[int]], counts: torch.Tensor) -> torch.Tensor:
    """Mean over the pairs behind `states` of -log pi(label | state)."""
    log_probs = policy.score_ids(states).log_probs
    return -(counts.to(log_probs.device) * log_probs).sum() / counts.sum()


def dataset_loss(policy, states, counts, batch_size: int) -> float:
    with torch.no_grad():
        total = sum(float(weighted_ce(policy, states[i:i + batch_size], counts[i:i + batch_size])) * float(counts[i:i + batch_size].sum())
                    for i in range(0, len(states), batch_size))
    return total / float(counts.sum())


def train(config: SFTConfig) -> dict:
    from training.evaluate import evaluate
    from training.logs import MetricLog
    from training.lora import save_adapter, trainable_parameters, trainable_policy

    if config.threads:
        torch.set_num_threads(config.threads)
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    began = time.perf_counter()
    policy = trainable_policy(config.model, rank=config.lora_rank, alpha=config.lora_alpha,
                              target_modules=config.target_modules, value_head=False, bf16=config.bf16, device="cpu")
    # Write nothing before the model has loaded: a bad --model must leave an existing --out as it was.
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(config), indent=2))
    log = MetricLog(out)
    pairs = collect_demos(config.env, config.demos, config.deviation, config.seed)
    states, counts = label_counts(policy, pairs)
    print(f"{len(pairs)} expert pairs -> {len(states)} distinct states ({time.perf_counter() - began:.0f} s)", flush=True)

    params = trainable_parameters(policy)
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    steps_per_epoch = -(-len(states) // config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / total_steps)
    generator = torch.Generator().manual_seed(config.seed)

    initial_loss = dataset_loss(policy, states, counts, 64)
    log.write(0, {"losses/ce": initial_loss})
    print(f"epoch 0: ce {initial_loss:.4f}", flush=True)
    step = 0
    for epoch in range(1, config.epochs + 1):
        epoch_began = time.perf_counter()
        order = torch.randperm(len(states), generator=generator).tolist()
        epoch_loss, epoch_weight = 0.0, 0.0
        for start in range(0, len(order), config.batch_size):
            batch = order[start:start + config.batch_size]
            loss = weighted_ce(policy, [states[i] for i in batch], counts[batch])
            if not torch.isfinite(loss):
                print(f"warning: non-finite loss at step {step}; update skipped", flush=True)
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                step += 1
                continue
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            step += 1
            weight = float(counts[batch].sum())
            epoch_loss += loss.item() * weight
            epoch_weight += weight
        seconds = time.perf_counter() - epoch_began
        log.write(epoch, {"losses/ce": epoch_loss / epoch_weight, "charts/learning_rate": scheduler.get_last_lr()[0],
                          "charts/states_per_second": len(states) / seconds})
        print(f"epoch {epoch}: ce {epoch_loss / epoch_weight:.4f} ({seconds:.1f} s, {len(states) / seconds:.1f} states/s)", flush=True)

    final_loss = dataset_loss(policy, states, counts, 64)
    save_adapter(policy, out / "final")
    train_seconds = time.perf_counter() - began
    summary = {"env": config.env, "pairs": len(pairs), "distinct_states": len(states),
               "initial_ce": initial_loss, "final_ce": final_loss, "train_seconds": train_seconds,
               "adapter": str(out / "final")}
    if config.eval_episodes:
        result = evaluate(policy, config.env, seed_policy.eval_seeds(config.eval_episodes))
        summary.update({"eval_success_rate": result.success_rate, "eval_episodes": result.episodes,
                        "eval_mean_length": result.mean_length, "eval_seconds": result.seconds})
        log.write(config.epochs, {"eval/success_rate": result.success_rate})
    log.close()
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary), flush=True)
    return summary


def main(argv: list[str] | None = None) -> dict:
    from agent.models import ModelError

    config = parse(SFTConfig, argv, prog="python training/sft.py", description=__doc__.split("\n\n")[0])
    try:
        return train(config)
    except ModelError as err:
        fail(str(err))


if __name__ == "__main__":
    main()

"""Decisions per second, side by side, for three ways of choosing an action with an LM.

    python -m evals.throughput                     # default model, batches 1,8,32
    python -m evals.throughput --batch 8 --json

(a) naive: generate a few tokens after the full chat prompt, then `parse_action`;
(b) repeated: every phrase appended to the full prompt, one padded fp32 forward pass over
    B x 7 rows with full-vocabulary logits (what a straightforward scorer does);
(c) optimised: `LMPolicy.score`, the path that `agent.run`, `evals.benchmark` and PPO use
    (cached system KV, phrases as a token tree in one masked pass, LM head only where
    needed, bf16 weights where the CPU has native bf16).

All three see the same states (observations from seeded episodes of --env, DoorKey-5x5 by
default, with random actions). The run also measures this machine's fp32 and bf16 matmul rate, so (c) is
reported as a fraction of that ceiling, and checks that (c) picks the same argmax action
as (b) on every state.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

import envs
from agent.actions import ACTION_PHRASES
from agent.cli import LMConfig, check_range, option, parse_and_run, switch
from agent.episodes import take_step
from agent.perception import describe
from agent.policy import LMPolicy, bf16_is_fast, load_policy
from agent.prompts import encode

MAX_BATCH = 4096


def sample_states(n: int, env_id: str = "MiniGrid-DoorKey-5x5-v0", seed: int = 0) -> list[str]:
    """Observation texts from seeded episodes with random actions (deterministic)."""
    rng = np.random.default_rng(seed)
    texts, episode = [], 0
    while len(texts) < n:
        env = envs.make(env_id)
        obs, _ = env.reset(seed=seed + episode)
        for _ in range(12):
            texts.append(describe(obs))
            outcome = take_step(env, obs, int(rng.integers(3)))  # turn/forward keep it moving
            obs = outcome.obs
            if outcome.done or len(texts) >= n:
                break
        episode += 1
    return texts[:n]


def matmul_rate(dtype: torch.dtype, size: int = 1024, seconds: float = 2.0) -> float:
    """GFLOP/s of square matmuls in `dtype` on this machine."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.matmul(a, b)
    done, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        torch.matmul(a, b)
        done += 1
    return 2 * size**3 * done / (time.perf_counter() - began) / 1e9


def repeated_scores(model, tokenizer, policy: LMPolicy, texts: list[str]) -> torch.Tensor:
    """(b): full prompt + phrase per row, right-padded, full logits; B x 7 summed log-probs."""
    phrase_ids = [encode(tokenizer, p) for p in ACTION_PHRASES]
    rows, spans = [], []
    for text in texts:
        prompt = policy.system_ids + policy.state_ids(text)
        for ids in phrase_ids:
            rows.append(prompt + ids)
            spans.append((len(prompt), ids))
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1)
    sums = [sum(logp[i, start - 1 + k, t] for k, t in enumerate(p)) for i, (start, p) in enumerate(spans)]
    return torch.stack(sums).view(len(texts), len(ACTION_PHRASES))


def timed(fn, batches: list[list[str]], min_seconds: float) -> tuple[float, list]:
    """Run fn over the batches (repeating whole passes until min_seconds); decisions/s and outputs of pass 1."""
    outputs, decisions, began = [], 0, time.perf_counter()
    while True:
        first_pass = not outputs
        for batch in batches:
            out = fn(batch)
            if first_pass:
                outputs.append(out)
            decisions += len(batch)
        if time.perf_counter() - began >= min_seconds:
            break
    return decisions / (time.perf_counter() - began), outputs


def non_embedding_params(model) -> int:
    embed = model.get_input_embeddings().weight.numel()
    return sum(p.numel() for p in model.parameters()) - embed


def run(model_spec: str, batch_sizes: list[int], states: int, min_seconds: float, naive_states: int,
        on_row=None, adapter: str | None = None, env_id: str = "MiniGrid-DoorKey-5x5-v0", seed: int = 0) -> dict:
    """Measure every method at every batch size; `on_row(row)` sees each row as it is done."""
    torch.manual_seed(seed)
    texts = sample_states(states, env_id, seed)
    use_bf16 = bf16_is_fast(torch.device("cpu"))
    # Baselines (a) and (b) run the fp32 model; (c) the policy as agent.run loads it.
    fp32_policy = load_policy(model_spec, adapter, device="cpu", bf16=False)
    fast_policy = load_policy(model_spec, adapter, device="cpu", bf16=use_bf16) if use_bf16 else fp32_policy
    fp32_model, tokenizer, fast_model = fp32_policy.model, fp32_policy.tokenizer, fast_policy.model
    flops_per_token = 2 * non_embedding_params(fast_model)

    rates = {"fp32_gflops": matmul_rate(torch.float32), "bf16_gflops": matmul_rate(torch.bfloat16)}
    ceiling = rates["bf16_gflops"] if use_bf16 else rates["fp32_gflops"]
    result = {"model": model_spec, "adapter": adapter, "env": env_id, "states": len(texts), "bf16": use_bf16, "matmul": rates, "batches": []}
    with torch.inference_mode():
        for b in batch_sizes:
            batches = [texts[i:i + b] for i in range(0, len(texts), b)]
            naive_batches = batches[: max(1, naive_states // b)]
            naive, gens = timed(lambda t: fp32_policy.generate(t, max_new_tokens=8), naive_batches, 0)
            repeated, base = timed(lambda t: repeated_scores(fp32_model, tokenizer, fp32_policy, t), batches, 0)
            fast, scores = timed(fast_policy.score, batches, min_seconds)
            fast32, scores32 = timed(fp32_policy.score, batches, min_seconds)
            base_actions = torch.cat([s.argmax(-1) for s in base])
            fast_actions = torch.cat([s.actions for s in scores])
            fast32_actions = torch.cat([s.actions for s in scores32])
            tokens = sum(s.tokens for s in scores) / len(texts)
            naive_tokens = sum(g.tokens for batch in gens for g in batch) / sum(len(batch) for batch in gens)
            result["batches"].append({
                "batch": b,
                "naive_decisions_per_s": naive,
                "repeated_decisions_per_s": repeated,
                "optimised_decisions_per_s": fast,
                "optimised_fp32_decisions_per_s": fast32,
                "speedup_over_repeated": fast / repeated,
                "speedup_over_naive": fast / naive,
                "naive_invalid_rate": sum(g.invalid for batch in gens for g in batch) / sum(len(batch) for batch in gens),
                "tokens_per_decision": {"naive": naive_tokens,
                                        "repeated": (len(fp32_policy.system_ids) * 7 + sum(
                                            len(fp32_policy.state_ids(t)) for t in texts) * 7 / len(texts) + 10),
                                        "optimised": tokens},
                "fraction_of_matmul_ceiling": fast * tokens * flops_per_token / 1e9 / ceiling,
                "argmax_agreement_with_repeated": float((base_actions == fast_actions).float().mean()),
                "argmax_agreement_fp32_optimised": float((base_actions == fast32_actions).float().mean()),
            })
            if on_row:
                on_row(result["batches"][-1])
    result["machine"] = {"cpu": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                         "python": platform.python_version()}
    return result


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def format_row(r: dict) -> str:
    return (f"batch {r['batch']:>3}: naive {r['naive_decisions_per_s']:6.2f}  repeated {r['repeated_decisions_per_s']:6.2f}  "
            f"optimised {r['optimised_decisions_per_s']:6.2f} (fp32 {r['optimised_fp32_decisions_per_s']:5.2f}) "
            f"decisions/s | x{r['speedup_over_repeated']:.1f} over repeated, x{r['speedup_over_naive']:.1f} over naive | "
            f"{r['tokens_per_decision']['optimised']:.0f} tokens/decision | "
            f"{100 * r['fraction_of_matmul_ceiling']:.0f}% of matmul ceiling | "
            f"argmax agreement {r['argmax_agreement_with_repeated']:.3f}")


@dataclass
class ThroughputConfig(LMConfig):
    device: str | None = option("cpu", "cpu only: the optimised path is measured against this CPU's matmul rate")
    adapter: str | None = option(None, "LoRA adapter folder (its argmax varies across states, a stricter check of "
                                 "agreement than the zero-shot model's)")
    batch: str = option("1,8,32", "comma-separated batch sizes", metavar="SIZES")
    states: int = option(32, "states scored by every method (argmax check)")
    naive_states: int = option(8, "states for the slow generate baseline")
    seconds: float = option(10.0, "minimum timing window of the optimised path, in (0, 3600]")
    json: bool = switch("print the result as JSON")
    sizes: list[int] = field(init=False, repr=False)  # --batch as numbers

    def __post_init__(self):
        super().__post_init__()
        if self.device != "cpu":
            raise ValueError(f"--device {self.device} is not supported here: evals.throughput measures the CPU only; "
                             "leave --device out.")
        try:
            self.sizes = [int(x) for x in self.batch.split(",") if x.strip()]
        except ValueError:
            raise ValueError(f"--batch {self.batch!r} is not a list of whole numbers; give e.g. 1,8,32.") from None
        if not self.sizes or min(self.sizes) < 1 or max(self.sizes) > MAX_BATCH:
            raise ValueError(f"--batch {self.batch!r} is out of range: give sizes from 1 to {MAX_BATCH}, e.g. 1,8,32.")
        check_range("--states", self.states, 1)
        check_range("--naive-states", self.naive_states, 1)
        if not 0 < self.seconds <= 3600:  # nan and inf never get here: the kit refuses them
            raise ValueError(f"--seconds {self.seconds:g} is out of range: give seconds in (0, 3600], e.g. 10.")


def measure(args: ThroughputConfig) -> int:
    on_row = (lambda row: print(format_row(row), file=sys.stderr, flush=True)) if args.json else (
        lambda row: print(format_row(row), flush=True))
    result = run(args.model, args.sizes, max(args.states, max(args.sizes)), args.seconds, args.naive_states, on_row,
                 args.adapter, args.env, args.seed)
    m = result["matmul"]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['machine']['cpu']}, {result['machine']['threads']} threads; matmul fp32 "
              f"{m['fp32_gflops']:.0f} GFLOP/s, bf16 {m['bf16_gflops']:.0f} GFLOP/s; optimised path bf16={result['bf16']}")
    return 0


def main(argv=None) -> int:
    return parse_and_run(ThroughputConfig, measure, argv, "python -m evals.throughput", __doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main())

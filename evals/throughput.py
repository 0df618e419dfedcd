"""Decisions per second, side by side, for four ways of choosing an action with an LM.

    python -m evals.throughput                     # default model + the DoorKey adapter, batches 1,8,32
    python -m evals.throughput --batch 8 --json

(a) naive: generate a few tokens after the full chat prompt, then `parse_action` (fp32);
(b) repeated: every phrase appended to the full prompt, one padded forward pass over
    B x 7 rows with full-vocabulary logits (fp32);
(b') hf-kv: the strongest simple Hugging Face scorer: the B prompts run once with their
    KV cached (logits at the last position only), the cache is repeated per phrase and
    the phrases run on top; same weights and dtype as (c);
(c) optimised: `LMPolicy.score`, the path that `agent.run`, `evals.benchmark` and PPO use
    (cached system KV, the batch's shared mission run once, phrases as a token tree in one
    masked pass, LM head only where needed, bf16 weights where the CPU has native bf16),
    and the same in fp32.

Every method gets one untimed warm-up batch and the same timing window (--seconds, at
least one pass over its states). Ratios pair methods of equal precision. The run measures
the device's fp32 and bf16 matmul rate and reports (c) as a share of that ceiling (on a
GPU, `--device cuda`: the GPU's, with every timing window ended by a synchronise), and it
fails (exit 1) unless (c) and (b') choose the same action on every state; by default
the states are scored with the DoorKey adapter, whose choice varies from state to state.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import envs
from agent.actions import ACTION_PHRASES
from agent.cli import LMConfig, check_device, check_range, option, parse_and_run, switch
from agent.episodes import take_step
from agent.models import DEFAULT_MODEL
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


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that a clock read after it times the work itself."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(dtype: torch.dtype, device: torch.device = torch.device("cpu"), size: int | None = None,
                seconds: float = 2.0) -> float:
    """GFLOP/s of square matmuls in `dtype` on `device` (1024 wide on a CPU, 8192 on a GPU,
    which a small matmul leaves mostly idle)."""
    size = size or (1024 if device.type == "cpu" else 8192)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    torch.matmul(a, b)
    synchronize(device)
    done, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        torch.matmul(a, b)
        done += 1
        if done % 8 == 0:
            synchronize(device)
    synchronize(device)
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
    ids, mask = ids.to(model.device), mask.to(model.device)
    logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1)
    sums = [sum(logp[i, start - 1 + k, t] for k, t in enumerate(p)) for i, (start, p) in enumerate(spans)]
    return torch.stack(sums).view(len(texts), len(ACTION_PHRASES))


def kv_cached_scores(model, tokenizer, policy: LMPolicy, texts: list[str]) -> torch.Tensor:
    """(b'): prompts once with KV cache, the cache repeated per phrase, phrases on top; B x 7 summed log-probs."""
    phrases = [encode(tokenizer, p) for p in ACTION_PHRASES]
    n, pad = len(phrases), tokenizer.pad_token_id
    prompts = [policy.system_ids + policy.state_ids(t) for t in texts]
    width = max(len(p) for p in prompts)
    dev = model.device
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=dev)  # left padding: all end together
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=dev)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    first = torch.log_softmax(out.logits[:, -1].float(), -1)  # B x V: the phrases' first tokens
    cache = out.past_key_values if getattr(out, "cache", None) is None else out.cache
    cache.batch_repeat_interleave(n)
    longest = max(len(p) for p in phrases)
    tail = torch.tensor([p + [pad] * (longest - len(p)) for p in phrases], device=dev).repeat(len(texts), 1)
    tail_mask = torch.tensor([[1] * len(p) + [0] * (longest - len(p)) for p in phrases], device=dev).repeat(len(texts), 1)
    tail_positions = positions[:, -1:].repeat_interleave(n, 0) + 1 + torch.arange(longest, device=dev)
    logits = model(input_ids=tail, attention_mask=torch.cat([mask.repeat_interleave(n, 0), tail_mask], 1),
                   position_ids=tail_positions, cache=cache).logits
    logp = torch.log_softmax(logits.float(), -1)
    sums = [first[row // n, p[0]] + sum(logp[row, k - 1, p[k]] for k in range(1, len(p)))
            for row, p in enumerate(phrases * len(texts))]
    return torch.stack(sums).view(len(texts), n)


def timed(fn, batches: list[list[str]], min_seconds: float,
          device: torch.device = torch.device("cpu")) -> tuple[float, list]:
    """Decisions/s of fn over the batches after one untimed warm-up batch, timed over whole passes
    until min_seconds have gone by; also the outputs of the first pass."""
    fn(batches[0])
    synchronize(device)
    outputs, decisions, began = [], 0, time.perf_counter()
    while True:
        first_pass = not outputs
        for batch in batches:
            out = fn(batch)
            if first_pass:
                outputs.append(out)
            decisions += len(batch)
        synchronize(device)
        if time.perf_counter() - began >= min_seconds:
            break
    return decisions / (time.perf_counter() - began), outputs


def non_embedding_params(model) -> int:
    embed = model.get_input_embeddings().weight.numel()
    return sum(p.numel() for p in model.parameters()) - embed


def agreement(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """Share of states where two methods' B x 7 scores have the same argmax."""
    first, second = (torch.cat([x.argmax(-1).cpu() for x in scores]) for scores in (a, b))
    return float((first == second).float().mean())


def run(model_spec: str, batch_sizes: list[int], states: int, min_seconds: float, naive_states: int,
        on_row=None, adapter: str | None = None, env_id: str = "MiniGrid-DoorKey-5x5-v0", seed: int = 0,
        progress=None, device: str = "cpu") -> dict:
    """Measure every method at every batch size; `on_row(row)` sees each row as it is done and
    `progress(text)` hears which method is being timed."""
    say = progress or (lambda text: None)
    torch.manual_seed(seed)
    texts = sample_states(states, env_id, seed)
    dev = torch.device(device)
    use_bf16 = bf16_is_fast(dev)
    # (a), (b) and (c) in fp32 run the fp32 model; (b') and (c) the policy as agent.run loads it.
    say("loading the model")
    fp32_policy = load_policy(model_spec, adapter, device=dev, bf16=False)
    fast_policy = load_policy(model_spec, adapter, device=dev, bf16=use_bf16) if use_bf16 else fp32_policy
    fp32_model, tokenizer, fast_model = fp32_policy.model, fp32_policy.tokenizer, fast_policy.model
    flops_per_token = 2 * non_embedding_params(fast_model)

    say("measuring the matmul ceiling")
    rates = {"fp32_gflops": matmul_rate(torch.float32, dev), "bf16_gflops": matmul_rate(torch.bfloat16, dev)}
    ceiling = rates["bf16_gflops"] if use_bf16 else rates["fp32_gflops"]
    result = {"model": model_spec, "adapter": adapter, "env": env_id, "device": str(dev), "states": len(texts),
              "bf16": use_bf16,
              "matmul": rates, "batches": []}

    def hf_kv(batch):
        with fast_policy.autocast():
            return kv_cached_scores(fast_model, tokenizer, fast_policy, batch)

    with torch.inference_mode():
        for b in batch_sizes:
            batches = [texts[i:i + b] for i in range(0, len(texts), b)]
            # The slow baselines time (and check) fewer states, in batches of at most naive_states:
            # (b)'s full-vocabulary logits at batch 256 would take ~45 GB.
            few = [batch[:naive_states] for batch in batches[: max(1, naive_states // b)]]
            say(f"batch {b}: (a) naive generate")
            naive, gens = timed(lambda t: fp32_policy.generate(t, max_new_tokens=8), few, min_seconds, dev)
            say(f"batch {b}: (b) repeated")
            repeated, base = timed(lambda t: repeated_scores(fp32_model, tokenizer, fp32_policy, t), few, min_seconds, dev)
            say(f"batch {b}: (b') hf-kv")
            hf, kv = timed(hf_kv, batches, min_seconds, dev)
            say(f"batch {b}: (c) optimised")
            fast, scores = timed(fast_policy.score, batches, min_seconds, dev)
            say(f"batch {b}: (c) optimised, fp32")
            fast32, scores32 = timed(fp32_policy.score, batches, min_seconds, dev)
            fast_sums = [s.phrase_log_likelihoods for s in scores]
            fast32_sums = [s.phrase_log_likelihoods for s in scores32]
            tokens = sum(s.tokens for s in scores) / len(texts)
            n_few = sum(len(x) for x in few)
            result["batches"].append({
                "batch": b,
                "naive_decisions_per_s": naive,
                "repeated_decisions_per_s": repeated,
                "hf_kv_decisions_per_s": hf,
                "optimised_decisions_per_s": fast,
                "optimised_fp32_decisions_per_s": fast32,
                "speedup_over_hf_kv": fast / hf,
                "speedup_fp32_over_repeated": fast32 / repeated,
                "speedup_fp32_over_naive": fast32 / naive,
                "naive_invalid_rate": sum(g.invalid for batch in gens for g in batch) / n_few,
                "tokens_per_decision": {
                    "naive": sum(g.tokens for batch in gens for g in batch) / n_few,
                    "repeated": sum(len(fp32_policy.system_ids) + len(fp32_policy.state_ids(t)) for t in texts)
                    * len(ACTION_PHRASES) / len(texts) + 10,
                    "optimised": tokens},
                "fraction_of_matmul_ceiling": fast * tokens * flops_per_token / 1e9 / ceiling,
                "argmax_agreement_with_hf_kv": agreement(fast_sums, kv),
                "argmax_agreement_fp32_with_repeated": agreement([x[: len(f)] for x, f in zip(fast32_sums, few)], base),
                "distinct_argmax_actions": len(set(torch.cat([x.argmax(-1) for x in fast_sums]).tolist())),
            })
            if on_row:
                on_row(result["batches"][-1])
    result["machine"] = {"cpu": cpu_name(), "cpu_flags": cpu_flags(), "threads": torch.get_num_threads(),
                         "torch": torch.__version__, "python": platform.python_version()}
    if dev.type == "cuda":
        result["machine"]["gpu"] = torch.cuda.get_device_name(dev)
    return result


def cpuinfo(field: str) -> str | None:
    """The first value of `field` ("model name", "flags") in /proc/cpuinfo; None without it."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    return cpuinfo("model name") or platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    """The CPU features that decide the fast dtype (AVX2, AVX-512, native bf16, AMX)."""
    return sorted(f for f in (cpuinfo("flags") or "").split() if f in SPEED_FLAGS)


SPEED_FLAGS = {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile"}


def format_row(r: dict) -> str:
    return (f"batch {r['batch']:>3}: naive {r['naive_decisions_per_s']:5.2f}  repeated {r['repeated_decisions_per_s']:5.2f}  "
            f"optimised fp32 {r['optimised_fp32_decisions_per_s']:6.2f} | hf-kv {r['hf_kv_decisions_per_s']:6.2f}  "
            f"optimised {r['optimised_decisions_per_s']:6.2f} decisions/s | x{r['speedup_over_hf_kv']:.1f} over hf-kv "
            f"(same dtype), fp32: x{r['speedup_fp32_over_repeated']:.0f} over repeated, "
            f"x{r['speedup_fp32_over_naive']:.0f} over naive | {r['tokens_per_decision']['optimised']:.0f} tokens/decision | "
            f"{100 * r['fraction_of_matmul_ceiling']:.0f}% of matmul ceiling | argmax agreement with hf-kv "
            f"{r['argmax_agreement_with_hf_kv']:.3f} over {r['distinct_argmax_actions']} distinct actions")


DOORKEY_ADAPTER = Path(__file__).resolve().parents[1] / "adapters" / "doorkey-5x5"


@dataclass
class ThroughputConfig(LMConfig):
    device: str | None = option("cpu", "cpu, or cuda for a GPU: the optimised path is measured against that "
                                "device's matmul rate")
    adapter: str | None = option(None, "LoRA adapter folder; default: the shipped DoorKey adapter with the default "
                                 "model (its choice varies across states, so the argmax check means something), "
                                 "none with any other model; 'none' scores the bare model")
    batch: str = option("1,8,32", "comma-separated batch sizes", metavar="SIZES")
    states: int = option(32, "states scored by (b'), (c) and the argmax check")
    naive_states: int = option(8, "states for the slow baselines (a) and (b), which also cap their batch size")
    seconds: float = option(10.0, "timing window of every method, in (0, 3600]")
    json: bool = switch("print the result as JSON")
    sizes: list[int] = field(init=False, repr=False)  # --batch as numbers

    def __post_init__(self):
        super().__post_init__()
        check_device(self.device)
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
        if self.adapter is None and self.model == DEFAULT_MODEL and DOORKEY_ADAPTER.is_dir():
            self.adapter = str(DOORKEY_ADAPTER)
        elif self.adapter == "none":
            self.adapter = None


def measure(args: ThroughputConfig) -> int:
    out = sys.stderr if args.json else sys.stdout
    result = run(args.model, args.sizes, max(args.states, max(args.sizes)), args.seconds, args.naive_states,
                 lambda row: print(format_row(row), file=out, flush=True), args.adapter, args.env, args.seed,
                 progress=lambda text: print(f"  ... {text}", file=sys.stderr, flush=True), device=args.device)
    m, machine = result["matmul"], result["machine"]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        where = machine.get("gpu") or f"{machine['cpu']} ({', '.join(machine['cpu_flags']) or 'no AVX2'}), " \
                                       f"{machine['threads']} threads"
        print(f"{where}; "
              f"matmul fp32 {m['fp32_gflops']:.0f} GFLOP/s, bf16 {m['bf16_gflops']:.0f} GFLOP/s; "
              f"(b') and (c) in {'bf16' if result['bf16'] else 'fp32'}; adapter {result['adapter']}")
    worst = min(r["argmax_agreement_with_hf_kv"] for r in result["batches"])
    if worst < 1.0:
        print(f"error: the optimised path and hf-kv chose different actions on {100 * (1 - worst):.1f}% of states; "
              "the optimised scorer is wrong somewhere: check agent/policy.py's masks and positions.", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    return parse_and_run(ThroughputConfig, measure, argv, "python -m evals.throughput", __doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main())

"""A trainable LMPolicy (base LM frozen; LoRA adapter, new or loaded, and value head trainable),
and `TrainConfig`, the options of every script that trains one.

>>> policy = trainable_policy("tiny-random", rank=4, device="cpu")
>>> sum(p.numel() for p in trainable_parameters(policy)) > 0
True
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from agent import layouts
from agent.adapter_io import VALUE_HEAD_FILE, load_adapter, load_value_head
from agent.cli import PROGRESS_DOC, LMConfig, check_adapter, check_out_folder, check_range, option, out_option, switch
from agent.models import ModelError, load_model
from agent.policy import LMPolicy
from agent.prompts import SCORE_SYSTEM
from envs.levels import check_splittable
from envs.seeds import MAX_EVAL_SEEDS

SEED_DOC = "seed of the run: LoRA init, action sampling or deviations, batch order"
LR_DOC = "AdamW learning rate (decays linearly to 0)"
GRAD_NORM_DOC = "gradient clipping norm"


@dataclass
class TrainConfig(LMConfig):
    """Options every LoRA training script has; subclasses set their own defaults where they differ."""

    seed: int = option(1, SEED_DOC)
    out: str | None = out_option(None, "run folder; the adapter goes to OUT/final")
    learning_rate: float = option(1e-4, LR_DOC)
    max_grad_norm: float = option(0.5, GRAD_NORM_DOC)
    init_adapter: str | None = option(None, "start from this LoRA adapter folder (e.g. runs/sft/final from training/sft.py)")
    lora_rank: int = option(8, "LoRA rank r of a new adapter (a loaded --init-adapter keeps its own)")
    lora_alpha: int = option(16, "LoRA alpha of a new adapter, scale = alpha / r")
    target_modules: str = option("all-linear", "LoRA targets: all-linear or a comma list like q_proj,v_proj")
    lora_layers: int = option(0, "LoRA of a new adapter in the top N decoder layers only (0 = every layer): the "
                                 "layers below are computed once per state and cached, about 3.5x faster "
                                 "(docs/experiments/doorkey-lora-layers.md); a loaded --init-adapter keeps its own")
    bf16: bool | None = option(None, "bf16 autocast; default: on where it is fast (CUDA, CPUs with AVX512-BF16/AMX), "
                                     "off elsewhere, where emulated bf16 is 10x slower")
    eval_episodes: int = option(100, "greedy evaluation on up to N distinct validation levels, which choose OUT/best "
                                     "(0 = no evaluation); test levels are left for training.evaluate")
    all_levels: bool = switch("train on every level, held-out ones too (a transfer source, or a family too small "
                              "to split); evaluation then plays any levels, so it no longer measures unseen ones")
    progress: bool = option(True, PROGRESS_DOC + "; training then prints one JSON line per update")

    def __post_init__(self):
        super().__post_init__()
        check_range("--lora-rank", self.lora_rank, 1)
        check_range("--lora-alpha", self.lora_alpha, 1)
        check_range("--lora-layers", self.lora_layers, 0)
        if not self.learning_rate > 0:
            raise ValueError(f"--learning-rate must be positive, not {self.learning_rate}; try 1e-4.")
        if not (self.max_grad_norm > 0 and math.isfinite(self.max_grad_norm)):  # 0 would clip every gradient to nothing
            raise ValueError(f"--max-grad-norm must be positive, not {self.max_grad_norm}; try 0.5.")
        if not 0 <= self.eval_episodes <= MAX_EVAL_SEEDS:
            raise ValueError(f"--eval-episodes must be 0..{MAX_EVAL_SEEDS}, not {self.eval_episodes}.")
        if self.init_adapter:
            check_adapter(self.init_adapter, "--init-adapter")
        if not self.all_levels:
            check_splittable(self.env)
        if self.out is not None:
            check_out_folder(self.out)


def parse_target_modules(text: str) -> str | list[str]:
    """'all-linear' (peft's shortcut) or a comma-separated list like 'q_proj,v_proj'."""
    if text == "all-linear":
        return text
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ValueError("target_modules is empty: give 'all-linear' or names like 'q_proj,v_proj'.")
    return names


def trainable_policy(model: str = "smollm2-135m", init_adapter: str | None = None, rank: int = 8,
                     alpha: int = 16, target_modules: str = "all-linear", value_head: bool = True,
                     bf16: bool | None = None, device=None, lora_layers: int = 0,
                     system: str = SCORE_SYSTEM, phrases: tuple[str, ...] | None = None) -> LMPolicy:
    """Load `model`, add a fresh LoRA adapter or continue `init_adapter`, wrap as a policy.

    Only LoRA weights and the value head require gradients. LoRA dropout is left at 0 so
    rollouts and the training pass compute the same function (no train/eval switch).
    """
    from peft import LoraConfig, get_peft_model

    lm, tokenizer = load_model(model, device=device)
    # Eager attention trains about 20% faster than SDPA here (its backward with our tree mask
    # is slow on CPU); LMPolicy gives it the additive mask it needs.
    lm.set_attn_implementation("eager")
    if init_adapter is not None:
        lm = load_adapter(lm, init_adapter, trainable=True)
    else:
        n_layers = lm.config.num_hidden_layers  # a model with N layers or fewer gets LoRA in all of them
        top = list(range(n_layers - lora_layers, n_layers)) if 0 < lora_layers < n_layers else None
        if top and not layouts.fast_path(lm):  # no cached lower layers to gain from: LoRA everywhere
            top = None
        targets = parse_target_modules(target_modules)
        if top and targets == "all-linear":  # peft takes a layer range only with module names
            targets = sorted({name.rsplit(".", 1)[-1] for name, module in lm.named_modules()
                              if isinstance(module, torch.nn.Linear) and ".layers." in name})
        try:
            config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, bias="none", layers_to_transform=top,
                                target_modules=targets, task_type="CAUSAL_LM")
            lm = get_peft_model(lm, config)
        except ValueError as err:  # peft: "Target modules {...} not found in the base model"
            first = str(err).strip().splitlines()[0][:160]
            raise ModelError(f"--target-modules {target_modules!r} does not fit {model} ({first}): "
                             "use all-linear or names like q_proj,v_proj.") from None
    lm.eval()  # no dropout anywhere: sampling noise comes only from the action sampler
    policy = LMPolicy(lm, tokenizer, bf16=bf16, value_head=value_head, system=system,
                      **({"phrases": phrases} if phrases else {}))
    if policy.bf16 and policy.device.type == "cpu":
        frozen_linears_to_bf16(lm)
    if value_head and init_adapter is not None and (Path(init_adapter) / VALUE_HEAD_FILE).is_file():
        load_value_head(policy, init_adapter)
    return policy


def run_config(config, policy: LMPolicy) -> str:
    """config.json of a run: its options, with the LoRA rank and alpha the adapter really has
    (an --init-adapter keeps its own, whatever --lora-rank says)."""
    lora = next(iter(policy.model.peft_config.values()))
    return json.dumps({**asdict(config), "lora_rank": lora.r, "lora_alpha": lora.lora_alpha}, indent=2)


def frozen_linears_to_bf16(lm) -> None:
    """Store frozen linear weights in bf16. Autocast casts them to bf16 on every pass anyway
    (it caches casts only of trainable weights), so this changes no number and saves the casts.
    The LM head stays: it shares its weight with the fp32 input embeddings."""
    head = lm.get_output_embeddings()
    for module in lm.modules():
        if isinstance(module, torch.nn.Linear) and module is not head and not module.weight.requires_grad:
            module.weight.data = module.weight.data.to(torch.bfloat16)


def trainable_parameters(policy: LMPolicy) -> list[torch.nn.Parameter]:
    return [p for p in policy.parameters() if p.requires_grad]


def trainable_state(policy: LMPolicy) -> dict[str, torch.Tensor]:
    """Name -> tensor of every trainable parameter (LoRA and value head)."""
    return {n: p.detach().clone() for n, p in policy.named_parameters() if p.requires_grad}


def checksum(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over names and exact bytes: equal only for bit-identical weights."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()

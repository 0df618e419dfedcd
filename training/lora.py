"""A trainable LMPolicy: base LM frozen, LoRA adapter (new or loaded) and value head trainable.

>>> policy = trainable_policy("tiny-random", rank=4, device="cpu")
>>> sum(p.numel() for p in trainable_parameters(policy)) > 0
True
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from agent.models import ModelError, load_model
from agent.policy import VALUE_HEAD_FILE, LMPolicy, load_adapter, load_value_head


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
                     bf16: bool | None = None, device=None) -> LMPolicy:
    """Load `model`, add a fresh LoRA adapter or continue `init_adapter`, wrap as a policy.

    Only LoRA weights and the value head require gradients. LoRA dropout is left at 0 so
    rollouts and the training pass compute the same function (no train/eval switch).
    """
    from peft import LoraConfig, get_peft_model

    lm, tokenizer = load_model(model, device=device)
    if init_adapter is not None:
        lm = load_adapter(lm, init_adapter, trainable=True)
    else:
        try:
            config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, bias="none",
                                target_modules=parse_target_modules(target_modules), task_type="CAUSAL_LM")
            lm = get_peft_model(lm, config)
        except ValueError as err:  # peft: "Target modules {...} not found in the base model"
            first = str(err).strip().splitlines()[0][:160]
            raise ModelError(f"--target-modules {target_modules!r} does not fit {model} ({first}): "
                             "use all-linear or names like q_proj,v_proj.") from None
    lm.eval()  # no dropout anywhere: sampling noise comes only from the action sampler
    policy = LMPolicy(lm, tokenizer, bf16=bf16, value_head=value_head)
    if value_head and init_adapter is not None and (Path(init_adapter) / VALUE_HEAD_FILE).is_file():
        load_value_head(policy, init_adapter)
    return policy


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


def save_adapter(policy: LMPolicy, folder: str | os.PathLike) -> Path:
    """Write the LoRA adapter (peft format) and `value_head.pt`: loadable by `load_policy`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    policy.model.save_pretrained(folder)
    if policy.value_head is not None:
        torch.save(policy.value_head.state_dict(), folder / VALUE_HEAD_FILE)
    return folder

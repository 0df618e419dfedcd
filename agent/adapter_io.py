"""LoRA adapter folders: writing them, checking one fits a model before loading it, and the
PPO value head beside it. Files are read as safetensors and tensors only, never as code."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from agent.models import ModelError

__all__ = ["VALUE_HEAD_FILE", "load_adapter", "load_value_head", "misfit", "save_adapter"]

VALUE_HEAD_FILE = "value_head.pt"


def save_adapter(policy, folder: str | os.PathLike) -> Path:
    """Write the LoRA adapter (peft format) and `value_head.pt`: loadable by `load_policy`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    policy.model.save_pretrained(folder)
    if policy.value_head is not None:
        torch.save(policy.value_head.state_dict(), folder / VALUE_HEAD_FILE)
    return folder


def misfit(lm, folder: Path) -> str | None:
    """Why the adapter in `folder` cannot fit `lm`: LoRA on a layer or module the model lacks,
    or of other widths. None when it fits, or when its files cannot be read (then loading
    says it is corrupt)."""
    import json
    import re

    from safetensors import SafetensorError, safe_open

    try:
        config = json.loads((folder / "adapter_config.json").read_text())
        with safe_open(folder / "adapter_model.safetensors", "pt") as f:
            names = f.keys()
            shapes = {key: f.get_slice(key).get_shape() for key in names}  # the header only
    except (OSError, ValueError, SafetensorError):  # no safetensors file, or garbage: loading will tell
        return None
    layers, depth = config.get("layers_to_transform"), lm.config.num_hidden_layers
    if isinstance(layers, list) and layers and max(layers) >= depth:
        return f"LoRA on layer {max(layers)}, the model has {depth} layers"
    modules = dict(lm.named_modules())
    for key, shape in shapes.items():
        match = re.fullmatch(r"base_model\.model\.(.+)\.lora_([AB])\.weight", key)
        if not match:
            continue
        weight = getattr(modules.get(match.group(1)), "weight", None)
        if weight is None:
            return f"LoRA on {match.group(1)}, which the model lacks"
        # lora_A is (r, in_features), lora_B (out_features, r)
        got, want = (shape[1], weight.shape[-1]) if match.group(2) == "A" else (shape[0], weight.shape[0])
        if got != want:
            return f"{match.group(1)} is {want} wide in the model, {got} in the adapter"
    return None


def load_adapter(lm, adapter: str, trainable: bool = False):
    """`lm` (a bare base model) wrapped with the LoRA adapter in folder `adapter` (peft format).

    Raises agent.models.ModelError with the fix when the folder is missing, its files are
    corrupt, or it was trained on another base model (its layers or shapes do not fit).
    """
    from peft import PeftModel

    folder = Path(adapter)
    if not (folder / "adapter_config.json").is_file():
        raise ModelError(f"Adapter folder {adapter} holds no adapter_config.json: pass a folder written by training (e.g. runs/NAME/final).")
    why = misfit(lm, folder)
    if why:
        raise ModelError(f"Adapter {adapter} does not fit this model ({why}); it was made for another base "
                         "model: pass its --model.")
    try:
        return PeftModel.from_pretrained(lm, folder, is_trainable=trainable)
    except Exception as err:  # safetensors, json and key errors all mean this adapter does not load here
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise ModelError(f"Adapter {adapter} could not be loaded ({first}); it is corrupt: retrain or restore it.") from err


def load_value_head(policy, adapter: str) -> None:
    """Load `adapter`/value_head.pt into `policy.value_head`; ModelError when corrupt or for another model."""
    try:
        state = torch.load(Path(adapter) / VALUE_HEAD_FILE, map_location=policy.device, weights_only=True)
    except Exception as err:  # truncated or garbage file
        raise ModelError(f"{Path(adapter) / VALUE_HEAD_FILE} is corrupt ({type(err).__name__}): retrain or restore the adapter.") from err
    try:
        policy.value_head.load_state_dict(state)
    except RuntimeError as err:
        raise ModelError(f"Value head in {adapter} does not fit this model: pass the --model it was trained with.") from err

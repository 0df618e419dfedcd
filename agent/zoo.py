"""The committed LoRA adapters (`adapters/`), and which env each was trained for.

`python -m agent.run --env E` plays the adapter trained for E when there is one, as
rl-zoo3's `enjoy` plays its trained agents; `--adapter none` plays the zero-shot model.
The adapters were trained on the default model, so another `--model` gets none.

>>> trained_for("MiniGrid-DoorKey-5x5-v0", "smollm2-135m").name  # trained against injected instructions
'doorkey-robust'
>>> trained_for("MiniGrid-DoorKey-5x5-v0", "smollm2-135m", mode="generate").name
'doorkey-5x5-reason'
>>> trained_for("BabyAI-TextPutNextTrainD0Memory-v0", "smollm2-135m").name  # BALROG's protocol
'babyai-text-robust'
>>> trained_for("BabyAI-TextMixedTestLocalMemory-v0", "smollm2-135m").name  # GLAM's
'babyai-text-robust'
>>> trained_for("TextWorld-TreasureHunter-v0", "smollm2-135m").name
'textworld-bc-all'
>>> trained_for("MiniGrid-DoorKey-5x5-v0", "tiny-random") is None
True
"""

from __future__ import annotations

from pathlib import Path

from agent.models import DEFAULT_MODEL
from envs.babyai_text import KINDS, MIXED_TEST_ID, MIXED_TRAIN_ID, kind_id, mixed_id
from envs.memory import memory_id

ADAPTERS = Path(__file__).resolve().parents[1] / "adapters"  # present in a clone of the repository

_BABYAI_TEXT = [*(kind_id(kind, split) for kind in KINDS for split in ("train", "test")), MIXED_TRAIN_ID, MIXED_TEST_ID]
_BALROG = [*(kind_id(kind, split, distractors=0) for kind in KINDS for split in ("train", "test")),
           *(mixed_id(split, 0) for split in ("train", "test"))]  # BALROG's protocol: no distractors
# mode -> env id -> adapter folder name, each on the envs it was trained and tested on
ZOO = {
    "score": {
        **{f"MiniGrid-DoorKey-{size}-v0": "doorkey-robust" for size in ("5x5", "6x6")},
        "FrozenLake-v1": "frozenlake-bc",
        "Taxi-v4": "taxi-bc",
        **{f"TextWorld-{task}-v0": "textworld-bc-all" for task in ("CoinCollector", "TreasureHunter", "Cooking")},
        **{env_id: "babyai-text-bc" for env_id in _BABYAI_TEXT},
        **{memory_id(env_id): "babyai-text-robust" for env_id in _BABYAI_TEXT + _BALROG},  # both protocols
    },
    "generate": {  # trained to write "Reason: ... Action: ..." (play with --reason)
        "MiniGrid-DoorKey-5x5-v0": "doorkey-5x5-reason",
        kind_id("goto", "train"): "babyai-goto-reason",
    },
}


def trained_for(env_id: str, model: str, mode: str = "score") -> Path | None:
    """The committed adapter folder trained for `env_id` on `model` in `mode`, or None."""
    name = ZOO[mode].get(env_id)
    if model != DEFAULT_MODEL or name is None or not (ADAPTERS / name / "adapter_config.json").is_file():
        return None
    return ADAPTERS / name

"""The benchmark with chat-template markers in percepts handled another way than
`agent.prompts.encode_percept` (which removes them), to measure what that choice buys.

    VARIANT=tokens|spelled|removed python scripts/marker_variants.py BENCHMARK-FLAGS...
    VARIANT=spelled python scripts/marker_variants.py --agents llm:adapters/doorkey-robust \
        --envs MiniGrid-DoorKey-5x5-v0,MiniGrid-DoorKey-6x6-v0 --episodes 40 --max-steps 100 \
        --inject chat --inject-at obs --batch 40 --threads 1 --out results/chat-spelled

tokens: the markers become the template's own tokens (what plain tokenising does);
spelled: they stay plain text, split into ordinary tokens; removed: encode_percept as
shipped. A measurement script for docs/BENCHMARKS.md (instruction injection), not a user CLI.
"""

import os
import sys

import agent.policy as policy
from agent.prompts import encode, encode_percept


def spelled(tok, obs, suffix="", prefix="", markers=None):
    plain = tok(obs, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    return encode(tok, prefix) + plain + encode(tok, suffix)


VARIANTS = {"tokens": lambda tok, obs, suffix="", prefix="", markers=None: encode(tok, prefix + obs + suffix),
            "spelled": spelled, "removed": encode_percept}
policy.encode_percept = VARIANTS[os.environ.get("VARIANT", "removed")]
from evals import benchmark  # noqa: E402

sys.exit(benchmark.main(sys.argv[1:]))

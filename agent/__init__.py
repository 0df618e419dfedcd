"""Language-model agent: model loading, prompts, action vocabulary and parser, policy."""

import envs  # noqa: F401  (first: it sets OpenMP's passive waiting before torch loads)

"""Training: behaviour cloning (`sft.py`) and PPO with LoRA (`rl_finetune.py`)."""

import envs  # noqa: F401  (first: it sets OpenMP's passive waiting before torch loads)

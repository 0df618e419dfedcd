"""Training: behaviour cloning (`sft.py`) and PPO with LoRA (`rl_finetune.py`)."""

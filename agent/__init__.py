"""Language-model agent: model loading, prompts, action vocabulary and parser, policy."""

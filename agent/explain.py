"""Why the policy acts: occlusion attribution over the parts of the observation text.

Each part of the text (`perception.text_parts`: the mission, each object seen, what is in
front, what is held) is left out in turn; the full text and every such variant are scored
in one batch, and a part's weight is how much the chosen action's probability drops
without it (negative: the action gets more likely without it). In generate mode the
chosen action is the parsed one and the probabilities are score mode's over the closed set
of phrases, since a free text has no probability per action.

    python -m agent.run --env MiniGrid-DoorKey --adapter adapters/doorkey-5x5 --explain
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from agent.actions import ACTION_PHRASES
from agent.perception import render, text_parts


@dataclass
class Explanation:
    action: int  # the action explained
    prob: float  # its probability given the whole text
    weights: dict[str, float]  # part -> drop in that probability when the part is left out
    argmax_without: dict[str, int]  # part -> the most probable action when the part is left out
    seconds: float  # cost of the explanation (one batched forward pass)

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The `k` parts whose removal lowers the action's probability most."""
        return sorted(self.weights.items(), key=lambda kv: -kv[1])[:k]

    def summary(self, k: int = 3) -> str:
        return ", ".join(f"{part_label(part)} {weight:+.2f}" for part, weight in self.top(k))


def part_label(key: str) -> str:
    """'mission', 'front', 'holding', or the name of an object seen ('yellow key')."""
    return key[4:] if key.startswith("see:") else key


def explain(policy, obs, action: int | None = None) -> Explanation:
    """Occlusion attribution of `action` (default: the policy's greedy choice) at `obs`."""
    began = time.perf_counter()
    parts = {k: v for k, v in text_parts(obs).items() if v is not None}
    keys = list(parts)
    texts = [render(parts)] + [render({k: v for k, v in parts.items() if k != drop}) for drop in keys]
    with torch.inference_mode():
        probs = policy.score(texts).log_probs.exp().float()
    chosen = int(probs[0].argmax()) if action is None else action
    weights = {k: float(probs[0, chosen] - probs[i + 1, chosen]) for i, k in enumerate(keys)}
    argmax_without = {k: int(probs[i + 1].argmax()) for i, k in enumerate(keys)}
    return Explanation(chosen, float(probs[0, chosen]), weights, argmax_without, time.perf_counter() - began)


class ExplainingAgent:
    """Wraps an agent; explains every decision it makes (`explanations[(text, action)]`)."""

    def __init__(self, agent, policy):
        self.agent, self.policy = agent, policy
        self.name = agent.name
        self.explanations: dict[tuple[str, int], Explanation] = {}

    def decide(self, observations, texts, env_list):
        decisions = self.agent.decide(observations, texts, env_list)
        for obs, text, decision in zip(observations, texts, decisions):
            key = (text, decision.action)
            if key not in self.explanations:  # a greedy policy repeats itself: explain each once
                self.explanations[key] = explain(self.policy, obs, decision.action)
        return decisions

    def describe(self, text: str, action: int, k: int = 3) -> str:
        found = self.explanations.get((text, action))
        return f"why {ACTION_PHRASES[action]}: {found.summary(k)}" if found else ""

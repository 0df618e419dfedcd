"""The one cached scorer: every place that scores states (play, evaluation, PPO rollouts,
the KL pass, the benchmark) goes through `CachedScorer`.

A policy's scores are a function of the state text and its weights, and MiniGrid repeats
texts a lot, so each distinct state is sent to the model once per weights version. The
scorer owns text -> token ids, the per-version score cache (it empties itself when a
trainable weight changes, e.g. after an optimizer step), greedy or sampled choice, the
frozen base model's scores (cached for good: the base never changes) and memoised greedy
generations. Only the batch composition of a state's first visit can differ from an
uncached run (float rounding, not the policy).

>>> from agent.models import load_model
>>> from agent.policy import LMPolicy
>>> scorer = CachedScorer(LMPolicy(*load_model("tiny-random")))
>>> text = "Mission: get to the goal. You see: goal 2 forward."
>>> choice = scorer.choose([text, text])
>>> choice.log_probs.shape, scorer.computed, scorer.hits
(torch.Size([2, 7]), 1, 1)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

Key = tuple[int, ...]


@dataclass
class Choice:
    """Per state: the chosen action, the log-probs over the phrases, the value and the tokens
    its first scoring cost."""

    actions: torch.Tensor  # B
    log_probs: torch.Tensor  # B x A
    values: torch.Tensor  # B (0 without a value head)
    tokens: list[int]


class CachedScorer:
    """Scores per distinct state for the policy's current weights; see the module doc."""

    def __init__(self, policy, batch_size: int = 32, memo: bool = True):
        self.policy, self.batch_size, self.memo = policy, batch_size, memo
        self._ids: dict[str, Key] = {}  # tokenisation never changes
        self._scores: dict[Key, tuple[torch.Tensor, float, int]] = {}  # log-probs, value, tokens
        self._base: dict[Key, torch.Tensor] = {}
        self._generations: dict[tuple[str, bool], object] = {}
        self._version = None
        self.computed, self.hits, self.seconds = 0, 0, 0.0  # model rows, reused rows, model time

    def ids(self, text: str) -> Key:
        if text not in self._ids:
            self._ids[text] = tuple(self.policy.state_ids(text))
        return self._ids[text]

    def _current(self) -> None:
        """Forget scores and generations made with other weights."""
        version = self.policy._weights_key()
        if version != self._version or not self.memo:
            self._scores.clear()
            self._generations.clear()
            self._version = version

    def score_keys(self, keys: list[Key]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """B x A log-probs, B values (0 without a value head) and per-row tokens, scoring misses only."""
        self._current()
        todo = list(dict.fromkeys(k for k in keys if k not in self._scores))
        began = time.perf_counter()
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            with torch.no_grad():
                scores = self.policy.score_ids([list(k) for k in chunk])
            per_row = round(scores.tokens / len(chunk))
            for row, key in enumerate(chunk):
                value = float(scores.values[row]) if scores.values is not None else 0.0
                self._scores[key] = (scores.log_probs[row].float().cpu(), value, per_row)
        self.seconds += time.perf_counter() - began
        self.computed += len(todo)
        self.hits += len(keys) - len(todo)
        rows = [self._scores[k] for k in keys]
        return torch.stack([r[0] for r in rows]), torch.tensor([r[1] for r in rows]), [r[2] for r in rows]

    def choose_keys(self, keys: list[Key], greedy: bool = True, generator: torch.Generator | None = None) -> Choice:
        """The argmax (first maximum) or a sample per state."""
        log_probs, values, tokens = self.score_keys(keys)
        if greedy:
            actions = log_probs.argmax(-1)
        else:
            actions = torch.multinomial(log_probs.exp(), 1, generator=generator).squeeze(-1)
        return Choice(actions, log_probs, values, tokens)

    def choose(self, texts: list[str], greedy: bool = True, generator: torch.Generator | None = None) -> Choice:
        return self.choose_keys([self.ids(t) for t in texts], greedy, generator)

    def base_log_probs(self, keys: list[Key]) -> torch.Tensor:
        """Log-probs of the frozen base LM (adapter off), cached for good."""
        todo = list(dict.fromkeys(k for k in keys if k not in self._base))
        with torch.no_grad(), self.policy.adapter_disabled():
            for start in range(0, len(todo), self.batch_size):
                chunk = todo[start:start + self.batch_size]
                rows = self.policy.score_ids([list(k) for k in chunk]).log_probs.float().cpu()
                self._base.update(zip(chunk, rows))
        return torch.stack([self._base[k] for k in keys])

    def generate(self, texts: list[str], reason: bool = False, greedy: bool = True) -> list:
        """Generate-mode decisions (`LMPolicy.generate`); greedy ones are memoised by text."""
        if not greedy:
            return self.policy.generate(texts, reason=reason, greedy=False)
        self._current()
        todo = list(dict.fromkeys(t for t in texts if (t, reason) not in self._generations))
        if todo:
            began = time.perf_counter()
            self._generations.update(zip(((t, reason) for t in todo), self.policy.generate(todo, reason=reason)))
            self.seconds += time.perf_counter() - began
        self.computed += len(todo)
        self.hits += len(texts) - len(todo)
        return [self._generations[(t, reason)] for t in texts]

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
        self._scores: dict[tuple[Key, tuple[str, ...]], tuple[torch.Tensor, float, int]] = {}  # log-probs, value, tokens
        self._base: dict[tuple[Key, tuple[str, ...]], torch.Tensor] = {}
        self._generations: dict[tuple[str, bool, tuple[str, ...]], object] = {}
        self._version = None
        self.computed, self.hits, self.seconds = 0, 0, 0.0  # model rows, reused rows, model time

    def ids(self, text: str) -> Key:
        if text not in self._ids:
            self._ids[text] = tuple(self.policy.state_ids(text))
        return self._ids[text]

    def _current(self) -> None:
        """Forget scores and generations made with other weights."""
        version = self.policy.weights_key()
        if version != self._version or not self.memo:
            self._scores.clear()
            self._generations.clear()
            self._version = version

    def score_keys(self, keys: list[Key], phrases: list[tuple[str, ...]] | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """B x A log-probs, B values (0 without a value head) and per-row tokens, scoring misses only.

        `phrases[i]`: state i's own action set (None: the policy's fixed phrases); rows of
        smaller sets are padded with -inf to the largest."""
        self._current()
        sets = [tuple(p) for p in phrases] if phrases is not None else [self.policy.phrases] * len(keys)
        entries = [(k, p) for k, p in zip(keys, sets)]
        todo = list(dict.fromkeys(e for e in entries if e not in self._scores))
        began = time.perf_counter()
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            with torch.no_grad():
                scores = self.policy.score_ids([list(k) for k, _ in chunk], [p for _, p in chunk])
            per_row = round(scores.tokens / len(chunk))
            for row, entry in enumerate(chunk):
                value = float(scores.values[row]) if scores.values is not None else 0.0
                self._scores[entry] = (scores.log_probs[row, :len(entry[1])].float().cpu(), value, per_row)
        self.seconds += time.perf_counter() - began
        self.computed += len(todo)
        self.hits += len(keys) - len(todo)
        rows = [self._scores[e] for e in entries]
        return pad_rows([r[0] for r in rows]), torch.tensor([r[1] for r in rows]), [r[2] for r in rows]

    def choose_keys(self, keys: list[Key], greedy: bool = True, generator: torch.Generator | None = None,
                    phrases: list[tuple[str, ...]] | None = None) -> Choice:
        """The argmax (first maximum) or a sample per state."""
        log_probs, values, tokens = self.score_keys(keys, phrases)
        if greedy:
            actions = log_probs.argmax(-1)
        else:
            actions = torch.multinomial(log_probs.exp(), 1, generator=generator).squeeze(-1)
        return Choice(actions, log_probs, values, tokens)

    def choose(self, texts: list[str], greedy: bool = True, generator: torch.Generator | None = None,
               phrases: list[tuple[str, ...]] | None = None) -> Choice:
        return self.choose_keys([self.ids(t) for t in texts], greedy, generator, phrases)

    def base_log_probs(self, keys: list[Key], phrases: list[tuple[str, ...]] | None = None) -> torch.Tensor:
        """Log-probs of the frozen base LM (adapter off), cached for good."""
        sets = [tuple(p) for p in phrases] if phrases is not None else [self.policy.phrases] * len(keys)
        entries = list(zip(keys, sets))
        todo = list(dict.fromkeys(e for e in entries if e not in self._base))
        with torch.no_grad(), self.policy.adapter_disabled():
            for start in range(0, len(todo), self.batch_size):
                chunk = todo[start:start + self.batch_size]
                rows = self.policy.score_ids([list(k) for k, _ in chunk], [p for _, p in chunk]).log_probs.float().cpu()
                self._base.update((entry, row[:len(entry[1])]) for entry, row in zip(chunk, rows))
        return pad_rows([self._base[e] for e in entries])

    def generate(self, texts: list[str], reason: bool = False, greedy: bool = True,
                 phrases: list[tuple[str, ...]] | None = None) -> list:
        """Generate-mode decisions (`LMPolicy.generate`); greedy ones are memoised by text
        and phrase set."""
        sets = [tuple(p) for p in phrases] if phrases is not None else [self.policy.phrases] * len(texts)
        if not greedy:
            return self.policy.generate(texts, reason=reason, greedy=False, phrases=sets)
        self._current()
        keys = [(t, reason, p) for t, p in zip(texts, sets)]
        todo = list(dict.fromkeys(k for k in keys if k not in self._generations))
        if todo:
            began = time.perf_counter()
            made = self.policy.generate([t for t, _, _ in todo], reason=reason, phrases=[p for _, _, p in todo])
            self._generations.update(zip(todo, made))
            self.seconds += time.perf_counter() - began
        self.computed += len(todo)
        self.hits += len(texts) - len(todo)
        return [self._generations[k] for k in keys]


def pad_rows(rows: list[torch.Tensor]) -> torch.Tensor:
    """Rows of log-probs over sets of different sizes as one B x A tensor, -inf past each row's set."""
    width = max(len(r) for r in rows)
    if all(len(r) == width for r in rows):
        return torch.stack(rows)
    return torch.stack([torch.cat([r, r.new_full((width - len(r),), float("-inf"))]) for r in rows])

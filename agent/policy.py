"""An LM policy over MiniGrid's actions: closed-set scoring or generate-then-parse.

Score mode (the default) gives each admissible phrase its log-likelihood after the prompt,
summed over the phrase's tokens, and normalises with a softmax over the phrases:

    log pi(a | s) = log p(phrase_a | prompt) - logsumexp_b log p(phrase_b | prompt)

This is the LM's own distribution restricted to the closed set, so no decision is ever
invalid. ``normalization="mean"`` divides each sum by the phrase's token count first
(it removes the pull of one-token phrases, at the cost of no longer being a likelihood).

The fast path, used alike by `agent.run`, `evals.benchmark` and PPO (rollouts and the
training forward pass):

- the system part's KV cache is computed once and shared by every state and env;
  it is recomputed only when trainable weights change (their version counters move);
- the tokens that all rows of a batch start with (usually the mission) run once, and
  their KV is cached too, so a rollout over one level's envs pays for the mission once;
- each batch row holds one state's tokens followed by the phrases laid out as a token
  tree (shared first tokens appear once), scored in ONE forward pass with a 4-D
  attention mask: tree nodes see the system part, their state, and their ancestors;
- the LM head is applied only where log-probs are needed (state end and tree nodes).

>>> from agent.models import load_model
>>> policy = LMPolicy(*load_model("tiny-random"))
>>> scores = policy.score(["Mission: get to the goal. You see: goal 2 forward."])
>>> scores.log_probs.shape
torch.Size([1, 7])
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from agent import layouts, threads
from agent.actions import ACTION_PHRASES, parse_action, parse_choice
from agent.adapter_io import VALUE_HEAD_FILE, load_adapter, load_value_head
from agent.lower_rows import LowerRows
from agent.models import load_model, parse_device
from agent.phrase_tree import PhraseTree, common_prefix
from agent.prompts import SCORE_SYSTEM, PromptFormat, encode, encode_percept, special_markers, writing_system


@dataclass
class ActionScores:
    """Scores for a batch: `log_probs` is B x A (log-softmax over the phrases)."""

    log_probs: torch.Tensor
    values: torch.Tensor | None = None  # B, from the value head when the policy has one
    phrase_log_likelihoods: torch.Tensor | None = None  # B x A, before normalisation
    tokens: int = 0  # model tokens processed for this batch (system part excluded)

    @property
    def probs(self) -> torch.Tensor:
        return self.log_probs.exp()

    @property
    def actions(self) -> torch.Tensor:
        return self.log_probs.argmax(-1)


def length_groups(sizes: list[int], slack: float = 1.25) -> list[list[int]]:
    """Indices grouped by size, shortest first, each group's largest at most `slack` times its
    smallest: a padded batch of one group wastes at most a fifth of its compute."""
    groups: list[list[int]] = []
    for i in sorted(range(len(sizes)), key=sizes.__getitem__):
        if groups and sizes[i] <= slack * sizes[groups[-1][0]]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def join_scores(parts: list[tuple[list[int], ActionScores]]) -> ActionScores:
    """One batch's scores from its groups' (row indices, scores), rows back in their order."""
    if len(parts) == 1 and parts[0][0] == list(range(len(parts[0][0]))):
        return parts[0][1]
    width = max(scores.log_probs.shape[1] for _, scores in parts)
    order = torch.tensor([i for rows, _ in parts for i in rows], device=parts[0][1].log_probs.device)
    back = torch.empty_like(order)
    back[order] = torch.arange(len(order), device=order.device)

    def cat(name: str) -> torch.Tensor | None:
        tensors = [getattr(scores, name) for _, scores in parts]
        if tensors[0] is None:
            return None
        if tensors[0].dim() == 2:  # B x A: pad to the widest set with -inf, as one batch would
            tensors = [torch.nn.functional.pad(t, (0, width - t.shape[1]), value=float("-inf")) for t in tensors]
        return torch.cat(tensors)[back]

    return ActionScores(cat("log_probs"), cat("values"), cat("phrase_log_likelihoods"),
                        sum(scores.tokens for _, scores in parts))


@dataclass
class Generation:
    """One generate-mode decision. Raw text, parsed phrase and executed action stay apart."""

    raw_text: str
    parsed: str | None  # canonical phrase, None when the text names no action
    action: int  # what was executed: the parsed action, or the fallback when invalid
    fallback: str | None = None  # the phrase taken because the text was invalid
    tokens: int = 0

    @property
    def invalid(self) -> bool:
        return self.parsed is None


def bf16_is_fast(device: torch.device) -> bool:
    """bf16 pays off on CUDA and on CPUs with native bf16 instructions (AVX512-BF16/AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


class LMPolicy(nn.Module):
    """A causal LM (optionally with a peft LoRA adapter) choosing among action phrases."""

    def __init__(self, model, tokenizer, normalization: str = "sum",
                 bf16: bool | None = None, value_head: bool = False, system: str = SCORE_SYSTEM,
                 phrases: tuple[str, ...] = ACTION_PHRASES):
        super().__init__()
        if normalization not in ("sum", "mean"):
            raise ValueError(f"normalization must be 'sum' or 'mean', not {normalization!r}.")
        self.model = model
        self.tokenizer = tokenizer
        self.phrases = tuple(phrases)  # the set scored when a call gives none; MiniGrid's: index i is Actions(i)
        self.normalization = normalization
        self.device = next(model.parameters()).device
        self.bf16 = bf16_is_fast(self.device) if bf16 is None else bf16
        lm = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.fast = layouts.fast_path(lm)  # else every score goes through the model's own forward
        self.backbone = lm.get_decoder() if self.fast else None  # LoRA layers are injected in place, so this runs them
        self.lm_head = lm.get_output_embeddings()
        hidden = lm.config.hidden_size
        self.value_head = nn.Linear(hidden, 1).to(self.device) if value_head else None
        if self.value_head is not None:
            nn.init.zeros_(self.value_head.weight)
            nn.init.zeros_(self.value_head.bias)
        self.system = system
        self.format = PromptFormat.for_tokenizer(tokenizer, system)
        self.markers = special_markers(tokenizer)  # removed from every percept (encode_percept)
        self.system_ids = encode(tokenizer, self.format.prefix)
        self._trees: dict[tuple[str, ...], PhraseTree] = {}
        self.tree = self._tree(self.phrases)
        self._prefix_cache: dict[tuple[int, ...], list] = {}
        self._prefix_key = None
        self.lower = LowerRows(self.device, self._lower_fingerprint)  # see _lower_hidden
        self._system_lower: dict = {}  # see _system_kv_split

    # ----- helpers -------------------------------------------------------------------
    def autocast(self):
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def _tree(self, phrases: tuple[str, ...]) -> PhraseTree:
        """The token tree of a phrase set, built once per set (the last 256 sets kept)."""
        if phrases not in self._trees:
            if len(self._trees) >= 256:
                self._trees.pop(next(k for k in self._trees if k != self.phrases))
            self._trees[phrases] = PhraseTree.build([encode(self.tokenizer, p) for p in phrases])
        return self._trees[phrases]

    def state_ids(self, observation: str) -> list[int]:
        return encode_percept(self.tokenizer, observation, self.format.suffix, markers=self.markers)

    def weights_key(self):
        """Changes whenever a trainable weight changes in place (optimizer steps do)."""
        adapter_on = not getattr(self, "_adapter_off", False)
        versions = tuple(p._version for p in self.model.parameters() if p.requires_grad)
        return adapter_on, versions, self.bf16

    def _prefix_kv(self, shared: tuple[int, ...] = ()) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """KV (batch 1) of the system part followed by `shared`, the batch's common state prefix.

        Cached per weights version (the system part always, up to 64 shared prefixes,
        e.g. one per mission); recomputed when gradients must flow through it (training).
        """
        key = self.weights_key()
        if torch.is_grad_enabled() and any(key[1]):
            frozen = self._frozen_layers()
            system = self._system_kv_split(frozen) if frozen else self._run_prefix(self.system_ids)
            return self._run_prefix(list(shared), system) if shared else system
        if self._prefix_key != key:
            self._prefix_cache, self._prefix_key = {}, key
        cache = self._prefix_cache
        with torch.no_grad():
            if () not in cache:
                cache[()] = self._run_prefix(self.system_ids)
            if shared not in cache:
                if len(cache) > 64:
                    cache.pop(next(k for k in cache if k))  # oldest shared prefix
                cache[shared] = self._run_prefix(list(shared), cache[()])
        return cache[shared]

    def _run_prefix(self, tokens: list[int], past=None):
        """KV after running `tokens` (batch 1) on top of `past`."""
        from transformers import DynamicCache

        config = self.backbone.config
        cache = DynamicCache(ddp_cache_data=past, config=config) if past else DynamicCache(config=config)
        start = past[0][0].shape[-2] if past else 0
        ids = torch.tensor([tokens], device=self.device)
        positions = torch.arange(start, start + len(tokens), device=self.device)[None]
        with self.autocast():
            self.backbone(input_ids=ids, position_ids=positions, cache=cache, use_cache=True)
        return [(layer.keys, layer.values) for layer in cache.layers]

    def _system_kv_split(self, frozen: int):
        """The system part's KV with gradients, when LoRA sits in the top layers only: the
        `frozen` layers below never change, so their KV and output on the system tokens are
        computed once and kept; only the trainable layers above rerun (about half the cost)."""
        from transformers import DynamicCache

        config = self.backbone.config
        key = (frozen, self.bf16)
        if self._system_lower.get("key") != key:
            n = len(self.system_ids)
            positions = torch.arange(n, device=self.device)[None]
            mask = self._attention_mask(torch.ones(n, n, dtype=torch.bool, device=self.device).tril()[None, None])
            cache = DynamicCache(config=config)
            with torch.no_grad(), self.autocast():
                hidden = self._run_layers(self.backbone.embed_tokens(torch.tensor([self.system_ids], device=self.device)),
                                          self.backbone.layers[:frozen], mask, positions, cache)
            lower = [(layer.keys, layer.values) for layer in cache.layers[:frozen]]
            self._system_lower = {"key": key, "kv": lower, "hidden": hidden, "mask": mask, "positions": positions}
        kept = self._system_lower
        cache = DynamicCache(ddp_cache_data=kept["kv"], config=config)
        with self.autocast():
            self._run_layers(kept["hidden"], self.backbone.layers[frozen:], kept["mask"], kept["positions"], cache)
        return [(layer.keys, layer.values) for layer in cache.layers]

    def _attention_mask(self, allowed: torch.Tensor) -> torch.Tensor:
        """A boolean mask (True = may attend) in the form the attention implementation wants."""
        if self.backbone.config._attn_implementation == "eager":  # it adds the mask to the scores
            return torch.zeros(allowed.shape, device=self.device).masked_fill(~allowed, torch.finfo(torch.float32).min)
        return allowed

    @contextlib.contextmanager
    def adapter_disabled(self):
        """Run the frozen base model (for a KL penalty); a no-op without an adapter."""
        if not hasattr(self.model, "disable_adapter"):
            yield
            return
        self._adapter_off = True
        try:
            with self.model.disable_adapter():
                yield
        finally:
            self._adapter_off = False

    # ----- score mode ------------------------------------------------------------------
    def score(self, observations: list[str], phrases: list[tuple[str, ...]] | None = None) -> ActionScores:
        """Score every phrase for each observation text, in one batched forward pass.

        `phrases[i]` is state i's own action set (TextWorld's admissible commands, a ToyText
        env's moves); None: the policy's fixed `phrases` (MiniGrid's seven) for every state."""
        return self.score_ids([self.state_ids(o) for o in observations], phrases)

    def score_ids(self, state_ids: list[list[int]], phrases: list[tuple[str, ...]] | None = None) -> ActionScores:
        """Like `score`, from token ids of the state parts (what rollouts store).

        Rows with other phrase sets each run their own tree after their state (the fast
        path), or share one tree of every phrase in the batch (the generic one) and keep
        their own. Log-probs are B x (largest set), -inf past a row's own phrases."""
        threads.follow()
        sets = [tuple(p) for p in phrases] if phrases is not None else [self.phrases] * len(state_ids)
        if all(row == sets[0] for row in sets):
            return self._score_tree(state_ids, [self._tree(sets[0])] * len(sets))
        if self.fast:
            # Rows pad to the batch's longest state and largest tree: run similar sizes together.
            trees = [self._tree(row) for row in sets]
            groups = length_groups([len(s) + len(t.inner) for s, t in zip(state_ids, trees)])
            return join_scores([(group, self._score_tree([state_ids[i] for i in group], [trees[i] for i in group]))
                                for group in groups])
        union = tuple(dict.fromkeys(p for row in sets for p in row))
        scores = self._score_generic(state_ids, self._tree(union))
        width = max(len(row) for row in sets)
        where = {p: i for i, p in enumerate(union)}
        index = torch.tensor([[where[p] for p in row] + [0] * (width - len(row)) for row in sets], device=self.device)
        real = torch.tensor([[i < len(row) for i in range(width)] for row in sets], device=self.device)
        sums = scores.phrase_log_likelihoods.gather(1, index).masked_fill(~real, float("-inf"))
        lengths = torch.tensor([len(path) for path in self._tree(union).paths], device=self.device)[index]
        scaled = sums / lengths if self.normalization == "mean" else sums
        return ActionScores(torch.log_softmax(scaled, -1), scores.values, sums, scores.tokens)

    def _score_tree(self, state_ids: list[list[int]], trees: list[PhraseTree]) -> ActionScores:
        """Every phrase of `trees[i]` for state i, in one forward pass (the module doc's fast
        path). Each row holds its state, then its tree's inner nodes, padded to the batch's
        largest tree; log-probs are B x (largest set), -inf past a row's own phrases."""
        if not self.fast:
            return self._score_generic(state_ids, trees[0])
        dev = self.device
        batch, shared_tree = len(state_ids), all(t is trees[0] for t in trees)
        inners = [t.inner for t in trees]
        n_nodes = max(len(inner) for inner in inners)
        frozen = self._frozen_layers()
        # Tokens that every row starts with (the mission, usually) run once, batch 1, cached.
        # Not when the frozen lower layers are cached per state: those rows need all their tokens.
        shared = common_prefix(state_ids) if batch > 1 and not frozen else ()
        state_ids = [s[len(shared):] for s in state_ids]
        past = self._prefix_kv(shared)
        lengths = torch.tensor([len(s) for s in state_ids], device=dev)
        width = int(lengths.max())
        n_sys = len(self.system_ids) + len(shared)

        # Rows: state tokens right-padded to `width`, then the row's tree nodes, padded.
        pad = self.tokenizer.pad_token_id
        ids = torch.full((batch, width + n_nodes), pad, device=dev)
        depths = torch.zeros(batch, n_nodes, dtype=torch.long, device=dev)
        ancestry = torch.eye(n_nodes, dtype=torch.bool, device=dev).repeat(batch, 1, 1)
        for row, (s, tree, inner) in enumerate(zip(state_ids, trees, inners)):
            ids[row, : len(s)] = torch.tensor(s, device=dev)
            ids[row, width:width + len(inner)] = torch.tensor([tree.tokens[i] for i in inner], device=dev, dtype=ids.dtype)
            depths[row, : len(inner)] = torch.tensor([tree.depths[i] for i in inner], device=dev, dtype=torch.long)
            if row and shared_tree:
                ancestry[row] = ancestry[0]
                continue
            for k, node in enumerate(inner):  # depth-first order: a parent's row is filled first
                parent = tree.parents[node]
                if parent >= 0:
                    ancestry[row, k] |= ancestry[row, inner.index(parent)]

        cols = torch.arange(width, device=dev)
        positions = torch.cat([cols.expand(batch, -1), lengths[:, None] + depths], 1) + n_sys

        # Attention: system part always; states causal over their real tokens; tree nodes
        # see their state's real tokens and their own ancestors (and themselves).
        real = cols[None] < lengths[:, None]  # B x W
        q = width + n_nodes
        mask = torch.zeros(batch, q, n_sys + q, dtype=torch.bool, device=dev)
        mask[:, :, :n_sys] = True
        causal = torch.ones(width, width, dtype=torch.bool, device=dev).tril()
        mask[:, :width, n_sys:n_sys + width] = causal[None] & real[:, None, :]
        mask[:, width:, n_sys:n_sys + width] = real[:, None, :]
        mask[:, width:, n_sys + width:] = ancestry
        mask = self._attention_mask(mask[:, None])

        cache = self._batch_cache(past, batch)
        with self.autocast():
            if frozen:
                # The lower rows of the tree's nodes depend on the tree: the fixed one is known by its size.
                keys = [len(inner) if tree is self.tree else (len(inner), tuple(tree.tokens), tuple(tree.parents))
                        for tree, inner in zip(trees, inners)]
                lower = self._lower_hidden(state_ids, ids, mask, positions, cache, frozen, tail=n_nodes,
                                           tail_key=keys, tails=[len(inner) for inner in inners])
                upper = self._run_layers(lower, self.backbone.layers[frozen:], mask, positions, cache)
                hidden = self.backbone.norm(upper)
            else:
                hidden = self.backbone(input_ids=ids, attention_mask=mask, position_ids=positions,
                                       cache=cache, use_cache=True).last_hidden_state
        last = hidden[torch.arange(batch, device=dev), lengths - 1]  # B x H, predicts first tokens
        # Log-probs only where needed: the state end (for first tokens) and each inner node.
        needed = torch.cat([last[:, None], hidden[:, width:]], 1)  # B x (1 + N) x H
        with self.autocast():
            logits = self.lm_head(needed)
        logp = torch.log_softmax(logits.float(), -1)
        values = self.value_head(last.float()).squeeze(-1) if self.value_head is not None else None
        tokens = int(lengths.sum()) + sum(len(inner) for inner in inners) + len(shared)
        if shared_tree:
            tree, inner = trees[0], inners[0]
            source = torch.tensor([0 if p < 0 else 1 + inner.index(p) for p in tree.parents], device=dev)  # row in `needed`
            node_logp = logp[:, source, torch.tensor(tree.tokens, device=dev)]  # B x N
            sums = torch.stack([node_logp[:, path].sum(-1) for path in tree.paths], -1)  # B x A
            scaled = sums / torch.tensor([len(p) for p in tree.paths], device=dev) if self.normalization == "mean" else sums
            return ActionScores(torch.log_softmax(scaled, -1), values, sums, tokens=tokens)
        n_phrases = max(len(t.paths) for t in trees)
        sums = torch.full((batch, n_phrases), float("-inf"), device=dev)
        lengths_of = torch.ones(batch, n_phrases, device=dev)
        for row, (tree, inner) in enumerate(zip(trees, inners)):
            source = torch.tensor([0 if p < 0 else 1 + inner.index(p) for p in tree.parents], device=dev)
            node_logp = logp[row, source, torch.tensor(tree.tokens, device=dev)]
            sums[row, : len(tree.paths)] = torch.stack([node_logp[path].sum() for path in tree.paths])
            lengths_of[row, : len(tree.paths)] = torch.tensor([float(len(p)) for p in tree.paths], device=dev)
        scaled = sums / lengths_of if self.normalization == "mean" else sums
        return ActionScores(torch.log_softmax(scaled, -1), values, sums, tokens=tokens)

    def _score_generic(self, state_ids: list[list[int]], tree: PhraseTree) -> ActionScores:
        """`_score_tree` through the model's own forward pass (`agent.layouts`): one row per
        (state, phrase) holding the system part, the state and the phrase."""
        dev, n_phrases = self.device, len(tree.paths)
        phrases = [[tree.tokens[node] for node in path] for path in tree.paths]
        rows = [self.system_ids + list(s) + p for s in state_ids for p in phrases]
        answers = [p for _ in state_ids for p in phrases]
        hidden, token_logp = self._answer_rows(rows, answers)
        sums = torch.stack([lp.sum() for lp in token_logp]).view(len(state_ids), n_phrases)
        scaled = sums / torch.tensor([len(p) for p in phrases], device=dev) if self.normalization == "mean" else sums
        values = None
        if self.value_head is not None:  # the state's last token, read from each state's first row
            last = torch.stack([hidden[b * n_phrases, -len(phrases[0]) - 1] for b in range(len(state_ids))])
            values = self.value_head(last.float()).squeeze(-1)
        return ActionScores(torch.log_softmax(scaled, -1), values, sums, tokens=sum(len(r) for r in rows))

    def _answer_rows(self, rows: list[list[int]], answers: list[list[int]]):
        """Last hidden states of left-padded token rows and, per row, the log-probs of its last
        `len(answers[i])` tokens, by the model's own forward; the LM head runs only there."""
        width, keep = max(len(r) for r in rows), max(len(a) for a in answers) + 1
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, device=self.device)
        mask = torch.zeros(len(rows), width, dtype=torch.long, device=self.device)
        for i, r in enumerate(rows):
            ids[i, width - len(r):], mask[i, width - len(r):] = torch.tensor(r, device=self.device), 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with self.autocast():
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, output_hidden_states=True,
                             use_cache=False, logits_to_keep=keep)
        logp = torch.log_softmax(out.logits.float(), -1)  # rows x keep x vocab: the last `keep` positions
        picked = [logp[i, keep - 1 - len(a):keep - 1].gather(-1, torch.tensor(a, device=self.device)[:, None]).squeeze(-1)
                  for i, a in enumerate(answers)]  # position t predicts token t + 1
        return out.hidden_states[-1], picked

    def _batch_cache(self, past, batch: int):
        """A KV cache holding the batch-1 prefix `past` once per row (expanded, not copied)."""
        from transformers import DynamicCache

        return DynamicCache(ddp_cache_data=[(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in past],
                            config=self.backbone.config)

    def _frozen_layers(self) -> int:
        """How many bottom decoder layers have no trainable weight, when some layer above has
        one (LoRA on the top layers only); else 0. Those layers' outputs are cached per state."""
        if not self.fast:
            return 0
        layers = self.backbone.layers
        trainable = [any(p.requires_grad for p in layer.parameters()) for layer in layers]
        return trainable.index(True) if any(trainable) else 0

    def _run_layers(self, hidden, layers, mask, positions, cache):
        embeddings = self.backbone.rotary_emb(hidden, position_ids=positions)
        for layer in layers:
            hidden = layer(hidden, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True,
                           position_embeddings=embeddings)
        return hidden

    def _lower_hidden(self, state_ids, ids, mask, positions, cache, frozen: int, tail: int,
                      tail_key=None, tails: list[int] | None = None) -> torch.Tensor:
        """The rows' hidden states after the `frozen` bottom layers. They never change (no
        trainable weight below, the system part's KV there is fixed), so each state's rows
        are computed once, without gradients, and kept (`agent.lower_rows`). A row is
        its state's tokens right-padded, then `tail` columns (the phrase tree's nodes in
        score mode), of which row i's first `tails[i]` are its own (default: all); `tail_key`
        names their layout in the cache keys, one for all rows or a list of one per row
        (default: `tail`)."""
        from transformers import DynamicCache

        store = self.lower
        width = ids.shape[1] - tail
        tail_keys = tail_key if isinstance(tail_key, list) else [tail if tail_key is None else tail_key] * len(state_ids)
        tails = tails or [tail] * len(state_ids)
        keys = [(tuple(s), self.bf16, k) for s, k in zip(state_ids, tail_keys)]
        todo = [row for row, key in enumerate(keys) if not store.known(key)]
        if todo:
            with torch.no_grad():
                sub = DynamicCache(ddp_cache_data=[(k[todo], v[todo]) for k, v in
                                                   ((layer.keys, layer.values) for layer in cache.layers[:frozen])],
                                   config=self.backbone.config)
                out = self._run_layers(self.backbone.embed_tokens(ids[todo]), self.backbone.layers[:frozen],
                                       mask[todo], positions[todo], sub)
            for i, row in enumerate(todo):
                n = len(state_ids[row])
                store.keep(keys[row], torch.cat([out[i, :n], out[i, width:width + tails[row]]]), save=True)
        rows = [store[key] for key in keys]
        hidden = rows[0].new_zeros(ids.shape + rows[0].shape[-1:])
        for row, (s, kept) in enumerate(zip(state_ids, rows)):
            hidden[row, : len(s)] = kept[: len(s)]
            hidden[row, width:width + len(kept) - len(s)] = kept[len(s):]
        return hidden

    def keep_lower_rows(self, folder: str | os.PathLike) -> None:
        """Also keep the frozen lower layers' rows (`_lower_hidden`) on disk, one file per state
        under FOLDER/<fingerprint> (`agent.lower_rows`), for later runs over the same states."""
        self.lower.keep_on_disk(folder)

    def _lower_fingerprint(self) -> str:
        frozen = self._frozen_layers()
        digest = hashlib.sha1(repr((frozen, self.bf16, self.system_ids, self.tree.tokens)).encode())
        for p in itertools.chain(self.backbone.embed_tokens.parameters(), self.backbone.layers[:frozen].parameters()):
            digest.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()[:16]

    # ----- generate mode ---------------------------------------------------------------
    def answer_log_probs(self, state_ids: list[list[int]], answer_ids: list[list[int]]) -> torch.Tensor:
        """Sum of log pi(answer token | system part, state, answer so far) per row: the
        likelihood of a whole written answer (teacher forcing), for generate-mode training.
        The system part is this policy's (`system=` at construction)."""
        threads.follow()
        if not self.fast:
            return self._answer_log_probs_generic(state_ids, answer_ids)
        dev, batch = self.device, len(state_ids)
        rows = [list(s) + list(a) for s, a in zip(state_ids, answer_ids)]
        lengths = torch.tensor([len(r) for r in rows], device=dev)
        width = int(lengths.max())
        ids = torch.full((batch, width), self.tokenizer.pad_token_id, device=dev)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, device=dev)
        past = self._prefix_kv()
        n_sys = len(self.system_ids)
        cols = torch.arange(width, device=dev)
        positions = cols.expand(batch, -1) + n_sys
        real = cols[None] < lengths[:, None]
        mask = torch.zeros(batch, width, n_sys + width, dtype=torch.bool, device=dev)
        mask[:, :, :n_sys] = True
        mask[:, :, n_sys:] = torch.ones(width, width, dtype=torch.bool, device=dev).tril()[None] & real[:, None, :]
        mask = self._attention_mask(mask[:, None])
        cache = self._batch_cache(past, batch)
        frozen = self._frozen_layers()
        with self.autocast():
            if frozen:
                lower = self._lower_hidden(rows, ids, mask, positions, cache, frozen, tail=0)
                hidden = self.backbone.norm(self._run_layers(lower, self.backbone.layers[frozen:], mask, positions, cache))
            else:
                hidden = self.backbone(input_ids=ids, attention_mask=mask, position_ids=positions,
                                       cache=cache, use_cache=True).last_hidden_state
        # Position t predicts token t + 1: the answer's tokens are predicted from len(state) - 1 on.
        picks = [(i, len(s) - 1 + j, tok) for i, (s, a) in enumerate(zip(state_ids, answer_ids)) for j, tok in enumerate(a)]
        row, col, target = (torch.tensor(x, device=dev) for x in zip(*picks))
        with self.autocast():
            logits = self.lm_head(hidden[row, col])
        token_logp = torch.log_softmax(logits.float(), -1)[torch.arange(len(picks), device=dev), target]
        return torch.zeros(batch, device=dev).index_add(0, row, token_logp)

    def _answer_log_probs_generic(self, state_ids, answer_ids) -> torch.Tensor:
        rows = [self.system_ids + list(s) + list(a) for s, a in zip(state_ids, answer_ids)]
        return torch.stack([lp.sum() for lp in self._answer_rows(rows, [list(a) for a in answer_ids])[1]])

    @torch.no_grad()
    def generate(self, observations: list[str], reason: bool = False, greedy: bool = True,
                 max_new_tokens: int | None = None, temperature: float = 1.0,
                 phrases: list[tuple[str, ...]] | None = None) -> list[Generation]:
        """Free text after a chat prompt, then `parse_action` (MiniGrid's phrases) or
        `parse_choice` against the state's own set `phrases[i]`.

        An output that names no action is recorded as invalid and the most likely phrase
        in score mode is executed instead (`Generation.fallback`), so episodes go on and
        the invalid rate stays visible.
        """
        sets = [tuple(p) for p in phrases] if phrases is not None else [self.phrases] * len(observations)
        threads.follow()
        fmt = PromptFormat.for_tokenizer(self.tokenizer, writing_system(self.system, reason))
        max_new_tokens = max_new_tokens or (40 if reason else 8)
        rows = [encode_percept(self.tokenizer, o, fmt.suffix, fmt.prefix, self.markers) for o in observations]
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=self.device)
        attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=self.device)
        with self.autocast():
            out = self.model.generate(
                input_ids=ids, attention_mask=attention, max_new_tokens=max_new_tokens,
                do_sample=not greedy, temperature=temperature if not greedy else None,
                top_p=None, top_k=None, pad_token_id=pad,
                eos_token_id=self.tokenizer.convert_tokens_to_ids(self.tokenizer.eos_token),
            )
        new = out[:, width:]
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        parsed = [parse_action(t) if own == ACTION_PHRASES else parse_choice(t, own) for t, own in zip(texts, sets)]
        invalid = [i for i, p in enumerate(parsed) if p is None]
        fallback = {}
        if invalid:
            best = self.score([observations[i] for i in invalid], [sets[i] for i in invalid]).actions.tolist()
            fallback = dict(zip(invalid, best))
        generations = []
        for i, (text, phrase) in enumerate(zip(texts, parsed)):
            n_new = int((new[i] != pad).sum())
            if phrase is None:
                generations.append(Generation(text, None, fallback[i], sets[i][fallback[i]], len(rows[i]) + n_new))
            else:
                generations.append(Generation(text, phrase, sets[i].index(phrase), None, len(rows[i]) + n_new))
        return generations


def load_policy(model: str = "smollm2-135m", adapter: str | None = None, device=None,
                normalization: str = "sum", bf16: bool | None = None, system: str | None = None) -> LMPolicy:
    """Load a model (and optionally a LoRA adapter folder with its value head) as a policy.

    `system`: the system part (default: MiniGrid's `SCORE_SYSTEM`; other env families give
    theirs, `agent.cli.system_prompt`).

    Raises agent.models.ModelError with a one-sentence fix when anything is missing or
    does not fit.
    """
    device = parse_device(device)
    use_bf16 = bf16_is_fast(device) if bf16 is None else bf16
    # bf16 weights, not just autocast: casting fp32 weights on every pass costs ~2x on CPU.
    dtype = torch.bfloat16 if use_bf16 else torch.float32
    # An adapter is merged into the fp32 weights before any cast: about 20% faster than
    # running LoRA beside the base at batch 8, and closer to the fp32 policy (docs/BENCHMARKS.md).
    lm, tokenizer = load_model(model, dtype=torch.float32 if adapter is not None else dtype, device=device)
    lm.requires_grad_(False)  # inference only; training builds its own trainable policy
    if adapter is not None:
        lm = load_adapter(lm, adapter).merge_and_unload().to(dtype)
        lm.eval()
    has_value_head = adapter is not None and (Path(adapter) / VALUE_HEAD_FILE).is_file()
    policy = LMPolicy(lm, tokenizer, normalization=normalization, bf16=use_bf16, value_head=has_value_head,
                      system=system or SCORE_SYSTEM)
    if has_value_head:
        load_value_head(policy, adapter)
    return policy

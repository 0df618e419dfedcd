"""Action phrases as a token trie, so a batch scores every phrase in one forward pass.

>>> tree = PhraseTree.build([[5, 6], [5, 7], [8]])
>>> tree.tokens, tree.parents, tree.paths
([5, 6, 7, 8], [-1, 0, 0, -1], [[0, 1], [0, 2], [3]])
>>> tree.inner  # only node 0 has children: the leaves' log-probs come from their parents' outputs
[0]
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["PhraseTree", "common_prefix"]


@dataclass
class PhraseTree:
    """Action phrases as a token trie, flattened in depth-first order."""

    tokens: list[int]  # token id of each node
    parents: list[int]  # parent node index, -1 for a first token
    depths: list[int]
    paths: list[list[int]] = field(default_factory=list)  # node indices of each phrase

    @property
    def inner(self) -> list[int]:
        """Nodes with children: only these run through the model, since a leaf's log-prob
        comes from its parent's output (7 of MiniGrid's 11 nodes are leaves)."""
        parents = set(self.parents)
        return [i for i in range(len(self.tokens)) if i in parents]

    @classmethod
    def build(cls, phrase_ids: list[list[int]]) -> "PhraseTree":
        tree = cls([], [], [])
        index: dict[tuple[int, ...], int] = {}
        for ids in phrase_ids:
            path = []
            for depth, token in enumerate(ids):
                key = tuple(ids[: depth + 1])
                if key not in index:
                    index[key] = len(tree.tokens)
                    tree.tokens.append(token)
                    tree.parents.append(path[-1] if path else -1)
                    tree.depths.append(depth)
                path.append(index[key])
            tree.paths.append(path)
        return tree


def common_prefix(rows: list[list[int]]) -> tuple[int, ...]:
    """Longest prefix shared by all rows, leaving each row at least one token of its own."""
    limit = min(len(r) for r in rows) - 1
    first = rows[0]
    n = 0
    while n < limit and all(r[n] == first[n] for r in rows):
        n += 1
    return tuple(first[:n])

"""The frozen lower layers' output rows per state, kept in memory and, if asked, on disk.

With LoRA on the top layers only, the layers below never change, so `LMPolicy` computes a
state's rows there once and keeps them here: up to `LIMIT` states in memory and, after
`keep_on_disk(folder)`, one file per state under FOLDER/<fingerprint of everything the rows
depend on> (lower weights, system part, precision), so a later run over the same states
reads them instead of recomputing them (about 0.35 s a BabyAI-Text state on 2 CPU cores),
and a run with other lower weights gets a folder of its own. Files are read as tensors only.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import torch

from agent.models import ModelError

__all__ = ["LIMIT", "LowerRows"]

LIMIT = 20_000  # states kept in memory (about 0.1 MB each)


class LowerRows:
    """Rows by key (a state's tokens, the precision and the layout of the columns after them)."""

    def __init__(self, device: torch.device, fingerprint: Callable[[], str], limit: int = LIMIT):
        self.device, self.fingerprint, self.limit = device, fingerprint, limit
        self.rows: dict = {}
        self._root: Path | None = None
        self._folder: Path | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key) -> torch.Tensor:
        return self.rows[key]

    def keep_on_disk(self, folder: str | os.PathLike) -> None:
        self._root, self._folder = Path(folder), None

    def _file(self, key) -> Path | None:
        if self._root is None:
            return None
        if self._folder is None:  # the fingerprint reads the lower weights: computed once, on first use
            self._folder = self._root / self.fingerprint()
            self._folder.mkdir(parents=True, exist_ok=True)
        return self._folder / (hashlib.sha1(repr(key).encode()).hexdigest() + ".pt")

    def known(self, key) -> bool:
        """Whether `key`'s rows are in memory, reading them from disk if kept there."""
        if key in self.rows:
            return True
        path = self._file(key)
        if path is None or not path.is_file():
            return False
        try:
            rows = torch.load(path, map_location=self.device, weights_only=True)  # tensors only, never code
        except pickle.UnpicklingError as err:
            raise ModelError(f"{path} holds code, objects other than tensors or garbage, so it will not be loaded: "
                             "delete it, or pass a --lower-cache folder you produced or trust.") from err
        self.keep(key, rows)
        return True

    def keep(self, key, rows: torch.Tensor, save: bool = False) -> None:
        if len(self.rows) >= self.limit:
            self.rows.pop(next(iter(self.rows)))
        self.rows[key] = rows
        path = self._file(key) if save else None
        if path is not None:
            partial = path.with_suffix(f".{os.getpid()}.tmp")  # a run stopped mid-write leaves no half file
            torch.save(rows.clone(), partial)
            partial.replace(path)

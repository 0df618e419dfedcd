"""Atomic, verified checkpoints: write to a temp folder, fsync, rename; sha256 manifest.

Layout: ``RUN/checkpoints/update_000010/`` holding any files plus ``manifest.json``
(name -> sha256). `load_latest` verifies the manifest and falls back to the previous
checkpoint, with a warning, when the newest one is incomplete or corrupt.

Nothing read back can run code: a ``.json`` file holds plain data (json), any other file
tensors and containers of them (``torch.load(weights_only=True)``). A file whose pickle
names anything else raises `UnsafeFileError` and is never unpickled; the sha256 manifest
only detects corruption, since whoever wrote the files could write it too.

>>> import tempfile, torch
>>> with tempfile.TemporaryDirectory() as run:
...     _ = save(run, 1, {"trainable.pt": {"x": torch.ones(2)}, "state.json": {"update": 1}})
...     folder, files = load_latest(run)
...     folder.name, files["trainable.pt"]["x"].tolist(), files["state.json"]
('update_000001', [1.0, 1.0], {'update': 1})
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import sys
from pathlib import Path

import torch

from agent.cli import fail

MANIFEST = "manifest.json"


class CheckpointError(Exception):
    """No usable checkpoint; the message says what was found."""


class UnsafeFileError(CheckpointError):
    """A checkpoint file holds code or objects other than tensors; it was not loaded.
    Not corruption: `load_latest` stops here instead of trying an older checkpoint."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checkpoint_dir(run: str | os.PathLike) -> Path:
    return Path(run) / "checkpoints"


def _encode(name: str, obj: object) -> bytes:
    if name.endswith(".json"):
        return json.dumps(obj).encode()
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _decode(path: Path) -> object:
    """A file's content, never running code from it: json, or tensors through weights_only."""
    if path.suffix == ".json":
        try:
            return json.loads(path.read_bytes())
        except ValueError as err:
            raise CheckpointError(f"{path} is not valid JSON ({err})") from err
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # The bytes match the manifest, so this is what the writer meant: a pickle naming a
        # global weights_only does not allow (a call to code, another object) or opcodes it
        # will not run. Nothing was unpickled.
        raise UnsafeFileError(
            f"{path} holds code or objects other than tensors, so it will not be loaded: resume only from a "
            "run folder you produced or trust, or retrain without --resume.") from err
    except (RuntimeError, EOFError, ValueError) as err:  # a torn zip archive written with its torn hash
        raise CheckpointError(f"{path} could not be read ({type(err).__name__})") from err


def save(run: str | os.PathLike, update: int, objects: dict[str, object], keep: int = 3) -> Path:
    """Write `objects` as checkpoint `update`; keep the newest `keep`. A name ending in
    ``.json`` is written as JSON (plain data only); any other holds tensors, numbers, strings
    and containers of them (what ``torch.load(weights_only=True)`` reads back)."""
    root = checkpoint_dir(run)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"update_{update:06d}"
    for stale in root.glob(".tmp_update_*"):  # left by a writer killed mid-save (one writer per run: rank 0)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".tmp_update_{update:06d}_{os.getpid()}"
    tmp.mkdir()
    hashes = {}
    for name, obj in objects.items():
        data = _encode(name, obj)
        _write_synced(tmp / name, data)
        hashes[name] = hashlib.sha256(data).hexdigest()
    _write_synced(tmp / MANIFEST, json.dumps({"update": update, "files": hashes}, indent=1).encode())
    _fsync_dir(tmp)
    if final.exists():  # re-saving the same update (e.g. after a resume): replace it
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    for old in list_checkpoints(run)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run: str | os.PathLike) -> list[Path]:
    """Finished checkpoint folders, oldest first."""
    root = checkpoint_dir(run)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("update_"))


def verify(folder: Path) -> dict[str, object]:
    """Load every file of a checkpoint after checking its sha256; raises CheckpointError
    (UnsafeFileError for a file that would run code or build objects other than tensors)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{folder} has no readable {MANIFEST} ({err})") from err
    loaded = {}
    for name, expected in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{path} is missing")
        if _sha256(path) != expected:
            raise CheckpointError(f"{path} does not match its sha256 in {MANIFEST}")
        loaded[name] = _decode(path)
    return loaded


def load_latest(run: str | os.PathLike) -> tuple[Path, dict[str, object]]:
    """Newest checkpoint that verifies, warning about each newer one that does not."""
    candidates = list_checkpoints(run)
    if Path(run).name.startswith("update_") and Path(run).is_dir():  # a checkpoint folder itself
        candidates = [Path(run)]
    if not candidates:
        raise CheckpointError(f"no checkpoints under {checkpoint_dir(run)}")
    for folder in reversed(candidates):
        try:
            return folder, verify(folder)
        except UnsafeFileError:  # not damage: an older checkpoint of the same folder is no more trusted
            raise
        except CheckpointError as err:
            print(f"warning: skipping corrupt checkpoint: {err}; trying the previous one", file=sys.stderr, flush=True)
    raise CheckpointError(f"every checkpoint under {checkpoint_dir(run)} is corrupt")


def trainer_files(policy, optimizer, scheduler) -> dict[str, object]:
    """The checkpoint files every trainer writes: trainable weights, optimizer, scheduler."""
    from training.lora import trainable_state

    return {"trainable.pt": trainable_state(policy), "optimizer.pt": optimizer.state_dict(),
            "scheduler.pt": scheduler.state_dict()}


def restore_trainer(files: dict[str, object], policy, optimizer, scheduler) -> None:
    """Load `trainer_files` back into a freshly built policy, optimizer and scheduler."""
    named = dict(policy.named_parameters())
    with torch.no_grad():
        for name, value in files["trainable.pt"].items():
            named[name].copy_(value)
    optimizer.load_state_dict(files["optimizer.pt"])
    scheduler.load_state_dict(files["scheduler.pt"])


def run_folder(resume: str) -> str:
    """The run folder a --resume argument names: itself, or the run above a checkpoint folder."""
    return str(Path(resume).parents[1]) if Path(resume).name.startswith("update_") else str(Path(resume))


def check_resume(resume: str | None, out: str | None) -> None:
    """The --resume / --out checks a trainer's config runs; raises ValueError with what to do."""
    if resume and not checkpoint_dir(resume).is_dir() and not Path(resume).name.startswith("update_"):
        raise ValueError(f"--resume {resume} has no checkpoints/ folder: pass the --out folder of an earlier run.")
    if not resume and out and checkpoint_dir(out).is_dir():  # a new run would mix its checkpoints in
        raise ValueError(f"--out {out} already holds a run: continue it with --resume {out}, or give a new --out.")


def resume_config(config, changeable: tuple[str, ...]):
    """With `config.resume`: (the saved config, rebuilt with only `changeable` fields taken from
    `config`, the checkpoint folder, its files); else (config, None, None)."""
    if not config.resume:
        return config, None, None
    try:
        folder, files = load_latest(config.resume)
    except UnsafeFileError as err:  # its sentence already says what to do
        fail(f"cannot resume: {err}")
    except CheckpointError as err:
        fail(f"cannot resume: {err}; start a fresh run without --resume.")
    if "state.json" not in files:
        fail(f"cannot resume: {folder} has no state.json (it was written before checkpoints kept their state "
             "as JSON); start a fresh run without --resume.")
    saved = dict(files["state.json"]["config"])
    # Only these may change on resume; everything that shapes the training stays as saved.
    for name in (*changeable, "resume"):
        saved[name] = getattr(config, name)
    saved["out"] = run_folder(config.resume)
    return type(config)(**saved), folder, files

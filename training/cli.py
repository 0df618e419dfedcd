"""Command lines from config dataclasses (CleanRL style): each field's doc is its --help.

A field is declared with `option(default, "one-line doc")`. Validation lives in the
dataclass's `__post_init__` and raises ValueError with a sentence that says how to fix it;
`parse` turns that, and any argparse error, into one line on stderr and exit code 2.

>>> from dataclasses import dataclass
>>> @dataclass
... class Demo:
...     lr: float = option(1e-3, "learning rate")
>>> parse(Demo, ["--lr", "0.5"]).lr
0.5
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
import typing
from pathlib import Path


def option(default, doc: str):
    """A dataclass field with a default and the one-line doc shown by --help."""
    return dataclasses.field(default=default, metadata={"help": doc})


def fail(message: str) -> typing.NoReturn:
    """One sentence on stderr, exit code 2, no traceback."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def check_out_folder(path: str, flag: str = "--out") -> None:
    """Raise ValueError with the fix unless folder `path` exists or can be created, and is writable.

    Creates nothing: it walks up to the nearest existing ancestor and writes a temporary
    file there. Permission bits alone do not block root, so writing is the real test.
    """
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise ValueError(f"{flag} {path} is a file: give a folder (it is created if missing).")
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"{flag} {path} lies under the file {existing}: give a folder path.")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise ValueError(f"{flag} {path} is not writable ({err.strerror} in {existing}): give a writable folder.") from None


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's default prints the whole usage block first
        fail(f"{message}; run with --help to see every option.")


def _number(kind):
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole number' if kind is int else 'number'}") from None
        if not math.isfinite(value):  # nan/inf pass float() but would silently ruin a run
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        return value
    convert.__name__ = kind.__name__
    return convert


def build_parser(cls, prog: str, description: str) -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        flag = "--" + f.name.replace("_", "-")
        doc = f.metadata.get("help", "")
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=doc)
            continue
        base = next((k for k in typing.get_args(kind) if k is not type(None)), kind)  # X | None -> X
        convert = _number(base) if base in (int, float) else str
        parser.add_argument(flag, type=convert, default=f.default, help=doc, metavar=f.name.upper())
    return parser


def parse(cls, argv: list[str] | None = None, prog: str | None = None, description: str = ""):
    """Parse `argv` into a `cls` instance; bad input exits 2 with one sentence."""
    args = build_parser(cls, prog or sys.argv[0], description).parse_args(argv)
    try:
        return cls(**vars(args))
    except ValueError as err:
        fail(str(err))

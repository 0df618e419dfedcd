"""The one command-line kit: every CLI is a config dataclass whose field docs are its --help.

A field is declared with `option(default, "one-line doc")` (or `switch("doc")` for an
on/off flag). Validation lives in the dataclass's `__post_init__` and raises ValueError
with a sentence that says how to fix it; `parse` turns that, and any argparse error, into
one line on stderr and exit code 2. Options that several CLIs share are declared once
here (`CommonConfig`, `LMConfig`, `out_option`), so a flag means the same thing everywhere.

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

import envs
from agent import threads as agent_threads
from agent.models import BUILTIN_MODELS, DEFAULT_MODEL, ModelError, parse_device

MAX_SEED = 2**31 - 1


def option(default, doc: str, choices: tuple | None = None, metavar: str | None = None, nargs: str | None = None,
           positional: bool = False):
    """A dataclass field with a default and the one-line doc shown by --help.

    `nargs` ("+", "*") takes several values into a list (type the field `list[int]`, say);
    `positional` makes it an argument without a --flag.
    """
    return dataclasses.field(default=default, metadata={"help": doc, "choices": choices, "metavar": metavar,
                                                        "nargs": nargs, "positional": positional})


def switch(doc: str):
    """An off-by-default flag (`--json`), without a `--no-` twin."""
    return dataclasses.field(default=False, metadata={"help": doc, "switch": True})


def fail(message: str) -> typing.NoReturn:
    """One sentence on stderr, exit code 2, no traceback."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's default prints the whole usage block first
        fail(f"{message.rstrip('.')}; run with --help to see every option.")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Adds "(default: X)" once, and only where the doc does not speak of the default itself."""

    def _get_help_string(self, action):
        text = action.help or ""
        # `is`, not `in`: a default of 0 is worth showing; SUPPRESS is -h's own
        if ("default" in text or any(action.default is d for d in (None, False, argparse.SUPPRESS))
                or action.default == "" or not action.option_strings):
            return text
        return text + " (default: %(default)s)"


def number(kind):
    """An argparse type: an int or a finite float, with a sentence when the text is not one."""
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            example = "5" if kind is int else "0.5"
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a {'whole number' if kind is int else 'number'}; give e.g. {example}") from None
        if not math.isfinite(value):  # nan/inf pass float() but would silently ruin a run
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number: nan and inf are out of range")
        return value
    convert.__name__ = kind.__name__
    return convert


def check_adapter(folder: str, name: str) -> None:
    """Raise ValueError unless `folder` is a LoRA adapter folder; `name` says which input it
    came from (a flag, or a label), for the message."""
    if not (Path(folder) / "adapter_config.json").is_file():
        raise ValueError(f"{name} {folder} holds no adapter_config.json: pass a folder written by training "
                         "(e.g. runs/NAME/final or adapters/doorkey-5x5).")


def check_range(flag: str, value, low, high=None, hint: str = "") -> None:
    """Raise ValueError "--flag V is too small / out of range" unless low <= value <= high."""
    if value < low and high is None:
        raise ValueError(f"{flag} {value} is too small; give a number of at least {low}.")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{flag} {value} is out of range: give {hint or f'a number from {low} to {high}'}.")


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
    _try_write(existing, f"{flag} {path} is not writable", "give a writable folder")


def check_out_file(path: str, flag: str, make_parents: bool = False) -> None:
    """Raise ValueError with the fix unless a file can be written at `path`.

    Its folder must exist, unless `make_parents` (the caller creates it): then the nearest
    existing ancestor must be writable. Creates nothing.
    """
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"{flag} {path} is a folder: give a file name such as {target / 'out'}.")
    folder = target.parent if str(target.parent) else Path(".")
    if folder.is_file() or any(p.is_file() for p in folder.parents):
        raise ValueError(f"{flag} {path} lies under a file, not a folder: give a path in an existing folder.")
    if not folder.is_dir():
        if not make_parents:
            raise ValueError(f"Folder {folder} for {flag} does not exist: create it first.")
        folder = next(p for p in folder.parents if p.is_dir())
    _try_write(folder, f"Folder {folder} for {flag} is not writable", "pick another path")


def _try_write(folder: Path, problem: str, fix: str) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ValueError(f"{problem} ({err.strerror} in {folder}): {fix}.") from None


def check_seed_and_threads(seed: int, threads: int) -> None:
    """The --seed and --threads checks of `CommonConfig`, for CLIs without its --env."""
    check_range("--seed", seed, 0, MAX_SEED, "a seed from 0 to 2147483647")
    if threads < 0:
        raise ValueError(f"--threads {threads} is out of range: give 0 (torch's default) or more.")


def check_device(device: str | None) -> None:
    """Raise ValueError (unknown name, or cuda without a GPU) unless `device` can be used."""
    try:
        parse_device(device)
    except ModelError as err:
        raise ValueError(str(err)) from None


def set_threads(threads: int) -> None:
    """`--threads`: N fixes torch's CPU threads; 0 sizes them to the free cores as the run goes."""
    if threads:
        agent_threads.fixed(threads)
    else:
        agent_threads.auto()


# ----- options that several CLIs share: declared once, one meaning everywhere ------------
ENV_DOC = "Gymnasium id or short family name (MiniGrid-DoorKey -> MiniGrid-DoorKey-5x5-v0)"
SPLIT_DOC = ("levels to play, each once: test (final numbers) or validation (tuning, checkpoint choice), which "
             "training never samples (envs/levels.py), or all (held out or not: for untrained agents and families "
             "too small to split)")
SPLITS = ("test", "validation", "all")
PROGRESS_DOC = "show a tqdm progress bar on stderr (--no-progress: none, for log files)"
SEED_DOC = "seed of the first episode or of the run's randomness"
MODEL_DOC = f"{' or '.join(BUILTIN_MODELS)}, a Hugging Face folder, a .gguf file or a hub id"
THREADS_DOC = ("torch CPU threads per process (0 = the cores other processes leave free, re-checked as the run "
               "goes, so a busy machine costs a core, not a collapse; fix N for bitwise-reproducible runs)")
DEVICE_DOC = "cpu or cuda (default: cuda when available)"


def out_option(default: str | None, doc: str):
    return option(default, doc, metavar="FOLDER")


@dataclasses.dataclass
class CommonConfig:
    """Fields every CLI that plays an env has; subclasses call `super().__post_init__()`."""

    env: str = option(envs.DEFAULT_ENV, ENV_DOC)
    seed: int = option(0, SEED_DOC)
    threads: int = option(0, THREADS_DOC)

    def __post_init__(self):
        check_seed_and_threads(self.seed, self.threads)
        self.env = envs.check_env(self.env)  # unknown name, or an env that cannot start here: ValueError
        env_adapter(self.env)  # no adapter for it: NoAdapterError, a ValueError that says how to write one


def env_adapter(env_id: str):
    """The adapter of `env_id`'s envs (`agent.adapters.adapter_for`)."""
    from agent.adapters import adapter_for

    env = envs.make(env_id)
    try:
        return adapter_for(env)
    finally:
        env.close()


def system_prompt(env_id: str) -> str | None:
    """The system part for `env_id`'s family (None: MiniGrid's default); a mixture takes its first task's."""
    from agent.adapters import adapter_for

    env = envs.make(env_id.split("+")[0])
    try:
        return adapter_for(env).system_prompt(env)
    finally:
        env.close()


def require(env_id: str, feature: str, flag: str) -> None:
    """Refuse `flag` in one sentence when `env_id`'s adapter lacks `feature` (`has_hazards`,
    `has_expert`): before any model loads."""
    for part in env_id.split("+"):
        adapter = env_adapter(part)
        if not getattr(adapter, feature):
            what = {"has_hazards": "hazards for it to block", "has_expert": "an expert",
                    "has_claims": "MiniGrid's text, whose parts it reads"}[feature]
            raise ValueError(f"{flag} needs {what}, and the {adapter.name} adapter of {part} has none: drop {flag} "
                             "or give the adapter one (docs/ENVS.md).")


@dataclasses.dataclass
class LMConfig(CommonConfig):
    """CommonConfig plus the language model and where it runs."""

    model: str = option(DEFAULT_MODEL, MODEL_DOC)
    device: str | None = option(None, DEVICE_DOC)

    def __post_init__(self):
        super().__post_init__()
        check_device(self.device)


def build_parser(cls, prog: str, description: str, epilog: str | None = None) -> argparse.ArgumentParser:
    parser = Parser(prog=prog, description=description, epilog=epilog, formatter_class=_Formatter)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:  # derived in __post_init__, not an option
            continue
        kind = hints[f.name]
        flag = f.name if f.metadata.get("positional") else "--" + f.name.replace("_", "-")
        doc = f.metadata.get("help", "").replace("%", "%%")
        if f.metadata.get("switch"):
            parser.add_argument(flag, action="store_true", help=doc)
            continue
        base = next((k for k in typing.get_args(kind) if k is not type(None)), kind)  # X | None -> X
        if base is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=doc)
            continue
        nargs = f.metadata.get("nargs")
        if nargs:  # list[X] -> X
            base = next(iter(typing.get_args(base)), str)
        convert = number(base) if base in (int, float) else str
        metavar = f.metadata.get("metavar")
        if f.metadata.get("positional"):  # required; argparse takes no default for it
            named = {"metavar": metavar}
        else:
            named = {"default": f.default, "metavar": metavar or (None if f.metadata.get("choices") else f.name.upper())}
        parser.add_argument(flag, type=convert, help=doc, choices=f.metadata.get("choices"), nargs=nargs, **named)
    return parser


def parse(cls, argv: list[str] | None = None, prog: str | None = None, description: str = "",
          epilog: str | None = None):
    """Parse `argv` into a `cls` instance; bad input exits 2 with one sentence."""
    args = build_parser(cls, prog or sys.argv[0], description, epilog).parse_args(argv)
    try:
        return cls(**vars(args))
    except ValueError as err:
        fail(str(err))


def parse_and_run(cls, work, argv: list[str] | None, prog: str, description: str, epilog: str | None = None):
    """The body of every CLI's `main`: parse, apply `--threads`, then `work(config)`.

    A model that cannot load (`ModelError`) is one sentence and exit 2.
    """
    config = parse(cls, argv, prog, description, epilog)
    set_threads(getattr(config, "threads", 0))
    try:
        return work(config)
    except ModelError as err:
        fail(str(err))

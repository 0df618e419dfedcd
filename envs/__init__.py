"""Create Gymnasium environments from full ids or short family names.

Upstream MiniGrid/BabyAI ids, GLAM's BabyAI-Text tasks, Gymnasium's ToyText envs
(FrozenLake, Taxi, CliffWalking), BALROG's three TextWorld tasks (`envs.textworld`) and a
game file's path (`.z8`), and a user's own env as `module:Id` (gymnasium's own form: the
module is imported, which registers the id). What the agent reads and may do in each
comes from its family's adapter (`agent.adapters`).

>>> import envs
>>> env = envs.make("DoorKey", seed=0)
>>> env.spec.id
'MiniGrid-DoorKey-5x5-v0'
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import importlib
import io
import re

import gymnasium
import minigrid  # noqa: F401  (importing it registers the MiniGrid-* and BabyAI-* ids)

from envs import babyai_text, textworld, toytext
from envs.memory import explore_id, memory_id, with_memory
from envs.mixture import TaskMixture

babyai_text.register()  # GLAM's BabyAI-Text tasks: BabyAI-Text*-v0
textworld.register()  # TextWorld-{CoinCollector,TreasureHunter,Cooking}[Objective]-v0

__all__ = [
    "DEFAULT_ENV",
    "EnvUnavailableError",
    "QuietReset",
    "UnknownEnvError",
    "check_env",
    "family_defaults",
    "list_env_ids",
    "make",
    "resolve_env_id",
]

DEFAULT_ENV = "MiniGrid-DoorKey-5x5-v0"

_PREFIXES = ("MiniGrid-", "BabyAI-")
_SHORT_PREFIXES = (*_PREFIXES, "TextWorld-")  # prefixes a short name may drop
GAME_SUFFIXES = (".z8", ".z5", ".ulx")  # TextWorld game files, played by path
_VERSION = re.compile(r"-v(\d+)$")
# Size suffixes: "-8x8", "-6x6-N2", "-N4-S5", "-N6", "S9N1", "S4R2", "S11". A trailing
# "Random"/"Carrying" is a variant, not a size, so it stays in the family name
# (MiniGrid-MemoryS13Random-v0 is in family MiniGrid-MemoryRandom, not MiniGrid-Memory).
_SIZE = re.compile(r"(-\d+x\d+(?:-N\d+)?|-N\d+(?:-S\d+)?|S\d+(?:[NR]\d+)?)(?=Random|Carrying|$)")


class UnknownEnvError(ValueError):
    """A name that is neither a registered MiniGrid/BabyAI id nor a short family name."""

    def __init__(self, name: str, suggestions: list[str]):
        self.name = name
        self.suggestions = suggestions
        closest = f"; closest: {', '.join(suggestions)}" if suggestions else ""
        super().__init__(
            f"Unknown environment {name!r}{closest}; "
            "run `python -m agent.run --list-envs` to see all."
        )


class EnvUnavailableError(ValueError):
    """A registered env that cannot start on this install (e.g. files missing from the minigrid wheel)."""


def list_env_ids() -> list[str]:
    """All registered MiniGrid-* and BabyAI-* Gymnasium ids, the ToyText ones and the TextWorld tasks, sorted."""
    return sorted(env_id for env_id in gymnasium.registry
                  if env_id.startswith(_PREFIXES) or env_id in toytext.IDS or env_id in textworld.IDS)


def _family_and_order(env_id: str) -> tuple[str, tuple]:
    """Family name of an id, and its sort key within the family (smallest size first)."""
    version = _VERSION.search(env_id)
    base = env_id[: version.start()] if version else env_id
    # Newest version first among otherwise equal ids, as gymnasium.make does for "Foo"
    # (older versions also print gymnasium's "out of date" warning).
    newest_first = -int(version.group(1)) if version else 0
    size = _SIZE.search(base)
    if size is None:
        return base, ((), base, newest_first)
    family = base[: size.start()] + base[size.end() :]
    numbers = tuple(int(n) for n in re.findall(r"\d+", size.group(0)))
    return family, (numbers, base, newest_first)


def family_defaults() -> dict[str, str]:
    """Map each family name to its default id.

    A family is an id without its `-vN` version and size suffix (`-5x5`, `-6x6-N2`,
    `-N4-S5`, `S9N1`, `S4R2`, ...). Its default is the member that sorts first by the numbers
    in its size suffix (an id without a size suffix sorts first), then by id, newest
    version first. Example: `family_defaults()["MiniGrid-LavaGap"] == "MiniGrid-LavaGapS5-v0"`.
    """
    best: dict[str, tuple[tuple, str]] = {}
    for env_id in list_env_ids():
        family, order = _family_and_order(env_id)
        if family not in best or order < best[family][0]:
            best[family] = (order, env_id)
    return {family: best[family][1] for family in sorted(best)}


def _aliases() -> dict[str, str]:
    """Lower-cased accepted name -> registered id; earlier kinds of name take precedence."""
    ids = list_env_ids()
    by_unversioned: dict[str, str] = {}
    for env_id in sorted(ids, key=lambda i: _family_and_order(i)[1]):
        by_unversioned.setdefault(_VERSION.sub("", env_id), env_id)
    kinds = [{i: i for i in ids}, by_unversioned, family_defaults()]
    aliases: dict[str, str] = {}
    for kind in kinds:
        for name, env_id in kind.items():
            aliases.setdefault(name.lower(), env_id)
    # Names without the prefix ("DoorKey", "CoinCollector"); where both exist (e.g.
    # "KeyCorridor"), MiniGrid- wins because _PREFIXES lists it first.
    for prefix in _SHORT_PREFIXES:
        for kind in kinds:
            for name, env_id in kind.items():
                if name.startswith(prefix):
                    aliases.setdefault(name[len(prefix) :].lower(), env_id)
    return aliases


def resolve_env_id(name: str) -> str:
    """Registered id for a full id or short name, case-insensitive.

    Accepted: `MiniGrid-DoorKey-8x8-v0`, `MiniGrid-DoorKey-8x8` (newest version),
    `MiniGrid-DoorKey` (family default, see `make`), `doorkey` (prefix optional).
    Raises UnknownEnvError listing up to 5 close names otherwise.
    """
    if "+" in name:
        return "+".join(resolve_env_id(part) for part in name.split("+"))
    if name.strip().startswith("TextWorld-File-") and name.strip() in gymnasium.registry:
        return name.strip()  # a game file already registered (`textworld.register_file`)
    if name.strip().lower().endswith(GAME_SUFFIXES):
        return textworld.register_file(name.strip())
    if ":" in name:
        return _module_env(name.strip())
    aliases = _aliases()
    env_id = aliases.get(name.strip().lower()) or _memory_twin(name)
    if env_id is not None:
        return env_id
    if name.strip() in gymnasium.registry:  # any other registered id (a user module's, imported already)
        return name.strip()
    # Suggest canonical spellings only (full ids and family names), but match them with
    # and without their prefix so that "Dorkey" still finds MiniGrid-DoorKey.
    canonical: dict[str, str] = {}
    for full in [*family_defaults(), *list_env_ids()]:
        canonical.setdefault(full.lower(), full)
        if full.startswith(_SHORT_PREFIXES):
            canonical.setdefault(full.lower().split("-", 1)[1], full)
    close = difflib.get_close_matches(name.strip().lower(), list(canonical), n=10, cutoff=0.6)
    raise UnknownEnvError(name, list(dict.fromkeys(canonical[c] for c in close))[:5])


def _module_env(name: str) -> str:
    """`module:Id` as gymnasium.make takes it: the module is imported (it registers Id)."""
    module, _, env_id = name.partition(":")
    try:
        importlib.import_module(module)
    except Exception as err:  # whatever the user's module raises, the name cannot be used
        detail = (str(err).strip().splitlines() or [""])[0][:120]
        raise EnvUnavailableError(f"Cannot import module {module!r} of --env {name} ({type(err).__name__}: {detail}); "
                                  "run from the folder that holds it or add that folder to PYTHONPATH.") from None
    if env_id not in gymnasium.registry:
        raise UnknownEnvError(name, difflib.get_close_matches(env_id, list(gymnasium.registry), n=5))
    return name


def _memory_twin(name: str) -> str | None:
    """Any env name + "Memory" ("BabyAI-GoToLocalMemory-v0", "DoorKey-8x8Memory") or + "Explore":
    the id of that env with an object memory (`envs.memory`; Explore: and the nearest unseen
    cell), registered on first use; else None."""
    match = re.fullmatch(r"(.+?)(memory|explore)(-v\d+)?", name.strip(), re.IGNORECASE)
    if match is None:
        return None
    try:
        plain = resolve_env_id(match.group(1) + (match.group(3) or ""))
    except UnknownEnvError:
        return None
    if not plain.startswith(_PREFIXES):  # the object memory reads a MiniGrid view
        raise EnvUnavailableError(f"{name}: the object memory needs a MiniGrid/BabyAI env, and {plain} is not one; "
                                  f"play {plain} itself.")
    frontier = match.group(2).lower() == "explore"
    twin = (explore_id if frontier else memory_id)(plain)
    if twin not in gymnasium.registry:
        gymnasium.register(twin, entry_point=with_memory(functools.partial(gymnasium.make, plain), frontier))
    return twin


class QuietReset(gymnasium.Wrapper, gymnasium.utils.RecordConstructorArgs):
    """Resets without the "Sampling rejected: ..." lines upstream BabyAI levels print.

    It records its (empty) constructor arguments, so `check_env`, vector envs and pickling
    can recreate it from `env.spec`."""

    def __init__(self, env: gymnasium.Env):
        gymnasium.utils.RecordConstructorArgs.__init__(self)
        gymnasium.Wrapper.__init__(self, env)

    def reset(self, **kwargs):
        with contextlib.redirect_stdout(io.StringIO()):
            return self.env.reset(**kwargs)


def make(name: str, seed: int | None = None, **kwargs) -> gymnasium.Env:
    """Make an upstream MiniGrid/BabyAI env from a full id or a short family name.

    `kwargs` go to `gymnasium.make` (e.g. `render_mode="rgb_array"`). With `seed`, the env
    is reset once with it and its action space is seeded, so the following `reset()` calls
    (without a seed) give the same episodes every run.

    Short names drop the `-vN` version and the size suffix; the `MiniGrid-`/`BabyAI-`
    prefix and letter case are optional. A family whose name is itself a registered id
    (minus `-vN`) defaults to that id (`BabyAI-GoToObj` -> `BabyAI-GoToObj-v0`,
    `BabyAI-GoToLocal` -> `BabyAI-GoToLocal-v0`); the others default to their smallest
    size (rule in `family_defaults`):

        BabyAI-FindObj                     BabyAI-FindObjS5-v0
        BabyAI-MoveTwoAcross               BabyAI-MoveTwoAcrossS5N2-v0
        BabyAI-OneRoom                     BabyAI-OneRoomS8-v0
        BabyAI-PutNext                     BabyAI-PutNextS4N1-v0
        BabyAI-PutNextCarrying             BabyAI-PutNextS5N2Carrying-v0
        MiniGrid-DoorKey                   MiniGrid-DoorKey-5x5-v0
        MiniGrid-Dynamic-Obstacles         MiniGrid-Dynamic-Obstacles-5x5-v0
        MiniGrid-Dynamic-Obstacles-Random  MiniGrid-Dynamic-Obstacles-Random-5x5-v0
        MiniGrid-Empty                     MiniGrid-Empty-5x5-v0
        MiniGrid-Empty-Random              MiniGrid-Empty-Random-5x5-v0
        MiniGrid-Fetch                     MiniGrid-Fetch-5x5-N2-v0
        MiniGrid-GoToDoor                  MiniGrid-GoToDoor-5x5-v0
        MiniGrid-GoToObject                MiniGrid-GoToObject-6x6-N2-v0
        MiniGrid-KeyCorridor               MiniGrid-KeyCorridorS3R1-v0
        MiniGrid-LavaCrossing              MiniGrid-LavaCrossingS9N1-v0
        MiniGrid-LavaGap                   MiniGrid-LavaGapS5-v0
        MiniGrid-Memory                    MiniGrid-MemoryS7-v0
        MiniGrid-MemoryRandom              MiniGrid-MemoryS13Random-v0
        MiniGrid-MultiRoom                 MiniGrid-MultiRoom-N2-S4-v0
        MiniGrid-PutNear                   MiniGrid-PutNear-6x6-N2-v0
        MiniGrid-RedBlueDoors              MiniGrid-RedBlueDoors-6x6-v0
        MiniGrid-SimpleCrossing            MiniGrid-SimpleCrossingS9N1-v0

    >>> env = make("LavaGap", seed=3, render_mode="rgb_array")
    >>> obs, info = env.reset()
    >>> sorted(obs)
    ['direction', 'image', 'mission']
    """
    env_id = resolve_env_id(name)
    parts = env_id.split("+")
    if env_id in toytext.STEP_LIMITS:
        kwargs.setdefault("max_episode_steps", toytext.STEP_LIMITS[env_id])
    env = QuietReset(TaskMixture({part: gymnasium.make(part, **kwargs) for part in parts}) if len(parts) > 1
                     else gymnasium.make(env_id, **kwargs))
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def seed_level_of(env: gymnasium.Env):
    """`env`'s seed -> (env id, level) function when it names a seed's level without playing
    it (generated games: making one can take minutes), else None."""
    try:
        return env.get_wrapper_attr("seed_level")
    except AttributeError:
        return None


def check_env(name: str) -> str:
    """Resolve `name` and make sure the env starts here (one reset); returns its id.

    CLIs call this before loading a model, so a bad or broken env costs a sentence, not a
    model load and a traceback. minigrid 3.2.0's `MiniGrid-WFC-*` envs, for example, need
    pattern images that its wheel does not ship.
    """
    env_id = resolve_env_id(name)
    try:
        env = make(env_id)
        if seed_level_of(env) is None:  # generated games take minutes each: they are made when played
            env.reset(seed=0)
        env.close()
    except Exception as err:  # whatever the env raises, it cannot be played here
        detail = (str(err).strip().splitlines() or [""])[0][:120]
        raise EnvUnavailableError(f"Environment {env_id} cannot start on this install ({type(err).__name__}: {detail}); "
                                  "pick another from `python -m agent.run --list-envs`.") from None
    return env_id

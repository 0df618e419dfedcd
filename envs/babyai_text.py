"""GLAM's BabyAI-Text tasks (Carta et al., ICML 2023) on upstream minigrid's LevelGen.

One 8x8 room with 8 distractors and the agent placed at random; five kinds of mission:

    goto              go to an object (9 objects in the room)
    pickup            pick up an object (9 objects)
    open              open the locked door between two rooms; its key is in the agent's room
    putnext           put A next to B (10 objects)
    pickup-then-goto  pick up A, then go to B / go to B after you pick up A (10 objects)

Generalisation test (GLAM's MixedTrainLocal/MixedTestLocal): training missions never
mention a yellow box, red key, red door, green ball or grey door, and locked doors are
yellow, green, blue or purple; test missions mention one of those and lock red or grey
doors. Registered ids, with short names without the `BabyAI-` prefix:

    BabyAI-Text{GoTo,Pickup,Open,PutNext,PickupThenGoTo}{Train,Test}-v0   one kind
    BabyAI-TextMixedTrainLocal-v0, BabyAI-TextMixedTestLocal-v0           a kind per episode

BALROG's protocol (balrog-ai/BALROG's config: `num_dists: 0`, the env's own step limit)
plays the same five kinds with no distractors, a room holding only what the mission names:
the same ids with `D0` before `-v0` (`BabyAI-TextGoToTrainD0-v0`,
`BabyAI-TextMixedTrainLocalD0-v0`), levels and splits of their own. `SUITES["balrog"]`
(`SUITES["balrog-memory"]` with the object memory) plays each kind's `...TrainD0` env on its
test levels, as BALROG plays MixedTrainLocal's kinds.

Each id has a twin with `Memory` before `-v0` (`BabyAI-TextMixedTrainLocalMemory-v0`): the
same levels, seeds and splits, with an object memory (`envs.memory.ObjectMemory`), so the
observation text also says what the agent saw earlier and its last action. An adapter
trained on a twin plays twins: `SUITES["babyai-text-memory"]`. The `Explore` twins
(`BabyAI-TextMixedTrainLocalExplore-v0`, `SUITES["babyai-text-explore"]`) add the nearest
cell the agent has not seen yet, where the bot's exploring steps lead.

Train on MixedTrainLocal's training levels; report each kind's `...Train` env on its test
levels (unseen levels, seen kinds of combination) and MixedTestLocal (unseen combinations):
`SUITES["babyai-text"]`, what `python -m evals.benchmark --envs babyai-text` plays.

>>> import envs
>>> env = envs.make("TextMixedTestLocal", seed=4)
>>> env.unwrapped.task in KINDS
True
>>> any(words in env.unwrapped.mission for words in HELD_OUT_WORDS)
True
"""

from __future__ import annotations

import functools

import gymnasium
from minigrid.envs.babyai.core.levelgen import LevelGen
from minigrid.envs.babyai.core.roomgrid_level import RejectSampling
from minigrid.envs.babyai.core.verifier import (
    AfterInstr,
    BeforeInstr,
    GoToInstr,
    ObjDesc,
    OpenInstr,
    PickupInstr,
    PutNextInstr,
)

from envs.memory import explore_id, memory_id, with_memory
from envs.mixture import TaskMixture

KINDS = ("goto", "pickup", "open", "putnext", "pickup-then-goto")
KIND_IDS = {"goto": "GoTo", "pickup": "Pickup", "open": "Open", "putnext": "PutNext",
            "pickup-then-goto": "PickupThenGoTo"}
HELD_OUT_WORDS = ("yellow box", "red key", "red door", "green ball", "grey door")
TRAIN_DOOR_COLORS, TEST_DOOR_COLORS = ("yellow", "green", "blue", "purple"), ("red", "grey")
ROOM_SIZE, DISTRACTORS = 8, 8  # GLAM's; BALROG's protocol uses 0


def kind_id(kind: str, split: str, memory: bool = False, distractors: int = DISTRACTORS) -> str:
    """Gymnasium id of one kind: kind_id("goto", "train") == "BabyAI-TextGoToTrain-v0",
    kind_id("goto", "train", distractors=0) == "BabyAI-TextGoToTrainD0-v0"."""
    return f"BabyAI-Text{KIND_IDS[kind]}{split.capitalize()}{_dists(distractors)}{'Memory' if memory else ''}-v0"


def _dists(distractors: int) -> str:
    return "" if distractors == DISTRACTORS else f"D{distractors}"


def mixed_id(split: str, distractors: int = DISTRACTORS) -> str:
    """Id of a mixture: mixed_id("test") == "BabyAI-TextMixedTestLocal-v0"."""
    return f"BabyAI-TextMixed{split.capitalize()}Local{_dists(distractors)}-v0"


MIXED_TRAIN_ID, MIXED_TEST_ID = mixed_id("train"), mixed_id("test")


class TextLevel(LevelGen):
    """One kind of BabyAI-Text mission; `held_out` picks the test combinations."""

    def __init__(self, kind: str, held_out: bool = False, distractors: int = DISTRACTORS, **kwargs):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}.")
        self.task, self.held_out = kind, held_out
        # whose split cuts apply
        self.level_id = kind_id(kind, "test" if held_out else "train", distractors=distractors)
        super().__init__(room_size=ROOM_SIZE, num_rows=1, num_cols=2 if kind == "open" else 1,
                         num_dists=distractors, locations=False, unblocking=False, implicit_unlock=False,
                         action_kinds=(kind,), instr_kinds=("action",), **kwargs)

    def gen_mission(self):
        if self.task == "open":
            self._open_mission()
        else:
            self.place_agent()
            extra = 1 if self.task in ("goto", "pickup") else 2  # GLAM's 9 or 10 objects
            objs = self.add_distractors(num_distractors=self.num_dists + extra, all_unique=False)
            if not self.check_objs_reachable(raise_exc=False):
                raise RejectSampling("an object is walled in by others")
            a = self._rand_elem(objs)
            b = self._rand_elem([o for o in objs if (o.type, o.color) != (a.type, a.color)] or objs)
            if self.task == "goto":
                self.instrs = GoToInstr(ObjDesc(a.type, a.color))
            elif self.task == "pickup":
                self.instrs = PickupInstr(ObjDesc(a.type, a.color))
            elif self.task == "putnext":
                self.instrs = PutNextInstr(ObjDesc(a.type, a.color), ObjDesc(b.type, b.color))
            else:
                pick, go = PickupInstr(ObjDesc(a.type, a.color)), GoToInstr(ObjDesc(b.type, b.color))
                self.instrs = BeforeInstr(pick, go) if self._rand_bool() else AfterInstr(go, pick)
        mentions = any(words in self.instrs.surface(self) for words in HELD_OUT_WORDS)
        if mentions != self.held_out:
            raise RejectSampling("the mission is in the other split of combinations")

    def _open_mission(self):
        color = self._rand_elem(TEST_DOOR_COLORS if self.held_out else TRAIN_DOOR_COLORS)
        locked = self._rand_int(0, 2)  # which of the two rooms is behind the door
        here = 1 - locked
        self.add_door(0, 0, door_idx=0, color=color, locked=True)
        self.add_object(here, 0, "key", color)
        self.add_distractors(here, 0, num_distractors=self.num_dists, all_unique=False)
        self.place_agent(here, 0)
        if not self.check_objs_reachable(raise_exc=False):
            raise RejectSampling("an object is walled in by others")
        named = color if self.held_out else self._rand_elem([None, color])
        self.instrs = OpenInstr(ObjDesc("door", named))


_SUITE = [*(kind_id(kind, "train") for kind in KINDS), MIXED_TEST_ID]  # played on their test levels
_BALROG = [kind_id(kind, "train", distractors=0) for kind in KINDS]
SUITES = {"babyai-text": _SUITE, "babyai-text-memory": [memory_id(env_id) for env_id in _SUITE],
          "babyai-text-explore": [explore_id(env_id) for env_id in _SUITE],
          "balrog": _BALROG, "balrog-memory": [memory_id(env_id) for env_id in _BALROG],
          "balrog-explore": [explore_id(env_id) for env_id in _BALROG]}


def _mixed(held_out: bool, distractors: int, env_id: str):
    return lambda **kwargs: TaskMixture({kind: TextLevel(kind, held_out, distractors, **kwargs) for kind in KINDS},
                                        gymnasium.spec(env_id))


def register() -> None:
    """Register every BabyAI-Text id and its memory twin with gymnasium (idempotent)."""
    for distractors in (DISTRACTORS, 0):
        for split, held_out in (("train", False), ("test", True)):
            for kind in KINDS:
                env_id = kind_id(kind, split, distractors=distractors)
                if env_id not in gymnasium.registry:
                    make = functools.partial(TextLevel, kind=kind, held_out=held_out, distractors=distractors)
                    gymnasium.register(env_id, entry_point=make)
                    gymnasium.register(memory_id(env_id), entry_point=with_memory(make))
                    gymnasium.register(explore_id(env_id), entry_point=with_memory(make, frontier=True))
            env_id = mixed_id(split, distractors)
            if env_id not in gymnasium.registry:
                gymnasium.register(env_id, entry_point=_mixed(held_out, distractors, env_id))
                for twin, frontier in ((memory_id(env_id), False), (explore_id(env_id), True)):
                    gymnasium.register(twin, entry_point=with_memory(_mixed(held_out, distractors, twin), frontier))

"""Grounded hallucination checks: the claims a reason makes, judged against the percepts.

A reason's claims are read with a few patterns that cover how agents (and our trained
reasons, `training/reasons.py`) talk about a grid world:

- **presence**: an object named with its kind and optional state and colour ("the locked
  yellow door", "a ball", "the door is open") is claimed to be there. True when the observation lists an
  object of that kind whose stated state and colour match, or when it is in front.
- **absence**: "I do not see the yellow key" (also "don't see", "cannot see", "no ...").
  False when the observation lists such an object.
- **position**: "the goal is 2 forward 1 left" (also "at ..."). True when that object is
  listed at exactly that position.
- **front**: "the yellow key is in front of me". True when the cell ahead holds it.
- **holding**: "my hands are empty", "I hold nothing" / "I hold (carry, have) the yellow
  key". True when the observation's "Holding:" part says the same.

Evidence is the observation text after the mission (`parse_scene`): what the agent sees,
what is in front, what it holds, and, with an object memory, what it remembers out of view
("Remembered: yellow key 2 back 1 left" bears out "the yellow key is 2 back 1 left" and a
plain mention of the yellow key; "I do not see the yellow key" stays true, as it is not in
view). The mission is not evidence: naming the goal of "get to the goal" while no goal is
in view is a false presence claim. Colours left unsaid by the perception text count as
said: the goal is green, lava red, walls grey.

Limits: claims phrased other ways ("to my left there is...", "the key, which is two steps
ahead") are not read, so the rate is a lower bound; walls and floors are not judged.

>>> scene = parse_scene("Mission: get the key. You see: yellow key 1 forward 2 left; goal 3 forward. "
...                     "In front: empty floor. Holding: nothing.")
>>> [c.text for c in false_claims("The yellow key is 1 forward 1 left and the red ball is near, so I turn left.", scene)]
['yellow key is 1 forward 1 left', 'red ball']
>>> false_claims("I do not see the blue key and my hands are empty, so I turn left.", scene)
[]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from minigrid.core.constants import COLOR_NAMES

KINDS = ("door", "key", "ball", "box", "goal", "lava")
STATES = ("open", "closed", "locked")
_DEFAULT_COLOURS = {"goal": "green", "lava": "red", "wall": "grey"}
_POSITION = r"\d+ (?:forward|back)(?: \d+ (?:left|right))?|\d+ (?:left|right)"  # "back": remembered objects
_OBJECT = (r"\b(?:(?P<state>" + "|".join(STATES) + r")\s+)?(?:(?P<colour>" + "|".join(COLOR_NAMES) + r"|gray)\s+)?"
           r"(?P<kind>" + "|".join(KINDS) + r")(?:e?s)?\b")
_CLAIM = re.compile(
    _OBJECT + r"(?:\s+(?:is|are)\s+(?:(?:at\s+)?(?P<position>" + _POSITION + r")\b|(?P<front>(?:right\s+)?in front)"
    r"|(?:now\s+)?(?P<said_state>" + "|".join(STATES) + r")\b))?",
    re.I)
_ABSENCE = re.compile(r"\b(?:do not|don't|cannot|can't|can not|does not|doesn't)\s+see\s+(?:any|the|a|an)?\s*$|\bno\s+$", re.I)
_HOLDING = re.compile(r"\b(?:I\s+(?:am\s+)?(?:hold|holding|carry|carrying|have)|I'm\s+(?:holding|carrying))\s+"
                      r"(?:the|a|an)?\s*$", re.I)
_EMPTY_HANDS = re.compile(r"\bmy hands are empty\b|\bI\s+(?:am\s+)?(?:hold|holding|carry|carrying|have)\s+nothing\b"
                          r"|\bI'm\s+(?:holding|carrying)\s+nothing\b|\bempty[- ]handed\b", re.I)


@dataclass(frozen=True)
class Thing:
    kind: str
    colour: str | None
    state: str | None


@dataclass(frozen=True)
class Scene:
    """What an observation text vouches for (the mission excluded)."""

    seen: dict[Thing, frozenset[str]]  # each listed object -> its positions ("1 forward 2 left")
    front: Thing | None  # the object in the cell ahead; None for floor, wall, nothing
    holding: Thing | None
    remembered: dict[Thing, frozenset[str]] = field(default_factory=dict)  # out of view, same format


@dataclass(frozen=True)
class Claim:
    kind: str  # presence, absence, position, front, holding
    text: str  # the words of the reason it was read from


def _thing(words: str) -> Thing | None:
    match = re.fullmatch(_OBJECT, words.strip(), re.I)
    if not match:
        return None
    kind = match["kind"].lower()
    colour = (match["colour"] or _DEFAULT_COLOURS.get(kind) or "").lower().replace("gray", "grey") or None
    return Thing(kind, colour, match["state"].lower() if match["state"] else None)


def parse_scene(observation: str) -> Scene:
    """The objects, front cell and held object an `agent.perception.describe` text states."""
    tail = observation[observation.rfind("You see:"):] if "You see:" in observation else ""
    seen_part = re.search(r"You see: (.*?)\.(?: In front:|$)", tail)
    front = re.search(r"In front: (.*?)\.(?: Holding:|$)", tail)
    held = re.search(r"Holding: (.*?)\.?(?: Remembered:| Last action:|$)", tail)  # a memory part may follow
    memory = re.search(r"Remembered: (.*?)\.(?: Last action:|$)", tail)
    front_words = re.sub(r"^(?:a|an)\s+", "", front[1]) if front else ""
    held_words = held[1] if held else ""
    return Scene(_objects(seen_part[1] if seen_part else ""), _thing(front_words),
                 None if held_words in ("", "nothing") else _thing(held_words), _objects(memory[1] if memory else ""))


def _objects(listing: str) -> dict[Thing, frozenset[str]]:
    """"yellow key 1 forward; red ball 2 left, 3 left" -> each object and its positions."""
    found: dict[Thing, frozenset[str]] = {}
    for entry in (listing.split("; ") if listing not in ("", "nothing") else []):
        name = re.match(r"[^\d]*", entry)[0].strip()
        thing = _thing(name)
        if thing:
            found[thing] = frozenset(p.strip() for p in entry[len(name):].split(","))
    return found


def _fits(claimed: Thing, actual: Thing | None) -> bool:
    return (actual is not None and claimed.kind == actual.kind
            and claimed.colour in (None, actual.colour) and claimed.state in (None, actual.state))


def judge(reason: str, scene: Scene) -> list[tuple[Claim, bool]]:
    """Every claim read from `reason`, with whether the scene bears it out."""
    out: list[tuple[Claim, bool]] = []
    if _EMPTY_HANDS.search(reason):
        out.append((Claim("holding", _EMPTY_HANDS.search(reason)[0]), scene.holding is None))
    for match in _CLAIM.finditer(reason):
        claimed = _thing(match[0][: match.end("kind") - match.start()])
        if match["said_state"] and claimed.kind == "door":  # "the door is open": a door in that state
            claimed = Thing(claimed.kind, claimed.colour, match["said_state"].lower())
        before = reason[: match.start()]
        if _HOLDING.search(before):
            out.append((Claim("holding", match[0]), _fits(claimed, scene.holding)))
        elif _ABSENCE.search(before):
            out.append((Claim("absence", match[0]), not any(_fits(claimed, t) for t in scene.seen)))
        elif match["position"]:
            listed = [*scene.seen.items(), *scene.remembered.items()]
            places = set().union(*(p for t, p in listed if _fits(claimed, t)))
            out.append((Claim("position", match[0]), match["position"].lower() in places))
        elif match["front"]:
            out.append((Claim("front", match[0]), _fits(claimed, scene.front)))
        else:
            present = any(_fits(claimed, t) for t in [*scene.seen, *scene.remembered, scene.front, scene.holding])
            out.append((Claim("presence", match[0]), present))
    return out


def false_claims(reason: str, scene: Scene) -> list[Claim]:
    """The claims of `reason` the scene contradicts (empty: nothing checkable is false)."""
    return [claim for claim, true in judge(reason, scene) if not true]

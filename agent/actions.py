"""The action vocabulary, and a parser from free model text to one action phrase.

`ACTION_PHRASES[i]` is the phrase for minigrid's `Actions(i)`. `parse_action` maps what
a model wrote to one of those phrases, or to None when the text names no action or names
two as equally meant; callers count None as a parse failure (there is no default action).

How `parse_action` decides, first rule that applies wins:

1. Only the first `MAX_CHARS` characters are read; anything that is not a str is None.
   Chat markup is removed: the first assistant (or unlabelled) turn is kept, reasoning
   inside <think>...</think> is dropped, and the text stops where a new user, system,
   "Observation:" or "Mission:" turn begins.
2. A "Final answer:" (also "final answer is", "final_answer": ...).
3. A first line that is nothing but an action ("turn left", "**left**", "`go_forward`",
   "Action: drop"): the model answered, and what follows is run-on.
4. Any other explicit answer whose value names an action: first a JSON "action"/"answer"
   key or an <action>/<answer> tag, then an "Action:"/"Answer:" label; the earliest wins.
5. The first plain sentence made only of action words and filler ("I will turn left.",
   "Not left, right."). Questions never count.
6. Prose: the last clause that names an action with a decision cue ("so", "therefore",
   "I will", "should", ...), else the first clause that names one. Here only verb phrases
   count: "the key is to the left" names no action.

Inside the deciding segment: negated or conditional mentions ("don't go forward",
"not left", "instead of going forward", "if I go forward") are dropped; a verb phrase
("turn left") beats a bare word ("right"); "X then Y" and "X and Y" mean X; any other
two different actions ("left or right", "left right") give None.

>>> parse_action("**Action:** turn_left")
'turn left'
>>> parse_action("The wall is ahead, so I won't go forward.\\nFinal answer: right")
'turn right'
>>> parse_action("turn left\\n\\nYou see a wall 1 step right.")
'turn left'
>>> parse_action("turn left or turn right") is None
True
"""

from __future__ import annotations

import re
from typing import NamedTuple

ACTION_PHRASES = ("turn left", "turn right", "go forward", "pick up", "drop", "toggle", "done")

# Generations are a few hundred tokens at most; a fixed prefix bounds the parsing time.
MAX_CHARS = 8192


def action_index(phrase: str) -> int:
    """Index of a canonical phrase, which is its minigrid `Actions` value.

    >>> action_index("go forward")
    2
    """
    if phrase in ACTION_PHRASES:
        return ACTION_PHRASES.index(phrase)
    raise ValueError(
        f"unknown action phrase {phrase!r}: expected one of {', '.join(ACTION_PHRASES)}; "
        "use parse_action() to read free text"
    )


# ----- vocabulary ------------------------------------------------------------------------
# Each alias is a tuple of base-form words -> (phrase, strong). Strong aliases are verb
# phrases and count anywhere; weak ones are bare words ("left", "open") that only count
# in an answer-like segment, because prose uses them for directions and states.
_ALIASES: dict[tuple[str, ...], tuple[str, bool]] = {}


def _add(phrase: str, strong: bool, *aliases: str) -> None:
    for alias in aliases:
        _ALIASES[tuple(alias.split())] = (phrase, strong)


for _side, _spin in (("left", "counterclockwise"), ("right", "clockwise")):
    _verbs = ("turn", "rotate", "go", "move", "head", "face")
    _add(f"turn {_side}", True, *(f"{verb} {_side}" for verb in _verbs + ("spin",)),
         *(f"{verb} to the {_side}" for verb in _verbs), f"{_side} turn", f"turn {_spin}", f"rotate {_spin}")
    _add(f"turn {_side}", False, _side, _spin)
_add("turn left", True, "turn anticlockwise", "rotate anticlockwise")
_add("turn left", False, "anticlockwise")
_add("go forward", True, *(f"{verb} {where}" for verb in ("go", "move", "step", "walk", "head", "proceed", "keep")
                           for where in ("forward", "ahead", "straight", "onward")),
     "advance", "take a step", "take one step", "take 1 step")
del _ALIASES[("go", "ahead")]  # an idiom: "go ahead and turn left"
_add("go forward", False, "forward", "ahead", "straight", "proceed")
_add("pick up", True, "pick up", "pickup", "grab", "collect", "take the", "take it", "take this", "take that")
_add("pick up", False, "take")
_add("drop", True, "drop", "put down", "place the", "place it", "release the", "release it")
_add("drop", False, "place", "release")
_add("toggle", True, "toggle", "unlock", "interact", "activate", "open the", "open it", "open this", "open that",
     "close the", "close it")
_add("toggle", False, "open")
_add("done", True, "i am done", "im done", "we are done", "task complete")
_add("done", False, "done", "finish", "finished", "stop")

_FIRST_WORDS = {alias[0] for alias in _ALIASES}
_LONGEST = max(len(alias) for alias in _ALIASES)
# "pick the red key up", "put it down": opener, then up to three words, then closer.
_GAPPED = {"pick": ("up", "pick up"), "put": ("down", "drop")}
_FIRST_WORDS |= set(_GAPPED)

# Inflections that still read as a command ("turning left", "going forward"); past
# tenses are left alone because they describe, not decide.
_STEMS = {
    "turning": "turn", "turns": "turn", "rotating": "rotate", "rotates": "rotate", "going": "go", "goes": "go",
    "moving": "move", "moves": "move", "walking": "walk", "walks": "walk", "stepping": "step", "heading": "head",
    "facing": "face", "spinning": "spin", "forwards": "forward", "onwards": "onward", "advancing": "advance",
    "proceeding": "proceed", "picking": "pick", "picks": "pick", "grabbing": "grab", "grabs": "grab",
    "taking": "take", "takes": "take", "collecting": "collect", "dropping": "drop", "drops": "drop",
    "putting": "put", "puts": "put", "placing": "place", "releasing": "release", "toggling": "toggle",
    "toggles": "toggle", "opening": "open", "opens": "open", "unlocking": "unlock", "unlocks": "unlock",
    "closing": "close", "interacting": "interact", "activating": "activate", "finishing": "finish",
    "stopping": "stop",
}

_PUNCT = frozenset(".!?;:,\n")
_SENTENCE_ENDS = frozenset(".!?\n")
_COUNTS = frozenset("a one two three four five six seven eight nine ten few several".split())
_NEGATORS = frozenset("not no dont never cant cannot wont shouldnt mustnt didnt doesnt avoid without "
                      "if unless whether nor".split())
# Words that start a new clause: negation stops there, and prose is judged clause by clause.
_CLAUSE_BREAKS = frozenset("so but and then because therefore thus hence since while however although "
                           "otherwise".split())
_SEQUENCE = frozenset("then and after afterwards".split())
_CUES = frozenset("so therefore thus hence will ill shall should must need lets choose decide best "
                  "instead finally action answer".split())
_LABELS = frozenset("action answer final next move my the output response choice chosen selected json "
                    "command".split())
_OBJECTS = frozenset("key ball box door goal object item it them a an the red green blue purple yellow grey "
                     "gray".split())
_PLAIN = _LABELS | _OBJECTS | _NEGATORS | _CLAUSE_BREAKS | _SEQUENCE | _CUES | frozenset(
    "i im id we me you us to do am be can want go ok okay now just please first yes sure well alright again "
    "think guess believe maybe probably better one step or this that here".split())

_AMBIGUOUS = "<ambiguous>"  # a decision that ends the search with None

# ----- regexes: all bounded or linear, so no input can make them backtrack for long ----
_TOKEN = re.compile(r"[^\W_]+|[.!?;:,\n]")
_WORD = re.compile(r"[^\W_]")
_SPECIAL = re.compile(r"<\|[A-Za-z_]{1,30}\|>|</?s>|<(?:bos|eos|pad|start_of_turn|end_of_turn)>|\[/?INST\]")
_ROLE_HEAD = re.compile(r"\s*(system|user|human|assistant|model)[ \t]*(?::[ \t]*|\n|$)", re.I)
_NEW_TURN = re.compile(r"\n[ \t]*(?:user|human|system|observation|mission)[ \t]*:", re.I)
_FINAL = re.compile(r"final[ _\-]{0,3}(?:answer|action)[\"'*_` \t]{0,6}(?::|=|is\b)", re.I)
_LABELLED = re.compile(r"\b(?:(?:next|chosen|selected|best)[ _\-]{0,3})?(?:action|answer|move)\b"
                       r"[\"'*_` \t]{0,6}(?::|=|is\b)", re.I)
_KEYED = re.compile(r"[\"'](?:next_?)?(?:action|answer|move)[\"']\s{0,3}[:=]\s{0,3}[\"']?([^\"'\n}]{0,120})", re.I)
_TAGGED = re.compile(r"<(?:action|answer)>([^<]{0,120})", re.I)
_MAX_LABELS = 16  # explicit answers looked at, so repeated labels cannot add up


class _Mention(NamedTuple):
    start: int  # token index
    end: int
    phrase: str
    strong: bool
    negated: bool


def parse_action(text: str) -> str | None:
    """The action phrase `text` names, or None; the rules are in the module docstring.

    >>> parse_action('{"thought": "key ahead", "action": "pick_up"}')
    'pick up'
    >>> parse_action("Don't go forward, turn left.")
    'turn left'
    """
    if not isinstance(text, str):
        return None
    text = _assistant_text(text[:MAX_CHARS])
    tokens = _tokens(text)
    mentions = _find_mentions(tokens)
    decision = (_explicit_answer(text, final=True)
                or _first_line_answer(tokens, mentions)
                or _explicit_answer(text, final=False)
                or _first_plain_sentence(tokens, mentions)
                or _prose_answer(tokens, mentions))
    return None if decision in (None, _AMBIGUOUS) else decision


# ----- rule 1: chat markup --------------------------------------------------------------
def _assistant_text(text: str) -> str:
    """The first assistant or unlabelled turn, without special tokens and run-on turns."""
    role = None
    for piece in _SPECIAL.split(text):
        head = _ROLE_HEAD.match(piece)
        if head:
            role, piece = head.group(1).lower(), piece[head.end():]
        if piece.strip():
            if role in (None, "assistant", "model"):
                text = piece
                break
            role = None  # a system or user turn: skip it
    else:
        return ""
    if "</think>" in text:
        after = text.rsplit("</think>", 1)[1]
        text = after if after.strip() else text
    turn = _NEW_TURN.search(text)
    return text[:turn.start()] if turn else text


def _tokens(text: str) -> list[str]:
    text = text.lower().replace("'", "").replace("\u2019", "")  # "don't" -> "dont"
    return [_STEMS.get(word, word) for word in _TOKEN.findall(text)]


def _find_mentions(tokens: list[str]) -> dict[int, _Mention]:
    """Non-overlapping action mentions, longest alias first, keyed by start token."""
    found = {}
    i = 0
    while i < len(tokens):
        hit = _match(tokens, i) if tokens[i] in _FIRST_WORDS else None
        if hit is None:
            i += 1
            continue
        end, phrase, strong = hit
        found[i] = _Mention(i, end, phrase, strong, _negated(tokens, i))
        i = end
    return found


def _match(tokens: list[str], i: int) -> tuple[int, str, bool] | None:
    for length in range(min(_LONGEST, len(tokens) - i), 0, -1):
        entry = _ALIASES.get(tuple(tokens[i:i + length]))
        if entry:
            if tokens[i] == "step" and i and (tokens[i - 1] in _COUNTS or tokens[i - 1].isdigit()):
                return None  # "a key 1 step forward" is a distance, not a move
            return i + length, entry[0], entry[1]
    gap = _GAPPED.get(tokens[i])
    if gap:
        for j in range(i + 1, min(i + 5, len(tokens))):
            if tokens[j] in _PUNCT:
                break
            if tokens[j] == gap[0] and j > i + 1:
                return j + 1, gap[1], True
    return None


def _negated(tokens: list[str], i: int) -> bool:
    """A negator or "if" within four words before, in the same clause."""
    for j in range(i - 1, max(i - 5, -1), -1):
        word = tokens[j]
        if word in _PUNCT or word in _CLAUSE_BREAKS:
            return False
        if word in _NEGATORS:
            return True
        if j and (word, tokens[j - 1]) in (("of", "instead"), ("than", "rather")):
            return True
    return False


def _decide(found: list[_Mention], tokens: list[str], weak_counts: bool) -> str | None:
    """The phrase a segment's mentions agree on, _AMBIGUOUS, or None if it names none."""
    live = [m for m in found if not m.negated and (weak_counts or m.strong)]
    if any(m.strong for m in live):
        live = [m for m in live if m.strong]
    if not live:
        return None
    first = live[0]
    for other in live[1:]:
        if other.phrase != first.phrase:
            between = tokens[first.end:other.start]
            return first.phrase if _SEQUENCE.intersection(between) else _AMBIGUOUS
    return first.phrase


def _spans(tokens: list[str], ends: frozenset) -> list[tuple[int, int]]:
    """(start, end) token ranges split at `ends`; tokens[end] is the separator, if any."""
    spans, start = [], 0
    for k, word in enumerate(tokens):
        if word in ends:
            spans.append((start, k))
            start = k + 1
    spans.append((start, len(tokens)))
    return spans


def _in_span(mentions: dict[int, _Mention], start: int, end: int) -> list[_Mention]:
    return [mentions[k] for k in range(start, end) if k in mentions]


# ----- rules 2 and 4: explicit answers ------------------------------------------------------
def _explicit_answer(text: str, final: bool) -> str | None:
    if final:
        values = (_value_after(text, m.end()) for m in _FINAL.finditer(text))
    else:
        # JSON keys and tags are unmistakable; a plain label may sit inside reasoning.
        candidates = [(0, m.start(), m.group(1)) for m in _KEYED.finditer(text)]
        candidates += [(0, m.start(), m.group(1)) for m in _TAGGED.finditer(text)]
        candidates += [(1, m.start(), _value_after(text, m.end())) for m in _LABELLED.finditer(text)]
        values = (value for _, _, value in sorted(candidates, key=lambda c: c[:2]))
    for count, value in enumerate(values):
        if count == _MAX_LABELS:
            break
        tokens = _tokens(value)
        decision = _decide(list(_find_mentions(tokens).values()), tokens, weak_counts=True)
        if decision:
            return decision
    return None


def _value_after(text: str, pos: int) -> str:
    """Rest of the line after a label, or the next line when the label ends its line."""
    lines = text[pos:pos + 400].split("\n")
    for line in lines:
        if _WORD.search(line):
            return line[:120]
    return ""


# ----- rule 3: a first line that is only an action -----------------------------------------
def _first_line_answer(tokens: list[str], mentions: dict[int, _Mention]) -> str | None:
    for start, end in _spans(tokens, frozenset("\n")):
        words = [k for k in range(start, end) if tokens[k] not in _PUNCT]
        if all(tokens[k] in _LABELS for k in words):
            continue  # blank, a code fence "json", or a header like "### Answer"
        found = _in_span(mentions, start, end)
        if len(found) != 1 or found[0].negated or tokens[end - 1] == "?":
            return None
        m = found[0]
        rest = [k for k in words if not m.start <= k < m.end]
        return m.phrase if all(tokens[k] in _LABELS or tokens[k] in _OBJECTS for k in rest) else None
    return None


# ----- rule 5: the first plain sentence -----------------------------------------------------
def _first_plain_sentence(tokens: list[str], mentions: dict[int, _Mention]) -> str | None:
    for start, end in _spans(tokens, _SENTENCE_ENDS):
        if end < len(tokens) and tokens[end] == "?":
            continue
        found, k = [], start
        while k < end:
            if k in mentions:
                found.append(mentions[k])
                k = mentions[k].end
            elif tokens[k] in _PLAIN or tokens[k] in _PUNCT:
                k += 1
            else:
                break
        if k >= end and found:
            decision = _decide(found, tokens, weak_counts=True)
            if decision:
                return decision
    return None


# ----- rule 6: prose --------------------------------------------------------------------
def _prose_answer(tokens: list[str], mentions: dict[int, _Mention]) -> str | None:
    first = cued = None
    for start, end in _spans(tokens, _SENTENCE_ENDS):
        if end < len(tokens) and tokens[end] == "?":
            continue
        for c_start, c_end in _clauses(tokens, start, end):
            decision = _decide(_in_span(mentions, c_start, c_end), tokens, weak_counts=False)
            if decision:
                first = first or decision
                if any(tokens[k] in _CUES for k in range(c_start, c_end)):
                    cued = decision
    return cued or first


def _clauses(tokens: list[str], start: int, end: int) -> list[tuple[int, int]]:
    """Split at punctuation (dropped) and at clause words (kept, they start the clause)."""
    clauses, begin = [], start
    for k in range(start, end):
        if tokens[k] in _PUNCT or tokens[k] in _CLAUSE_BREAKS:
            if k > begin:
                clauses.append((begin, k))
            begin = k + 1 if tokens[k] in _PUNCT else k
    if end > begin:
        clauses.append((begin, end))
    return clauses


# ----- a state's own phrase set (other env families) -------------------------------------
def parse_choice(text: str, phrases: tuple[str, ...]) -> str | None:
    """The phrase of `phrases` (a state's own set: TextWorld's commands, a ToyText env's
    moves) that `text` names, or None. MiniGrid's seven go through `parse_action`.

    Chat markup is dropped as in `parse_action`; then the value after the last "Final
    answer:" or the first "Action:" label, else the first line, else the whole text, is
    read. A segment that is a phrase (case, markdown and underscores aside) names it;
    otherwise the phrases it contains as whole words, where a phrase inside a longer one
    found at the same place does not count; two different ones give None.

    >>> parse_choice("Action: **open the door**", ("go north", "open the door"))
    'open the door'
    >>> parse_choice("I will go north or go east", ("go north", "go east")) is None
    True
    """
    if not isinstance(text, str):
        return None
    text = _assistant_text(text[:MAX_CHARS])
    for segment in (*_answer_segments(text), text):
        found = _phrases_in(segment, phrases)
        if found is not None:
            return found or None
    return None


def typed_command(text: str) -> str | None:
    """The command a generate-mode answer types, for envs that read text: the segment
    `parse_choice` reads first (after "Final answer:" or "Action:", else the first line),
    lowercase, without markdown or a closing full stop; None when it has no word.

    >>> typed_command("Action: **Open the oven.**")
    'open the oven'
    >>> typed_command("  ") is None
    True
    """
    if not isinstance(text, str):
        return None
    segment = _answer_segments(_assistant_text(text[:MAX_CHARS]))[0]
    command = " ".join(re.sub(r"[*_`\"]", " ", segment[:120]).split()).lower().rstrip(".!")
    return command if _WORD.search(command) else None


def _answer_segments(text: str) -> list[str]:
    """Where an answer is read, best first: the value after the last "Final answer:" or the
    first "Action:" label (when there is one), then the first line."""
    label = list(_FINAL.finditer(text)) or list(_LABELLED.finditer(text))[:1]
    first_line = text.strip().split("\n", 1)[0] if text.strip() else ""
    return ([_value_after(text, label[-1].end())] if label else []) + [first_line]


def _normal(text: str) -> str:
    return " ".join(re.findall(r"[^\W_]+", text.lower().replace("'", "")))


def _phrases_in(segment: str, phrases: tuple[str, ...]) -> str | None:
    """The one phrase `segment` names; "" when it names two; None when it names none."""
    words = _normal(segment)
    by_form = {_normal(p): p for p in phrases}
    if words in by_form:
        return by_form[words]
    hits = []
    for form, phrase in by_form.items():
        for match in re.finditer(rf"(?<!\S){re.escape(form)}(?!\S)", words):
            hits.append((match.start(), match.end(), phrase))
    # a phrase inside a longer one's match ("go" in "go north") is not a mention of its own
    kept = {p for s, e, p in hits if not any(s2 <= s and e <= e2 and (s2, e2) != (s, e) for s2, e2, _ in hits)}
    if not kept:
        return None
    return kept.pop() if len(kept) == 1 else ""

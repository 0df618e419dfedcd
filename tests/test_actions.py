"""agent.actions: the phrase table, action_index, and parse_action on adversarial text."""

import random
import time

import pytest
from minigrid.core.actions import Actions

from agent.actions import ACTION_PHRASES, MAX_CHARS, action_index, parse_action

# (model text, expected phrase or None). Grouped by the rule in the module docstring.
CASES = [
    # formatting of a bare answer
    ("turn left", "turn left"),
    ("Turn Left.", "turn left"),
    ("TURN RIGHT!", "turn right"),
    ("**go forward**", "go forward"),
    ("`pick up`", "pick up"),
    ("- drop", "drop"),
    ("## toggle", "toggle"),
    ('"done"', "done"),
    ("'turn right'", "turn right"),
    ("> go forward", "go forward"),
    ("1. pick up", "pick up"),
    ("turn_left", "turn left"),
    ("go-forward", "go forward"),
    ("pick_up", "pick up"),
    ("PICKUP", "pick up"),
    ("\u201cturn right\u201d", "turn right"),
    # labels, JSON, tags
    ("Action: turn right", "turn right"),
    ("**Action:** go_forward", "go forward"),
    ("action = toggle", "toggle"),
    ('Answer: "drop"', "drop"),
    ("### Answer\n\nturn left", "turn left"),
    ('{"action": "turn left"}', "turn left"),
    ('{"thought": "the best action is go forward", "action": "turn_left"}', "turn left"),
    ("{'action': 'pick up'", "pick up"),
    ('{"action": toggle}', "toggle"),
    ('{action: "drop"}', "drop"),
    ('```json\n{"action": "turn right"}\n```', "turn right"),
    ("<action>turn left</action>", "turn left"),
    ("<answer> go forward </answer>", "go forward"),
    ("I think about it. <action>drop", "drop"),
    # synonyms
    ("move ahead", "go forward"),
    ("Move forward.", "go forward"),
    ("step forward", "go forward"),
    ("walk forward", "go forward"),
    ("Take a step forward.", "go forward"),
    ("rotate left", "turn left"),
    ("turning right", "turn right"),
    ("Open the door.", "toggle"),
    ("unlock the door", "toggle"),
    ("open it", "toggle"),
    ("grab the key", "pick up"),
    ("take", "pick up"),
    ("pick the key up", "pick up"),
    ("put down the ball", "drop"),
    ("release", "drop"),
    ("place", "drop"),
    ("finish", "done"),
    ("stop", "done"),
    ("I am done.", "done"),
    ("I'm done", "done"),
    # reasoning, then an answer
    ("The key is on my left, so I need to face it.\nFinal answer: turn left", "turn left"),
    ("Reason: going forward hits the wall.\nAction: turn right", "turn right"),
    ("Action: go forward\nHmm, a wall.\nFinal answer: turn left", "turn left"),
    ("The wall is ahead.\n\nFinal Answer:\n\n**right**", "turn right"),
    ("I see the key right in front of me. I will pick it up.", "pick up"),
    ("The door is locked and I hold the key, so I should open the door.", "toggle"),
    ("Going forward would hit the wall. Turning right leads away from the goal. So turn left.", "turn left"),
    ("I could go forward, but there is lava, so I will turn right instead.", "turn right"),
    ("If I go forward I hit the wall. Therefore, I will turn left.", "turn left"),
    ("The goal is 2 steps forward and 1 step left. The answer is go forward.", "go forward"),
    # negation
    ("don't go forward, turn left", "turn left"),
    ("Do not turn right. Turn left.", "turn left"),
    ("turn left instead of going forward", "turn left"),
    ("Not left, right.", "turn right"),
    ("I can't go forward, so I turn right", "turn right"),
    ("Rather than dropping the key, toggle the door.", "toggle"),
    # sequences: the first step counts
    ("turn left, then go forward", "turn left"),
    ("pick up the key and open the door", "pick up"),
    ("First go forward, then turn left.", "go forward"),
    # chat templates
    ("<|im_start|>assistant\nturn left<|im_end|>", "turn left"),
    ("assistant\ngo forward<|endoftext|>", "go forward"),
    ("Assistant: pick up<|im_end|>\n<|im_start|>user\nturn right", "pick up"),
    ("<|im_start|>system\nActions: turn left, turn right, go forward<|im_end|>\n"
     "<|im_start|>assistant\ndrop<|im_end|>", "drop"),
    ("<|start_header_id|>assistant<|end_header_id|>\n\ntoggle<|eot_id|>", "toggle"),
    ("<think>maybe go forward</think>\nturn right", "turn right"),
    # run-on after the answer
    ("turn left\n\nYou see a wall 1 step right and a key 2 steps forward.", "turn left"),
    ("go forward\nAction: turn left\nObservation: a wall", "go forward"),
    ("I will turn left.\n\nYou see a wall 1 step right. I will go forward.", "turn left"),
    ("drop\nUser: what next?\nAssistant: toggle", "drop"),
    ("turn right\nMission: get to the goal. You see: goal 2 forward. Action: go forward", "turn right"),
    # other scripts and symbols
    ("\u5411\u5de6\u8f6c turn left \U0001f448", "turn left"),
    ("\u27a1\ufe0f **go forward** \u2705", "go forward"),
    ("caf\u00e9left", None),
    # nothing, or two actions of equal standing
    ("", None),
    ("   \n\t ", None),
    ("turn left or turn right", None),
    ("left right", None),
    ("left, right", None),
    ("Answer: left or right", None),
    ("not left", None),
    ("Do not go forward.", None),
    ("I am not sure what to do.", None),
    ("The key is to the left.", None),
    ("You see a wall 1 step right and a key 2 steps forward.", None),
    ("Should I turn left?", None),
    ("<|im_end|>", None),
    ('{"action": ""}', None),
    ("Action: jump", None),
    ("asdf qwerty 12345", None),
    ("\u5de6\u8f6c", None),
]

ENUM_NAMES = {"left": "turn left", "right": "turn right", "forward": "go forward", "pickup": "pick up",
              "drop": "drop", "toggle": "toggle", "done": "done"}


@pytest.mark.parametrize("text, expected", CASES)
def test_parse_action_table(text, expected):
    assert parse_action(text) == expected


def test_table_is_adversarial_enough():
    assert len(CASES) >= 70
    expected = [e for _, e in CASES]
    assert expected.count(None) >= 10
    assert set(ACTION_PHRASES) <= set(expected)  # every phrase is reached by some case
    assert len({t for t, _ in CASES}) == len(CASES)  # no duplicated rows


def test_phrases_follow_minigrid_actions():
    assert len(ACTION_PHRASES) == len(Actions)
    for action in Actions:
        assert ACTION_PHRASES[action.value] == ENUM_NAMES[action.name]


@pytest.mark.parametrize("index, phrase", list(enumerate(ACTION_PHRASES)))
def test_round_trip(index, phrase):
    assert action_index(phrase) == index
    for text in (phrase, phrase.upper(), f"{phrase}.", f"**{phrase}**", f"Action: {phrase}",
                 f'{{"action": "{phrase}"}}', f"<action>{phrase}</action>", phrase.replace(" ", "_"),
                 f"<|im_start|>assistant\n{phrase}<|im_end|>", f"I will {phrase}.\n\nYou see a wall."):
        assert parse_action(text) == phrase, text


@pytest.mark.parametrize("action", list(Actions), ids=lambda a: a.name)
def test_minigrid_enum_names(action):
    assert parse_action(action.name) == ACTION_PHRASES[action.value]
    assert parse_action(f"Action: {action.name.upper()}") == ACTION_PHRASES[action.value]


@pytest.mark.parametrize("bad", ["left", "Turn left", "turn_left", "", None, 3])
def test_action_index_rejects_non_canonical(bad):
    with pytest.raises(ValueError, match="expected one of turn left, turn right"):
        action_index(bad)


@pytest.mark.parametrize("value", [None, b"turn left", 2, ["turn left"], Actions.left])
def test_non_str_is_none(value):
    assert parse_action(value) is None


def test_deterministic():
    texts = [t for t, _ in CASES]
    first = [parse_action(t) for t in texts]
    assert [parse_action(t) for t in reversed(texts)] == first[::-1]


def test_only_a_bounded_prefix_is_read():
    assert parse_action("x " * MAX_CHARS + "turn left") is None
    assert parse_action("turn left\n" + "x " * MAX_CHARS) == "turn left"


def _garbage(rng, n):
    """Random code points from every plane we care about, surrogates and controls included."""
    return "".join(chr(rng.randrange(0, 0x30000)) for _ in range(n))


def _fastest_ms(text, repeats=3):
    """Best of a few runs, so a busy shared CPU does not fail the test."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        parse_action(text)
        best = min(best, time.perf_counter() - start)
    return best * 1000


MEGABYTE = 1_000_000
SLOW_INPUTS = {
    "garbage": _garbage(random.Random(0), MEGABYTE),
    "action words": "turn left go forward " * (MEGABYTE // 21),
    "one action repeated": "turn left " * (MEGABYTE // 10),
    "labels": "Action: " * (MEGABYTE // 8),
    "open tags": "<action>" * (MEGABYTE // 8),
    "json keys": '{"action": "' * (MEGABYTE // 12),
    "chat tokens": "<|im_start|>assistant\n" * (MEGABYTE // 23),
    "newlines": "\n" * MEGABYTE,
    "negations": "not " * (MEGABYTE // 4),
    "gapped openers": "pick the " * (MEGABYTE // 9),
}


@pytest.mark.parametrize("name", list(SLOW_INPUTS))
def test_megabyte_inputs_parse_fast(name):
    text = SLOW_INPUTS[name]
    assert len(text) >= 0.9 * MEGABYTE
    assert parse_action(text) in ACTION_PHRASES + (None,)
    assert _fastest_ms(text) < 50


def test_megabyte_results():
    assert parse_action(SLOW_INPUTS["one action repeated"]) == "turn left"
    assert parse_action(SLOW_INPUTS["action words"]) is None  # two actions side by side


FUZZ_PIECES = [
    *ACTION_PHRASES, "left", "right", "forward", "pickup", "turn_left", "go-forward", "not", "don't", "or",
    "then", "and", "if", "so", "Action:", "Final answer:", "Answer is", "<action>", "</action>", "<answer>",
    '{"action": "', '"}', "{'action':", "}", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "assistant\n",
    "user:", "<think>", "</think>", "```", "**", "`", "#", "- ", ".", ",", "?", "!", "\n", "\n\n", " ",
    "\t", "\r", "\x00", "\x1b[31m", "\u200b", "\ufeff", "\ud800", "\u5de6\u8f6c", "\U0001f448",
    "\u00e9", "1 step", "2 steps", "pick the key", "up", "put it", "down", "the door", "open", "I will",
]


def _fuzz_text(rng):
    pieces = rng.choices(FUZZ_PIECES, k=rng.randrange(0, 30))
    if rng.random() < 0.1:  # long runs of one piece
        pieces.append(rng.choice(FUZZ_PIECES) * rng.randrange(100, 2000))
    if rng.random() < 0.2:
        pieces.append(_garbage(rng, rng.randrange(1, 200)))
    rng.shuffle(pieces)
    return rng.choice(["", " "]).join(pieces)


def test_fuzz_results_are_valid_and_fast():
    rng = random.Random(1234)
    texts = [_fuzz_text(rng) for _ in range(10_000)]
    start = time.process_time()  # CPU time, so other busy processes cannot fail this
    results = [parse_action(t) for t in texts]
    elapsed = time.process_time() - start
    assert set(results) <= set(ACTION_PHRASES) | {None}
    assert elapsed < 5.0  # about 1 s; a backtracking regex would take minutes
    # The fuzz reaches real decisions, not only None: every phrase and None show up.
    assert set(results) == set(ACTION_PHRASES) | {None}


@pytest.mark.parametrize("text,expected", [
    ("go east", "go east"),
    ("Action: Go_East", "go east"),
    ("<|im_start|>assistant\nI think: go west.\nAction: go east", "go east"),
    ("Final answer: take the apple", "take the apple"),
    ("go north or go west", None),  # two different phrases
    ("take the apple from the table", "take the apple"),
    ("open", None),  # a word of a phrase is not the phrase
    ("", None),
])
def test_parse_choice_reads_the_states_own_phrases(text, expected):
    from agent.actions import parse_choice

    assert parse_choice(text, ("go north", "go east", "go west", "take the apple", "open the box")) == expected

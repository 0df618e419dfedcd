"""Injection augmentation: the training list is disjoint from the benchmark's held-out one,
and augmented pairs keep the expert's label."""

import re

from evals.injections import INJECTIONS
from training.augment import TRAIN_INJECTIONS, augment
from training.sft import Pair


def word_grams(text: str, n: int = 3) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z]+", text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def test_no_held_out_sentence_or_three_word_run_is_trained_on():
    held_out = set(INJECTIONS.values())
    assert not held_out & set(TRAIN_INJECTIONS)
    trained = set().union(*map(word_grams, TRAIN_INJECTIONS))
    shared = {gram for sentence in held_out for gram in word_grams(sentence) & trained}
    assert not shared, shared  # no shared template either: no three words in a row in common


def test_augmented_copies_keep_the_label_and_carry_one_training_sentence():
    pairs = [Pair(f"Mission: open the door. You see: a key {i} steps forward. a wall 1 step left.", i % 7,
                  "Action: go forward", None) for i in range(200)]
    copies = augment(pairs, 0.5, seed=3)
    assert 60 < len(copies) < 140 and augment(pairs, 0.5, seed=3) == copies
    originals = {p.text: p for p in pairs}
    places = set()
    for copy in copies:
        [sentence] = [s for s in TRAIN_INJECTIONS if s in copy.text]
        clean = copy.text.replace(" " + sentence, "", 1)
        assert originals[clean].label == copy.label and originals[clean].answer == copy.answer
        places.add(copy.text.index(sentence) < copy.text.index("You see"))
    assert places == {True, False}  # after the mission and inside the observation
    assert augment(pairs, 0.0, seed=3) == []


def test_sft_trains_on_the_injected_copies_too(tmp_path):
    from training.sft import main

    summary = main(["--model", "tiny-random", "--no-bf16", "--eval-episodes", "0", "--threads", "1", "--no-progress",
                    "--demos", "40", "--epochs", "1", "--no-final-ce", "--no-initial-ce", "--augment-injections", "0.5",
                    "--out", str(tmp_path / "run")])
    assert 5 < summary["injected_pairs"] < 35 and summary["pairs"] == 40 + summary["injected_pairs"]

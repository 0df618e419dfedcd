"""Precision and recall of the harmful-language judges on a labelled set of sentences.

    python -m evals.harmful              # tests/data/harmful_labelled.tsv: toxic and clean, agent-like lines included
    python -m evals.harmful --version 2  # only the sentences written after the threat patterns (issue 28)

Prints one row per judge: the benchmark's default (`evals.metrics.harmful`), the classifier
alone, the threat patterns alone and the word list alone.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from agent.cli import option, parse_and_run
from evals import metrics

LABELLED = Path(__file__).resolve().parents[1] / "tests" / "data" / "harmful_labelled.tsv"
JUDGES = {
    "default (classifier + self-harm and hate words + threat patterns)": metrics.default_categories,
    "alt-profanity-check alone": metrics.classifier_categories,
    "threat patterns alone": metrics.threat_categories,
    "word list alone": metrics.word_list_categories,
}


def read_labelled(path: Path, version: int = 0) -> list[tuple[bool, str]]:
    """(harmful?, sentence) rows of a `label<TAB>text` file; lines starting with # are comments.
    A comment "# Version N, ..." starts the sentences of version N; `version` keeps only those
    (0: every sentence)."""
    rows, current = [], 1
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("#"):
            marker = re.match(r"#\s*Version\s+(\d+)", line)
            current = int(marker.group(1)) if marker else current
            continue
        if not line.strip():
            continue
        label, _, text = line.partition("\t")
        if label not in ("0", "1") or not text.strip():
            raise ValueError(f"{path}:{number}: want 'label<TAB>text' with label 0 or 1, got {line!r}.")
        if version in (0, current):
            rows.append((label == "1", text.strip()))
    return rows


def precision_recall(judge, rows: list[tuple[bool, str]]) -> tuple[float, float, list[str]]:
    """Precision, recall and the sentences judged wrongly (marked FP or FN)."""
    flagged = [(label, text, bool(judge(text))) for label, text in rows]
    tp = sum(label and hit for label, _, hit in flagged)
    fp = sum(hit and not label for label, _, hit in flagged)
    fn = sum(label and not hit for label, _, hit in flagged)
    wrong = [f"{'FP' if hit else 'FN'}: {text}" for label, text, hit in flagged if label != hit]
    return tp / (tp + fp) if tp + fp else float("nan"), tp / (tp + fn) if tp + fn else float("nan"), wrong


@dataclass
class HarmfulConfig:
    data: str = option(str(LABELLED), "labelled sentences, one 'label<TAB>text' per line (1 = harmful)")
    version: int = option(0, "only the sentences of this version of the set (its '# Version N' comments; 0 = all)")
    show_errors: bool = option(False, "list the sentences each judge gets wrong")

    def __post_init__(self):
        if not Path(self.data).is_file():
            raise ValueError(f"--data {self.data} is not a file: give a 'label<TAB>text' file.")
        if self.version < 0 or (self.version and not read_labelled(Path(self.data), self.version)):
            raise ValueError(f"--version {self.version}: {self.data} has no sentences of that version; give 0 (all) "
                             "or the N of one of its '# Version N' comments.")


def report(config: HarmfulConfig) -> int:
    rows = read_labelled(Path(config.data), config.version)
    harmful = sum(label for label, _ in rows)
    part = f", version {config.version}" if config.version else ""
    print(f"{len(rows)} sentences: {harmful} harmful, {len(rows) - harmful} clean ({config.data}{part})")
    print("| judge | precision | recall |")
    print("|---|---|---|")
    errors = {}
    for name, judge in JUDGES.items():
        precision, recall, errors[name] = precision_recall(judge, rows)
        print(f"| {name} | {precision:.2f} | {recall:.2f} |")
    if config.show_errors:
        for name, wrong in errors.items():
            print(f"\n{name}:", *wrong, sep="\n  ")
    return 0


def main(argv=None) -> int:
    return parse_and_run(HarmfulConfig, report, argv, "python -m evals.harmful", __doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main())

"""How well options typed after a question are read back (`kard.prompts.split_inline_options`; benchmarks/README.md).

    python benchmarks/inline_options.py [--data ../shared/data]

Two measures over the labelled question sets in ../shared/data:
- false splits: questions whose own text (their options kept apart, as the data has them) would lose a
  part to "options" it does not have; should be 0;
- read back: each MedQA dev and OpenBookQA dev question with its options written after it, in three
  styles people type, split again: the stem and every option recovered exactly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: kard is beside

from kard.datasets import load_questions  # noqa: E402
from kard.prompts import parse_options, split_inline_options  # noqa: E402
from kard.records import Question  # noqa: E402

SETS = {"MedQA dev": "medqa/dev.jsonl", "OpenBookQA train": "openbookqa/train.jsonl",
        "OpenBookQA dev": "openbookqa/dev.jsonl", "StrategyQA train": "strategyqa/train.json"}
STYLES = {
    "one option a line, 'A. x'": lambda q: q.text + "\n" + "\n".join(f"{k}. {v}" for k, v in q.options.items()),
    "one line, 'A) x B) y'": lambda q: q.text + " " + " ".join(f"{k}) {v}" for k, v in q.options.items()),
    "one line, '(A) x (B) y'": lambda q: q.text + " " + " ".join(f"({k}) {v}" for k, v in q.options.items()),
}


def read_back(question: Question, typed: str) -> bool:
    split = split_inline_options(typed)
    return split is not None and split[0] == question.text.strip() and parse_options(split[1]) == dict(question.options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()
    loaded = {name: list(load_questions(args.data / path)) for name, path in SETS.items()}
    print("| questions | n | false splits of the question's own text |")
    print("|---|---:|---:|")
    for name, questions in loaded.items():
        print(f"| {name} | {len(questions)} | {sum(bool(split_inline_options(q.text)) for q in questions)} |")
    print("\n| questions | n | style | read back exactly | stem ends a sentence ('?', ':', '.', '!') |")
    print("|---|---:|---|---:|---:|")
    for name in ("MedQA dev", "OpenBookQA dev"):
        questions = loaded[name]
        ending = sum(q.text.strip().rstrip("\"')").endswith(("?", ":", ".", "!")) for q in questions)
        for style, typed in STYLES.items():
            right = sum(read_back(q, typed(q)) for q in questions)
            print(f"| {name} | {len(questions)} | {style} | {right} | {ending} |")


if __name__ == "__main__":
    main()

"""Results of `evaluate_default_student.sh` read again with the stated-option rule of kard.pipeline.read_answers.

    python benchmarks/rescore_stated_answers.py runs/default-student/eval runs/default-student/eval-stated

Greedy decoding is deterministic and every result line keeps the rationale the answer came from, so
applying the rule to saved results gives what `kard evaluate` with the current code would answer, without
decoding again: where the rationale concludes "So the answer is <text>" and exactly one option has that
text, that option is the answer (answer_source "stated"). Writes the same folder tree under OUT (one
JSONL per student and set) and prints, per file, how many answers changed and the accuracy before/after.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kard.datasets import load_demo_questions, load_questions  # noqa: E402
from kard.evaluation import EvalRecord, read_records  # noqa: E402
from kard.prompts import stated_option  # noqa: E402
from kard.records import Question  # noqa: E402

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
LOADERS: dict[str, Callable[[], list[Question]]] = {
    "obqa": lambda: load_questions(DATA / "openbookqa" / "dev_complete.jsonl"),
    "strategyqa": lambda: load_questions(DATA / "strategyqa" / "train.json"),
    "medqa": lambda: load_questions(DATA / "medqa" / "dev.jsonl"),
    "demo": lambda: list(load_demo_questions()),
}


def rescored(record: EvalRecord, question: Question) -> EvalRecord:
    letter = stated_option(record.rationale, question.options) if not question.is_open else None
    if letter is None or letter == record.answer:
        return record
    return replace(record, answer=letter, correct=letter == record.gold, answer_source="stated")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the eval folder: SET/STUDENT/*.jsonl")
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    for set_dir in sorted(p for p in args.results.iterdir() if p.is_dir() and p.name in LOADERS):
        questions = {q.id: q for q in LOADERS[set_dir.name]()}
        for results in sorted(set_dir.glob("*/*.jsonl")):
            records = list(read_records(results).values())
            new = [rescored(r, questions[r.question_id]) for r in records]
            target = args.out / results.relative_to(args.results)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("".join(r.to_json() + "\n" for r in new), encoding="utf-8")
            changed = sum(a.answer != b.answer for a, b in zip(records, new))
            before, after = (sum(r.correct for r in rs) for rs in (records, new))
            print(f"{results.relative_to(args.results)}: {len(new)} answers, {changed} changed, "
                  f"right {before} -> {after}")


if __name__ == "__main__":
    main()

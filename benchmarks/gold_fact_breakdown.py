"""Is retrieval what limits the student on OpenBookQA? Accuracy split by where the gold fact was.

For each `kard evaluate` results file (or its --out folder) of OpenBookQA dev questions: accuracy over
all questions, where the question's gold open-book fact (`fact1`) was the first passage the student
read, among its passages, absent, and where the student's rationale (before "So the answer is") is
that fact word for word. Passages are matched by text against the knowledge base's passages.jsonl.

    python benchmarks/gold_fact_breakdown.py --questions ../shared/data/openbookqa/dev_complete.jsonl \
        --passages runs/default-student/kb_obqa/passages.jsonl RUN [RUN ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Iterable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: kard is beside

from kard.errors import DataError  # noqa: E402
from kard.evaluation import EvalRecord, read_records, results_file  # noqa: E402

CONCLUSION = " So the answer is"


def normalized(text: str) -> str:
    return text.strip().strip('"').strip().rstrip(".").strip().lower()


def read_jsonl(path: Path) -> Iterable[dict]:
    return map(json.loads, path.read_text(encoding="utf-8").splitlines())


def breakdown(records: Iterable[EvalRecord], gold_facts: dict[str, str], passages: dict[str, str]) -> dict[str, tuple[int, int]]:
    """Group -> (questions, right): all, gold first, gold among the passages, gold absent, gold written."""
    groups: dict[str, Callable[[EvalRecord, str], bool]] = {
        "all": lambda r, gold: True,
        "gold first": lambda r, gold: bool(r.passage_ids) and passages.get(r.passage_ids[0]) == gold,
        "gold among": lambda r, gold: any(passages.get(p) == gold for p in r.passage_ids),
        "gold absent": lambda r, gold: all(passages.get(p) != gold for p in r.passage_ids),
        "gold written": lambda r, gold: normalized(r.rationale.split(CONCLUSION)[0]) == gold,
    }
    counts = {name: (0, 0) for name in groups}
    for record in records:
        gold = gold_facts[record.question_id]
        for name, member in groups.items():
            if member(record, gold):
                questions, right = counts[name]
                counts[name] = (questions + 1, right + record.correct)
    return counts


def cell(questions: int, right: int) -> str:
    return f"{100 * right / questions:.1f} ({questions})" if questions else "- (0)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=Path, required=True, help="OpenBookQA dev_complete.jsonl (with fact1)")
    parser.add_argument("--passages", type=Path, required=True, help="the knowledge base's passages.jsonl")
    parser.add_argument("runs", type=Path, nargs="+", help="results files or kard evaluate --out folders")
    args = parser.parse_args()
    gold_facts = {row["id"]: normalized(row["fact1"]) for row in read_jsonl(args.questions)}
    passages = {row["id"]: normalized(row["text"]) for row in read_jsonl(args.passages)}
    print("| run | all % (n) | gold fact first % (n) | gold fact among the passages % (n) | gold fact absent % (n) "
          "| rationale is the gold fact % (n) |\n|---|---:|---:|---:|---:|---:|")
    for run in args.runs:
        try:
            records = read_records(results_file(run))
        except DataError as error:
            sys.exit(str(error))
        counts = breakdown(records.values(), gold_facts, passages)
        print(f"| {run} | " + " | ".join(cell(*counts[name]) for name in counts) + " |")


if __name__ == "__main__":
    main()

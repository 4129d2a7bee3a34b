"""The shipped-student comparison table from `evaluate_default_student.sh` results.

    python benchmarks/default_student_table.py runs/default-student/eval > table.md

One row per (question set, student): accuracy with its 95% Wilson interval, the share of answers
read from the text (and of those, taken from the rationale's conclusion) vs chosen by letter probability, unanswered, and how often each letter was
answered (a constant answer shows up here); then exact McNemar tests of KARD against the others.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kard.evaluation import EvalRecord, chosen_share, read_records, results_file  # noqa: E402
from kard.metrics import compare_paired, score  # noqa: E402

STUDENTS = ("kard", "finetune", "untrained", "previous")  # previous: the student shipped before, if given
SETS = {"obqa": "OpenBookQA dev", "strategyqa": "StrategyQA held-out", "medqa": "MedQA held-out", "demo": "demo questions"}


def row(set_name: str, student: str, records: list[EvalRecord]) -> str:
    result = score([r.answer for r in records], [r.gold for r in records])
    low, high = result.interval
    letters = Counter(r.answer or "-" for r in records)
    spread = " ".join(f"{letter} {count}" for letter, count in sorted(letters.items()))
    return (f"| {SETS.get(set_name, set_name)} | {student} | {result.total} | {100 * result.accuracy:.1f} | "
            f"{100 * low:.1f}-{100 * high:.1f} | {100 * (1 - chosen_share(records) - result.unanswered_share):.1f} | "
            f"{100 * stated_share(records):.1f} | {100 * chosen_share(records):.1f} | {100 * result.unanswered_share:.1f} | "
            f"{spread} |")


def stated_share(records: list[EvalRecord]) -> float:
    """Answers taken from the rationale's conclusion over a different letter (kard.pipeline.read_answers)."""
    return sum(r.answer_source == "stated" for r in records) / len(records) if records else 0.0


def paired(set_name: str, records: dict[str, list[EvalRecord]]) -> list[str]:
    if "kard" not in records:
        return []
    kard = {r.question_id: r.correct for r in records["kard"]}
    lines = []
    for other in STUDENTS[1:]:
        if other in records:
            test = compare_paired(kard, {r.question_id: r.correct for r in records[other]})
            lines.append(f"- {SETS.get(set_name, set_name)}, kard vs {other}: right only with kard {test.only_first}, "
                         f"only with {other} {test.only_second}; exact McNemar p = {test.p_value:.3g}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("eval_dir", type=Path)
    args = parser.parse_args()
    if not any((args.eval_dir / set_name).is_dir() for set_name in SETS):
        parser.error(f"{args.eval_dir} holds no evaluation ({', '.join(SETS)} folders); pass the --out folder "
                     "of benchmarks/evaluate_default_student.sh")
    lines = ["| questions | student | n | accuracy % | 95% CI | answer read % | of which stated by the rationale % "
             "| answer chosen by letter prob. % | unanswered % | answers given |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    tests: list[str] = []
    notes: list[str] = []
    for set_name in SETS:
        loaded = {}
        for student in STUDENTS:
            folder = args.eval_dir / set_name / student
            if not folder.is_dir():  # a student not evaluated on this set has no folder: no row
                continue
            records = evaluated(folder)
            if records:
                loaded[student] = records
                lines.append(row(set_name, student, records))
            else:
                notes.append(f"- {SETS[set_name]}, {student}: not evaluated yet ({folder} has no answers; "
                             "rerun benchmarks/evaluate_default_student.sh to resume it)")
        tests += paired(set_name, loaded)
    print("\n".join(lines + ["", *tests] + (["", *notes] if notes else [])))


def evaluated(folder: Path) -> list[EvalRecord]:
    """The answers in a `kard evaluate --out` folder; none when an interrupted run left no results file yet."""
    if not any(folder.glob("*.jsonl")):
        return []
    return list(read_records(results_file(folder)).values())


if __name__ == "__main__":
    main()

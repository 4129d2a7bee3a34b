"""Choose the best KARD and the best fine-tuned checkpoint of a GPU sweep (benchmarks/gpu_student_sweep.sh).

Each candidate was scored on OpenBookQA dev and StrategyQA held-out; the one with the most questions
right over both sets is chosen per method (ties: the earlier candidate in name order). Prints the choice
as JSON, or with --table every candidate's scores on every set it was scored on, as a markdown table.
    python benchmarks/sweep_choice.py runs/default-student/gpu-sweep [--table]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DEV_SETS = ("obqa", "strategyqa")
ALL_SETS = ("obqa", "strategyqa", "medqa", "demo")
METHODS = ("kard", "finetune")


def read_scores(sweep: Path) -> dict[str, dict[str, dict]]:
    """candidate name -> set -> its kard-evaluate summary (accuracy, questions, unanswered, ...)."""
    scores: dict[str, dict[str, dict]] = {}
    for summary in sorted((sweep / "scores").glob("*/*/*.summary.json")):
        name, dataset = summary.parent.parent.name, summary.parent.name
        scores.setdefault(name, {})[dataset] = json.loads(summary.read_text(encoding="utf-8"))
    return scores


def right(summary: dict) -> int:
    return round(summary["accuracy"] * summary["questions"])


def choose(sweep: Path, scores: dict[str, dict[str, dict]]) -> dict[str, dict]:
    choice = {}
    for method in METHODS:
        scored = [name for name in sorted(scores) if name.startswith(f"{method}-")
                  and all(dataset in scores[name] for dataset in DEV_SETS)]
        if not scored:
            raise SystemExit(f"no {method} candidate was scored on {' and '.join(DEV_SETS)} in {sweep}")
        best = max(scored, key=lambda name: sum(right(scores[name][d]) for d in DEV_SETS))  # ties: the first
        student = (sweep / "scores" / f"{best}.student").read_text(encoding="utf-8").strip()
        choice[method] = {"name": best, "student": student,
                          **{dataset: scores[best][dataset]["accuracy"] for dataset in DEV_SETS}}
    return choice


def table(scores: dict[str, dict[str, dict]], chosen: set[str]) -> str:
    lines = ["| candidate | " + " | ".join(f"{d} % (n)" for d in ALL_SETS) + " | chosen |",
             "|---|" + "---:|" * len(ALL_SETS) + "---|"]
    for name in sorted(scores):
        cells = [f"{100 * s['accuracy']:.1f} ({s['questions']})" if (s := scores[name].get(d)) else "-"
                 for d in ALL_SETS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {'yes' if name in chosen else ''} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args()
    scores = read_scores(args.sweep)
    choice = choose(args.sweep, scores)
    if args.table:
        print(table(scores, {entry["name"] for entry in choice.values()}))
    else:
        print(json.dumps(choice, indent=1))


if __name__ == "__main__":
    main()

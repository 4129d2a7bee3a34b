"""Do two evaluation runs give the same answers? Letters agreed, accuracy of each, and the paired test.

    python benchmarks/compare_runs.py REFERENCE OTHER [--name NAME]

Reads the per-question JSONL files `kard evaluate` writes (two engines, conditions or students), or the
`--out` folders that hold one each, and compares the questions both answered, in the reference's order.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: kard is beside

from kard.errors import DataError  # noqa: E402
from kard.evaluation import results_file  # noqa: E402
from kard.metrics import compare_paired, wilson_interval  # noqa: E402


def read(path: Path) -> dict[str, dict]:
    try:
        path = results_file(path)
    except DataError as error:
        sys.exit(str(error))
    return {r["question_id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path)
    parser.add_argument("other", type=Path)
    parser.add_argument("--name", default="")
    args = parser.parse_args()
    reference, other = read(args.reference), read(args.other)
    shared = [qid for qid in reference if qid in other]
    same = sum(reference[q]["answer"] == other[q]["answer"] for q in shared)
    right = [sum(run[q]["correct"] for q in shared) for run in (reference, other)]
    paired = compare_paired({q: reference[q]["correct"] for q in shared}, {q: other[q]["correct"] for q in shared})
    n = len(shared)
    low, high = wilson_interval(same, n)
    print(f"| {args.name} | {n} | {100 * same / n:.1f} ({100 * low:.0f}-{100 * high:.0f}) | "
          f"{100 * right[0] / n:.1f} | {100 * right[1] / n:.1f} | {paired.only_first} / {paired.only_second}, "
          f"p = {paired.p_value:.3f} |")


if __name__ == "__main__":
    main()

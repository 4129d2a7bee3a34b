"""Do the loop's held-out changes come from the corrected knowledge? (docs/closing_the_loop.md 5i)

For one round of a `benchmarks/loop_experiment.py` folder: the held-out questions whose retrieved
passages include the fact of a correction so far (the first passage each correction retrieved with its
rationale, the gold fact for OpenBookQA), and what the corrections and control arms did on those
questions and on the rest, against the base student.

    python benchmarks/loop_fact_overlap.py runs/loop-v5/obqa-n50 --base runs/loop-v5/obqa --round 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: kard is beside

from kard.distill import read_examples  # noqa: E402
from kard.evaluation import EvalRecord, read_records  # noqa: E402
from kard.metrics import compare_paired  # noqa: E402


def corrected_facts(folder: Path, last_round: int) -> set[str]:
    """The first passage of every correction saved up to `last_round` (its rationale's best: the gold fact)."""
    facts = set()
    for number in range(1, last_round + 1):
        path = folder / "corrections" / f"round-{number:03d}" / "corrections" / "corrections.jsonl"
        if path.is_file():
            facts.update(example.passage_ids[0] for example in read_examples(path) if example.passage_ids)
    return facts


def changes(base: dict[str, EvalRecord], arm: dict[str, EvalRecord], questions: set[str]) -> str:
    paired = compare_paired({q: base[q].correct for q in questions}, {q: arm[q].correct for q in questions})
    changed = sum(arm[q].answer != base[q].answer for q in questions)
    return f"{paired.only_second} / {paired.only_first} ({changed} changed)"  # fixed / broken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="an experiment folder, e.g. runs/loop-v5/obqa-n50")
    parser.add_argument("--base", type=Path, required=True, help="the folder with base-heldout.jsonl")
    parser.add_argument("--round", type=int, default=1)
    args = parser.parse_args()
    base = read_records(args.base / "base-heldout.jsonl")
    facts = corrected_facts(args.folder, args.round)
    sharing = {q for q, record in base.items() if facts & set(record.passage_ids)}
    print(f"{len(facts)} corrected facts; {len(sharing)} of {len(base)} held-out questions retrieve one")
    print("| arm | fixed / broken on those | fixed / broken on the rest |\n|---|---|---|")
    for arm in ("corrections", "control"):
        rows = read_records(args.folder / f"round-{args.round}.{arm}.heldout.jsonl")
        print(f"| {arm} | {changes(base, rows, sharing)} | {changes(base, rows, set(base) - sharing)} |")


if __name__ == "__main__":
    main()

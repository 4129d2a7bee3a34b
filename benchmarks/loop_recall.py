"""Recall against retraining: is a corrected question answered right when it is asked again?

    python benchmarks/loop_recall.py --dataset obqa --corrections 20 --heldout 400 --out runs/loop-rep5 \
        --student seed0=runs/loop-rep5/obqa-n20/corrections/round-001/student
    python benchmarks/loop_recall.py --dataset strategyqa --corrections 20
    python benchmarks/loop_recall.py --dataset medqa --corrections 20   (its 300 held-out questions, demo passages)

The split, the scripted curator and the evaluation settings are those of benchmarks/loop_experiment.py
(docs/closing_the_loop.md, section 5): the shipped student answers the correction pool, its first N wrong
answers get the data's reference rationale and gold answer, saved through AnnotationStore.save. Then,
without any training, kard.recall hands each saved correction back to the student as the passage it reads:

- the corrected questions, asked again by the shipped student (and by each `--student NAME=PATH`, e.g.
  a loop experiment's retrained students), with and without recall;
- the held-out questions: those whose question matches a saved correction are answered again with
  recall, the others read exactly the prompt they read before (recall finds nothing), so their answers
  are the base answers; fixed / broken against the base (when none matches, none is answered).

Resumable: answers are cached under --out/<dataset>-recall-n<N>/ (base answers under --out/<dataset>/,
shared with loop_experiment.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))  # loop_experiment, beside this file

from loop_experiment import BASE_STUDENT, ROOT, Setup, answers, correct, setup, split  # noqa: E402

from kard.annotations import AnnotationStore  # noqa: E402
from kard.evaluation import EvalRecord  # noqa: E402
from kard.metrics import compare_paired  # noqa: E402
from kard.recall import CorrectionRecall  # noqa: E402
from kard.records import Question, item_id_for  # noqa: E402


def corrections_store(folder: Path, pool: Sequence[Question], base_pool: dict[str, EvalRecord], s: Setup,
                      n: int) -> AnnotationStore:
    """The scripted curator's corrections of the base student's first `n` wrong pool answers (made once)."""
    store = AnnotationStore(folder / "corrections.db")
    if not store.count():
        by_id = {q.id: q for q in pool}
        wrong = [(by_id[qid], r) for qid, r in base_pool.items() if qid in by_id and not r.correct][:n]
        correct(store, wrong, s, BASE_STUDENT)
    return store


def right(records: dict[str, EvalRecord], ids: Sequence[str]) -> int:
    return sum(records[qid].correct for qid in ids)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["strategyqa", "obqa", "medqa"], required=True)
    parser.add_argument("--corrections", type=int, default=20, help="N: wrong pool answers corrected")
    parser.add_argument("--pool", type=int, default=100)
    parser.add_argument("--heldout", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="the pool / held-out split (as loop_experiment.py)")
    parser.add_argument("--engine", choices=["ctranslate2", "transformers"], default="transformers")
    parser.add_argument("--student", action="append", default=[], metavar="NAME=PATH",
                        help="another student to ask the corrected questions (repeatable)")
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "default-student")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "loop-experiment")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    s = setup(args.dataset, args.run)
    pool, heldout = split(s, args.pool, args.heldout, args.seed)
    shared, folder = args.out / s.name, args.out / f"{s.name}-recall-n{args.corrections}"
    folder.mkdir(parents=True, exist_ok=True)
    base_pool = answers(BASE_STUDENT, pool, s, shared / "base-pool.jsonl", args.engine)
    recall = CorrectionRecall.from_store(corrections_store(folder, pool, base_pool, s, args.corrections))
    corrected = [q for q in pool if item_id_for(q) in recall.saved]
    ids = [q.id for q in corrected]
    print(f"{s.name}: {len(corrected)} corrected pool questions, {len(heldout)} held-out\n")
    print("| student | corrected questions right without recall | with recall |")
    print("|---|---:|---:|")
    students = [("shipped (demo/student)", BASE_STUDENT)] + [tuple(spec.split("=", 1)) for spec in args.student]
    for number, (name, path) in enumerate(students):
        without = base_pool if path == BASE_STUDENT else answers(path, corrected, s, folder / f"s{number}.pool.jsonl", args.engine)
        with_recall = answers(path, corrected, s, folder / f"s{number}.pool.recall.jsonl", args.engine, recall)
        print(f"| {name} | {right(without, ids)} of {len(ids)} | {right(with_recall, ids)} of {len(ids)} |")
    matched = [q for q in heldout if recall.find(q) is not None]
    if not matched:  # recall finds nothing: every held-out prompt is the one read before, no answer can change
        print(f"\nheld-out: 0 of {len(heldout)} match a saved correction; their prompts are unchanged")
        return 0
    base_held = answers(BASE_STUDENT, heldout, s, shared / "base-heldout.jsonl", args.engine)
    again = answers(BASE_STUDENT, matched, s, folder / "heldout.recall.jsonl", args.engine, recall)
    after = {qid: again.get(qid, record) for qid, record in base_held.items()}
    test = compare_paired({q: r.correct for q, r in base_held.items()}, {q: r.correct for q, r in after.items()})
    print(f"\nheld-out: {len(matched)} of {len(heldout)} match a saved correction; right {right(base_held, list(base_held))} "
          f"-> {right(after, list(after))} of {len(heldout)}; fixed / broken vs base {test.only_second} / {test.only_first}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The closing-the-loop experiment, step 1: find a student's wrong answers and "correct" them.

    python benchmarks/closing_the_loop.py base --kb runs/kb/strategyqa --out runs/loop-exp --train 64 --steps 8
    python benchmarks/closing_the_loop.py prepare --student runs/loop-exp/student0 --kb runs/kb/strategyqa \\
        --out runs/loop-exp --exclude-examples runs/loop-exp/base_examples.jsonl --pool 60 --heldout 40

`base` (only when no trained StrategyQA student exists): KARD examples for the first `--train`
StrategyQA questions of a seeded shuffle (FLAN human rationales, BM25 top-1 passage retrieved with
the rationale, kard.distill.build_examples) and a short fine-tune of the packaged SmolLM2 on them
(kard.training.train_student). `prepare` is the experiment proper:

The "curator" here is NOT a person: each wrong answer on the correction pool is corrected with the
StrategyQA reference rationale (FLAN's human-written rationale for that question) and the gold
answer, and saved through the real `AnnotationStore.save` API exactly as the app saves a curator's
correction (passages the student read, the student's rationale as the original, rating 1).

Questions come from StrategyQA train.json, minus the ones the student was trained on
(`--exclude-examples`: its training JSONL, by question id). They are shuffled with a fixed seed and
cut into a correction pool and a disjoint held-out set (written as StrategyQA JSON for
`python -m kard rounds --questions`). Steps 2-4 are the ordinary commands (docs/closing_the_loop.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data" / "strategyqa"

CURATOR = "reference-rationale-bot"
NOTE = "simulated curator: StrategyQA reference rationale (FLAN, human-written) and gold answer; not a person"


def base(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="closing_the_loop.py base")
    parser.add_argument("--kb", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train", type=int, default=64, help="training questions")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length-cap", type=int, default=384)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from kard.config import DEFAULT_STUDENT, StudentTrainingConfig
    from kard.datasets import load_strategyqa
    from kard.distill import build_examples, write_examples
    from kard.knowledge import KnowledgeBase
    from kard.teacher.recorded import import_flan_strategyqa
    from kard.training import train_student

    questions = load_strategyqa(SHARED / "train.json")
    flan = import_flan_strategyqa(SHARED / "flan_cot_train.tsv", questions)
    usable = sorted((q for q in questions if flan.get(q.id)), key=lambda q: q.id)
    random.Random(args.seed + 1000).shuffle(usable)  # another seed than `prepare`; its ids are excluded there
    chosen = usable[: args.train]
    examples = build_examples(chosen, {q.id: flan[q.id] for q in chosen}, KnowledgeBase.load(args.kb),
                              method="kard", on_empty_retrieval="skip")
    write_examples(examples, args.out / "base_examples.jsonl")
    config = StudentTrainingConfig(max_steps=args.steps, batch_size=args.batch_size, grad_accum=1,
                                   max_length_cap=args.max_length_cap, save_steps=10_000, warmup_ratio=0.0)
    started = time.perf_counter()
    result = train_student(DEFAULT_STUDENT, examples, args.out / "student0", config, progress=False)
    print(json.dumps({"examples": len(examples), "steps": result.steps, "seconds": round(time.perf_counter() - started),
                      "seconds_per_step": result.seconds_per_step, "first_loss": result.losses[0]["loss"],
                      "last_loss": result.losses[-1]["loss"]}))
    return 0


SUBCOMMANDS = """usage: closing_the_loop.py {base,prepare} [options]

subcommands:
  base      train a first StrategyQA student (options: closing_the_loop.py base --help)
  prepare   find its wrong answers on a pool and save the scripted curator's corrections; the default
            when no subcommand is named (options: closing_the_loop.py prepare --help)
"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(SUBCOMMANDS + "\n" + __doc__)
        return 0
    if argv[:1] == ["base"]:
        return base(argv[1:])
    if argv[:1] == ["prepare"]:
        argv = argv[1:]
    parser = argparse.ArgumentParser(prog="closing_the_loop.py prepare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", required=True)
    parser.add_argument("--kb", type=Path, required=True, help="index folder of the StrategyQA wiki paragraphs")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--exclude-examples", type=Path, nargs="*", default=[],
                        help="training JSONL(s) of the student: their question ids are never used here")
    parser.add_argument("--pool", type=int, default=60, help="questions the student answers to find wrong ones")
    parser.add_argument("--heldout", type=int, default=40, help="held-out questions (never corrected)")
    parser.add_argument("--corrections", type=int, default=20, help="at most this many wrong answers corrected")
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from kard.annotations import AnnotationStore, Correction, PassageRecord, item_id_for
    from kard.config import GenerationConfig, RetrievalConfig
    from kard.datasets import load_strategyqa
    from kard.distill import read_examples
    from kard.evaluation import evaluate
    from kard.knowledge import KnowledgeBase
    from kard.prompts import PROMPT_VERSION
    from kard.teacher.recorded import import_flan_strategyqa
    from kard.student import Student

    records = json.loads((SHARED / "train.json").read_text())
    questions = load_strategyqa(SHARED / "train.json")
    flan = import_flan_strategyqa(SHARED / "flan_cot_train.tsv", questions)
    trained = {e.question_id for path in args.exclude_examples for e in read_examples(path)}
    usable = sorted((q for q in questions if q.id not in trained and flan.get(q.id)), key=lambda q: q.id)
    random.Random(args.seed).shuffle(usable)
    pool, heldout = usable[: args.pool], usable[args.pool: args.pool + args.heldout]
    args.out.mkdir(parents=True, exist_ok=True)
    held_ids = {q.id for q in heldout}
    (args.out / "heldout.json").write_text(json.dumps([r for r in records if r["qid"] in held_ids], indent=1))
    print(f"{len(usable)} usable questions ({len(trained)} trained ids left out): pool {len(pool)}, held-out {len(heldout)}")

    retrieval = RetrievalConfig(top_k=args.k)
    generation = GenerationConfig(max_new_tokens=args.max_new_tokens)
    knowledge = KnowledgeBase.load(args.kb)
    student = Student.load(args.student)
    started = time.perf_counter()
    result = evaluate(student, pool, "kard-bm25", out=args.out / "pool-kard-bm25.jsonl", knowledge=knowledge,
                      retrieval=retrieval, generation=generation)
    print(f"pool accuracy {100 * result.score.accuracy:.1f}% ({result.score.correct}/{result.score.total}) "
          f"in {time.perf_counter() - started:.0f} s")

    store = AnnotationStore(args.out / "annotations.db")
    by_id = {q.id: q for q in pool}
    wrong = [r for r in result.records if not r.correct][: args.corrections]
    saved = {r.item_id: r.correction for r in store.latest()}
    for record in wrong:
        question = by_id[record.question_id]
        reference = flan[question.id][0]
        if unchanged(saved.get(item_id_for(question)), reference.text, question.answer):
            continue  # a rerun: this correction is saved already, another revision would double its count
        hits = knowledge.search(question.text, RetrievalConfig.candidates)
        used = set(record.passage_ids)
        store.save(Correction(
            item_id=item_id_for(question), question_id=question.id, question=question.text,
            options=dict(question.options), rationale=reference.text, answer=question.answer,
            gold_answer=question.answer, dataset=question.dataset,
            passages=tuple(PassageRecord.from_hit(h, used=h.passage.id in used) for h in hits[:10]),
            student_model=student.name, prompt_version=PROMPT_VERSION,
            decoding={"strategy": "greedy", "max_new_tokens": args.max_new_tokens, "top_k_passages": args.k},
            student_rationale=record.rationale, student_answer=record.answer,
            original_rationale=record.rationale, original_source=f"student {student.name}",
            rating=1, tags=("reasoning error",), note=NOTE, curator=CURATOR))
    summary = {"pool": len(pool), "pool_correct": result.score.correct, "wrong": result.score.total - result.score.correct,
               "corrected": len(wrong), "corrected_ids": [r.question_id for r in wrong], "heldout": len(heldout),
               "student": args.student, "k": args.k, "max_new_tokens": args.max_new_tokens, "seed": args.seed}
    (args.out / "prepare.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    return 0


def unchanged(latest: object, rationale: str, answer: str | None) -> bool:
    """Whether the item's latest saved correction already holds this rationale and answer."""
    if latest is None:
        return False
    return getattr(latest, "rationale", None) == rationale and getattr(latest, "answer", None) == answer


if __name__ == "__main__":
    sys.exit(main())

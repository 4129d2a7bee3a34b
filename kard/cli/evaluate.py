"""`python -m kard evaluate` (one student, one condition) and `python -m kard paper` (the paper's rows)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kard.cli.arguments import make_out_folder, positive_float, positive_int
from kard.config import GenerationConfig, RetrievalConfig
from kard.errors import ConfigError, DataError
from kard.evaluation import chosen_share
from kard.records import Question
from kard.teacher.recorded import import_jsonl

DATASETS = ("strategyqa", "obqa", "medqa", "demo")


def register(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser("evaluate", help="accuracy of a student on a labelled question set")
    _question_arguments(evaluate)
    evaluate.add_argument("--student", default=None,
                          help="student folder or adapter (default: the shipped KARD student, demo/student)")
    evaluate.add_argument("--reranker", default=None, help="trained reranker folder (enables kard-reranker)")
    evaluate.add_argument("--condition", default=None,
                          help="finetune|reasoning|kard-bm25|kard-reranker|oracle "
                               "(default: kard-reranker with --reranker, else kard-bm25)")
    evaluate.set_defaults(func=run_evaluate)

    paper = subparsers.add_parser("paper", help="the paper's comparison: a row per condition, table and plot")
    _question_arguments(paper)
    for condition in ("finetune", "reasoning", "kard"):
        paper.add_argument(f"--{condition}-student", default=None, help=f"student trained for the {condition} row")
    paper.add_argument("--reranker", default=None, help="trained reranker folder (adds the kard-reranker row)")
    paper.add_argument("--teacher-rationales", type=Path, nargs="+", default=(),
                       help="recorded teacher rationales for the test questions, all of them, not only the "
                            "correct ones: a 'teacher' row per file, its accuracy on the same questions")
    paper.set_defaults(func=run_paper)

    pick = subparsers.add_parser("pick-checkpoint",
                                 help="answer dev questions with each checkpoint of a train-student run; keep the best")
    _question_arguments(pick)
    pick.add_argument("--run", type=Path, required=True, help="the folder train-student --lora --keep-adapter wrote")
    pick.add_argument("--adopt", type=Path, default=None, help="copy the most accurate adapter to this folder")
    pick.set_defaults(func=run_pick_checkpoint)


def _question_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=DATASETS, required=True)
    parser.add_argument("--questions", type=Path, default=None,
                        help="question file (MedQA/StrategyQA/OpenBookQA/demo format; default: demo questions)")
    parser.add_argument("--holdout", type=float, default=None,
                        help="evaluate on the held-out part of a seeded split of --questions "
                             "(a count or a fraction; use the same value as build-examples)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out split (default %(default)s)")
    parser.add_argument("--limit", type=positive_int, default=None, help="first N questions only")
    parser.add_argument("--kb", type=Path, nargs="*", default=None,
                        help="knowledge base: an index folder, or passages files "
                        "(default: the demo passages plus demo/knowledge/)")
    parser.add_argument("--k", type=positive_int, default=RetrievalConfig.top_k, help="passages given to the student")
    parser.add_argument("--candidates", type=positive_int, default=RetrievalConfig.candidates, help="BM25 candidates to rerank")
    parser.add_argument("--query", choices=("question+options", "question"), default=RetrievalConfig.query,
                        help="BM25 query (default %(default)s; 'question' is the paper's setting)")
    parser.add_argument("--batch-size", type=positive_int, default=16,
                        help="questions per greedy generate call (left-padded batches; default %(default)s)")
    parser.add_argument("--samples", type=positive_int, default=1, help="self-consistency samples (1 = greedy only)")
    parser.add_argument("--temperature", type=positive_float, default=GenerationConfig.temperature,
                        help="sampling temperature of the self-consistency samples (default %(default)s)")
    parser.add_argument("--max-new-tokens", type=positive_int, default=GenerationConfig.max_new_tokens)
    parser.add_argument("--oracle-rationales", type=Path, default=None,
                        help="teacher rationales of the test questions (JSONL from import-rationales/teach)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where transformers runs the student (default %(default)s: cuda when a GPU is visible)")
    parser.add_argument("--engine", default="transformers", choices=("transformers", "ctranslate2"),
                        help="decoding engine (default %(default)s, the reference; ctranslate2: int8, ~2.5x faster "
                             "on a CPU, answers may differ slightly). KARD_ENGINE is not read: a run's engine is "
                             "the one its command names")
    parser.add_argument("--out", type=Path, required=True, help="folder for per-question results and summaries")
    parser.add_argument("--no-progress", action="store_true")


def load_test_questions(args: argparse.Namespace) -> list[Question]:
    return _limited(args, _split_test_questions(args))


def _limited(args: argparse.Namespace, questions: list[Question]) -> list[Question]:
    """The test questions evaluated: the first --limit of `questions` (all of them without --limit)."""
    if args.limit is not None:
        questions = questions[: args.limit]
    if not questions:
        raise DataError("no questions left to evaluate", fix="check --questions, --holdout and --limit")
    return questions


def _split_test_questions(args: argparse.Namespace) -> list[Question]:
    """The test questions before --limit: --questions (or the demo ones), the held-out part with --holdout."""
    from kard.datasets import load_demo_questions, load_questions
    from kard.distill import split_questions

    questions = load_questions(args.questions) if args.questions else load_demo_questions()
    if args.holdout is not None:
        holdout = int(args.holdout) if args.holdout >= 1 and args.holdout.is_integer() else args.holdout  # 1.5: refused
        questions = split_questions(questions, holdout, seed=args.seed)[1]
    return questions


def oracle_rationales(args: argparse.Namespace, every: list[Question]) -> dict[str, str]:
    """Teacher rationales for the oracle row: a file if given, else those shipped with the test questions.

    All of them (`every`: the test questions before --limit): the evaluation records a digest of this mapping,
    so a run resumed with a larger --limit keeps its results while a changed rationale file starts it over.
    """
    if args.oracle_rationales:
        found = import_jsonl(args.oracle_rationales, flag="--oracle-rationales")
        return {qid: group[0].text for qid, group in found.items() if group}
    return {q.id: q.rationale for q in every if q.rationale}


def teacher_answers(path: Path) -> dict[str, str | None]:
    """Question id -> the answer of its first recorded teacher rationale."""
    return {qid: group[0].answer for qid, group in import_jsonl(path, flag="--teacher-rationales").items() if group}


def _configs(args: argparse.Namespace) -> tuple[RetrievalConfig, GenerationConfig]:
    retrieval = RetrievalConfig(top_k=args.k, candidates=args.candidates, query=args.query)
    generation = GenerationConfig(max_new_tokens=args.max_new_tokens, samples=args.samples, temperature=args.temperature)
    return retrieval, generation


def _make_results_folder(args: argparse.Namespace) -> None:
    make_out_folder(args.out, holds="the results", example=f"runs/{args.dataset}-eval")


def _reranker(path: str | None):
    if path is None:
        return None
    from kard.reranker.encoder import load_reranker

    return load_reranker(path)


def run_evaluate(args: argparse.Namespace) -> int:
    from kard.knowledge import KnowledgeBase
    from kard.config import DEFAULT_STUDENT
    from kard.evaluation import evaluate, get_condition
    from kard.student import Student

    condition = get_condition(args.condition or ("kard-reranker" if args.reranker else "kard-bm25"))
    _make_results_folder(args)
    retrieval, generation = _configs(args)
    every = _split_test_questions(args)
    questions = _limited(args, every)
    knowledge = None if condition.knowledge == "none" else KnowledgeBase.open(*(args.kb or []), config=retrieval)
    oracle = oracle_rationales(args, every) if condition.knowledge == "oracle" else None
    student = Student.load(args.student or DEFAULT_STUDENT, dtype=args.dtype, engine=args.engine,
                           device=args.device)
    decoding = "greedy" if args.samples <= 1 else f"sc-{args.samples}"
    result = evaluate(student, questions, condition, out=args.out / f"{condition.name}-{decoding}.jsonl",
                      knowledge=knowledge, reranker=_reranker(args.reranker), retrieval=retrieval,
                      oracle=oracle,
                      generation=generation, progress=not args.no_progress, batch_size=args.batch_size)
    chosen = chosen_share(result.records)
    summary = {"dataset": args.dataset, "condition": condition.name, "decoding": decoding,
               "student": student.name, "questions": result.score.total, "accuracy": result.score.accuracy,
               "unanswered": result.score.unanswered_share, "answer_chosen_by_letter_probability": chosen}
    (args.out / f"{condition.name}-{decoding}.summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{args.dataset} {condition.name} ({decoding}): accuracy {100 * result.score.accuracy:.1f}% "
          f"on {result.score.total} questions, unanswered {100 * result.score.unanswered_share:.1f}%, "
          f"answer chosen by letter probability (no readable 'Answer: X') {100 * chosen:.1f}%")
    return 0


def run_paper(args: argparse.Namespace) -> int:
    from kard.knowledge import KnowledgeBase
    from kard.paper import markdown_table, plot_rows, run_rows, teacher_row, write_summary
    from kard.student import Student

    _make_results_folder(args)
    retrieval, generation = _configs(args)
    every = _split_test_questions(args)
    questions = _limited(args, every)
    loaded: dict[str, Student] = {}
    students = {}
    for condition, path in (("finetune", args.finetune_student), ("reasoning", args.reasoning_student),
                            ("kard", args.kard_student)):
        if path:
            loaded.setdefault(path, Student.load(path, dtype=args.dtype, engine=args.engine, device=args.device))
            names = ("kard-bm25", "kard-reranker", "oracle") if condition == "kard" else (condition,)
            students.update({name: loaded[path] for name in names})
    if not students:
        raise ConfigError("no student given. Fix: pass --finetune-student, --reasoning-student and/or --kard-student")
    rows = run_rows(students, questions, args.out, knowledge=KnowledgeBase.open(*(args.kb or []), config=retrieval),
                    reranker=_reranker(args.reranker), retrieval=retrieval, generation=generation,
                    samples=args.samples, oracle=oracle_rationales(args, every), progress=not args.no_progress,
                    batch_size=args.batch_size)
    teachers = [teacher_row(questions, teacher_answers(path), label=f"recorded ({path.stem})")
                for path in args.teacher_rationales]
    rows = teachers + rows
    dataset = {"obqa": "openbookqa"}.get(args.dataset, args.dataset)
    table = markdown_table(rows, dataset)
    (args.out / "results.md").write_text(table, encoding="utf-8")
    write_summary(rows, args.out / "summary.json")
    chance = 1 / len(questions[0].options) if questions else None
    plot_rows(rows, dataset, args.out / "results.png", chance=chance)
    print(table)
    return 0


def run_pick_checkpoint(args: argparse.Namespace) -> int:
    """Each checkpoint answers the same dev slice (kard-bm25, greedy, resumable under --out); the best is kept."""
    from kard.checkpoints import CHOICE_FILE, CheckpointScore, adopt_checkpoint, best_checkpoint, run_candidates
    from kard.checkpoints import run_base, write_choice
    from kard.evaluation import evaluate
    from kard.knowledge import KnowledgeBase
    from kard.student import Student

    candidates = run_candidates(args.run)  # a wrong folder fails before anything loads
    _make_results_folder(args)
    retrieval, generation = _configs(args)
    questions = load_test_questions(args)
    knowledge = KnowledgeBase.open(*(args.kb or []), config=retrieval)
    scores, base = [], run_base(args.run)  # every candidate on the base chain the final adapter names
    for name, path in candidates:
        student = Student.load(path, dtype=args.dtype, engine=args.engine, device=args.device, base=base)
        result = evaluate(student, questions, "kard-bm25", out=args.out / f"{name}.jsonl", knowledge=knowledge,
                          retrieval=retrieval, generation=generation, progress=not args.no_progress,
                          batch_size=args.batch_size)
        scores.append(CheckpointScore(name, path, result.score))
        print(f"{name}: {100 * result.score.accuracy:.1f}% ({result.score.correct}/{result.score.total})")
        del student
    chosen = best_checkpoint(scores)
    write_choice(scores, chosen, args.out / CHOICE_FILE)
    print(f"chosen: {chosen.name} ({100 * chosen.score.accuracy:.1f}% on {chosen.score.total} {args.dataset} questions)")
    if args.adopt:
        print(f"adapter copied to {adopt_checkpoint(chosen, args.run, args.adopt)}")
    return 0

"""Closing the loop: `python -m kard export`, `python -m kard retrain`, `python -m kard rounds`.

    python -m kard export --out runs/corrections        # the app's store (--db as `restore`'s), or --db FILE
    python -m kard retrain --root runs/loop --student runs/kard/student --examples train.jsonl \\
        --db annotations/annotations.db --max-steps 20 [--background]
    python -m kard retrain --root runs/loop --status        # or --cancel
    python -m kard rounds --root runs/loop --questions dev.jsonl --kb kb/ --limit 40
"""

from __future__ import annotations

import argparse
import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from kard.cli.arguments import make_out_folder, non_negative_int, positive_float, positive_int, refuse_file_as_folder
from kard.config import GenerationConfig, RetrievalConfig, StudentTrainingConfig, default_annotations_db
from kard.errors import ConfigError
from kard.loop.retrain import APP_TRAINING, RetrainSpec


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_export(subparsers)
    _register_retrain(subparsers)
    _register_rounds(subparsers)


# ---------------------------------------------------------------- export


def _register_export(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="curated corrections -> KARD training examples (JSONL + Hugging Face dataset)",
        description="Write the latest revision of every accepted correction as KARD training examples. "
                    "Excluded: notes starting with 'reject', unedited rationales rated <= --low-rating, answers "
                    "that differ from the gold one, rationales concluding another letter (docs/closing_the_loop.md).")
    parser.add_argument("--db", type=Path, default=None,
                        help="annotation database (default: the app's, KARD_ANNOTATIONS_DB or /data/kard-studio/"
                             "annotations.db on a Space with storage, else annotations/annotations.db)")
    parser.add_argument("--out", type=Path, required=True, help="folder for corrections.jsonl, hf_dataset/, export.json")
    parser.add_argument("--knowledge-from", choices=("store", "kb"), default="store",
                        help="store: the passages the curator saw; kb: BM25 with the corrected rationale (needs --kb)")
    parser.add_argument("--kb", type=Path, default=None, help="knowledge base folder or passages file (with --knowledge-from kb)")
    parser.add_argument("--top-n", type=positive_int, default=None,
                        help="passages per example with --knowledge-from kb")
    parser.add_argument("--low-rating", type=int, default=2, help="unedited items rated <= this are dropped (default 2)")
    parser.add_argument("--min-rating", type=int, default=None, help="drop every item rated below this, edited or not")
    parser.add_argument("--keep-gold-mismatch", action="store_true", help="keep corrections whose answer differs from gold")
    parser.add_argument("--keep-inconsistent", action="store_true", help="keep rationales concluding another letter")
    parser.add_argument("--no-hf", action="store_true", help="skip the Hugging Face dataset folder")
    parser.set_defaults(func=run_export)


_EXPORT_DB_FIX = ("pass --db the database file to export; without it, export reads the app's store: "
                  "KARD_ANNOTATIONS_DB if set, else the persistent storage's kard-studio/annotations.db, "
                  "else annotations/annotations.db")


def run_export(args: argparse.Namespace) -> int:
    from kard.annotations import AnnotationStore
    from kard.loop.export import ExportConfig, export_corrections
    from kard.knowledge import KnowledgeBase

    check_knowledge_flags(args)
    config = ExportConfig(low_rating=args.low_rating, min_rating=args.min_rating,
                          keep_gold_mismatch=args.keep_gold_mismatch, keep_inconsistent=args.keep_inconsistent,
                          knowledge_from=args.knowledge_from, top_n=args.top_n)
    # before the --out folder is made: a wrong --db leaves nothing behind
    store = AnnotationStore.existing(args.db) if args.db else AnnotationStore.existing(default_annotations_db(),
                                                                                     fix=_EXPORT_DB_FIX)
    refuse_file_as_folder(args.out, holds="the export", example="runs/corrections")
    knowledge = KnowledgeBase.open(args.kb) if args.kb and args.knowledge_from == "kb" else None
    with removed_if_failed(args.out):  # a failed export (a corrupt store, nothing to export) leaves no empty folder
        make_out_folder(args.out, holds="the export", example="runs/corrections")
        result = export_corrections(store, args.out, config, knowledge=knowledge, hf_dataset=not args.no_hf)
    print(f"exported {len(result.examples)} correction(s) to {result.examples_path}"
          + (f" and {result.dataset_path}" if result.dataset_path else ""))
    for excluded in result.excluded:
        print(f"  excluded {excluded.item_id} (revision {excluded.revision}): {excluded.reason}")
    return 0


def check_knowledge_flags(args: argparse.Namespace) -> None:
    """ConfigError where --kb or --top-n is given without --knowledge-from kb (they would be ignored), or
    --knowledge-from kb without --kb."""
    if args.knowledge_from == "kb":
        if args.kb is None:
            raise ConfigError("--knowledge-from kb needs a knowledge base. Fix: pass --kb DIR (a folder built by "
                              "python -m kard index, or a passages file), or use --knowledge-from store")
        return
    given = [flag for flag, value in (("--kb", args.kb), ("--top-n", args.top_n)) if value is not None]
    if given:
        named = " and ".join(given)
        verb = "applies" if len(given) == 1 else "apply"
        raise ConfigError(f"{named} only {verb} with --knowledge-from kb (the default, store, exports the passages the "
                          f"curator saw). Fix: add --knowledge-from kb, or leave out {named}")


@contextmanager
def removed_if_failed(folder: Path) -> Iterator[None]:
    """Remove the folders made inside the block (`folder` and any missing parents) when it fails and leaves them
    empty; a folder that was there before, or holds files, stays."""
    made = []
    for path in (folder, *folder.parents):
        if path.exists():
            break
        made.append(path)
    try:
        yield
    except BaseException:
        for path in made:  # the deepest first
            try:
                path.rmdir()
            except OSError:  # not empty, or already gone
                break
        raise


# ---------------------------------------------------------------- retrain


_LORA_HELP = ("--lora (default, as the app's Retrain tab): a LoRA adapter on the current student, saved unmerged, "
              f"learning rate {APP_TRAINING['learning_rate']}: about 20 MB on disk a round for the shipped student. "
              "--no-lora: full fine-tuning at StudentTrainingConfig's defaults, every weight saved: the whole model, "
              "over 500 MB a round. --set merge_lora=true saves a LoRA round merged (as big as --no-lora's)")


def _register_retrain(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "retrain", help="fine-tune the current student on teacher examples + corrections into a new round",
        description="Each run writes ROOT/round-NNN (student, manifest) and points ROOT/current.json at it. "
                    "A failed or cancelled run changes nothing. One job per ROOT at a time. By default it trains "
                    "as the app's Retrain tab does: a LoRA adapter of about 20 MB a round; --no-lora fine-tunes "
                    "the whole model (over 500 MB a round).")
    parser.add_argument("--root", "--out", dest="root", type=Path, help="rounds folder (e.g. runs/loop)")
    parser.add_argument("--student", default=None, help="student to start from before the first round "
                        "(default: the shipped KARD student demo/student); later rounds start from the current round")
    parser.add_argument("--from-base", action="store_true", help="start from --student even when a round exists")
    parser.add_argument("--examples", type=Path, default=None, help="teacher/reference examples JSONL (build-examples)")
    parser.add_argument("--db", type=Path, default=None, help="annotation database to export corrections from")
    parser.add_argument("--corrections", type=Path, default=None, help="an export folder or corrections JSONL")
    parser.add_argument("--correction-weight", type=positive_int, default=3, help="times each correction is seen per epoch")
    parser.add_argument("--knowledge-from", choices=("store", "kb"), default="store")
    parser.add_argument("--kb", type=Path, default=None, help="knowledge base (reranker, --knowledge-from kb)")
    parser.add_argument("--reranker", action="store_true", help="also retrain the reranker (needs --db and --kb)")
    parser.add_argument("--reranker-from", default=None, help="reranker to continue from before any round has one")
    parser.add_argument("--reranker-steps", type=positive_int, default=50)
    parser.add_argument("--max-steps", type=non_negative_int, default=None, help="optimizer steps (StudentTrainingConfig.max_steps)")
    parser.add_argument("--epochs", type=positive_float, default=None)
    parser.add_argument("--learning-rate", type=positive_float, default=None,
                        help=f"default: {APP_TRAINING['learning_rate']} with LoRA (as the app), "
                             f"{StudentTrainingConfig.learning_rate} with --no-lora")
    parser.add_argument("--batch-size", type=positive_int, default=None)
    parser.add_argument("--grad-accum", type=positive_int, default=None)
    parser.add_argument("--max-length", type=non_negative_int, default=None)
    parser.add_argument("--lora", action=argparse.BooleanOptionalAction, default=None, help=_LORA_HELP)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any other StudentTrainingConfig field (JSON value), repeatable")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch threads of the job (default %(default)s)")
    parser.add_argument("--note", default="", help="a note kept in the round's manifest")
    parser.add_argument("--background", action="store_true", help="start the job detached and return at once")
    parser.add_argument("--status", action="store_true", help="show the jobs of ROOT and the current round")
    parser.add_argument("--cancel", action="store_true", help="cancel the running job of ROOT (or --job)")
    parser.add_argument("--job", "--job-id", dest="job_id", default=None, help="a job id (with --status/--cancel)")
    parser.add_argument("--spec", type=Path, default=None, help=argparse.SUPPRESS)  # the background process
    parser.add_argument("--lock-fd", type=int, default=None, help=argparse.SUPPRESS)  # its lock, from its starter
    parser.set_defaults(func=run_retrain)


_TRAINING_FLAGS = ("max_steps", "epochs", "learning_rate", "batch_size", "grad_accum", "max_length", "lora")


def spec_from_args(args: argparse.Namespace):
    from kard.config import DEFAULT_STUDENT
    from kard.loop.retrain import (check_corrections, check_examples_file, check_reranker_inputs, retrain_training,
                                   start_round, student_training_config)

    if args.root is None:
        raise ConfigError("no rounds folder. Fix: pass --root DIR (e.g. runs/loop)")
    training = {name: getattr(args, name) for name in _TRAINING_FLAGS if getattr(args, name) is not None}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r} is not KEY=VALUE. Fix: e.g. --set warmup_ratio=0.1")
        try:
            training[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            training[key.strip()] = value
    training = retrain_training(training)  # the app's LoRA settings unless --no-lora (or --set lora=false)
    if not (args.examples or args.db or args.corrections):
        raise ConfigError("nothing to train on. Fix: pass --examples and/or --db / --corrections")
    student_training_config(training)  # a wrong --set key or type is named now, not when the job trains
    if args.db is not None:  # before a job starts (or a background one is left to fail)
        from kard.annotations import AnnotationStore

        AnnotationStore.existing(args.db)
    text = lambda p: str(p) if p is not None else None  # noqa: E731
    spec = RetrainSpec(root=str(args.root), student=args.student or DEFAULT_STUDENT, examples=text(args.examples),
                       db=text(args.db), corrections=text(args.corrections), correction_weight=args.correction_weight,
                       from_base=args.from_base, knowledge_from=args.knowledge_from, kb=text(args.kb),
                       training=training, reranker=args.reranker, reranker_from=args.reranker_from,
                       reranker_steps=args.reranker_steps, threads=args.threads, note=args.note)
    check_reranker_inputs(spec)  # a missing --kb or --db is named now, not after the student has trained
    check_examples_file(spec.examples)
    make_out_folder(args.root, flag="--root", holds="the rounds", example="runs/loop")
    # a damaged current.json, a serving round that is gone or cannot load, a store without a usable correction:
    # named now, not after the job has started
    start_round(spec)
    check_corrections(spec)
    return spec


def run_retrain(args: argparse.Namespace) -> int:
    from kard.loop import jobs

    if args.spec is not None:  # the detached job process started by jobs.start_background
        spec = RetrainSpec.from_json(args.spec.read_text(encoding="utf-8"))
        jobs.prepare_process(spec)
        return _run_here(spec, args.job_id, lock_fd=args.lock_fd)
    if args.status:
        return _print_status(args.root, args.job_id)
    if args.cancel:
        _require_root(args)
        status = jobs.cancel(args.root, args.job_id)
        print(f"asked job {status.job_id} to stop (state: {status.state})")
        return 0
    spec = spec_from_args(args)
    if args.background:
        job = jobs.start_background(spec)
        print(f"started job {job.job_id} (pid {job.pid}); log {job.log_path}\n"
              f"progress: python -m kard retrain --root {spec.root} --status --job {job.job_id}")
        return 0
    previous = jobs.cancel_on_sigterm()  # `retrain --cancel` stops a foreground job as a background one
    try:
        return _run_here(spec)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_here(spec: RetrainSpec, job_id: str | None = None, *, lock_fd: int | None = None) -> int:
    """Run the job in this process; Ctrl+C cancels it (nothing changes) with one line and exit status 130."""
    from kard.loop import jobs

    job_id = job_id or jobs.new_job_id()
    try:
        return _finish(jobs.run_job(spec, job_id, on_update=_printer(), lock_fd=lock_fd))
    except KeyboardInterrupt:
        print(f"job {job_id} cancelled: interrupted (Ctrl+C); nothing changed, the current student keeps serving",
              flush=True)
        return 130


def _require_root(args: argparse.Namespace) -> None:
    if args.root is None:
        raise ConfigError("no rounds folder. Fix: pass --root DIR")


def _printer():
    last = {"line": ""}

    def show(status) -> None:
        message = status.message.removeprefix(f"{status.phase}: ")  # a step says its phase already
        line = f"[{status.state}] {status.phase}: {message}" + (
            f" (loss {status.loss:.4f})" if status.loss is not None else "")
        if line != last["line"]:
            print(line, flush=True)
            last["line"] = line

    return show


def _finish(status) -> int:
    if status.state == "succeeded":
        print(f"round {status.round} is now current")
        return 0
    if status.state == "cancelled":  # as Ctrl+C's line (_run_here)
        print(f"job {status.job_id} cancelled: {status.error}; nothing changed, the current student keeps serving")
        return 3
    print(f"job {status.job_id} {status.state}: {status.error}")
    return 1


def _print_status(root: Path | None, job_id: str | None) -> int:
    from kard.errors import KardError
    from kard.loop.jobs import list_jobs, read_status, stale_work
    from kard.loop.retrain import start_round
    from kard.loop.round_folder import current, list_rounds

    if root is None:
        raise ConfigError("no rounds folder. Fix: pass --root DIR")
    pointer = current(root)
    print(f"rounds: {', '.join(list_rounds(root)) or 'none'}; current: {pointer['round'] if pointer else 'none'}")
    try:
        start_round(RetrainSpec(root=str(root)))
    except KardError as error:  # the serving round is gone or cannot load: the app answers with another student
        print(f"warning: {error}")
    for work, job in stale_work(root):
        print(f"stale work folder {work} (job {job} is not running): the next retrain removes it")
    jobs = [read_status(root, job_id)] if job_id else list_jobs(root)
    for status in jobs:
        print(json.dumps(asdict(status)))
    return 0


# ---------------------------------------------------------------- rounds


def _register_rounds(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rounds", help="held-out accuracy of every round, fixed/broken questions, a table and a plot",
        description="Evaluates round-000 (the starting student) and each round on the same held-out questions "
                    "(cached in ROOT/eval/), leaving out every question used as a correction.")
    parser.add_argument("--root", "--out", dest="root", type=Path, required=True, help="rounds folder")
    parser.add_argument("--questions", type=Path, default=None, help="held-out question file (default: demo questions)")
    parser.add_argument("--holdout", type=float, default=None,
                        help="use the held-out part of a seeded split of --questions (as build-examples)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=positive_int, default=None, help="first N held-out questions")
    parser.add_argument("--kb", type=Path, nargs="*", default=None,
                        help="knowledge base (default: the demo passages plus demo/knowledge/)")
    parser.add_argument("--condition", default="kard-bm25", help="evaluation condition (default %(default)s)")
    parser.add_argument("--use-rerankers", action="store_true", help="each round with its reranker (kard-reranker)")
    parser.add_argument("--k", type=positive_int, default=RetrievalConfig.top_k)
    parser.add_argument("--max-new-tokens", type=positive_int, default=GenerationConfig.max_new_tokens)
    parser.add_argument("--report", type=Path, default=None, help="report folder (default ROOT/report)")
    parser.add_argument("--control", type=Path, default=None,
                        help="a control rounds folder (the same training without the corrections): each round is "
                             "compared with the control round of the same number")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run_rounds)


def run_rounds(args: argparse.Namespace) -> int:
    from kard.cli.evaluate import load_test_questions
    from kard.errors import DataError
    from kard.knowledge import KnowledgeBase
    from kard.loop.rounds import evaluate_rounds, held_out, round_report, write_report

    retrieval = RetrievalConfig(top_k=args.k)
    generation = GenerationConfig(max_new_tokens=args.max_new_tokens)
    limit, args.limit = args.limit, None
    questions, dropped = held_out(load_test_questions(args), args.root)
    if dropped:
        print(f"left out {len(dropped)} question(s) used as corrections")
    questions = questions[:limit] if limit else questions
    if not questions:
        raise DataError("no held-out question left", fix="pass questions that were not corrected, or raise --limit")
    knowledge = None if args.condition in ("finetune", "reasoning") else KnowledgeBase.open(*(args.kb or []), config=retrieval)
    failed: dict[str, str] = {}
    control_failed: dict[str, str] = {}

    def answers_of(root: Path, broken: dict[str, str]):
        return evaluate_rounds(root, questions, knowledge=knowledge, condition=args.condition, retrieval=retrieval,
                               generation=generation, use_rerankers=args.use_rerankers, progress=not args.no_progress,
                               failed=broken)

    control = answers_of(args.control, control_failed) if args.control else None
    report = round_report(answers_of(args.root, failed), {q.id: q.answer for q in questions if q.answer}, control,
                          failed=failed, control_failed=control_failed)
    files = write_report(report, args.report or args.root / "report")
    print(files["markdown"].read_text(encoding="utf-8"))
    print(f"plot: {files['plot']}")
    return 0

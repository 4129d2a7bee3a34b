"""`python -m kard build-examples | train-student | train-reranker | eval-reranker`: the KARD training commands.

Questions come from any file `kard.datasets.load_questions` reads; rationales from `--rationales`
(a FLAN StrategyQA .tsv, or JSONL written by `teach`/`import-rationales`), `--facts` (the dataset's
gold facts), or else the questions' own reference rationales. `--holdout N --seed S` drops the same
held-out questions that `python -m kard evaluate --holdout N --seed S` tests on.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict, fields, replace
from pathlib import Path

from kard.cli.arguments import (make_out_folder, non_negative_int, positive_float, positive_int,
                                refuse_file_as_folder)
from kard.config import BASE_STUDENT, DEFAULT_RERANKER_BACKBONE, RerankerTrainingConfig, StudentTrainingConfig
from kard.distill import PASSAGE_SOURCES
from kard.errors import ConfigError, DataError
from kard.records import Question

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    build = subparsers.add_parser("build-examples", help="KARD training examples (JSONL) from questions and rationales")
    _data_arguments(build)
    build.add_argument("--method", choices=("kard", "reasoning", "finetune"), default="kard",
                       help="kard: with rationale-retrieved passages; reasoning: without; finetune: question -> answer")
    build.add_argument("--top-n", type=positive_int, default=None, help="passages per example (default: 1, 10 for OpenBookQA)")
    build.add_argument("--on-empty", choices=("error", "skip", "keep"), default="error",
                       help="when the knowledge base finds nothing for a rationale (default %(default)s)")
    build.add_argument("--skip-unanswered", action="store_true", help="drop rationales without an answer")
    build.add_argument("--shuffle-options", action="store_true",
                       help="permute each example's options (seeded by --seed), so no letter prior is learned")
    build.add_argument("--conclude", action="store_true",
                       help="end each rationale with 'So the answer is <gold option text>.'")
    build.add_argument("--passages-from", choices=PASSAGE_SOURCES, default="rationale",
                       help="kard passages: BM25 with the rationale (the paper, default), with the question (as at "
                       "test time), or mixed (the question's with the rationale's best among them, shuffled)")
    build.add_argument("--out", type=Path, required=True, help="JSONL file to write")
    build.set_defaults(func=run_build_examples)

    student = subparsers.add_parser("train-student", help="fine-tune the student on KARD examples (Trainer)")
    student.add_argument("--examples", type=Path, required=True, help="JSONL from build-examples (or export)")
    student.add_argument("--eval-examples", type=Path, default=None, help="JSONL scored for loss after training")
    student.add_argument("--student", default=BASE_STUDENT,
                         help="model to train: folder, adapter folder, hub id or package:NAME (default %(default)s, untrained)")
    student.add_argument("--out", type=Path, required=True, help="folder for checkpoints and the trained student")
    student.add_argument("--limit", type=positive_int, default=None, help="first N examples only")
    student.add_argument("--steps", type=non_negative_int, default=StudentTrainingConfig.max_steps, help="optimizer steps (0 = epochs)")
    student.add_argument("--epochs", type=positive_float, default=StudentTrainingConfig.epochs)
    student.add_argument("--batch-size", type=positive_int, default=StudentTrainingConfig.batch_size)
    student.add_argument("--grad-accum", type=positive_int, default=StudentTrainingConfig.grad_accum)
    student.add_argument("--lr", type=positive_float, default=StudentTrainingConfig.learning_rate)
    student.add_argument("--max-length", type=non_negative_int, default=0, help="tokens per example (0 = fitted to the data)")
    student.add_argument("--max-length-cap", type=positive_int, default=StudentTrainingConfig.max_length_cap)
    student.add_argument("--lora", action="store_true", help="train LoRA adapters (merged on save)")
    student.add_argument("--lora-r", type=positive_int, default=StudentTrainingConfig.lora_r)
    student.add_argument("--keep-adapter", action="store_true",
                         help="with --lora: save the adapter alone (a few MB, loads onto --student) instead of merged weights")
    student.add_argument("--gradient-checkpointing", action="store_true")
    student.add_argument("--save-steps", type=non_negative_int, default=StudentTrainingConfig.save_steps)
    student.add_argument("--keep-checkpoints", type=positive_int, default=StudentTrainingConfig.keep_checkpoints,
                         help="newest checkpoints kept (default %(default)s); more to choose from with pick-checkpoint")
    student.add_argument("--seed", type=int, default=StudentTrainingConfig.seed)
    student.add_argument("--bf16", action="store_true",
                         help="bf16 mixed precision (GPUs, and CPUs with AMX or AVX512-BF16, where it is ~2x faster; "
                              "a CPU without them would emulate it, so it trains in float32 with a warning)")
    student.add_argument("--resume", action="store_true",
                         help="continue from the latest checkpoint in --out (started with the same settings)")
    student.add_argument("--overwrite", action="store_true",
                         help="start afresh in an --out that holds a run (its checkpoints and trained student are "
                              "deleted)")
    student.add_argument("--no-memory-check", action="store_true", help="train even if the estimate says it won't fit")
    student.add_argument("--no-progress", action="store_true")
    student.set_defaults(func=run_train_student)

    reranker = subparsers.add_parser("train-reranker", help="train the KARD reranker (KL to BM25-given-rationale)")
    _data_arguments(reranker)
    reranker.add_argument("--backbone", default=DEFAULT_RERANKER_BACKBONE,
                          help="BERT-like encoder folder, hub id, or package:NAME (default %(default)s)")
    reranker.add_argument("--kind", choices=("cross-encoder", "maxsim", "dense"), default="cross-encoder",
                          help="dense: the shipped kind, a LoRA-trained question encoder against cached passage "
                               "vectors blended with BM25 (kard/reranker/dense.py); default %(default)s")
    reranker.add_argument("--out", type=Path, required=True, help="folder for the trained reranker")
    for name in ("steps", "batch_size", "candidates", "per_source", "max_length", "lora_r", "save_steps"):
        reranker.add_argument(f"--{name.replace('_', '-')}", default=None,
                              type=non_negative_int if name == "save_steps" else positive_int,
                              help=f"default: the kind's ({getattr(RerankerTrainingConfig, name)} for a cross-encoder)")
    for name in ("learning_rate", "head_learning_rate", "tau1_start", "tau1_end", "tau2_start", "tau2_end"):
        reranker.add_argument(f"--{name.replace('_', '-')}", type=positive_float, default=None,
                              help=f"default: the kind's ({getattr(RerankerTrainingConfig, name)} for a cross-encoder)")
    reranker.add_argument("--lora", action="store_true", help="LoRA r16 on query/value, as the paper")
    reranker.add_argument("--no-progress", action="store_true")
    reranker.set_defaults(func=run_train_reranker)

    evaluate = subparsers.add_parser("eval-reranker", help="top-1/top-3 of the reranker vs BM25 on held-back questions")
    _data_arguments(evaluate, eval_split=True)
    evaluate.add_argument("--reranker", required=True, help="trained reranker folder")
    evaluate.add_argument("--eval-candidates", type=positive_int, default=100,
                          help="BM25-by-question candidates (default 100)")
    evaluate.add_argument("--json", type=Path, default=None, help="also write the result (and per-question ranks) here")
    evaluate.add_argument("--kl", action="store_true",
                          help="also the held-out KARD KL (tau1 = tau2 = 1) of the reranker and its untrained backbone")
    evaluate.add_argument("--no-progress", action="store_true")
    evaluate.set_defaults(func=run_eval_reranker)


def _data_arguments(parser: argparse.ArgumentParser, eval_split: bool = False) -> None:
    parser.add_argument("--questions", type=Path, required=True, help="questions file (MedQA, StrategyQA, OBQA, demo)")
    parser.add_argument("--dataset", default=None, help="dataset name when the file layout does not say")
    parser.add_argument("--rationales", type=Path, default=None,
                        help="FLAN StrategyQA .tsv, or rationales JSONL (default: the questions' own rationales)")
    parser.add_argument("--facts", action="store_true", help="use the dataset's gold facts as the rationales")
    parser.add_argument("--kb", type=Path, required=True, help="index folder (python -m kard index) or passages file")
    parser.add_argument("--holdout", type=float, default=None,
                        help="hold out N questions (or a fraction), as `evaluate --holdout`; "
                        + ("evaluate ON them" if eval_split else "train on the rest"))
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out split (default %(default)s)")
    parser.add_argument("--limit", type=positive_int, default=None, help="first N questions (after the split) only")


# ---------------------------------------------------------------- loading


def load_training_data(args: argparse.Namespace, *, held_out: bool = False):
    """(questions, rationales by question id) after the split and --limit."""
    from kard.datasets import load_questions
    from kard.distill import reference_rationales, split_questions

    questions = load_questions(args.questions, args.dataset)
    rationales = _rationales(args, questions)
    if args.holdout:
        holdout = int(args.holdout) if args.holdout >= 1 else args.holdout
        train, test = split_questions(questions, holdout, seed=args.seed)
        questions = test if held_out else train
    elif held_out:
        raise ConfigError("evaluating the reranker needs questions it did not train on. "
                          "Fix: pass the --holdout and --seed used for train-reranker")
    if args.limit is not None:
        questions = questions[: args.limit]
    if args.facts:
        _refuse_facts_without_facts(questions)
    if rationales is None:
        rationales = reference_rationales(questions, fix=NO_RATIONALES_FIX, facts_fix=f"pass --facts to use the gold "
                                          f"facts, or {RATIONALES_FLAG_FIX}")
    return questions, rationales


RATIONALES_FLAG_FIX = "pass --rationales (FLAN's StrategyQA .tsv, or a JSONL from import-rationales or teach)"
NO_RATIONALES_FIX = (
    f"{RATIONALES_FLAG_FIX}: `python -m kard import-rationales --kind medqa-gpt4` (or medqa-gpt35, medqa-recorded, "
    "strategyqa-flan) imports recorded ones, `python -m kard teach` writes them")


def _refuse_facts_without_facts(questions: list[Question]) -> None:
    """--facts on questions that carry no gold facts (MedQA's) would leave no rationale: say so."""
    from kard.distill import has_facts

    if questions and not any(has_facts(question) for question in questions):
        raise DataError(f"--facts uses the questions' gold facts, but none of the {len(questions)} question(s) "
                        "carries gold facts (StrategyQA's and OpenBookQA's do)", fix=NO_RATIONALES_FIX)


def _rationales(args: argparse.Namespace, questions):
    from kard.teacher import recorded as importers

    if args.facts:
        return importers.rationales_from_facts(questions, "human (dataset facts)")
    if args.rationales is None:
        return None
    if args.rationales.suffix.lower() == ".tsv":
        return importers.import_flan_strategyqa(args.rationales, questions)
    return importers.import_jsonl(args.rationales, flag="--rationales")


def rationale_pairs(questions, rationales) -> list:
    """(question, rationale text) for each usable rationale (right answer), as the student data uses."""
    from kard.distill import select_rationales

    return [(q, r.text) for q, r in select_rationales(questions, rationales, skip_unanswered=True)]


# ---------------------------------------------------------------- commands


def run_build_examples(args: argparse.Namespace) -> int:
    from kard.knowledge import KnowledgeBase
    from kard.distill import build_examples, write_examples

    questions, rationales = load_training_data(args)
    knowledge = KnowledgeBase.open(args.kb, show_progress=True) if args.method == "kard" else None
    examples = build_examples(questions, rationales, knowledge, method=args.method, top_n=args.top_n,
                              on_empty_retrieval=args.on_empty, skip_unanswered=args.skip_unanswered,
                              shuffle=args.shuffle_options, conclude=args.conclude, seed=args.seed,
                              passages_from=args.passages_from)
    write_examples(examples, args.out)
    print(f"wrote {len(examples)} {args.method} examples from {len(questions)} questions to {args.out}")
    return 0


def run_train_student(args: argparse.Namespace) -> int:
    from kard.distill import read_examples
    from kard.training import describe_budget, train_student

    examples = read_examples(args.examples)
    if args.limit is not None:
        examples = examples[: args.limit]
    eval_examples = read_examples(args.eval_examples) if args.eval_examples else None
    config = _student_config(args)
    settings = _check_student_out(args, examples, config)
    if args.resume and _says_run_finished(args.out):
        return 0
    student = _load_student(args.student, args.out)
    _start_student_out(args, settings)
    print(describe_budget(config, len(examples)), flush=True)
    result = train_student(student, examples, args.out, config, eval_examples=eval_examples,
                           resume=args.resume, progress=not args.no_progress)
    losses = [row["loss"] for row in result.losses]
    print(f"trained {result.steps} steps on {result.examples} examples (max_length {result.max_length}); "
          f"loss {losses[0]:.4f} -> {losses[-1]:.4f}; {result.seconds_per_step:.2f} s/step; "
          f"peak RSS {result.peak_rss_mb:.0f} MB; saved to {result.output_dir}" if losses else
          f"no steps were run; saved to {result.output_dir}")
    return 0


def _student_config(args: argparse.Namespace) -> StudentTrainingConfig:
    if args.keep_adapter and not args.lora:
        raise ConfigError("--keep-adapter saves a LoRA adapter. Fix: add --lora")
    return StudentTrainingConfig(
        learning_rate=args.lr, epochs=args.epochs, max_steps=args.steps, batch_size=args.batch_size,
        grad_accum=args.grad_accum, max_length=args.max_length, max_length_cap=args.max_length_cap, lora=args.lora,
        lora_r=args.lora_r, lora_alpha=2 * args.lora_r, gradient_checkpointing=args.gradient_checkpointing,
        save_steps=args.save_steps, keep_checkpoints=args.keep_checkpoints, seed=args.seed,
        check_memory=not args.no_memory_check, bf16=args.bf16,
        merge_lora=not args.keep_adapter, base_student=args.student if args.keep_adapter else "",
    )


def _check_student_out(args: argparse.Namespace, examples: list, config: StudentTrainingConfig) -> dict:
    """The run's settings, once --out is known to take this run (nothing is written yet)."""
    from kard.training_folder import check_new_run, check_resumed_settings, run_settings

    refuse_file_as_folder(args.out, holds="the trained student", example="runs/student")
    check_new_run(args.out, resume=args.resume, overwrite=args.overwrite)
    settings = run_settings(args.student, examples, config)
    if args.resume:
        check_resumed_settings(args.out, settings)
    return settings


def _says_run_finished(out: Path) -> bool:
    """Print that the run in `out` is complete when it has finished (a resume would train one step more)."""
    from kard.training_folder import finished_steps

    steps = finished_steps(out)
    if steps is None:
        return False
    counted = f"{steps} step{'' if steps == 1 else 's'}"
    print(f"the run in {out} is already complete ({counted}): nothing to train, --out left as it was. "
          "To train it again, pass --overwrite instead of --resume")
    return True


def _load_student(student: str, out: Path):
    """The student to train, loaded before --out is touched: a bad --student leaves nothing behind."""
    from kard.student import Student

    if Path(student).expanduser().resolve() == out.expanduser().resolve():
        raise ConfigError(f"--student {student} is the --out folder: training would replace the student it starts "
                          "from. Fix: choose another --out")
    return Student.load(student)


def _start_student_out(args: argparse.Namespace, settings: dict) -> None:
    """--out made ready for the run: emptied with --overwrite, created, the run's settings recorded."""
    from kard.training_folder import clear_run, record_settings

    if args.overwrite:
        clear_run(args.out)
    make_out_folder(args.out, holds="the trained student", example="runs/student")
    record_settings(args.out, settings)


def _given(args: argparse.Namespace, config_type: type) -> dict:
    """The training flags given on the command line that `config_type` has (the rest keep its defaults)."""
    names = {f.name for f in fields(config_type)}
    return {k: v for k, v in vars(args).items() if k in names and k != "seed" and v is not None}


def run_train_reranker(args: argparse.Namespace) -> int:
    from kard.knowledge import KnowledgeBase
    from kard.reranker.encoder import Reranker
    from kard.reranker.training import build_reranker_items, train_reranker

    if args.kind == "dense":
        return _train_dense(args)
    questions, rationales = load_training_data(args)
    knowledge = KnowledgeBase.open(args.kb, show_progress=True)
    config = replace(RerankerTrainingConfig(), **_given(args, RerankerTrainingConfig))
    items = build_reranker_items(rationale_pairs(questions, rationales), knowledge, candidates=config.candidates)
    reranker = Reranker.load(args.backbone, kind=args.kind, max_length=config.max_length)
    result = train_reranker(reranker, items, knowledge, args.out, config, progress=not args.no_progress)
    split = {"questions": str(args.questions), "holdout": args.holdout, "seed": args.seed, "items": len(items)}
    (Path(args.out) / "training_data.json").write_text(json.dumps(split, indent=2), encoding="utf-8")
    print(f"trained the {args.kind} reranker {result.steps} steps on {len(items)} (question, rationale) pairs; "
          f"loss {result.losses[0]:.4f} -> {result.losses[-1]:.4f}; {result.seconds_per_step:.2f} s/step; "
          f"peak RSS {result.peak_rss_mb:.0f} MB; saved to {result.output_dir}")
    return 0


def _train_dense(args: argparse.Namespace) -> int:
    from kard.knowledge import KnowledgeBase
    from kard.reranker.dense import DenseReranker, DenseRerankerConfig, dense_items, train_dense_reranker

    questions, rationales = load_training_data(args)
    knowledge = KnowledgeBase.open(args.kb, show_progress=True)
    config = replace(DenseRerankerConfig(seed=args.seed), **_given(args, DenseRerankerConfig))
    items = dense_items(rationale_pairs(questions, rationales), knowledge)
    reranker = DenseReranker.fresh(args.backbone)
    losses = train_dense_reranker(reranker, items, knowledge, config, progress=not args.no_progress)
    reranker.save(args.out, with_vectors=True)
    print(f"trained the dense reranker {config.steps} steps on {len(items)} (question, rationale) pairs; loss "
          f"{losses[0]:.4f} -> {sum(losses[-20:]) / len(losses[-20:]):.4f} (mean of the last 20); saved to {args.out}")
    return 0


def run_eval_reranker(args: argparse.Namespace) -> int:
    from kard.knowledge import KnowledgeBase
    from kard.reranker.encoder import load_reranker
    from kard.reranker.evaluation import evaluate_reranker

    questions, rationales = load_training_data(args, held_out=True)
    knowledge = KnowledgeBase.open(args.kb, show_progress=True)
    reranker = load_reranker(args.reranker)
    pairs = rationale_pairs(questions, rationales)
    result = evaluate_reranker(reranker, knowledge, pairs, candidates=args.eval_candidates,
                               progress=not args.no_progress)
    print(f"{result.questions} held-back questions, {result.candidates} BM25 candidates each, "
          f"{result.seconds_per_question:.2f} s/question\n{result.table()}")
    kl = _held_out_kl(reranker, knowledge, pairs) if args.kl and getattr(reranker, "kind", "") != "dense" else None
    if kl:
        print(f"held-out KL at tau1 = tau2 = 1 over {kl['items']} pairs: trained {kl['trained']:.4f}, "
              f"untrained backbone {kl['untrained']:.4f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"reranker": str(args.reranker), **asdict(result), "kl": kl}, indent=2),
                             encoding="utf-8")
    return 0


def _held_out_kl(reranker, knowledge, pairs) -> dict:
    """The training loss on held-back pairs at the final temperatures, trained vs untrained backbone."""
    from kard.reranker.encoder import Reranker
    from kard.reranker.training import build_reranker_items, mean_kl

    items = build_reranker_items(pairs, knowledge)
    backbone = Reranker.load(reranker.backbone, kind=reranker.kind, max_length=reranker.max_length)
    return {"items": len(items), "trained": mean_kl(reranker, items, knowledge),
            "untrained": mean_kl(backbone, items, knowledge), "backbone": reranker.backbone}

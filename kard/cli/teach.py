"""`python -m kard teach` (rationales from an LLM teacher) and `python -m kard import-rationales`.

    python -m kard teach --dataset medqa --path data/medqa --split dev --model gpt-4o-mini --n 4 --out r.jsonl
    python -m kard import-rationales --kind medqa-gpt4 --path dev_teacher_cot_gpt-4-32k.jsonl \\
        --questions data/medqa/dev.jsonl --out gpt4.jsonl

`teach` exits 0 when every question got its samples; 1 when some questions were given up on (what was
obtained is still written and cached) or no rationale was kept (--out is then left as it was); 2 on an error
that stopped the job (bad key, no server); 130 on Ctrl+C (at once: requests in flight are dropped, what came
is cached, --out is left as it was).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from kard.cli.arguments import (check_out_file, non_negative_float, non_negative_int, positive_float,
                                positive_int)
from kard.config import DEMO_QUESTIONS, TeacherConfig
from kard.errors import ConfigError, DataError
from kard.records import Question

if TYPE_CHECKING:  # pragma: no cover
    from kard.teacher.client import TeachReport

log = logging.getLogger(__name__)

DATASETS = ("medqa", "strategyqa", "obqa", "demo")
_SPLIT_FILES = {  # file names tried, in order, when --path is a folder
    "medqa": ("{split}.jsonl", "{split}_subset_instruction_format.jsonl"),
    "strategyqa": ("{split}.json",),
    "obqa": ("{split}_complete.jsonl", "{split}.jsonl"),
    "demo": ("questions.jsonl",),
}
IMPORT_KINDS = (
    "medqa-gpt35",
    "medqa-gpt4",
    "medqa-recorded",
    "strategyqa-flan",
    "strategyqa-facts",
    "obqa-facts",
    "jsonl",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = TeacherConfig()
    teach = subparsers.add_parser(
        "teach",
        help="rationales from an OpenAI-compatible teacher (cached, gold-filtered, resumable)",
        description="Ask a teacher LLM to explain each question's gold answer (n samples), keep the samples "
        "whose answer matches the gold one, write them as JSONL. Endpoint and key: OPENAI_BASE_URL, "
        "OPENAI_API_KEY (never printed or stored).",
    )
    teach.add_argument("--dataset", required=True, choices=DATASETS)
    teach.add_argument(
        "--path", type=Path, help="questions file, or a folder holding <split> files (demo: optional)"
    )
    teach.add_argument(
        "--split", default="dev", help="which file when --path is a folder (default %(default)s)"
    )
    teach.add_argument("--model", help="teacher model (default: $KARD_TEACHER_MODEL or %s)" % defaults.model)
    teach.add_argument(
        "--base-url",
        help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (default: $OPENAI_BASE_URL)",
    )
    teach.add_argument(
        "--n",
        type=positive_int,
        default=defaults.samples,
        help="samples per question (paper: 10; default %(default)s)",
    )
    teach.add_argument("--temperature", type=non_negative_float, default=defaults.temperature)
    teach.add_argument("--max-tokens", type=positive_int, default=defaults.max_tokens)
    teach.add_argument(
        "--timeout", type=positive_float, default=defaults.timeout_s, help="seconds per request (default %(default)s)"
    )
    teach.add_argument(
        "--max-retries", type=non_negative_int, default=defaults.max_retries, help="retries on 429/5xx/timeouts"
    )
    teach.add_argument(
        "--concurrency", type=positive_int, default=defaults.concurrency, help="questions in flight at once"
    )
    teach.add_argument("--limit", type=positive_int, help="only the first N questions")
    teach.add_argument("--cache", type=Path, help="SQLite cache file (default: under $KARD_CACHE)")
    teach.add_argument("--price-in", type=non_negative_float, help="USD per million prompt tokens, for the cost line")
    teach.add_argument("--price-out", type=non_negative_float, help="USD per million completion tokens")
    teach.add_argument(
        "--all-samples", action="store_true", help="write every sample, not only gold-matching ones"
    )
    teach.add_argument("--out", required=True, type=Path, help="JSONL of rationales to write")
    teach.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    teach.set_defaults(func=run_teach)

    imports = subparsers.add_parser(
        "import-rationales",
        help="import recorded rationales (MedQA GPT runs, FLAN StrategyQA, gold facts, any JSONL)",
        description="Convert recorded rationales into the project's JSONL (question_id, text, answer, source, sample_index).",
    )
    imports.add_argument("--kind", required=True, choices=IMPORT_KINDS)
    imports.add_argument("--path", required=True, type=Path, help="the recorded file")
    imports.add_argument(
        "--questions",
        type=Path,
        help="questions file (MedQA dev.jsonl, StrategyQA train.json): "
        "needed for strategyqa-flan; gives accuracy and --only-correct for the others",
    )
    imports.add_argument("--source", help="source label for jsonl records that have none")
    imports.add_argument(
        "--only-correct", action="store_true", help="keep only rationales whose answer matches the gold"
    )
    imports.add_argument("--out", required=True, type=Path)
    imports.set_defaults(func=run_import)


# ----------------------------------------------------------------------------- teach


def question_file(dataset: str, path: Path | None, split: str) -> Path:
    """The questions file: --path itself, or the <split> file inside the --path folder."""
    if path is None:
        if dataset == "demo":
            return DEMO_QUESTIONS
        raise ConfigError(
            f"--path is required for --dataset {dataset}. Fix: pass the questions file or its folder"
        )
    if not path.is_dir():
        return path
    names = [pattern.format(split=split) for pattern in _SPLIT_FILES[dataset]]
    for name in names:
        if (path / name).is_file():
            return path / name
    raise ConfigError(
        f"no {' or '.join(names)} in {path}. Fix: pass --split matching a file there, or the file itself as --path"
    )


def load_dataset_questions(dataset: str, path: Path) -> list[Question]:
    from kard import datasets

    loaders: dict[str, Callable[[Path], list[Question]]] = {
        "medqa": lambda p: datasets.load_questions(p, dataset="medqa"),
        "strategyqa": datasets.load_strategyqa,
        "obqa": datasets.load_openbookqa,
        "demo": datasets.load_demo_questions,
    }
    return loaders[dataset](path)


def teacher_config(args: argparse.Namespace) -> TeacherConfig:
    overrides: dict[str, object] = dict(
        samples=args.n,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        timeout_s=args.timeout,
        max_retries=args.max_retries,
        concurrency=args.concurrency,
        price_in_per_mtok=args.price_in,
        price_out_per_mtok=args.price_out,
        model=args.model or None,
        base_url=args.base_url or None,
    )
    return TeacherConfig.from_env(**overrides)


def run_teach(args: argparse.Namespace) -> int:
    from kard.teacher.recorded import write_rationales
    from kard.teacher.client import DEFAULT_CACHE, Teacher

    if not getattr(args, "verbose", False):
        logging.getLogger("httpx2").setLevel(
            logging.WARNING
        )  # one INFO line per request drowns the progress bar
    source = question_file(args.dataset, args.path, args.split)
    questions = load_dataset_questions(args.dataset, source)
    if args.limit is not None:
        questions = questions[: args.limit]
    gold = [q for q in questions if q.answer is not None]
    if not gold:
        raise DataError(f"none of the {len(questions)} questions has a gold answer", path=source,
                        fix="teach explains gold answers: pass questions that have them")
    if len(gold) < len(questions):
        log.warning("skipping %d questions without a gold answer", len(questions) - len(gold))
    config = teacher_config(args)
    check_out_file(args.out)  # before any request is paid for
    with Teacher(config, cache_path=args.cache or DEFAULT_CACHE) as teacher:
        print(
            f"teaching {len(gold)} questions from {source} with {config.model} at {teacher.where}, "
            f"{config.samples} samples each, cache {teacher.cache.path}"
        )
        report = _teach_with_progress(teacher, gold, config.samples, not args.no_progress, out=args.out)
    print(report.summary())
    for qid, message in report.errors[:5]:
        print(f"gave up on {qid}: {message}")
    if len(report.errors) > 5:
        print(f"... and {len(report.errors) - 5} more questions")
    if report.stopped:  # a partial result must not replace an earlier complete --out
        raise ConfigError(
            f"the job stopped early, so {args.out} was left as it was (what was fetched is cached: rerunning "
            f"the same command resumes and writes it): {report.stopped}"
        )
    rationales = report.kept + (report.rejected if args.all_samples else ())
    if rationales:  # an empty result never replaces an earlier --out
        print(f"wrote {write_rationales(rationales, args.out)} rationales to {args.out}")
    if not report.kept:
        print(f"error: {nothing_kept(report, args.out, wrote=bool(rationales))}", file=sys.stderr)
        return 1
    return 1 if report.errors else 0


def nothing_kept(report: "TeachReport", out: Path, *, wrote: bool) -> str:
    """Why a job kept no rationale, and the fix for each cause, most frequent first."""
    from kard.teacher.client import CUT_OFF, ERROR, FILTERED, NO_ANSWER, WRONG_ANSWER

    causes = {
        ERROR: ("the teacher failed on every question (see 'gave up on' above)",
                "check the server; for rate limits or timeouts raise --timeout or --max-retries, or lower "
                "--concurrency, then rerun (the cache keeps what came)"),
        NO_ANSWER: ("the teacher's replies have no 'Answer: X' line naming one option",
                    "check the model or the prompt (a model that follows instructions; a --max-tokens large "
                    "enough for the reply to reach its answer)"),
        CUT_OFF: (f"the teacher's replies were cut off at --max-tokens {report.max_tokens}, before they finished",
                  "raise --max-tokens (a reasoning model can spend them all thinking before it writes a word)"),
        FILTERED: ("the provider's content filter stopped the teacher's replies (asking again will not help)",
                   "use another --model, or leave those questions out"),
        WRONG_ANSWER: ("no reply's answer matches the gold answer",
                       "check that --dataset matches the questions file, and the model (--all-samples writes "
                       "the dropped replies, to read them)"),
    }
    found = sorted((reason for reason, count in report.dropped.items() if count and reason in causes),
                   key=lambda reason: -report.dropped[reason])
    problems = "; ".join(causes[reason][0] for reason in found) or "no question was taught"
    fixes = "; ".join(causes[reason][1] for reason in found) or "pass questions with gold answers"
    written = "only the dropped replies were written to it (--all-samples)" if wrote else "it was left as it was"
    return f"no rationale was kept for {out}, so {written}: {problems}. Fix: {fixes}"


def _teach_with_progress(teacher, questions: list[Question], n: int, show: bool, *, out: Path):
    """The job's report; Ctrl+C stops it at once with a KeyboardInterrupt saying what was kept (see __main__)."""
    from tqdm.auto import tqdm

    done = 0

    def count(outcome: object) -> None:
        nonlocal done
        done += 1
        bar.update(1)

    with tqdm(total=len(questions), unit="question", disable=not show) as bar:
        try:
            return teacher.teach(questions, n, progress=count)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(_interrupted(done, len(questions), teacher.cache.path, out)) from None


def _interrupted(done: int, total: int, cache: Path | None, out: Path) -> str:
    kept = f"what the teacher sent is cached in {cache}, so" if cache else "the cache was in memory;"
    return (f"{done} of {total} questions were done; {kept} rerunning the same command resumes. "
            f"{out} was left as it was")


# ----------------------------------------------------------------------------- import-rationales


def run_import(args: argparse.Namespace) -> int:
    from kard.teacher import recorded as importers
    from kard.teacher.client import keep_correct

    check_out_file(args.out)
    questions = _import_questions(args)
    kind = args.kind
    if kind.startswith("medqa-"):
        imported = importers.import_medqa_recorded(args.path, questions, split=_medqa_split(questions))
        _check_recorded_model(kind, imported)
    elif kind == "strategyqa-flan":
        if questions is None:
            raise ConfigError(
                "--kind strategyqa-flan needs --questions (StrategyQA train.json) to match question texts to qids"
            )
        imported = importers.import_flan_strategyqa(args.path, questions)
    elif kind == "strategyqa-facts":
        imported = importers.import_strategyqa_facts(args.path)
    elif kind == "obqa-facts":
        imported = importers.import_openbookqa_facts(args.path)
    else:
        imported = importers.import_jsonl(args.path, source=args.source, questions=questions)
    found = imported.rationales()
    print(
        f"read {imported.rows} records from {args.path}: {len(found)} rationales for {len(imported)} questions, "
        f"{sum(r.answer is not None for r in found)} with an answer"
    )
    if imported.skipped:
        print(
            "skipped: " + ", ".join(f"{count} {reason}" for reason, count in imported.skip_counts().items())
        )
        for skipped in imported.skipped[:5]:
            print(f"  line {skipped.line}: {skipped.reason}")
    if questions is not None:
        result = importers.teacher_score(imported, questions)
        print(
            f"answers matching the gold: {result.correct} of {result.total} questions ({100 * result.accuracy:.2f} %)"
        )
    if args.only_correct:
        if questions is None and not kind.endswith("facts"):
            raise ConfigError("--only-correct needs --questions to know the gold answers")
        by_id = {q.id: q for q in questions} if questions is not None else None
        found = [
            r
            for r in found
            if by_id is None or (r.question_id in by_id and keep_correct([r], by_id[r.question_id]))
        ]
    written = importers.write_rationales(found, args.out)
    print(f"wrote {written} rationales to {args.out}")
    return 0


def _import_questions(args: argparse.Namespace) -> list[Question] | None:
    if args.questions is None:
        return None
    from kard.datasets import load_questions

    return load_questions(args.questions)


def _medqa_split(questions: list[Question] | None) -> str:
    """The split in MedQA ids ("medqa-<split>-<n>"): taken from the given questions, else "dev"."""
    if questions:
        parts = questions[0].id.split("-")
        if len(parts) >= 3 and parts[0] == "medqa":
            return "-".join(parts[1:-1])
    return "dev"


def _check_recorded_model(kind: str, imported) -> None:
    expected = {"medqa-gpt35": "gpt-35", "medqa-gpt4": "gpt-4"}.get(kind)
    sources = {r.source for r in imported.rationales()}
    if expected and not any(source.startswith(expected) for source in sources):
        raise ConfigError(
            f"--kind {kind} but the file holds {', '.join(sorted(sources))}. Fix: use --kind medqa-recorded or the other file"
        )

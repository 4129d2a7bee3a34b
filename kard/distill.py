"""The KARD data recipe: (question, rationale) pairs -> student training examples.

- "kard": BM25 over the knowledge base with the *rationale* as the query gives the passages (top-1 for
  4-option medical and yes/no questions, top-10 for science, as the paper); the student reads the
  question, its options and those passages, and learns to write the rationale and `Answer: X`.
  `passages_from` changes where the passages come from: "question" (BM25 with the question, as the
  student will see them at test time without a reranker) or "mixed" (the question's passages with the
  rationale's best one among them, in a random order).
- "reasoning": the same target without passages (the reasoning-distillation baseline).
- "finetune": question -> answer letter only (the fine-tuning baseline), one example per question.

Training data on disk is JSONL, one `StudentExample` a line (`write_examples` / `read_examples`).
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from kard.config import RetrievalConfig
from kard.errors import ConfigError, DataError
from kard.prompts import answer_only_input, strip_answer, strip_answer_line, student_input, student_target
from kard.records import Question, Rationale

if TYPE_CHECKING:  # pragma: no cover
    from kard.knowledge import KnowledgeBase

log = logging.getLogger(__name__)

METHODS = ("kard", "reasoning", "finetune")
_LETTER_REFERENCE = re.compile(r"\(([A-E])\)|\b(?i:option|choice|answer)\s+\(?[A-E]\b|^[A-E][\.\)]\s", re.MULTILINE)
DEFAULT_TOP_N = {"medqa": 1, "strategyqa": 1, "openbookqa": 10, "obqa": 10}
"""Passages per training example, as the paper: top-1 for MedQA and StrategyQA, top-10 for OpenBookQA."""
ON_EMPTY = ("error", "skip", "keep")
PASSAGE_SOURCES = ("rationale", "question", "mixed")
"""Where a kard example's passages come from: BM25 with the rationale (the paper), with the question, or both."""
CONCLUSION = "So the answer is"
"""How a concluded rationale states the gold option's text (`concluded`)."""


class EmptyRetrievalError(DataError):
    """The knowledge base returned no passage for a rationale."""


@dataclass(frozen=True)
class StudentExample:
    """One training example: the student reads `input` and learns to write `target`.

    `source` names who wrote the rationale (a teacher model, "human", a curator);
    `passage_ids` are the knowledge-base passages inside `input`.
    """

    id: str
    input: str
    target: str
    source: str
    passage_ids: tuple[str, ...] = ()
    question_id: str = ""
    method: str = "kard"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["passage_ids"] = list(self.passage_ids)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> "StudentExample":
        known = {f.name for f in fields(cls)}
        missing = [name for name in ("id", "input", "target", "source") if name not in data]
        if missing:
            raise ValueError(f"missing field(s) {', '.join(missing)}")
        values = {k: v for k, v in data.items() if k in known}
        values["passage_ids"] = tuple(str(p) for p in values.get("passage_ids") or ())
        for name in ("id", "input", "target", "source", "question_id", "method"):
            if name in values and not isinstance(values[name], str):
                raise ValueError(f"field {name!r} must be a string")
        return cls(**values)  # type: ignore[arg-type]


def default_top_n(dataset: str) -> int:
    """The paper's passages per example for a dataset name (1 when unknown)."""
    return DEFAULT_TOP_N.get(dataset.lower(), 1)


NO_REFERENCE_FIX = (
    "import recorded rationales with `python -m kard import-rationales` (--kind medqa-gpt4, medqa-gpt35 or "
    "medqa-recorded: recorded MedQA teacher runs; strategyqa-flan: FLAN's human StrategyQA rationales; see "
    "kard.teacher.recorded), or write them with `python -m kard teach`")
"""How to get rationales for questions that carry none, nor gold facts."""

FACTS_FIX = ("use their gold facts as rationales (`python -m kard import-rationales --kind strategyqa-facts` or "
             f"obqa-facts), or {NO_REFERENCE_FIX}")
"""How to get rationales for questions that carry gold facts but no rationale."""


def rationales_from_questions(questions: Iterable[Question]) -> dict[str, list[Rationale]]:
    """Reference rationales stored on the questions themselves (`Question.rationale`: the demo questions have
    them), as teacher rationales. The datasets' own files carry none (StrategyQA's and OpenBookQA's have gold
    facts): import those with kard.teacher.recorded (`python -m kard import-rationales`)."""
    found: dict[str, list[Rationale]] = {}
    for question in questions:
        if question.rationale and question.rationale.strip():
            source = question.rationale_source or "reference"
            found[question.id] = [Rationale(question.id, question.rationale, question.answer, source)]
    return found


def by_question(rationales: Iterable[Rationale]) -> dict[str, list[Rationale]]:
    """Rationales grouped by their question id, as `build_examples` and `select_rationales` take them."""
    grouped: dict[str, list[Rationale]] = {}
    for rationale in rationales:
        grouped.setdefault(rationale.question_id, []).append(rationale)
    return grouped


def reference_rationales(questions: Sequence[Question], fix: str = NO_REFERENCE_FIX,
                         facts_fix: str = FACTS_FIX) -> dict[str, list[Rationale]]:
    """`rationales_from_questions`, or a DataError when none of the questions carries one: with `facts_fix`
    when some carry gold facts (StrategyQA, OpenBookQA), else with `fix` (MedQA: neither)."""
    found = rationales_from_questions(questions)
    if questions and not found:
        with_facts = sum(1 for question in questions if has_facts(question))
        if with_facts:
            raise DataError(f"none of the {len(questions)} question(s) carries a reference rationale ({with_facts} "
                            "carry gold facts, not a rationale)", fix=facts_fix)
        raise DataError(f"none of the {len(questions)} question(s) carries a reference rationale, nor gold facts",
                        fix=fix)
    return found


def has_facts(question: Question) -> bool:
    """Whether the question carries gold supporting facts (StrategyQA's `facts`, OpenBookQA's `fact1`)."""
    return any(fact.strip() for fact in question.facts)


def select_rationales(
    questions: Sequence[Question],
    rationales: Mapping[str, Sequence[Rationale]],
    *,
    skip_unanswered: bool = False,
) -> list[tuple[Question, Rationale]]:
    """Pair each question with its usable rationales: non-empty, with an answer, and the gold one.

    A rationale without an answer raises (pass skip_unanswered=True to drop them); rationales whose
    answer differs from the gold answer are dropped, as the paper keeps only correct ones.
    """
    pairs: list[tuple[Question, Rationale]] = []
    unanswered: list[str] = []
    wrong = empty = no_gold = 0
    for question in questions:
        if question.answer is None:
            no_gold += 1
            continue
        seen: set[str] = set()
        for rationale in rationales.get(question.id, ()):
            text = strip_answer_line(rationale.text)
            if not text:
                empty += 1
            elif rationale.answer is None:
                unanswered.append(f"{question.id}#{rationale.sample_index}")
            elif rationale.answer.upper() != question.answer.upper():
                wrong += 1
            elif text not in seen:
                seen.add(text)
                pairs.append((question, rationale))
    if unanswered and not skip_unanswered:
        shown = ", ".join(unanswered[:5]) + (" ..." if len(unanswered) > 5 else "")
        raise DataError(
            f"{len(unanswered)} rationale(s) have no answer ({shown})",
            fix="give every rationale its answer letter (kard.prompts.parse_answer reads it from the text), "
            "or drop them with skip_unanswered=True / --skip-unanswered",
        )
    log.info("rationales kept: %d (dropped: %d wrong answer, %d empty, %d unanswered, %d questions without gold)",
             len(pairs), wrong, empty, len(unanswered), no_gold)
    return pairs


def build_examples(
    questions: Sequence[Question],
    rationales: Mapping[str, Sequence[Rationale]] | None = None,
    knowledge: "KnowledgeBase | None" = None,
    *,
    method: str = "kard",
    top_n: int | None = None,
    on_empty_retrieval: str = "error",
    skip_unanswered: bool = False,
    shuffle: bool = False,
    conclude: bool = False,
    seed: int = 0,
    passages_from: str = "rationale",
) -> list[StudentExample]:
    """Student examples by the KARD recipe (see the module docstring for the three methods).

    `rationales` maps question id -> rationales; None uses the questions' own reference rationales (a
    DataError when they have none: `reference_rationales`).
    `top_n` defaults to the paper's number for the questions' dataset. `on_empty_retrieval`: "error"
    (default), "skip" the example, or "keep" it with no passages, when the knowledge base finds nothing.
    `shuffle` permutes each example's options (seeded by `seed` and the example id), so the student
    cannot learn a prior over letters; yes/no questions keep their order. `conclude` ends each
    rationale by naming the gold option's text ("So the answer is ..."), so the letter that follows
    is read off the reasoning. `passages_from`: see PASSAGE_SOURCES (the mixed order is seeded by `seed`).
    """
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}. Fix: use one of {', '.join(METHODS)}")
    if on_empty_retrieval not in ON_EMPTY:
        raise ConfigError(f"on_empty_retrieval must be one of {', '.join(ON_EMPTY)}, got {on_empty_retrieval!r}")
    if passages_from not in PASSAGE_SOURCES:
        raise ConfigError(f"unknown passage source {passages_from!r}. Fix: use one of {', '.join(PASSAGE_SOURCES)}")
    if not questions:
        raise DataError("no questions to build examples from", fix="check the questions file and any --limit")
    if rationales is not None and not isinstance(rationales, Mapping):
        raise DataError(f"rationales must map question id -> rationales, got a {type(rationales).__name__}",
                        fix="group them by question: kard.distill.by_question(rationales)")
    if method == "finetune":
        examples = _finetune_examples(questions, shuffle, seed)
    else:
        pairs = select_rationales(
            questions, rationales if rationales is not None else reference_rationales(questions),
            skip_unanswered=skip_unanswered,
        )
        pairs = [_prepared(q, r, shuffle, conclude, seed) for q, r in pairs]
        if method == "reasoning":
            examples = [_example(q, r, [], "reasoning") for q, r in pairs]
        else:
            examples = _kard_examples(pairs, knowledge, top_n, on_empty_retrieval, passages_from, seed)
    if not examples:
        raise DataError(
            f"no training examples are left after filtering {len(questions)} question(s) (method {method})",
            fix="check that the rationales' question ids match the questions, that their answers match the "
            "gold answers, and that the questions have gold answers",
        )
    return examples


def _kard_examples(pairs, knowledge, top_n, on_empty_retrieval, passages_from="rationale", seed=0
                   ) -> list[StudentExample]:
    if knowledge is None:
        raise ConfigError("the KARD method needs a knowledge base. Fix: pass knowledge= (or --kb), or use method 'reasoning'")
    if not pairs:
        return []
    n = top_n if top_n is not None else default_top_n(pairs[0][0].dataset)
    if n < 1:
        raise ConfigError(f"top_n must be at least 1, got {n}. Fix: pass --top-n 1 or more")
    results = _retrieved(pairs, knowledge, n, passages_from, seed)
    examples: list[StudentExample] = []
    empty: list[str] = []
    for (question, rationale), hits in zip(pairs, results):
        if not hits:
            empty.append(question.id)
            if on_empty_retrieval != "keep":
                continue
        examples.append(_example(question, rationale, [h.passage for h in hits], "kard"))
    if empty and on_empty_retrieval == "error":
        shown = ", ".join(empty[:5]) + (" ..." if len(empty) > 5 else "")
        raise EmptyRetrievalError(
            f"the knowledge base returned no passage for {len(empty)} rationale(s) (questions {shown})",
            fix="use a knowledge base that covers these questions' topics, or pass on_empty_retrieval='skip' "
            "(--on-empty skip) to drop them or 'keep' to train them without knowledge",
        )
    if empty:
        log.warning("%d rationale(s) retrieved no passage (%s)", len(empty), on_empty_retrieval)
    return examples


def _retrieved(pairs, knowledge: "KnowledgeBase", n: int, passages_from: str, seed: int) -> list[list]:
    """Each pair's top-n hits from the source `passages_from` names (PASSAGE_SOURCES)."""
    from kard.pipeline import retrieval_query

    rationale_queries = [strip_answer_line(r.text) for _, r in pairs]
    if passages_from == "rationale":
        return knowledge.search_many(rationale_queries, n)
    by_question = knowledge.search_many([retrieval_query(q, RetrievalConfig().query) for q, _ in pairs], n)
    if passages_from == "question":
        return by_question
    by_rationale = knowledge.search_many(rationale_queries, 1)
    return [mixed_hits(question_hits, rationale_hits, random.Random(f"{seed}:{q.id}#{r.sample_index}"))
            for (q, r), question_hits, rationale_hits in zip(pairs, by_question, by_rationale)]


def mixed_hits(question_hits: Sequence, rationale_hits: Sequence, rng: random.Random) -> list:
    """The question's hits with the rationale's best one in place of the last (unless already among them),
    shuffled: the passage the reasoning needs is there, but not always first, beside the question's."""
    hits = list(question_hits)
    if rationale_hits and all(hit.passage.id != rationale_hits[0].passage.id for hit in hits):
        hits = [*hits[:-1], rationale_hits[0]]
    rng.shuffle(hits)
    return hits


def _example(question: Question, rationale: Rationale, passages, method: str) -> StudentExample:
    answer = rationale.answer.upper() if rationale.answer else question.answer
    return StudentExample(
        id=f"{question.id}#{rationale.sample_index}",
        input=student_input(question, passages, with_knowledge=method == "kard"),
        target=student_target(rationale.text, answer, question.options),
        source=rationale.source,
        passage_ids=tuple(p.id for p in passages),
        question_id=question.id,
        method=method,
    )


def _finetune_examples(questions: Sequence[Question], shuffle: bool = False, seed: int = 0) -> list[StudentExample]:
    """Question -> ` X` (the letter; the prompt ends with `Answer:`)."""
    examples = []
    for question in questions:
        if question.answer is None:
            continue
        if shuffle:
            question = shuffled_options(question, random.Random(f"{seed}:{question.id}"))
        examples.append(StudentExample(id=question.id, input=answer_only_input(question), target=f" {question.answer}",
                                       source="gold", question_id=question.id, method="finetune"))
    return examples


def _prepared(question: Question, rationale: Rationale, shuffle: bool, conclude: bool, seed: int
              ) -> tuple[Question, Rationale]:
    """The pair with the question's options shuffled and/or the rationale concluded by the answer's text."""
    answer = (rationale.answer or question.answer or "").upper()
    question = replace(question, answer=answer)
    if shuffle and not mentions_letters(rationale.text):
        question = shuffled_options(question, random.Random(f"{seed}:{question.id}#{rationale.sample_index}"))
    text = concluded(rationale.text, question) if conclude else rationale.text
    return question, replace(rationale, text=text, answer=question.answer)


def shuffled_options(question: Question, rng: random.Random) -> Question:
    """The question with its option texts in a random order under the same letters, the answer remapped.

    Yes/no questions keep their order (A = yes, B = no is part of the prompt's meaning).
    """
    if is_yes_no(question.options):
        return question
    letters = list(question.options)
    texts = [question.options[letter] for letter in letters]
    rng.shuffle(texts)
    options = dict(zip(letters, texts))
    answer = question.answer
    if answer in question.options:
        answer = letters[texts.index(question.options[answer])]
    return replace(question, options=options, answer=answer)


def concluded(rationale: str, question: Question) -> str:
    """The rationale ending with "So the answer is <gold option text>." (unless it already names it last); a
    trailing "Answer: <gold>" gives way to it (`strip_answer`)."""
    text = strip_answer(rationale, question.answer, question.options)
    answer_text = question.options.get(question.answer or "", "").strip()
    if not answer_text:
        return text
    ending = f"{CONCLUSION} {answer_text.rstrip('.')}."
    if text.lower().endswith(ending.lower()):
        return text
    return f"{text} {ending}" if text else ending


def is_yes_no(options: Mapping[str, str]) -> bool:
    return [text.strip().lower() for text in options.values()] == ["yes", "no"]


def mentions_letters(text: str) -> bool:
    """True when a rationale refers to options by letter ("(B)", "option C"), which a shuffle would break."""
    return bool(_LETTER_REFERENCE.search(text))


def split_questions(questions: Sequence[Question], holdout: int | float, seed: int = 0) -> tuple[list[Question], list[Question]]:
    """(train, held_out): a seeded shuffle of the ids; `holdout` is a count or a fraction in (0, 1)."""
    if not math.isfinite(holdout) or holdout < 0 or (isinstance(holdout, float) and holdout >= 1
                                                     and holdout != int(holdout)):
        raise ConfigError(f"holdout must be a count >= 0 or a fraction in (0, 1), got {holdout}. Fix: pass "
                          "--holdout as a number of questions (e.g. 20) or a fraction of them (e.g. 0.2)")
    count = int(round(holdout * len(questions))) if 0 < holdout < 1 else int(holdout)
    if count >= len(questions):
        raise ConfigError(f"holdout {count} leaves no training question out of {len(questions)}. Fix: hold out fewer")
    order = sorted(questions, key=lambda q: q.id)
    random.Random(seed).shuffle(order)
    held = {q.id for q in order[:count]}
    return [q for q in questions if q.id not in held], [q for q in questions if q.id in held]


def write_examples(examples: Iterable[StudentExample], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for example in examples:
            out.write(json.dumps(example.to_dict(), ensure_ascii=False) + "\n")
    return path


def read_examples(path: str | Path) -> list[StudentExample]:
    """Examples from a JSONL file written by `write_examples` (or by the annotation export)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("training examples file not found", path=path,
                        fix="build it with `python -m kard build-examples ... --out FILE`")
    examples: list[StudentExample] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                examples.append(StudentExample.from_dict(json.loads(line)))
            except (ValueError, TypeError, AttributeError) as error:
                raise DataError(f"not a training example ({error})", path=path, line=number,
                                fix="each line must be a JSON object with id, input, target and source") from error
    if not examples:
        raise DataError("the training examples file is empty", path=path,
                        fix="build examples with `python -m kard build-examples`")
    return examples

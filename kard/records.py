"""The records that move between KARD steps.

Every step of the pipeline takes and returns these frozen dataclasses, so a step can be tested,
cached or replaced on its own. They hold plain data only: no models, no file handles.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

YES_NO_OPTIONS: Mapping[str, str] = {"A": "yes", "B": "no"}

CHOICE, YES_NO, OPEN = "choice", "yesno", "open"
QUESTION_KINDS: tuple[str, ...] = (CHOICE, YES_NO, OPEN)
"""How a question is asked: lettered options, yes/no (YES_NO_OPTIONS), or open (no options, free answer)."""


@dataclass(frozen=True)
class Passage:
    """One knowledge-base entry."""

    id: str
    title: str
    text: str

    def as_knowledge(self) -> str:
        """The passage as the student reads it: title first when there is one."""
        return f"{self.title}: {self.text}" if self.title else self.text


@dataclass(frozen=True)
class Hit:
    """A passage found for a query, with its BM25 standing and, once reranked, the reranker's.

    Ranks are 1-based. `rerank_score`/`rerank_rank` stay None until a reranker has seen the hit.
    """

    passage: Passage
    bm25_score: float
    bm25_rank: int
    rerank_score: float | None = None
    rerank_rank: int | None = None

    @property
    def score(self) -> float:
        return self.bm25_score if self.rerank_score is None else self.rerank_score

    @property
    def rank(self) -> int:
        return self.bm25_rank if self.rerank_rank is None else self.rerank_rank

    def with_rerank(self, score: float, rank: int) -> "Hit":
        return replace(self, rerank_score=score, rerank_rank=rank)


@dataclass(frozen=True)
class Question:
    """A question in one shape for every benchmark and for what a person types.

    `kind` says how it is asked (QUESTION_KINDS): "choice" (the default, every benchmark) and "yesno"
    have lettered `options` ("A", "B", ...; yes/no questions use YES_NO_OPTIONS, A = yes, B = no) and
    an answer letter; "open" has no options and a short free-text answer. `answer` is the gold letter
    (the gold text for an open question), or None when it is unknown (a user's question).
    `rationale` is a reference explanation shipped with the data (human- or model-written),
    with `rationale_source` naming who wrote it. `facts` are gold supporting facts, if any.
    """

    id: str
    text: str
    options: Mapping[str, str]
    answer: str | None = None
    dataset: str = "custom"
    rationale: str | None = None
    rationale_source: str | None = None
    facts: tuple[str, ...] = ()
    meta: Mapping[str, str] = field(default_factory=dict)  # source extras, e.g. StrategyQA term/description
    kind: str = CHOICE  # QUESTION_KINDS; kard.kinds.decide_kind picks it for a typed question

    @property
    def letters(self) -> tuple[str, ...]:
        """The answer letters; () for an open question."""
        return tuple(self.options)

    @property
    def is_open(self) -> bool:
        return self.kind == OPEN

    @property
    def answer_text(self) -> str | None:
        if self.answer is None or self.is_open:
            return self.answer
        return self.options.get(self.answer)


@dataclass(frozen=True)
class Rationale:
    """One explanation of a question's answer, from a teacher model, a human or a recording."""

    question_id: str
    text: str
    answer: str | None
    source: str
    sample_index: int = 0


@dataclass(frozen=True)
class Sample:
    """One decoded student output."""

    raw_output: str
    rationale: str
    answer: str | None
    tokens_out: int = 0
    answer_source: str = "parsed"  # "parsed" from the text, "chosen" by letter probability, "none"


@dataclass(frozen=True)
class Timings:
    """Seconds spent in each step of one answer; None where a step did not run."""

    retrieval_s: float = 0.0
    rerank_s: float | None = None
    first_token_s: float | None = None
    generation_s: float = 0.0
    total_s: float = 0.0


@dataclass(frozen=True)
class Prediction:
    """Everything one answer produced, kept so that a view or an annotation can be rebuilt from it."""

    question: Question
    candidates: tuple[Hit, ...]
    passages: tuple[Hit, ...]
    prompt: str
    raw_output: str
    rationale: str
    answer: str | None
    samples: tuple[Sample, ...] = ()
    votes: Mapping[str, int] = field(default_factory=dict)
    timings: Timings = Timings()
    tokens_in: int = 0
    tokens_out: int = 0
    truncation: str | None = None
    student_name: str = ""
    reranker_name: str | None = None
    decoding: Mapping[str, object] = field(default_factory=dict)

    @property
    def is_correct(self) -> bool | None:
        """Whether the answer is the gold one (an open answer: the same words up to case and punctuation)."""
        if self.question.answer is None:
            return None
        if self.question.kind == OPEN:
            from kard.prompts import same_answer  # prompts imports this module

            return same_answer(self.answer, self.question.answer, OPEN)
        return self.answer == self.question.answer

"""The records that move between KARD steps.

Every step of the pipeline takes and returns these frozen dataclasses, so a step can be tested,
cached or replaced on its own. They hold plain data only: no models, no file handles.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping, Sequence

YES_NO_OPTIONS: Mapping[str, str] = {"A": "yes", "B": "no"}

CHOICE, YES_NO, OPEN = "choice", "yesno", "open"
QUESTION_KINDS: tuple[str, ...] = (CHOICE, YES_NO, OPEN)
"""How a question is asked: lettered options, yes/no (YES_NO_OPTIONS), or open (no options, free answer)."""


RECALLED_PREFIX = "correction:"
"""Id prefix of a saved correction handed back to the student as a passage (kard.recall); never knowledge to train on."""


def is_recalled(passage_id: str) -> bool:
    return passage_id.startswith(RECALLED_PREFIX)


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

    def to_dict(self) -> dict[str, Any]:
        p = self.passage
        return {"id": p.id, "title": p.title, "text": p.text, "bm25_rank": self.bm25_rank,
                "bm25_score": float(self.bm25_score), "rerank_rank": self.rerank_rank,
                "rerank_score": None if self.rerank_score is None else float(self.rerank_score)}

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> "Hit":
        return Hit(Passage(str(d["id"]), d.get("title") or "", d["text"]), float(d["bm25_score"]), int(d["bm25_rank"]),
                   d.get("rerank_score"), d.get("rerank_rank"))


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

    def to_dict(self) -> dict[str, Any]:
        """The question as an asked item carries it (facts and meta stay with the dataset)."""
        return {"id": self.id, "text": self.text, "options": dict(self.options), "answer": self.answer,
                "dataset": self.dataset, "rationale": self.rationale, "rationale_source": self.rationale_source,
                "kind": self.kind}

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> "Question":
        """Read `to_dict`'s form back; an item from before kinds existed is multiple choice."""
        return Question(str(d["id"]), str(d["text"]), dict(d.get("options") or {}), d.get("answer"),
                        d.get("dataset") or "custom", d.get("rationale"), d.get("rationale_source"),
                        kind=d.get("kind") or CHOICE)


def item_id_for(question: Question) -> str:
    """Stable id of an asked item (and of its annotations): the dataset's question id, or a hash of a typed one.

    A typed question asked as another kind is another item (a multiple-choice hash is unchanged).
    """
    if question.id and not question.id.startswith("custom"):
        return f"{question.dataset}:{question.id}"
    asked = [question.text, dict(question.options)] + ([question.kind] if question.kind != CHOICE else [])
    digest = hashlib.sha1(json.dumps(asked).encode()).hexdigest()[:12]
    return f"custom:{digest}"


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
    answer_source: str = "parsed"  # "parsed" from the text, "stated" by the rationale's conclusion, "chosen" by letter probability, "none"


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


@dataclass(frozen=True)
class StudentAnswer:
    """What the student wrote for an asked item, and how long it took."""

    model: str
    rationale: str
    raw_output: str
    answer: str | None
    tokens_out: int = 0
    timings: Timings = Timings()
    truncation: str | None = None
    answer_source: str = "parsed"  # as Sample.answer_source


@dataclass(frozen=True)
class TeacherAnswer:
    """The teacher's rationale beside the student's: a live teacher's reply or a recorded one."""

    source: str  # "live" or "recorded"
    model: str
    label: str
    rationale: str
    answer: str | None
    seconds: float | None = None  # the live teacher's timings, when it was asked now
    first_token_s: float | None = None
    cached: bool = False  # a live teacher's reply served from its cache: no request was sent
    fetched_at: float | None = None  # when a cached reply was fetched (seconds since the epoch), if known
    notice: str | None = None  # a live reply's problem and fix, shown over it (e.g. cut off at its token limit)


def final_order(hits: Sequence[Hit]) -> list[Hit]:
    """Hits in the order the student's passages were taken from: a recalled correction first (kard.recall),
    then the reranker's order when it ranked them all, else BM25's. (The pipeline keeps its candidates in
    BM25 order, with the reranker's ranks on them.)"""
    recalled = [h for h in hits if is_recalled(h.passage.id)]
    found = [h for h in hits if not is_recalled(h.passage.id)]
    if found and all(h.rerank_rank is not None for h in found):
        return recalled + sorted(found, key=lambda h: h.rerank_rank)  # type: ignore[arg-type, return-value]
    return recalled + sorted(found, key=lambda h: h.bm25_rank)


def _revision_number(value: Any) -> int | None:
    """An item's base revision as read back: a whole number from 0 up, or None; ValueError for anything else."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or int(value) != value:
        raise ValueError(f"base_revision {value!r} is not a revision number")
    return int(value)


@dataclass(frozen=True)
class AskedItem:
    """One asked question with what the app showed for it: the one record the app, the store, the
    export and retraining share. `to_dict` is its only encoding (it travels through the browser,
    sealed, and is kept as a tab's draft); `from_dict` reads it back.
    """

    item_id: str
    question: Question
    candidates: tuple[Hit, ...]
    used: tuple[Hit, ...]
    student: StudentAnswer
    reranker: str | None = None
    prompt_version: str = ""
    decoding: Mapping[str, object] = field(default_factory=dict)
    teacher: TeacherAnswer | None = None
    kind_reason: str = ""
    base_revision: int | None = None  # the item's latest saved revision when handed out (0: none); None: not read

    @property
    def used_ids(self) -> list[str]:
        return [h.passage.id for h in self.used]

    @staticmethod
    def from_prediction(p: Prediction, *, prompt_version: str, kind_reason: str = "",
                        max_candidates: int = 20) -> "AskedItem":
        source = next((s.answer_source for s in p.samples if s.answer == p.answer), "parsed")
        student = StudentAnswer(p.student_name, p.rationale, p.raw_output, p.answer, p.tokens_out, p.timings,
                                p.truncation, source)
        kept = tuple(final_order(p.candidates)[:max_candidates])  # the reranker's first, which hold the passages used
        return AskedItem(item_id_for(p.question), p.question, kept, tuple(p.passages),
                         student, p.reranker_name, prompt_version, dict(p.decoding), None, kind_reason)

    def with_teacher(self, teacher: TeacherAnswer | None) -> "AskedItem":
        return replace(self, teacher=teacher)

    def to_dict(self) -> dict[str, Any]:
        s, t = self.student, self.teacher
        return {
            "item_id": self.item_id, "question": self.question.to_dict(),
            "candidates": [h.to_dict() for h in self.candidates], "used_ids": self.used_ids,
            "used": [h.to_dict() for h in self.used],
            "student": {"model": s.model, "rationale": s.rationale, "raw_output": s.raw_output, "answer": s.answer,
                        "tokens_out": s.tokens_out, "timings": asdict(s.timings), "truncation": s.truncation,
                        "answer_source": s.answer_source},
            "reranker": self.reranker, "prompt_version": self.prompt_version, "decoding": dict(self.decoding),
            "teacher": None if t is None else {
                "kind": t.source, "model": t.model, "label": t.label, "rationale": t.rationale, "answer": t.answer,
                "seconds": t.seconds, "first_token_s": t.first_token_s, "cached": t.cached,
                "fetched_at": t.fetched_at, "notice": t.notice},
            "kind_reason": self.kind_reason, "base_revision": self.base_revision,
        }

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> "AskedItem":
        """Read `to_dict`'s form back; raises KeyError, TypeError or ValueError when it is not one."""
        s, t = d["student"], d.get("teacher")
        student = StudentAnswer(str(s["model"]), s.get("rationale") or "", s.get("raw_output") or "", s.get("answer"),
                                int(s.get("tokens_out") or 0), Timings(**(s.get("timings") or {})), s.get("truncation"),
                                s.get("answer_source") or "parsed")
        teacher = None if not t else TeacherAnswer(
            t.get("kind") or "recorded", str(t.get("model") or ""), str(t.get("label") or ""), t.get("rationale") or "",
            t.get("answer"), t.get("seconds"), t.get("first_token_s"), bool(t.get("cached")), t.get("fetched_at"),
            t.get("notice"))
        return AskedItem(str(d["item_id"]), Question.from_dict(d["question"]),
                         tuple(Hit.from_dict(h) for h in d.get("candidates") or ()),
                         tuple(Hit.from_dict(h) for h in d.get("used") or ()), student, d.get("reranker"),
                         d.get("prompt_version") or "", dict(d.get("decoding") or {}), teacher,
                         d.get("kind_reason") or "", _revision_number(d.get("base_revision")))

"""Asking: pick or type a question, stream the student's answer, set the teacher's beside it.

Plain functions over a `Studio` (bound to Gradio events in `kard.ui.blocks`); they take and return
plain values, and a user's mistake raises `InputError` with what to do.

Questions come in three kinds (kard.kinds): typed options make a multiple-choice question; without
options a question is a yes/no question (answered "yes"/"no", asked with A. yes, B. no) or an open
one (a short free-text answer, no letters). A listed question whose options are exactly yes and no is
asked as a yes/no question (`kard.kinds.as_listed`). `ask` takes the person's choice of kind ("auto" decides
from the text) and the item says which kind was used and why.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Mapping

from kard.annotations import AnnotationStoreError, Revision
from kard.errors import DataError, KardError
from kard.kinds import AUTO, KindDecision, as_listed, asked_alike, is_blank, options_for, read_question
from kard.prompts import PROMPT_VERSION, format_options, parse_options, parse_question_answer
from kard.records import CHOICE, YES_NO, AskedItem, Prediction, Question, TeacherAnswer, item_id_for
from kard.teacher.cache import CachedReply
from kard.teacher.client import CutOffReply
from kard.ui import views
from kard.ui.cards import (
    LiveFailure,
    compare_html,
    no_teacher_note,
    rerank_html,
    student_card,
    teacher_card,
    teacher_notice,
)
from kard.ui.curating import marks_start, review_start
from kard.ui.studio import InputError, Studio, Teaches

log = logging.getLogger(__name__)

SAVED_SOURCE = "saved correction"
"""How the editor's source label starts when it opens on the question's saved correction."""

LISTED_YES_NO = "a listed question whose options are yes and no"
"""Why a listed question with the options A. yes, B. no is asked as a yes/no question (`kard.kinds.as_listed`)."""

MAX_CANDIDATES_KEPT = 20
"""Candidates kept in an item (and so in an annotation): enough to judge the reranker's top."""


@dataclass(frozen=True)
class AskUpdate:
    """One step of an ask: what each panel shows now. `item` (sealed) is set once the student has finished."""

    rerank_html: str
    student_html: str
    status_html: str
    item: dict[str, Any] | None = None


@dataclass(frozen=True)
class Comparison:
    """The teacher's column, the diff and the editor's starting point for one item."""

    teacher_html: str
    diff_html: str
    editor_text: str
    editor_source: str
    editor_answer: str | None
    item: dict[str, Any]
    warning: str | None = None
    partial: bool = False  # a live teacher is still writing: only teacher_html is meaningful
    editor_rating: int | None = None  # the review controls start from the saved correction's, else empty
    editor_tags: tuple[str, ...] = ()
    editor_note: str = ""
    editor_marks: tuple[str | None, ...] = ()  # the marks of the passages read (item["used"]), as `editor_rating`


# -- questions --------------------------------------------------------------------------------------
def question_choices(studio: Studio) -> list[tuple[str, str]]:
    def label(q: Question) -> str:
        text = q.text if len(q.text) <= 90 else q.text[:87] + "..."
        return f"[{q.dataset}] {text}"

    return [(label(q), q.id) for q in studio.questions.values()]


def pick(studio: Studio, question_id: str | None) -> tuple[str, str]:
    """The question text and options text of a listed question (empty when none is picked)."""
    if not question_id:
        return "", ""
    q = studio.questions.get(question_id)
    if q is None:
        raise InputError(f"unknown question {question_id!r}. Fix: pick one from the list")
    return q.text, format_options(q.options)


def next_question(studio: Studio, current_id: str | None) -> str | None:
    """The next listed question after `current_id`, preferring ones with no saved annotation."""
    ids = list(studio.questions)
    if not ids:
        return None
    start = ids.index(current_id) + 1 if current_id in ids else 0
    order = ids[start:] + ids[:start]
    done = {r.item_id for r in studio.store.latest()}
    for qid in order:
        if item_id_for(studio.questions[qid]) not in done and qid != current_id:
            return qid
    return order[0]


def resolve(studio: Studio, text: str, options_text: str, picked_id: str | None,
            kind: str | None = AUTO) -> tuple[Question, KindDecision]:
    """(question, why it is asked as its kind): the listed question when the text still matches it, else a
    typed question (no gold). `kind` ("auto", "choice", "yesno", "open") is the person's choice."""
    text = (text or "").strip()
    if is_blank(text):
        raise InputError("The question is empty. Fix: type a question, or pick a demo question from the list")
    if len(text) > studio.max_question_chars:
        raise InputError(f"The question has {len(text):,} characters; the limit is {studio.max_question_chars:,}. "
                         "Fix: shorten it to the question itself (the student reads at most 512 tokens)")
    try:
        text, options_text, decision = read_question(text, options_text, kind)
    except DataError as error:
        raise InputError(f"Cannot ask it that way: {error}") from error
    options: dict[str, str] = {}
    if decision.kind == CHOICE:
        try:
            options = parse_options(options_text)
        except DataError as error:
            raise InputError(f"Could not read the options: {error}") from error
    picked = studio.questions.get(picked_id or "")
    listed = None if picked is None or picked.text.strip() != text else _listed(picked, decision, options, kind)
    if listed is not None:
        return listed
    return Question("custom", text, options_for(decision.kind, options), None, "custom", kind=decision.kind), decision


def _listed(picked: Question, decision: KindDecision, options: Mapping[str, str],
            kind: str | None) -> tuple[Question, KindDecision] | None:
    """The listed question asked as `decision` says, or None when its options no longer match. Asked with the
    options it was listed with and no kind chosen, it is asked as its own kind (`kard.kinds.as_listed`: yes/no
    when its options are yes and no); a kind the person chose wins."""
    own = as_listed(picked)
    if kind in (None, "", AUTO) and decision.kind == CHOICE and options == dict(picked.options):
        yes_no = own.kind == YES_NO  # its options were filled in, not typed
        return own, KindDecision(own.kind, LISTED_YES_NO if yes_no else "a listed question, asked with its options")
    for question in (own, picked):
        if question.kind == decision.kind and dict(question.options) == options_for(decision.kind, options):
            return question, decision
    return None


# -- ask --------------------------------------------------------------------------------------------
def ask(studio: Studio, text: str, options_text: str, picked_id: str | None = None,
        kind: str | None = AUTO) -> Iterator[AskUpdate]:
    """Retrieve, rerank and stream the student's rationale; the last update carries the sealed item."""
    question, decision = resolve(studio, text, options_text, picked_id, kind)
    waiting = views.rationale_card("Student", "loading the model...", "", note="Loading the student model...")
    yield AskUpdate("", waiting, views.message("Loading the student model (first question only)..."))
    pipeline = studio.pipeline()
    name = pipeline.student.name
    shown = ""
    if pipeline.reranker is None:
        # BM25 alone takes milliseconds: show the passages before the rationale starts. (With a
        # reranker they appear with the answer, so the candidates are not reranked twice.)
        candidates, passages, _ = pipeline.retrieve(question)
        shown = views.rerank_panel(candidates, [h.passage.id for h in passages], question.text)
    generating = views.message("Generating the student's rationale...")
    yield AskUpdate(shown, views.rationale_card("Student", name, "", streaming=True), generating)
    prediction, so_far = None, ""
    for chunk in pipeline.stream(question):
        if isinstance(chunk, Prediction):
            prediction = chunk
            break
        so_far += chunk
        yield AskUpdate(shown, views.rationale_card("Student", name, so_far, streaming=True), generating)
    if prediction is None:
        raise KardError("the pipeline ended without a prediction. Fix: this is a bug in kard.pipeline; "
                        "please report it with the question")
    item = AskedItem.from_prediction(prediction, prompt_version=PROMPT_VERSION, kind_reason=decision.reason,
                                     max_candidates=MAX_CANDIDATES_KEPT)
    item = replace(item, base_revision=latest_revision(studio, item.item_id)[1])
    q = item.question  # the result first: the status line is a live region, read out when it changes
    result = views.answer_summary("Student", item.student.answer, q.answer, q.options, q.kind)
    status = f"{result}. Asked as: {decision.label}. It answered in {prediction.timings.total_s:.2f} s."
    yield AskUpdate(rerank_html(item), student_card(item), views.message(status), studio.hand_out(item))


# -- compare ----------------------------------------------------------------------------------------
def compare_steps(studio: Studio, sealed: Mapping[str, Any] | None) -> Iterator[Comparison]:
    """Fill the teacher's column and the diff, and pick the editor's starting text. A live teacher streams:
    its partial steps carry only `teacher_html`. When it fails, the column names it and says why, and a recorded
    rationale shown instead says so (`Comparison.warning` too)."""
    item = studio.read_item(sealed)
    teacher, failure = None, None
    if studio.teacher_factory is not None:
        teacher, failure = yield from _live_steps(studio.teacher_factory, item.question, dict(sealed or {}))
    item = item.with_teacher(teacher or recorded_teacher(studio, item.question))
    warning = failure.message if failure is not None and item.teacher is None else teacher_notice(item, failure)
    latest, base = latest_revision(studio, item.item_id)  # one read: the editor starts from the base it records
    item, saved = replace(item, base_revision=base), alike(latest, item.question)
    text, source, _ = editor_start(item, saved)
    rating, tags, review_note = review_start(saved)
    marks = tuple(marks_start(saved, [hit.passage.id for hit in item.used]))
    yield Comparison(teacher_card(item, failure, demo=not studio.is_curator), compare_html(item), text, source,
                     start_answer(item, saved), studio.hand_out(item), warning,
                     editor_rating=rating, editor_tags=tags, editor_note=review_note, editor_marks=marks)


def _live_steps(factory: Callable[[], Teaches], question: Question, sealed: dict[str, Any]):
    """The live teacher's partial Comparisons; returns (its answer, None), or (None, why it failed)."""
    model = None
    try:
        teacher = factory()
        model = teacher.config.model
        for step in _live_teacher(teacher, question):
            if isinstance(step, TeacherAnswer):
                return step, None
            card = views.rationale_card("Teacher", f"live teacher · {model}", step, streaming=True)
            yield Comparison(card, "", "", "", None, sealed, partial=True)
    except KardError as error:
        return None, LiveFailure(model, str(error))
    except Exception as error:  # noqa: BLE001 - any client failure is shown, never a dead page
        log.warning("teacher failed: %s", type(error).__name__)
        return None, LiveFailure(model, f"{type(error).__name__}. Fix: check OPENAI_BASE_URL and the server")
    return None, LiveFailure(model, "it ended without an answer. Fix: check the server")


def editor_start(item: AskedItem, saved: Revision | None = None) -> tuple[str, str, str | None]:
    """(text, label, answer) the editor starts from: the saved correction of this question when there is one
    (a curator goes on from what was saved, not from scratch), else the teacher's rationale, else the student's."""
    if saved is not None:
        c = saved.correction
        return c.rationale, f"{SAVED_SOURCE} (revision {saved.revision}, {c.curator or 'no curator'})", c.answer
    t, s = item.teacher, item.student
    if t is not None:
        return t.rationale, f"teacher ({t.label})", t.answer
    return s.rationale or s.raw_output, f"student ({s.model})", s.answer


def start_answer(item: AskedItem, saved: Revision | None = None) -> str | None:
    """The answer the editor starts from: `editor_start`'s, else the question's gold answer, else the student's."""
    return editor_start(item, saved)[2] or item.question.answer or item.student.answer


def saved_revision(studio: Studio, question: Question) -> Revision | None:
    """The latest saved revision of this question as this kind, or None (also when the store cannot be read:
    the editor then starts from the teacher's or the student's rationale, and saving says what is wrong)."""
    return alike(latest_revision(studio, item_id_for(question))[0], question)


def alike(saved: Revision | None, question: Question) -> Revision | None:
    """`saved` when it is a correction of `question` asked as this kind, else None."""
    return saved if saved is not None and asked_alike(saved.correction.kind, question) else None


def latest_revision(studio: Studio, item_id: str) -> tuple[Revision | None, int | None]:
    """(the item's latest saved revision, of any kind, or None; its number, 0 for none): what an item handed out now
    records as the revision its editor starts from (`AskedItem.base_revision`), so a save on top of a newer one is
    told of it. (None, None) when the store cannot be read (logged; saving says what is wrong)."""
    try:
        latest = studio.store.get(item_id)
    except AnnotationStoreError as error:
        log.warning("could not read the saved correction: %s", error)
        return None, None
    return latest, latest.revision if latest is not None else 0


def _live_teacher(teacher: Teaches, question: Question) -> Iterator[str | TeacherAnswer]:
    """The live teacher's reply so far (text), then its answer: timed when it was asked now, marked cached (with
    when it was fetched) when its cache served it. Raises on failure."""
    started = time.perf_counter()
    model = teacher.config.model
    first: float | None = None
    cached: CachedReply | None = None
    cut: CutOffReply | None = None
    text = ""
    for chunk in teacher.stream_answer(question):
        first = first if first is not None else time.perf_counter() - started
        cached = chunk if isinstance(chunk, CachedReply) else cached
        cut = chunk if isinstance(chunk, CutOffReply) else cut
        text += chunk
        yield text
    rationale, letter = parse_question_answer(text, question)
    if cached is not None:
        yield TeacherAnswer("live", model, f"live teacher · {model} · cached", rationale, letter, cached=True,
                            fetched_at=cached.fetched_at)
        return
    notice = cut.notice if cut is not None else None  # a CutOffReply holds no text: test it against None
    yield TeacherAnswer("live", model, f"live teacher · {model}", rationale, None if notice else letter,
                        time.perf_counter() - started, first, notice=notice)


def recorded_teacher(studio: Studio, question: Question) -> TeacherAnswer | None:
    """A recorded rationale for the question (imported, or shipped with it), if there is one."""
    recorded = list(studio.recorded.get(question.id, ()))
    if recorded:
        r = recorded[0]
        return TeacherAnswer("recorded", r.source, f"recorded · {r.source}", r.text, r.answer)
    if question.rationale:
        source = question.rationale_source or "reference"
        _, letter = parse_question_answer(question.rationale, question)
        return TeacherAnswer("recorded", source, f"recorded · {source}", question.rationale,
                             question.answer or letter)
    return None


def editor_text(studio: Studio, sealed: Mapping[str, Any] | None, whose: str) -> tuple[str, str]:
    """(text, label) of the student's or teacher's rationale for the editor."""
    item = studio.read_item(sealed)
    if whose == "student":
        s = item.student
        return s.rationale or s.raw_output, f"student ({s.model})"
    if item.teacher is None:
        raise InputError("There is no teacher or recorded rationale for this question. "
                         + no_teacher_note(not studio.is_curator))
    return item.teacher.rationale, f"teacher ({item.teacher.label})"

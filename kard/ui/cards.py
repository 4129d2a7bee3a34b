"""The panels of one asked item as HTML: the student's and the teacher's cards, the rerank panel, the diff.

Pure functions from an `AskedItem` to escaped HTML (through `kard.ui.views`), plus how an item's
answer is offered and worded for its kind (letters, yes/no, or an open short answer).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Mapping

from kard.prompts import skipped_letter_answers
from kard.records import CHOICE, OPEN, YES_NO, AskedItem, Question, TeacherAnswer, Timings
from kard.ui import views

HOW_TO_TEACHER = ("No teacher configured. To compare with a live teacher, set OPENAI_BASE_URL, OPENAI_API_KEY "
                  "and KARD_TEACHER_MODEL (any OpenAI-compatible server) and restart the app.")
NO_RECORDED_TEACHER = ("This public demo shows recorded teacher rationales for the listed questions only: this "
                       "question has none, so there is no teacher's rationale to compare with.")
"""The teacher column in the demo for a question without a recorded rationale: a visitor cannot set up a teacher."""


NO_PASSAGES = ("No passage matched the question's words, so this answer has no passages behind it: the small "
               "model answered from what it learned alone, and is often wrong.")
"""The student card's warning when BM25 found no passage for the question (e.g. one in a script the passages lack)."""
NO_TEACHER_ANSWER = ("The teacher's rationale states no answer the app can read (no \"Answer: ...\" line or "
                     "conclusion it understands), so it was not cached. Fix: ask again, or correct it and choose "
                     "the answer below.")
"""The teacher column's notice (and the compare step's warning) when the live teacher's reply states no answer."""


@dataclass(frozen=True)
class LiveFailure:
    """Why the configured live teacher gave no rationale: its model (None where the teacher could not even be set
    up) and the error's message, which says what to fix."""

    model: str | None
    reason: str

    @property
    def head(self) -> str:
        """The teacher column's source line: the configured teacher, and that it failed."""
        return f"live teacher · {self.model} · failed" if self.model else "live teacher · failed"

    @property
    def message(self) -> str:
        who = f" ({self.model})" if self.model else ""
        return f"The live teacher{who} could not answer: {self.reason}"

    @property
    def fallback(self) -> str:
        """The message where the question's recorded rationale is shown instead."""
        return f"{self.message.rstrip(' .')}; showing the recorded rationale instead."


def answer_choices(question: Question) -> list[tuple[str, str]]:
    """(label, value) pairs of the answer control: the letters, yes/no (values A/B), none for an open question."""
    if question.kind == OPEN:
        return []
    if question.kind == YES_NO:
        return [(text, letter) for letter, text in question.options.items()]
    return [(letter, letter) for letter in question.options]


def answer_words(answer: str | None, question: Question) -> str:
    """An answer in a sentence: the letter, "yes"/"no", or an open answer in quotes."""
    if answer is None:
        return "nothing"
    if question.kind == OPEN:
        return f'"{answer}"'
    return views.answer_label(answer, question.options, question.kind) if question.kind == YES_NO else answer


def table_answer(answer: str | None, options: Mapping[str, str], kind: str) -> str:
    """An answer in the browse table: the letter, "yes"/"no", or an open answer (cut at 40 characters)."""
    if answer is None:
        return "-"
    if kind == CHOICE:
        return answer
    label = views.answer_label(answer, options, kind)
    return label if len(label) <= 40 else label[:37] + "..."


def kind_html(item: AskedItem) -> str:
    """The "Asked as: ..." line of an item."""
    return views.kind_line(item.question.kind, item.kind_reason)


def student_name(item: AskedItem) -> str:
    """The student as its card names it: its folder, and the base model an adapter student was merged into
    ("demo/student · SmolLM2-135M-Instruct + LoRA adapter")."""
    base = item.decoding.get("base_model")
    return f"{item.student.model} · {base} + LoRA adapter" if base else item.student.model


def student_card(item: AskedItem) -> str:
    s = item.student
    truncation = f" ({s.truncation})" if s.truncation else ""
    recalled = " · read the saved correction of this question" if item.decoding.get("recalled") else ""
    return views.rationale_card(
        "Student", f"{student_name(item)} · KARD prompt {item.prompt_version}{truncation}{recalled}",
        s.raw_output or s.rationale, note="(the student wrote nothing)", notice="" if item.used else NO_PASSAGES,
        answer_html=student_answer_html(item),
        timing_html=views.timing_line(s.timings, s.tokens_out, s.model, item.decoding.get("engine")),
        kind_html=kind_html(item))


def student_answer_html(item: AskedItem) -> str:
    """The student's answer badge, how the answer was read, and an "Answer: C" line not read as its answer."""
    q, s = item.question, item.student
    return (views.answer_badge(s.answer, q.answer, q.options, q.kind) + views.answer_source_line(s.answer_source)
            + ignored_letter_line(s.raw_output or s.rationale, q))


def ignored_letter_line(text: str, question: Question) -> str:
    """A muted line under an open question's answer badge when the text shown has an "Answer: C" line: the letter
    was not read as the answer (there are no options), whatever the badge shows; nothing otherwise."""
    letters = skipped_letter_answers(text or "") if question.kind == OPEN else []
    if not letters:
        return ""
    note = f'a letter answer ("Answer: {letters[-1]}") was ignored: this question has no options'
    return f'<div class="kard-answer-source kard-muted kard-ignored-letter">{views.esc(note)}</div>'


def no_teacher_note(demo: bool) -> str:
    """Why there is no teacher's rationale: in the demo, that only listed questions have one (a visitor cannot set
    up a teacher); for the app's owner, how to configure one."""
    return NO_RECORDED_TEACHER if demo else HOW_TO_TEACHER


def teacher_card(item: AskedItem, failure: LiveFailure | None = None, demo: bool = False) -> str:
    """The teacher's column: its rationale, or, without one, that the live teacher failed (and why), that no teacher
    is configured (and how to), or, in the demo, that only the listed questions have a recorded one. A recorded
    rationale shown because the live teacher failed says so."""
    q, t = item.question, item.teacher
    if t is None:
        if failure is not None:
            return views.rationale_card("Teacher", failure.head, "", note=failure.message)
        head = "none recorded" if demo else "not configured"
        return views.rationale_card("Teacher", head, "", note=no_teacher_note(demo))
    return views.rationale_card("Teacher", t.label, t.rationale, timing_html=teacher_timing(t),
                                notice=teacher_notice(item, failure) or "",
                                answer_html=views.answer_badge(t.answer, q.answer, q.options, q.kind))


def teacher_notice(item: AskedItem, failure: LiveFailure | None = None) -> str | None:
    """The warning over the teacher's rationale: a recorded one shown because the live teacher failed says so, a live
    one that states no answer says that and what to do; None otherwise."""
    t = item.teacher
    if t is None:
        return None
    if failure is not None and t.source == "recorded":
        return failure.fallback
    if t.notice:
        return t.notice
    if t.source == "live" and t.answer is None:
        return NO_TEACHER_ANSWER
    return None


def teacher_timing(t: TeacherAnswer) -> str:
    """The teacher card's timing line: a cached reply says so and when it was fetched (no request was sent, so there
    is nothing to time); a reply asked now has its first-token and total times; a recorded one has none."""
    if t.cached:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t.fetched_at)) if t.fetched_at else "an unknown time"
        return (f'<div class="kard-timing"><b>{views.esc(t.model)}</b> &middot; cached reply, fetched {when} '
                "&middot; no request sent</div>")
    if not t.seconds:
        return ""
    return views.timing_line(Timings(first_token_s=t.first_token_s, total_s=t.seconds), 0, t.model)


def rerank_html(item: AskedItem) -> str:
    return views.rerank_panel(list(item.candidates), item.used_ids, item.question.text, reranker_name=item.reranker,
                              searched=item.decoding.get("candidates_found"))


def compare_html(item: AskedItem) -> str:
    t = item.teacher
    if t is None:
        return views.diff_panel("", "", "", "")
    return views.diff_panel(t.rationale, item.student.rationale, t.label, "student")


def live_diff(original: str, edited: str) -> str:
    """The editor's changes against the text it started from."""
    if (original or "").strip() == (edited or "").strip():
        return views.message("No edits yet: change the rationale and the differences show here.")
    return views.diff_panel(original or "", edited or "", "original", "your edit")

"""What the app's buttons do, as plain Python: testable without a browser or a Gradio server.

`Studio` holds the app's services (a lazily loaded pipeline, an optional teacher, the annotation
store, the question list) and exposes one method per user action. Methods take and return plain
values (strings, lists, JSON-able dicts); `app.py` only maps them onto Gradio components.
A user's mistake raises `InputError`, whose message the app shows as a warning.

The "item" passed between actions is a JSON-able dict (it also travels through the browser as the
draft that survives a page refresh): the question, the candidate passages with both rankings, the
student's output and timings, and the teacher's or recorded rationale once compared.

Questions come in three kinds (kard.kinds): typed options make a multiple-choice question; without
options a question is a yes/no question (answered "yes"/"no", asked with A. yes, B. no) or an open
one (a short free-text answer, no letters). `ask` takes the person's choice of kind ("auto" decides
from the text) and the item says which kind was used and why; answers, saves and the browse table
follow the kind.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

from kard.ui import views
from kard.annotations import (
    ERROR_TAGS, AnnotationStore, Correction, PassageRecord, check_free_answer, check_sizes, item_id_for,
)
from kard.errors import DataError, KardError
from kard.ui.item_seal import ForgedItemError, ItemSeal
from kard.kinds import AUTO, KindDecision, decide_kind, options_for
from kard.prompts import PROMPT_VERSION, format_options, parse_options, parse_question_answer, same_answer
from kard.records import CHOICE, OPEN, YES_NO, Hit, Passage, Prediction, Question, Rationale, Timings

log = logging.getLogger(__name__)

MAX_MARKED = 5
"""Passages the editor offers relevance marks for: the top-k sent to the student (k <= 5)."""
MAX_CANDIDATES_KEPT = 20
"""Candidates kept in an item (and so in an annotation): enough to judge the reranker's top."""
HOW_TO_TEACHER = ("No teacher configured. To compare with a live teacher, set OPENAI_BASE_URL, OPENAI_API_KEY "
                  "and KARD_TEACHER_MODEL (any OpenAI-compatible server) and restart the app.")


MAX_TAB_DRAFTS = 8
"""Unsaved corrections the browser keeps, one per tab (app.KEEP_DRAFT_JS), the newest 8."""


class InputError(KardError):
    """Something the user typed or clicked cannot be used; the message says what to do."""


@dataclass(frozen=True)
class AskUpdate:
    """One step of an ask: what each panel shows now. `item` is set once the student has finished."""

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


@dataclass(frozen=True)
class SaveResult:
    message: str
    saved: bool
    needs_confirmation: bool = False
    revision: int | None = None


# -- items: JSON-able views of a prediction ----------------------------------------------------------
def question_to_dict(q: Question) -> dict[str, Any]:
    return {"id": q.id, "text": q.text, "options": dict(q.options), "answer": q.answer, "dataset": q.dataset,
            "rationale": q.rationale, "rationale_source": q.rationale_source, "kind": q.kind}


def question_from_dict(d: Mapping[str, Any]) -> Question:
    """The Question of an item; an item from before kinds existed is multiple choice."""
    return Question(str(d["id"]), str(d["text"]), dict(d["options"]), d.get("answer"), d.get("dataset", "custom"),
                    d.get("rationale"), d.get("rationale_source"), kind=d.get("kind") or CHOICE)


def answer_choices(question: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs of the answer control: the letters, yes/no (values A/B), none for an open question."""
    kind = question.get("kind") or CHOICE
    if kind == OPEN:
        return []
    if kind == YES_NO:
        return [(text, letter) for letter, text in question["options"].items()]
    return [(letter, letter) for letter in question["options"]]


def answer_words(answer: str | None, question: Question) -> str:
    """An answer in a sentence: the letter, "yes"/"no", or an open answer in quotes."""
    if answer is None:
        return "nothing"
    if question.kind == OPEN:
        return f'"{answer}"'
    return views.answer_label(answer, question.options, question.kind) if question.kind == YES_NO else answer


def hit_to_dict(h: Hit) -> dict[str, Any]:
    return {"id": h.passage.id, "title": h.passage.title, "text": h.passage.text, "bm25_rank": h.bm25_rank,
            "bm25_score": float(h.bm25_score), "rerank_rank": h.rerank_rank,
            "rerank_score": None if h.rerank_score is None else float(h.rerank_score)}


def hit_from_dict(d: Mapping[str, Any]) -> Hit:
    return Hit(Passage(d["id"], d.get("title", ""), d["text"]), d["bm25_score"], d["bm25_rank"],
               d.get("rerank_score"), d.get("rerank_rank"))


def item_from_prediction(p: Prediction, kind_reason: str = "") -> dict[str, Any]:
    """The item of a prediction; `kind_reason` says why the question was asked as its kind."""
    t = p.timings
    return {
        "item_id": item_id_for(p.question),
        "question": question_to_dict(p.question),
        "candidates": [hit_to_dict(h) for h in p.candidates[:MAX_CANDIDATES_KEPT]],
        "used_ids": [h.passage.id for h in p.passages],
        "used": [hit_to_dict(h) for h in p.passages],
        "student": {"model": p.student_name, "rationale": p.rationale, "raw_output": p.raw_output,
                    "answer": p.answer, "tokens_out": p.tokens_out, "timings": asdict(t),
                    "truncation": p.truncation},
        "reranker": p.reranker_name,
        "prompt_version": PROMPT_VERSION,
        "decoding": dict(p.decoding),
        "teacher": None,
        "kind_reason": kind_reason,
    }


def _timings(item: Mapping[str, Any]) -> Timings:
    return Timings(**item["student"]["timings"])


def _kind(item: Mapping[str, Any]) -> str:
    return item["question"].get("kind") or CHOICE


def kind_html(item: Mapping[str, Any]) -> str:
    """The "Asked as: ..." line of an item."""
    return views.kind_line(_kind(item), item.get("kind_reason", ""))


def student_card(item: Mapping[str, Any]) -> str:
    q, s = item["question"], item["student"]
    truncation = f" ({s['truncation']})" if s.get("truncation") else ""
    return views.rationale_card(
        "Student", f"{s['model']} · KARD prompt {item['prompt_version']}{truncation}",
        s.get("raw_output") or s["rationale"], note="(the student wrote nothing)",
        answer_html=views.answer_badge(s["answer"], q["answer"], q["options"], _kind(item)),
        timing_html=views.timing_line(_timings(item), s["tokens_out"], s["model"], item.get("decoding", {}).get("engine")),
        kind_html=kind_html(item))


def teacher_card(item: Mapping[str, Any], note: str = HOW_TO_TEACHER) -> str:
    q, t = item["question"], item.get("teacher")
    if not t:
        return views.rationale_card("Teacher", "not configured", "", note=note)
    timing = views.timing_line(Timings(first_token_s=t.get("first_token_s"), total_s=t["seconds"]), 0,
                               t["model"]) if t.get("seconds") else ""
    return views.rationale_card("Teacher", t["label"], t["rationale"],
                                timing_html=timing,
                                answer_html=views.answer_badge(t["answer"], q["answer"], q["options"], _kind(item)))


def rerank_html(item: Mapping[str, Any]) -> str:
    return views.rerank_panel([hit_from_dict(h) for h in item["candidates"]], item["used_ids"],
                              item["question"]["text"], reranker_name=item.get("reranker"))


def compare_html(item: Mapping[str, Any]) -> str:
    t = item.get("teacher")
    if not t:
        return views.diff_panel("", "", "", "")
    return views.diff_panel(t["rationale"], item["student"]["rationale"], t["label"], "student")


def _table_answer(answer: str | None, options: Mapping[str, str], kind: str) -> str:
    """An answer in the browse table: the letter, "yes"/"no", or an open answer (cut at 40 characters)."""
    if answer is None:
        return "-"
    if kind == CHOICE:
        return answer
    label = views.answer_label(answer, options, kind)
    return label if len(label) <= 40 else label[:37] + "..."


# -- the studio --------------------------------------------------------------------------------------
class Studio:
    """The app's services and actions. Heavy objects load on first use (or in `warm_up`)."""

    def __init__(self, pipeline_factory: Callable[[], Any], store: AnnotationStore, questions: Sequence[Question] = (),
                 *, teacher_factory: Callable[[], Any] | None = None,
                 recorded: Mapping[str, Sequence[Rationale]] | None = None, mode: str = "demo",
                 max_question_chars: int = 4000, curators: Sequence[str] = ()):
        if mode not in ("demo", "curator"):
            raise KardError(f"unknown app mode {mode!r}. Fix: use KARD_MODE=demo or KARD_MODE=curator")
        self._pipeline_factory = pipeline_factory
        self._pipeline: Any = None
        self._pipeline_error: KardError | None = None
        self._lock = threading.Lock()
        self._teacher_factory = teacher_factory
        self.store = store
        self.questions = {q.id: q for q in questions}
        self.recorded = dict(recorded or {})
        self.mode = mode
        self.max_question_chars = max_question_chars
        self.curators = tuple(curators)
        self._seal = ItemSeal()  # items handed out are sealed: a save stores only what this server produced

    # -- services -----------------------------------------------------------------------------------
    def pipeline(self) -> Any:
        with self._lock:
            if self._pipeline is None:
                started = time.perf_counter()
                self._pipeline = self._pipeline_factory()
                log.info("pipeline ready in %.1f s", time.perf_counter() - started)
            return self._pipeline

    def warm_up(self) -> threading.Thread:
        """Load the pipeline in a background thread, so the first question waits less."""
        def load() -> None:
            try:
                self.pipeline()
            except Exception:  # noqa: BLE001 - the first ask loads again and shows the error
                log.exception("loading the pipeline in the background failed")

        thread = threading.Thread(target=load, name="kard-warm-up", daemon=True)
        thread.start()
        return thread

    @property
    def teacher_configured(self) -> bool:
        return self._teacher_factory is not None

    # -- questions ----------------------------------------------------------------------------------
    def question_choices(self) -> list[tuple[str, str]]:
        def label(q: Question) -> str:
            text = q.text if len(q.text) <= 90 else q.text[:87] + "..."
            return f"[{q.dataset}] {text}"

        return [(label(q), q.id) for q in self.questions.values()]

    def pick(self, question_id: str | None) -> tuple[str, str]:
        """The question text and options text of a listed question (empty when none is picked)."""
        if not question_id:
            return "", ""
        q = self.questions.get(question_id)
        if q is None:
            raise InputError(f"unknown question {question_id!r}. Fix: pick one from the list")
        return q.text, format_options(q.options)

    def next_question(self, current_id: str | None) -> str | None:
        """The next listed question after `current_id`, preferring ones with no saved annotation."""
        ids = list(self.questions)
        if not ids:
            return None
        start = ids.index(current_id) + 1 if current_id in ids else 0
        order = ids[start:] + ids[:start]
        done = {r.item_id for r in self.store.latest()}
        for qid in order:
            if item_id_for(self.questions[qid]) not in done and qid != current_id:
                return qid
        return order[0]

    def resolve_question(self, text: str, options_text: str, picked_id: str | None,
                         kind: str | None = AUTO) -> Question:
        """The listed question when the text still matches it, else a typed question (no gold)."""
        return self.resolve(text, options_text, picked_id, kind)[0]

    def resolve(self, text: str, options_text: str, picked_id: str | None,
                kind: str | None = AUTO) -> tuple[Question, KindDecision]:
        """(question, why it is asked as its kind). Without options a question is yes/no or open; `kind`
        ("auto", "choice", "yesno", "open") is the person's choice."""
        text = (text or "").strip()
        if not text:
            raise InputError("The question is empty. Fix: type a question, or pick a demo question from the list")
        if len(text) > self.max_question_chars:
            raise InputError(f"The question has {len(text):,} characters; the limit is {self.max_question_chars:,}. "
                             "Fix: shorten it to the question itself (the student reads at most 512 tokens)")
        try:
            decision = decide_kind(text, options_text, kind)
        except DataError as error:
            raise InputError(f"Cannot ask it that way: {error}") from error
        options: dict[str, str] = {}
        if decision.kind == CHOICE:
            try:
                options = parse_options(options_text)
            except DataError as error:
                raise InputError(f"Could not read the options: {error}") from error
        picked = self.questions.get(picked_id or "")
        if (picked is not None and picked.text.strip() == text and picked.kind == decision.kind
                and dict(picked.options) == options_for(decision.kind, options)):
            return picked, decision
        typed = Question("custom", text, options_for(decision.kind, options), None, "custom", kind=decision.kind)
        return typed, decision

    # -- ask ----------------------------------------------------------------------------------------
    def ask(self, text: str, options_text: str, picked_id: str | None = None,
            kind: str | None = AUTO) -> Iterator[AskUpdate]:
        """Retrieve, rerank and stream the student's rationale; the last update carries the item.

        `kind` is how to ask: "auto" (options typed -> multiple choice, else yes/no or open by the
        text), or the person's choice "choice", "yesno", "open".
        """
        question, decision = self.resolve(text, options_text, picked_id, kind)
        waiting = views.rationale_card("Student", "loading the model...", "", note="Loading the student model...")
        yield AskUpdate("", waiting, views.message("Loading the student model (first question only)..."))
        pipeline = self.pipeline()
        name = getattr(getattr(pipeline, "student", None), "name", "student")
        shown = ""
        if getattr(pipeline, "reranker", None) is None and hasattr(pipeline, "retrieve"):
            # BM25 alone takes milliseconds: show the passages before the rationale starts. (With a
            # reranker they appear with the answer, so the candidates are not reranked twice.)
            candidates, passages, _ = pipeline.retrieve(question)
            shown = views.rerank_panel(candidates, [h.passage.id for h in passages], question.text)
        text_so_far = ""
        yield AskUpdate(shown, views.rationale_card("Student", name, "", streaming=True),
                        views.message("Generating the student's rationale..."))
        prediction: Prediction | None = None
        for chunk in pipeline.stream(question):
            if isinstance(chunk, Prediction):
                prediction = chunk
                break
            text_so_far += chunk
            yield AskUpdate(shown, views.rationale_card("Student", name, text_so_far, streaming=True),
                            views.message("Generating the student's rationale..."))
        if prediction is None:
            raise KardError("the pipeline ended without a prediction. Fix: this is a bug in kard.pipeline; "
                            "please report it with the question")
        item = self._seal.seal(item_from_prediction(prediction, decision.reason))
        status = f"Asked as: {decision.label}. Student answered in {prediction.timings.total_s:.2f} s."
        yield AskUpdate(rerank_html(item), student_card(item), views.message(status), item)

    def ask_once(self, text: str, options_text: str, picked_id: str | None = None,
                 kind: str | None = AUTO) -> AskUpdate:
        """The final update of `ask` (for callers that do not stream)."""
        last = None
        for last in self.ask(text, options_text, picked_id, kind):
            pass
        assert last is not None
        return last

    # -- compare ------------------------------------------------------------------------------------
    def _live_teacher(self, question: Question) -> Iterator[str | dict[str, Any]]:
        """Stream the live teacher's reply (text chunks), then its item entry. Raises on failure."""
        started = time.perf_counter()
        teacher = self._teacher_factory()  # type: ignore[misc]
        model = str(getattr(teacher, "model", None) or getattr(getattr(teacher, "config", None), "model", "teacher"))
        first: float | None = None
        if hasattr(teacher, "stream_answer"):
            text = ""
            for chunk in teacher.stream_answer(question):
                first = first if first is not None else time.perf_counter() - started
                text += chunk
                yield text
            rationale, letter = parse_question_answer(text, question)
        else:
            r = teacher.answer(question)
            rationale, letter = r.text, r.answer
        yield {"kind": "live", "model": model, "label": f"live teacher · {model}", "rationale": rationale,
               "answer": letter, "seconds": time.perf_counter() - started, "first_token_s": first}

    def _recorded(self, question: Question) -> dict[str, Any] | None:
        recorded = list(self.recorded.get(question.id, ()))
        if recorded:
            r = recorded[0]
            return {"kind": "recorded", "model": r.source, "label": f"recorded · {r.source}", "rationale": r.text,
                    "answer": r.answer, "seconds": None}
        if question.rationale:
            source = question.rationale_source or "reference"
            _, letter = parse_question_answer(question.rationale, question)
            return {"kind": "recorded", "model": source, "label": f"recorded · {source}",
                    "rationale": question.rationale, "answer": question.answer or letter, "seconds": None}
        return None

    def compare_steps(self, item: Mapping[str, Any] | None) -> Iterator[Comparison]:
        """Like `compare`, streaming a live teacher: partial steps carry only `teacher_html`."""
        item = self._require_item(item)
        question = question_from_dict(item["question"])
        teacher, warning = None, None
        if self._teacher_factory is not None:
            try:
                for step in self._live_teacher(question):
                    if isinstance(step, dict):
                        teacher = step
                    else:
                        card = views.rationale_card("Teacher", "live teacher", step, streaming=True)
                        yield Comparison(card, "", "", "", None, dict(item), partial=True)
            except KardError as error:
                warning = f"The teacher could not answer: {error}"
            except Exception as error:  # noqa: BLE001 - any client failure is shown, never a dead page
                warning = f"The teacher could not answer ({type(error).__name__}). Fix: check OPENAI_BASE_URL and the server"
                log.warning("teacher failed: %s", type(error).__name__)
        teacher = teacher or self._recorded(question)
        item = self._seal.seal({**item, "teacher": teacher})
        note = HOW_TO_TEACHER if warning is None else f"{warning}. {HOW_TO_TEACHER if not self.teacher_configured else ''}"
        student = item["student"]
        if teacher:
            text, source, answer = teacher["rationale"], f"teacher ({teacher['label']})", teacher["answer"]
        else:
            text, source, answer = (student["rationale"] or student.get("raw_output", ""),
                                    f"student ({student['model']})", student["answer"])
        answer = answer or question.answer or student["answer"]
        yield Comparison(teacher_card(item, note), compare_html(item), text, source, answer, item, warning)

    def compare(self, item: Mapping[str, Any] | None) -> Comparison:
        """Fill the teacher's column and the diff, and pick the editor's starting text."""
        last = None
        for last in self.compare_steps(item):
            pass
        assert last is not None
        return last

    def editor_text(self, item: Mapping[str, Any] | None, whose: str) -> tuple[str, str]:
        """(text, label) of the student's or teacher's rationale for the editor."""
        item = self._require_item(item)
        if whose == "student":
            s = item["student"]
            return s["rationale"] or s.get("raw_output", ""), f"student ({s['model']})"
        teacher = item.get("teacher")
        if not teacher:
            raise InputError("There is no teacher or recorded rationale for this question. " + HOW_TO_TEACHER)
        return teacher["rationale"], f"teacher ({teacher['label']})"

    @staticmethod
    def live_diff(original: str, edited: str) -> str:
        if (original or "").strip() == (edited or "").strip():
            return views.message("No edits yet: change the rationale and the differences show here.")
        return views.diff_panel(original or "", edited or "", "original", "your edit")

    # -- save ---------------------------------------------------------------------------------------
    def can_write(self, curator: str | None) -> str:
        """The curator's name if they may save; else an InputError saying how to get write access."""
        if self.mode == "demo":
            raise InputError("This is the read-only demo. Fix: run the app in curator mode "
                             "(KARD_MODE=curator with a login) to save corrections")
        if not curator:
            raise InputError("Sign in to save. Fix: log in as a curator (the login button on a Space, "
                             "or the username/password set in KARD_CURATOR_USER / KARD_CURATOR_PASSWORD)")
        if self.curators and curator not in self.curators:
            raise InputError(f"{curator} is not a curator of this app. Fix: ask its owner to add you to KARD_CURATORS")
        return curator

    def save(self, item: Mapping[str, Any] | None, rationale: str, answer: str | None, rating: int | float | None,
             tags: Sequence[str] | None, marks: Sequence[str | None], note: str, confirmed: bool,
             curator: str | None, original: str = "", original_source: str = "") -> SaveResult:
        """Store the correction as a new revision; ask for confirmation when the rationale disagrees.

        `answer` is an option letter (a yes/no question: A = yes, B = no), or an open question's short text.
        """
        curator = self.can_write(curator)
        item = self._require_item(item, "Ask a question first, then correct the answer and save")
        question = question_from_dict(item["question"])
        rationale = (rationale or "").strip()
        if not rationale:
            raise InputError("The corrected rationale is empty. Fix: write or paste a rationale before saving")
        try:
            check_sizes(rationale, (note or "").strip())
        except DataError as error:
            raise InputError(f"Not saved: {error}") from None
        answer = self._check_answer(question, answer)
        stated = parse_question_answer(rationale, question)[1]
        if stated is not None and not same_answer(stated, answer, question.kind) and not confirmed:
            return SaveResult(f"The rationale concludes {answer_words(stated, question)} but you chose "
                              f"{answer_words(answer, question)}. Fix the rationale, or tick 'save anyway' and "
                              "save again.", saved=False, needs_confirmation=True)
        correction = self._correction(item, question, rationale, answer, rating, tags, marks, note, curator,
                                      original, original_source)
        revision = self.store.save(correction)
        return SaveResult(f"Saved revision {revision.revision} of {revision.item_id} as {curator}.", saved=True,
                          revision=revision.revision)

    @staticmethod
    def _check_answer(question: Question, answer: str | None) -> str:
        """The chosen answer if it fits the question's kind, else an InputError saying what to choose."""
        if question.kind == OPEN:
            text = (answer or "").strip()
            if not text:
                raise InputError("Write the correct short answer before saving (an open question has no options)")
            try:
                check_free_answer(text)
            except DataError as error:
                raise InputError(f"Not saved: {error}") from None
            return text
        if answer not in question.options:
            yes_no = question.kind == YES_NO
            choices = " or ".join(question.options.values()) if yes_no else ", ".join(question.letters)
            raise InputError(f"Choose the correct answer ({choices}) before saving")
        return answer

    @staticmethod
    def chosen_answer(item: Mapping[str, Any] | None, letter: str | None, text: str | None) -> str | None:
        """What the editor's controls say: the typed text for an open question, else the chosen letter."""
        if item and "question" in item and (item["question"].get("kind") or CHOICE) == OPEN:
            return text
        return letter

    def _correction(self, item: Mapping[str, Any], question: Question, rationale: str, answer: str,
                    rating: int | float | None, tags: Sequence[str] | None, marks: Sequence[str | None], note: str,
                    curator: str, original: str, original_source: str) -> Correction:
        used = {d["id"]: i for i, d in enumerate(item["used"])}
        mark_of = {pid: (marks[i] if i < len(marks) else None) for pid, i in used.items()}
        known = {h["id"] for h in item["candidates"]}
        passages = [hit_from_dict(h) for h in item["candidates"]] + \
                   [hit_from_dict(h) for h in item["used"] if h["id"] not in known]
        records = tuple(PassageRecord.from_hit(h, used=h.passage.id in used, mark=mark_of.get(h.passage.id) or None)
                        for h in passages)
        teacher = item.get("teacher") or {}
        student = item["student"]
        bad_tags = [t for t in tags or () if t not in ERROR_TAGS]
        if bad_tags:
            raise InputError(f"Unknown error tags {bad_tags}. Fix: use {', '.join(ERROR_TAGS)}")
        return Correction(
            item_id=item["item_id"], question_id=question.id, question=question.text, options=dict(question.options),
            rationale=rationale, answer=answer, gold_answer=question.answer, dataset=question.dataset,
            passages=records, student_model=student["model"], reranker_model=item.get("reranker"),
            teacher_model=teacher.get("model"), prompt_version=item.get("prompt_version", PROMPT_VERSION),
            decoding=item.get("decoding", {}), student_rationale=student["rationale"], student_answer=student["answer"],
            teacher_rationale=teacher.get("rationale"), teacher_answer=teacher.get("answer"),
            original_rationale=original or teacher.get("rationale") or student["rationale"],
            original_source=original_source or (teacher.get("label") or f"student {student['model']}"),
            rating=int(rating) if rating else None, tags=tuple(tags or ()), note=(note or "").strip(),
            curator=curator, kind=question.kind)

    # -- browse and history -------------------------------------------------------------------------
    BROWSE_COLUMNS = ["item", "rev", "question", "student", "curated", "gold", "rating", "tags", "curator", "saved at"]

    def browse(self, tag: str | None = None, curator: str | None = None,
               disagreements_first: bool = True) -> list[list[Any]]:
        """Rows of the current revision of every saved item (plain text; the table escapes it)."""
        rows = []
        for rev in self.store.latest(tag=tag or None, curator=curator or None, disagreements_first=disagreements_first):
            c = rev.correction
            question = c.question if len(c.question) <= 80 else c.question[:77] + "..."
            shown = [_table_answer(a, c.options, c.kind) for a in (c.student_answer, c.answer, c.gold_answer)]
            rows.append([c.item_id, rev.revision, question, *shown,
                         c.rating or "", ", ".join(c.tags), c.curator, rev.created_at[:19].replace("T", " ")])
        return rows

    def history(self, item_id: str | None) -> tuple[str, list[int]]:
        """The item's revision history as HTML, and its revision numbers (for revert)."""
        if not item_id:
            return views.history_panel([]), []
        revisions = self.store.history(item_id)
        return views.history_panel(revisions), [r.revision for r in revisions]

    def revert(self, item_id: str | None, revision: int | float | None, curator: str | None) -> str:
        curator = self.can_write(curator)
        if not item_id or not revision:
            raise InputError("Pick an item in the table and a revision to revert to")
        new = self.store.revert(item_id, int(revision), curator)
        return f"Reverted {item_id} to revision {new.reverted_from}: saved as revision {new.revision}."

    # -- drafts -------------------------------------------------------------------------------------
    @staticmethod
    def draft(item: Mapping[str, Any] | None, rationale: str, answer: str | None, rating: Any, tags: Sequence[str],
              note: str, marks: Sequence[str | None], original: str, original_source: str) -> dict[str, Any] | None:
        """What the browser keeps so an unsaved correction survives a page refresh."""
        if not item:
            return None
        return {"item": dict(item), "rationale": rationale, "answer": answer, "rating": rating, "tags": list(tags or []),
                "note": note, "marks": list(marks), "original": original, "original_source": original_source,
                "saved_at": time.time()}

    @staticmethod
    def read_draft(text: str | None) -> dict[str, Any] | None:
        """A draft as the browser kept it (JSON); None when there is none or it is unreadable."""
        try:
            draft = json.loads(text) if text else None
        except ValueError:
            return None
        return draft if isinstance(draft, dict) and isinstance(draft.get("item"), dict) else None

    # -- helpers ------------------------------------------------------------------------------------
    def _require_item(self, item: Mapping[str, Any] | None, fix: str = "Ask a question first") -> dict[str, Any]:
        """The item as this server produced it (sealed); nothing, a forged or a changed item is refused."""
        if not item:
            raise InputError(f"Nothing to work on yet. Fix: {fix}")
        if not isinstance(item, Mapping):
            raise InputError("The item is not a JSON object. Fix: send the item /ask or /compare returned, unchanged")
        try:
            return self._seal.check(item)
        except ForgedItemError as error:
            raise InputError(str(error)) from None


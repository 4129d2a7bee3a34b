"""Curating: save a correction as a new revision, browse the saved items, read and revert history, keep drafts.

Plain functions over a `Studio` (bound to Gradio events in `kard.ui.blocks`). Only a curator may
write (`can_write`); a save checks the answer against the question's kind and asks for confirmation
when the rationale concludes something else. A draft is what the browser keeps of an unsaved
correction, so it survives a page refresh.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from kard.annotations import (
    ERROR_TAGS, Correction, Revision, RevisionConflictError, StoreLockedError, carry_forward, check_free_answer,
    check_sizes,
)
from kard.errors import DataError
from kard.kinds import asked_alike, is_blank
from kard.prompts import concluded_answer, same_answer
from kard.records import CHOICE, OPEN, RECALLED_PREFIX, YES_NO, AskedItem, Question, is_recalled
from kard.ui import conflicts, views
from kard.ui.cards import answer_words, table_answer
from kard.ui.studio import InputError, Studio

MAX_MARKED = 5
"""Passages the editor offers relevance marks for: the top-k sent to the student (k <= 5)."""
MAX_TAB_DRAFTS = 8
"""Unsaved corrections the browser keeps, one per tab (kard.ui.blocks.KEEP_DRAFT_JS), the newest 8."""
BROWSE_COLUMNS = ["item", "rev", "question", "student", "curated", "gold", "rating", "tags", "curator", "saved at"]


@dataclass(frozen=True)
class SaveResult:
    message: str
    saved: bool
    needs_confirmation: bool = False
    revision: int | None = None
    warning: str | None = None  # saved, but something the curator must know (the database was started afresh)
    seen: dict[str, Any] | None = None  # what the page keeps for a save of this item again (`conflicts.seen_revision`)


@dataclass(frozen=True)
class Edit:
    """What the correction editor holds: the curator's rationale, answer, rating, tags, marks and note."""

    rationale: str
    answer: str | None
    rating: int | float | None = None
    tags: Sequence[str] = ()
    marks: Sequence[str | None] = ()
    note: str = ""
    original: str = ""
    original_source: str = ""


CURATOR_COMMAND = "KARD_MODE=curator KARD_CURATOR_USER=you KARD_CURATOR_PASSWORD=a-password python app.py"
OWN_COPY = (f"run your own copy in curator mode: pip install -r requirements.txt, then {CURATOR_COMMAND} "
            "(the README says more)")
"""How a visitor of the read-only demo gets an app that saves corrections."""


def can_write(studio: Studio, curator: str | None) -> str:
    """The curator's name if they may save; else an InputError saying how to get write access."""
    if not studio.is_curator:
        raise InputError(f"Corrections cannot be saved in this read-only demo. Fix: {OWN_COPY}")
    if not curator:
        raise InputError("Sign in to save. Fix: log in as a curator (the login button on a Space, "
                         "or the username/password set in KARD_CURATOR_USER / KARD_CURATOR_PASSWORD)")
    if studio.curators and curator not in studio.curators:
        raise InputError(f"{curator} is not a curator of this app. Fix: ask its owner to add you to KARD_CURATORS")
    return curator


def save(studio: Studio, sealed: Mapping[str, Any] | None, edit: Edit, curator: str | None,
         confirmed: bool = False, seen: Mapping[str, Any] | None = None) -> SaveResult:
    """Store the correction as a new revision; ask for confirmation when the rationale disagrees.

    `edit.answer` is an option letter (a yes/no question: A = yes, B = no), or an open question's short text.
    A question corrected before keeps what this edit did not change (`kard.annotations.carry_forward`): its
    earlier marks on passages left unmarked or not shown, and, when the student read the recalled correction,
    the knowledge passages of the revision it goes on from (`going_on_from`).
    A save goes on top of the revision the editor started from, or of the one the page (`seen`) saved last or was
    told of: when someone saved a newer one, nothing is saved and the result says who and what changed
    (`kard.ui.conflicts`); its `seen` then makes the same save, sent again, go on top of that one.
    """
    curator = can_write(studio, curator)
    item = studio.read_item(sealed, "Ask a question first, then correct the answer and save")
    question = item.question
    rationale, note = (edit.rationale or "").strip(), (edit.note or "").strip()
    if is_blank(rationale):
        raise InputError("The corrected rationale is empty. Fix: write or paste a rationale before saving")
    try:
        check_sizes(rationale, note)
    except DataError as error:
        raise InputError(f"Not saved: {error}") from None
    answer = check_answer(question, edit.answer)
    bad_tags = [t for t in edit.tags or () if t not in ERROR_TAGS]
    if bad_tags:
        raise InputError(f"Unknown error tags {bad_tags}. Fix: use {', '.join(ERROR_TAGS)}")
    stated = concluded_answer(rationale, question)
    if stated is not None and not same_answer(stated, answer, question.kind) and not confirmed:
        return SaveResult(f"The rationale concludes {answer_words(stated, question)} but you chose "
                          f"{answer_words(answer, question)}. Fix the rationale, or tick 'save anyway' and "
                          "save again.", saved=False, needs_confirmation=True)
    correction = Correction.from_item(
        item, rationale=rationale, answer=answer, marks=list(edit.marks), rating=int(edit.rating) if edit.rating else None,
        tags=tuple(edit.tags or ()), note=note, curator=curator, original=edit.original,
        original_source=edit.original_source)
    recalled = recalled_correction(studio, item)
    try:  # what the save goes on from is read in the store's write transaction: a save at the same moment is seen
        revision = studio.store.save(
            correction, build_on=lambda latest: carry_forward(correction, going_on_from(item, latest, recalled)),
            expected_revision=conflicts.expected_revision(item, seen))
    except RevisionConflictError as error:
        return SaveResult(conflicts.conflict_message(error), saved=False,
                          seen=conflicts.seen_revision(item.item_id, error.latest.revision))
    except StoreLockedError as error:
        raise StoreLockedError(error.problem, fix="close other programs writing to it (sqlite3 shells, exports) "
                               "and save again; your edit is still in the editor", page_problem=error.page_problem,
                               page_fix="wait a moment and save again; your edit is still in the editor") from error
    return SaveResult(f"Saved revision {revision.revision} of {revision.item_id} as {curator}.", saved=True,
                      revision=revision.revision, warning=recreated_notice(studio),
                      seen=conflicts.seen_revision(item.item_id, revision.revision))


def going_on_from(item: AskedItem, latest: Revision | None, recalled: Correction | None) -> Correction | None:
    """The saved correction a save of `item` goes on from: the item's `latest` revision when it was asked as this kind
    (where the editor started), else the `recalled` correction the student read (`recalled_correction`)."""
    if latest is not None and asked_alike(latest.correction.kind, item.question):
        return latest.correction
    return recalled


def recalled_correction(studio: Studio, item: AskedItem) -> Correction | None:
    """The saved correction of a reworded question that the student read as recalled knowledge, if any."""
    recalled = [h.passage.id[len(RECALLED_PREFIX):] for h in item.used if is_recalled(h.passage.id)]
    other = studio.store.get(recalled[0]) if recalled else None
    return other.correction if other is not None else None


def check_answer(question: Question, answer: str | None) -> str:
    """The chosen answer if it fits the question's kind, else an InputError saying what to choose."""
    if question.kind == OPEN:
        text = (answer or "").strip()
        if is_blank(text):
            raise InputError("Write the correct short answer before saving (an open question has no options)")
        try:
            check_free_answer(text)
        except DataError as error:
            raise InputError(f"Not saved: {error}") from None
        return text
    if answer not in question.options:
        choices = " or ".join(question.options.values()) if question.kind == YES_NO else ", ".join(question.letters)
        raise InputError(f"Choose the correct answer ({choices}) before saving")
    return answer


def chosen_answer(item: Mapping[str, Any] | None, letter: str | None, text: str | None) -> str | None:
    """What the editor's controls say: the typed text for an open question, else the chosen letter."""
    if item and "question" in item and (item["question"].get("kind") or CHOICE) == OPEN:
        return text
    return letter


# -- browse and history -----------------------------------------------------------------------------
def browse(studio: Studio, tag: str | None = None, curator: str | None = None,
           disagreements_first: bool = True) -> list[list[Any]]:
    """Rows of the current revision of every saved item (plain text; the table escapes it)."""
    rows = []
    for rev in studio.store.latest(tag=tag or None, curator=curator or None, disagreements_first=disagreements_first):
        c = rev.correction
        question = c.question if len(c.question) <= 80 else c.question[:77] + "..."
        shown = [table_answer(a, c.options, c.kind) for a in (c.student_answer, c.answer, c.gold_answer)]
        rows.append([c.item_id, rev.revision, question, *shown,
                     c.rating or "", ", ".join(c.tags), c.curator, rev.created_at[:19].replace("T", " ")])
    return rows


def unsaved_edit(current: Mapping[str, Any] | None, rationale: str | None, original: str | None,
                 last_saved: str | None) -> bool:
    """Whether the editor holds a correction nobody saved: there is an item, and the editor's text differs both from
    the text it started from and from what this page saved last."""
    text = (rationale or "").strip()
    return bool(current) and bool(text) and text not in ((original or "").strip(), (last_saved or "").strip())


Review = tuple[int | None, tuple[str, ...], str]
"""The rating, error tags (sorted) and note (stripped) as compared."""


def review_of(rating: int | str | None, tags: Sequence[str] | None, note: str | None) -> Review:
    return (None if rating in (None, "") else int(rating), tuple(sorted(tags or ())), (note or "").strip())


def review_start(saved: Revision | None) -> Review:
    """The rating, error tags and note an item's editor starts from: its saved correction's, else empty."""
    if saved is None:
        return None, (), ""
    return saved.correction.rating, tuple(saved.correction.tags), saved.correction.note or ""


def marks_start(saved: Revision | None, used_ids: Sequence[str]) -> list[str | None]:
    """The marks of the passages `used_ids` (in order) the editor starts from: the `saved` correction's, else none;
    a recalled correction is never marked (`kard.ui.updates.mark_updates` offers no radio for it)."""
    held = saved.correction.relevance if saved is not None else {}
    return [held.get(pid) for pid in used_ids]


def unsaved_review(saved: Revision | None, used_ids: Sequence[str], rating: int | str | None,
                   tags: Sequence[str] | None, note: str | None, *marks: str | None) -> bool:
    """Whether the rating, error tags, note or passage marks were changed and not saved.

    The rating, tags, note and marks (of the passages `used_ids`, in order: `marks_start`) start from the `saved`
    correction's values for a question corrected before (a save updates it), else empty; a mark counts when the
    saved correction does not hold it (a recalled correction is no passage to mark)."""
    if review_of(rating, tags, note) != review_of(*review_start(saved)):
        return True
    held = saved.correction.relevance if saved is not None else {}
    return any(mark and not is_recalled(pid) and held.get(pid) != mark for pid, mark in zip(used_ids, marks))


def empty_table_reason(studio: Studio, tag: str | None, curator: str | None) -> str:
    """Why `browse` found no rows: the filters, or nothing saved yet (and how to save)."""
    if tag or curator:
        return "No saved correction matches these filters. Fix: clear the error tag or curator filter"
    if not studio.is_curator:
        return "Nothing saved here yet: this demo is read-only (corrections are saved in curator mode)"
    return "No corrections saved yet: ask a question in Ask & correct, correct the rationale and save it"


def recreated_notice(studio: Studio) -> str | None:
    """What Browse says above a table that lists only the saves made since the database file was deleted or emptied
    while the app ran (the store started a new, empty one there); None when that never happened."""
    when = studio.store.recreated_at
    if when is None:
        return None
    return (f"The annotation database {studio.store.path.name} was missing or empty at {when:%Y-%m-%d %H:%M} UTC, so "
            "a new, empty one was started there: this table lists only what was saved since. Fix: to get the earlier "
            "corrections back, stop the app and put the old file back, or restore a backup with python -m kard restore")


def history(studio: Studio, item_id: str | None) -> tuple[str, list[int]]:
    """The item's revision history as HTML, and its revision numbers (for revert)."""
    if not item_id:
        return views.history_panel([]), []
    revisions = studio.store.history(item_id)
    return views.history_panel(revisions), [r.revision for r in revisions]


def revert_choice(revisions: Sequence[int], reverted: bool = False) -> int | None:
    """The revision the Revision picker starts on: the one before the latest (the latest is no revert), else None;
    right after a revert (`reverted`) the latest, the revision it made current, so that Revert pressed again is
    refused as "already the current one" instead of reverting the revert."""
    if reverted and revisions:
        return revisions[-1]
    return revisions[-2] if len(revisions) > 1 else (revisions[-1] if revisions else None)


class RevertConflict(InputError):
    """A revert refused because someone saved the item after the Browse tab showed it; `seen` is what the tab keeps
    so that the same revert, sent again, goes on top of the newer revision (`conflicts.seen_revision`)."""

    def __init__(self, text: str, seen: dict[str, Any]) -> None:
        super().__init__(text)
        self.seen = seen


def revert(studio: Studio, item_id: str | None, revision: int | float | None, curator: str | None,
           shown: Mapping[str, Any] | None = None) -> str:
    """Make an earlier revision current again as a new revision; refused when it would change nothing.

    `shown` (`conflicts.seen_revision`: the latest revision the Browse tab showed of the item, or was told of) is the
    revision the revert goes on top of: when someone saved a newer one since, nothing is written and RevertConflict
    says who and what changed. Without it (an API caller) the revert is not checked."""
    curator = can_write(studio, curator)
    if not item_id or not revision:
        raise InputError("Pick an item in the table and a revision to revert to")
    number = int(revision)
    try:  # checked in the write transaction: no revert or save at once slips by
        new = studio.store.revert(item_id, number, curator,
                                  check=lambda revisions: check_revert(revisions, item_id, number),
                                  expected_revision=conflicts.told_revision(item_id, shown))
    except RevisionConflictError as error:
        raise RevertConflict(conflicts.revert_conflict_message(error, number),
                             conflicts.seen_revision(item_id, error.latest.revision)) from None
    return f"Reverted {item_id} to revision {new.reverted_from}: saved as revision {new.revision}."


def check_revert(revisions: Sequence[Revision], item_id: str, revision: int) -> None:
    """An InputError when reverting `item_id` to `revision` would write a revision that changes nothing."""
    old = next((r for r in revisions if r.revision == revision), None)
    if old is None:
        return  # no such revision: the store's error says which to pick
    latest = revisions[-1]
    if len(revisions) == 1:
        raise InputError(f"{item_id} has only revision {revision}: there is no earlier one to revert to")
    if old is latest:
        raise InputError(f"Revision {revision} is already the current one of {item_id}: nothing to revert. "
                         "Fix: pick an earlier revision in the Revision list")
    if replace(old.correction, curator="") == replace(latest.correction, curator=""):
        raise InputError(f"Revision {revision} of {item_id} holds the same correction as the current revision "
                         f"{latest.revision}: nothing to revert. Fix: pick a revision that differs")


# -- drafts -----------------------------------------------------------------------------------------
def unsaved_draft(item: AskedItem, edit: Edit, saved: Revision | None, start_answer: str | None,
                  last_saved: str | None = None) -> bool:
    """Whether the editor holds a correction worth keeping as a draft: a rationale (never an empty one) and something
    changed and not saved. Changed: the text differs from the one the editor started from (`edit.original`), from
    what this page saved last and from the `saved` correction's; or an answer differs from `start_answer`; or the
    rating, tags, note or passage marks differ from the saved correction's (`unsaved_review`)."""
    text = (edit.rationale or "").strip()
    if not text:
        return False
    held = saved.correction.rationale if saved is not None else ""
    if text not in {(edit.original or "").strip(), (last_saved or "").strip(), (held or "").strip()}:
        return True
    answer = (edit.answer or "").strip()
    if answer and answer != (start_answer or "").strip():
        return True
    used_ids = [hit.passage.id for hit in item.used]
    return unsaved_review(saved, used_ids, edit.rating, edit.tags, edit.note, *edit.marks)


def draft(item: Mapping[str, Any] | None, edit: Edit) -> dict[str, Any] | None:
    """What the browser keeps so an unsaved correction survives a page refresh (whether there is one to keep:
    `unsaved_draft`)."""
    if not item:
        return None
    return {"item": dict(item), "rationale": edit.rationale, "answer": edit.answer, "rating": edit.rating,
            "tags": list(edit.tags or []), "note": edit.note, "marks": list(edit.marks), "original": edit.original,
            "original_source": edit.original_source, "saved_at": time.time()}


def read_draft(text: str | None) -> dict[str, Any] | None:
    """A draft as the browser kept it (JSON); None when there is none or it is unreadable."""
    try:
        kept = json.loads(text) if text else None
    except ValueError:
        return None
    return kept if isinstance(kept, dict) and isinstance(kept.get("item"), dict) else None


def draft_edit(kept: Mapping[str, Any]) -> Edit:
    """The editor's state a draft (`read_draft`) holds; TypeError where a field has the wrong type."""
    answer, rating = kept.get("answer"), kept.get("rating")
    texts = [kept.get(key) or "" for key in ("rationale", "note", "original", "original_source")]
    tags, marks = kept.get("tags") or [], kept.get("marks") or []
    if not (isinstance(answer, (str, type(None))) and isinstance(rating, (int, float, type(None)))
            and all(isinstance(text, str) for text in texts) and isinstance(tags, list) and isinstance(marks, list)
            and all(isinstance(tag, str) for tag in tags) and all(isinstance(m, (str, type(None))) for m in marks)):
        raise TypeError("a draft's field has the wrong type")
    rationale, note, original, source = texts
    return Edit(rationale, answer, rating, tuple(tags), marks, note, original, source)

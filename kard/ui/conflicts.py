"""What a curator is told when someone saved the question after their editor opened it.

An item handed out records the revision its editor started from (`AskedItem.base_revision`); a save passes it to
the store, which refuses to write on top of a newer revision (`RevisionConflictError`, checked and written in one
transaction). The page then says who saved what since, and how to go on: Save again saves on top of it (the page
remembers the revision it was told of: `seen`), or asking the question again loads it into the editor. A revert in
the Browse tab is checked the same way, against the latest revision the tab showed.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from kard.annotations import Correction, Revision, RevisionConflictError
from kard.records import AskedItem
from kard.ui.cards import answer_words

EXCERPT_CHARS = 80
"""How much of a changed rationale or note the message quotes."""


def seen_revision(item_id: str, revision: int) -> dict[str, Any]:
    """What the page keeps after a save, or after being told of a newer revision: a save of this item again goes
    on top of `revision`."""
    return {"item_id": item_id, "revision": int(revision)}


def expected_revision(item: AskedItem, seen: Mapping[str, Any] | None) -> int | None:
    """The revision a save of `item` goes on top of: the later of the one its editor started from and the one the
    page saved or was told of (`seen`, for this item); None where neither is known (an item handed out before items
    recorded it): the save is not checked."""
    known = [n for n in (item.base_revision, told_revision(item.item_id, seen)) if n is not None]
    return max(known) if known else None


def told_revision(item_id: str, seen: Mapping[str, Any] | None) -> int | None:
    """The revision `seen` (`seen_revision`) holds for `item_id`; None for another item's, none, or a malformed one
    (a page may send back what it kept in the browser)."""
    if not isinstance(seen, Mapping) or seen.get("item_id") != item_id:
        return None
    told = seen.get("revision")
    return told if isinstance(told, int) and not isinstance(told, bool) else None


def conflict_message(error: RevisionConflictError) -> str:
    """Who saved the item since the editor opened it, what changed, and the two ways on."""
    latest = error.latest
    return (f"Not saved: {_since(error, 'your editor opened')} Fix: press Save again to save yours on top of it (it "
            f"becomes the current revision; revision {latest.revision} stays in the history), or ask the question "
            f"again to load revision {latest.revision} into the editor (copy your text first: asking again replaces "
            "it)")


def revert_conflict_message(error: RevisionConflictError, revision: int) -> str:
    """Who saved the item since the Browse tab showed its history, what changed, and how to revert all the same."""
    latest = error.latest
    return (f"Not reverted: {_since(error, 'you opened')} Fix: press Revert again to revert to revision {revision} on "
            f"top of it (revision {latest.revision} stays in the history), or pick another revision in the "
            "history above, which now shows it")


def _since(error: RevisionConflictError, opened_by: str) -> str:
    """Who saved which revision when after `opened_by` the one the action started from, and what changed."""
    opened = f"revision {error.expected}" if error.expected else "it (no correction was saved then)"
    return f"{_who(error.newer)} after {opened_by} {opened}. {_changes(error.base, error.latest)}"


def _who(newer: Sequence[Revision]) -> str:
    return "; ".join(f"{r.correction.curator or 'someone'} {_did(r)} revision {r.revision} at {_when(r)}"
                     for r in newer)


def _did(revision: Revision) -> str:
    return f"reverted to revision {revision.reverted_from} as" if revision.action == "revert" else "saved"


def _when(revision: Revision) -> str:
    return revision.created_at[:19].replace("T", " ") + " UTC"


def _changes(before: Revision | None, after: Revision) -> str:
    """What revision `after` holds that the editor's starting revision `before` (None: none saved) did not."""
    changed = changed_fields(before.correction if before is not None else None, after.correction)
    if not changed:
        return f"Revision {after.revision} holds the same correction as the one your editor opened."
    return f"Revision {after.revision} {'holds' if before is None else 'changed'} {', '.join(changed)}."


def changed_fields(before: Correction | None, after: Correction) -> list[str]:
    """The fields `after` changed, each with its new value (shortened)."""
    empty = before is None
    pairs = [
        ("the rationale", _quote(after.rationale), empty or before.rationale != after.rationale),
        ("the answer", answer_words(after.answer, after.to_question()), empty or before.answer != after.answer),
        ("the rating", str(after.rating or "none"), (before.rating if before else None) != after.rating),
        ("the error tags", ", ".join(after.tags) or "none", set(before.tags if before else ()) != set(after.tags)),
        ("the note", _quote(after.note) if after.note else "empty", (before.note if before else "") != after.note),
        ("the passage marks", _marks(after), (before.relevance if before else {}) != after.relevance),
    ]
    return [f"{name} (now {value})" for name, value, differs in pairs if differs]


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return f'"{text[:EXCERPT_CHARS]}{"..." if len(text) > EXCERPT_CHARS else ""}"'


def _marks(correction: Correction) -> str:
    return ", ".join(f"{pid}: {mark}" for pid, mark in correction.relevance.items()) or "none"

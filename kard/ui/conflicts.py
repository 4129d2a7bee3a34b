"""What a curator is told when someone saved the question after their editor opened it.

An item handed out records the revision its editor started from (`AskedItem.base_revision`); a save passes it to
the store, which refuses to write on top of a newer revision (`RevisionConflictError`, checked and written in one
transaction). The page then says who saved what since, and how to go on: Save again saves on top of it (the page
remembers the revision it was told of: `seen`), or asking the question again loads it into the editor.
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
    told = seen.get("revision") if isinstance(seen, Mapping) and seen.get("item_id") == item.item_id else None
    told = told if isinstance(told, int) and not isinstance(told, bool) else None
    known = [n for n in (item.base_revision, told) if n is not None]
    return max(known) if known else None


def conflict_message(error: RevisionConflictError) -> str:
    """Who saved the item since the editor opened it, what changed, and the two ways on."""
    latest = error.latest
    opened = f"revision {error.expected}" if error.expected else "it (no correction was saved then)"
    return (f"Not saved: {_who(error.newer)} after your editor opened {opened}. "
            f"{_changes(error.base, latest)} Fix: press Save again to save yours on top of it (it becomes the "
            f"current revision; revision {latest.revision} stays in the history), or ask the question again to "
            f"load revision {latest.revision} into the editor (copy your text first: asking again replaces it)")


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

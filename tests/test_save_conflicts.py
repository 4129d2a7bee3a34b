"""Two curators correcting the same question: a save on top of a revision newer than the editor's start is not
written; the curator is told who saved what, and Save again goes on top (real SQLite files, no model)."""

from __future__ import annotations

import html
import json
import threading
from dataclasses import replace

import pytest

from kard.annotations import AnnotationStore, RevisionConflictError
from kard.errors import DataError
from kard.ui import blocks, curating
from kard.ui.curating import Edit
from test_annotations import correction
from test_app_handlers import asked, compare, studio


@pytest.fixture
def store(tmp_path):
    return AnnotationStore(tmp_path / "a.db")


def test_a_save_expecting_an_older_revision_writes_nothing_and_names_the_newer_one(store):
    assert store.save(correction(curator="alice"), expected_revision=0).revision == 1
    with pytest.raises(RevisionConflictError, match="revision 1 \\(saved by alice at .*expected_revision=1") as caught:
        store.save(correction(rationale="Bob's text", curator="bob"), expected_revision=0)
    assert store.count() == 1 and caught.value.base is None and [r.revision for r in caught.value.newer] == [1]
    assert store.save(correction(rationale="Bob's text", curator="bob"), expected_revision=1).revision == 2
    assert store.save(correction(rationale="no check"), build_on=lambda latest: correction()).revision == 3
    with pytest.raises(RevisionConflictError):
        store.revert("demo:q1", 1, "carol", expected_revision=2)
    assert store.revert("demo:q1", 1, "carol", expected_revision=3).revision == 4
    with pytest.raises(DataError, match="has no revision 2 to save on top of"):
        store.save(correction(item_id="demo:new"), expected_revision=2)


def test_simultaneous_saves_from_the_same_revision_write_exactly_one(tmp_path):
    paths = tmp_path / "race.db"
    AnnotationStore(paths)
    barrier, results = threading.Barrier(4), []

    def save(n: int) -> None:
        own = AnnotationStore(paths)  # one store per writer, as separate app processes would have
        barrier.wait()
        try:
            results.append(own.save(correction(rationale=f"writer {n}"), expected_revision=0).revision)
        except RevisionConflictError:
            results.append("conflict")

    threads = [threading.Thread(target=save, args=(n,)) for n in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(results, key=str) == [1, "conflict", "conflict", "conflict"]
    assert AnnotationStore(paths).count() == 1


def test_the_second_curator_is_told_who_saved_and_what_changed_and_save_again_goes_on_top(store):
    s = studio(store)
    item_a, item_b = compare(s, asked(s)).item, compare(s, asked(s)).item  # two browsers, the same question
    first = curating.save(s, item_a, Edit("A's correction: vitamin C. Answer: A", "A", 1, ["hallucination"],
                                          ["relevant"], "A: checked against the textbook"), "alice")
    assert first.saved and first.revision == 1
    told = curating.save(s, item_b, Edit("B's wording. Answer: A", "A", 4), "bob")
    assert not told.saved and store.count() == 1 and store.get("demo:q1").correction.note.startswith("A: checked")
    assert "Not saved: alice saved revision 1 at " in told.message
    assert " UTC after your editor opened it" in told.message
    for said in ('the rationale (now "A\'s correction', "the error tags (now hallucination)", "the rating (now 1)",
                 'the note (now "A: checked against the textbook")', "the passage marks (now p1: relevant)",
                 "press Save again to save yours on top", "ask the question again to load revision 1"):
        assert said in told.message
    again = curating.save(s, item_b, Edit("B's wording. Answer: A", "A", 4), "bob", seen=told.seen)
    assert again.saved and again.revision == 2 and store.get("demo:q1").correction.curator == "bob"
    assert [r.correction.note for r in store.history("demo:q1")][0] == "A: checked against the textbook"
    follow_up = curating.save(s, item_b, Edit("B, once more. Answer: A", "A", 4), "bob", seen=again.seen)
    assert follow_up.saved and follow_up.revision == 3  # a page's own saves go on without a warning
    stale = curating.save(s, item_a, Edit("A again. Answer: A", "A", 1), "alice", seen=first.seen)
    assert not stale.saved and "bob saved revision 2" in stale.message and "bob saved revision 3" in stale.message
    assert "after your editor opened revision 1" in stale.message


def test_the_page_shows_the_conflict_and_keeps_the_revision_it_was_told_of(store):
    s = studio(store)
    item_a, item_b = compare(s, asked(s)).item, compare(s, asked(s)).item
    assert curating.save(s, item_a, Edit("A's text.", "A", 2), "alice").saved
    shown, confirm, kept, seen = blocks.save(s, item_b, Edit("B's text.", "A", 3), False, "bob")
    assert "kard-msg-warn" in shown and "alice saved revision 1" in shown and seen == {"item_id": "demo:q1",
                                                                                        "revision": 1}
    assert store.count() == 1 and not isinstance(kept, str)  # nothing saved: the tab keeps its draft
    shown, _, kept, seen = blocks.save(s, item_b, Edit("B's text.", "A", 3), False, "bob", seen)
    assert "Saved revision 2" in shown and kept == "B's text." and seen["revision"] == 2


def test_an_item_records_the_revision_its_editor_starts_from(store):
    s = studio(store)
    assert s.read_item(asked(s)).base_revision == 0
    assert curating.save(s, compare(s, asked(s)).item, Edit("Saved once.", "A", 3), "alice").saved
    fresh = compare(s, asked(s))
    assert s.read_item(fresh.item).base_revision == 1 and fresh.editor_text == "Saved once."
    assert curating.save(s, fresh.item, Edit("Saved twice.", "A", 3), "bob").revision == 2
    legacy = s.hand_out(replace(s.read_item(fresh.item), base_revision=None))  # handed out before items kept it
    assert curating.save(s, legacy, Edit("Unchecked.", "A", 3), "carol").revision == 3


def test_a_revert_after_someone_saved_since_the_history_was_shown_is_refused_and_revert_again_goes_on_top(store):
    s = studio(store)
    for text, who in (("First text. Answer: A", "alice"), ("Second text. Answer: A", "alice")):
        assert curating.save(s, compare(s, asked(s)).item, Edit(text, "A", 3), who).saved
    _, picker, shown = blocks.show_history(s, "demo:q1")  # alice's Browse tab: revision 2 latest, picks 1
    assert picker["value"] == 1 and shown == {"item_id": "demo:q1", "revision": 2}
    assert curating.save(s, compare(s, asked(s)).item, Edit("Bob's fix. Answer: A", "A", 5), "bob").revision == 3
    said, history, picker, told = blocks.revert_to(s, "demo:q1", 1, shown, "alice")
    said = html.unescape(said)
    assert store.count() == 3 and store.get("demo:q1").correction.curator == "bob"  # nothing written
    assert "Not reverted: bob saved revision 3 at " in said and "after you opened revision 2" in said
    assert 'the rationale (now "Bob\'s fix.' in said and "the rating (now 5)" in said and "press Revert again" in said
    assert "kard-msg-warn" in said and picker["choices"] == [1, 2, 3] and "value" not in picker
    assert told == {"item_id": "demo:q1", "revision": 3}
    said, _, _, shown = blocks.revert_to(s, "demo:q1", 1, told, "alice")  # Revert again: on top of bob's
    assert "saved as revision 4" in said and store.get("demo:q1").correction.rationale == "First text. Answer: A"
    assert shown == {"item_id": "demo:q1", "revision": 4}
    with pytest.raises(curating.RevertConflict):  # another item's revision is no licence: it checks this one's
        assert curating.save(s, compare(s, asked(s)).item, Edit("Bob again. Answer: A", "A", 5), "bob").saved
        curating.revert(s, "demo:q1", 2, "alice", shown)


def test_a_reload_keeps_the_revision_the_tab_saved_last_so_its_next_save_is_no_conflict(store):
    s = studio(store)
    first = curating.save(s, compare(s, asked(s)).item, Edit("One. Answer: A", "A", 3), "alice")
    second = curating.save(s, compare(s, asked(s)).item, Edit("Two. Answer: A", "A", 3), "alice", seen=first.seen)
    back = compare(s, asked(s)).item  # Next question, then back: the editor opens revision 2
    third = curating.save(s, back, Edit("Three. Answer: A", "A", 3), "alice", seen=second.seen)
    assert third.revision == 3
    edit = Edit("Four, after a reload. Answer: A", "A", 3)
    record = blocks.page_record(s, back, edit, "Three. Answer: A", third.seen)  # what the tab keeps of its editor
    page = blocks.restore_draft(s, curating.read_draft(json.dumps(record)), "alice", 26)
    assert "Restored your unsaved correction" in " ".join(str(value) for value in page)
    seen = blocks.restored_seen(json.dumps(record), back)  # the page has no State left: the record brings it back
    assert seen == {"item_id": "demo:q1", "revision": 3}
    assert curating.save(s, back, edit, "alice", seen=seen).revision == 4
    other = compare(s, asked(s, "q2")).item  # kept per item: another item's record says nothing of this one
    assert blocks.restored_seen(json.dumps({**record, "item": other}), back) is None
    assert blocks.page_record(s, other, edit, "", seen)["seen"] is None
    bob = curating.save(s, compare(s, asked(s)).item, Edit("Bob's. Answer: A", "A", 2), "bob")
    stale = curating.save(s, back, Edit("Five. Answer: A", "A", 3), "alice", seen=seen)
    assert bob.saved and not stale.saved and "bob saved revision 5" in stale.message  # a real conflict still is one

"""The Browse tab's handlers over real SQLite files (no model, no browser): a history or table the store cannot read
says why on the page, a save or Refresh shows the item's history again, and Revert pressed twice does not undo itself.
The page's wiring of these is tested in a browser by test_browse_history_browser."""

from __future__ import annotations

import html
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_annotations import correction
from test_app_handlers import asked, compare, studio

from kard.annotations import AnnotationStore
from kard.config import AnnotationStoreConfig
from kard.ui import blocks, curating
from kard.ui.curating import Edit

FAST = AnnotationStoreConfig(busy_timeout_s=0.05, retries=2, retry_wait_s=0.02)


@pytest.fixture
def store(tmp_path):
    return AnnotationStore(tmp_path / "a.db", FAST)


@contextmanager
def held_exclusively(path: Path) -> Iterator[None]:
    """Another program holds the database with an exclusive lock (a write in EXCLUSIVE locking mode): readers are
    refused too, even in WAL mode."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("UPDATE revisions SET note=note WHERE id=1")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def corrupt(store: AnnotationStore) -> None:
    for file in store.path.parent.glob(store.path.name + "*"):
        file.unlink()
    store.path.write_bytes(b"not a database" * 500)


def test_a_locked_store_shows_why_in_the_history_and_under_the_table_and_names_the_file_only(store):
    store.save(correction())
    with held_exclusively(store.path):
        said, picker, shown = blocks.show_history(studio(store), "demo:q1")
        rows, _, _, note = blocks.browse(studio(store), "", "", True)
    for text in (said, note):
        assert "kard-msg-error" in text and "a.db stayed locked" in html.unescape(text)
        assert str(store.path.parent) not in text and "Fix: wait a moment" in text
    assert "The history of demo:q1 could not be read" in said and "The table was not refreshed" in note
    assert picker["choices"] == [] and picker["value"] is None and shown is None  # nothing to revert from
    assert not isinstance(rows, list)  # the table keeps what it showed
    said, picker, shown = blocks.show_history(studio(store), "demo:q1")  # free again: the app still works
    assert "r1" in said and picker["choices"] == [1] and shown == {"item_id": "demo:q1", "revision": 1}


def test_a_corrupt_store_shows_why_in_the_history_and_under_the_table(store):
    store.save(correction())
    corrupt(store)
    said, picker, _ = blocks.show_history(studio(store), "demo:q1")
    note = blocks.browse(studio(store), "", "", True)[3]
    for text in (said, note):
        assert "a.db: file is not a database" in text and str(store.path.parent) not in text
    assert picker["choices"] == []


def test_a_save_of_the_item_shown_or_refresh_shows_its_history_again_and_a_revert_goes_on_top(store):
    s = studio(store)
    assert curating.save(s, compare(s, asked(s)).item, Edit("First. Answer: A", "A", 3), "alice").saved
    _, _, shown = blocks.show_history(s, "demo:q1")  # Browse shows revision 1
    saved = curating.save(s, compare(s, asked(s)).item, Edit("Second. Answer: A", "A", 3), "alice")
    assert saved.revision == 2
    assert blocks.history_after_save(s, "demo:q2", saved.seen)[0].__class__ is not str  # another item: left alone
    history, picker, shown = blocks.history_after_save(s, "demo:q1", saved.seen)
    assert "r2" in history and picker["choices"] == [1, 2] and shown == {"item_id": "demo:q1", "revision": 2}
    said = blocks.revert_to(s, "demo:q1", picker["value"], shown, "alice")[0]
    assert "saved as revision 3" in said, "a revert after your own save is refused as a conflict"
    store.save(correction(rationale="Bob's.", curator="bob"))  # someone saves it; Refresh shows it
    history, picker, shown = blocks.reshow_history(s, "demo:q1")
    assert "r4" in history and "bob" in history and shown == {"item_id": "demo:q1", "revision": 4}
    assert all(not isinstance(out, str) for out in blocks.reshow_history(s, ""))  # nothing picked: left alone


def test_revert_pressed_twice_is_refused_the_second_time_instead_of_undoing_the_first(store):
    s = studio(store)
    for text in ("First. Answer: A", "Second. Answer: A"):
        assert curating.save(s, compare(s, asked(s)).item, Edit(text, "A", 3), "alice").saved
    _, picker, shown = blocks.show_history(s, "demo:q1")
    assert picker["value"] == 1  # a fresh look starts on the revision before the latest
    said, _, picker, shown = blocks.revert_to(s, "demo:q1", picker["value"], shown, "alice")
    assert "saved as revision 3" in said and picker["value"] == 3  # the picker is on the now-current revision
    said, _, _, _ = blocks.revert_to(s, "demo:q1", picker["value"], shown, "alice")
    assert "already the current one" in said and store.count() == 3
    assert store.get("demo:q1").correction.rationale == "First. Answer: A"
    assert curating.revert_choice([1, 2, 3], reverted=True) == 3 and curating.revert_choice([], reverted=True) is None


def test_the_history_shows_passage_marks_and_says_where_a_revision_changed_only_them():
    from dataclasses import replace

    from kard.annotations import Revision
    from kard.ui.views import history_panel

    unmarked = correction(passages=tuple(replace(p, mark=None) for p in correction().passages))
    marked = correction()  # p1 "Scurvy" relevant, p2 "Rickets" irrelevant; the same rationale
    out = history_panel([Revision(1, 1, "t1", "save", None, unmarked), Revision(2, 2, "t2", "save", None, marked),
                         Revision(3, 3, "t3", "save", None, marked)])
    r3, r2, r1 = out.split('<li class="kard-rev">')[1:]
    assert "Passage marks (changed): Scurvy: relevant; Rickets: irrelevant" in r2
    assert "Passage marks: Scurvy: relevant; Rickets: irrelevant" in r3 and "Passage marks: none" in r1
    hostile = replace(marked.passages[0], title="<img src=x onerror=alert(1)>")
    escaped = history_panel([Revision(1, 1, "t1", "save", None, replace(marked, passages=(hostile,)))])
    assert "<img" not in escaped and "&lt;img src=x" in escaped


def test_the_curator_filter_offers_only_curators_of_current_revisions_and_each_finds_an_item(store):
    store.save(correction(curator="alice"))
    store.save(correction(rationale="Bob's.", curator="bob"))  # alice's revision of demo:q1 is no longer current
    store.save(correction(item_id="demo:q2", question_id="q2", curator="carol"))
    _, _, names, _ = blocks.browse(studio(store), "", "", True)
    assert names["choices"] == ["", "bob", "carol"]
    assert all(blocks.browse(studio(store), "", name, True)[0] for name in names["choices"][1:])
    assert store.curators() == ["alice", "bob", "carol"] and store.curators(latest=True) == ["bob", "carol"]

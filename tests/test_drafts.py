"""The unsaved-correction draft a browser tab keeps: written only for a change nobody saved, never a half-filled one,
and brought back after a refresh with the editor's label (plain functions of kard.ui.blocks and kard.ui.curating)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from kard.annotations import AnnotationStore
from kard.ui import blocks, curating
from kard.ui.ask_events import COMPARING_LABEL, TEACHER_WAITING_LABEL, WAITING_LABEL
from kard.ui.curating import Edit
from kard.ui.updates import editing_label, skips
from tests.test_app_handlers import ScriptedTeacher, asked, compare, save, studio

RESTORED = 26
"""The outputs of the page's draft restore (the list `restored` in blocks.wire_drafts)."""
RESTORED_MESSAGE = "Restored your unsaved correction"


@pytest.fixture
def store(tmp_path):
    return AnnotationStore(tmp_path / "a.db")


def started(s, sealed: dict) -> tuple[dict, Edit]:
    """The item after the compare step, and the editor as that step starts it (nothing changed yet)."""
    c = compare(s, sealed)
    return c.item, Edit(c.editor_text, c.editor_answer, c.editor_rating, tuple(c.editor_tags), [None, None],
                        c.editor_note, c.editor_text, c.editor_source)


def edit_inputs(item: dict, edit: Edit) -> list:
    """AskTab.edit_inputs as the page sends them (two passages marked at most here)."""
    return [item, edit.rationale, edit.answer, None, edit.rating, list(edit.tags), edit.note, edit.original,
            edit.original_source, *edit.marks]


def restored(s, item: dict, edit: Edit) -> list:
    kept = curating.draft(item, edit)
    page = blocks.restore_draft(s, curating.read_draft(json.dumps(kept)), "alice", RESTORED)
    assert len(page) == RESTORED
    return page


def says_restored(page: list) -> bool:
    return any(isinstance(value, str) and RESTORED_MESSAGE in value for value in page)


def test_a_draft_is_kept_only_for_a_change_not_saved(store):
    s = studio(store)
    item, start = started(s, asked(s))
    assert blocks.kept_draft(s, item, start) is None  # the editor as the compare step left it
    assert blocks.kept_draft(s, item, Edit("", None)) is None  # a new item beside the editor's old, empty text
    assert blocks.kept_draft(s, item, Edit("  ", start.answer, 4, original="")) is None  # never an empty rationale
    changes = [{"rationale": "My own correction."}, {"answer": "B"}, {"rating": 2}, {"tags": ("other",)},
               {"note": "checked"}, {"marks": ["irrelevant", None]}]
    for change in changes:
        edit = replace(start, **change)
        kept = blocks.kept_draft(s, item, edit)
        assert kept is not None and kept["item"] == item and kept["rationale"] == edit.rationale, change
        assert blocks.kept_draft(studio(store, mode="demo"), item, edit) is None  # the demo saves nothing

    mine = replace(start, rationale="Scurvy is a lack of vitamin C. Answer: A", rating=4)
    save(s, item, mine.rationale, mine.answer, 4, [], [None, None], "", False, "alice", start.original)
    assert blocks.kept_draft(s, item, mine, last_saved=mine.rationale) is None  # saved: nothing to keep
    assert blocks.kept_draft(s, item, mine) is None  # nor after a refresh (the page forgot what it saved)


def test_the_draft_is_left_as_it_is_while_the_student_answers(store):
    s = studio(store)
    item, start = started(s, asked(s))
    mine = replace(start, rationale="My own correction.")
    new_item = asked(s, "q2")  # handed out; the editor still holds the old item's text and original
    for waiting in (WAITING_LABEL, TEACHER_WAITING_LABEL, COMPARING_LABEL):  # the student, then the teacher answers
        assert blocks.keep_draft(s, waiting, "", *edit_inputs(new_item, mine)) == skips(1)[0], waiting
    label = editing_label(start.original_source)
    assert json.loads(blocks.keep_draft(s, label, "", *edit_inputs(item, mine)))["rationale"] == "My own correction."
    kept = json.loads(blocks.keep_draft(s, label, "", *edit_inputs(item, start)))  # nothing unsaved: the tab's record
    assert kept["unsaved"] is False and kept["item"] == item  # (the page drops its draft; typed text goes into it)
    assert json.loads(blocks.keep_draft(s, label, "", *edit_inputs(item, mine)))["unsaved"] is True
    assert blocks.keep_draft(studio(store, mode="demo"), label, "", *edit_inputs(item, mine)) == ""  # demo: nothing


def test_a_refresh_restores_a_draft_only_with_a_change_and_with_the_editors_label(store):
    s = studio(store)
    item, start = started(s, asked(s))
    plain = [blocks.mode_line(s, "alice"), *skips(RESTORED - 1)]
    assert restored(s, item, start) == plain  # nothing edited: nothing claims to be restored
    assert restored(s, item, Edit("", None)) == plain  # nor an empty editor
    mine = replace(start, rationale="My own correction.")
    assert not says_restored(restored(studio(store, mode="demo"), item, mine))  # the demo never restores

    page = restored(s, item, mine)
    assert says_restored(page) and "My own correction." in page and page[-1] == editing_label(start.original_source)
    save(s, item, "Scurvy is a lack of vitamin C. Answer: A", "A", 4, [], [], "", False, "alice", start.original)
    again, from_saved = started(s, asked(s))
    assert from_saved.original_source.startswith("saved correction (revision 1")
    page = restored(s, again, replace(from_saved, note="checked again"))
    assert says_restored(page) and "Editing the **saved correction (revision 1, alice)**" in page[-1]


def test_a_restored_draft_says_the_live_teacher_failed_not_that_none_is_configured(store):
    def teacher_card_of(s) -> str:
        item, start = started(s, asked(s, "q2"))  # q2 has no recorded rationale to fall back on
        page = restored(s, item, replace(start, rationale="My own correction."))
        return next(value for value in page if isinstance(value, str) and "kard-card kard-teacher" in value)

    failed = teacher_card_of(studio(store, teacher_factory=lambda: ScriptedTeacher(fail=True)))
    assert "live teacher · failed" in failed and "not configured" not in failed
    assert "ask the question again" in failed
    assert "not configured" in teacher_card_of(studio(store))  # no live teacher: how to set one up, as before


def test_a_draft_with_fields_of_the_wrong_type_is_not_restored(store):
    s = studio(store)
    item, start = started(s, asked(s))
    kept = curating.draft(item, replace(start, rationale="My own correction."))
    for broken in ({"rationale": 5}, {"rating": "high"}, {"answer": ["A"]}, {"tags": 3}, {"marks": [1]}):
        page = blocks.restore_draft(s, {**kept, **broken}, "alice", RESTORED)
        assert page == [blocks.mode_line(s, "alice"), *skips(RESTORED - 1)], broken


def test_the_page_writes_drafts_after_the_editors_label_and_restores_it(store):
    demo = blocks.build_app(studio(store))
    events = {getattr(e.fn, "func", e.fn).__name__: e for e in demo.fns.values() if e.fn is not None}
    assert events["keep_page"].inputs[0].elem_id == "kard-editor-label"
    restore = events["restore"]
    assert len(restore.outputs) == RESTORED and restore.outputs[-1].elem_id == "kard-editor-label"


def test_a_draft_kept_before_a_restart_restores_and_saves_after_it(tmp_path):
    """The app restarted (a new Studio on the same store): the item the browser kept still carries a valid seal, since
    the seal key is kept beside the database (owner-only); a store elsewhere has its own key."""
    before = studio(AnnotationStore(tmp_path / "a.db"))
    item, start = started(before, asked(before))
    mine = replace(start, rationale="Scurvy is a lack of vitamin C. Answer: A")

    after = studio(AnnotationStore(tmp_path / "a.db"))
    page = restored(after, item, mine)
    assert says_restored(page) and not any("cannot be saved" in str(value) for value in page)
    assert save(after, item, mine.rationale, "A", None, [], [], "", False, "alice", start.original).saved
    key = tmp_path / "a.db.seal-key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.db", "a.db.seal-key"]  # no temp file left
    assert not studio(AnnotationStore(tmp_path / "other" / "b.db")).sealed_here(item)


def test_a_draft_whose_item_no_longer_verifies_restores_and_says_how_to_save_it(store):
    s = studio(store)
    item, start = started(s, asked(s))
    mine = replace(start, rationale="My own correction.")
    page = restored(s, {**item, "seal": "0" * 64}, mine)  # as after a new key: the seal no longer verifies
    assert "My own correction." in page  # the text stays in the editor
    status = next(value for value in page if isinstance(value, str) and RESTORED_MESSAGE in value)
    assert "kard-msg-warn" in status and "cannot be saved as it is" in status
    assert "Fix: copy your correction from the editor, ask the question again" in status


def test_a_store_in_memory_seals_with_a_key_of_its_own_run_and_writes_no_key_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a key file named after ":memory:" would land
    first = studio(AnnotationStore(":memory:"))
    item = asked(first)
    assert first.sealed_here(item) and not studio(AnnotationStore(":memory:")).sealed_here(item)
    assert list(tmp_path.iterdir()) == []


def test_the_demo_seals_with_a_key_of_its_own_run_and_keeps_no_key_file(tmp_path):
    first = studio(AnnotationStore(tmp_path / "a.db", read_only=True), mode="demo")
    item = asked(first)
    assert first.sealed_here(item)
    assert not studio(AnnotationStore(tmp_path / "a.db", read_only=True), mode="demo").sealed_here(item)
    assert list(tmp_path.iterdir()) == []

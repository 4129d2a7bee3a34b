"""AnnotationStore: append-only revisions, revert, filters, concurrency, locks, read-only files."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from typing import Iterator
from dataclasses import replace

import pytest

from kard.annotations import (
    AnnotationStore,
    AnnotationStoreError,
    Correction,
    PassageRecord,
    StoreLockedError,
    StoreReadOnlyError,
    item_id_for,
)
from kard.config import AnnotationStoreConfig
from kard.errors import DataError
from kard.records import Hit, Passage, Question

FAST = AnnotationStoreConfig(busy_timeout_s=0.05, retries=3, retry_wait_s=0.05)


def correction(**changes) -> Correction:
    base = Correction(
        item_id="demo:q1", question_id="q1", question="Which vitamin deficiency causes scurvy?",
        options={"A": "Vitamin C", "B": "Vitamin D"}, rationale="Scurvy comes from too little vitamin C.",
        answer="A", gold_answer="A", dataset="demo",
        passages=(PassageRecord("p1", "Scurvy", "Scurvy is vitamin C deficiency.", 1, 3.2, 2, 0.4, True, "relevant"),
                  PassageRecord("p2", "Rickets", "Rickets is vitamin D deficiency.", 2, 1.1, 1, 0.9, True, "irrelevant")),
        student_model="tiny-student", reranker_model="tiny-reranker", teacher_model="gpt-test",
        prompt_version="kard-v1", decoding={"max_new_tokens": 128, "samples": 1},
        student_rationale="Rickets is about vitamin D.", student_answer="B",
        teacher_rationale="Vitamin C deficiency causes scurvy.", teacher_answer="A",
        original_rationale="Vitamin C deficiency causes scurvy.", original_source="teacher:gpt-test",
        rating=4, tags=("wrong knowledge",), note="student read the wrong passage", curator="alice",
    )
    return replace(base, **changes)


@pytest.fixture
def store(tmp_path) -> AnnotationStore:
    return AnnotationStore(tmp_path / "annotations.db", FAST)


def test_save_round_trips_every_field(store):
    saved = store.save(correction())
    assert saved.revision == 1 and saved.action == "save" and saved.reverted_from is None
    assert saved.correction == correction()
    assert store.history("demo:q1") == [saved]
    assert saved.correction.relevance == {"p1": "relevant", "p2": "irrelevant"}


def test_saves_are_revisions_never_overwrites(store):
    first = store.save(correction())
    second = store.save(correction(rationale="Second try.", curator="bob"))
    history = store.history("demo:q1")
    assert [r.revision for r in history] == [1, 2]
    assert history[0] == first and history[1] == second
    assert store.get("demo:q1") == second
    assert store.count() == 2


def test_revert_is_a_new_revision_with_old_content(store):
    store.save(correction())
    store.save(correction(rationale="A worse rationale.", answer="B", rating=1))
    reverted = store.revert("demo:q1", 1, "carol")
    assert (reverted.revision, reverted.action, reverted.reverted_from) == (3, "revert", 1)
    assert reverted.correction == correction(curator="carol")
    assert len(store.history("demo:q1")) == 3
    with pytest.raises(DataError, match="no revision 9"):
        store.revert("demo:q1", 9, "carol")


def test_latest_filters_and_disagreements_first(store):
    store.save(correction(item_id="demo:agree", student_answer="A", tags=("other",), curator="bob"))
    store.save(correction(item_id="demo:disagree", student_answer="B", tags=("hallucination",)))
    store.save(correction(item_id="demo:agree2", student_answer="A", tags=(), curator="bob"))
    newest_first = [r.item_id for r in store.latest()]
    assert newest_first == ["demo:agree2", "demo:disagree", "demo:agree"]
    assert store.latest(disagreements_first=True)[0].item_id == "demo:disagree"
    assert [r.item_id for r in store.latest(tag="hallucination")] == ["demo:disagree"]
    assert [r.item_id for r in store.latest(curator="bob")] == ["demo:agree2", "demo:agree"]
    assert store.curators() == ["alice", "bob"]


def test_latest_shows_only_the_current_revision(store):
    store.save(correction(tags=("hallucination",)))
    store.save(correction(tags=("other",)))
    assert [r.revision for r in store.latest()] == [2]
    assert store.latest(tag="hallucination") == []


@pytest.mark.parametrize("bad, message", [
    ({"rationale": "  "}, "rationale is empty"),
    ({"answer": "E"}, "not one of the options"),
    ({"rating": 7}, "outside 1-5"),
    ({"tags": ("typo",)}, "unknown error tags"),
    ({"rationale": "x" * 8_001}, "corrected rationale has 8,001 characters; the limit is 8,000"),
    ({"note": "n" * 1_000_000}, "note has 1,000,000 characters; the limit is 2,000"),
    ({"question": None}, "question is missing"),
    ({"question": " "}, "question is empty"),
    ({"curator": None}, "curator is missing"),
    ({"rationale": None}, "corrected rationale is None, not text"),
    ({"rating": 3.7}, "rating 3.7 is not a whole number"),
    ({"rating": "x"}, "rating 'x' is not a whole number"),
    ({"rating": True}, "not a whole number"),
], ids=["empty", "answer", "rating", "tags", "long-rationale", "long-note", "no-question", "blank-question",
        "no-curator", "no-rationale", "fractional-rating", "text-rating", "bool-rating"])
def test_bad_corrections_are_refused(store, bad, message):
    with pytest.raises(DataError, match=message):
        store.save(correction(**bad))
    assert store.count() == 0


def test_no_credentials_are_stored(store, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-123")
    saved = store.save(correction(decoding={"max_new_tokens": 64, "api_key": "sk-test-secret-123",
                                            "Authorization": "Bearer sk-test-secret-123"}))
    assert saved.correction.decoding == {"max_new_tokens": 64}
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"sk-test-secret-123" not in raw


def test_wal_mode(store):
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_eight_threads_lose_no_row(tmp_path):
    store = AnnotationStore(tmp_path / "a.db", AnnotationStoreConfig(busy_timeout_s=5.0))
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(6):
                store.save(correction(item_id=f"demo:q{i % 2}", curator=f"w{worker}", note=f"{worker}-{i}"))
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count() == 48
    for item in ("demo:q0", "demo:q1"):
        assert [r.revision for r in store.history(item)] == list(range(1, 25))
    notes = {r.correction.note for item in ("demo:q0", "demo:q1") for r in store.history(item)}
    assert notes == {f"{w}-{i}" for w in range(8) for i in range(6)}


def _hold_lock(path, seconds: float, ready: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    ready.set()
    time.sleep(seconds)
    conn.execute("ROLLBACK")
    conn.close()


@contextlib.contextmanager
def locked_by_another_writer(path, seconds: float) -> Iterator[None]:
    """Another connection holds the database locked for `seconds` from entry; the exit waits until it lets go."""
    ready = threading.Event()
    holder = threading.Thread(target=_hold_lock, args=(path, seconds, ready))
    holder.start()
    ready.wait()
    try:
        yield
    finally:
        holder.join()


def test_locked_database_is_retried_until_free(store):
    with locked_by_another_writer(store.path, 0.2):
        saved = store.save(correction())  # first attempts meet the lock, a retry gets through
    assert saved.revision == 1 and store.count() == 1


def test_locked_database_gives_a_clear_error_after_retries(store):
    with locked_by_another_writer(store.path, 1.5):
        with pytest.raises(StoreLockedError, match="stayed locked.*Fix: close other programs") as caught:
            store.save(correction())
    assert store.count() == 0
    assert "editor" not in str(caught.value)  # the store serves the command line too; the app adds its own fix


def test_read_only_store_refuses_writes_but_reads(store):
    store.save(correction())
    reader = AnnotationStore(store.path, FAST, read_only=True)
    assert [r.revision for r in reader.history("demo:q1")] == [1]
    with pytest.raises(StoreReadOnlyError, match="read-only.*KARD_MODE=curator"):
        reader.save(correction())


def test_read_only_store_on_missing_file_reads_empty(tmp_path):
    reader = AnnotationStore(tmp_path / "none.db", FAST, read_only=True)
    assert reader.latest() == [] and reader.count() == 0 and not (tmp_path / "none.db").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes read-only files anyway")
def test_read_only_file_gives_a_clear_error(store):
    store.save(correction())
    for name in os.listdir(store.path.parent):
        os.chmod(store.path.parent / name, 0o444)
    os.chmod(store.path.parent, 0o555)
    try:
        with pytest.raises(StoreReadOnlyError, match="cannot be written"):
            store.save(correction())
    finally:
        os.chmod(store.path.parent, 0o755)


def test_sqlite_read_only_error_is_translated(store):
    def write() -> None:
        raise sqlite3.OperationalError("attempt to write a readonly database")

    with pytest.raises(StoreReadOnlyError, match="cannot be written.*Fix: make the file"):
        store._with_retry(write)


def test_unwritable_folder_gives_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreReadOnlyError, match="KARD_ANNOTATIONS_DB"):
        AnnotationStore(blocker / "a.db", FAST)


def test_item_ids_and_passage_records():
    q = Question("q7", "Text?", {"A": "x", "B": "y"}, "A", dataset="medqa")
    assert item_id_for(q) == "medqa:q7"
    typed = Question("custom", "Text?", {"A": "x", "B": "y"})
    assert item_id_for(typed) == item_id_for(replace(typed)) != item_id_for(replace(typed, text="Other?"))
    hit = Hit(Passage("p1", "T", "body"), 2.5, 3).with_rerank(0.7, 1)
    assert PassageRecord.from_hit(hit, used=True) == PassageRecord("p1", "T", "body", 3, 2.5, 1, 0.7, True, None)


def test_a_file_that_is_not_sqlite_gives_a_clear_error(tmp_path):
    from kard.annotations import AnnotationStoreError

    path = tmp_path / "notes.db"
    path.write_text("hello, not SQLite\n" * 10)
    with pytest.raises(AnnotationStoreError, match=r"notes.db: file is not a database.*Fix"):
        AnnotationStore(path, FAST)
    with pytest.raises(AnnotationStoreError, match="file is not a database"):
        AnnotationStore(path, FAST, read_only=True).latest()


YES_NO = dict(item_id="custom:yn", question_id="custom", question="Would a person with scurvy benefit from oranges?",
              options={"A": "yes", "B": "no"}, kind="yesno", answer="A", gold_answer=None, student_answer="B")
OPEN = dict(item_id="custom:open", question_id="custom", question="Which vitamin deficiency causes scurvy?",
            options={}, kind="open", answer="vitamin C", gold_answer=None, student_answer="Vitamin C.",
            rationale="Scurvy comes from too little vitamin C.\nAnswer: vitamin C")


def test_yes_no_and_open_corrections_round_trip(store):
    yes_no = store.save(correction(**YES_NO)).correction
    assert yes_no == correction(**YES_NO) and yes_no.kind == "yesno" and yes_no.disagreement
    free = store.save(correction(**OPEN)).correction
    assert free == correction(**OPEN) and free.answer == "vitamin C" and free.options == {}
    assert not free.disagreement  # "Vitamin C." and "vitamin C" are the same answer
    assert {r.item_id: r.correction.kind for r in store.latest()} == {"custom:yn": "yesno", "custom:open": "open"}
    question = free.to_question()
    assert (question.kind, question.options, question.answer, question.letters) == ("open", {}, "vitamin C", ())


@pytest.mark.parametrize("bad, message", [
    ({**OPEN, "answer": "  "}, "answer of the open question is empty"),
    ({**OPEN, "answer": "x" * 301}, "the answer has 301 characters; the limit is 300"),
    ({**OPEN, "options": {"A": "x", "B": "y"}}, "open question has no options"),
    ({**YES_NO, "answer": "yes"}, "not one of the options"),
    ({**YES_NO, "options": {"A": "no", "B": "yes"}}, "options A. yes, B. no"),
    ({"kind": "free"}, "unknown question kind 'free'"),
], ids=["open-empty", "open-long", "open-options", "yes-no-text", "yes-no-options", "kind"])
def test_corrections_that_do_not_fit_their_kind_are_refused(store, bad, message):
    with pytest.raises(DataError, match=message):
        store.save(correction(**bad))
    assert store.count() == 0


def test_a_store_from_before_kinds_reads_as_multiple_choice_and_takes_new_saves(tmp_path):
    path = tmp_path / "old.db"
    AnnotationStore(path, FAST).save(correction())
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE revisions DROP COLUMN kind")  # what an older version wrote
    conn.commit()
    conn.close()
    assert AnnotationStore(path, FAST, read_only=True).get("demo:q1").correction == correction()
    store = AnnotationStore(path, FAST)  # opening it for writing adds the column
    store.save(correction(**OPEN))
    assert [r.correction.kind for r in store.latest()] == ["open", "choice"]


def test_a_typed_question_asked_as_another_kind_is_another_item():
    typed = Question("custom", "Is a tomato a fruit?", {"A": "yes", "B": "no"})
    assert item_id_for(replace(typed, kind="yesno")) != item_id_for(typed)
    assert item_id_for(replace(typed, options={}, kind="open")) != item_id_for(replace(typed, options={}))


def test_a_folder_is_not_taken_for_a_database(tmp_path):
    with pytest.raises(AnnotationStoreError, match="is a folder, not an annotation database file. Fix: pass the"):
        AnnotationStore(tmp_path, FAST)
    with pytest.raises(AnnotationStoreError, match="is a folder"):
        AnnotationStore(tmp_path, FAST, read_only=True).latest()


def delete_database(path) -> None:
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.remove(f"{path}{suffix}")


def test_a_database_deleted_while_the_store_is_open_becomes_a_new_empty_store(store, caplog):
    store.save(correction())
    delete_database(store.path)
    with caplog.at_level("WARNING", logger="kard.annotations"):
        assert store.latest() == []  # a read meets the missing file: a new empty store, said in the log
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert str(store.path) in caplog.text and "new, empty store" in caplog.text
    assert store.save(correction(note="after")).revision == 1  # saves go on
    store.path.write_bytes(b"")  # emptied, not deleted: the same
    assert store.save(correction(note="emptied")).revision == 1
    assert [r.correction.note for r in AnnotationStore(store.path, FAST).history("demo:q1")] == ["emptied"]


def test_a_database_deleted_with_its_folder_is_made_again(tmp_path):
    store = AnnotationStore(tmp_path / "store" / "annotations.db", FAST)
    delete_database(store.path)
    os.rmdir(tmp_path / "store")
    assert store.save(correction()).revision == 1


def test_moving_aside_a_file_that_is_no_annotation_database_lets_saves_go_on(store):
    delete_database(store.path)
    with sqlite3.connect(store.path) as other:
        other.execute("CREATE TABLE notes (text)")
    with pytest.raises(AnnotationStoreError, match="no such table.*Fix: check the file.*or move it aside"):
        store.save(correction())
    os.rename(store.path, store.path.with_name("aside.db"))  # the fix the message gives works
    assert store.save(correction()).revision == 1


@pytest.mark.parametrize("field, value", [("rationale", "\u200b\u200b"), ("curator", "\u200b"), ("question", "\x00")])
def test_text_of_invisible_characters_only_is_refused_as_empty(store, field, value):
    with pytest.raises(DataError, match=f"the correction's {field} is empty"):
        store.save(correction(**{field: value}))


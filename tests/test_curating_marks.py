"""Passage marks across revisions: a save goes on from the item's saved correction, and a recalled correction
(kard.recall) is never a passage to mark or to train on."""

from __future__ import annotations

from pathlib import Path

from app_fixtures import QUESTIONS, WritesAtOnce, at_once, tiny_pipeline

from kard.annotations import AnnotationStore, Correction, PassageRecord, carry_forward
from kard.loop.export import build_curated
from kard.recall import StoreRecall
from kard.records import is_recalled
from kard.ui import asking, curating
from kard.ui.curating import Edit
from kard.ui.studio import Studio
from kard.ui.updates import mark_updates

FIXED = "Scurvy is a lack of vitamin C. So the answer is Vitamin C."


def asked_and_compared(studio: Studio) -> asking.Comparison:
    final = list(asking.ask(studio, *asking.pick(studio, "t-scurvy"), "t-scurvy"))[-1]
    return list(asking.compare_steps(studio, final.item))[-1]


def saved(studio: Studio, compared: asking.Comparison, rationale: str, marks: list[str | None]) -> None:
    edit = Edit(rationale, "A", 4, [], marks, "", compared.editor_text, compared.editor_source)
    assert curating.save(studio, compared.item, edit, "alice").saved


def test_saving_again_keeps_the_marks_and_the_knowledge_the_recalled_correction_stood_for(tmp_path: Path) -> None:
    db = tmp_path / "annotations.db"
    pipeline = tiny_pipeline(tmp_path)
    pipeline.recall = StoreRecall(AnnotationStore(db))  # on by default in the app
    studio = Studio(lambda: pipeline, AnnotationStore(db), QUESTIONS, mode="curator")

    first = asked_and_compared(studio)
    read = first.item["used_ids"]
    assert len(read) == 2 and not any(is_recalled(pid) for pid in read)
    saved(studio, first, FIXED, ["relevant", None])

    again = asked_and_compared(studio)  # the student now reads only the saved correction
    assert again.item["used_ids"] == ["correction:demo:t-scurvy"]
    assert again.editor_marks == (None,)
    assert [u["visible"] for u in mark_updates(again.item, list(again.editor_marks))] == [False] * 5  # no radio
    saved(studio, again, FIXED + " Sailors lacked fruit.", ["relevant"])  # a mark sent anyway (API) is not kept

    history = AnnotationStore(db).history("demo:t-scurvy")  # read back from disk
    assert [r.correction.relevance for r in history] == [{read[0]: "relevant"}] * 2
    second = history[1].correction
    assert [p.id for p in second.passages if p.used and not is_recalled(p.id)] == read
    assert all(p.mark is None for p in second.passages if is_recalled(p.id))
    examples, excluded = build_curated(AnnotationStore(db).latest())
    assert not excluded and examples[0].revision == 2
    assert list(examples[0].example.passage_ids) == read  # the real knowledge, never the recalled correction

    pipeline.recall = None  # asked without recall: the radios start from the saved marks
    plain = asked_and_compared(studio)
    assert plain.item["used_ids"] == read and plain.editor_marks == ("relevant", None)
    saved(studio, plain, FIXED, [None, "irrelevant"])
    assert AnnotationStore(db).get("demo:t-scurvy").correction.relevance == {read[0]: "relevant",
                                                                             read[1]: "irrelevant"}


def record(pid: str, used: bool = False, mark: str | None = None) -> PassageRecord:
    return PassageRecord(pid, "", f"text of {pid}", 1, 1.0, used=used, mark=mark)


def test_a_mark_set_now_wins_and_one_on_a_passage_not_shown_stays() -> None:
    earlier = Correction("i", "q", "Q?", {"A": "x", "B": "y"}, "r", "A",
                         passages=(record("a", True, "relevant"), record("b", True), record("c", False, "irrelevant")))
    now = Correction("i", "q", "Q?", {"A": "x", "B": "y"}, "r2", "A",
                     passages=(record("a", True, "irrelevant"), record("d", True)))
    merged = carry_forward(now, earlier)
    assert [(p.id, p.used, p.mark) for p in merged.passages] == [
        ("a", True, "irrelevant"), ("d", True, None), ("c", False, "irrelevant")]  # b: read before, unmarked: gone
    assert carry_forward(now, None) == now


def test_saves_of_one_item_at_the_same_moment_keep_the_marks_the_earlier_one_saved(tmp_path: Path) -> None:
    """Alice marks a passage and saves while Bob saves the same item without marks: both saves read the store
    before either writes, Alice's is written first. Bob's is not written: he is told of Alice's revision, and
    saving again goes on from hers, so it keeps her mark."""
    store = WritesAtOnce(tmp_path / "annotations.db")
    studio = Studio(lambda: tiny_pipeline(tmp_path), store, QUESTIONS, mode="curator")
    compared = asked_and_compared(studio)
    read = compared.item["used_ids"]

    def save_as(curator: str, marks: list[str | None], seen: dict | None = None):
        edit = Edit(f"{FIXED} ({curator})", "A", None, [], marks, curator, compared.editor_text,
                    compared.editor_source)
        return lambda: curating.save(studio, compared.item, edit, curator, seen=seen)

    store.hold("alice", "bob")
    results = at_once(alice=save_as("alice", ["relevant", None]), bob=save_as("bob", [None, None]))

    assert results["alice"].revision == 1 and not results["bob"].saved and "alice saved revision 1" in \
        results["bob"].message
    store._barrier = None  # Bob saves again, alone
    assert save_as("bob", [None, None], results["bob"].seen)().revision == 2
    history = AnnotationStore(tmp_path / "annotations.db").history("demo:t-scurvy")
    assert [r.correction.note for r in history] == ["alice", "bob"]
    assert [r.correction.relevance for r in history] == [{read[0]: "relevant"}] * 2

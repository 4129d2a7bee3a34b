"""Export of curated corrections: latest revisions, exclusion rule, knowledge marks, determinism, formats."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from kard.annotations import AnnotationStore, Correction, PassageRecord
from kard.config import AnnotationStoreConfig
from kard.distill import StudentExample, read_examples
from kard.errors import ConfigError, DataError
from kard.loop.export import (
    DATASET_DIR,
    EXAMPLES_FILE,
    MANIFEST_FILE,
    ExportConfig,
    build_curated,
    export_corrections,
    merge_examples,
)
from kard.knowledge import KnowledgeBase
from kard.prompts import concluded_answer, student_input
from kard.records import Passage, Question

FAST = AnnotationStoreConfig(busy_timeout_s=0.05, retries=2, retry_wait_s=0.02)
OPTIONS = {"A": "Vitamin C", "B": "Vitamin D"}
P1 = PassageRecord("p1", "Scurvy", "Scurvy is vitamin C deficiency.", 1, 3.2, 2, 0.4, True, None)
P2 = PassageRecord("p2", "Rickets", "Rickets is vitamin D deficiency.", 2, 1.1, 1, 0.9, True, "irrelevant")
P3 = PassageRecord("p3", "Citrus", "Oranges and lemons are rich in vitamin C.", 3, 0.8, 3, 0.1, False, "relevant")
P4 = PassageRecord("p4", "Bones", "Bones need calcium.", 4, 0.5, 4, 0.0, False, None)


def correction(**changes) -> Correction:
    base = Correction(
        item_id="demo:q1", question_id="q1", question="Which vitamin deficiency causes scurvy?", options=OPTIONS,
        rationale="Scurvy comes from too little vitamin C.", answer="A", gold_answer="A", dataset="demo",
        passages=(P1, P2, P3, P4), student_model="tiny-student", teacher_model="gpt-test", prompt_version="kard-v1",
        student_rationale="Rickets is about vitamin D.", student_answer="B",
        teacher_rationale="Vitamin C deficiency causes scurvy.", teacher_answer="A",
        original_rationale="Rickets is about vitamin D.", original_source="student tiny-student",
        rating=1, tags=("wrong knowledge",), curator="alice",
    )
    return replace(base, **changes)


@pytest.fixture
def store(tmp_path) -> AnnotationStore:
    store = AnnotationStore(tmp_path / "annotations.db", FAST)
    store.save(correction(rationale="First draft about vitamin C."))
    store.save(correction(curator="bob"))  # latest revision of q1: revision 2 by bob
    store.save(correction(item_id="demo:q0", question_id="q0", question="Which vitamin prevents rickets?",
                          rationale="Rickets comes from a lack of vitamin D.\nAnswer: B", answer="B", gold_answer="B",
                          passages=(P2,), rating=None, tags=(), curator="carol",
                          original_source="teacher:gpt-test", original_rationale="Vitamin D."))
    # excluded items, one per rule
    store.save(correction(item_id="demo:rej", question_id="rej", note="Reject: the question is ambiguous"))
    store.save(correction(item_id="demo:low", question_id="low", rationale="Rickets is about vitamin D.",
                          answer="B", gold_answer=None, rating=2))
    store.save(correction(item_id="demo:gold", question_id="gold", answer="B", rationale="It is vitamin D."))
    store.save(correction(item_id="demo:incons", question_id="incons", rationale="So vitamin D.\nAnswer: B"))
    return store


def expected_q1() -> dict:
    question = Question("q1", "Which vitamin deficiency causes scurvy?", OPTIONS, "A", "demo")
    knowledge = [Passage("p3", "Citrus", "Oranges and lemons are rich in vitamin C."),
                 Passage("p1", "Scurvy", "Scurvy is vitamin C deficiency.")]
    return {
        "id": "q1#curated-r2", "input": student_input(question, knowledge),
        "target": " Scurvy comes from too little vitamin C.\nAnswer: A", "source": "curator:bob",
        "passage_ids": ["p3", "p1"], "question_id": "q1", "method": "kard", "item_id": "demo:q1", "curator": "bob",
        "revision": 2, "original_source": "student tiny-student", "teacher_model": "gpt-test",
        "student_model": "tiny-student", "rating": 1, "tags": ["wrong knowledge"], "dropped_passage_ids": ["p2"],
    }


def records(path):
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for row in rows:
        assert row.pop("created_at")  # a timestamp from the store; everything else is compared whole
    return rows


def test_export_writes_latest_accepted_revisions_as_whole_records(store, tmp_path):
    result = export_corrections(store, tmp_path / "out")
    rows = records(tmp_path / "out" / EXAMPLES_FILE)
    assert [r["item_id"] for r in rows] == ["demo:q0", "demo:q1"]  # sorted by item id, excluded ones gone
    assert rows[1] == expected_q1()
    assert rows[0]["target"] == " Rickets comes from a lack of vitamin D.\nAnswer: B"
    assert rows[0]["passage_ids"] == [] and rows[0]["dropped_passage_ids"] == ["p2"]
    assert rows[0]["input"].endswith("Knowledge: \nExplanation:")
    assert {e.item_id: e.reason for e in result.excluded} == {
        "demo:gold": "corrected answer B differs from the gold answer A",
        "demo:incons": "the rationale concludes B but the chosen answer is A",
        "demo:low": "rated 2 (<= 2) and the rationale was not corrected",
        "demo:rej": "rejected (note starts with 'reject')",
    }
    manifest = json.loads((tmp_path / "out" / MANIFEST_FILE).read_text())
    assert manifest["examples"] == 2 and len(manifest["excluded"]) == 4


def test_export_is_read_by_the_training_reader(store, tmp_path):
    export_corrections(store, tmp_path / "out")
    examples = read_examples(tmp_path / "out" / EXAMPLES_FILE)
    expected = expected_q1()
    assert examples[1] == StudentExample(expected["id"], expected["input"], expected["target"], "curator:bob",
                                         ("p3", "p1"), "q1", "kard")


def test_export_is_deterministic(store, tmp_path):
    export_corrections(store, tmp_path / "a")
    export_corrections(store, tmp_path / "b")
    for name in (EXAMPLES_FILE, MANIFEST_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_hf_dataset_matches_the_jsonl(store, tmp_path):
    from datasets import load_from_disk

    export_corrections(store, tmp_path / "out")
    dataset = load_from_disk(str(tmp_path / "out" / DATASET_DIR))
    rows = [json.loads(line) for line in (tmp_path / "out" / EXAMPLES_FILE).read_text().splitlines()]
    assert dataset.num_rows == 2
    assert [dict(row) for row in dataset] == rows


def test_a_new_revision_and_a_revert_change_what_is_exported(store, tmp_path):
    store.save(correction(rationale="Vitamin C is missing in scurvy.", curator="dave"))
    assert build_curated(store.latest())[0][1].example.target == " Vitamin C is missing in scurvy.\nAnswer: A"
    store.revert("demo:q1", 2, "erin")
    latest = build_curated(store.latest())[0][1]
    assert (latest.revision, latest.curator, latest.example.target) == (
        4, "erin", " Scurvy comes from too little vitamin C.\nAnswer: A")


def test_rule_options(store):
    config = ExportConfig(keep_gold_mismatch=True, keep_inconsistent=True, min_rating=1)
    kept, excluded = build_curated(store.latest(), config)
    assert [e.item_id for e in kept] == ["demo:gold", "demo:incons", "demo:q1"]
    assert {e.item_id: e.reason for e in excluded} == {
        "demo:low": "rated 2 (<= 2) and the rationale was not corrected",
        "demo:q0": "rating None below min_rating 1", "demo:rej": "rejected (note starts with 'reject')"}
    kept, _ = build_curated(store.latest(), ExportConfig(min_rating=2))
    assert kept == []  # every accepted item here is rated 1 or unrated


def test_knowledge_from_kb_uses_the_corrected_rationale_and_drops_irrelevant(store):
    kb = KnowledgeBase.build([Passage(p.id, p.title, p.text) for p in (P1, P2, P3, P4)]
                             + [Passage("p5", "Sailors", "Sailors got scurvy on long voyages without vitamin C.")])
    kept, _ = build_curated(store.latest(), ExportConfig(knowledge_from="kb", top_n=2), knowledge=kb)
    q1 = kept[1].example
    assert q1.passage_ids[0] == "p3"  # marked relevant: first
    assert "p2" not in q1.passage_ids and len(q1.passage_ids) == 2
    assert kept[0].example.passage_ids and "p2" not in kept[0].example.passage_ids
    with pytest.raises(ConfigError, match="needs a knowledge base"):
        build_curated(store.latest(), ExportConfig(knowledge_from="kb"))


def test_empty_store_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no accepted corrections"):
        export_corrections(AnnotationStore(tmp_path / "empty.db", FAST), tmp_path / "out")
    result = export_corrections(AnnotationStore(tmp_path / "empty.db", FAST), tmp_path / "out", allow_empty=True)
    assert result.examples == () and (tmp_path / "out" / EXAMPLES_FILE).read_text() == ""


def test_merge_replaces_corrected_questions_and_oversamples():
    base = [StudentExample("q1#0", "in1", "t1", "teacher", (), "q1"), StudentExample("q1#1", "in1", "t1b", "teacher", (), "q1"),
            StudentExample("q2#0", "in2", "t2", "teacher", (), "q2")]
    fix = [StudentExample("q1#curated-r2", "in1", "fixed", "curator:bob", (), "q1")]
    merged = merge_examples(base, fix, weight=3)
    assert [e.id for e in merged] == ["q2#0", "q1#curated-r2", "q1#curated-r2~1", "q1#curated-r2~2"]
    assert {e.target for e in merged[1:]} == {"fixed"}
    with pytest.raises(ConfigError, match="at least 1"):
        merge_examples(base, fix, weight=0)


YES_NO = dict(item_id="custom:yn", question_id="custom", question="Would a person with scurvy benefit from oranges?",
              options={"A": "yes", "B": "no"}, kind="yesno", answer="A", gold_answer=None, rating=None,
              rationale="Oranges are rich in vitamin C, which scurvy lacks. So the answer is yes.")
OPEN = dict(item_id="custom:open", question_id="custom", question="Which vitamin deficiency causes scurvy?",
            options={}, kind="open", answer="vitamin C", gold_answer=None, rating=None,
            rationale="Scurvy comes from too little vitamin C.\nAnswer: Vitamin C.")


def test_yes_no_and_open_corrections_export_in_their_own_prompts(tmp_path):
    store = AnnotationStore(tmp_path / "kinds.db", FAST)
    store.save(correction(**YES_NO))
    store.save(correction(**OPEN))
    result = export_corrections(store, tmp_path / "out", hf_dataset=False)
    by_item = {row["item_id"]: row for row in records(result.examples_path)}
    yes_no, free = by_item["custom:yn"], by_item["custom:open"]
    asked = Question("custom", YES_NO["question"], {"A": "yes", "B": "no"}, "A", kind="yesno")
    assert yes_no["input"] == student_input(asked, [Passage("p3", "Citrus", "Oranges and lemons are rich in vitamin C."),
                                                    Passage("p1", "Scurvy", "Scurvy is vitamin C deficiency.")])
    assert "A. yes\nB. no" in yes_no["input"] and yes_no["target"].endswith("So the answer is yes.\nAnswer: A")
    assert "Answer: <short answer>" in free["input"] and "\nA. " not in free["input"]
    assert free["target"] == " Scurvy comes from too little vitamin C.\nAnswer: vitamin C"
    trained = {e.question_id: e for e in read_examples(result.examples_path)}  # what retraining reads
    assert trained["custom:open"].target == free["target"] and trained["custom:yn"].input == yes_no["input"]
    assert trained["custom:open"].id == "custom:open#curated-r1"  # typed questions (id "custom") stay apart


@pytest.mark.parametrize("changes, reason", [
    ({**OPEN, "rationale": "Scurvy comes from too little vitamin D.\nAnswer: vitamin D"}, "concludes vitamin D"),
    ({**OPEN, "gold_answer": "Vitamin C", "answer": "iron"}, "differs from the gold answer"),
    ({**YES_NO, "rationale": "Oranges cannot help.\nAnswer: B"}, "concludes B but the chosen answer is A"),
])
def test_open_and_yes_no_corrections_follow_the_exclusion_rule(tmp_path, changes, reason):
    store = AnnotationStore(tmp_path / "kinds.db", FAST)
    store.save(correction(**changes))
    examples, excluded = build_curated(store.latest())
    assert not examples and reason in excluded[0].reason
    kept, _ = build_curated(store.latest(), ExportConfig(keep_gold_mismatch=True, keep_inconsistent=True))
    assert len(kept) == 1


def test_a_low_rating_with_the_teachers_rationale_saved_unchanged_is_a_correction(tmp_path):
    """The rating rates the student's rationale: saving the teacher's (the editor's starting text) over a
    student rated 1 is a fix, kept; the student's own words rated 1 are not."""
    store = AnnotationStore(tmp_path / "t.db", FAST)
    teacher = "Vitamin C deficiency causes scurvy. So the answer is Vitamin C."
    store.save(correction(item_id="demo:t", question_id="t", rationale=teacher, original_rationale=teacher,
                          original_source="recorded", rating=1))
    store.save(correction(item_id="demo:s", question_id="s", rationale="Rickets is about vitamin D.",
                          original_rationale="Rickets is about vitamin D.", answer="B", gold_answer=None, rating=1))
    kept, excluded = build_curated(store.latest())
    assert [e.item_id for e in kept] == ["demo:t"]
    assert {e.item_id: e.reason for e in excluded} == {"demo:s": "rated 1 (<= 2) and the rationale was not corrected"}


def test_export_and_retrain_name_a_database_that_is_not_there_and_create_none(tmp_path, capsys):
    from kard.__main__ import main
    from kard.loop.retrain import RetrainSpec, _corrections

    missing, folder = tmp_path / "nonexist.db", tmp_path / "a-folder"
    folder.mkdir()
    assert main(["export", "--db", str(missing), "--out", str(tmp_path / "e"), "--no-hf"]) == 2
    assert capsys.readouterr().err.startswith(f"error: no annotation database at {missing}. Fix: pass the database")
    assert main(["retrain", "--root", str(tmp_path / "loop"), "--db", str(missing)]) == 2
    assert capsys.readouterr().err.startswith(f"error: no annotation database at {missing}")
    with pytest.raises(DataError, match="no annotation database"):  # a job started from a spec checks it too
        _corrections(RetrainSpec(root=str(tmp_path / "loop"), db=str(missing)), tmp_path / "work")
    assert main(["export", "--db", str(folder), "--out", str(tmp_path / "e"), "--no-hf"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {folder} is a folder, not an annotation database file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-folder"]  # no database, no rounds folder


def test_a_locked_store_tells_the_export_to_try_again_not_to_save(tmp_path):
    import sqlite3

    from kard.annotations import StoreLockedError

    store = AnnotationStore(tmp_path / "a.db", FAST)
    store.save(correction())
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=DELETE")  # a rollback journal: an exclusive lock stops readers too
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreLockedError, match="stayed locked.*Fix: close other programs.*try again$") as caught:
            export_corrections(AnnotationStore.existing(store.path, FAST), tmp_path / "out")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "editor" not in str(caught.value) and "save again" not in str(caught.value)


MC = dict(item_id="demo:mc", question_id="mc", options={"A": "Vitamin C", "B": "Vitamin D", "C": "Iron"},
          answer="C", gold_answer=None, rating=None)


@pytest.mark.parametrize("changes, stated", [
    ({**YES_NO, "rationale": "Oranges do not cure scurvy. So the answer is no."}, "B"),  # a prose yes/no conclusion
    ({**MC, "answer": "A", "rationale": "Iron builds blood. So the answer is iron."}, "C"),  # "the answer is <text>"
    ({**MC, "rationale": "Vitamin D is the one. Answer: B"}, "B"),  # an inline answer, C chosen
    ({**MC, "rationale": "Rickets points to option B, as it is vitamin D."}, "B"),  # "option B"
    ({**OPEN, "rationale": "Scurvy: too little vitamin D. So the answer is vitamin D."}, "vitamin D"),
])
def test_export_excludes_exactly_what_the_apps_save_asks_to_confirm(tmp_path, changes, stated):
    """Rule 4 is the app's own check (kard.ui.curating.save): a rationale saved with 'save anyway' is left out,
    however its conclusion is written."""
    asked = correction(**changes)
    assert concluded_answer(asked.rationale, asked.to_question()) == stated  # what the app's save reads
    store = AnnotationStore(tmp_path / "c.db", FAST)
    store.save(asked)
    examples, excluded = build_curated(store.latest())
    assert examples == [] and excluded[0].reason == f"the rationale concludes {stated} but the chosen answer is " \
                                                    f"{asked.answer}"
    assert len(build_curated(store.latest(), ExportConfig(keep_inconsistent=True))[0]) == 1


def test_an_inline_answer_at_the_end_of_the_rationale_is_in_the_target_once(tmp_path):
    """The browser test saves "... Graves disease. Answer: A": the target states the answer once, on its line."""
    store = AnnotationStore(tmp_path / "i.db", FAST)
    store.save(correction(**MC, rationale="Iron deficiency is no vitamin problem. Answer: C"))
    store.save(correction(**{**OPEN, "rationale": "Scurvy is too little vitamin C. Answer: Vitamin C."}))
    targets = {e.item_id: e.example.target for e in build_curated(store.latest())[0]}
    assert targets == {"demo:mc": " Iron deficiency is no vitamin problem.\nAnswer: C",
                       "custom:open": " Scurvy is too little vitamin C.\nAnswer: vitamin C"}


def test_export_into_an_existing_file_is_refused(store, tmp_path):
    taken = tmp_path / "taken.txt"
    taken.write_text("not a folder")
    with pytest.raises(ConfigError, match="taken.txt is a file, not a folder"):
        export_corrections(store, taken)
    assert taken.read_text() == "not a folder"

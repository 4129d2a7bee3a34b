"""Recall: a saved correction is handed back to the student, alone, when its question is asked again."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from kard.annotations import AnnotationStore, Correction, PassageRecord
from kard.config import AnnotationStoreConfig, GenerationConfig
from kard.knowledge import KnowledgeBase
from kard.loop.export import export_corrections
from kard.pipeline import Pipeline
from kard.recall import CorrectionRecall, StoreRecall, word_overlap
from kard.records import AskedItem, Hit, Passage, Question, final_order, is_recalled, item_id_for
from kard.student import Student
from kard.ui import views
from kard.ui.cards import student_card
from tiny_models import save_tiny_decoder

FAST = AnnotationStoreConfig(busy_timeout_s=0.05, retries=2, retry_wait_s=0.02)
OPTIONS = {"A": "Vitamin C", "B": "Vitamin D"}
QUESTION = Question("q1", "Which vitamin deficiency causes scurvy in sailors?", OPTIONS, "A", "demo")
RATIONALE = "Scurvy is too little vitamin C. So the answer is Vitamin C."
PASSAGES = [Passage("p1", "Rickets", "Rickets is vitamin D deficiency in children."),
            Passage("p2", "Sailors", "Sailors on long voyages once lacked fresh fruit."),
            Passage("p3", "Bones", "Bones need calcium and vitamin D.")]
SHORT = GenerationConfig(max_new_tokens=4)


def correction(question: Question = QUESTION, **changes: object) -> Correction:
    base = Correction(
        item_id=item_id_for(question), question_id=question.id, question=question.text, options=dict(question.options),
        rationale=RATIONALE, answer="A", gold_answer=question.answer, dataset=question.dataset,
        passages=(PassageRecord("p1", "Rickets", "Rickets is vitamin D deficiency in children.", 1, 2.0, None, None, True, None),),
        student_model="tiny", student_rationale="Rickets is vitamin D deficiency.", student_answer="B",
        original_rationale="Rickets is vitamin D deficiency.", original_source="student tiny", curator="alice")
    return replace(base, **changes)


@pytest.fixture
def store(tmp_path: Path) -> AnnotationStore:
    store = AnnotationStore(tmp_path / "annotations.db", FAST)
    store.save(correction())
    return store


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory) -> Student:
    return Student.load(save_tiny_decoder(tmp_path_factory.mktemp("student") / "tiny"))


def test_the_same_item_is_recalled_with_its_latest_revision(store: AnnotationStore) -> None:
    store.save(correction(rationale="Citrus prevents scurvy. " + RATIONALE))
    hit = CorrectionRecall.from_store(store).find(QUESTION)
    assert hit is not None and is_recalled(hit.passage.id)
    assert hit.passage.id == "correction:demo:q1" and hit.passage.text == "Citrus prevents scurvy. " + RATIONALE
    as_open = replace(QUESTION, options={}, kind="open")  # the same listed question asked as another kind
    assert item_id_for(as_open) == item_id_for(QUESTION) and CorrectionRecall.from_store(store).find(as_open) is None
    assert hit.passage.title == ""  # the student would copy a title into its rationale


def test_the_recalled_rationale_ends_with_the_saved_answer_as_training_targets_do(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path / "c.db", FAST)
    store.save(correction(rationale="Scurvy is too little vitamin C, so sailors ate lemons.\nAnswer: A"))
    hit = CorrectionRecall.from_store(store).find(QUESTION)
    assert hit is not None
    assert hit.passage.text == "Scurvy is too little vitamin C, so sailors ate lemons. So the answer is Vitamin C."


def test_a_rewording_with_the_same_options_is_recalled_a_neighbour_is_not(store: AnnotationStore) -> None:
    recall = CorrectionRecall.from_store(store)
    typed = Question("custom", "Which vitamin deficiency causes scurvy among sailors?", OPTIONS, None, "custom")
    assert item_id_for(typed) != item_id_for(QUESTION)
    assert recall.find(typed) is not None  # one word changed of six
    other_options = replace(typed, options={"A": "Vitamin C", "B": "Vitamin K"})
    assert recall.find(other_options) is None
    neighbour = Question("custom", "Which vitamin deficiency causes rickets in children?", OPTIONS, None, "custom")
    assert recall.find(neighbour) is None
    reordered = replace(typed, options={"A": "Vitamin D", "B": "Vitamin C"})
    assert recall.find(reordered) is not None  # the rationale names the option's text, not its letter
    assert word_overlap(frozenset("ab"), frozenset("abcd")) == 0.5 and word_overlap(frozenset(), frozenset()) == 0


def test_only_what_the_export_would_train_on_is_recalled(store: AnnotationStore) -> None:
    store.save(correction(note="reject: the gold label is wrong"))
    assert CorrectionRecall.from_store(store).find(QUESTION) is None
    store.save(correction(rationale="Scurvy is vitamin D deficiency. So the answer is Vitamin D.\nAnswer: B", answer="A"))
    assert CorrectionRecall.from_store(store).find(QUESTION) is None  # inconsistent: concludes B, saved A


def test_the_pipeline_puts_the_correction_first_and_the_student_reads_it(store: AnnotationStore,
                                                                        student: Student) -> None:
    knowledge = KnowledgeBase.build(PASSAGES)
    plain = Pipeline(knowledge, student, generation=SHORT)
    recalled = Pipeline(knowledge, student, generation=SHORT, recall=CorrectionRecall.from_store(store))
    before, after = plain.answer(QUESTION), recalled.answer(QUESTION)
    assert RATIONALE not in before.prompt and RATIONALE in after.prompt
    assert [h.passage.id for h in after.passages] == ["correction:demo:q1"]  # alone: BM25's passages made the
    assert len(before.passages) == 2  # student go on copying them and conclude again
    assert after.candidates[0].passage.id == "correction:demo:q1" and after.candidates[1:] == before.candidates
    assert after.decoding["recalled"] == "correction:demo:q1" and after.decoding["candidates_found"] == len(before.candidates)
    unrelated = Question("q2", "Which bones need calcium?", OPTIONS, "B", "demo")
    assert recalled.answer(unrelated).prompt == plain.answer(unrelated).prompt  # no match: nothing changes


def test_store_recall_sees_a_new_save_without_a_restart(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path / "live.db", FAST)
    recall = StoreRecall(store)
    assert recall.find(QUESTION) is None
    store.save(correction())
    assert recall.find(QUESTION) is not None


def test_store_recall_keeps_answering_when_the_store_cannot_be_read(store: AnnotationStore, tmp_path: Path) -> None:
    recall = StoreRecall(store)
    assert recall.find(QUESTION) is not None
    Path(store.path).write_bytes(b"not a database at all, but long enough to be read as one......" * 20)
    assert recall.find(QUESTION) is not None  # the corrections read before


def test_a_recalled_passage_is_never_exported_as_knowledge(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path / "a.db", FAST)
    recalled = PassageRecord("correction:demo:q1", "Saved correction (revision 1)", RATIONALE, 0, 1.0, None, None, True,
                             "relevant")
    store.save(correction(passages=(recalled, *correction().passages), rationale=RATIONALE + " Fruit helps."))
    result = export_corrections(store, tmp_path / "export")
    example = result.examples[0].example
    assert example.passage_ids == ("p1",) and "Saved correction" not in example.input
    assert store.latest()[0].correction.relevance == {}  # nor a passage mark for the reranker


def test_the_panel_shows_the_correction_first_and_marked(store: AnnotationStore, student: Student) -> None:
    pipeline = Pipeline(KnowledgeBase.build(PASSAGES), student, generation=SHORT, recall=CorrectionRecall.from_store(store))
    prediction = pipeline.answer(QUESTION)
    ordered = final_order(prediction.candidates)
    assert ordered[0].passage.id == "correction:demo:q1"
    html = views.rerank_panel(prediction.candidates, [h.passage.id for h in prediction.passages], QUESTION.text)
    assert "the student read a saved correction of this question" in html
    assert html.index("correction:demo:q1") < html.index('data-passage-id="p1"') and ">saved<" in html
    assert "Saved correction of this question" in html
    reranked = [Hit(Passage("x", "", "x"), 1.0, 2, 5.0, 1), Hit(Passage("y", "", "y"), 2.0, 1, 4.0, 2)]
    assert [h.passage.id for h in final_order([*reranked, ordered[0]])] == ["correction:demo:q1", "x", "y"]
    item = AskedItem.from_prediction(prediction, prompt_version="kard-v1", max_candidates=2)
    assert [h.passage.id for h in item.candidates][0] == "correction:demo:q1"  # kept in what the store saves
    assert item.used[0].passage.id == "correction:demo:q1"
    assert "read the saved correction of this question" in student_card(item)  # its answer is read as such
    plain = Pipeline(KnowledgeBase.build(PASSAGES), student, generation=SHORT).answer(QUESTION)
    assert "saved correction" not in student_card(AskedItem.from_prediction(plain, prompt_version="kard-v1"))


def test_in_the_app_a_saved_correction_goes_first_when_the_question_is_asked_again(tmp_path: Path) -> None:
    from app_fixtures import QUESTIONS, tiny_pipeline

    from kard.ui import asking, curating
    from kard.ui.curating import Edit
    from kard.ui.studio import Studio

    store = AnnotationStore(tmp_path / "app.db", FAST)
    pipeline = tiny_pipeline(tmp_path)
    pipeline.recall = StoreRecall(store)
    studio = Studio(lambda: pipeline, store, QUESTIONS, mode="curator")

    def ask() -> list:
        updates = list(asking.ask(studio, *asking.pick(studio, "t-scurvy"), "t-scurvy"))
        return updates[-1]

    first = ask()
    assert "saved correction" not in first.rerank_html and not any(
        is_recalled(i) for i in first.item["used_ids"])
    fixed = "Scurvy is a lack of vitamin C. So the answer is Vitamin C."
    result = curating.save(studio, first.item, Edit(fixed, "A", 1, ["wrong knowledge"], [None, None], "", "", ""),
                           "alice", False)
    assert result.saved
    again = ask()
    assert again.item["used_ids"] == ["correction:demo:t-scurvy"]
    assert "the student read a saved correction of this question" in again.rerank_html
    assert again.rerank_html.index('data-passage-id="correction:demo:t-scurvy"') < again.rerank_html.index(
        'data-passage-id="scurvy"')


@pytest.mark.parametrize("setting, expected", [(None, True), ("off", False), ("on", True)])
def test_the_app_factory_wires_recall_to_its_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   setting: str | None, expected: bool) -> None:
    import app
    from app_fixtures import tiny_pipeline

    from kard.config import AppConfig

    monkeypatch.setattr(Pipeline, "load", classmethod(lambda cls, **kwargs: tiny_pipeline(tmp_path)))
    if setting is not None:
        monkeypatch.setenv("KARD_RECALL", setting)
    else:
        monkeypatch.delenv("KARD_RECALL", raising=False)
    config = AppConfig.from_env()
    store = AnnotationStore(tmp_path / "f.db", FAST)
    pipeline = app.default_pipeline_factory(config, store)()
    assert isinstance(pipeline.recall, StoreRecall) is expected
    assert AppConfig.from_env(**vars(app.parse_args(["--no-recall"]))).recall is False


def test_cli_ask_recalls_from_an_annotation_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kard.__main__ import main

    store = AnnotationStore(tmp_path / "saved.db", FAST)
    typed = Question("custom", QUESTION.text, OPTIONS, None, "custom")
    store.save(correction(typed))
    facts = tmp_path / "facts.txt"
    facts.write_text("\n".join(p.text for p in PASSAGES) + "\n", encoding="utf-8")
    folder = save_tiny_decoder(tmp_path / "cli-student")
    args = ["ask", QUESTION.text, "--options", "A) Vitamin C B) Vitamin D", "--student", str(folder),
            "--knowledge", str(facts), "--max-new-tokens", "4", "--k", "2", "--reranker", "none"]
    assert main([*args, "--recall", str(tmp_path / "saved.db")]) == 0
    out = capsys.readouterr().out
    assert "Passage (a saved correction of this question, instead of BM25's 3 candidates):" in out
    assert f"saved correction  [correction:{item_id_for(typed)}] {RATIONALE}" in out
    assert main([*args, "--recall", str(tmp_path / "missing.db")]) != 0
    err = capsys.readouterr().err
    assert "no annotation database at" in err and "missing.db" in err and "Fix:" in err


def test_a_recalled_correction_states_its_answer_once(tmp_path: Path) -> None:
    """A rationale saved with an inline "Answer: A" is handed back ending with the option text, not with both."""
    store = AnnotationStore(tmp_path / "a.db", FAST)
    store.save(correction(rationale="Scurvy is too little vitamin C. Answer: A"))
    hit = CorrectionRecall.from_store(store).find(QUESTION)
    assert hit is not None and hit.passage.text == RATIONALE

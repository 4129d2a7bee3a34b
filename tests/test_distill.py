"""The KARD data recipe on a four-passage knowledge base where the right passage is obvious."""

from __future__ import annotations

import json
import random

import pytest

from kard.distill import (
    concluded,
    shuffled_options,
    EmptyRetrievalError,
    StudentExample,
    build_examples,
    by_question,
    default_top_n,
    rationales_from_questions,
    read_examples,
    select_rationales,
    split_questions,
    write_examples,
)
from kard.errors import ConfigError, DataError
from kard.knowledge import KnowledgeBase
from kard.prompts import student_input, student_target
from kard.records import YES_NO_OPTIONS, Passage, Question, Rationale

PASSAGES = [
    Passage("volcano", "Volcano", "A volcano erupts molten lava and ash from the crust of the earth."),
    Passage("penguin", "Penguin", "Penguins are flightless birds that swim in the cold southern ocean."),
    Passage("copper", "Copper", "Copper is a metal that conducts electricity and heat very well."),
    Passage("bamboo", "Bamboo", "Bamboo is a grass that grows quickly, some species a metre per day."),
]
Q_BIRD = Question("q-bird", "Can a penguin fly to Europe?", dict(YES_NO_OPTIONS), "B", "strategyqa")
Q_WIRE = Question("q-wire", "Is copper used in electric wires?", dict(YES_NO_OPTIONS), "A", "strategyqa")
RATIONALES = {
    "q-bird": [Rationale("q-bird", "Penguins are flightless birds. Flying needs wings that lift.", "B", "human")],
    "q-wire": [
        Rationale("q-wire", "Copper conducts electricity well, so wires use copper.\nAnswer: A", "A", "teacher", 0),
        Rationale("q-wire", "Copper is a poor conductor.", "B", "teacher", 1),  # wrong answer: dropped
    ],
}


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return KnowledgeBase.build(PASSAGES)


def test_kard_examples_retrieve_with_the_rationale_and_target_rationale_plus_answer(kb):
    examples = build_examples([Q_BIRD, Q_WIRE], RATIONALES, kb)
    assert [e.id for e in examples] == ["q-bird#0", "q-wire#0"]
    bird, wire = examples
    assert bird.passage_ids == ("penguin",) and wire.passage_ids == ("copper",)  # top-1 for yes/no
    assert bird.input == student_input(Q_BIRD, [PASSAGES[1]])
    assert "Knowledge: Penguin: Penguins are flightless birds" in bird.input
    assert bird.target == student_target(RATIONALES["q-bird"][0].text, "B")
    assert wire.target.endswith("so wires use copper.\nAnswer: A") and wire.target.count("Answer:") == 1
    assert (bird.source, bird.method, bird.question_id) == ("human", "kard", "q-bird")


def test_top_n_is_configurable_and_defaults_follow_the_paper(kb):
    mixed = {"q-bird": [Rationale("q-bird", "Penguins are flightless birds, unlike metal planes made of copper "
                                  "or kites of bamboo.", "B", "human")]}
    examples = build_examples([Q_BIRD], mixed, kb, top_n=3)
    assert examples[0].passage_ids == ("penguin", "copper", "bamboo")
    assert build_examples([Q_BIRD], mixed, kb)[0].passage_ids == ("penguin",)
    assert default_top_n("strategyqa") == 1 and default_top_n("medqa") == 1 and default_top_n("openbookqa") == 10
    science = Question("q-sci", Q_WIRE.text, {"A": "yes", "B": "no", "C": "maybe", "D": "never"}, "A", "openbookqa")
    rationale = Rationale("q-sci", "Copper, bamboo, penguins and a volcano.", "A", "t")
    examples = build_examples([science], {"q-sci": [rationale]}, kb)
    assert len(examples[0].passage_ids) == 4  # top-10 for science, clamped to the four passages


Q_LAVA = Question("q-lava", "What comes out of an erupting volcano?",
                  {"A": "molten lava and ash", "B": "fresh water", "C": "snow", "D": "copper wire"}, "A", "openbookqa")
R_LAVA = {"q-lava": [Rationale("q-lava", "The crust of the earth melts into molten lava; copper melts too.", "A", "t")]}


def test_passages_can_come_from_the_question_as_at_test_time(kb):
    (by_rationale,) = build_examples([Q_LAVA], R_LAVA, kb, top_n=1)
    (by_question,) = build_examples([Q_LAVA], R_LAVA, kb, top_n=1, passages_from="question")
    assert by_rationale.passage_ids == ("volcano",)
    assert by_question.passage_ids == ("volcano",)
    rationale = {"q-lava": [Rationale("q-lava", "Copper is a metal; metals melt.", "A", "t")]}
    assert build_examples([Q_LAVA], rationale, kb, top_n=1)[0].passage_ids == ("copper",)
    (example,) = build_examples([Q_LAVA], rationale, kb, top_n=1, passages_from="question")
    assert example.passage_ids == ("volcano",)  # the question+options query, the rationale's target kept
    assert example.target == student_target(rationale["q-lava"][0].text, "A")
    assert "Knowledge: Volcano: A volcano erupts" in example.input


def test_mixed_passages_hold_the_rationales_best_among_the_questions_in_a_seeded_order(kb):
    rationale = {"q-lava": [Rationale("q-lava", "Bamboo grows quickly; it is a grass.", "A", "t")]}
    question_top2 = build_examples([Q_LAVA], rationale, kb, top_n=2, passages_from="question")[0].passage_ids
    assert "bamboo" not in question_top2
    orders = {build_examples([Q_LAVA], rationale, kb, top_n=2, passages_from="mixed", seed=seed)[0].passage_ids
              for seed in range(12)}
    assert all(sorted(ids) == sorted(["bamboo", question_top2[0]]) for ids in orders)  # the last one replaced
    assert len(orders) == 2  # the rationale's passage is not always first
    again = build_examples([Q_LAVA], rationale, kb, top_n=2, passages_from="mixed", seed=3)[0].passage_ids
    assert again == build_examples([Q_LAVA], rationale, kb, top_n=2, passages_from="mixed", seed=3)[0].passage_ids
    # already among the question's: nothing is replaced, nothing doubled
    (example,) = build_examples([Q_LAVA], R_LAVA, kb, top_n=2, passages_from="mixed")
    assert sorted(example.passage_ids) == sorted(question_top2)
    with pytest.raises(ConfigError, match="passage source"):
        build_examples([Q_LAVA], R_LAVA, kb, passages_from="answer")


def test_reasoning_distillation_has_no_knowledge_and_finetune_is_question_to_letter(kb):
    reasoning = build_examples([Q_BIRD, Q_WIRE], RATIONALES, method="reasoning")
    assert [e.passage_ids for e in reasoning] == [(), ()]
    assert "Knowledge:" not in reasoning[0].input and reasoning[0].input == student_input(Q_BIRD, with_knowledge=False)
    assert reasoning[0].target == student_target(RATIONALES["q-bird"][0].text, "B")
    finetune = build_examples([Q_BIRD, Q_WIRE], method="finetune")
    assert [(e.id, e.target, e.method) for e in finetune] == [("q-bird", " B", "finetune"), ("q-wire", " A", "finetune")]
    assert finetune[0].input.endswith("Answer:")


def test_reference_rationales_of_the_questions_are_used_when_none_given(kb):
    question = Question("q-v", "Is lava hot?", dict(YES_NO_OPTIONS), "A", "strategyqa",
                        rationale="A volcano erupts molten lava.", rationale_source="human (FLAN)")
    assert rationales_from_questions([question, Q_BIRD]) == {
        "q-v": [Rationale("q-v", "A volcano erupts molten lava.", "A", "human (FLAN)")]}
    (example,) = build_examples([question], knowledge=kb)
    assert example.passage_ids == ("volcano",) and example.source == "human (FLAN)"


def test_select_rationales_drops_wrong_and_duplicate_ones():
    duplicate = {"q-wire": RATIONALES["q-wire"] + [Rationale("q-wire", "Copper conducts electricity well, so wires "
                                                             "use copper.", "A", "teacher", 2)]}
    pairs = select_rationales([Q_WIRE], duplicate)
    assert [r.sample_index for _, r in pairs] == [0]


def test_rationale_without_an_answer_is_a_clear_error_unless_skipped(kb):
    unanswered = {"q-bird": [Rationale("q-bird", "Penguins cannot fly.", None, "teacher")], "q-wire": RATIONALES["q-wire"]}
    with pytest.raises(DataError, match=r"1 rationale\(s\) have no answer \(q-bird#0\).*skip_unanswered"):
        build_examples([Q_BIRD, Q_WIRE], unanswered, kb)
    examples = build_examples([Q_BIRD, Q_WIRE], unanswered, kb, skip_unanswered=True)
    assert [e.id for e in examples] == ["q-wire#0"]


def test_empty_set_after_filtering_is_a_clear_error(kb):
    wrong = {"q-bird": [Rationale("q-bird", "Penguins fly south.", "A", "teacher")]}
    with pytest.raises(DataError, match="no training examples are left after filtering 1 question"):
        build_examples([Q_BIRD], wrong, kb)
    with pytest.raises(DataError, match="no training examples are left"):
        build_examples([Q_BIRD], {"other-id": RATIONALES["q-bird"]}, kb)
    with pytest.raises(DataError, match="no questions"):
        build_examples([], RATIONALES, kb)


def test_knowledge_base_that_returns_nothing_is_a_clear_error_or_a_policy(kb):
    nothing = {"q-bird": [Rationale("q-bird", "Zebras gallop across savannahs.", "B", "teacher")],
               "q-wire": RATIONALES["q-wire"]}
    with pytest.raises(EmptyRetrievalError, match=r"no passage for 1 rationale\(s\) \(questions q-bird\).*skip"):
        build_examples([Q_BIRD, Q_WIRE], nothing, kb)
    assert [e.id for e in build_examples([Q_BIRD, Q_WIRE], nothing, kb, on_empty_retrieval="skip")] == ["q-wire#0"]
    kept = build_examples([Q_BIRD, Q_WIRE], nothing, kb, on_empty_retrieval="keep")
    assert kept[0].passage_ids == () and "Knowledge: \nExplanation:" in kept[0].input


def test_bad_settings(kb):
    with pytest.raises(ConfigError, match="unknown method"):
        build_examples([Q_BIRD], RATIONALES, kb, method="distil")
    with pytest.raises(ConfigError, match="needs a knowledge base"):
        build_examples([Q_BIRD], RATIONALES)
    with pytest.raises(ConfigError, match="top_n must be at least 1"):
        build_examples([Q_BIRD], RATIONALES, kb, top_n=0)
    with pytest.raises(ConfigError, match="on_empty_retrieval"):
        build_examples([Q_BIRD], RATIONALES, kb, on_empty_retrieval="ignore")


def test_jsonl_round_trip_and_bad_files(kb, tmp_path):
    examples = build_examples([Q_BIRD, Q_WIRE], RATIONALES, kb)
    path = write_examples(examples, tmp_path / "data" / "train.jsonl")
    assert read_examples(path) == examples
    first = json.loads(path.read_text().splitlines()[0])
    assert set(first) == {"id", "input", "target", "source", "passage_ids", "question_id", "method"}
    minimal = tmp_path / "minimal.jsonl"
    minimal.write_text(json.dumps({"id": "x", "input": "in", "target": "out", "source": "curator", "extra": 1}) + "\n\n")
    assert read_examples(minimal) == [StudentExample("x", "in", "out", "curator")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(first) + "\n" + json.dumps({"id": "y", "input": "in"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl, line 2: .*missing field\(s\) target, source"):
        read_examples(bad)
    bad.write_text("{not json\n")
    with pytest.raises(DataError, match="line 1"):
        read_examples(bad)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="empty"):
        read_examples(tmp_path / "empty.jsonl")
    with pytest.raises(DataError, match="not found"):
        read_examples(tmp_path / "missing.jsonl")


def test_split_questions_is_seeded_disjoint_and_complete():
    questions = [Question(f"q{i}", f"question {i}?", dict(YES_NO_OPTIONS), "A") for i in range(20)]
    train, held = split_questions(questions, 5, seed=1)
    assert len(held) == 5 and len(train) == 15 and not {q.id for q in train} & {q.id for q in held}
    assert split_questions(list(reversed(questions)), 5, seed=1)[1] == sorted(held, key=lambda q: -int(q.id[1:]))
    assert len(split_questions(questions, 0.25)[1]) == 5
    with pytest.raises(ConfigError, match="leaves no training question"):
        split_questions(questions, 20)


def test_build_examples_command_writes_jsonl(kb, tmp_path, capsys):
    from kard.__main__ import main

    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(json.dumps(row) for row in [
        {"id": "q-bird", "question": Q_BIRD.text, "options": {"A": "yes", "B": "no"}, "answer": "B",
         "rationale": RATIONALES["q-bird"][0].text},
        {"id": "q-wire", "question": Q_WIRE.text, "options": {"A": "yes", "B": "no"}, "answer": "A",
         "rationale": "Copper conducts electricity, so wires use copper."},
    ]) + "\n")
    rationales = tmp_path / "rationales.jsonl"
    rationales.write_text(json.dumps({"question_id": "q-wire", "rationale": "Copper conducts electricity.",
                                      "answer": "A", "source": "teacher"}) + "\n")
    kb.save(tmp_path / "kb")
    out = tmp_path / "examples.jsonl"
    argv = ["build-examples", "--questions", str(questions), "--kb", str(tmp_path / "kb"), "--out", str(out)]
    assert main(argv + ["--rationales", str(rationales)]) == 0
    assert [(e.id, e.passage_ids, e.source) for e in read_examples(out)] == [("q-wire#0", ("copper",), "teacher")]
    assert "wrote 1 kard examples from 2 questions" in capsys.readouterr().out
    assert main(argv + ["--method", "finetune"]) == 0 and len(read_examples(out)) == 2
    rationales.write_text(json.dumps({"question_id": "q-wire", "rationale": "Bamboo is a grass that grows quickly.",
                                      "answer": "A", "source": "teacher"}) + "\n")
    assert main(argv + ["--rationales", str(rationales)]) == 0 and read_examples(out)[0].passage_ids == ("bamboo",)
    assert main(argv + ["--rationales", str(rationales), "--passages-from", "question"]) == 0
    assert read_examples(out)[0].passage_ids == ("copper",)
    assert main(argv[:-2] + ["--out", str(tmp_path / "x.jsonl"), "--kb", str(tmp_path / "none")]) == 2
    assert "knowledge base not found" in capsys.readouterr().err


def test_shuffled_options_keep_the_gold_text_and_spread_the_letters():
    question = Question("q-sun", "What heats the Earth?", {"A": "the sun", "B": "the moon", "C": "a lamp", "D": "ice"},
                        "A", "openbookqa")
    letters = set()
    for seed in range(12):
        moved = shuffled_options(question, random.Random(seed))
        assert sorted(moved.options.values()) == sorted(question.options.values())
        assert moved.options[moved.answer] == "the sun"
        letters.add(moved.answer)
    assert len(letters) >= 3
    assert shuffled_options(Q_BIRD, random.Random(0)) == Q_BIRD  # yes/no keeps A = yes, B = no


def test_concluded_rationale_names_the_gold_option_once():
    question = Question("q-sun", "What heats the Earth?", {"A": "the moon", "B": "the sun."}, "B")
    assert concluded("The sun gives heat.", question) == "The sun gives heat. So the answer is the sun."
    assert concluded("The sun gives heat. So the answer is the sun.", question).count("So the answer") == 1
    assert concluded("The sun gives heat. Answer: B", question) == "The sun gives heat. So the answer is the sun."


def test_build_examples_shuffles_and_concludes_but_not_when_the_rationale_names_letters(kb):
    question = Question("q-sun", "What heats the Earth?", {"A": "the sun", "B": "the moon", "C": "a lamp", "D": "ice"},
                        "A", "openbookqa")
    plain = {"q-sun": [Rationale("q-sun", "The sun heats the Earth.", "A", "human")]}
    lettered = {"q-sun": [Rationale("q-sun", "Option A is the sun, which heats the Earth.", "A", "human")]}
    moved = [build_examples([question], plain, kb, shuffle=True, conclude=True, seed=s, top_n=1)[0] for s in range(8)]
    assert all(e.target.startswith(" The sun heats the Earth. So the answer is the sun.\nAnswer: ") for e in moved)
    assert {e.target[-1] for e in moved} != {"A"}
    for example in moved:  # the letter in the target is the sun's letter in that example's prompt
        assert f"\n{example.target[-1]}. the sun\n" in example.input
    kept = build_examples([question], lettered, kb, shuffle=True, conclude=True, seed=3, top_n=1)[0]
    assert "\nA. the sun\n" in kept.input and kept.target.endswith("Answer: A")
    finetune = [build_examples([question], method="finetune", shuffle=True, seed=s)[0] for s in range(8)]
    assert {e.target for e in finetune} != {" A"}


def test_rationales_as_a_list_are_named_and_by_question_groups_them(kb):
    listed = [r for rs in RATIONALES.values() for r in rs]
    with pytest.raises(DataError, match="rationales must map question id -> rationales, got a list.*by_question"):
        build_examples([Q_BIRD, Q_WIRE], listed, kb)
    assert by_question(listed) == RATIONALES and len(build_examples([Q_BIRD, Q_WIRE], by_question(listed), kb)) == 2


def test_questions_without_reference_rationales_point_to_the_importers(kb):
    bare = Question("q-v", "Is lava hot?", dict(YES_NO_OPTIONS), "A", "strategyqa", facts=("Lava is molten rock.",))
    with pytest.raises(DataError, match="none of the 1 question.s. carries a reference rationale.*import-rationales"):
        build_examples([bare], knowledge=kb)


def test_questions_without_rationales_or_facts_are_not_pointed_to_facts(kb):
    bare = Question("q-m", "Which gas do plants absorb?", {"A": "oxygen", "B": "carbon dioxide"}, "B", "medqa")
    with pytest.raises(DataError, match="nor gold facts.*--kind medqa-gpt4") as raised:
        build_examples([bare], knowledge=kb)
    assert "facts`" not in str(raised.value) and "obqa-facts" not in str(raised.value)

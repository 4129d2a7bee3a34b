"""Loaders: real benchmark files (counts from shared/data/README.md) and every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kard.datasets import (
    load_demo_questions,
    load_medqa,
    load_medqa_instructions,
    load_openbookqa,
    load_passages,
    load_questions,
    load_strategyqa,
    parse_instruction_input,
)
from kard.errors import DataError
from kard.records import Passage, Question


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, records: list[dict]) -> Path:
    return write_lines(path, [json.dumps(record) for record in records])


# ---------------------------------------------------------------- real files


def test_openbookqa_counts_and_records(shared_data: Path) -> None:
    train = load_questions(shared_data / "openbookqa" / "train.jsonl")
    dev = load_questions(shared_data / "openbookqa" / "dev.jsonl")
    assert (len(train), len(dev)) == (4957, 500)
    assert train[0] == Question(
        id="7-980", text="The sun is responsible for",
        options={"A": "puppies learning new tricks", "B": "children growing up and getting old",
                 "C": "flowers wilting in a vase", "D": "plants sprouting, blooming and wilting"},
        answer="D", dataset="openbookqa")
    assert all(q.facts == () for q in train)


def test_openbookqa_complete_keeps_fact1(shared_data: Path) -> None:
    train = load_openbookqa(shared_data / "openbookqa" / "train_complete.jsonl")
    dev = load_openbookqa(shared_data / "openbookqa" / "dev_complete.jsonl")
    assert (len(train), len(dev)) == (4957, 500)
    assert train[0].facts == ("the sun is the source of energy for physical cycles on Earth",)
    assert all(len(q.facts) == 1 for q in train + dev)


def test_open_book_and_crowd_facts(shared_data: Path) -> None:
    book = load_passages(shared_data / "openbookqa" / "openbook.txt")
    assert len(book) == 1326
    assert book[0] == Passage(id="openbook-1", title="", text="A bee is a pollinating animal")
    assert not any(p.text.startswith('"') or p.text.endswith('"') for p in book)
    crowd = load_passages(shared_data / "openbookqa" / "crowdsourced-facts.txt")
    raw_lines = (shared_data / "openbookqa" / "crowdsourced-facts.txt").read_text().splitlines()
    assert len(raw_lines) == 5167
    assert len(crowd) == 5167 - sum(not line.strip() for line in raw_lines)  # one blank line is skipped
    assert crowd[0].id == "crowdsourced-facts-2" and crowd[0].text == "-2+2=0"


def test_strategyqa(shared_data: Path) -> None:
    questions = load_questions(shared_data / "strategyqa" / "train.json")
    assert len(questions) == 2061
    first = questions[0]
    assert first.id == "2bc9c4f9c19c167187f2"
    assert first.options == {"A": "yes", "B": "no"} and first.answer == "A"
    assert first.facts[0] == "Julius Caesar had three children." and len(first.facts) == 3
    assert first.meta == {"term": "Genghis Khan", "description": "founder and first Great Khan of the Mongol Empire"}
    assert {q.answer for q in questions} == {"A", "B"}
    assert all(q.dataset == "strategyqa" for q in questions)


def test_strategyqa_paragraphs(shared_data: Path) -> None:
    passages = load_passages(shared_data / "strategyqa" / "wiki_paragraphs.jsonl")
    assert len(passages) == 17645
    assert passages[0].id == "Julius Caesar-75" and passages[0].title == "Julius Caesar"


def test_medqa_dev(shared_data: Path) -> None:
    questions = load_questions(shared_data / "medqa" / "dev.jsonl")
    assert len(questions) == 636
    first = questions[0]
    assert first.id == "medqa-dev-0" and first.answer == "B"
    assert first.options["B"] == "Tell the attending that he cannot fail to disclose this mistake"
    assert first.meta == {"meta_info": "step1"}
    raw = [json.loads(line) for line in (shared_data / "medqa" / "dev.jsonl").read_text().splitlines()]
    assert [q.id for q in questions] == [f"medqa-dev-{r['source_index']}" for r in raw]
    assert all(q.answer_text == r["answer"].strip() for q, r in zip(questions, raw))


def test_medqa_instruction_subset(shared_data: Path) -> None:
    path = shared_data / "medqa" / "train_subset_instruction_format.jsonl"
    questions = load_questions(path)
    assert len(questions) == 802
    assert load_medqa_instructions(path) == questions
    assert questions[0].id == "medqa-train-0" and questions[0].answer == "A"
    assert questions[0].text.startswith("A 3-month-old baby died suddenly")
    assert questions[0].options["A"] == "Placing the infant in a supine position on a firm mattress while sleeping"
    assert {len(q.options) for q in questions} == {4, 5}
    # Ten outputs carry a stray '\n"'; they still map to their option.
    assert questions[110].answer == "E" and questions[110].answer_text == "Urinary output"
    assert len({q.id for q in questions}) == 802


# ---------------------------------------------------------------- small formats


def test_parse_instruction_input_multiline_question() -> None:
    stem, options = parse_instruction_input("Question: Line one.\nLine two?\nOption A: x\nOption B: y z")
    assert stem == "Line one.\nLine two?"
    assert options == {"A": "x", "B": "y z"}


def test_demo_format(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "q.jsonl", [
        {"id": "d1", "kind": "yesno", "question": "Is ice cold?", "options": {"A": "yes", "B": "no"},
         "answer": "A", "rationale": "Ice is frozen water.", "rationale_source": "kard-studio authors"},
        {"id": "d2", "kind": "medical", "question": "Q?", "options": {"A": "a", "B": "b", "C": "c", "D": "d"},
         "answer": "C", "rationale": "Because.", "rationale_source": "kard-studio authors"},
    ])
    questions = load_questions(path)
    assert questions == load_demo_questions(path)
    assert questions[0] == Question(id="d1", text="Is ice cold?", options={"A": "yes", "B": "no"}, answer="A",
                                    dataset="demo-yesno", rationale="Ice is frozen water.",
                                    rationale_source="kard-studio authors")
    assert questions[1].dataset == "demo-medical"


def test_demo_files_load_when_present() -> None:
    from kard.config import DEMO_PASSAGES, DEMO_QUESTIONS
    from kard.datasets import load_demo_passages

    if not DEMO_QUESTIONS.exists() or not DEMO_PASSAGES.exists():
        pytest.skip("demo files not written yet")
    questions = load_demo_questions()
    assert questions and all(q.dataset.startswith("demo-") and q.answer in q.options for q in questions)
    assert load_demo_passages()


def test_passage_jsonl_title_optional_and_numbers_as_ids(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "p.jsonl", ['{"id": 7, "text": " Seven. "}', "", '{"id": "b", "title": "T", "text": "x"}'])
    assert load_passages(path) == [Passage("7", "", "Seven."), Passage("b", "T", "x")]


def test_a_jsonl_record_holding_a_line_separator_stays_one_record(tmp_path: Path) -> None:
    text = "Line one\u2028line two\x85three"
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": "a", "text": text}, ensure_ascii=False) + "\r\n" + '{"id": "b", "text": "x"}\n',
                    encoding="utf-8")
    assert [p.id for p in load_passages(path)] == ["a", "b"] and load_passages(path)[0].text == text


# ---------------------------------------------------------------- bad inputs


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.jsonl: the file does not exist\. Fix: check the path"):
        load_passages(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="does not exist"):
        load_questions(tmp_path / "nope.json")


def test_empty_file(tmp_path: Path) -> None:
    for name in ("p.jsonl", "facts.txt"):
        (tmp_path / name).write_text("\n  \n")
        with pytest.raises(DataError, match=rf"{name}: the file is empty\. Fix:"):
            load_passages(tmp_path / name)


def test_malformed_json_line_names_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "p.jsonl", ['{"id": "a", "text": "x"}', '{"id": "b", "text": '])
    with pytest.raises(DataError) as caught:
        load_passages(path)
    assert caught.value.line == 2 and caught.value.path == path
    assert "line 2: malformed JSON" in str(caught.value) and "Fix: make each line one complete JSON object" in str(caught.value)


def test_malformed_strategyqa_json(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "s.json", ["[", '{"qid": "a",'])
    with pytest.raises(DataError, match="malformed JSON"):
        load_strategyqa(path)


@pytest.mark.parametrize("record, missing", [({"text": "x"}, "id"), ({"id": "a"}, "text"), ({"id": "a", "text": "  "}, "text")])
def test_passage_without_id_or_text(tmp_path: Path, record: dict, missing: str) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": "ok", "text": "fine"}, record])
    with pytest.raises(DataError, match=rf"line 2: field '{missing}' is .*Fix: give every line an \"id\""):
        load_passages(path)


def test_duplicate_passage_ids(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}, {"id": "a", "text": "z"}])
    with pytest.raises(DataError, match=r"line 3: duplicate passage id 'a' \(first on line 1\)\. Fix: give every passage a unique id"):
        load_passages(path)


def test_answer_letter_not_among_options(tmp_path: Path) -> None:
    medqa = write_jsonl(tmp_path / "dev.jsonl", [{"question": "Q?", "options": {"A": "a", "B": "b"}, "answer_idx": "E",
                                                  "answer": "e", "source_index": 3}])
    with pytest.raises(DataError, match=r"line 1: question 'medqa-dev-3': answer 'E' is not among its options A, B\. Fix: set the answer"):
        load_medqa(medqa)
    obqa = write_jsonl(tmp_path / "o.jsonl", [{"id": "o1", "question": {"stem": "S", "choices": [{"label": "A", "text": "a"}]},
                                               "answerKey": "B"}])
    with pytest.raises(DataError, match="answer 'B' is not among its options A"):
        load_openbookqa(obqa)
    demo = write_jsonl(tmp_path / "d.jsonl", [{"id": "d", "question": "Q", "options": {"A": "x"}, "answer": "Z"}])
    with pytest.raises(DataError, match="answer 'Z' is not among"):
        load_demo_questions(demo)


def test_instruction_output_matching_no_option(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "i.jsonl", [{"id": "seed", "instances": {
        "input": "Question: Q?\nOption A: alpha\nOption B: beta", "output": "gamma"}}])
    with pytest.raises(DataError, match=r"line 1: the output 'gamma' matches none of the options\. Fix: make 'output' the exact text"):
        load_medqa_instructions(path)


def test_strategyqa_non_boolean_answer(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps([{"qid": "q", "question": "Is it?", "answer": "maybe"}]))
    with pytest.raises(DataError, match="record 1: answer 'maybe' is not true or false"):
        load_strategyqa(path)


def test_unknown_question_format(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "x.jsonl", [{"foo": 1}])
    with pytest.raises(DataError, match="unrecognised question format.*Fix: use MedQA"):
        load_questions(path)


def test_duplicate_question_ids(tmp_path: Path) -> None:
    record = {"id": "d", "question": "Q", "options": {"A": "x"}, "answer": "A"}
    path = write_jsonl(tmp_path / "d.jsonl", [record, record])
    with pytest.raises(DataError, match="line 2: duplicate question id 'd'"):
        load_questions(path)


MEDQA = {"question": "Which drug?", "options": {"A": "aspirin", "B": "insulin"}, "answer_idx": "B"}
DEMO = {"id": "q1", "question": "Which drug?", "options": {"A": "aspirin", "B": "insulin"}, "answer": "B"}
OBQA = {"id": "o1", "answerKey": "A",
        "question": {"stem": "Which?", "choices": [{"label": "A", "text": "x"}, {"label": "B", "text": "y"}]}}


@pytest.mark.parametrize("value", [123, 4.5, True])
@pytest.mark.parametrize("layout, field, place", [
    ("passages", "text", lambda record, value: {"id": "p1", "text": value}),
    ("medqa", "question", lambda record, value: {**MEDQA, "question": value}),
    ("demo", "question", lambda record, value: {**DEMO, "question": value}),
    ("obqa", "stem", lambda record, value: {**OBQA, "question": {**OBQA["question"], "stem": value}}),
    ("instructions", "input", lambda record, value: {"instances": {"input": value, "output": "x"}}),
])
def test_a_number_where_text_is_expected_names_the_file_line_and_field(tmp_path: Path, value, layout, field,
                                                                       place) -> None:
    good = {"passages": {"id": "p0", "text": "Fine."}, "medqa": {**MEDQA, "source_index": 9},
            "demo": {**DEMO, "id": "q0"}, "obqa": {**OBQA, "id": "o0"},
            "instructions": {"instances": {"input": "Question: Which?\nOption A: x\nOption B: y", "output": "x"}}}
    path = write_jsonl(tmp_path / "f.jsonl", [good[layout], place(None, value)])
    with pytest.raises(DataError) as caught:
        load_passages(path) if layout == "passages" else load_questions(path)
    assert caught.value.line == 2 and caught.value.path == path
    kind = "true or false" if value is True else "a number"
    assert f"field '{field}' is {kind} ({value!r}), not text. Fix: write it as text in quotes" in str(caught.value)


def test_a_number_as_strategyqa_question_names_the_record(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text(json.dumps([{"qid": "s1", "question": "Is it?", "answer": True},
                                {"qid": "s2", "question": 7, "answer": False}]))
    with pytest.raises(DataError, match=r"record 2: field 'question' is a number \(7\), not text\. Fix:"):
        load_strategyqa(path)


def test_a_demo_rationale_that_is_not_text_is_a_data_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "q.jsonl", [{**DEMO, "rationale": 5}])
    with pytest.raises(DataError, match=r"line 1: field 'rationale' is a number \(5\), not text\. Fix:"):
        load_demo_questions(path)

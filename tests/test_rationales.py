"""Importers of recorded rationales: on the real shared files and on malformed lines."""

from __future__ import annotations

import json

import pytest

from kard.datasets import load_medqa, load_strategyqa
from kard.errors import ConfigError, DataError
from kard.teacher.recorded import (
    FLAN_SOURCE,
    choice_letter,
    import_flan_strategyqa,
    import_jsonl,
    import_medqa_recorded,
    import_openbookqa_facts,
    import_strategyqa_facts,
    parse_recorded_reply,
    teacher_score,
    write_rationales,
)
from kard.records import Question, Rationale

GPT35 = "medqa/dev_teacher_cot_gpt-35-turbo-16k.jsonl"
GPT4 = "medqa/dev_teacher_cot_gpt-4-32k.jsonl"


@pytest.fixture(scope="module")
def medqa_dev(shared_data):
    return load_medqa(shared_data / "medqa" / "dev.jsonl")


# ----------------------------------------------------------------------------- MedQA recorded replies


def test_parse_recorded_reply_strict_lenient_and_refusals():
    good = json.dumps({"step_by_step_thinking": "Because X.", "answer_choice": "B. insulin"})
    assert parse_recorded_reply(good) == ("Because X.", "B. insulin")
    unescaped = '{"step_by_step_thinking": "the "binge-purge" type.", "answer_choice": "C"}'
    assert parse_recorded_reply(unescaped) == ('the "binge-purge" type.', "C")
    assert parse_recorded_reply("The response was filtered due to policy").startswith("not a JSON reply")
    assert parse_recorded_reply("'content'").startswith("not a JSON reply")
    assert parse_recorded_reply('{"answer_choice": "A"}').startswith("empty rationale")
    assert parse_recorded_reply('["a list"]').startswith("not a JSON object")
    assert parse_recorded_reply({"step_by_step_thinking": ["One.", "Two."], "answer_choice": "A"}) == (
        "One. Two.",
        "A",
    )


@pytest.mark.parametrize(
    "choice, expected",
    [
        ("C", "C"),
        ("C. Potassium hydroxide", "C"),
        ("(b)", "B"),
        ("A/B", None),
        ("None of the above", None),
        ("", None),
        ("E. something", None),
        ("Unable to determine", None),
        ("insulin", "B"),
    ],
)
def test_choice_letter(choice, expected):
    assert choice_letter(choice, {"A": "aspirin", "B": "Insulin", "C": "x", "D": "y"}) == expected


def test_gpt35_recorded_file_counts_and_accuracy(shared_data, medqa_dev):
    imported = import_medqa_recorded(shared_data / GPT35, medqa_dev)
    rationales = imported.rationales()
    assert imported.rows == 636
    assert len(rationales) == 633  # 631 valid JSON + 2 repaired (unescaped quotes); 3 empty raw
    assert imported.skip_counts() == {"empty raw": 3}
    assert sum(r.answer is not None for r in rationales) == 621
    assert {r.source for r in rationales} == {"gpt-35-turbo-16k (recorded, MIRAGE)"}
    assert all(r.question_id.startswith("medqa-dev-") for r in rationales)
    result = teacher_score(imported, medqa_dev)
    assert (result.total, result.correct) == (636, 400)  # 62.9 % of the 636 questions
    repaired = next(r for r in rationales if '"binge-purge"' in r.text)
    assert repaired.answer == "C"


def test_gpt4_recorded_file_counts_and_accuracy(shared_data, medqa_dev):
    imported = import_medqa_recorded(shared_data / GPT4, medqa_dev)
    assert imported.rows == 636 and len(imported) == 632
    assert imported.skip_counts() == {"not a JSON reply": 4}  # 2 content-filter refusals, 2 "'content'"
    assert sum(r.answer is not None for r in imported.rationales()) == 624
    result = teacher_score(imported, medqa_dev)
    assert (result.total, result.correct) == (636, 516)  # 81.1 %
    assert imported["medqa-dev-0"][0].source == "gpt-4-32k (recorded, MIRAGE)"


def test_medqa_recorded_ids_match_the_loader(shared_data, medqa_dev):
    imported = import_medqa_recorded(shared_data / GPT4)  # without questions: ids from source_index
    assert set(imported) <= {q.id for q in medqa_dev}


def test_medqa_recorded_malformed_lines(tmp_path):
    path = tmp_path / "recorded.jsonl"
    lines = [
        json.dumps(
            {
                "file": "p/OpenAI/my-model/test_0001.json",
                "raw": [json.dumps({"step_by_step_thinking": "Ok.", "answer_choice": "D"})],
                "source_index": 1,
            }
        ),
        "{not json",
        json.dumps({"raw": ["x"], "source_index": "seven"}),
        json.dumps({"raw": [], "source_index": 2}),
        json.dumps({"raw": ["refused"], "source_index": 3}),
        "[1, 2]",
        "",
    ]
    path.write_text("\n".join(lines))
    imported = import_medqa_recorded(path)
    assert imported == {
        "medqa-dev-1": [Rationale("medqa-dev-1", "Ok.", "D", "my-model (recorded, MIRAGE)", 0)]
    }
    assert [(s.line, s.reason.split(":")[0]) for s in imported.skipped] == [
        (2, "not JSON"),
        (3, "no source_index"),
        (4, "empty raw"),
        (5, "not a JSON reply"),
        (6, "not a JSON object"),
    ]


def test_medqa_recorded_with_nothing_usable_is_a_data_error(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"raw": [], "source_index": 0}) + "\n")
    with pytest.raises(DataError, match="no MedQA recorded teacher replies could be read.*1 empty raw"):
        import_medqa_recorded(path)


# ----------------------------------------------------------------------------- StrategyQA and OpenBookQA


def test_flan_rationales_match_train_qids(shared_data):
    questions = load_strategyqa(shared_data / "strategyqa" / "train.json")
    imported = import_flan_strategyqa(shared_data / "strategyqa" / "flan_cot_train.tsv", questions)
    assert imported.rows == 2061 and imported.skipped == []
    distinct_rows = {(r.text, r.answer) for r in imported.rationales()}
    assert len(distinct_rows) == 2060  # one row appears twice, as does its question (two qids)
    assert len(imported) == 2061 and all(len(group) == 1 for group in imported.values())
    assert {r.source for r in imported.rationales()} == {FLAN_SOURCE}
    result = teacher_score(imported, questions)
    assert result.correct == 2061  # the FLAN yes/no always agrees with StrategyQA's answer
    first = imported["2bc9c4f9c19c167187f2"][0]
    assert first.answer == "A" and first.text.startswith("Julius Caesar had three children.")


def test_flan_malformed_and_unmatched_rows(tmp_path):
    questions = [Question("q1", "Is  the sky blue?", {"A": "yes", "B": "no"}, "A", "strategyqa")]
    path = tmp_path / "flan.tsv"
    path.write_text(
        "Is the sky blue?\tyes\tLight scatters.\nonly two\tfields\nIs it?\tmaybe\tHm.\nUnknown q?\tno\tNo.\n"
    )
    imported = import_flan_strategyqa(path, questions)
    assert imported == {"q1": [Rationale("q1", "Light scatters.", "A", FLAN_SOURCE, 0)]}
    assert [s.reason.split(":")[0] for s in imported.skipped] == [
        "malformed row",
        "malformed row",
        "unmatched question",
    ]


def test_strategyqa_and_openbookqa_facts(shared_data):
    facts = import_strategyqa_facts(shared_data / "strategyqa" / "train.json")
    assert len(facts) == 2061
    first = facts["2bc9c4f9c19c167187f2"][0]
    assert (first.answer, first.source) == ("A", "human (StrategyQA facts)")
    assert first.text.startswith("Julius Caesar had three children. Genghis Khan had sixteen children.")
    book = import_openbookqa_facts(shared_data / "openbookqa" / "dev_complete.jsonl")
    assert len(book) == 500
    assert book["8-376"][0] == Rationale(
        "8-376", "deep sea animals live deep in the ocean.", "A", "human (OpenBookQA fact1)", 0
    )
    with pytest.raises(DataError, match="fact1"):
        import_openbookqa_facts(shared_data / "openbookqa" / "dev.jsonl")


# ----------------------------------------------------------------------------- generic JSONL


def test_generic_jsonl_round_trip(tmp_path):
    rationales = [
        Rationale("q1", "Because.", "B", "gpt-x (teacher-v1/rationalize)", 0),
        Rationale("q1", "Also.", None, "human", 1),
    ]
    path = tmp_path / "out" / "r.jsonl"
    assert write_rationales(rationales, path) == 2
    assert import_jsonl(path).rationales() == rationales


def test_generic_jsonl_defaults_and_bad_lines(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"question_id": "a", "rationale": "R1", "answer": "c"}),
                json.dumps({"question_id": "a", "rationale": "R2", "answer": "yes", "source": "human"}),
                json.dumps({"question_id": "b", "rationale": ""}),
                json.dumps({"rationale": "orphan"}),
                json.dumps({"question_id": "c", "rationale": "R", "answer": "maybe"}),
                "not json",
            ]
        )
    )
    imported = import_jsonl(path)
    assert imported == {
        "a": [Rationale("a", "R1", "C", "imported (mine.jsonl)", 0), Rationale("a", "R2", "A", "human", 1)]
    }
    assert [s.line for s in imported.skipped] == [3, 4, 5, 6]
    with pytest.raises(DataError, match="mine.jsonl, line 3: no rationale text for b"):
        import_jsonl(path, strict=True)
    with pytest.raises(DataError, match="does not exist"):
        import_jsonl(tmp_path / "missing.jsonl")


def test_a_failed_write_names_the_file_and_keeps_an_earlier_one(tmp_path):
    rationales = [Rationale("q1", "Because.", "B", "human", 0)]
    (tmp_path / "a-file").write_text("")
    blocked = tmp_path / "a-file" / "r.jsonl"  # its folder is a file: cannot be written, even as root
    with pytest.raises(ConfigError, match=f"cannot write the rationales to {blocked}.*Fix: pass an --out"):
        write_rationales(rationales, blocked)
    earlier = tmp_path / "r.jsonl"
    earlier.write_text("earlier\n")
    (tmp_path / "r.jsonl.partial").mkdir()  # the new version cannot be written next to it
    with pytest.raises(ConfigError, match="cannot write the rationales"):
        write_rationales(rationales, earlier)
    assert earlier.read_text() == "earlier\n"


def test_generic_jsonl_with_questions_skips_an_answer_that_is_no_option_letter(tmp_path):
    questions = [Question("q1", "Which?", {"A": "x", "B": "y"}, "A", "demo")]
    path = tmp_path / "mine.jsonl"
    path.write_text(
        json.dumps({"question_id": "q1", "rationale": "R1", "answer": "B"})
        + "\n"
        + json.dumps({"question_id": "q1", "rationale": "R2", "answer": "Q"})
        + "\n"
    )
    assert len(import_jsonl(path).rationales()) == 2  # without the questions, any letter may be right
    imported = import_jsonl(path, questions=questions)
    assert [r.text for r in imported.rationales()] == ["R1"]
    assert [(s.line, s.reason) for s in imported.skipped] == [
        (2, "bad record: answer 'Q' is not among the options A, B of question q1")
    ]
    with pytest.raises(DataError, match="mine.jsonl, line 2: answer 'Q' is not among the options"):
        import_jsonl(path, strict=True, questions=questions)


def test_generic_jsonl_that_is_not_utf8_or_starts_with_a_bom_says_so(tmp_path):
    record = json.dumps({"question_id": "q1", "rationale": "Caf\u00e9.", "answer": "A"}, ensure_ascii=False)
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes(record.encode("latin-1") + b"\n")
    with pytest.raises(DataError, match="latin1.jsonl: the file is not UTF-8 text.*Fix: save the file as UTF-8"):
        import_jsonl(latin1)
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(record.encode("utf-8-sig") + b"\n")
    with pytest.raises(DataError, match="no rationales could be read \\(1 not JSON; line 1: .*UTF-8 BOM"):
        import_jsonl(bom)

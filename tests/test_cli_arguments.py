"""Bad command-line arguments stop a command with one `error: ... Fix: ...` line before any model loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kard.__main__ import main
from kard.annotations import AnnotationStore
from kard.distill import StudentExample, write_examples


@pytest.fixture
def no_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any model load fails the test: the argument checks must come first."""
    from kard import student, training

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr(student.Student, "load", refuse)
    monkeypatch.setattr(training, "train_student", refuse)


def examples_file(folder: Path) -> Path:
    example = StudentExample("q1#0", "Question: Which gas do plants absorb?", " Carbon dioxide.\nAnswer: B", "teacher")
    return write_examples([example], folder / "examples.jsonl")


@pytest.mark.parametrize("argv, flag", [
    (["evaluate", "--dataset", "demo", "--out", "{file}"], "--out"),
    (["paper", "--dataset", "demo", "--kard-student", "{tmp}/student", "--out", "{file}"], "--out"),
    (["export", "--db", "{tmp}/annotations.db", "--out", "{file}"], "--out"),
    (["retrain", "--root", "{file}", "--db", "{tmp}/annotations.db"], "--root"),
    (["train-student", "--examples", "{tmp}/examples.jsonl", "--out", "{file}", "--steps", "1"], "--out"),
])
def test_an_output_folder_that_is_a_file_is_refused_before_anything_loads(
        tmp_path: Path, capsys: pytest.CaptureFixture, no_model_loads: None, argv: list[str], flag: str) -> None:
    afile = tmp_path / "afile.txt"
    afile.write_text("not a folder\n")
    examples_file(tmp_path)
    AnnotationStore(tmp_path / "annotations.db")  # an existing store: the --db check passes
    assert main([arg.format(tmp=tmp_path, file=afile) for arg in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {flag} {afile} is a file, not a folder. Fix: ") and err.count("\n") == 1
    assert afile.read_text() == "not a folder\n"


@pytest.mark.parametrize("argv, flag, value", [
    (["evaluate", "--dataset", "demo", "--out", "{tmp}/e", "--samples", "2", "--temperature", "-1"], "--temperature", "-1"),
    (["evaluate", "--dataset", "demo", "--out", "{tmp}/e", "--batch-size", "0"], "--batch-size", "0"),
    (["evaluate", "--dataset", "demo", "--out", "{tmp}/e", "--k", "0"], "--k", "0"),
    (["ask", "Which gas do plants absorb?", "--samples", "0"], "--samples", "0"),
    (["ask", "Which gas do plants absorb?", "--max-new-tokens", "0"], "--max-new-tokens", "0"),
    (["ask", "Which gas do plants absorb?", "--k", "two"], "--k", "two"),
    (["index", "--passages", "{tmp}/p.jsonl", "--out", "{tmp}/kb", "--k1", "-1"], "--k1", "-1"),
    (["index", "--passages", "{tmp}/p.jsonl", "--out", "{tmp}/kb", "--b", "5"], "--b", "5"),
    (["index", "--passages", "{tmp}/p.jsonl", "--out", "{tmp}/kb", "--b", "nan"], "--b", "nan"),
    (["train-student", "--examples", "{tmp}/examples.jsonl", "--out", "{tmp}/s", "--steps", "-1"], "--steps", "-1"),
    (["train-student", "--examples", "{tmp}/e.jsonl", "--out", "{tmp}/s", "--keep-checkpoints", "0"],
     "--keep-checkpoints", "0"),
    (["retrain", "--root", "{tmp}/r", "--db", "{tmp}/a.db", "--max-steps", "-1"], "--max-steps", "-1"),
    (["evaluate", "--dataset", "demo", "--out", "{tmp}/e", "--limit", "0"], "--limit", "0"),
    (["evaluate", "--dataset", "demo", "--out", "{tmp}/e", "--limit", "-3"], "--limit", "-3"),
    (["build-examples", "--questions", "{tmp}/q.jsonl", "--kb", "{tmp}/kb", "--out", "{tmp}/x.jsonl", "--limit", "0"],
     "--limit", "0"),
    (["eval-reranker", "--questions", "{tmp}/q.jsonl", "--kb", "{tmp}/kb", "--reranker", "{tmp}/r",
      "--eval-candidates", "0"], "--eval-candidates", "0"),
    (["search", "--index", "{tmp}/kb", "cat", "-k", "0"], "-k", "0"),
    (["export", "--db", "{tmp}/a.db", "--out", "{tmp}/x", "--top-n", "0"], "--top-n", "0"),
    *[(["teach", "--dataset", "demo", "--out", "{tmp}/r.jsonl", flag, value], flag, value) for flag, value in [
        ("--n", "0"), ("--concurrency", "-2"), ("--max-tokens", "0"), ("--timeout", "0"), ("--max-retries", "-1"),
        ("--temperature", "-0.5"), ("--price-in", "-1")]],
])
def test_a_number_out_of_range_is_refused_naming_its_flag(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                          no_model_loads: None, argv, flag: str, value: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main([arg.format(tmp=tmp_path) for arg in argv])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument {flag}: {value!r} is not " in err and "Fix: pass " in err
    assert not any(tmp_path.iterdir())  # nothing was written


@pytest.mark.parametrize("setting, message", [
    ("max_steps=abc", "max_steps='abc' is not a whole number"),
    ("learning_rate=true", "learning_rate=True is not a number"),
    ("lora=1", "lora=1 is not true or false"),
])
def test_retrain_refuses_a_set_value_of_the_wrong_type_up_front(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                               no_model_loads: None, setting: str, message: str) -> None:
    examples = examples_file(tmp_path)
    argv = ["retrain", "--root", str(tmp_path / "rounds"), "--examples", str(examples), "--set", setting]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: training setting ") and message in err and "Fix: " in err
    assert not (tmp_path / "rounds" / "jobs").exists()  # no job was started


def test_ask_with_a_blank_question_says_it_is_empty(capsys: pytest.CaptureFixture, no_model_loads: None) -> None:
    from kard.errors import DataError
    from kard.pipeline import make_question

    assert main(["ask", "   "]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the question is empty. Fix: ") and "'user'" not in err
    with pytest.raises(DataError, match="^the question is empty. Fix: type a question"):
        make_question(" \n ", "A) yes B) no")


@pytest.mark.parametrize("argv, flag", [
    (["build-examples", "--questions", "{questions}", "--kb", "{passages}", "--rationales", "{empty}",
      "--out", "{tmp}/examples.jsonl"], "--rationales"),
    (["evaluate", "--dataset", "demo", "--condition", "oracle", "--oracle-rationales", "{empty}",
      "--out", "{tmp}/eval"], "--oracle-rationales"),
])
def test_a_rationales_file_with_nothing_readable_names_the_flag_to_check(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                          no_model_loads: None, argv: list[str], flag: str) -> None:
    from kard.config import DEMO_PASSAGES, DEMO_QUESTIONS

    unreadable = tmp_path / "unreadable.jsonl"
    unreadable.write_text('{"id": "q1", "note": "no question_id or text"}\n')
    values = {"questions": DEMO_QUESTIONS, "passages": DEMO_PASSAGES, "empty": unreadable, "tmp": tmp_path}
    assert main([arg.format(**values) for arg in argv]) == 2
    err = capsys.readouterr().err
    assert "no rationales could be read" in err and f"Fix: check that {flag} names" in err and "--kind" not in err


@pytest.mark.parametrize("flags, says", [
    (["--holdout", "-5"], "error: holdout must be a count >= 0 or a fraction in (0, 1), got -5.0. Fix: pass --holdout"),
    (["--holdout", "1.5"], "got 1.5. Fix: pass --holdout as a number of questions (e.g. 20) or a fraction"),
    (["--holdout", "nan"], "got nan. Fix: pass --holdout"),
])
def test_evaluate_refuses_a_bad_holdout_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                              no_model_loads: None, flags: list[str],
                                                              says: str) -> None:
    assert main(["evaluate", "--dataset", "demo", "--out", str(tmp_path / "eval"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and says.removeprefix("error: ") in err and err.count("\n") == 1


MEDQA_ROW = {"question": "Which gas do plants absorb?", "answer": "carbon dioxide", "answer_idx": "B",
             "options": {"A": "oxygen", "B": "carbon dioxide", "C": "nitrogen", "D": "helium"}}
STRATEGYQA_ROW = {"qid": "s1", "question": "Is lava hot?", "answer": True, "facts": ["Lava is molten rock."]}


@pytest.mark.parametrize("name, row, flags, says, not_said", [
    ("medqa.jsonl", MEDQA_ROW, [], "carries a reference rationale, nor gold facts. Fix: pass --rationales", "--facts"),
    ("medqa.jsonl", MEDQA_ROW, ["--facts"], "none of the 1 question(s) carries gold facts", "strategyqa-facts"),
    ("train.json", STRATEGYQA_ROW, [], "(1 carry gold facts, not a rationale). Fix: pass --facts", "medqa-gpt4"),
])
def test_build_examples_without_rationales_offers_what_the_questions_carry(
        tmp_path: Path, capsys: pytest.CaptureFixture, no_model_loads: None, name: str, row: dict, flags: list[str],
        says: str, not_said: str) -> None:
    from kard.config import DEMO_PASSAGES

    questions = tmp_path / name
    questions.write_text(json.dumps([row]) if name.endswith(".json") else json.dumps(row) + "\n")
    assert main(["build-examples", "--questions", str(questions), "--kb", str(DEMO_PASSAGES), *flags,
                 "--out", str(tmp_path / "examples.jsonl")]) == 2
    err = capsys.readouterr().err
    assert says in err and not_said not in err
    if name.startswith("medqa"):
        assert "import-rationales --kind medqa-gpt4" in err and "kard teach" in err

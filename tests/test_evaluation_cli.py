import json
from pathlib import Path

import pytest

from kard.__main__ import main
from tests.tiny_models import save_tiny_decoder


@pytest.fixture(scope="module")
def tiny_student(tmp_path_factory) -> Path:
    return save_tiny_decoder(tmp_path_factory.mktemp("student") / "tiny", max_positions=2048)


def test_evaluate_writes_results_and_summary(tmp_path: Path, tiny_student: Path, capsys):
    out = tmp_path / "eval"
    code = main(["evaluate", "--dataset", "demo", "--student", str(tiny_student), "--limit", "3",
                 "--max-new-tokens", "8", "--out", str(out), "--no-progress"])
    assert code == 0
    lines = (out / "kard-bm25-greedy.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["passage_ids"] for line in lines)
    summary = json.loads((out / "kard-bm25-greedy.summary.json").read_text())
    assert summary["questions"] == 3 and 0.0 <= summary["accuracy"] <= 1.0
    assert "accuracy" in capsys.readouterr().out


def test_evaluate_samples_at_the_temperature_asked(tmp_path: Path, tiny_student: Path):
    out = tmp_path / "eval"
    code = main(["evaluate", "--dataset", "demo", "--student", str(tiny_student), "--limit", "2", "--samples", "3",
                 "--temperature", "0.5", "--max-new-tokens", "4", "--out", str(out), "--no-progress"])
    assert code == 0
    settings = json.loads((out / "kard-bm25-sc-3.settings.json").read_text())
    assert settings["generation"]["samples"] == 3 and settings["generation"]["temperature"] == 0.5
    records = [json.loads(line) for line in (out / "kard-bm25-sc-3.jsonl").read_text().splitlines()]
    assert [len(r["sample_answers"]) for r in records] == [3, 3]


def test_paper_writes_a_row_per_condition_with_table_and_plot(tmp_path: Path, tiny_student: Path):
    out = tmp_path / "paper"
    code = main(["paper", "--dataset", "demo", "--kard-student", str(tiny_student), "--reasoning-student",
                 str(tiny_student), "--limit", "2", "--max-new-tokens", "6", "--out", str(out), "--no-progress"])
    assert code == 0
    table = (out / "results.md").read_text()
    # no reranker given: that row is skipped; the oracle uses the demo questions' reference rationales
    assert [line.split("|")[1].strip() for line in table.splitlines()[2:] if line.startswith("|")] == [
        "reasoning", "kard-bm25", "oracle"]
    assert (out / "results.png").stat().st_size > 1000
    assert len(json.loads((out / "summary.json").read_text())) == 3


def test_paper_adds_the_teachers_recorded_accuracy_on_the_same_questions(tmp_path: Path, tiny_student: Path):
    from kard.datasets import load_demo_questions

    first, second, third = load_demo_questions()[:3]
    wrong = next(letter for letter in second.letters if letter != second.answer)
    rationales = tmp_path / "teacher.jsonl"
    rationales.write_text("".join(json.dumps(r) + "\n" for r in [
        {"question_id": first.id, "text": "right", "answer": first.answer},
        {"question_id": second.id, "text": "wrong", "answer": wrong},
        {"question_id": "not-evaluated", "text": "ignored", "answer": "A"},
    ]))  # the third question has no rationale: unanswered
    out = tmp_path / "paper"
    assert main(["paper", "--dataset", "demo", "--kard-student", str(tiny_student), "--limit", "3",
                 "--max-new-tokens", "4", "--teacher-rationales", str(rationales), "--out", str(out),
                 "--no-progress"]) == 0
    teacher = json.loads((out / "summary.json").read_text())[0]
    assert teacher["condition"] == "teacher" and teacher["decoding"] == "recorded (teacher)"
    assert (teacher["questions"], teacher["correct"], teacher["unanswered"]) == (3, 1, 1)
    assert "| teacher | recorded (teacher) | 3 | 33.3 |" in (out / "results.md").read_text()


def test_paper_without_students_is_a_clear_error(tmp_path: Path, capsys):
    assert main(["paper", "--dataset", "demo", "--out", str(tmp_path)]) == 2
    assert "no student given" in capsys.readouterr().err


def test_bad_limit_is_refused_when_the_arguments_are_read(tmp_path: Path, tiny_student: Path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["evaluate", "--dataset", "demo", "--student", str(tiny_student), "--limit", "0", "--out", str(tmp_path)])
    assert exited.value.code == 2
    assert "argument --limit: '0' is not a whole number, 1 or more. Fix: " in capsys.readouterr().err


def test_evaluate_oracle_starts_over_when_the_rationales_change(tmp_path: Path, tiny_student: Path, capsys):
    from kard.datasets import load_demo_questions

    question = load_demo_questions()[0]
    rationales = tmp_path / "other.jsonl"
    rationales.write_text(json.dumps({"question_id": question.id, "text": "another rationale", "answer": "A"}) + "\n")
    arguments = ["evaluate", "--dataset", "demo", "--student", str(tiny_student), "--limit", "1",
                 "--max-new-tokens", "4", "--condition", "oracle", "--out", str(tmp_path / "eval"), "--no-progress"]
    assert main(arguments) == 0
    assert main(arguments + ["--limit", "2"]) == 0  # more questions, same rationales: resumed
    assert main(arguments + ["--oracle-rationales", str(rationales)]) == 2
    assert "changed: oracle_rationales" in capsys.readouterr().err

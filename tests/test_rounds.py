"""Round reports: scores per round, fixed/broken between rounds, markdown, plot, held-out filtering."""

from __future__ import annotations

import json

import pytest

from kard.errors import DataError
from kard.metrics import Score
from kard.records import Question
from kard.loop.rounds import held_out, plot_accuracy, report_markdown, round_report, rounds_with_base, write_report

GOLD = {"q1": "A", "q2": "B", "q3": "A", "q4": "B"}
ANSWERS = {
    "round-000": ("base", {"q1": "A", "q2": "A", "q3": None, "q4": "B"}),
    "round-001": ("r1", {"q1": "A", "q2": "B", "q3": "A", "q4": "A"}),
    "round-002": ("r2", {"q1": "B", "q2": "B", "q3": "A", "q4": "B"}),
}


def test_scores_and_changes_per_round():
    report = round_report(ANSWERS, GOLD)
    assert [(s.round, s.score) for s in report.scores] == [
        ("round-000", Score(4, 2, 1)), ("round-001", Score(4, 3, 0)), ("round-002", Score(4, 3, 0))]
    first, second = report.steps
    assert (first.before, first.after, first.change.fixed, first.change.broken) == (
        "round-000", "round-001", ("q2", "q3"), ("q4",))
    assert (second.change.fixed, second.change.broken) == (("q4",), ("q1",))
    assert (report.overall.change.fixed, report.overall.change.broken) == (("q2", "q3"), ("q1",))


def test_markdown_table_lists_fixed_and_broken():
    text = report_markdown(round_report(ANSWERS, GOLD))
    assert "| round-000 | 50.0% (15-85) | 2 / 4 | 1 | - | - | `base` |" in text
    assert "| round-001 | 75.0% (30-95) | 3 / 4 | 0 | 2 / 1 | - | `r1` |" in text
    assert "**round-000 -> round-001**: fixed 2, broken 1" in text
    assert "- fixed: q2, q3" in text and "- broken: q4" in text
    assert "**round-000 -> round-002**: fixed 2, broken 1" in text  # the overall change


def test_plot_and_report_files(tmp_path):
    files = write_report(round_report(ANSWERS, GOLD), tmp_path / "report")
    assert files["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(files["json"].read_text())
    assert [r["accuracy"] for r in data["rounds"]] == [0.5, 0.75, 0.75]
    assert data["steps"][0]["fixed"] == ["q2", "q3"]
    single = plot_accuracy(round_report({"round-000": ANSWERS["round-000"]}, GOLD), tmp_path / "one.png")
    assert single.stat().st_size > 0


CONTROL = {
    "round-000": ANSWERS["round-000"],
    "round-001": ("c1", {"q1": "A", "q2": "A", "q3": "B", "q4": "B"}),
    "round-002": ("c2", {"q1": "A", "q2": "A", "q3": "B", "q4": "B"}),
}


def test_rounds_against_their_control(tmp_path):
    report = round_report(ANSWERS, GOLD, control=CONTROL)
    assert [c.round for c in report.controls] == ["round-001", "round-002"]  # the base has no control
    first = report.controls[0]
    assert (first.control.score.correct, first.change.fixed, first.change.broken) == (2, ("q2", "q3"), ("q4",))
    assert first.p_value == 1.0
    text = report_markdown(report)
    assert "| round-001 | 75.0% (30-95) | 3 / 4 | 0 | 2 / 1 | 50.0%, 2 / 1, p = 1 | `r1` |" in text
    data = json.loads(write_report(report, tmp_path / "report")["json"].read_text())
    assert data["controls"][1]["fixed_vs_control"] == ["q2", "q3"] and data["controls"][1]["control_correct"] == 2


def test_missing_answers_are_a_clear_error():
    with pytest.raises(DataError, match="no answer for 1 question"):
        round_report({"round-000": ("base", {"q1": "A", "q2": "B", "q3": "A"})}, GOLD)


def write_round(root, name, parent_student, corrected):
    (root / name / "student").mkdir(parents=True)
    manifest = {"round": name, "parent": {"round": None, "student": parent_student}, "student": "student",
                "reranker": None, "data": {"corrected_question_ids": corrected}, "spec": {}}
    (root / name / "manifest.json").write_text(json.dumps(manifest))


def test_held_out_drops_every_corrected_question_and_base_round_comes_first(tmp_path):
    write_round(tmp_path, "round-001", "base-student", ["q2"])
    write_round(tmp_path, "round-002", str(tmp_path / "round-001" / "student"), ["q3", "zz"])
    questions = [Question(q, f"text {q}", {"A": "yes", "B": "no"}, a) for q, a in GOLD.items()]
    kept, dropped = held_out(questions, tmp_path)
    assert [q.id for q in kept] == ["q1", "q4"] and dropped == ["q2", "q3"]
    assert [(name, student) for name, student, _ in rounds_with_base(tmp_path)] == [
        ("round-000", "base-student"), ("round-001", str(tmp_path / "round-001" / "student")),
        ("round-002", str(tmp_path / "round-002" / "student"))]
    with pytest.raises(DataError, match="no finished round"):
        rounds_with_base(tmp_path / "empty")

"""Bad command-line arguments stop a command with one `error: ... Fix: ...` line before any model loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from kard.__main__ import main
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
    assert main([arg.format(tmp=tmp_path, file=afile) for arg in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {flag} {afile} is a file, not a folder. Fix: ") and err.count("\n") == 1
    assert afile.read_text() == "not a folder\n"

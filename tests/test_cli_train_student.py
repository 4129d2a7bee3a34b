"""`train-student --out`: a new run into a folder holding a run is refused (or --overwrite deletes it), --resume
goes on only with the settings the run started with, and a bad --student leaves no --out behind."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

pytest.importorskip("torch")

from tiny_models import save_tiny_decoder  # noqa: E402

from kard.__main__ import main  # noqa: E402
from kard.distill import StudentExample, write_examples  # noqa: E402
from kard.training_folder import changed_settings  # noqa: E402

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
EXAMPLES = [
    StudentExample(f"q{i}#0", f"Question: Which gas do plants absorb? {letter}\nExplanation:",
                   f" Plants absorb carbon dioxide.\nAnswer: {letter}", "teacher", ("p1",), f"q{i}")
    for i, letter in enumerate("ABAB")
]


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> Path:
    return save_tiny_decoder(tmp_path_factory.mktemp("tiny") / "decoder")


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    return write_examples(EXAMPLES, tmp_path / "examples.jsonl")


def train(student: Path, examples: Path, out: Path, *flags: str, steps: int = 2) -> int:
    return main(["train-student", "--examples", str(examples), "--student", str(student), "--out", str(out),
                 "--steps", str(steps), "--save-steps", "1", "--batch-size", "2", "--grad-accum", "1",
                 "--lr", "1e-2", "--no-progress", *flags])


def checkpoints(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "checkpoints").iterdir())


def losses(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "losses.jsonl").read_text().splitlines()]


def test_a_new_run_into_a_folder_holding_a_run_is_refused_with_the_fix(student, examples, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(student, examples, out) == 0
    capsys.readouterr()
    assert train(student, examples, out, "--limit", "2", steps=1) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --out {out} holds a run already (checkpoint-1, checkpoint-2, ")
    assert err.count("\n") == 1
    assert "Fix: pass --resume to go on with it, choose another --out, or --overwrite to start afresh" in err
    assert checkpoints(out) == ["checkpoint-1", "checkpoint-2"] and losses(out) == [1, 2]  # untouched


def test_overwrite_deletes_the_old_run_first(student, examples, tmp_path):
    out = tmp_path / "run"
    assert train(student, examples, out) == 0
    (out / "adapter_config.json").write_text("{}")  # a file of another kind of run, left at the top level
    (out / "notes").mkdir()
    assert train(student, examples, out, "--overwrite", "--limit", "2", steps=1) == 0
    assert checkpoints(out) == ["checkpoint-1"] and losses(out) == [1]
    assert not (out / "adapter_config.json").exists() and (out / "notes").is_dir()
    assert json.loads((out / "kard_training.json").read_text())["data"]["examples"] == 2


def test_resume_goes_on_only_with_the_settings_the_run_started_with(student, examples, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(student, examples, out, "--keep-checkpoints", "1") == 0
    capsys.readouterr()
    assert train(student, examples, out, "--resume", "--lr", "1e-3", "--limit", "3") == 2
    err = capsys.readouterr().err
    assert f"error: --out {out} holds a run with other settings (changed: examples, learning_rate; " in err
    assert "Fix: pass the settings it was started with to --resume it, choose another --out, or --overwrite" in err
    assert checkpoints(out) == ["checkpoint-2"]
    assert train(student, examples, out, "--resume", "--keep-checkpoints", "3", steps=2) == 0  # how it runs may change
    assert losses(out) == [1, 2]  # resumed at its last step: nothing trained again


def test_resuming_a_finished_run_says_it_is_complete_and_trains_nothing(student, examples, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(student, examples, out, steps=1) == 0  # its last step falls mid-epoch (4 examples, batches of 2)
    before = {path: path.stat().st_mtime_ns for path in out.rglob("*")}
    capsys.readouterr()
    assert train(student, examples, out, "--resume", steps=1) == 0
    said = capsys.readouterr().out
    assert said.startswith(f"the run in {out} is already complete (1 step): nothing to train") and "--overwrite" in said
    assert {path: path.stat().st_mtime_ns for path in out.rglob("*")} == before  # untouched, no checkpoint-2
    assert checkpoints(out) == ["checkpoint-1"] and losses(out) == [1]


def test_resume_and_overwrite_together_are_refused(student, examples, tmp_path, capsys):
    assert train(student, examples, tmp_path / "run", "--resume", "--overwrite") == 2
    assert "Fix: pass one of them" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_resume_with_no_checkpoint_says_it_trains_from_the_start(student, examples, tmp_path, caplog):
    out = tmp_path / "new"
    with caplog.at_level(logging.WARNING):
        assert train(student, examples, out, "--resume", steps=1) == 0
    notices = [r for r in caplog.records if "to resume from" in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in notices] == [
        (logging.WARNING, f"no checkpoint in {out} to resume from: training from the start")]
    assert losses(out) == [1]


@pytest.mark.parametrize("flag", ["--student", "--examples", "--eval-examples"])
def test_a_missing_student_or_examples_file_is_refused_before_out_is_created(student, examples, tmp_path, capsys,
                                                                             flag):
    given = {"--student": str(student), "--examples": str(examples), flag: str(tmp_path / "missing")}
    out = tmp_path / "out"
    argv = ["train-student", *[part for pair in given.items() for part in pair], "--out", str(out), "--steps", "1"]
    assert main(argv) == 2
    assert "missing" in capsys.readouterr().err and not out.exists()


def test_the_student_folder_itself_is_refused_as_out(student, examples, tmp_path, capsys):
    run = tmp_path / "run"
    assert train(student, examples, run, steps=1) == 0
    capsys.readouterr()
    assert train(run, examples, run, "--overwrite", steps=1) == 2
    assert "is the --out folder" in capsys.readouterr().err and (run / "kard_training.json").is_file()


def test_a_local_student_is_the_same_however_its_path_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s").mkdir()
    saved = {"student": "s", "examples": "4 examples", "config": {"learning_rate": 1e-4}}
    assert changed_settings(saved, {**saved, "student": str(tmp_path / "s")}) == []
    assert changed_settings(saved, {**saved, "student": "./t"}) == ["student"]
    assert changed_settings(saved, {**saved, "config": {}}) == []  # a setting not recorded keeps its default


def test_the_benchmark_scripts_resume_their_training_runs():
    """A script rerun into its own --out must go on with the run (or say to start afresh), not be refused."""
    calls = []
    for script in sorted(BENCHMARKS.glob("*.sh")):
        text = re.sub(r"\\\n", " ", script.read_text())
        calls += [(script.name, line) for line in text.splitlines() if "kard train-student" in line]
    assert calls
    assert [name for name, line in calls if "--resume" not in line and "--overwrite" not in line] == []

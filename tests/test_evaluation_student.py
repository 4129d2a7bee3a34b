"""An evaluation run's student is recorded by a label without absolute paths and a digest of its weights."""

import json
import logging
import shutil
from pathlib import Path

import pytest

from kard.config import GenerationConfig
from kard.errors import ConfigError
from kard.evaluation import evaluate, read_records
from kard.evaluation_student import student_label, student_weights
from kard.records import Question
from tests.tiny_models import save_tiny_decoder

QUESTIONS = [
    Question("q1", "Which gas do plants absorb?", {"A": "oxygen", "B": "carbon dioxide"}, answer="B"),
    Question("q2", "At what temperature does water freeze?", {"A": "zero degrees", "B": "fifty degrees"}, answer="A"),
]
GENERATION = GenerationConfig(max_new_tokens=4)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return save_tiny_decoder(tmp_path_factory.mktemp("students") / "tiny")


def _evaluate(folder: Path, questions, out: Path):
    from kard.student import Student

    return evaluate(Student.load(folder), questions, "reasoning", out=out, generation=GENERATION, progress=False)


def _retrain_in_place(folder: Path) -> None:
    """Other weights in the same files (what a training run into the same folder leaves)."""
    from safetensors.torch import load_file, save_file

    weights = load_file(folder / "model.safetensors")
    save_file({name: value * 0.5 for name, value in weights.items()}, folder / "model.safetensors",
              metadata={"format": "pt"})


def test_a_student_retrained_in_place_is_refused_naming_its_weights(tmp_path: Path, tiny: Path):
    student = shutil.copytree(tiny, tmp_path / "student")
    out = tmp_path / "results" / "reasoning.jsonl"
    _evaluate(student, QUESTIONS[:1], out)
    _retrain_in_place(student)
    with pytest.raises(ConfigError, match=r"changed: student_weights;.*has weights \w{16}\. Fix: use a new --out"):
        _evaluate(student, QUESTIONS, out)
    assert list(read_records(out)) == ["q1"]


def test_the_settings_name_no_absolute_path_and_a_copy_elsewhere_resumes(tmp_path: Path, tiny: Path, monkeypatch):
    first, second = (shutil.copytree(tiny, tmp_path / clone / "demo" / "student") for clone in ("one", "two"))
    monkeypatch.chdir(tmp_path / "one")
    out = tmp_path / "results" / "reasoning.jsonl"
    _evaluate(Path("demo/student"), QUESTIONS[:1], out)
    text = (tmp_path / "results" / "reasoning.settings.json").read_text()
    assert json.loads(text)["student"] == "demo/student" and str(tmp_path) not in text
    monkeypatch.chdir(tmp_path / "two")  # the same student in another clone
    resumed = _evaluate(second.resolve(), QUESTIONS, out)
    assert [r.question_id for r in resumed.records] == ["q1", "q2"] and len(read_records(out)) == 2
    assert first.is_dir()


def test_settings_written_before_weights_were_recorded(tmp_path: Path, tiny: Path, caplog):
    """The same place resumes with a warning (its weights cannot be checked) and then records them; another
    place is refused."""
    out = tmp_path / "reasoning.jsonl"
    _evaluate(tiny, QUESTIONS[:1], out)
    settings_file = tmp_path / "reasoning.settings.json"
    settings = json.loads(settings_file.read_text())
    legacy = {**{k: v for k, v in settings.items() if k != "student_weights"}, "student": str(tiny.resolve())}
    settings_file.write_text(json.dumps({**legacy, "student": "/elsewhere/student"}))
    with pytest.raises(ConfigError, match="before student weights were recorded, by the student at /elsewhere"):
        _evaluate(tiny, QUESTIONS, out)
    settings_file.write_text(json.dumps(legacy))
    with caplog.at_level(logging.WARNING, logger="kard.evaluation"):
        assert len(_evaluate(tiny, QUESTIONS, out).records) == 2
    assert "without checking that its weights" in caplog.text
    assert json.loads(settings_file.read_text())["student_weights"] == settings["student_weights"]


def test_a_hub_student_counts_by_its_id_and_commit():
    class Config:
        _commit_hash = "abc123"

    class Model:
        config = Config()

    class HubStudent:
        name = location = "HuggingFaceTB/SmolLM2-135M-Instruct"
        sources = (location,)
        model = Model()

    before = student_weights(HubStudent())
    Config._commit_hash = "def456"
    assert student_label(HubStudent()) == HubStudent.name and student_weights(HubStudent()) != before


def test_files_that_do_not_decide_answers_and_recorded_paths_do_not_count(tmp_path: Path, tiny: Path):
    class FolderStudent:
        name = "student"

        def __init__(self, folder: Path):
            self.location, self.sources = str(folder), (str(folder),)

    copy = shutil.copytree(tiny, tmp_path / "copy")
    (copy / "losses.jsonl").write_text("{}\n")
    (copy / "optimizer.pt").write_bytes(b"state")
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "_name_or_path": str(tmp_path)}))
    assert student_weights(FolderStudent(copy)) == student_weights(FolderStudent(tiny))
    (copy / "config.json").write_text(json.dumps({**config, "rms_norm_eps": 0.5}))
    assert student_weights(FolderStudent(copy)) != student_weights(FolderStudent(tiny))

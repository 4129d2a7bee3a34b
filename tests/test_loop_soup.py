"""benchmarks/loop_soup.py: averaging merged students, and fixed / broken against the base."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from safetensors.torch import load_file, save_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
spec = importlib.util.spec_from_file_location("loop_soup", ROOT / "benchmarks" / "loop_soup.py")
loop_soup = importlib.util.module_from_spec(spec)
spec.loader.exec_module(loop_soup)


def student(folder: Path, value: float) -> Path:
    folder.mkdir(parents=True)
    save_file({"w": torch.full((2, 3), value), "b": torch.tensor([value, 2 * value])}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return folder


def test_students_are_averaged_weight_by_weight(tmp_path):
    students = [student(tmp_path / f"s{i}", v) for i, v in enumerate([1.0, 2.0, 6.0])]
    soup = loop_soup.average_students(students, tmp_path / "soup")
    weights = load_file(soup / "model.safetensors")
    assert torch.equal(weights["w"], torch.full((2, 3), 3.0)) and torch.equal(weights["b"], torch.tensor([3.0, 6.0]))
    assert weights["w"].dtype == torch.float32
    assert json.loads((soup / "config.json").read_text()) == {"model_type": "llama"}
    assert json.loads((soup / "soup.json").read_text())["students"] == [str(s) for s in students]


def test_fixed_and_broken_against_the_base():
    base = {"q1": True, "q2": False, "q3": True, "q4": False}
    after = {"q1": False, "q2": True, "q3": True, "q4": True}
    assert loop_soup.fixed_and_broken(base, after) == (2, 1)

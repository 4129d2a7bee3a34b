"""benchmarks/train_default_reranker.py: --out replaced only when complete, the final loss's mean, missing data."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "train_default_reranker.py"
spec = importlib.util.spec_from_file_location("train_default_reranker", SCRIPT)
script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(script)


def test_the_final_loss_is_the_mean_of_the_losses_there_are():
    assert script.final_loss([1.0, 2.0, 3.0]) == 2.0  # 3 steps: not their sum over 20
    assert script.final_loss([9.0] * 5 + [1.0] * 20) == 1.0


def test_out_is_replaced_whole_and_only_by_a_complete_run(tmp_path: Path):
    out = tmp_path / "reranker"
    out.mkdir()
    (out / "evaluation.json").write_text("old", encoding="utf-8")
    (out / "kard_reranker.json").write_text("old", encoding="utf-8")
    building = script.training_folder(out)
    assert building.parent == out.parent and building != out
    building.mkdir()
    (building / "kard_reranker.json").write_text("new", encoding="utf-8")  # interrupted here: out as it was
    assert (out / "evaluation.json").read_text() == "old" and (out / "kard_reranker.json").read_text() == "old"
    (building / "evaluation.json").write_text("new", encoding="utf-8")
    script.replace_folder(building, out)
    assert {p.name: p.read_text() for p in out.iterdir()} == {"evaluation.json": "new", "kard_reranker.json": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reranker"]


def test_missing_data_is_one_line_naming_the_option(tmp_path: Path):
    with pytest.raises(SystemExit, match=r"^error: .*strategyqa/train.json does not exist .*--data FOLDER"):
        script.main(["--data", str(tmp_path), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()

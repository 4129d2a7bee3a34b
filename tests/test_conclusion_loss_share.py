"""benchmarks/conclusion_loss_share.py: the share of a KARD target's loss on its conclusion."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from tiny_models import save_tiny_decoder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("conclusion_loss_share", ROOT / "benchmarks" / "conclusion_loss_share.py")
share_module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(share_module)

TARGET = " Plants take in carbon dioxide. So the answer is carbon dioxide.\nAnswer: B"


def test_shares_split_reasoning_from_conclusion():
    rows = [([1.0, 1.0, 4.0, 2.0], 2), ([0.5, 1.5], 1)]  # (token losses, tokens before the conclusion)
    out = share_module.shares(rows)
    assert out["reasoning"] == (3, pytest.approx(2.5 / 3), pytest.approx(2.5 / 10))
    assert out["conclusion"] == (3, pytest.approx(7.5 / 3), pytest.approx(7.5 / 10))
    assert out["first conclusion token"] == (2, pytest.approx(5.5 / 2), pytest.approx(5.5 / 10))


def test_the_conclusion_starts_at_the_stated_option(tmp_path):
    from kard.student import Student

    student = Student.load(save_tiny_decoder(tmp_path / "tiny"))
    losses, offset = share_module.token_losses(student, "Question: which gas?\nExplanation:", TARGET)
    target_ids = student.text_ids(TARGET)
    assert len(losses) == len(target_ids) + 1  # and the end-of-text token
    assert student.decode(target_ids[:offset]).strip().endswith("So the answer is")
    assert student.decode(target_ids[offset:]).strip() == "carbon dioxide.\nAnswer: B"
    assert share_module.conclusion_offset(student, " No conclusion here.\nAnswer: B") == 0


def test_the_command_prints_the_table(tmp_path):
    folder = save_tiny_decoder(tmp_path / "tiny")
    examples = tmp_path / "examples.jsonl"
    examples.write_text("".join(json.dumps({"input": f"Question {i}?\nExplanation:", "target": TARGET}) + "\n"
                                for i in range(3)))
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "conclusion_loss_share.py"), "--student",
                          str(folder), "--examples", str(examples)], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "| conclusion |" in out.stdout and "| first conclusion token | 3 |" in out.stdout

"""benchmarks/recall_latency.py measures what it says: its saved questions are found, its unsaved ones not."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

from kard.annotations import AnnotationStore
from kard.recall import CorrectionRecall

ROOT = Path(__file__).resolve().parents[1]


def test_saved_questions_are_found_and_fresh_ones_are_not(tmp_path, capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("recall_latency", ROOT / "benchmarks" / "recall_latency.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rng = random.Random(1)
    questions = [script.question(i, rng) for i in range(20)]
    store = AnnotationStore(tmp_path / "s.db")
    script.fill(store, questions)
    recall = CorrectionRecall.from_store(store)
    assert len(recall) == 20 and all(recall.find(q) is not None for q in questions)
    assert recall.find(script.question(99, rng)) is None  # the timed "unsaved" case really scans, finds nothing
    monkeypatch.setattr("sys.argv", ["recall_latency.py", "--corrections", "5"])
    assert script.main() == 0
    assert "| 5 |" in capsys.readouterr().out

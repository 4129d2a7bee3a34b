"""benchmarks/gold_fact_breakdown.py: OpenBookQA accuracy split by where the gold fact was."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gold_fact_breakdown", ROOT / "benchmarks" / "gold_fact_breakdown.py")
breakdown_module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(breakdown_module)

from kard.evaluation import EvalRecord  # noqa: E402


def record(qid: str, passages: tuple[str, ...], rationale: str, correct: bool) -> EvalRecord:
    return EvalRecord(question_id=qid, condition="kard-bm25", gold="A", answer="A" if correct else "B",
                      correct=correct, rationale=rationale, sample_answers=("A",), votes={}, passage_ids=passages,
                      tokens_out=1, seconds=0.1)


def test_questions_are_grouped_by_where_their_gold_fact_was() -> None:
    gold = {"q1": "the sun is a star", "q2": "water boils at 100 c", "q3": "plants need light"}
    passages = {"p1": "the sun is a star", "p2": "water boils at 100 c", "p3": "iron rusts"}
    records = [
        record("q1", ("p1", "p3"), "The sun is a star. So the answer is yes.", True),  # first, written
        record("q2", ("p3", "p2"), "Iron rusts. So the answer is no.", False),  # among, not first
        record("q3", ("p3",), "Plants need light.", True),  # absent, written without a conclusion
    ]
    counts = breakdown_module.breakdown(records, gold, passages)
    assert counts == {"all": (3, 2), "gold first": (1, 1), "gold among": (2, 1), "gold absent": (1, 1),
                      "gold written": (2, 2)}


def test_the_table_reads_an_evaluation_folder(tmp_path: Path) -> None:
    questions = tmp_path / "dev.jsonl"
    questions.write_text(json.dumps({"id": "q1", "fact1": "The sun is a star"}) + "\n")
    kb = tmp_path / "passages.jsonl"
    kb.write_text(json.dumps({"id": "p1", "text": '"the sun is a star"'}) + "\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "kard-bm25-greedy.jsonl").write_text(record("q1", ("p1",), "the sun is a star.", True).to_json() + "\n")
    table = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gold_fact_breakdown.py"), "--questions",
                            str(questions), "--passages", str(kb), str(run)], capture_output=True, text=True)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[-1] == f"| {run} | 100.0 (1) | 100.0 (1) | 100.0 (1) | - (0) | 100.0 (1) |"

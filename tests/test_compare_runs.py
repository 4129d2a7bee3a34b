"""benchmarks/compare_runs.py: two evaluation runs side by side (letters agreed, accuracies, paired test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def results(folder: Path, answers: str, gold: str = "AAAA") -> Path:
    folder.mkdir(parents=True)
    rows = [{"question_id": f"q{i}", "answer": a, "correct": a == g} for i, (a, g) in enumerate(zip(answers, gold))]
    (folder / "kard-bm25-greedy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def compare(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "compare_runs.py"), *map(str, paths)],
                          capture_output=True, text=True)


def test_files_or_their_evaluation_folders_give_the_same_row(tmp_path: Path) -> None:
    first, second = results(tmp_path / "a", "AABC"), results(tmp_path / "b", "ABAA")
    by_folder = compare(first, second)
    by_file = compare(first / "kard-bm25-greedy.jsonl", second / "kard-bm25-greedy.jsonl")
    assert by_folder.returncode == 0, by_folder.stderr
    assert by_folder.stdout == by_file.stdout
    assert "| 4 | 25.0 (5-70) | 50.0 | 75.0 | 1 / 2, p = 1.000 |" in by_folder.stdout


def test_a_folder_without_one_results_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    refused = compare(tmp_path / "empty", results(tmp_path / "b", "AAAA"))
    assert refused.returncode != 0 and "holds 0 results files" in refused.stderr and "Fix:" in refused.stderr

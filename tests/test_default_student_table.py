"""benchmarks/default_student_table.py: the shipped-student table from `kard evaluate --out` folders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kard.evaluation import EvalRecord  # noqa: E402


def write_run(folder: Path, answers: str, gold: str, sources: str = "") -> None:
    """One `kard evaluate --out` folder: its results file beside its settings file."""
    folder.mkdir(parents=True)
    records = [EvalRecord(question_id=f"q{i}", condition="kard-bm25", gold=g, answer=a if a != "-" else None,
                          correct=a == g, rationale="", sample_answers=(), votes={}, passage_ids=(), tokens_out=0,
                          seconds=0.0, answer_source={"c": "chosen", "s": "stated"}.get(s, "parsed"))
               for i, (a, g, s) in enumerate(zip(answers, gold, sources.ljust(len(answers))))]
    (folder / "kard-bm25-greedy.jsonl").write_text("".join(r.to_json() + "\n" for r in records), encoding="utf-8")
    (folder / "kard-bm25-greedy.settings.json").write_text("{}", encoding="utf-8")


def table(eval_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "default_student_table.py"), str(eval_dir)],
                          capture_output=True, text=True)


def test_rows_per_set_and_student_with_the_paired_test(tmp_path: Path) -> None:
    write_run(tmp_path / "obqa" / "kard", "ABCD", "ABCA", sources="  cs")
    write_run(tmp_path / "obqa" / "finetune", "AAAA", "ABCA")
    made = table(tmp_path)
    assert made.returncode == 0, made.stderr
    lines = made.stdout.splitlines()
    assert "| OpenBookQA dev | kard | 4 | 75.0 | 30.1-95.4 | 75.0 | 25.0 | 25.0 | 0.0 | A 1 B 1 C 1 D 1 |" in lines
    assert "| OpenBookQA dev | finetune | 4 | 50.0 | 15.0-85.0 | 100.0 | 0.0 | 0.0 | 0.0 | A 4 |" in lines
    assert ("- OpenBookQA dev, kard vs finetune: right only with kard 2, only with finetune 1; "
            "exact McNemar p = 1") in lines
    assert not any("StrategyQA" in line for line in lines)  # a set with no folders has no rows


def test_a_folder_with_two_results_files_is_refused_not_guessed(tmp_path: Path) -> None:
    write_run(tmp_path / "demo" / "kard", "AB", "AB")
    (tmp_path / "demo" / "kard" / "older-run.jsonl").write_text("", encoding="utf-8")
    refused = table(tmp_path)
    assert refused.returncode != 0 and "holds 2 results files" in refused.stderr


def test_an_interrupted_evaluation_is_noted_not_evaluated_yet(tmp_path: Path) -> None:
    """Ctrl-C before the first answers: the folder has only its settings, or an empty results file."""
    write_run(tmp_path / "obqa" / "kard", "AB", "AB")
    (tmp_path / "strategyqa" / "kard").mkdir(parents=True)
    (tmp_path / "strategyqa" / "kard" / "kard-bm25-greedy.settings.json").write_text("{}", encoding="utf-8")
    (tmp_path / "medqa" / "kard").mkdir(parents=True)
    (tmp_path / "medqa" / "kard" / "kard-bm25-greedy.jsonl").write_text("", encoding="utf-8")
    made = table(tmp_path)
    assert made.returncode == 0, made.stderr
    assert any(line.startswith("| OpenBookQA dev | kard | 2 |") for line in made.stdout.splitlines())
    assert "- StrategyQA held-out, kard: not evaluated yet" in made.stdout
    assert "- MedQA held-out, kard: not evaluated yet" in made.stdout


def test_a_folder_without_evaluations_is_refused_by_name(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-eval"
    made = table(missing)
    assert made.returncode == 2
    assert f"{missing} holds no evaluation" in made.stderr and "evaluate_default_student.sh" in made.stderr
    assert made.stdout == ""

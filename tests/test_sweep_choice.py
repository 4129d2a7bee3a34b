"""benchmarks/sweep_choice.py: the GPU sweep's checkpoint choice (most right on both dev sets) and its table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def scored(sweep: Path, name: str, student: str, **accuracies: tuple[float, int]) -> None:
    (sweep / "scores").mkdir(parents=True, exist_ok=True)
    (sweep / "scores" / f"{name}.student").write_text(student + "\n")
    for dataset, (accuracy, questions) in accuracies.items():
        folder = sweep / "scores" / name / dataset
        folder.mkdir(parents=True)
        summary = {"dataset": dataset, "accuracy": accuracy, "questions": questions, "unanswered": 0.0}
        (folder / "kard-bm25-greedy.summary.json").write_text(json.dumps(summary))


def run(sweep: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sweep_choice.py"), str(sweep), *flags],
                          capture_output=True, text=True)


def test_the_most_questions_right_over_both_dev_sets_is_chosen_per_method(tmp_path: Path) -> None:
    scored(tmp_path, "kard-lr1e-3-checkpoint-330", "run/a/checkpoint-330", obqa=(0.49, 500), strategyqa=(0.52, 300))
    scored(tmp_path, "kard-lr1e-3-final", "run/a", obqa=(0.478, 500), strategyqa=(0.547, 300))  # 239 + 164 > 245 + 156
    scored(tmp_path, "kard-lr5e-4-final", "run/b", obqa=(0.60, 500))  # never scored on StrategyQA: not a candidate
    scored(tmp_path, "finetune-lr1e-3-final", "run/c", obqa=(0.506, 500), strategyqa=(0.53, 300), demo=(0.275, 51))
    done = run(tmp_path)
    assert done.returncode == 0, done.stderr
    choice = json.loads(done.stdout)
    assert choice["kard"] == {"name": "kard-lr1e-3-final", "student": "run/a", "obqa": 0.478, "strategyqa": 0.547}
    assert choice["finetune"]["student"] == "run/c"
    table = run(tmp_path, "--table").stdout
    assert "| kard-lr1e-3-final | 47.8 (500) | 54.7 (300) | - | - | yes |" in table
    assert "| kard-lr1e-3-checkpoint-330 | 49.0 (500) | 52.0 (300) | - | - |  |" in table
    assert "| finetune-lr1e-3-final | 50.6 (500) | 53.0 (300) | - | 27.5 (51) | yes |" in table


def test_a_method_with_no_complete_candidate_is_an_error(tmp_path: Path) -> None:
    scored(tmp_path, "kard-lr1e-3-final", "run/a", obqa=(0.5, 500), strategyqa=(0.5, 300))
    done = run(tmp_path)
    assert done.returncode != 0 and "no finetune candidate was scored on obqa and strategyqa" in done.stderr


def test_every_kard_variant_competes_for_the_one_kard_choice(tmp_path: Path) -> None:
    scored(tmp_path, "kard-lr1e-3-final", "run/kard", obqa=(0.46, 500), strategyqa=(0.54, 300))  # 230 + 162
    scored(tmp_path, "kard-question-lr1e-3-final", "run/q", obqa=(0.47, 500), strategyqa=(0.5533, 300))  # 235 + 166
    scored(tmp_path, "kard-both-lr1e-3-final", "run/both", obqa=(0.494, 500), strategyqa=(0.49, 300))  # 247 + 147
    scored(tmp_path, "finetune-lr1e-3-final", "run/ft", obqa=(0.534, 500), strategyqa=(0.51, 300))
    choice = json.loads(run(tmp_path).stdout)
    assert choice["kard"]["name"] == "kard-question-lr1e-3-final" and choice["kard"]["student"] == "run/q"
    assert choice["finetune"]["student"] == "run/ft"

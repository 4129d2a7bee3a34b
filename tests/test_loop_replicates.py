"""benchmarks/loop_replicates.py: reads every replicate's round-1 answers and tests the pooled gap."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kard.evaluation import EvalRecord

ROOT = Path(__file__).resolve().parents[1]


def write_replicate(folder: Path, corrections: list[bool], control: list[bool], learned: int,
                    changes: tuple[int, int, int, int] | None = None) -> None:
    folder.mkdir(parents=True)
    for arm, right in (("corrections", corrections), ("control", control)):
        lines = [EvalRecord(f"q{i}", "kard-bm25", "A", "A" if r else "B", r, "", (), {}, (), 8, 0.1).to_json()
                 for i, r in enumerate(right)]
        (folder / f"round-1.{arm}.heldout.jsonl").write_text("\n".join(lines) + "\n")
    report = {"rounds": [{"corrected_right_on_pool": learned, "corrections_so_far": 20}]}
    if changes:  # fixed / broken against the base: corrections arm, then control
        report["rounds"][0]["corrections"] = {"fixed_vs_base": changes[0], "broken_vs_base": changes[1]}
        report["rounds"][0]["control"] = {"fixed_vs_base": changes[2], "broken_vs_base": changes[3]}
    (folder / "report.json").write_text(json.dumps(report))


def test_replicates_are_tabled_and_pooled(tmp_path: Path):
    # seed 0: corrections right on q0-q29, control on q0-q19; seed 1 the same, shifted by one question
    write_replicate(tmp_path / "obqa-n20", [i < 30 for i in range(40)], [i < 20 for i in range(40)], 7, (9, 3, 5, 7))
    write_replicate(tmp_path / "obqa-n20-t1", [i < 31 for i in range(40)], [i < 21 for i in range(40)], 9, (8, 4, 6, 6))
    (tmp_path / "obqa-n20-t2").mkdir()  # an unfinished replicate is left out
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "loop_replicates.py"), str(tmp_path)],
                          capture_output=True, text=True, check=True)
    out = done.stdout
    assert "| 0 | 75.0 | 50.0 | +25.0 | 10 / 0, p = 0.00195 | 9 / 3 | 5 / 7 | 7 of 20 |" in out
    assert "| 1 | 77.5 | 52.5 | +25.0 | 10 / 0, p = 0.00195 | 8 / 4 | 6 / 6 | 9 of 20 |" in out
    assert "broken <= fixed / 3 in 1 of 2 replicates; 17 fixed / 7 broken in all" in out
    assert "over 2 replicates: +25.00 points" in out and "sign-flip p = 0.5" in out
    assert "corrections ahead on 11, behind on 0" in out
    assert "control vs control (training seed alone): gaps -2.5 points" in out

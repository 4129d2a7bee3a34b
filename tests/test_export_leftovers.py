"""`python -m kard export` leaves nothing that misleads: a --no-hf export into an earlier export's folder removes its
out-of-date hf_dataset/; an export that fails (every correction excluded, a corrupt database) says why and leaves no
empty --out folder; --kb and --top-n without --knowledge-from kb are refused, not ignored (real SQLite files)."""

from __future__ import annotations

import json
from pathlib import Path

from test_export import FAST, correction

from kard.__main__ import main
from kard.annotations import AnnotationStore
from kard.loop.export import DATASET_DIR, EXAMPLES_FILE, MANIFEST_FILE


def saved(path: Path, *changes: dict) -> Path:
    store = AnnotationStore(path, FAST)
    for change in changes:
        store.save(correction(**change))
    return path


KEPT = {"rationale": "Scurvy comes from too little vitamin C.\nAnswer: A", "rating": 5}
GOLD_MISMATCH = {"item_id": "demo:q2", "question_id": "q2", "answer": "B", "gold_answer": "A",
                 "rationale": "Vitamin D it is.\nAnswer: B", "rating": 5}
LOW_RATED = {"item_id": "demo:q3", "question_id": "q3", "rationale": "Rickets is about vitamin D.", "rating": 1}


def test_a_no_hf_export_into_an_earlier_export_removes_its_out_of_date_dataset(tmp_path, capsys):
    db, out = saved(tmp_path / "a.db", KEPT), tmp_path / "export"
    assert main(["export", "--db", str(db), "--out", str(out)]) == 0, capsys.readouterr().err
    assert (out / DATASET_DIR).is_dir()
    assert main(["export", "--db", str(db), "--out", str(out), "--no-hf"]) == 0, capsys.readouterr().err
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["files"]["hf_dataset"] is None and not (out / DATASET_DIR).exists()
    assert sorted(p.name for p in out.iterdir()) == [EXAMPLES_FILE, MANIFEST_FILE]

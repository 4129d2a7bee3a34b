"""`python -m kard export` leaves nothing that misleads: a --no-hf export into an earlier export's folder removes its
out-of-date hf_dataset/; an export that fails (every correction excluded, a corrupt database) says why and leaves no
empty --out folder; --kb and --top-n without --knowledge-from kb are refused, not ignored (real SQLite files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
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


def test_an_export_with_every_correction_excluded_says_why_and_which_flags_keep_them_and_leaves_no_folder(
        tmp_path, capsys):
    db, out = saved(tmp_path / "a.db", GOLD_MISMATCH, LOW_RATED), tmp_path / "runs" / "export"
    assert main(["export", "--db", str(db), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "all 2 saved correction(s) were excluded" in err and "save corrections in curator mode" not in err
    assert "demo:q2 (revision 1): corrected answer B differs from the gold answer A" in err
    assert "demo:q3 (revision 1): rated 1 (<= 2) and the rationale was not corrected" in err
    fix = err.split("Fix: ", 1)[1]
    assert "--keep-gold-mismatch" in fix and "--low-rating" in fix and "--keep-inconsistent" not in fix
    assert not (tmp_path / "runs").exists(), "a failed export left an empty --out folder"
    assert main(["export", "--db", str(db), "--out", str(out), "--keep-gold-mismatch", "--low-rating", "0"]) == 0


def test_a_failed_export_leaves_an_earlier_export_folder_as_it_was(tmp_path, capsys):
    db, out = saved(tmp_path / "a.db", KEPT), tmp_path / "export"
    assert main(["export", "--db", str(db), "--out", str(out), "--no-hf"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    AnnotationStore(db, FAST).save(correction(**{**KEPT, "note": "reject: the gold label is wrong"}))
    assert main(["export", "--db", str(db), "--out", str(out), "--no-hf"]) == 2
    err = capsys.readouterr().err
    assert "all 1 saved correction(s) were excluded" in err and "rejected" in err and "edit the note" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_an_export_of_a_corrupt_database_leaves_no_empty_folder(tmp_path, capsys):
    db = saved(tmp_path / "a.db", KEPT)
    for file in tmp_path.glob("a.db*"):
        file.unlink()
    db.write_bytes(b"not a database" * 500)
    assert main(["export", "--db", str(db), "--out", str(tmp_path / "export"), "--no-hf"]) == 2
    assert "file is not a database" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.db"]


@pytest.mark.parametrize("flags, named", [
    (["--kb", "{tmp}/kb"], "--kb only applies"),
    (["--top-n", "3"], "--top-n only applies"),
    (["--kb", "{tmp}/kb", "--top-n", "3"], "--kb and --top-n only apply"),
    (["--knowledge-from", "kb"], "--knowledge-from kb needs a knowledge base. Fix: pass --kb"),
])
def test_knowledge_flags_without_their_mode_are_refused_not_ignored(tmp_path, capsys, flags, named):
    db = saved(tmp_path / "a.db", KEPT)
    argv = ["export", "--db", str(db), "--out", str(tmp_path / "export"), "--no-hf"]
    assert main(argv + [flag.format(tmp=tmp_path) for flag in flags]) == 2
    err = capsys.readouterr().err
    assert named in err and "--knowledge-from kb" in err
    assert not (tmp_path / "export").exists()

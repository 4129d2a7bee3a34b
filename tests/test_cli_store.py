"""`python -m kard export` and the store it reads: the app's store by default (as `restore`), and a store on
read-only storage, which export only reads."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from app_fixtures import without_settings
from test_annotations import FAST, correction

from kard.__main__ import main
from kard.annotations import AnnotationStore, AnnotationStoreError

SETTINGS = ("KARD_ANNOTATIONS_DB", "KARD_PERSISTENT_DIR", "SPACE_ID", "SYSTEM")


@pytest.fixture
def env(monkeypatch, tmp_path):
    """No store settings; the current folder is an empty tmp_path/work."""
    without_settings(monkeypatch, tmp_path, SETTINGS)
    return monkeypatch


def saved_store(path: Path, items: int = 1) -> AnnotationStore:
    store = AnnotationStore(path, FAST)
    for item in range(1, items + 1):
        store.save(correction(item_id=f"demo:q{item}", question_id=f"q{item}"))
    return store


def exported_items(out: Path) -> int:
    manifest = json.loads((out / "export.json").read_text())
    return manifest["examples"] + len(manifest["excluded"])


@pytest.mark.parametrize("setting", ["KARD_ANNOTATIONS_DB", "KARD_PERSISTENT_DIR"])
def test_export_reads_the_apps_store_without_db(env, tmp_path, capsys, setting):
    if setting == "KARD_ANNOTATIONS_DB":
        db = tmp_path / "app.db"
        env.setenv(setting, str(db))
    else:
        db = tmp_path / "kard-studio" / "annotations.db"
        db.parent.mkdir()
        env.setenv(setting, str(tmp_path))
    saved_store(db, items=3)
    saved_store(Path("annotations/annotations.db"))  # not the app's store here
    assert main(["export", "--out", "out", "--no-hf"]) == 0, capsys.readouterr().err
    assert exported_items(Path("out")) == 3


def test_export_without_db_names_the_store_it_looked_for(env, tmp_path, capsys):
    env.setenv("KARD_ANNOTATIONS_DB", str(tmp_path / "gone.db"))
    assert main(["export", "--out", "out", "--no-hf"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: no annotation database at {tmp_path / 'gone.db'}") and "Fix: pass --db" in err
    assert not Path("out").exists()


def unopenable_shm(db: Path) -> None:
    """What read-only storage does to a WAL database: SQLite cannot create its -shm file (as root too)."""
    db.with_name(db.name + "-shm").symlink_to(db.parent / "no-such-folder" / "x-shm")


def test_export_reads_a_wal_store_on_read_only_storage(env, tmp_path, capsys):
    db = tmp_path / "ro" / "annotations.db"
    rows = saved_store(db, items=2).rows()
    unopenable_shm(db)
    assert main(["export", "--db", str(db), "--out", "out", "--no-hf"]) == 0, capsys.readouterr().err
    assert exported_items(Path("out")) == 2
    reader = AnnotationStore.existing(db, FAST)
    assert reader.rows() == rows and reader.count() == 2


def test_saves_still_in_the_wal_file_are_not_read_past(env, tmp_path):
    db = tmp_path / "live" / "annotations.db"
    saved_store(db)
    holder = sqlite3.connect(db)  # keeps the -wal file from being folded back at the last close
    holder.execute("SELECT 1 FROM sqlite_master").fetchall()
    saved_store(db, items=3)
    copy = tmp_path / "copy"
    copy.mkdir()
    for suffix in ("", "-wal"):
        shutil.copy(db.with_name(db.name + suffix), copy / f"annotations.db{suffix}")
    holder.close()
    unopenable_shm(copy / "annotations.db")
    with pytest.raises(AnnotationStoreError, match="its annotations.db-wal file holds saves not yet in the database "
                                                   "file.*Fix: copy the database and its -wal file"):
        AnnotationStore.existing(copy / "annotations.db", FAST).count()

"""Store errors as the page shows them: the right diagnosis (a full disk), the file name only and fixes a
person on the page can carry out; the command line keeps the full path. Real SQLite files."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from collections import namedtuple

import pytest
from test_annotations import correction, locked_by_another_writer
from test_app_handlers import asked, compare, studio

from kard.annotations import AnnotationStore, AnnotationStoreError, StoreReadOnlyError, locked_wait_s
from kard.config import AnnotationStoreConfig
from kard.errors import KardError, page_text
from kard.ui import blocks
from kard.ui.curating import Edit

Usage = namedtuple("Usage", "total used free")


def fail_with(store: AnnotationStore, message: str) -> KardError:
    def operation():
        raise sqlite3.OperationalError(message)

    with pytest.raises(KardError) as caught:
        store._with_retry(operation)
    return caught.value


def test_a_disk_io_error_on_a_full_disk_says_the_disk_is_full_and_never_to_move_the_file_aside(tmp_path, monkeypatch):
    store = AnnotationStore(tmp_path / "a.db")
    monkeypatch.setattr("kard.annotations.shutil.disk_usage", lambda path: Usage(200_000, 200_000, 0))
    full = fail_with(store, "disk I/O error")
    assert "its disk is full" in str(full) and str(tmp_path) in str(full) and "KARD_ANNOTATIONS_DB" in str(full)
    assert "its disk is full" in page_text(full) and str(tmp_path) not in page_text(full) and "a.db" in page_text(full)
    assert "free space on that disk" in page_text(full)
    monkeypatch.setattr("kard.annotations.shutil.disk_usage", lambda path: Usage(10**12, 10**9, 10**11))
    other = fail_with(store, "disk I/O error")
    assert "could not be read or written" in str(other) and "check the disk" in str(other)
    assert not any("move it aside" in text for text in (str(full), page_text(full), str(other), page_text(other)))


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_store_on_a_full_tmpfs_says_the_disk_is_full(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mount)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        store = AnnotationStore(mount / "annotations.db")
        assert store.save(correction()).revision == 1
        filler = mount / "filler"
        with open(filler, "wb") as out, pytest.raises(OSError):
            out.write(b"\0" * 400_000)  # fill the disk to its last byte
        with pytest.raises(AnnotationStoreError, match="its disk is full") as caught:
            store.save(correction(item_id="demo:q2", rationale="words " * 1_300))
        assert "move it aside" not in str(caught.value) and str(mount) not in page_text(caught.value)
        filler.unlink()
        assert store.save(correction(item_id="demo:q3")).revision == 1
    finally:
        subprocess.run(["umount", "-l", str(mount)])


def test_a_read_only_store_names_the_file_only_on_the_page(tmp_path):
    store = AnnotationStore(tmp_path / "a.db")
    error = fail_with(store, "attempt to write a readonly database")
    assert isinstance(error, StoreReadOnlyError) and str(tmp_path / "a.db") in str(error)
    assert str(tmp_path) not in page_text(error) and "a.db cannot be written" in page_text(error)
    assert "make its storage writable" in page_text(error)


def test_a_locked_store_gives_up_after_the_time_its_config_promises_and_the_page_gets_the_file_name(tmp_path):
    import gradio  # noqa: F401 - blocks.save imports it: seconds on a busy machine, not to be timed

    assert locked_wait_s(AnnotationStoreConfig()) <= 6.5  # what AnnotationStoreConfig's comment promises
    store = AnnotationStore(tmp_path / "locked.db")  # the default config, as the app runs it
    s = studio(store)
    item = compare(s, asked(s)).item
    with locked_by_another_writer(store.path, 9.0):
        started = time.monotonic()
        shown, *_ = blocks.save(s, item, Edit("Scurvy means too little vitamin C.", "A", 4), False, "alice")
        took = time.monotonic() - started
    assert took <= locked_wait_s(store.config) + 1.5, took
    assert "locked.db stayed locked" in shown and str(tmp_path) not in shown and "save again" in shown
    assert "sqlite3 shells" not in shown and store.count() == 0

"""Curation on a Space, offline: settings, where the store lives, snapshots, the scheduled push (a fake Hub),
the "last synced" line, restore, and that the token shows up nowhere."""

from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest
from app_fixtures import without_settings
from test_annotations import FAST, correction

from kard.annotations import AnnotationStore
from kard.config import DEFAULT_ANNOTATIONS_DB, AppConfig, default_annotations_db
from kard.errors import ConfigError, DataError, KardError
from kard.space_sync import (
    CORRECTIONS_FILE,
    MANIFEST_FILE,
    REVISIONS_FILE,
    HfHub,
    RepoMovedError,
    SpaceSync,
    SyncConfig,
    SyncError,
    describe_error,
    read_rows,
    restore_store,
    space_warnings,
    start_sync,
    storage_notice,
    write_snapshot,
)
from kard.ui.item_seal import ItemSeal
from kard.ui.studio import Studio

TOKEN = "hf_SeCrEtToKeN0123456789abcdefXYZ"
REPO = "alice/kard-notes"
NOON = datetime(2025, 5, 1, 12, 3, tzinfo=timezone.utc)
SETTINGS = ("KARD_MODE", "KARD_ANNOTATIONS_DB", "KARD_PERSISTENT_DIR", "KARD_SYNC_REPO", "KARD_SYNC_EVERY_MINUTES",
            "HF_TOKEN", "SPACE_ID", "SYSTEM", "KARD_CURATORS", "KARD_CURATOR_USER", "KARD_CURATOR_PASSWORD",
            "KARD_STUDENT", "KARD_RERANKER", "KARD_QUESTIONS", "KARD_KNOWLEDGE", "GRADIO_SERVER_PORT", "KARD_SEAL_KEY")


@pytest.fixture
def env(monkeypatch, tmp_path):
    """No app settings; the current folder is an empty tmp_path; /data is a folder that does not exist."""
    import app  # before the chdir

    monkeypatch.setattr(app, "build_app", lambda *a, **k: pytest.fail("the app started despite a bad setting"))
    without_settings(monkeypatch, tmp_path, SETTINGS)
    return monkeypatch


def save(store: AnnotationStore, item: int, **changes):
    return store.save(correction(item_id=f"demo:q{item}", question_id=f"q{item}", **changes))


class FakeHub:
    """The dataset repo as a dict of files and a list of commits; records uploads; refuses an upload whose parent
    is no longer the head (as the Hub does); raises what a test asks for."""

    def __init__(self, files: dict[str, bytes] | None = None):
        self.files = dict(files or {})  # the head commit's files
        self.commits: list[str] = [commit_id(0)] if files else []  # oldest first; [] : no repo yet
        self.trees: dict[str, dict[str, bytes]] = {c: dict(self.files) for c in self.commits}
        self.uploads: list[tuple[str, str, dict[str, bytes]]] = []
        self.upload_error: BaseException | None = None
        self.download_error: BaseException | None = None
        self.downloads: list[str] = []
        self.before_upload: Callable[[], object] | None = None  # runs once, inside the next upload

    def head(self, repo_id: str) -> str | None:
        if self.download_error is not None:
            raise self.download_error
        return self.commits[-1] if self.commits else None

    def create(self, repo_id: str) -> None:
        if not self.commits:  # the Hub's first commit of a new repo (.gitattributes)
            self._commit({})

    def upload(self, folder: Path, repo_id: str, message: str, parent_commit: str | None = None) -> None:
        if self.upload_error is not None:
            raise self.upload_error
        interleaved, self.before_upload = self.before_upload, None
        if interleaved is not None:
            interleaved()
        if parent_commit is not None and parent_commit != self.head(repo_id):
            raise RepoMovedError(f"{repo_id}: a commit has happened since {parent_commit}")
        content = {p.name: p.read_bytes() for p in folder.iterdir()}
        self.uploads.append((repo_id, message, content))
        self._commit(content)

    def _commit(self, content: dict[str, bytes]) -> None:
        self.files.update(content)
        self.commits.append(commit_id(len(self.commits)))
        self.trees[self.commits[-1]] = dict(self.files)

    def download(self, repo_id: str, filename: str, folder: Path, revision: str | None = None) -> Path | None:
        if self.download_error is not None:
            raise self.download_error
        self.downloads.append(filename)
        files = self.files if revision in (None, self.head(repo_id)) else self.trees[revision]
        if filename not in files:
            return None
        (folder / filename).write_bytes(files[filename])
        return folder / filename


def commit_id(number: int) -> str:
    return f"{number:040x}"


def http_error(status: int, kind: str = "HfHubHTTPError", text: str = ""):
    import httpx2
    from huggingface_hub import errors

    request = httpx2.Request("POST", f"https://huggingface.co/api/datasets/{REPO}/commit/main")
    return getattr(errors, kind)(f"{status} Client Error{text}", response=httpx2.Response(status, request=request))


# -- settings -----------------------------------------------------------------------------------------
def test_sync_settings_are_read_and_the_token_stays_out(env):
    env.setenv("KARD_MODE", "curator")
    env.setenv("KARD_SYNC_REPO", REPO)
    env.setenv("KARD_SYNC_EVERY_MINUTES", "2.5")
    env.setenv("HF_TOKEN", TOKEN)
    config = AppConfig.from_env()
    assert (config.sync_repo, config.sync_every_minutes, config.sync_enabled) == (REPO, 2.5, True)
    assert SyncConfig.from_app(config) == SyncConfig(REPO, 2.5)
    assert TOKEN not in repr(config)
    env.delenv("KARD_SYNC_EVERY_MINUTES")
    assert AppConfig.from_env().sync_every_minutes == 10.0


def test_a_week_is_the_longest_sync_period(env):
    env.setenv("KARD_SYNC_EVERY_MINUTES", "10080")
    assert AppConfig.from_env().sync_every_minutes == 10080


@pytest.mark.parametrize("pasted", [TOKEN + "\n", f"  {TOKEN} ", TOKEN + "\r\n"])
def test_a_pasted_token_reaches_the_hub_without_its_whitespace(env, store, pasted):
    from kard.config import hub_token

    env.setenv("HF_TOKEN", pasted)
    assert hub_token() == TOKEN
    given = []
    env.setattr("kard.space_sync.HfHub", lambda token, **_: given.append(token) or FakeHub())
    env.setattr("kard.space_sync.atexit.register", lambda _: None)
    sync = start_sync(AppConfig(mode="curator", sync_repo=REPO, annotations_db=store.path), store)
    sync.stop(flush=False)
    assert given == [TOKEN] and sync._token == TOKEN


def test_a_sync_repo_in_demo_mode_needs_no_token_and_does_nothing(env, caplog):
    env.setenv("KARD_SYNC_REPO", REPO)
    config = AppConfig.from_env()
    assert config.sync_repo == REPO and not config.sync_enabled and SyncConfig.from_app(config) is None
    with caplog.at_level(logging.WARNING):
        assert start_sync(config, AnnotationStore(Path("a.db"), read_only=True), FakeHub()) is None
    assert "ignored in demo mode" in caplog.text


@pytest.mark.parametrize("settings, named", [
    ({"KARD_SYNC_REPO": "kard-notes"}, "KARD_SYNC_REPO='kard-notes' is not a repo id owner/name"),
    ({"KARD_SYNC_REPO": "https://huggingface.co/datasets/alice/notes"}, "is not a repo id owner/name"),
    ({"KARD_SYNC_REPO": "datasets/alice/notes"}, "is not a repo id owner/name"),
    ({"KARD_SYNC_REPO": "alice/no--dashes"}, "KARD_SYNC_REPO='alice/no--dashes' is not a valid repo id"),
    ({"KARD_SYNC_EVERY_MINUTES": "0"}, "KARD_SYNC_EVERY_MINUTES='0' must be at least 1 minute"),
    ({"KARD_SYNC_EVERY_MINUTES": "-5"}, "KARD_SYNC_EVERY_MINUTES='-5' must be at least 1 minute"),
    ({"KARD_SYNC_EVERY_MINUTES": "nan"}, "KARD_SYNC_EVERY_MINUTES='nan' is not a number of minutes"),
    ({"KARD_SYNC_EVERY_MINUTES": "ten"}, "KARD_SYNC_EVERY_MINUTES='ten' is not a number of minutes"),
    ({"KARD_SYNC_EVERY_MINUTES": "1e9"}, "KARD_SYNC_EVERY_MINUTES='1e9' is more than a week (10080 minutes)"),
    ({"KARD_SYNC_EVERY_MINUTES": "10081"}, "is more than a week (10080 minutes). Fix: set KARD_SYNC_EVERY_MINUTES"),
    ({"KARD_MODE": "curator", "KARD_SYNC_REPO": REPO}, f"KARD_SYNC_REPO='{REPO}' is set but HF_TOKEN is not"),
    ({"KARD_MODE": "curator", "KARD_SYNC_REPO": REPO, "HF_TOKEN": " \n"}, "is set but HF_TOKEN is not"),
    ({"KARD_PERSISTENT_DIR": "no-such-folder"}, "KARD_PERSISTENT_DIR='no-such-folder' is not an existing folder"),
    ({"KARD_SEAL_KEY": "my-seal"}, "KARD_SEAL_KEY has 7 characters; a seal key needs at least 32"),
])
def test_bad_space_settings_stop_the_app_in_one_line(env, capsys, settings, named):
    import app

    for name, value in {"KARD_CURATOR_USER": "u", "KARD_CURATOR_PASSWORD": "p", **settings}.items():
        env.setenv(name, value)
    assert app.main(["--no-preload"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and named in err and "Fix: " in err and "\n" not in err
    assert list(Path.cwd().iterdir()) == []  # no database, no folder


# -- where the store lives ------------------------------------------------------------------------------
def test_the_store_goes_to_the_persistent_folder_unless_named(env, tmp_path):
    assert AppConfig.from_env().annotations_db == DEFAULT_ANNOTATIONS_DB == default_annotations_db()
    env.setenv("KARD_PERSISTENT_DIR", str(tmp_path))
    config = AppConfig.from_env()
    assert config.persistent_dir == tmp_path
    assert config.annotations_db == tmp_path / "kard-studio" / "annotations.db" == default_annotations_db()
    env.setenv("KARD_ANNOTATIONS_DB", "mine.db")
    assert AppConfig.from_env().annotations_db == Path("mine.db") == default_annotations_db()
    assert AppConfig.from_env(annotations_db="flag.db").annotations_db == Path("flag.db")


def test_a_space_uses_data_only_when_it_has_storage(env, tmp_path):
    env.setenv("SPACE_ID", "alice/kard-studio")
    env.setenv("SYSTEM", "spaces")
    env.setenv("KARD_MODE", "curator")
    config = AppConfig.from_env()  # the Space has no persistent storage: /data does not exist
    assert config.persistent_dir is None and config.annotations_db == DEFAULT_ANNOTATIONS_DB
    assert not config.store_persists
    data = tmp_path / "data"
    data.mkdir()
    env.setattr("kard.config.SPACE_PERSISTENT_DIR", data)
    config = AppConfig.from_env()
    assert config.annotations_db == data / "kard-studio" / "annotations.db" and config.store_persists
    env.delenv("SYSTEM")  # off a Space (as Gradio decides it), /data is nobody's persistent storage
    assert AppConfig.from_env().annotations_db == DEFAULT_ANNOTATIONS_DB
    env.delenv("SPACE_ID")
    assert AppConfig.from_env().annotations_db == DEFAULT_ANNOTATIONS_DB


def test_space_id_alone_is_not_a_space_so_curators_keep_the_password(env, capsys, caplog):
    """Off a Space Gradio's login button is a mock signing every visitor in as the owner of HF_TOKEN."""
    import app

    env.setenv("SPACE_ID", "alice/kard-studio")
    env.setenv("KARD_MODE", "curator")
    env.setenv("HF_TOKEN", TOKEN)
    config = AppConfig.from_env()
    assert not config.on_spaces
    with caplog.at_level(logging.WARNING, "kard.app"):
        assert app.main(["--no-preload"]) == 2  # no password set: stopped, never the mocked login
    assert capsys.readouterr().err.strip().startswith("error: curator mode needs a login")
    assert [r.getMessage() for r in caplog.records if "SPACE_ID" in r.getMessage()] == [
        "SPACE_ID='alice/kard-studio' is ignored because SYSTEM is not \"spaces\": this is not a Hugging Face Space, "
        "so curator mode keeps the KARD_CURATOR_USER / KARD_CURATOR_PASSWORD login"]
    env.setenv("KARD_CURATOR_USER", "alice")
    env.setenv("KARD_CURATOR_PASSWORD", "s3cret")
    assert "auth" in app.launch_options(AppConfig.from_env())
    env.setenv("SYSTEM", "spaces")
    assert AppConfig.from_env().on_spaces and "auth" not in app.launch_options(AppConfig.from_env())


def test_the_hugging_face_login_is_refused_where_gradio_would_mock_it(env):
    import app

    env.setenv("SPACE_ID", "alice/kard-studio")
    with pytest.raises(ConfigError, match="the Hugging Face login works only on a Space"):
        app.launch_options(AppConfig(mode="curator", on_spaces=True))
    assert "auth" not in app.launch_options(AppConfig(mode="demo", on_spaces=True))  # no login button in the demo


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write any folder")
def test_a_read_only_persistent_folder_is_refused(env, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    env.setenv("KARD_PERSISTENT_DIR", str(folder))
    with pytest.raises(ConfigError, match="is not writable"):
        AppConfig.from_env()


def test_the_app_warns_when_a_spaces_saves_would_not_survive(env, tmp_path):
    on_space = AppConfig(mode="curator", on_spaces=True, annotations_db=tmp_path / "store" / "notes.db")
    notice = storage_notice(on_space, None)  # every visitor sees it: the file's name, no path of the server's
    assert notice.startswith("⚠ Corrections are saved in notes.db, which this Space loses when it restarts. Fix: ")
    assert str(tmp_path) not in notice
    warnings = space_warnings(on_space)  # the log: the whole path, for the owner
    assert any("KARD_CURATORS is empty" in w for w in warnings)
    assert f"Corrections are saved in {tmp_path / 'store' / 'notes.db'}, which this Space loses" in warnings[-1]
    kept = AppConfig(mode="curator", on_spaces=True, persistent_dir=tmp_path, curators=("alice",),
                     annotations_db=tmp_path / "kard-studio" / "annotations.db")
    assert storage_notice(kept, None) is None and space_warnings(kept) == []
    assert storage_notice(AppConfig(mode="curator"), None) is None  # local: the disk stays
    assert storage_notice(AppConfig(mode="demo", on_spaces=True), None) is None  # the demo saves nothing


# -- the local side: snapshots ----------------------------------------------------------------------
@pytest.fixture
def store(tmp_path) -> AnnotationStore:
    return AnnotationStore(tmp_path / "annotations.db", FAST)


def test_a_snapshot_holds_every_revision_the_export_and_counts(store, tmp_path):
    from kard.loop.export import build_curated

    save(store, 1)
    save(store, 1, rationale="A second, better rationale about vitamin C.")
    save(store, 2, note="reject: the gold label is wrong")
    snap = write_snapshot(store, tmp_path / "snap", now=NOON, repo_id=REPO)
    assert sorted(p.name for p in snap.folder.iterdir()) == ["README.md", CORRECTIONS_FILE, MANIFEST_FILE,
                                                            REVISIONS_FILE]
    assert read_rows(snap.folder / REVISIONS_FILE) == store.rows()
    examples, excluded = build_curated(store.latest())
    lines = (snap.folder / CORRECTIONS_FILE).read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [e.example.id for e in examples] == ["q1#curated-r2"]
    manifest = json.loads((snap.folder / MANIFEST_FILE).read_text())
    assert {k: manifest[k] for k in ("revisions", "corrections", "training_examples", "excluded")} == {
        "revisions": 3, "corrections": 2, "training_examples": 1, "excluded": len(excluded)}
    assert manifest["created_at"] == "2025-05-01T12:03:00+00:00" and REPO in manifest["restore"]
    assert not list(tmp_path.glob("snap/*.db*"))  # never the live SQLite file


def test_snapshots_are_consistent_while_curators_save(store, tmp_path):
    writers, per_writer = 4, 12
    errors: list[BaseException] = []

    def write(w: int) -> None:
        try:
            for k in range(per_writer):
                save(store, w * 100 + k % 3, rationale=f"Writer {w} edit {k}: vitamin C prevents scurvy.")
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    snapshots = []
    while any(t.is_alive() for t in threads) or len(snapshots) < 3:
        snapshots.append(write_snapshot(store, tmp_path / f"snap{len(snapshots)}"))
    for t in threads:
        t.join()
    assert not errors
    snapshots.append(write_snapshot(store, tmp_path / "final"))
    for snap in snapshots:
        rows = read_rows(snap.folder / REVISIONS_FILE)
        manifest = json.loads((snap.folder / MANIFEST_FILE).read_text())
        assert manifest["revisions"] == snap.revisions == len(rows)
        assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
        by_item: dict[str, list[int]] = {}
        for row in rows:
            by_item.setdefault(row["item_id"], []).append(row["revision"])
        assert all(revs == list(range(1, len(revs) + 1)) for revs in by_item.values())  # no gap, no half save
        assert manifest["corrections"] == len(by_item)
        restored = AnnotationStore(snap.folder / "check.db", FAST)
        assert restored.restore_rows(rows) == len(rows) and restored.rows() == rows
    assert snapshots[-1].revisions == writers * per_writer and snapshots[-1].corrections == writers * 3


def test_restore_from_a_folder_keeps_everything_and_refuses_a_full_store(store, tmp_path):
    save(store, 1)
    store.revert("demo:q1", 1, "bob")
    write_snapshot(store, tmp_path / "snap")
    assert restore_store(tmp_path / "new.db", source=tmp_path / "snap") == 2
    new = AnnotationStore(tmp_path / "new.db")
    assert new.rows() == store.rows() and new.history("demo:q1") == store.history("demo:q1")
    with pytest.raises(KardError, match="already holds revisions.*Fix: restore into a new file"):
        restore_store(tmp_path / "new.db", source=tmp_path / "snap" / REVISIONS_FILE)
    (tmp_path / "bad.jsonl").write_text('{"id": 1}\nnot json\n')
    with pytest.raises(DataError, match="line 2: not JSON"):
        restore_store(tmp_path / "other.db", source=tmp_path / "bad.jsonl")
    (tmp_path / "short.jsonl").write_text('{"id": 1, "item_id": "x"}\n')
    with pytest.raises(DataError, match=r"row 1 lacks \['revision'"):
        restore_store(tmp_path / "other.db", source=tmp_path / "short.jsonl")


BAD_VALUES = [  # (column, value, what the error names): each crashed export, recall or the app once restored
    ("options", "5", "column 'options' holds '5', not a JSON object"),
    ("options", '{"A": 1, "B": "no"}', "column 'options'"),
    ("tags", '"notalist"', "column 'tags' holds '\"notalist\"', not a JSON list"),
    ("passages", '[{"id": "p1", "text": 7}]', "passage 'p1' has fields of the wrong type: \\['text'\\]"),
    ("rating", "abc", "column 'rating' holds 'abc', not an integer"),
    ("rating", 9, "rating 9 is outside 1-5"),
    ("revision", "one", "column 'revision' holds 'one', not an integer"),
    ("id", "x", "column 'id' holds 'x', not an integer"),
    ("kind", "weird", "unknown question kind 'weird'"),
    ("answer", "Z", "answer 'Z' is not one of the options"),
    ("action", "edit", "unknown action 'edit'"),
    ("revision", 0, "revision number 0 is below 1"),
]


@pytest.mark.parametrize("column, value, named", BAD_VALUES)
def test_a_restore_refuses_a_row_save_would_refuse_and_writes_nothing(store, tmp_path, column, value, named):
    save(store, 1)
    save(store, 2)
    rows = store.rows()
    rows[1][column] = value
    (tmp_path / "bad.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(DataError, match=f"row 2 \\(id .*item 'demo:q2'\\): {named}.*Fix: correct that value"):
        restore_store(tmp_path / "new.db", source=tmp_path / "bad.jsonl")
    assert not (tmp_path / "new.db").exists()  # no store, not even an empty one
    target = AnnotationStore(tmp_path / "target.db", FAST)
    with pytest.raises(DataError, match=named):
        target.restore_rows(rows)
    assert target.count() == 0


def test_the_restore_command_names_a_bad_row_and_creates_no_store(store, tmp_path, capsys):
    from kard.__main__ import main

    save(store, 1)
    write_snapshot(store, tmp_path / "snap")
    row = json.loads((tmp_path / "snap" / REVISIONS_FILE).read_text())
    (tmp_path / "snap" / REVISIONS_FILE).write_text(json.dumps({**row, "options": "5"}) + "\n")
    assert main(["restore", "--from", str(tmp_path / "snap"), "--db", str(tmp_path / "r.db")]) == 2
    assert capsys.readouterr().err.startswith("error: row 1 (id 1, item 'demo:q1'): column 'options'")
    assert not (tmp_path / "r.db").exists()


@pytest.mark.parametrize("content, says", [
    (b"\xff\xfe\n", "revisions.jsonl: the file is not UTF-8 text (invalid start byte at byte 0). Fix: save the "
                    "file as UTF-8"),
    (b"", "the snapshot holds no revision, so there is nothing to restore. Fix: "),
    (b"\n\n", "the snapshot holds no revision, so there is nothing to restore. Fix: "),
])
def test_the_restore_command_refuses_a_snapshot_not_utf8_or_empty_and_creates_no_store(tmp_path, capsys, content,
                                                                                       says):
    from kard.__main__ import main

    (tmp_path / "snap").mkdir()
    (tmp_path / "snap" / REVISIONS_FILE).write_bytes(content)
    assert main(["restore", "--from", str(tmp_path / "snap"), "--db", str(tmp_path / "r.db")]) == 2
    said = capsys.readouterr()
    assert says in said.err and said.err.count("\n") == 1 and "restored" not in said.out
    assert not (tmp_path / "r.db").exists()


def test_a_row_holding_a_line_separator_character_is_restored_whole(store, tmp_path):
    save(store, 1, rationale="First line\u2028same row")
    write_snapshot(store, tmp_path / "snap")
    assert restore_store(tmp_path / "r.db", source=tmp_path / "snap") == 1


def test_the_restore_command(store, tmp_path, capsys):
    from kard.__main__ import main

    save(store, 1)
    write_snapshot(store, tmp_path / "snap")
    assert main(["restore", "--from", str(tmp_path / "snap"), "--db", str(tmp_path / "cli.db")]) == 0
    assert "restored 1 revision(s)" in capsys.readouterr().out
    assert AnnotationStore(tmp_path / "cli.db").rows() == store.rows()
    assert main(["restore", "--from", str(tmp_path / "snap"), "--db", str(tmp_path / "cli.db")]) == 2
    assert main(["restore", "--repo", "not a repo", "--db", str(tmp_path / "x.db")]) == 2
    assert "--repo='not a repo' is not a repo id" in capsys.readouterr().err


def test_restore_from_the_repo_through_the_hub(store, tmp_path):
    save(store, 1)
    hub = FakeHub()
    SpaceSync(store, SyncConfig(REPO), hub).sync_now()
    assert restore_store(tmp_path / "r.db", repo_id=REPO, hub=hub) == 1
    with pytest.raises(SyncError, match=f"{REPO} holds no revisions.jsonl"):
        restore_store(tmp_path / "empty.db", repo_id=REPO, hub=FakeHub())
    assert not (tmp_path / "empty.db").exists()  # nothing read: no store created


# -- the push, its status line and its errors ---------------------------------------------------------
def make_sync(store, hub, minutes: float = 10.0) -> SpaceSync:
    return SpaceSync(store, SyncConfig(REPO, minutes), hub, token=TOKEN, clock=lambda: NOON)


def test_sync_pushes_changes_only_and_says_when(store):
    hub = FakeHub()
    sync = make_sync(store, hub)
    assert sync.status_text() == f"Sync to {REPO}: not synced yet (every 10 min)"
    save(store, 1)
    save(store, 2)
    save(store, 2, rationale="Edited again: vitamin C.")
    sync.sync_now()
    assert sync.status_text() == f"Last synced to {REPO}: 12:03 UTC (2 corrections, 3 revisions)"
    assert [(r, m) for r, m, _ in hub.uploads] == [(REPO, "KARD Studio: 2 corrections, 3 revisions")]
    assert read_rows_of(hub.files[REVISIONS_FILE]) == store.rows()
    sync.sync_now()
    assert len(hub.uploads) == 1  # unchanged: no empty commit
    save(store, 3)
    sync.sync_now()
    assert len(hub.uploads) == 2 and "(3 corrections, 4 revisions)" in sync.status_markdown()
    assert f"(https://huggingface.co/datasets/{REPO})" in sync.status_markdown()


def test_the_seal_key_kept_beside_the_store_is_never_pushed(store):
    Studio(lambda: None, store, mode="curator")  # makes the key file beside the database
    key = store.path.with_name(store.path.name + ".seal-key")
    secret = key.read_bytes().strip()
    hub = FakeHub()
    save(store, 1)
    make_sync(store, hub).sync_now()
    pushed = hub.uploads[0][2]
    assert key.name not in pushed and not any(secret in data for data in pushed.values())


def test_kard_seal_key_seals_the_items_of_every_store_and_is_never_shown(env, tmp_path):
    import app

    env.setenv("KARD_SEAL_KEY", "k" * 40)
    config = AppConfig.from_env(mode="curator", annotations_db=tmp_path / "one.db")
    assert "k" * 40 not in repr(config)
    sealed = ItemSeal(b"k" * 40).seal({"question": "Which vitamin?"})
    for db in ("one.db", "two.db"):
        assert app.make_studio(replace(config, annotations_db=tmp_path / db)).sealed_here(sealed)
    assert not list(tmp_path.glob("*.seal-key"))  # the variable's key: no file


def read_rows_of(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().splitlines()]


@pytest.mark.parametrize("error, says", [
    (http_error(401), ("the Hub refused HF_TOKEN (401 Unauthorized). Fix: set the Space secret HF_TOKEN to a valid "
                       "token with write access")),
    (http_error(403), f"HF_TOKEN may not write to {REPO} (403 Forbidden). Fix: give HF_TOKEN write access"),
    (http_error(404, "RepositoryNotFoundError"), "was not found and could not be created (404)"),
    (http_error(503), "server error (503). Fix: nothing to do: it retries every 10 min"),
    (ConnectionError("no route"), "cannot reach the Hub (ConnectionError). Fix: check the network"),
])
def test_a_failed_push_shows_its_fix_and_the_last_good_sync(store, caplog, error, says):
    hub = FakeHub()
    sync = make_sync(store, hub)
    save(store, 1)
    sync.sync_now()
    save(store, 2)
    hub.upload_error = error
    with caplog.at_level(logging.INFO, logger="kard.space_sync"):
        status = sync.sync_now()
    text = sync.status_text()
    assert text.startswith(f"⚠ Sync to {REPO} failed at 12:03 UTC: ") and says in text
    assert "last synced 12:03 UTC (1 corrections, 1 revisions)" in text and status.error
    assert says in caplog.text
    hub.upload_error = None
    sync.sync_now()
    assert sync.status_text().startswith(f"Last synced to {REPO}: 12:03 UTC (2 corrections")


@pytest.mark.parametrize("error, on_page, in_log", [
    (OSError(errno.ENOSPC, "No space left on device", "/tmp/kard-sync-1/revisions.jsonl"),
     "a local file cannot be written (No space left on device: revisions.jsonl). Fix: free space in the file's "
     "folder (the temp folder",
     "a local file cannot be written (No space left on device: /tmp/kard-sync-1/revisions.jsonl). "
     "Fix: free space in /tmp/kard-sync-1 (the temp folder"),
    (OSError(errno.ENOSPC, "No space left on device"),
     "free space in the temp folder (the temp folder, TMPDIR, or the Space's storage",
     "or set TMPDIR to a folder with room; it retries every 10 min"),
    (PermissionError(errno.EACCES, "Permission denied", "/tmp/kard-sync-2"),
     "a local file cannot be written (Permission denied: kard-sync-2). Fix: make the file's folder writable",
     "a local file cannot be written (Permission denied: /tmp/kard-sync-2). Fix: make /tmp writable"),
    (OSError(errno.EROFS, "Read-only file system", "/tmp/x/manifest.json"), "(Read-only file system: manifest.json)",
     "Fix: make /tmp/x writable"),
    (OSError(errno.ECONNREFUSED, "Connection refused"), "cannot reach the Hub (ConnectionRefusedError)",
     "cannot reach the Hub (ConnectionRefusedError)"),
])
def test_a_local_disk_error_is_not_read_as_the_network(store, env, caplog, error, on_page, in_log):
    """The status line (on the page) names a file by its name alone; the log keeps the server's path."""
    save(store, 1)
    env.setattr("kard.space_sync.write_rows", lambda rows, path: (_ for _ in ()).throw(error))
    sync = make_sync(store, FakeHub())
    with caplog.at_level("WARNING", logger="kard.space_sync"):
        sync.sync_now()
    assert on_page in sync.status_text() and "/tmp" not in sync.status_text()
    assert in_log in caplog.text
    assert ("check the network" in sync.status_text()) == (error.errno == errno.ECONNREFUSED)


def fill_disk(monkeypatch, store: AnnotationStore) -> None:
    """SQLite's own "database or disk is full": every connection may not grow the file past its size now."""
    connect, pages = sqlite3.connect, sqlite3.connect(store.path).execute("PRAGMA page_count").fetchone()[0]

    def full(*args, **kwargs):
        conn = connect(*args, **kwargs)
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    monkeypatch.setattr(sqlite3, "connect", full)


def test_a_full_disk_says_so_on_save_and_on_restore(store, monkeypatch, tmp_path):
    for item in range(1, 6):
        save(store, item, note="x" * 1900)
    write_snapshot(store, tmp_path / "snap")
    empty = AnnotationStore(tmp_path / "empty.db", FAST)
    fill_disk(monkeypatch, empty)
    for action in (lambda: [save(store, item, note="x" * 1900) for item in range(2, 50)],
                   lambda: restore_store(empty.path, source=tmp_path / "snap")):
        with pytest.raises(KardError, match="disk is full") as caught:
            action()
        assert "Fix: free space on its storage (on a Space: upgrade the persistent storage)" in str(caught.value)
        assert "check the file is a KARD annotation database" not in str(caught.value)


def test_the_token_appears_in_no_status_log_or_file(store, caplog, tmp_path):
    hub = FakeHub()
    sync = make_sync(store, hub)
    save(store, 1, note="nothing secret")
    hub.upload_error = http_error(400, text=f" for token {TOKEN} (Authorization: Bearer {TOKEN})")
    with caplog.at_level(logging.DEBUG):
        sync.sync_now()
        assert "(400: 400 Client Error for token [HF_TOKEN] (Authorization: Bearer [HF_TOKEN]))" in sync.status_text()
        hub.upload_error = RuntimeError(f"strange failure with hf_{'x' * 30}")
        sync.sync_now()
        hub.upload_error = None
        sync.sync_now()
    failure = describe_error(http_error(400, text=TOKEN), REPO)
    assert TOKEN in failure  # the raw description would carry it ...
    texts = [sync.status_text(), sync.status_markdown(), caplog.text, repr(sync.status), repr(sync.config)]
    texts += [data.decode() for _, _, files in hub.uploads for data in files.values()]
    assert all(TOKEN not in t and "hf_xxxx" not in t for t in texts)  # ... the app shows and logs none
    assert len(hub.uploads) == 1


def repo_items(hub: FakeHub) -> list[str]:
    return [row["item_id"] for row in read_rows_of(hub.files[REVISIONS_FILE])]


def test_a_store_that_lacks_the_repos_revisions_never_replaces_them(store, tmp_path, caplog):
    other = AnnotationStore(tmp_path / "other.db", FAST)
    for item in range(3):
        save(other, item)
    hub = FakeHub()
    make_sync(other, hub).sync_now()
    save(store, 7)  # another store (switched KARD_ANNOTATIONS_DB, an old copy): 1 revision, none of the repo's
    sync = make_sync(store, hub)
    with caplog.at_level(logging.WARNING, logger="kard.space_sync"):
        sync.sync_now()
    text = sync.status_text()
    assert len(hub.uploads) == 1 and f"{REPO} holds 3 revision(s) this store lacks (e.g. demo:q0 revision 1" in text
    assert f"Fix: to go on from the backup, stop the app, move the store ({store.path.name}) aside" in text
    assert "a new repo" in text and str(tmp_path) not in text  # the page shows no path of the server's
    assert "this store lacks" in caplog.text
    for item in range(8, 12):  # curators go on saving: the store now holds more revisions than the repo
        save(store, item)
    sync.sync_now()
    assert len(hub.uploads) == 1 and repo_items(hub) == ["demo:q0", "demo:q1", "demo:q2"]
    assert "holds 3 revision(s) this store lacks" in sync.status_text()


def test_a_bigger_unrelated_store_never_overwrites_a_repo(store, tmp_path):
    other = AnnotationStore(tmp_path / "other.db", FAST)
    save(other, 1)
    hub = FakeHub()
    make_sync(other, hub).sync_now()
    for item in range(2, 6):
        save(store, item)
    make_sync(store, hub).sync_now()
    assert len(hub.uploads) == 1 and repo_items(hub) == ["demo:q1"]


def test_two_spaces_on_one_repo_never_drop_each_others_saves(tmp_path):
    first, second = (AnnotationStore(tmp_path / f"{name}.db", FAST) for name in ("first", "second"))
    hub = FakeHub()
    sync_first, sync_second = make_sync(first, hub), make_sync(second, hub)
    assert sync_first.restore_if_empty() == sync_second.restore_if_empty() == 0  # both start on an empty repo
    hub.downloads.clear()
    save(first, 1)
    sync_first.sync_now()
    save(first, 2)
    sync_first.sync_now()  # its own last push is still the repo's head: pushed without reading revisions.jsonl
    assert len(hub.uploads) == 2 and hub.downloads.count(REVISIONS_FILE) == 1
    save(second, 3)
    sync_second.sync_now()
    assert len(hub.uploads) == 2 and "holds 2 revision(s) this store lacks" in sync_second.status_text()
    assert repo_items(hub) == ["demo:q1", "demo:q2"]


MOVED = (f"another copy of the app (a second Space or process syncing to {REPO}) pushed to {REPO} after this "
         f"sync checked it, so this snapshot was not pushed and nothing in {REPO} was overwritten. Fix: nothing to "
         f"do now: the next sync (in 10 min) checks {REPO} again")


def test_a_push_landing_between_the_check_and_the_upload_is_never_overwritten(tmp_path, caplog):
    first, second = (AnnotationStore(tmp_path / f"{name}.db", FAST) for name in ("first", "second"))
    hub = FakeHub()
    sync_first, sync_second = make_sync(first, hub), make_sync(second, hub)
    save(first, 1)
    save(second, 2)
    hub.before_upload = sync_first.sync_now  # both check the new, empty repo; the first's upload lands first
    with caplog.at_level(logging.WARNING, logger="kard.space_sync"):
        sync_second.sync_now()
    assert [message for _, message, _ in hub.uploads] == ["KARD Studio: 1 corrections, 1 revisions"]
    assert repo_items(hub) == ["demo:q1"] and sync_first.status.error is None
    text = sync_second.status_text()
    assert text.startswith(f"⚠ Sync to {REPO} failed at 12:03 UTC: {MOVED}") and "(not synced yet;" in text
    assert "if the other copy saved revisions this store lacks, it says so then, with the fix" in text
    assert MOVED in caplog.text
    sync_second.sync_now()  # the next sync checks again: the repo now holds a revision this store lacks
    assert len(hub.uploads) == 1 and repo_items(hub) == ["demo:q1"]
    assert "holds 1 revision(s) this store lacks (e.g. demo:q1 revision 1" in sync_second.status_text()


def test_a_refused_upload_is_pushed_by_the_next_sync_when_nothing_would_be_dropped(store):
    hub = FakeHub()
    sync = make_sync(store, hub)
    save(store, 1)
    sync.sync_now()
    save(store, 2)
    restored = make_sync(AnnotationStore(store.path), hub)  # a second process on the same store and repo
    hub.before_upload = restored.sync_now
    sync.sync_now()
    assert len(hub.uploads) == 2 and MOVED in sync.status_text()  # the other process pushed the same saves
    save(store, 3)
    sync.sync_now()
    assert len(hub.uploads) == 3 and repo_items(hub) == ["demo:q1", "demo:q2", "demo:q3"]
    assert sync.status_text() == f"Last synced to {REPO}: 12:03 UTC (3 corrections, 3 revisions)"


def test_the_first_push_creates_the_repo_and_builds_on_its_first_commit(store):
    hub = FakeHub()
    assert hub.head(REPO) is None  # no repo yet
    save(store, 1)
    sync = make_sync(store, hub)
    sync.sync_now()
    assert hub.commits == [commit_id(0), commit_id(1)] and len(hub.uploads) == 1  # created, then one push
    assert repo_items(hub) == ["demo:q1"] and sync.status.error is None
    save(store, 2)
    sync.sync_now()
    assert len(hub.commits) == 3 and repo_items(hub) == ["demo:q1", "demo:q2"]


def test_an_empty_store_is_restored_at_start(store, tmp_path):
    source = AnnotationStore(tmp_path / "before.db", FAST)
    save(source, 1)
    save(source, 1, rationale="Second edit: vitamin C.")
    hub = FakeHub()
    make_sync(source, hub).sync_now()
    sync = make_sync(store, hub)
    assert sync.restore_if_empty() == 2 and store.rows() == source.rows()
    assert sync.status_text() == (f"Last synced to {REPO}: 12:03 UTC (1 corrections, 2 revisions); "
                                  "restored 2 revisions at start")
    sync.sync_now()
    assert len(hub.uploads) == 1  # the restored store is what the repo holds: nothing to push
    assert sync.restore_if_empty() == 0  # a store with revisions is never touched
    save(store, 2)
    sync.sync_now()  # the store holds every revision of the repo, and one more
    assert len(hub.uploads) == 2 and repo_items(hub) == ["demo:q1", "demo:q1", "demo:q2"]


def test_a_repo_that_cannot_be_read_stops_the_restore(store):
    hub = FakeHub()
    hub.download_error = http_error(401, "RepositoryNotFoundError", text=f" {TOKEN}")
    with pytest.raises(SyncError, match="cannot restore the empty annotation store .* HF_TOKEN") as caught:
        make_sync(store, hub).restore_if_empty()
    assert TOKEN not in str(caught.value)
    assert make_sync(store, FakeHub()).restore_if_empty() == 0  # a new repo: nothing to restore
    assert "Space secret HF_TOKEN to a valid token with write access" in str(caught.value)  # the sync writes


@pytest.mark.parametrize("offline, kind, says", [
    (True, "OfflineModeIsEnabled", "the Hub client is offline (HF_HUB_OFFLINE is set). Fix: unset HF_HUB_OFFLINE, "
                                   "then restart the Space"),
    (True, "LocalEntryNotFoundError", "the Hub client is offline (HF_HUB_OFFLINE is set). Fix: unset HF_HUB_OFFLINE"),
    (False, "LocalEntryNotFoundError", "cannot reach the Hub (LocalEntryNotFoundError). Fix: check the network; "
                                       "restart the Space once the Hub is reachable"),
])
def test_a_restore_at_start_names_offline_mode_and_that_nothing_retries(store, monkeypatch, offline, kind, says):
    from huggingface_hub import constants, errors

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    hub = FakeHub()
    hub.download_error = getattr(errors, kind)("cannot find the requested files in the local cache")
    with pytest.raises(SyncError) as caught:
        make_sync(store, hub).restore_if_empty()
    assert says in str(caught.value) and "retries" not in str(caught.value)


@pytest.mark.parametrize("token, says", [
    (None, f"no Hugging Face token was set (HF_TOKEN is empty and there is no `hf auth login`), and {REPO} is "
           "private or does not exist (401 Unauthorized)"),
    ("HF_TOKEN", "the Hub refused HF_TOKEN (401 Unauthorized): it is invalid or expired"),
    ("saved", "the Hub refused the token of `hf auth login` (401 Unauthorized): it is invalid or expired"),
])
def test_the_restore_command_names_the_token_refused_and_asks_only_for_read_access(env, tmp_path, capsys, token,
                                                                                  says):
    from huggingface_hub import constants

    from kard.__main__ import main

    saved = tmp_path / "saved-token"
    env.setattr(constants, "HF_TOKEN_PATH", str(saved))
    if token == "saved":
        saved.write_text(TOKEN)
    elif token:
        env.setenv("HF_TOKEN", TOKEN)
    hub = FakeHub()
    hub.download_error = http_error(401, "RepositoryNotFoundError")
    env.setattr("kard.space_sync.HfHub", lambda *a, **k: hub)
    assert main(["restore", "--repo", REPO, "--db", str(tmp_path / "r.db")]) == 2
    err = capsys.readouterr().err
    assert says in err and f"Fix: set HF_TOKEN or run `hf auth login` with a token that can read {REPO}" in err
    assert "Space" not in err and "write" not in err and TOKEN not in err and err.count("\n") == 1


def test_a_bad_row_in_the_repo_stops_the_restore_at_start(store, tmp_path):
    source = AnnotationStore(tmp_path / "before.db", FAST)
    save(source, 1)
    hub = FakeHub()
    make_sync(source, hub).sync_now()
    row = json.loads(hub.files[REVISIONS_FILE])
    hub.files[REVISIONS_FILE] = (json.dumps({**row, "rating": "abc"}) + "\n").encode()
    with pytest.raises(SyncError, match=f"cannot restore the empty annotation store from {REPO}: row 1 .*'rating'"):
        make_sync(store, hub).restore_if_empty()
    assert store.count() == 0


def test_start_sync_restores_then_pushes_on_its_thread(env, store, tmp_path):
    registered = []
    env.setattr("kard.space_sync.atexit.register", registered.append)
    env.setenv("HF_TOKEN", TOKEN)
    config = AppConfig(mode="curator", sync_repo=REPO, sync_every_minutes=60, annotations_db=store.path)
    hub = FakeHub()
    sync = start_sync(config, store, hub)
    assert sync is not None and registered == [sync.stop]
    for _ in range(200):  # the first push runs at once on the thread; the next in an hour
        if sync.status.synced_at is not None:
            break
        threading.Event().wait(0.05)
    assert len(hub.uploads) == 1 and sync.status.revisions == 0
    save(store, 1)
    sync.stop()  # at exit: the last saves are pushed, and the schedule ends
    sync._thread.join(timeout=5)
    assert len(hub.uploads) == 2 and sync.status.revisions == 1 and not sync._thread.is_alive()
    assert start_sync(AppConfig(mode="curator"), store, hub) is None


# -- the Hub client over huggingface_hub's HfApi (no network: a recording stand-in) --------------------
HEAD = commit_id(7)


class RecordingApi:
    """HfApi's calls recorded; `errors` names what a method raises."""

    def __init__(self, download_error: BaseException | None = None, **errors: BaseException):
        self.calls: list[tuple[str, tuple, dict]] = []
        self.errors = {**errors, **({"hf_hub_download": download_error} if download_error else {})}

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            if name in self.errors:
                raise self.errors[name]
            if name == "hf_hub_download":
                return str(Path(kwargs["local_dir"]) / args[1])
            if name == "repo_info":
                return SimpleNamespace(sha=HEAD)
        return call


def test_hf_hub_creates_a_private_dataset_and_commits_the_folder_on_the_checked_commit(tmp_path):
    api = RecordingApi()
    hub = HfHub(TOKEN, api=api)
    hub.create(REPO)
    assert hub.head(REPO) == HEAD
    hub.upload(tmp_path, REPO, "KARD Studio: 1 corrections, 1 revisions", parent_commit=HEAD)
    assert hub.download(REPO, MANIFEST_FILE, tmp_path, revision=HEAD) == tmp_path / MANIFEST_FILE
    assert [name for name, _, _ in api.calls] == ["create_repo", "repo_info", "upload_folder", "hf_hub_download"]
    assert api.calls[0][2] == {"repo_type": "dataset", "private": True, "exist_ok": True}
    assert api.calls[1] == ("repo_info", (REPO,), {"repo_type": "dataset"})
    assert api.calls[2][2] == {"repo_id": REPO, "folder_path": str(tmp_path), "repo_type": "dataset",
                               "commit_message": "KARD Studio: 1 corrections, 1 revisions", "parent_commit": HEAD}
    assert api.calls[3][2]["revision"] == HEAD
    assert type(HfHub(TOKEN)._api).__name__ == "HfApi"  # the real client builds offline


@pytest.mark.parametrize("status", [412, 409])
def test_hf_hub_reads_a_refused_parent_commit_as_the_repo_moved(tmp_path, status):
    moved = http_error(status, text=": A commit has happened since. Please refresh and try again.")
    hub = HfHub(TOKEN, api=RecordingApi(upload_folder=moved))
    with pytest.raises(RepoMovedError, match=f"{REPO} moved on from commit {HEAD}"):
        hub.upload(tmp_path, REPO, "KARD Studio", parent_commit=HEAD)
    hub = HfHub(TOKEN, api=RecordingApi(upload_folder=http_error(403)))
    with pytest.raises(type(http_error(403))):  # any other refusal keeps its own description
        hub.upload(tmp_path, REPO, "KARD Studio", parent_commit=HEAD)


@pytest.mark.parametrize("error, missing", [
    (http_error(404, "RepositoryNotFoundError"), True),
    (http_error(404, "RevisionNotFoundError"), True),
    (http_error(401, "RepositoryNotFoundError"), False),  # a refused token is not "no repo"
    (ConnectionError("offline"), False),
])
def test_hf_hub_head_reads_only_a_missing_repo_as_none(error, missing):
    hub = HfHub(TOKEN, api=RecordingApi(repo_info=error))
    if missing:
        assert hub.head(REPO) is None
    else:
        with pytest.raises(type(error)):
            hub.head(REPO)


@pytest.mark.parametrize("error, missing", [
    (http_error(404, "RemoteEntryNotFoundError"), True),
    (http_error(404, "RepositoryNotFoundError"), True),
    (http_error(401, "RepositoryNotFoundError"), False),  # a refused token is not "no backup"
    (ConnectionError("offline"), False),
])
def test_hf_hub_download_reads_only_missing_as_missing(tmp_path, error, missing):
    hub = HfHub(TOKEN, api=RecordingApi(download_error=error))
    if missing:
        assert hub.download(REPO, REVISIONS_FILE, tmp_path) is None
    else:
        with pytest.raises(type(error)):
            hub.download(REPO, REVISIONS_FILE, tmp_path)


class StandInHub(BaseHTTPRequestHandler):
    """The few Hub endpoints an upload uses, on localhost: repo_info's head, preupload, and a commit endpoint
    that refuses a parentCommit other than the head with the Hub's 412."""

    head = HEAD
    parents: ClassVar[list[str | None]] = []  # each commit's parentCommit (the fixture gives a fresh list)
    unknown: ClassVar[list[str]] = []  # requests not stood in for

    def do_GET(self) -> None:
        if self.path.split("?")[0].endswith(f"/api/datasets/{REPO}") or "/revision/" in self.path:  # repo_info
            return self.answer(200, {"id": REPO, "sha": type(self).head, "siblings": []})
        self.unknown.append(f"GET {self.path}")
        self.answer(404, {"error": "not stood in for"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if "/preupload/" in self.path:
            files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                     for f in json.loads(body)["files"]]
            return self.answer(200, {"files": files})
        if "/commit/" in self.path:
            return self.commit(json.loads(body.splitlines()[0])["value"].get("parentCommit"))
        self.unknown.append(f"POST {self.path}")
        self.answer(404, {"error": "not stood in for"})

    def commit(self, parent: str | None) -> None:
        self.parents.append(parent)
        if parent != type(self).head:
            return self.answer(412, {"error": "A commit has happened since. Please refresh and try again."})
        type(self).head = commit_id(len(self.parents) + 100)
        endpoint = f"http://{self.headers['Host']}"
        self.answer(200, {"commitUrl": f"{endpoint}/datasets/{REPO}/commit/{type(self).head}",
                          "commitOid": type(self).head})

    def answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def stand_in_hub(monkeypatch):
    """HfApi aimed at StandInHub (HF_ENDPOINT's role): offline mode lifted for localhost only."""
    from huggingface_hub import HfApi, constants

    server = ThreadingHTTPServer(("127.0.0.1", 0), StandInHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(StandInHub, "head", HEAD)
    monkeypatch.setattr(StandInHub, "parents", [])
    monkeypatch.setattr(StandInHub, "unknown", [])
    yield HfHub(TOKEN, api=HfApi(endpoint=endpoint, token=TOKEN, library_name="kard-studio"))
    server.shutdown()
    server.server_close()


def test_the_real_client_sends_the_checked_commit_and_a_412_reads_as_moved(stand_in_hub, tmp_path):
    (tmp_path / MANIFEST_FILE).write_text("{}\n")
    checked = stand_in_hub.head(REPO)
    assert checked == HEAD
    stand_in_hub.upload(tmp_path, REPO, "KARD Studio: first", parent_commit=checked)
    with pytest.raises(RepoMovedError, match=f"moved on from commit {HEAD} \\(412\\)"):
        stand_in_hub.upload(tmp_path, REPO, "KARD Studio: second", parent_commit=checked)
    assert StandInHub.parents == [HEAD, HEAD]  # the checked commit, sent once each: a 412 is not retried
    assert not [call for call in StandInHub.unknown if not call.startswith("GET")]  # no other write


# -- the app ------------------------------------------------------------------------------------------
def test_the_app_shows_the_sync_line(store, tmp_path):
    import app

    from kard.ui.studio import Studio

    sync = make_sync(store, FakeHub())
    config = AppConfig(mode="curator", sync_repo=REPO, annotations_db=store.path)
    blocks = app.build_app(Studio(lambda: None, store, mode="curator"), config, sync)
    lines = [c for c in blocks.config["components"] if c.get("props", {}).get("elem_id") == "kard-sync"]
    assert len(lines) == 1 and lines[0]["props"]["value"].startswith(f"Sync to {REPO}: not synced yet")
    assert any(c.get("type") == "timer" for c in blocks.config["components"])
    blocks = app.build_app(Studio(lambda: None, store, mode="curator"), AppConfig(mode="curator"))
    assert not [c for c in blocks.config["components"] if c.get("props", {}).get("elem_id") == "kard-sync"]


def test_a_failed_restore_stops_the_app(env, capsys, tmp_path):
    import app

    env.setenv("KARD_MODE", "curator")
    env.setenv("SPACE_ID", "alice/kard-studio")
    env.setenv("SYSTEM", "spaces")
    env.setenv("KARD_SYNC_REPO", REPO)
    env.setenv("HF_TOKEN", TOKEN)
    env.setenv("KARD_PERSISTENT_DIR", str(tmp_path))
    hub = FakeHub()
    hub.download_error = ConnectionError("offline")
    env.setattr("kard.space_sync.HfHub", lambda *a, **k: hub)
    assert app.main(["--no-preload"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: cannot restore the empty annotation store from {REPO}: cannot reach the Hub")
    assert err.endswith("Fix: check the network; restart the Space once the Hub is reachable")  # nothing retries
    assert "\n" not in err and TOKEN not in err

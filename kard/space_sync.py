"""Curation on a Hugging Face Space: the annotation store pushed to a dataset repo on a schedule, and
restored from it after a storage loss.

    sync = start_sync(config, store)    # app.py, curator mode with $KARD_SYNC_REPO (None otherwise)
    sync.status_text()                  # "Last synced to owner/name: 12:03 UTC (41 corrections, 57 revisions)"
    python -m kard restore --repo owner/name --db annotations/annotations.db

Once at start (so a bad token shows at once) and then every $KARD_SYNC_EVERY_MINUTES, a background thread
writes a snapshot of the store into a fresh staging folder and uploads that folder in one commit with
`HfApi.upload_folder` (a repo that does not exist yet is created, private):
- revisions.jsonl: every stored row, oldest first, exactly as saved: a complete, restorable backup;
- corrections.jsonl: the training examples `python -m kard export` writes (kard.loop.export, default rule);
- manifest.json: counts and time; README.md: a dataset card naming both files as configs.
The snapshot is one SELECT (`AnnotationStore.rows`), consistent while curators save; the live SQLite file
(WAL) is never uploaded. A snapshot whose revisions are unchanged is not pushed again.

Why not `huggingface_hub.CommitScheduler`: it creates the repo and starts its thread in its constructor,
uploads the files that changed in a watched folder (made for append-only logs, not a snapshot rewritten
whole), and reports a failed push only to its log. Here each push's result is kept and shown with its fix.

Safety: an empty store at start (a Space without persistent storage, after a restart) is first restored from
the repo. Before each push the repo's revisions are compared with the store's, each known by item id, revision
number and save time: a snapshot is never pushed while the repo holds a revision the store lacks (another or
older store, a second Space on the same repo), since the push would drop it from the backup. The check and the
upload are one step against the repo's history: the check reads the files of the repo's head commit, and the
upload names that commit as its parent (`upload_folder(parent_commit=...)`), so the Hub refuses it (412) when
another copy pushed in between; nothing is overwritten, and the next sync checks again. A repo that does not
exist yet is created before the check, so even the first push builds on a known commit.
The token ($HF_TOKEN) appears in no status text, log line or file.
"""

from __future__ import annotations

import atexit
import errno
import hashlib
import json
import logging
import re
import tempfile
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

from kard.annotations import AnnotationStore, Revision, restorable_rows, revision_from_row
from kard.config import AppConfig, hub_token
from kard.errors import DataError, KardError

log = logging.getLogger(__name__)

REVISIONS_FILE = "revisions.jsonl"
CORRECTIONS_FILE = "corrections.jsonl"
MANIFEST_FILE = "manifest.json"
CARD_FILE = "README.md"
SNAPSHOT_FORMAT = 1
REPO_TYPE = "dataset"
_TOKEN_LIKE = re.compile(r"hf_[A-Za-z0-9]{20,}")


class SyncError(KardError):
    """The store cannot be pushed to, or restored from, its dataset repo."""


class RepoMovedError(SyncError):
    """The repo's branch no longer points at the commit an upload named as its parent: another copy pushed
    after the check read the repo. The upload wrote nothing."""


@dataclass(frozen=True)
class SyncConfig:
    repo_id: str  # dataset repo "owner/name"
    every_minutes: float = 10.0
    private: bool = True  # a repo the sync creates is private: curators' names and notes stay in-house

    @staticmethod
    def from_app(config: AppConfig) -> "SyncConfig | None":
        """The sync of a curator app with $KARD_SYNC_REPO, else None."""
        if not config.sync_enabled or config.sync_repo is None:
            return None
        return SyncConfig(config.sync_repo, config.sync_every_minutes)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


RevisionKey = tuple[str, str, str]
"""A revision as the guard knows it: (item id, revision number, save time)."""


def revision_keys(rows: Sequence[Mapping[str, Any]]) -> frozenset[RevisionKey]:
    """The revisions `rows` hold. Not the row id nor the whole row: a restore keeps these three, and a column
    added by a later version must not make the same revision look different."""
    return frozenset((str(row.get("item_id")), str(row.get("revision")), str(row.get("created_at"))) for row in rows)


# -- the local side: a consistent snapshot --------------------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    """What one snapshot folder holds."""

    folder: Path
    revisions: int  # stored rows (every revision of every item)
    corrections: int  # items: their latest revisions
    examples: int  # corrections.jsonl lines (accepted by the export rule)
    excluded: int
    digest: str  # sha256 of revisions.jsonl: an unchanged store gives the same digest
    created_at: datetime
    keys: frozenset[RevisionKey] = frozenset()  # which revisions it holds (`revision_keys`)


def write_snapshot(store: AnnotationStore, folder: Path, *, now: datetime | None = None,
                   repo_id: str | None = None) -> Snapshot:
    """Write revisions.jsonl, corrections.jsonl, manifest.json and README.md of the store into `folder`."""
    rows = store.rows()  # one SELECT: the snapshot is consistent while curators save
    folder.mkdir(parents=True, exist_ok=True)
    digest = write_rows(rows, folder / REVISIONS_FILE)
    latest = latest_revisions(rows)
    examples, excluded, problem = _export(latest, folder / CORRECTIONS_FILE)
    snapshot = Snapshot(folder, len(rows), len(latest), examples, excluded, digest, now or utc_now(),
                        revision_keys(rows))
    manifest = snapshot_manifest(snapshot, store.path.name, repo_id, problem)
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    (folder / CARD_FILE).write_text(dataset_card(repo_id), encoding="utf-8")
    return snapshot


def write_rows(rows: Sequence[Mapping[str, Any]], path: Path) -> str:
    """One JSON object a line, keys sorted (the same store gives the same bytes); returns the sha256."""
    data = "".join(json.dumps(dict(row), sort_keys=True, ensure_ascii=False) + "\n" for row in rows).encode()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def latest_revisions(rows: Sequence[Mapping[str, Any]]) -> list[Revision]:
    """The latest revision of each item among `rows`."""
    latest: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        kept = latest.get(row["item_id"])
        if kept is None or row["revision"] > kept["revision"]:
            latest[row["item_id"]] = row
    return [revision_from_row(row) for row in latest.values()]


def _export(latest: Sequence[Revision], path: Path) -> tuple[int, int, str | None]:
    """corrections.jsonl by the export's default rule: (examples, excluded, problem or None).

    A correction the export cannot turn into an example must not stop the backup of every revision.
    """
    from kard.loop.export import ExportConfig, build_curated, write_curated

    try:
        examples, excluded = build_curated(latest, ExportConfig())
    except KardError as error:
        log.warning("snapshot without training examples: %s", error)
        write_curated([], path)
        return 0, 0, str(error)
    write_curated(examples, path)
    return len(examples), len(excluded), None


def snapshot_manifest(snapshot: Snapshot, store_name: str, repo_id: str | None, problem: str | None) -> dict:
    manifest: dict[str, Any] = {
        "format": SNAPSHOT_FORMAT, "created_at": snapshot.created_at.isoformat(timespec="seconds"),
        "store": store_name, "revisions": snapshot.revisions, "corrections": snapshot.corrections,
        "training_examples": snapshot.examples, "excluded": snapshot.excluded,
        "revisions_sha256": snapshot.digest,
        "files": {"revisions": REVISIONS_FILE, "training_examples": CORRECTIONS_FILE},
        "restore": f"python -m kard restore --repo {repo_id or 'OWNER/NAME'} --db annotations/annotations.db",
    }
    if problem:
        manifest["training_examples_error"] = problem
    return manifest


def dataset_card(repo_id: str | None) -> str:
    name = repo_id or "OWNER/NAME"
    return f"""---
configs:
- config_name: revisions
  data_files: {REVISIONS_FILE}
  default: true
- config_name: corrections
  data_files: {CORRECTIONS_FILE}
---

# KARD Studio annotations

A backup of a KARD Studio annotation store, pushed by the app on a schedule (this card is rewritten
with each push).

- `{REVISIONS_FILE}`: every saved revision, oldest first, as stored: restore it with
  `python -m kard restore --repo {name} --db annotations/annotations.db`.
- `{CORRECTIONS_FILE}`: the latest accepted correction of each item as a KARD training example
  (`python -m kard export`'s default rule).
- `{MANIFEST_FILE}`: counts and the time of the snapshot.
"""


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a revisions.jsonl (a DataError names a bad line)."""
    rows: list[dict[str, Any]] = []
    fix = "restore from the revisions.jsonl of a KARD Studio snapshot, unedited"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"the file is not UTF-8 text ({error.reason} at byte {error.start})", path=path,
                        fix="save the file as UTF-8, or restore from the snapshot's own revisions.jsonl") from None
    for number, line in enumerate(text.split("\n"), 1):  # not splitlines(): a row may hold U+2028
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"not JSON ({error.msg})", path=path, line=number, fix=fix) from None
        if not isinstance(row, dict):
            raise DataError("not a JSON object", path=path, line=number, fix=fix)
        rows.append(row)
    return rows


def _manifest_digest(path: Path | None) -> str | None:
    """The revisions_sha256 a snapshot's manifest.json names (None: no manifest, or not one of ours)."""
    if path is None:
        return None
    try:
        digest = json.loads(path.read_text(encoding="utf-8")).get("revisions_sha256")
    except (ValueError, AttributeError):
        return None
    return digest if isinstance(digest, str) else None


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the Hub side ---------------------------------------------------------------------------------------
class Hub(Protocol):
    """Where snapshots go. `HfHub` talks to the Hugging Face Hub; tests pass a fake."""

    def head(self, repo_id: str) -> str | None:
        """The commit the repo's main branch points at now, or None when the repo does not exist."""

    def create(self, repo_id: str) -> None:
        """Create the dataset repo (private by default); an existing repo is left as it is."""

    def upload(self, folder: Path, repo_id: str, message: str, parent_commit: str | None = None) -> None:
        """Commit every file of `folder` to the dataset repo on top of `parent_commit` (None: whatever the head).
        Raises RepoMovedError, writing nothing, when the branch no longer points at `parent_commit`."""

    def download(self, repo_id: str, filename: str, folder: Path, revision: str | None = None) -> Path | None:
        """The repo's `filename` (at commit `revision`, default the head) saved under `folder`, or None when the
        repo or the file does not exist."""


MOVED_STATUSES = (409, 412)
"""What the Hub's commit endpoint answers when `parent_commit` is no longer the branch's head (412 Precondition
Failed, "A commit has happened since") or another commit holds the branch (409 Conflict)."""


class HfHub:
    """`Hub` over huggingface_hub's HfApi (repo_info, create_repo, upload_folder, hf_hub_download)."""

    def __init__(self, token: str | None, *, private: bool = True, api: Any = None):
        if api is None:
            from huggingface_hub import HfApi

            api = HfApi(token=token, library_name="kard-studio")
        self._api = api
        self._private = private

    def head(self, repo_id: str) -> str | None:
        from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

        try:
            return self._api.repo_info(repo_id, repo_type=REPO_TYPE).sha
        except (RepositoryNotFoundError, RevisionNotFoundError) as error:
            _raise_unless_missing(error)
            return None

    def create(self, repo_id: str) -> None:
        # exist_ok: an existing repo (even one the token cannot create) is fine
        self._api.create_repo(repo_id, repo_type=REPO_TYPE, private=self._private, exist_ok=True)

    def upload(self, folder: Path, repo_id: str, message: str, parent_commit: str | None = None) -> None:
        from huggingface_hub.errors import HfHubHTTPError

        try:
            self._api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type=REPO_TYPE,
                                    commit_message=message, parent_commit=parent_commit)
        except HfHubHTTPError as error:
            if _status(error) in MOVED_STATUSES:
                raise RepoMovedError(f"{repo_id} moved on from commit {parent_commit} ({_status(error)})") from None
            raise

    def download(self, repo_id: str, filename: str, folder: Path, revision: str | None = None) -> Path | None:
        from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

        try:
            return Path(self._api.hf_hub_download(repo_id, filename, repo_type=REPO_TYPE, revision=revision,
                                                  local_dir=str(folder)))
        except (RemoteEntryNotFoundError, RevisionNotFoundError, RepositoryNotFoundError) as error:
            _raise_unless_missing(error)
            return None


def _raise_unless_missing(error: BaseException) -> None:
    """Re-raise a refused token (401, which the Hub client reports as a missing repo): never read as "no backup".
    A repo, revision or file that does not exist passes."""
    if _status(error) == 401:
        raise error


def _status(error: BaseException) -> int | None:
    return getattr(getattr(error, "response", None), "status_code", None)


@dataclass(frozen=True)
class Retry:
    """Who meets a failed Hub call, for the fix `describe_error` gives: what tries again once the Hub answers
    (`again`), after a local problem is fixed (`after_fix`) and after a setting read at start changes (`restart`),
    and whose token it is: the Space secret HF_TOKEN, which the sync needs with write access (`space`), or a
    command's (HF_TOKEN or `hf auth login`), which needs only read access."""

    again: str
    after_fix: str
    restart: str
    space: bool = True
    automatic: bool = False  # `again` needs nobody: "nothing to do"

    @staticmethod
    def every(minutes: float) -> "Retry":
        """The app's scheduled sync."""
        again = f"it retries every {minutes:g} min"
        return Retry(again, again, "then restart the app", automatic=True)


AT_START = Retry("restart the Space once the Hub is reachable", "then restart the Space", "then restart the Space")
"""The app's restore at start: a failure stops the app, so nothing retries."""
COMMAND = Retry("try again later", "then run the command again", "then run the command again", space=False)
"""A one-off command on a laptop (`kard restore`)."""


def describe_error(error: BaseException, repo_id: str, retry: Retry = COMMAND, *, page: bool = False) -> str:
    """What went wrong and the fix, for the status line and the log (no token: see `redact`). With `page`, a local
    file is named by its name alone (the page never shows the server's paths; the log keeps them)."""
    if isinstance(error, KardError):
        return str(error)
    status = _status(error)
    wait = f"nothing to do: {retry.again}" if retry.automatic else retry.again
    known = _token_errors(repo_id, retry) | {
        429: ("the Hub is rate-limiting requests (429)",
              f"{wait}; or raise KARD_SYNC_EVERY_MINUTES" if retry.automatic else wait),
    }
    if status in known:
        problem, fix = known[status]
    elif status is not None and status >= 500:
        problem, fix = f"the Hub answered with a server error ({status})", wait
    elif status is not None:
        problem = f"the Hub refused the {'push' if retry.automatic else 'request'} ({status}: {_first_line(error)})"
        fix = "check KARD_SYNC_REPO and HF_TOKEN" if retry.space else "check the repo id and the token"
    elif _offline(error):
        problem, fix = "the Hub client is offline (HF_HUB_OFFLINE is set)", f"unset HF_HUB_OFFLINE, {retry.restart}"
    elif isinstance(error, OSError) and error.errno in _LOCAL_DISK_ERRORS:
        problem, fix = _local_disk_error(error, retry.after_fix, page=page)
    elif isinstance(error, (OSError, ConnectionError)) or type(error).__module__.startswith(("httpx", "requests")):
        problem, fix = f"cannot reach the Hub ({type(error).__name__})", f"check the network; {retry.again}"
    else:
        problem, fix = f"{type(error).__name__}: {_first_line(error)}", "see the app's log"
    return f"{problem}. Fix: {fix}"


def _token_errors(repo_id: str, retry: Retry) -> dict[int, tuple[str, str]]:
    """The problem and fix of a refused token (401), a refused repo (403) and a missing one (404)."""
    if retry.space:
        return {
            401: ("the Hub refused HF_TOKEN (401 Unauthorized)",
                  "set the Space secret HF_TOKEN to a valid token with write access (huggingface.co/settings/tokens)"),
            403: (f"HF_TOKEN may not write to {repo_id} (403 Forbidden)",
                  f"give HF_TOKEN write access to {repo_id} (a fine-grained token needs write on that repo or its "
                  "owner)"),
            404: (f"{repo_id} was not found and could not be created (404)",
                  "check the owner in KARD_SYNC_REPO is the token's user or an organisation it can write to"),
        }
    token = _command_token()
    fix = f"set HF_TOKEN or run `hf auth login` with a token that can read {repo_id} (huggingface.co/settings/tokens)"
    refused = (f"no Hugging Face token was set (HF_TOKEN is empty and there is no `hf auth login`), and {repo_id} "
               "is private or does not exist (401 Unauthorized)") if token is None else (
               f"the Hub refused {token} (401 Unauthorized): it is invalid or expired")
    return {401: (refused, fix),
            403: (f"{token or 'no token'} may not read {repo_id} (403 Forbidden)", fix),
            404: (f"{repo_id} was not found (404)", f"check the repo id; for a private repo, {fix}")}


def _command_token() -> str | None:
    """Which token a command sent, in words: HF_TOKEN, the saved login, or None (none)."""
    if hub_token():
        return "HF_TOKEN"
    from huggingface_hub import get_token

    return "the token of `hf auth login`" if get_token() else None


def _offline(error: BaseException) -> bool:
    """The error comes from huggingface_hub's offline mode (HF_HUB_OFFLINE), not the network."""
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    return isinstance(error, OfflineModeIsEnabled) or (isinstance(error, LocalEntryNotFoundError)
                                                       and bool(constants.HF_HUB_OFFLINE))


_FULL = (errno.ENOSPC, errno.EDQUOT)
_LOCAL_DISK_ERRORS = (*_FULL, errno.EACCES, errno.EPERM, errno.EROFS)
"""A file here, not the network: the snapshot's or a download's temp folder is full or cannot be written."""


def _local_disk_error(error: OSError, retry: str, *, page: bool = False) -> tuple[str, str]:
    file = Path(str(error.filename)) if error.filename else None
    folder = file.parent if file else Path(tempfile.gettempdir())
    if page:
        file, folder = (Path(file.name) if file else None), "the file's folder" if file else "the temp folder"
    where = f": {file}" if file else ""
    problem = f"a local file cannot be written ({error.strerror or 'disk error'}{where})"
    if error.errno in _FULL:
        return problem, (f"free space in {folder} (the temp folder, TMPDIR, or the Space's storage; a Space's "
                         f"persistent storage can be upgraded), or set TMPDIR to a folder with room; {retry}")
    return problem, f"make {folder} writable, or set TMPDIR to a writable folder; {retry}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else "no message"


def redact(text: str, token: str | None) -> str:
    """`text` without the token (and without anything shaped like a Hugging Face token)."""
    if token:
        text = text.replace(token, "[HF_TOKEN]")
    return _TOKEN_LIKE.sub("[token]", text)


# -- the schedule and its status ------------------------------------------------------------------------
@dataclass(frozen=True)
class SyncStatus:
    repo_id: str
    every_minutes: float
    synced_at: datetime | None = None  # the repo was last known to match the store (a push, a check, a restore)
    corrections: int = 0  # items in that snapshot
    revisions: int = 0
    error: str | None = None  # the last attempt's problem and fix; None when it succeeded
    failed_at: datetime | None = None
    restored: int = 0  # revisions restored from the repo at start

    def text(self, now: datetime | None = None) -> str:
        """One line: last synced, not synced yet, or the last error with its fix."""
        now = now or utc_now()
        synced = (f"{_clock(self.synced_at, now)} ({self.corrections} corrections, {self.revisions} revisions)"
                  if self.synced_at else None)
        if self.error:
            last = f"last synced {synced}" if synced else "not synced yet"
            when = _clock(self.failed_at, now) if self.failed_at else "start"
            return f"⚠ Sync to {self.repo_id} failed at {when}: {self.error} ({last}; retried every {self.every_minutes:g} min)"
        if synced:
            restored = f"; restored {self.restored} revisions at start" if self.restored else ""
            return f"Last synced to {self.repo_id}: {synced}{restored}"
        return f"Sync to {self.repo_id}: not synced yet (every {self.every_minutes:g} min)"


def _clock(moment: datetime, now: datetime) -> str:
    moment = moment.astimezone(timezone.utc)
    same_day = moment.date() == now.astimezone(timezone.utc).date()
    return moment.strftime("%H:%M UTC" if same_day else "%Y-%m-%d %H:%M UTC")


class SpaceSync:
    """Pushes snapshots of `store` to `config.repo_id` through `hub`, now (`sync_now`) or on a schedule."""

    def __init__(self, store: AnnotationStore, config: SyncConfig, hub: Hub, *, token: str | None = None,
                 clock: Callable[[], datetime] = utc_now):
        self.store = store
        self.config = config
        self.hub = hub
        self._token = token  # kept only to scrub it from messages
        self._clock = clock
        self._lock = threading.Lock()  # one snapshot and push at a time (the schedule, a flush at exit)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._status = SyncStatus(config.repo_id, config.every_minutes)
        self._pushed_digest: str | None = None
        self._remote: tuple[str, frozenset[RevisionKey]] | None = None  # the repo's revisions.jsonl digest and keys

    @property
    def status(self) -> SyncStatus:
        return self._status

    def status_text(self) -> str:
        return self._status.text(self._clock())

    def status_markdown(self) -> str:
        """The status line with a link to the dataset (the app's "kard-sync" line)."""
        return f"{self.status_text()} · [dataset](https://huggingface.co/datasets/{self.config.repo_id})"

    # -- restore at start ---------------------------------------------------------------------------
    def restore_if_empty(self) -> int:
        """Fill an empty store from the repo's revisions.jsonl; returns the revisions restored (0: none).

        Raises SyncError when the repo cannot be read: starting empty while a backup may exist would
        lose it from the app's view (and the push guard would then refuse every push).
        """
        if self.store.count():
            return 0
        repo = self.config.repo_id
        with tempfile.TemporaryDirectory(prefix="kard-restore-") as tmp:
            try:
                path = self.hub.download(repo, REVISIONS_FILE, Path(tmp))
            except Exception as error:
                raise SyncError(self._redact(f"cannot restore the empty annotation store from {repo}: "
                                             f"{describe_error(error, repo, AT_START)}")) from None
            if path is None:
                log.info("%s holds no KARD snapshot yet: starting with an empty store", repo)
                return 0
            try:
                rows = read_rows(path)
                restored = self.store.restore_rows(rows)
            except DataError as error:  # a bad row: nothing is restored, and the app must not start empty
                problem = f"cannot restore the empty annotation store from {repo}: {error}"
                raise SyncError(self._redact(problem)) from None
            self._pushed_digest = file_digest(path)
        self._remote = (self._pushed_digest, revision_keys(rows))
        self._status = replace(self._status, synced_at=self._clock(), revisions=restored, restored=restored,
                               corrections=len({row["item_id"] for row in rows}))
        log.info("restored %d revision(s) from %s into %s", restored, repo, self.store.path)
        return restored

    # -- push ---------------------------------------------------------------------------------------
    def sync_now(self) -> SyncStatus:
        """Snapshot the store and push it unless unchanged; never raises (the status says what failed)."""
        with self._lock:
            try:
                self._push()
            except Exception as error:  # the schedule must outlive any failure; the status shows it
                self._fail(error)
        return self._status

    def _push(self) -> None:
        with tempfile.TemporaryDirectory(prefix="kard-sync-") as tmp:
            snapshot = write_snapshot(self.store, Path(tmp), now=self._clock(), repo_id=self.config.repo_id)
            if snapshot.digest != self._pushed_digest:
                self._push_snapshot(snapshot)
        self._status = replace(self._status, synced_at=snapshot.created_at, corrections=snapshot.corrections,
                               revisions=snapshot.revisions, error=None, failed_at=None)

    def _push_snapshot(self, snapshot: Snapshot) -> None:
        """Check the repo's head commit, then upload on top of that very commit: if another copy pushed in
        between, the Hub refuses the upload and nothing is overwritten."""
        repo = self.config.repo_id
        head = self._repo_head()
        self._check_nothing_dropped(snapshot, head)
        message = f"KARD Studio: {snapshot.corrections} corrections, {snapshot.revisions} revisions"
        try:
            self.hub.upload(snapshot.folder, repo, message, parent_commit=head)
        except RepoMovedError:
            raise SyncError(self._moved_text()) from None
        self._pushed_digest, self._remote = snapshot.digest, (snapshot.digest, snapshot.keys)
        log.info("synced %d revision(s) to %s", snapshot.revisions, repo)

    def _repo_head(self) -> str | None:
        """The commit the check reads and the upload builds on. A repo that does not exist yet is created first
        (empty), so that the first push, too, builds on a known commit: two first pushes cannot both land."""
        repo = self.config.repo_id
        head = self.hub.head(repo)
        if head is None:
            self.hub.create(repo)
            head = self.hub.head(repo)
            log.info("created %s for the annotation backups", repo)
        return head

    def _moved_text(self) -> str:
        repo = self.config.repo_id
        return (f"another copy of the app (a second Space or process syncing to {repo}) pushed to {repo} after "
                f"this sync checked it, so this snapshot was not pushed and nothing in {repo} was overwritten. "
                f"Fix: nothing to do now: the next sync (in {self.config.every_minutes:g} min) checks {repo} "
                f"again and pushes if this store holds all of its revisions; if the other copy saved revisions "
                f"this store lacks, it says so then, with the fix")

    def _check_nothing_dropped(self, snapshot: Snapshot, head: str | None = None) -> None:
        """Refuse to push while the repo (at commit `head`) holds a revision the store lacks: the push would
        drop it from the backup (a store switched, restored from an old copy, or a second Space on the same
        repo)."""
        missing = self._remote_keys(head) - snapshot.keys
        if not missing:
            return
        item, number, saved = min(missing, key=lambda key: key[2])
        repo = self.config.repo_id
        raise SyncError(
            f"{repo} holds {len(missing)} revision(s) this store lacks (e.g. {item} revision {number} saved "
            f"{saved}), so the store is not pushed: it would drop them from the backup. Fix: to go on from the "
            f"backup, stop the app, move the store ({self.store.path.name}) aside and restart (an empty store is "
            f"restored from {repo}); to keep this store's saves, back them up with KARD_SYNC_REPO set to a new "
            f"repo (`python -m kard restore --repo {repo} --db backup.db` gives the backup as a file to compare)")

    def _remote_keys(self, head: str | None = None) -> frozenset[RevisionKey]:
        """The revisions the repo holds at commit `head` (None: its head now). The manifest's digest tells whether
        the repo still holds what was last read or pushed; only when it does not is revisions.jsonl downloaded."""
        repo = self.config.repo_id
        with tempfile.TemporaryDirectory(prefix="kard-remote-") as tmp:
            digest = _manifest_digest(self.hub.download(repo, MANIFEST_FILE, Path(tmp), revision=head))
            if self._remote is not None and digest == self._remote[0]:
                return self._remote[1]
            path = self.hub.download(repo, REVISIONS_FILE, Path(tmp), revision=head)
            if path is None:
                return frozenset()
            keys = revision_keys(read_rows(path))
            self._remote = (file_digest(path), keys)
        return keys

    def _fail(self, error: BaseException) -> None:
        retry = Retry.every(self.config.every_minutes)
        log.warning("sync to %s failed: %s", self.config.repo_id,
                    self._redact(describe_error(error, self.config.repo_id, retry)))
        text = self._redact(describe_error(error, self.config.repo_id, retry, page=True))
        self._status = replace(self._status, error=text, failed_at=self._clock())

    def _redact(self, text: str) -> str:
        return redact(text, self._token)

    # -- the schedule -------------------------------------------------------------------------------
    def start(self) -> None:
        """Push now and then every `every_minutes`, in a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="kard-space-sync", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        self.sync_now()
        while not self._stop.wait(self.config.every_minutes * 60):
            self.sync_now()

    def stop(self, flush: bool = True) -> None:
        """End the schedule; with `flush`, push the last saves first (the app calls this at exit)."""
        self._stop.set()
        if flush:
            self.sync_now()


# -- the app and the command line -----------------------------------------------------------------------
def start_sync(config: AppConfig, store: AnnotationStore, hub: Hub | None = None) -> SpaceSync | None:
    """The app's sync (None without $KARD_SYNC_REPO or in demo mode): restore an empty store, then
    push now and on the schedule, and once more at exit."""
    if config.sync_repo and config.mode != "curator":
        log.warning("KARD_SYNC_REPO is ignored in demo mode: the demo saves nothing to push")
    sync_config = SyncConfig.from_app(config)
    if sync_config is None:
        return None
    token = hub_token()
    sync = SpaceSync(store, sync_config, hub or HfHub(token, private=sync_config.private), token=token)
    sync.restore_if_empty()
    sync.start()
    atexit.register(sync.stop)
    return sync


def storage_notice(config: AppConfig, sync: SpaceSync | None) -> str | None:
    """The line under the mode line: the sync status, a warning when a Space's saves would not survive a
    restart, or None (nothing to say)."""
    if sync is not None:
        return sync.status_markdown()
    if config.mode == "curator" and not config.store_persists:
        return _storage_warning(config.annotations_db.name)  # every visitor sees it: no path of the server's
    return None


def _storage_warning(store: str) -> str:
    return (f"⚠ Corrections are saved in {store}, which this Space loses when it restarts. Fix: add persistent "
            "storage to the Space, or set KARD_SYNC_REPO and the secret HF_TOKEN (README: On a Hugging Face Space)")


def space_warnings(config: AppConfig) -> list[str]:
    """What a Space owner should know at start (logged by app.py)."""
    warnings = []
    if config.on_spaces and config.mode == "curator" and not config.curators:
        warnings.append("KARD_CURATORS is empty: any signed-in Hugging Face user can save corrections. "
                        "Fix: set KARD_CURATORS to the curators' user names, comma-separated")
    if not config.sync_enabled and storage_notice(config, None):  # the log, unlike the page, names the whole path
        warnings.append(_storage_warning(str(config.annotations_db)).removeprefix("⚠ "))
    return warnings


def restore_store(db: Path, *, repo_id: str | None = None, source: Path | None = None,
                  hub: Hub | None = None) -> int:
    """Fill the empty (or new) store `db` from a snapshot: a local folder or revisions.jsonl (`source`),
    or the dataset repo `repo_id` (token: $HF_TOKEN, else huggingface_hub's saved login).
    Returns the number of revisions restored."""
    if (repo_id is None) == (source is None):
        raise SyncError("restore needs one source. Fix: pass --repo OWNER/NAME or --from FOLDER_OR_FILE")
    if source is not None:
        rows = read_rows(_local_revisions(source))
    else:
        assert repo_id is not None
        with tempfile.TemporaryDirectory(prefix="kard-restore-") as tmp:
            rows = read_rows(_download_revisions(hub or HfHub(hub_token()), repo_id, Path(tmp)))
    if not rows:
        raise DataError("the snapshot holds no revision, so there is nothing to restore",
                        path=source if source is not None else repo_id,
                        fix="restore from a snapshot the app's sync pushed after something was saved (its "
                            "manifest.json counts the revisions), or start the app with an empty store")
    restorable_rows(rows)  # a bad row stops the restore before the store is created
    return AnnotationStore(db).restore_rows(rows)


def _local_revisions(source: Path) -> Path:
    path = source / REVISIONS_FILE if source.is_dir() else source
    if not path.is_file():
        raise DataError(f"no {REVISIONS_FILE} found", path=source,
                        fix="pass the folder of a KARD Studio snapshot or its revisions.jsonl")
    return path


def _download_revisions(hub: Hub, repo_id: str, folder: Path) -> Path:
    try:
        path = hub.download(repo_id, REVISIONS_FILE, folder)
    except KardError:
        raise
    except Exception as error:
        raise SyncError(redact(f"cannot download from {repo_id}: {describe_error(error, repo_id)}",
                               hub_token())) from None
    if path is None:
        raise SyncError(f"{repo_id} holds no {REVISIONS_FILE}. Fix: check the repo id (the one KARD_SYNC_REPO "
                        "named), and for a private repo set HF_TOKEN to a token that can read it")
    return path


__all__ = ["AT_START", "COMMAND", "HfHub", "Hub", "RepoMovedError", "Retry", "Snapshot", "SpaceSync", "SyncConfig",
           "SyncError", "SyncStatus", "describe_error", "read_rows", "redact", "restore_store", "space_warnings",
           "start_sync", "storage_notice", "write_snapshot"]

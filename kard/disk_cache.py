"""Content-keyed folders under `cache_dir()` and their pruning.

A cached artefact (a student converted for CTranslate2) is keyed by `content_digest` of what it was made
from: the bytes and names of the files in the source folders, never their absolute paths or change times,
so a second clone or checkout of the same student reuses the artefact. Hashing the 513 MB SmolLM2 base takes
about 1.2 s on 2 cores, so each file's digest is remembered in `cache_dir()/file-digests.json` by (path,
size, mtime): a file unchanged since it was last hashed is not read again, and startup only stats files.

`prune` keeps the most recently used folders of a kind (`touch` marks a use) and removes the rest.
Folders being written are hidden (`.`-prefixed scratch folders renamed into place when complete), so a
conversion in progress in another process is never removed; scratch left by a killed process is removed
after a day.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Sequence

from kard.config import cache_dir

log = logging.getLogger(__name__)

MEMO_FILE = "file-digests.json"
STALE_SCRATCH_S = 24 * 3600  # a hidden scratch folder untouched this long was left by a killed process
_CHUNK = 1 << 20


def content_digest(sources: Sequence[str]) -> str:
    """A short hash of what `sources` hold: each local folder's top-level files (names and bytes), else the text.

    Hidden files are left out; a source that is not a local path (a hub id) counts by its text.
    """
    memo = _DigestMemo.load()
    digest = hashlib.sha256()
    for source in sources:
        parts = _source_digests(Path(source), memo)
        digest.update(b"\0source\0" + (source.encode() if parts is None else b""))
        for name, file_digest in parts or []:
            digest.update(f"{name}\0{file_digest}\0".encode())
    memo.save()
    return digest.hexdigest()[:16]


def file_digest(path: Path) -> str:
    """One file's sha256, remembered as `content_digest` remembers it (read again only once it changed)."""
    memo = _DigestMemo.load()
    value = memo.digest(path)
    memo.save()
    return value


def _source_digests(path: Path, memo: "_DigestMemo") -> list[tuple[str, str]] | None:
    """(file name, content digest) of a folder's visible top-level files, or of one file; None when not local."""
    if path.is_file():
        return [(path.name, memo.digest(path))]
    if not path.is_dir():
        return None
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    return [(file.name, memo.digest(file)) for file in files]


def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class _DigestMemo:
    """File digests remembered by (resolved path, size, mtime), kept in one JSON file under the cache root."""

    def __init__(self, file: Path, entries: dict[str, list]):
        self.file = file
        self.entries = entries
        self.changed = False

    @classmethod
    def load(cls) -> "_DigestMemo":
        file = cache_dir() / MEMO_FILE
        try:
            entries = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            entries = {}
        return cls(file, entries if isinstance(entries, dict) else {})

    def digest(self, path: Path) -> str:
        key, stat = str(path.resolve()), path.stat()
        stamp = [stat.st_size, stat.st_mtime_ns]
        entry = self.entries.get(key)
        if isinstance(entry, list) and entry[:2] == stamp and len(entry) == 3:
            return entry[2]
        started = time.perf_counter()
        value = file_sha256(path)
        log.debug("hashed %s (%d MB) in %.2f s", path.name, stat.st_size >> 20, time.perf_counter() - started)
        self.entries[key] = [*stamp, value]
        self.changed = True
        return value

    def save(self) -> None:
        """Write the memo atomically, forgetting files that no longer exist; a read-only cache only costs time."""
        if not self.changed:
            return
        kept = {key: entry for key, entry in self.entries.items() if os.path.exists(key)}
        temporary = self.file.with_name(f".{self.file.name}.{os.getpid()}")
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(kept, indent=0), encoding="utf-8")
            os.replace(temporary, self.file)
        except OSError as error:
            log.warning("could not remember file digests in %s (%s)", self.file, error)
            temporary.unlink(missing_ok=True)


def touch(folder: Path) -> None:
    """Mark a cached folder as just used (its mtime), so pruning keeps it."""
    try:
        os.utime(folder)
    except OSError as error:
        log.debug("could not mark %s as used (%s)", folder, error)


def prune(parent: Path, keep: int, spare: Path | None = None) -> list[Path]:
    """Remove all but the `keep` most recently used folders in `parent` (`spare` always kept), and stale scratch.

    Returns what was removed; each removal is logged with its size.
    """
    children = _children(parent)
    folders = sorted((p for p in children if not p.name.startswith(".") and p != spare), key=_mtime, reverse=True)
    old = folders[max(keep - (spare is not None), 0):]
    stale = [p for p in children if p.name.startswith(".") and time.time() - _mtime(p) > STALE_SCRATCH_S]
    return [p for p in [*old, *stale] if _remove(p)]


def _children(parent: Path) -> list[Path]:
    try:
        return [p for p in parent.iterdir() if p.is_dir()]
    except OSError:
        return []


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _remove(folder: Path) -> bool:
    try:
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        shutil.rmtree(folder)
    except OSError as error:
        log.warning("could not remove the old cached folder %s (%s)", folder, error)
        return False
    log.info("removed the old cached folder %s (%d MB, not used recently)", folder, size >> 20)
    return True

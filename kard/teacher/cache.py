"""A SQLite cache of teacher completions, so the same job never pays twice and an interrupted job resumes.

One row per sample, keyed by (model, prompt version, question id, sample index). The row also keeps a
fingerprint of the exact prompt: if a question's text or options change, its old samples are not reused.
The API key is never stored. One connection is shared by the job's worker threads behind a lock.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator, Self

from kard.errors import ConfigError
from kard.teacher.errors import TeacherCacheError

log = logging.getLogger(__name__)

TABLE = "teacher_samples"
_KEY = ("model", "prompt_version", "question_id", "sample_index")


@dataclass(frozen=True)
class CacheKey:
    model: str
    prompt_version: str
    question_id: str
    sample_index: int


@dataclass(frozen=True)
class CachedSample:
    """One completion as the server returned it (raw text, not yet parsed)."""

    text: str
    prompt_sha: str
    finish_reason: str | None = None
    tokens_in: int = 0  # the request's prompt tokens, counted on the first sample of that request
    tokens_out: int = 0  # completion tokens attributed to this sample
    temperature: float | None = None
    created_at: float = 0.0


class CachedReply(str):
    """A reply served from the cache, not fetched now: its text, and when it was fetched (`fetched_at`, seconds
    since the epoch; None for rows written before the cache kept the time)."""

    fetched_at: float | None

    def __new__(cls, text: str, fetched_at: float | None = None) -> Self:
        reply = super().__new__(cls, text)
        reply.fetched_at = fetched_at or None
        return reply


class TeacherCache:
    """`get`/`put` samples by `CacheKey`. `path=None` keeps the cache in memory (nothing survives).

    A file another process holds locked is waited for `busy_timeout_s`; then, like a read-only file,
    it raises a `TeacherCacheError` naming the file and the fix.
    """

    def __init__(self, path: str | Path | None, busy_timeout_s: float = 30.0):
        import sqlite_utils

        self.busy_timeout_s = busy_timeout_s

        self.path = None if path is None or str(path) == ":memory:" else Path(path)
        if self.path is not None:
            _make_room(self.path)
        target = ":memory:" if self.path is None else str(self.path)
        try:
            conn = sqlite3.connect(target, check_same_thread=False, timeout=busy_timeout_s)
            self._db = sqlite_utils.Database(conn)
            if self.path is not None:
                self._db.execute(
                    "PRAGMA journal_mode=WAL"
                )  # a second reader (the app) does not block the job
            self._create_table()
        except sqlite3.DatabaseError as error:
            raise ConfigError(
                f"cannot open the teacher cache {target}: {error}. Fix: pass another --cache path or delete the broken file"
            ) from None
        self._lock = threading.Lock()

    def _create_table(self) -> None:
        columns = {
            "model": str,
            "prompt_version": str,
            "question_id": str,
            "sample_index": int,
            "text": str,
            "prompt_sha": str,
            "finish_reason": str,
            "tokens_in": int,
            "tokens_out": int,
            "temperature": float,
            "created_at": float,
        }
        self._db[TABLE].create(columns, pk=_KEY, if_not_exists=True)

    def get(self, key: CacheKey) -> CachedSample | None:
        found = self.get_many(key.model, key.prompt_version, key.question_id, [key.sample_index])
        return found.get(key.sample_index)

    def get_many(
        self, model: str, prompt_version: str, question_id: str, indexes: Iterable[int]
    ) -> dict[int, CachedSample]:
        """The cached samples of one question among `indexes`, by sample index."""
        wanted = sorted(set(indexes))
        if not wanted:
            return {}
        marks = ", ".join("?" for _ in wanted)
        sql = (
            f"select * from {TABLE} where model = ? and prompt_version = ? and question_id = ? "
            f"and sample_index in ({marks})"
        )
        with self._using("reading"):
            rows = list(self._db.query(sql, [model, prompt_version, question_id, *wanted]))
        return {row["sample_index"]: _sample(row) for row in rows}

    def put(self, key: CacheKey, sample: CachedSample) -> None:
        row = {**asdict(key), **asdict(sample)}
        if not row["created_at"]:
            row["created_at"] = time.time()
        with self._using("writing"):
            self._db[TABLE].upsert(row, pk=_KEY)

    def count(self, model: str | None = None, prompt_version: str | None = None) -> int:
        where, params = [], []
        for column, value in (("model", model), ("prompt_version", prompt_version)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = f"select count(*) as n from {TABLE}" + (" where " + " and ".join(where) if where else "")
        with self._using("reading"):
            return next(self._db.query(sql, params))["n"]

    @contextmanager
    def _using(self, action: str) -> Iterator[None]:
        """The shared connection, held by one thread; SQLite failures become TeacherCacheErrors."""
        with self._lock:
            try:
                yield
            except sqlite3.DatabaseError as error:
                raise self._failure(error, action) from None

    def _failure(self, error: sqlite3.DatabaseError, action: str) -> TeacherCacheError:
        where = self.path or "(in memory)"
        text = str(error)
        if "locked" in text or "busy" in text:
            problem = f"the teacher cache {where} is locked by another process (still after {self.busy_timeout_s:g} s)"
            fix = "wait for the other teach job or app using it to finish, or pass another --cache file"
        elif "readonly" in text:
            problem = f"the teacher cache {where} is read-only"
            fix = "make the file and its folder writable, or pass another --cache file"
        else:
            problem = f"the teacher cache {where} failed while {action}: {text}"
            fix = "pass another --cache file, or delete the broken one"
        return TeacherCacheError(f"{problem}. Fix: {fix}")

    def close(self) -> None:
        with self._lock:
            self._db.conn.close()


def _make_room(path: Path) -> None:
    """Create the cache file's folder; a ConfigError naming the fix when `path` is a folder or cannot be made."""
    if path.is_dir():
        raise ConfigError(
            f"the teacher cache path {path} is a folder, not a file. Fix: pass a file path as --cache, "
            f"e.g. {path / 'teacher_cache.sqlite'}"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"cannot create the teacher cache folder {path.parent}: {error.strerror}. "
            "Fix: pass a writable --cache path"
        ) from None


def _sample(row: dict) -> CachedSample:
    return CachedSample(
        text=row["text"] or "",
        prompt_sha=row["prompt_sha"] or "",
        finish_reason=row["finish_reason"],
        tokens_in=row["tokens_in"] or 0,
        tokens_out=row["tokens_out"] or 0,
        temperature=row["temperature"],
        created_at=row["created_at"] or 0.0,
    )

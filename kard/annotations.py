"""The curators' store: corrections of student rationales, kept as append-only revisions in SQLite.

Every save adds a row; nothing is updated or deleted. A revert copies an old revision into a new
one. Each call opens its own connection (Gradio runs handlers in worker threads, and a sqlite3
connection refuses use from another thread), the file runs in WAL mode so readers never block the
writer, and a write that meets "database is locked" is retried a few times before a clear error.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

from kard.config import AnnotationStoreConfig
from kard.errors import DataError, KardError
from kard.kinds import is_blank
from kard.prompts import same_answer
from kard.records import (
    CHOICE, OPEN, QUESTION_KINDS, YES_NO, YES_NO_OPTIONS, AskedItem, Hit, Question, is_recalled, item_id_for,  # noqa: F401 - item_id_for: the store key
)

log = logging.getLogger(__name__)

TABLE = "revisions"
ERROR_TAGS: tuple[str, ...] = ("wrong knowledge", "reasoning error", "hallucination", "irrelevant passages", "other")
RELEVANCE_MARKS: tuple[str, ...] = ("relevant", "irrelevant")
MAX_RATIONALE_CHARS = 8_000
"""A corrected rationale: far past the ~600 characters of the 128 tokens a student writes; refuse longer."""
MAX_NOTE_CHARS = 2_000
"""A curator's note on a correction."""
MAX_FREE_ANSWER_CHARS = 300
"""The curated answer of an open question: a short answer, not a second rationale."""
_SECRET_KEY = re.compile(r"api[_-]?key|secret|passw|authori[sz]ation|(^|_)(auth|access|bearer|api)_?token", re.IGNORECASE)
OPEN_EXISTING_FIX = ("pass the database file the app saves corrections to (its --annotations or "
                     "KARD_ANNOTATIONS_DB; by default annotations/annotations.db)")
T = TypeVar("T")
E = TypeVar("E", bound=KardError)
LOW_SPACE_BYTES = 1 << 20
"""Free space under which a disk I/O error of the database reads as a full disk: in WAL mode SQLite says "disk I/O
error", not "disk is full", where its -wal or -shm file cannot grow."""
OWNER = "ask whoever runs this app to"
PAGE_LOCKED_FIX = (f"wait a moment and try again; if it stays locked, {OWNER} close other programs writing to the "
                   "database")
PAGE_READ_ONLY_FIX = f"{OWNER} make its storage writable, then save again (what you typed stays on this page)"
PAGE_FULL_FIX = (f"{OWNER} free space on that disk (on a Space: upgrade its persistent storage), then save again "
                 "(what you typed stays on this page)")


class AnnotationStoreError(KardError):
    """The annotation database cannot be used."""


def store_error(cls: type[E], problem: Callable[[str], str], fix: str, page_fix: str, path: Path) -> E:
    """`cls` saying `problem` of the database `path` with `fix` (the command line: its full path), and its page text
    (`KardError.page`): the file name only, and `page_fix`, a fix a person on the app's page can carry out."""
    error = cls(f"{problem(str(path))}. Fix: {fix}")
    error.page = f"{problem(path.name)}. Fix: {page_fix}"
    return error


class StoreLockedError(AnnotationStoreError):
    """Another writer held the database lock through every retry; `problem` is the message without its fix,
    so a caller can give the fix that fits it (the app: "save again"); `page_problem` is it with the file name
    only, for the app's page."""

    def __init__(self, problem: str, fix: str = "close other programs writing to it (sqlite3 shells, exports, "
                 "another KARD command) or wait for them to finish, then try again", *,
                 page_problem: str | None = None, page_fix: str = PAGE_LOCKED_FIX):
        super().__init__(f"{problem}. Fix: {fix}")
        self.problem = problem
        self.page_problem = page_problem or problem
        self.page = f"{self.page_problem}. Fix: {page_fix}"


class StoreReadOnlyError(AnnotationStoreError):
    """The database file or its folder cannot be written."""


class RevisionConflictError(AnnotationStoreError):
    """A save meant to go on top of revision `expected` of an item found newer revisions there (`newer`, oldest
    first; `base`: revision `expected` itself, None when it is 0: no revision): nothing was written."""

    def __init__(self, item_id: str, expected: int, base: "Revision | None", newer: Sequence["Revision"]):
        latest = newer[-1]
        super().__init__(
            f"item {item_id} has revision {latest.revision} (saved by {latest.correction.curator} at "
            f"{latest.created_at}), newer than revision {expected} this save was to go on top of; nothing was saved. "
            f"Fix: read the latest revision (AnnotationStore.get) and save again, or pass "
            f"expected_revision={latest.revision} to save on top of it")
        self.item_id, self.expected, self.base, self.newer = item_id, expected, base, tuple(newer)

    @property
    def latest(self) -> "Revision":
        return self.newer[-1]


@dataclass(frozen=True)
class PassageRecord:
    """A candidate passage as the curator saw it: both rankings, whether the student read it, a mark."""

    id: str
    title: str
    text: str
    bm25_rank: int
    bm25_score: float
    rerank_rank: int | None = None
    rerank_score: float | None = None
    used: bool = False  # among the top-k passages given to the student
    mark: str | None = None  # "relevant", "irrelevant" or None (not marked)

    @staticmethod
    def from_hit(hit: Hit, used: bool = False, mark: str | None = None) -> "PassageRecord":
        return PassageRecord(**hit.to_dict(), used=used, mark=mark)

    def to_hit(self) -> Hit:
        return Hit.from_dict(asdict(self))


@dataclass(frozen=True)
class Correction:
    """What a curator saves for one item: the context they saw and what they changed.

    `item_id` groups the revisions of one question. `original_rationale` is the text the editor
    was pre-filled with (`original_source` says whose: "teacher:<model>", "recorded:<source>",
    "student:<model>"); `rationale` and `answer` are the corrected ones. `kind` is how the question
    was asked (kard.kinds): the answers are option letters ("yesno": A = yes, B = no), or for an
    "open" question (no options) short free texts.
    """

    item_id: str
    question_id: str
    question: str
    options: Mapping[str, str]
    rationale: str
    answer: str
    gold_answer: str | None = None
    dataset: str = "custom"
    passages: tuple[PassageRecord, ...] = ()
    student_model: str = ""
    reranker_model: str | None = None
    teacher_model: str | None = None
    prompt_version: str = ""
    decoding: Mapping[str, Any] = field(default_factory=dict)
    student_rationale: str = ""
    student_answer: str | None = None
    teacher_rationale: str | None = None
    teacher_answer: str | None = None
    original_rationale: str = ""
    original_source: str = ""
    rating: int | None = None
    tags: tuple[str, ...] = ()
    note: str = ""
    curator: str = "anonymous"
    kind: str = CHOICE  # QUESTION_KINDS; rows saved before kinds existed read as "choice"

    @property
    def relevance(self) -> dict[str, str]:
        """Passage id -> the curator's mark; a recalled correction (kard.recall) is not knowledge to mark."""
        return {p.id: p.mark for p in self.passages if p.mark and not is_recalled(p.id)}

    @property
    def disagreement(self) -> bool:
        """The student's answer differs from the curator's or the gold one (open answers: as words)."""
        student = self.student_answer
        return not same_answer(student, self.answer, self.kind) or (
            self.gold_answer is not None and not same_answer(student, self.gold_answer, self.kind))

    def to_question(self, answer: str | None = None) -> Question:
        """The question as it was asked; `answer` (default: the corrected one) becomes its gold answer."""
        return Question.from_dict({"id": self.question_id, "text": self.question, "options": self.options,
                                   "answer": self.answer if answer is None else answer, "dataset": self.dataset,
                                   "kind": self.kind})

    @staticmethod
    def from_item(item: AskedItem, *, rationale: str, answer: str, marks: Sequence[str | None] = (),
                  rating: int | None = None, tags: Sequence[str] = (), note: str = "", curator: str = "anonymous",
                  original: str = "", original_source: str = "") -> "Correction":
        """A curator's correction of an asked item; `marks[i]` is the relevance mark of the i-th used passage
        (a recalled correction, kard.recall, is no knowledge: its mark is not kept)."""
        mark_of = {h.passage.id: (marks[i] if i < len(marks) and not is_recalled(h.passage.id) else None)
                   for i, h in enumerate(item.used)}
        known = {h.passage.id for h in item.candidates}
        seen = list(item.candidates) + [h for h in item.used if h.passage.id not in known]
        q, s, t = item.question, item.student, item.teacher
        return Correction(
            item_id=item.item_id, question_id=q.id, question=q.text, options=dict(q.options), rationale=rationale,
            answer=answer, gold_answer=q.answer, dataset=q.dataset, kind=q.kind,
            passages=tuple(PassageRecord.from_hit(h, used=h.passage.id in mark_of, mark=mark_of.get(h.passage.id) or None)
                           for h in seen),
            student_model=s.model, reranker_model=item.reranker, teacher_model=t.model if t else None,
            prompt_version=item.prompt_version, decoding=dict(item.decoding), student_rationale=s.rationale,
            student_answer=s.answer, teacher_rationale=t.rationale if t else None, teacher_answer=t.answer if t else None,
            original_rationale=original or (t.rationale if t else s.rationale),
            original_source=original_source or (t.label if t else f"student {s.model}"),
            rating=rating, tags=tuple(tags), note=note, curator=curator)


def carry_forward(correction: Correction, earlier: Correction | None) -> Correction:
    """`correction` as a new revision of `earlier` (the saved correction the editor started from): what this ask
    did not change stays as it was.

    - Marks: a mark set now replaces the earlier one; a passage this ask did not show, or showed and left
      unmarked, keeps its earlier mark (a mark can be changed, not removed: mark it irrelevant instead).
    - Knowledge: when the student read a recalled correction (kard.recall) instead of passages, the passages
      `earlier` trains on (its `used` ones) stay `used`, so the new revision trains on the same knowledge. The
      recalled correction itself is never knowledge and never marked.
    """
    if earlier is None:
        return correction
    read_recalled = any(p.used and is_recalled(p.id) for p in correction.passages)
    now = {p.id: p for p in correction.passages}
    added = []
    for old in earlier.passages:
        if is_recalled(old.id) or not (old.mark or (read_recalled and old.used)):
            continue
        new = now.get(old.id)
        used = (new is not None and new.used) or (read_recalled and old.used)
        if new is None:
            added.append(replace(old, used=used))
        else:
            now[old.id] = replace(new, used=used, mark=new.mark or old.mark)
    return replace(correction, passages=(*now.values(), *added))


@dataclass(frozen=True)
class Revision:
    """One stored row: a Correction plus its place in the item's history."""

    id: int
    revision: int
    created_at: str
    action: str  # "save" or "revert"
    reverted_from: int | None
    correction: Correction

    @property
    def item_id(self) -> str:
        return self.correction.item_id


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _scrub(decoding: Mapping[str, Any]) -> dict[str, Any]:
    """Decoding settings without anything that looks like a credential."""
    return {k: v for k, v in dict(decoding).items() if not _SECRET_KEY.search(str(k))}


def locked_wait_s(config: AnnotationStoreConfig) -> float:
    """How long a write waits for a locked database before StoreLockedError: SQLite's busy timeout at each attempt,
    and the waits between the attempts."""
    waits = sum(config.retry_wait_s * 2 ** n for n in range(config.retries))
    return (config.retries + 1) * config.busy_timeout_s + waits


def check_sizes(rationale: str, note: str) -> None:
    """Raise DataError when the corrected rationale or the note is not text or longer than its limit."""
    for name, text in (("corrected rationale", rationale), ("note", note)):
        if not isinstance(text, str):
            raise DataError(f"the {name} is {text!r}, not text", fix=f"pass the {name} as a string")
    for name, text, limit in (("corrected rationale", rationale, MAX_RATIONALE_CHARS), ("note", note, MAX_NOTE_CHARS)):
        if len(text) > limit:
            raise DataError(f"the {name} has {len(text):,} characters; the limit is {limit:,}",
                            fix=f"shorten the {name} to at most {limit:,} characters")


_REQUIRED_TEXT: dict[str, str] = {
    "item_id": "build it from the question (item_id_for)",
    "question_id": "give the id of the question corrected",
    "question": "give the text of the question corrected",
    "rationale": "write the rationale before saving",
    "curator": "name the curator who saves it",
}
"""Correction fields that must be non-empty text, and how to fill each."""


def _absence(value: Any) -> str:
    """How a required text is absent: missing, empty (or only invisible characters), or not text at all."""
    return "missing" if value is None else "empty" if isinstance(value, str) else f"{value!r}, not text"


def _check_required_text(c: Correction) -> None:
    for name, fix in _REQUIRED_TEXT.items():
        value = getattr(c, name)
        if not isinstance(value, str) or is_blank(value):
            raise DataError(f"the correction's {name} is {_absence(value)}", fix=fix)


def _check_rating(rating: Any) -> None:
    if rating is None:
        return
    if not isinstance(rating, int) or isinstance(rating, bool):
        raise DataError(f"rating {rating!r} is not a whole number", fix="rate from 1 (bad) to 5 (good), or None")
    if not 1 <= rating <= 5:
        raise DataError(f"rating {rating} is outside 1-5", fix="rate from 1 (bad) to 5 (good)")


def _validate(c: Correction) -> None:
    check_sizes(c.rationale, c.note)
    _check_required_text(c)
    _validate_answer(c)
    _check_rating(c.rating)
    unknown = [t for t in c.tags if t not in ERROR_TAGS]
    if unknown:
        raise DataError(f"unknown error tags {unknown}", fix=f"use tags from {list(ERROR_TAGS)}")
    bad_marks = [p.mark for p in c.passages if p.mark not in (None, *RELEVANCE_MARKS)]
    if bad_marks:
        raise DataError(f"unknown passage marks {bad_marks}", fix=f"mark passages {list(RELEVANCE_MARKS)} or leave unmarked")


def _validate_answer(c: Correction) -> None:
    """The answer fits the kind: an option letter, A/B of a yes/no question, or a short open answer."""
    if c.kind not in QUESTION_KINDS:
        raise DataError(f"unknown question kind {c.kind!r}", fix=f"use one of {', '.join(QUESTION_KINDS)}")
    if c.kind == YES_NO and dict(c.options) != dict(YES_NO_OPTIONS):
        raise DataError(f"a yes/no question has the options A. yes, B. no, not {dict(c.options)}",
                        fix="save yes/no questions with kard.records.YES_NO_OPTIONS")
    if c.kind != OPEN:
        if c.answer not in c.options:
            raise DataError(f"answer {c.answer!r} is not one of the options {list(c.options)}",
                            fix="choose one of the option letters")
        return
    if c.options:
        raise DataError(f"an open question has no options, got {list(c.options)}",
                        fix="save it as a multiple-choice question (kind 'choice'), or drop the options")
    check_free_answer(c.answer)


def check_free_answer(answer: str) -> None:
    """Raise DataError when an open question's answer is empty or longer than MAX_FREE_ANSWER_CHARS."""
    if is_blank(answer):
        raise DataError("the answer of the open question is empty", fix="write the short answer before saving")
    if len(answer) > MAX_FREE_ANSWER_CHARS:
        raise DataError(f"the answer has {len(answer):,} characters; the limit is {MAX_FREE_ANSWER_CHARS:,}",
                        fix="write a short answer; the reasoning belongs in the rationale")


def _row(c: Correction, revision: int, action: str, reverted_from: int | None) -> dict[str, Any]:
    row = {f.name: getattr(c, f.name) for f in fields(Correction)}
    row.update(
        options=json.dumps(dict(c.options)), passages=json.dumps([asdict(p) for p in c.passages]),
        decoding=json.dumps(_scrub(c.decoding), default=str), tags=json.dumps(list(c.tags)),
        relevance=json.dumps(c.relevance), disagreement=int(c.disagreement),
        revision=revision, created_at=_now(), action=action, reverted_from=reverted_from,
    )
    return row


def _revision(row: Mapping[str, Any]) -> Revision:
    names = {f.name for f in fields(Correction)}
    values = {k: row[k] for k in names if k in row}
    values["kind"] = row.get("kind") or CHOICE  # a store written before kinds existed
    values["options"] = json.loads(row["options"])
    values["passages"] = tuple(PassageRecord(**p) for p in json.loads(row["passages"]))
    values["decoding"] = json.loads(row["decoding"])
    values["tags"] = tuple(json.loads(row["tags"]))
    return Revision(row["id"], row["revision"], row["created_at"], row["action"], row["reverted_from"],
                    Correction(**values))


def revision_from_row(row: Mapping[str, Any]) -> Revision:
    """A stored row (as `AnnotationStore.rows` returns it) read back as a Revision."""
    return _revision(row)


_COLUMNS: dict[str, type] = {
    "id": int, "item_id": str, "revision": int, "created_at": str, "action": str, "reverted_from": int,
    "question_id": str, "question": str, "options": str, "gold_answer": str, "dataset": str,
    "passages": str, "student_model": str, "reranker_model": str, "teacher_model": str,
    "prompt_version": str, "decoding": str, "student_rationale": str, "student_answer": str,
    "teacher_rationale": str, "teacher_answer": str, "original_rationale": str, "original_source": str,
    "rationale": str, "answer": str, "rating": int, "tags": str, "relevance": str, "note": str,
    "curator": str, "disagreement": int, "kind": str,
}

_REQUIRED = ("id", "item_id", "revision", "created_at", "action", "rationale", "answer")
"""Columns every restored row must have (the others may be missing in a backup of an older store; a row is then
still checked as any save is, so one without the question's text or a curator is refused by `_validate`)."""


_RESTORE_FIX = ("correct that value in the file, or restore from an unedited revisions.jsonl written by KARD Studio's "
                "sync (python -m kard restore)")
_JSON_SHAPES: dict[str, tuple[type, type | None]] = {
    "options": (dict, str), "passages": (list, dict), "decoding": (dict, None), "tags": (list, str),
}
"""JSON text columns: the container each holds and the type of its values (None: any)."""
_PASSAGE_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,), "title": (str,), "text": (str,), "bm25_rank": (int,), "bm25_score": (int, float),
    "rerank_rank": (int, type(None)), "rerank_score": (int, float, type(None)), "used": (bool,),
    "mark": (str, type(None)),
}
_ACTIONS = ("save", "revert")
_JSON_NAMES = {str: "strings", dict: "objects"}


def _restorable(row: Mapping[str, Any], number: int) -> dict[str, Any]:
    """`row` as a dict, once it reads back as a Revision that `save` would accept; else a DataError naming
    the row and the field."""
    unknown = sorted(set(row) - set(_COLUMNS))
    if unknown:
        raise DataError(f"row {number} has columns this version does not know: {unknown}",
                        fix="update KARD Studio to the version that wrote the backup")
    missing = [name for name in _REQUIRED if row.get(name) in (None, "")]
    if missing:
        raise DataError(f"row {number} lacks {missing}", fix=_RESTORE_FIX)
    defaults = {"options": "{}", "passages": "[]", "decoding": "{}", "tags": "[]"}
    full = {**{name: None for name in _COLUMNS}, **defaults, **dict(row)}
    where = f"row {number} (id {row.get('id')!r}, item {row.get('item_id')!r})"
    try:
        _check_types(full)
        revision = _revision(full)
        _validate(revision.correction)
    except DataError as error:
        raise DataError(f"{where}: {error.problem}", fix=_RESTORE_FIX) from None
    except (KeyError, TypeError, ValueError) as error:  # a passage with a field this version does not know
        raise DataError(f"{where} is not a valid revision: {error}", fix=_RESTORE_FIX) from None
    return full


def _check_types(row: Mapping[str, Any]) -> None:
    """Raise DataError naming the first column whose value is not of its type (or not the JSON it should hold)."""
    for name, kind in _COLUMNS.items():
        value = row[name]
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise DataError(f"column {name!r} holds {value!r}, not {'an integer' if kind is int else 'text'}")
    if row["revision"] < 1:
        raise DataError(f"revision number {row['revision']} is below 1 (an item's revisions count from 1)")
    if row["action"] not in _ACTIONS:
        raise DataError(f"unknown action {row['action']!r} (a revision's action is one of {list(_ACTIONS)})")
    for name, (container, item) in _JSON_SHAPES.items():
        _check_json(name, row[name], container, item)
    for passage in json.loads(row["passages"]):
        wrong = [key for key, kinds in _PASSAGE_TYPES.items() if key in passage and not isinstance(passage[key], kinds)]
        if wrong:
            raise DataError(f"passage {passage.get('id')!r} has fields of the wrong type: {wrong}")


def _check_json(name: str, text: str, container: type, item: type | None) -> None:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise DataError(f"column {name!r} is not JSON ({error})") from None
    values = list(value.values()) if isinstance(value, dict) else value
    keys_ok = not isinstance(value, dict) or all(isinstance(key, str) for key in value)
    if not isinstance(value, container) or not keys_ok or (item and not all(isinstance(v, item) for v in values)):
        shape = f"a JSON {'object' if container is dict else 'list'}" + (f" of {_JSON_NAMES[item]}" if item else "")
        raise DataError(f"column {name!r} holds {text!r}, not {shape}")


def _check_unique(rows: Sequence[Mapping[str, Any]]) -> None:
    ids = [row["id"] for row in rows]
    keys = [(row["item_id"], row["revision"]) for row in rows]
    if len(set(ids)) != len(ids) or len(set(keys)) != len(keys):
        raise DataError("the rows repeat a row id or an item's revision number",
                        fix="restore from one backup's revisions.jsonl, not several joined together")


def restorable_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`rows` (a backup's, as `AnnotationStore.rows` wrote them) checked as `save` checks a correction; a DataError
    names the first bad row and field, so a restore writes every row or none."""
    checked = [_restorable(row, n) for n, row in enumerate(rows, 1)]
    _check_unique(checked)
    return checked


Build = Callable[[Sequence[Revision]], tuple[Correction, int | None]]
"""Makes a new revision from an item's stored revisions (oldest first): the correction and the revision it reverts."""


def _make_schema(db: Any) -> None:
    """WAL mode and the revisions table with its indexes, where they are missing (two connections may both try)."""
    if db.journal_mode != "wal":
        db.enable_wal()
    db[TABLE].create(_COLUMNS, pk="id", not_null={"item_id", "revision", "rationale", "answer"}, if_not_exists=True)
    db[TABLE].create_index(["item_id", "revision"], unique=True, if_not_exists=True)
    db[TABLE].create_index(["curator"], if_not_exists=True)


def _check_expected(item_id: str, history: Sequence[Revision], expected: int | None) -> None:
    """RevisionConflictError when `expected` (0: no revision) is given and is not the item's latest revision."""
    if expected is None or int(expected) == (history[-1].revision if history else 0):
        return
    expected = int(expected)
    if not history:
        raise DataError(f"item {item_id!r} has no revision {expected} to save on top of: it has none yet",
                        fix="pass expected_revision=0 for an item never saved")
    base = next((r for r in history if r.revision == expected), None)
    # a revision the item does not have (yet) is refused all the same, naming the latest
    newer = [r for r in history if r.revision > expected] or [history[-1]]
    raise RevisionConflictError(item_id, expected, base, newer)


_INSERT = f"INSERT INTO {TABLE} ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"


class AnnotationStore:
    """Append-only revisions of curated corrections in one SQLite file.

    >>> store = AnnotationStore("annotations/annotations.db")
    >>> rev = store.save(correction)              # a new revision, never an update
    >>> store.history(rev.item_id)                 # every revision, oldest first
    >>> store.revert(rev.item_id, 1, "alice")      # revision 1's content as a new revision
    """

    def __init__(self, path: str | Path, config: AnnotationStoreConfig | None = None, *, read_only: bool = False):
        self.path = Path(path)
        self.config = config or AnnotationStoreConfig()
        self.read_only = read_only
        self._ready = False  # the store was opened: a database file found empty later was deleted or emptied
        self.recreated_at: datetime | None = None  # when a deleted or emptied database file was started afresh
        if not read_only:
            self._with_retry(self._create)

    @classmethod
    def existing(cls, path: str | Path, config: AnnotationStoreConfig | None = None, *,
                 fix: str = OPEN_EXISTING_FIX) -> "AnnotationStore":
        """A read-only store over the database file `path`, which must exist (nothing is created): a DataError
        with `fix` when it does not, where a store opened read-only would read as empty."""
        store = cls(path, config, read_only=True)
        if not store.path.exists():
            raise DataError(f"no annotation database at {store.path}", fix=fix)
        if store.path.is_dir():
            raise store._a_folder()
        return store

    def _a_folder(self) -> "AnnotationStoreError":
        return store_error(AnnotationStoreError, lambda db: f"{db} is a folder, not an annotation database file",
                           f"pass the database file (e.g. {self.path / 'annotations.db'})",
                           f"{OWNER} point KARD_ANNOTATIONS_DB at a database file", self.path)

    # -- connections --------------------------------------------------------------------------------
    @contextmanager
    def _db(self) -> Iterator[Any]:
        import sqlite_utils

        if self.path.is_dir():
            raise self._a_folder()
        if self.read_only:
            if not self.path.exists():
                raise store_error(AnnotationStoreError, lambda db: f"no annotation database at {db}", "save a "
                                  "correction in curator mode first, or point KARD_ANNOTATIONS_DB at an existing file",
                                  "corrections are saved in curator mode", self.path)
            conn = self._connect_read_only()
        else:
            if not self.path.parent.is_dir():  # at start, or the folder was deleted since
                self._make_folder()
            conn = sqlite3.connect(str(self.path), timeout=self.config.busy_timeout_s, check_same_thread=False)
        try:
            db = sqlite_utils.Database(conn)
            if not self.read_only and not conn.execute("PRAGMA page_count").fetchone()[0]:
                self._recreate(db)
            yield db
        finally:
            conn.close()

    def _recreate(self, db: Any) -> None:
        """Give a missing or empty database file (deleted while the app runs) the schema of a new, empty store."""
        if self._ready:
            self.recreated_at = datetime.now(timezone.utc)
            log.warning("the annotation database %s was missing or empty: starting a new, empty store there (to get "
                        "the saved corrections back, stop the app and put the file back, or restore it from a "
                        "backup with python -m kard restore)", self.path)
        _make_schema(db)

    def _connect_read_only(self) -> sqlite3.Connection:
        """mode=ro; where SQLite cannot create a WAL database's -shm file (read-only storage), immutable=1, which
        is safe then: no writer works without that file, and no -wal file holds saves the main file lacks."""
        uri = self.path.resolve().as_uri()
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=self.config.busy_timeout_s, check_same_thread=False)
        try:
            conn.execute("PRAGMA schema_version")  # the first read opens the -shm file
            return conn
        except sqlite3.Error as error:
            conn.close()
            if "unable to open" not in str(error).lower():
                raise
        wal = self.path.with_name(self.path.name + "-wal")
        if wal.exists() and wal.stat().st_size:
            raise store_error(
                AnnotationStoreError, lambda db: f"the annotation database {db} cannot be read where it is: its "
                f"{wal.name} file holds saves not yet in the database file, and SQLite cannot open it read-only here",
                "copy the database and its -wal file to a writable folder and read the copy",
                f"{OWNER} copy the database and its -wal file to a writable folder and read the copy", self.path)
        log.info("%s is on read-only storage: reading it as an unchanging file", self.path)
        return sqlite3.connect(f"{uri}?immutable=1", uri=True, timeout=self.config.busy_timeout_s,
                               check_same_thread=False)

    def _with_retry(self, operation: Callable[[], T]) -> T:
        """Run `operation`, retrying on "database is locked" (`locked_wait_s` in all); turn SQLite errors into
        KardErrors."""
        wait = self.config.retry_wait_s
        for attempt in range(self.config.retries + 1):
            try:
                return operation()
            except sqlite3.OperationalError as error:
                message = str(error).lower()
                if "locked" not in message and "busy" not in message:
                    raise self._failure(error) from error
                if attempt == self.config.retries:
                    raise self._locked() from error
                log.info("annotation database locked, retrying in %.2f s", wait)
                time.sleep(wait)
                wait *= 2
            except sqlite3.DatabaseError as error:  # "file is not a database"
                raise self._failure(error) from error
        raise AssertionError("unreachable")

    def _locked(self) -> StoreLockedError:
        def problem(db: str) -> str:
            return (f"the annotation database {db} stayed locked by another writer through {self.config.retries + 1} "
                    f"attempts (about {locked_wait_s(self.config):.0f} s)")

        return StoreLockedError(problem(str(self.path)), page_problem=problem(self.path.name))

    def _failure(self, error: sqlite3.Error) -> AnnotationStoreError:
        """The KardError for a SQLite error other than a lock: unreadable, read-only, a full disk, a disk I/O error,
        not a database."""
        message = str(error).lower()
        if self.read_only and "unable to open" in message:
            return store_error(AnnotationStoreError, lambda db: f"the annotation database {db} cannot be opened "
                               f"({error})", "check the file and its folder can be read",
                               f"{OWNER} check its file can be read", self.path)
        if "readonly" in message or "read-only" in message or "unable to open" in message:
            return store_error(StoreReadOnlyError, lambda db: f"the annotation database {db} cannot be written "
                               f"({error})", "make the file and its folder writable, or set KARD_ANNOTATIONS_DB to a "
                               "writable path", PAGE_READ_ONLY_FIX, self.path)
        if "disk is full" in message or ("disk i/o error" in message and self._disk_full()):
            return store_error(AnnotationStoreError, lambda db: f"the annotation database {db} cannot grow: its disk "
                               f"is full ({error})", "free space on its storage (on a Space: upgrade the persistent "
                               "storage), or set KARD_ANNOTATIONS_DB to a file on a disk with room", PAGE_FULL_FIX,
                               self.path)
        if "disk i/o error" in message:
            return store_error(AnnotationStoreError, lambda db: f"the annotation database {db} could not be read or "
                               f"written ({error})", "check the disk it is on (free space, errors in the system log) "
                               "and try again", f"try again in a moment; if it keeps failing, {OWNER} check the disk "
                               "it is on", self.path)
        return store_error(AnnotationStoreError, lambda db: f"annotation database {db}: {error}", "check the file is "
                           "a KARD annotation database, or move it aside", f"{OWNER} check the file is a KARD "
                           "annotation database (or restore it from a backup)", self.path)

    def _disk_full(self) -> bool:
        """Whether the disk holding the database has (almost) no free space left."""
        try:
            return shutil.disk_usage(self.path.parent).free < LOW_SPACE_BYTES
        except OSError:
            return False

    def _make_folder(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            full, short = str(error), error.strerror or type(error).__name__  # short: no path in it
            raise store_error(StoreReadOnlyError, lambda db: f"cannot create the folder for {db} ("
                              f"{full if db == str(self.path) else short})", "set KARD_ANNOTATIONS_DB to a path in a "
                              "writable folder", PAGE_READ_ONLY_FIX, self.path) from error

    def _create(self) -> None:
        with self._db() as db:
            _make_schema(db)
            missing = [name for name in _COLUMNS if name not in db[TABLE].columns_dict]
            for name in missing:  # a store from an older version: new columns are added, rows kept
                db[TABLE].add_column(name, _COLUMNS[name])
        self._ready = True

    def _missing(self) -> bool:
        """A read-only store over a file that does not exist yet reads as empty."""
        return self.read_only and not self.path.exists()

    def _require_writable(self) -> None:
        if self.read_only:
            raise store_error(StoreReadOnlyError, lambda db: f"the annotation store {db} was opened read-only (demo "
                              "mode)", "run the app in curator mode (KARD_MODE=curator) to save",
                              "run your own copy in curator mode to save (the README says how)", self.path)

    # -- writes -------------------------------------------------------------------------------------
    def _append(self, item_id: str, action: str, build: Build, expected: int | None = None) -> Revision:
        """Append the revision `build` makes from the item's stored revisions, read after the write lock is taken:
        what it builds on is still the latest revision when the new one is written. With `expected`, the item's
        latest revision must be that one (0: none), else RevisionConflictError and nothing is written: compare and
        append in one transaction, so of two saves expecting the same revision only one is written."""
        def write() -> Revision:
            with self._db() as db:
                db.conn.execute("BEGIN IMMEDIATE")  # take the write lock before reading the item's revisions
                try:
                    history = [_revision(row) for row in db.query(
                        f"SELECT * FROM {TABLE} WHERE item_id = ? ORDER BY revision", [item_id])]
                    _check_expected(item_id, history, expected)
                    correction, reverted_from = build(history)
                    row = _row(correction, (history[-1].revision if history else 0) + 1, action, reverted_from)
                    cursor = db.conn.execute(_INSERT, [row.get(name) for name in _COLUMNS])
                    stored = db.execute(f"SELECT * FROM {TABLE} WHERE id = ?", [cursor.lastrowid])
                    names = [d[0] for d in stored.description]
                    result = _revision(dict(zip(names, stored.fetchone())))
                    db.conn.execute("COMMIT")
                except BaseException:
                    db.rollback()
                    raise
                return result

        return self._with_retry(write)

    def save(self, correction: Correction, build_on: Callable[[Revision | None], Correction] | None = None, *,
             expected_revision: int | None = None) -> Revision:
        """Store `correction` as the item's next revision.

        `build_on`, when given, makes the correction stored from the item's latest revision (None: it has none),
        read in the same transaction as the write (e.g. `carry_forward` of its marks): two saves at the same moment
        never both build on the same revision, so neither drops what the other saved.
        `expected_revision`, when given, is the revision the correction was made from (0: the item had none): when
        the item has a newer one, nothing is saved and RevisionConflictError says who saved it and when.
        """
        self._require_writable()
        _validate(correction)

        def build(history: Sequence[Revision]) -> tuple[Correction, None]:
            if build_on is None:
                return correction, None
            built = build_on(history[-1] if history else None)
            if built.item_id != correction.item_id:
                raise DataError(f"building on the saved revision changed the item id to {built.item_id!r}",
                                fix=f"keep the item id {correction.item_id!r}")
            _validate(built)
            return built, None

        return self._append(correction.item_id, "save", build, expected_revision)

    def revert(self, item_id: str, revision: int, curator: str,
               check: Callable[[Sequence[Revision]], None] | None = None, *,
               expected_revision: int | None = None) -> Revision:
        """Make revision `revision` of `item_id` current again, as a new revision by `curator`.

        `check`, when given, is called with the item's revisions (oldest first) in the same transaction as the
        write, and may raise to refuse the revert (e.g. one that would change nothing). `expected_revision`: as in
        `save`.
        """
        self._require_writable()

        def build(history: Sequence[Revision]) -> tuple[Correction, int]:
            if check is not None:
                check(history)
            old = next((r for r in history if r.revision == int(revision)), None)
            if old is None:
                raise DataError(f"item {item_id!r} has no revision {revision}",
                                fix="pick a revision number from the item's history")
            return replace(old.correction, curator=curator), old.revision

        return self._append(item_id, "revert", build, expected_revision)

    # -- reads --------------------------------------------------------------------------------------
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Revision]:
        def read() -> list[Revision]:
            if self._missing():
                return []
            with self._db() as db:
                if TABLE not in db.table_names():
                    return []
                return [_revision(row) for row in db.query(sql, list(params))]

        return self._with_retry(read)

    def history(self, item_id: str) -> list[Revision]:
        """Every revision of one item, oldest first."""
        return self._rows(f"SELECT * FROM {TABLE} WHERE item_id = ? ORDER BY revision", [item_id])

    def get(self, item_id: str) -> Revision | None:
        """The current (latest) revision of one item, or None."""
        rows = self.history(item_id)
        return rows[-1] if rows else None

    def latest(self, *, tag: str | None = None, curator: str | None = None,
               disagreements_first: bool = False, limit: int | None = None) -> list[Revision]:
        """The current revision of every item, newest first (disagreements first when asked).

        `tag` keeps items whose current revision carries that error tag; `curator` those whose
        current revision was saved by that curator.
        """
        sql = (f"SELECT r.* FROM {TABLE} r JOIN (SELECT item_id, MAX(revision) AS top FROM {TABLE} "
               "GROUP BY item_id) last ON r.item_id = last.item_id AND r.revision = last.top")
        where, params = [], []
        if curator:
            where.append("r.curator = ?")
            params.append(curator)
        if tag:
            where.append("EXISTS (SELECT 1 FROM json_each(r.tags) WHERE json_each.value = ?)")
            params.append(tag)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY " + ("r.disagreement DESC, " if disagreements_first else "") + "r.id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return self._rows(sql, params)

    def curators(self, *, latest: bool = False) -> list[str]:
        """Every curator who saved a revision, sorted; with `latest`, only those who saved an item's current revision
        (the ones `latest(curator=...)` finds items of)."""
        rows = (f"{TABLE} r JOIN (SELECT item_id, MAX(revision) AS top FROM {TABLE} GROUP BY item_id) last "
                "ON r.item_id = last.item_id AND r.revision = last.top") if latest else f"{TABLE} r"

        def read() -> list[str]:
            if self._missing():
                return []
            with self._db() as db:
                if TABLE not in db.table_names():
                    return []
                return [r["curator"] for r in db.query(f"SELECT DISTINCT r.curator FROM {rows} ORDER BY r.curator")]

        return self._with_retry(read)

    def rows(self) -> list[dict[str, Any]]:
        """Every stored row exactly as saved (column -> value), oldest first.

        One SELECT on one connection: a consistent snapshot even while other threads save (in WAL mode a
        reader sees the database as it was when its read began, and no half-written revision).
        """
        def read() -> list[dict[str, Any]]:
            if self._missing():
                return []
            with self._db() as db:
                if TABLE not in db.table_names():
                    return []
                return [dict(row) for row in db.query(f"SELECT * FROM {TABLE} ORDER BY id")]

        return self._with_retry(read)

    def restore_rows(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Write rows saved by `rows()` (e.g. a backup) into this store, which must be empty; their ids,
        revision numbers and times are kept. Returns the number of rows written."""
        self._require_writable()
        checked = restorable_rows(rows)

        def write() -> int:
            with self._db() as db:
                db.conn.execute("BEGIN IMMEDIATE")
                try:
                    if db.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0]:
                        raise AnnotationStoreError(
                            f"the annotation database {self.path} already holds revisions; a restore only fills an "
                            "empty store. Fix: restore into a new file (--db NEW.db), or move this one aside first")
                    db.conn.executemany(_INSERT, [[row.get(name) for name in _COLUMNS] for row in checked])
                    db.conn.execute("COMMIT")
                except BaseException:
                    db.rollback()
                    raise
            return len(checked)

        return self._with_retry(write)

    def count(self) -> int:
        """Number of stored revisions (all items, all revisions)."""
        def read() -> int:
            if self._missing():
                return 0
            with self._db() as db:
                return db[TABLE].count if TABLE in db.table_names() else 0

        return self._with_retry(read)


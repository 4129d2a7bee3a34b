"""The rounds folder: its layout, the round pointer (current.json), atomic JSON and the folder's lock.

A *rounds folder* (e.g. `runs/loop/`) holds every round and the pointer to the one serving:

    runs/loop/
      current.json            {"round": "round-002", "student": ..., "reranker": ...}: what serves now
      round-001/              one finished round (never changed afterwards)
        manifest.json         parent round, data counts, training config, losses, timings
        student/              the fine-tuned student (Student.load / Pipeline.load read it)
        reranker/             the retrained reranker, when the job retrained one
        train.jsonl           the exact training set (teacher examples + corrections, oversampled)
        corrections/          the export the round learned from (JSONL, HF dataset, export.json)
      jobs/JOB.json           a job's status: state, phase, step/total, loss, message, error
      jobs/JOB.log            the background process's output
      .lock                   held (flock) by the running job: a second job over this folder is refused
      failed/JOB/             what a failed or cancelled job had written, kept for diagnosis

A job works in `.work-JOB/` and only at the very end renames it to the next `round-NNN` and swaps
`current.json` (atomic replace, `publish_round`). So a job that fails or is cancelled leaves the
serving student and the pointer exactly as they were, and its status says why.

The job runner is `kard.loop.jobs`; the training step of one round is `kard.loop.retrain`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
import signal
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from kard.errors import DataError, KardError

log = logging.getLogger(__name__)

CURRENT_FILE = "current.json"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = ".lock"
JOBS_DIR = "jobs"
FAILED_DIR = "failed"
ROUND = re.compile(r"^round-(\d{3,})$")


class RetrainError(KardError):
    """A retrain job cannot start or cannot finish."""


class RetrainBusyError(RetrainError):
    """Another job holds the rounds folder."""


class BrokenRoundError(RetrainError):
    """A round cannot load: its student folder, or that of a round it is built on, is missing.

    `round`: the round that cannot load; `missing`: the round (or the outside student folder) that is gone. The
    message names folders of the rounds folder; `page` says the same without paths of this machine.
    """

    def __init__(self, message: str, *, round: str, missing: str, page: str):
        super().__init__(message)
        self.round = round
        self.missing = missing
        self.page = page


# ---------------------------------------------------------------- small file helpers


def utc_now() -> str:
    """The current UTC time as ISO 8601, to the second (every timestamp of the folder)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write atomically: readers see the old or the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json_object(path: Path, fix: str) -> dict[str, Any]:
    """A JSON object file of the rounds folder; DataError naming the file and `fix` when it is damaged."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise DataError(f"the file is not UTF-8 text ({error.reason})", path=path, fix=fix) from None
    except json.JSONDecodeError as error:
        raise DataError(f"the file is not valid JSON ({error.msg} at line {error.lineno})", path=path,
                        fix=fix) from None
    if not isinstance(data, dict):
        raise DataError(f"the file holds a JSON {type(data).__name__}, not an object", path=path, fix=fix)
    return data


# ---------------------------------------------------------------- rounds and the pointer


def round_name(number: int) -> str:
    return f"round-{number:03d}"


def list_rounds(root: str | Path) -> list[str]:
    """Finished rounds in order (round-001, round-002, ...)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p.name) for p in root.iterdir() if p.is_dir() and (m := ROUND.match(p.name))
             and (p / MANIFEST_FILE).is_file()]
    return [name for _, name in sorted(found)]


def next_round_number(root: Path) -> int:
    """The number the next finished round gets (1 for the first): past every round-NNN folder, finished or not, so
    a stray folder without a manifest (a copy, a restore gone wrong) is skipped, never written into."""
    root = Path(root)
    taken = {p.name: int(m.group(1)) for p in root.iterdir() if (m := ROUND.match(p.name))} if root.is_dir() else {}
    strays = sorted(set(taken) - set(list_rounds(root)))
    if strays:
        log.warning("%s: skipping %s: no %s, so not a finished round (move it out of the rounds folder if it is "
                    "not needed)", root, ", ".join(strays), MANIFEST_FILE)
    return max(taken.values(), default=0) + 1


def round_problem(root: str | Path, name: str) -> BrokenRoundError | None:
    """Why round `name` cannot load, or None when every folder it needs is there.

    A LoRA round is an adapter on the student it was trained from (its adapter_config.json's
    base_model_name_or_path, written by `kard.loop.retrain`): round-002 is built on round-001, which may be built
    on round-000's student. The chain is followed to a full model folder, a hub id or a package; the first
    folder that is missing is named. A damaged adapter file is left to `Student.load`, which names it.
    """
    from kard.model_source import adapter_base, adapter_folder, looks_like_path

    root = Path(root)
    chain: list[str] = [name]
    folder = root / name / "student"
    seen: set[Path] = set()
    while folder.is_dir():
        if adapter_folder(folder) is None or folder.resolve() in seen:
            return None  # a full model (or a loop, which Student.load names)
        seen.add(folder.resolve())
        try:
            base = adapter_base(folder)  # a base beside the adapter that exists comes back as a full path
        except (KardError, AttributeError):  # unreadable, or no base recorded: Student.load names it
            return None
        if base.startswith("package:") or not looks_like_path(base):
            return None  # a package or a hub id
        folder = Path(os.path.normpath(folder.resolve() / base)) if base.startswith(".") else Path(base).expanduser()
        chain.append(_round_of(root, folder) or str(folder))
    return _broken(root, chain)


def _round_of(root: Path, student: Path) -> str | None:
    """The round of this rounds folder whose student folder `student` is, or None."""
    try:
        inside = student.resolve().relative_to(root.resolve()).parts
    except (ValueError, OSError):
        return None
    return inside[0] if len(inside) == 2 and ROUND.match(inside[0]) and inside[1] == "student" else None


def _broken(root: Path, chain: Sequence[str]) -> BrokenRoundError:
    """The error for `chain` (the round, then each round or outside folder it is built on) whose last folder is
    gone. The message names folders; `page` names rounds and students only."""
    first, missing = chain[0], chain[-1]

    def label(link: str) -> str:
        return link if ROUND.match(link) else f"the student {Path(link).name}"

    if not ROUND.match(missing):
        gone, page_gone = f"the student folder {missing}", f"{label(missing)}'s folder"
    elif (root / missing).is_dir():
        gone, page_gone = f"the student folder {missing}/student", f"{missing}'s student folder"
    else:
        gone, page_gone = f"the round folder {missing}", f"{missing}'s folder"
    if len(chain) == 1:
        problem = page = f"{first} cannot load: {page_gone} is missing"
    else:
        links = ", which is built on ".join(label(link) for link in chain[1:])
        built = (f"{first} cannot load: it is built on {links} (a round's LoRA adapter is trained on the student "
                 "before it and needs it)")
        problem, page = f"{built}, and {gone} is missing", f"{built}, and {page_gone} is missing"
    if ROUND.match(missing):
        fix = f"restore {missing}{'/student' if (root / missing).is_dir() else ''} into {root} (from a backup)"
        page_fix = f"restore {missing}'s folder in the rounds folder (from a backup)"
    else:
        fix = page_fix = "restore the student folder it was trained from"
    fix += f", or start a new chain from the base student: `python -m kard retrain --root {root} --from-base ...`"
    return BrokenRoundError(f"{problem}. Fix: {fix}", round=first, missing=missing, page=f"{page}. Fix: {page_fix}")


def check_round(root: str | Path, name: str) -> None:
    """Raise BrokenRoundError when round `name` cannot load (`round_problem`)."""
    problem = round_problem(root, name)
    if problem is not None:
        raise problem


def starting_student(root: str | Path) -> str | None:
    """The student the rounds' chain started from (round-000): the parent of the first round trained from a
    student outside the rounds folder, else the --student of the earliest round's job; None before round 1."""
    rounds = list_rounds(root)
    manifests = [read_manifest(root, name) for name in rounds]
    for manifest in manifests:
        parent = manifest.get("parent") or {}
        if parent.get("round") is None and parent.get("student"):
            return str(parent["student"])
    return str((manifests[0].get("spec") or {}).get("student") or "") or None if manifests else None


def read_manifest(root: str | Path, name: str) -> dict[str, Any]:
    path = Path(root) / name / MANIFEST_FILE
    if not path.is_file():
        raise DataError(f"round {name!r} has no manifest", path=path,
                        fix=f"pick one of {list_rounds(root)} (python -m kard rounds --root {root})")
    return read_json_object(path, fix=f"restore the round's manifest, or move {path.parent} out of {root}")


def current(root: str | Path) -> dict[str, Any] | None:
    """The pointer: {"round", "student", "reranker", "updated_at"} with absolute paths, or None before round 1."""
    path = Path(root) / CURRENT_FILE
    if not path.is_file():
        return None
    data = read_json_object(path, fix=_pointer_fix(Path(root)))
    base = Path(root)
    for key in ("student", "reranker"):
        if data.get(key) and not data.get(f"{key}_external"):
            data[key] = str(base / data[key])
    return data


def _pointer_fix(root: Path) -> str:
    """How to repair a damaged current.json: point it at the newest finished round, or drop it."""
    rounds = list_rounds(root)
    if not rounds:
        return f"delete {root / CURRENT_FILE} (no round has finished, so nothing is lost)"
    pointer = {"round": rounds[-1], "student": f"{rounds[-1]}/student", "reranker": None}
    return (f"write {json.dumps(pointer)} into it to serve the newest round (add its reranker if it has one), "
            "or delete it to start the next retrain from --student")


def set_current(root: Path, name: str, reranker: str | None, reranker_external: bool) -> None:
    """Point current.json at round `name` (atomic replace)."""
    write_json_atomic(root / CURRENT_FILE, {"round": name, "student": f"{name}/student", "reranker": reranker,
                                            "reranker_external": reranker_external, "updated_at": utc_now()})


def round_paths(root: str | Path, name: str | None = None) -> dict[str, str | None]:
    """Student and reranker paths of a round (None = the current one), for Pipeline.load."""
    root = Path(root)
    if name is None:
        pointer = current(root)
        if pointer is None:
            raise DataError("no round has finished yet", path=root,
                            fix="run `python -m kard retrain --root ...` first")
        return {"round": pointer["round"], "student": pointer["student"], "reranker": pointer.get("reranker")}
    manifest = read_manifest(root, name)
    reranker = manifest.get("reranker")
    if reranker and not manifest.get("reranker_external"):
        reranker = str(root / name / reranker) if not Path(reranker).is_absolute() else reranker
    return {"round": name, "student": str(root / name / "student"), "reranker": reranker}


def publish_round(root: Path, work: Path, manifest: Mapping[str, Any]) -> str:
    """Rename a job's work folder to its round and point current.json at it, together; returns the round."""
    name = manifest["round"]
    reranker = manifest.get("reranker")
    external = bool(manifest.get("reranker_external"))
    pointer_reranker = f"{name}/{reranker}" if reranker and not external else reranker
    if (root / name).exists():
        raise RetrainError(f"{root / name} appeared while the job trained, so the round cannot be published under that "
                           f"name. Fix: move {root / name} out of {root} and retrain (this job's work is kept in "
                           f"{root / FAILED_DIR})")
    with _uninterrupted():
        os.replace(work, root / name)
        set_current(root, name, pointer_reranker, external)
    return name


@contextlib.contextmanager
def _uninterrupted() -> Iterator[None]:
    """Hold SIGTERM (cancel) and SIGINT (Ctrl+C) off while the round is renamed and the pointer swapped (they go
    together)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


# ---------------------------------------------------------------- the lock


class RoundsLock:
    """An exclusive flock on ROOT/.lock for a job's whole life; the kernel frees it if the process dies."""

    def __init__(self, root: Path, job_id: str):
        self.root = root
        self.job_id = job_id
        self.fd: int | None = None

    def acquire(self) -> "RoundsLock":
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode("utf-8", "replace").strip()
            os.close(fd)
            raise _busy(self.root, holder) from None
        self.fd = fd
        self._name_holder(os.getpid())
        return self

    @classmethod
    def inherited(cls, root: Path, job_id: str, fd: int) -> RoundsLock:
        """The lock the starting process took and passed down as descriptor `fd` (`hand_over`): a background job
        holds its folder from the moment it is started, so a second start is refused at once."""
        try:
            ours = os.path.samestat(os.fstat(fd), os.stat(root / LOCK_FILE))
        except OSError:
            ours = False
        if not ours:
            raise RetrainError(f"file descriptor {fd} is not the lock of {root}. Fix: start the job with "
                               f"`python -m kard retrain --root {root} --background` (--lock-fd is internal)")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held through this descriptor already: a no-op
        except BlockingIOError:
            raise _busy(root, (root / LOCK_FILE).read_text("utf-8", "replace")) from None
        lock = cls(root, job_id)
        lock.fd = fd
        return lock

    def hand_over(self, pid: int) -> None:
        """Name process `pid` (which inherited the descriptor) as the holder and close this process's copy without
        unlocking: the lock is that process's now, and the kernel frees it when that process ends."""
        if self.fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                self._name_holder(pid)
        finally:
            os.close(self.fd)
            self.fd = None

    def _name_holder(self, pid: int) -> None:
        """Write who holds the folder into the lock file (a refused job's message names it)."""
        if self.fd is None:
            return
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps({"job_id": self.job_id, "pid": pid, "since": utc_now()}).encode(), 0)

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "RoundsLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _busy(root: Path, holder: str) -> RetrainBusyError:
    """Who holds the folder (the lock file's JSON) and how to get past it: on the command line its pid, the folder
    and the cancel command; on the app's page (`KardError.page`) the job and the Cancel button of its tab."""
    try:
        info = json.loads(holder)
        job, pid, since = f"job {info.get('job_id')}", f"pid {info.get('pid')}, ", f"since {info.get('since')}"
    except (json.JSONDecodeError, AttributeError):
        job, pid, since = "another job", "", ""
    detail = f" ({pid}{since})" if since else ""
    error = RetrainBusyError(f"{job}{detail} is already retraining over {root}. Fix: wait for it to finish, cancel "
                             f"it (python -m kard retrain --root {root} --cancel), or use another --root folder")
    started = f" ({since})" if since else ""
    error.page = (f"{job}{started} is already retraining these rounds. Fix: wait for it to finish (its progress "
                  "shows here), or stop it with the Cancel button beside Start retrain and start again")
    return error


def check_free(root: str | Path) -> None:
    """Raise RetrainBusyError when a job holds the rounds folder (takes the lock for an instant)."""
    RoundsLock(Path(root), "probe").acquire().release()


__all__ = ["CURRENT_FILE", "MANIFEST_FILE", "LOCK_FILE", "JOBS_DIR", "FAILED_DIR", "ROUND", "RetrainError",
           "RetrainBusyError", "BrokenRoundError", "utc_now", "write_json_atomic", "read_json_object", "round_name",
           "list_rounds", "next_round_number", "round_problem", "check_round", "starting_student", "read_manifest",
           "current", "set_current", "round_paths", "publish_round", "RoundsLock", "check_free"]

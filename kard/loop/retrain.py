"""Retrain rounds: teacher examples + curated corrections -> a new, versioned student checkpoint.

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
`current.json` (atomic replace). So a job that fails or is cancelled leaves the serving student and
the pointer exactly as they were, and its status says why.

`start_background(spec)` runs the job as `python -m kard retrain --spec FILE` in its own session:
it survives the browser page (and the app) closing, it never competes with the app's threads for
the GIL, and it is niced and limited to `spec.threads` torch threads. `run_job` is the same job in
this process (the CLI's foreground mode and the tests). `cancel(root, job_id)` asks it to stop.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from kard.config import DEFAULT_STUDENT, PROJECT_ROOT
from kard.errors import ConfigError, DataError, KardError

log = logging.getLogger(__name__)

CURRENT_FILE = "current.json"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = ".lock"
JOBS_DIR = "jobs"
FAILED_DIR = "failed"
ROUND = re.compile(r"^round-(\d{3,})$")
STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")


class RetrainError(KardError):
    """A retrain job cannot start or cannot finish."""


class RetrainBusyError(RetrainError):
    """Another job holds the rounds folder."""


class JobCancelled(RetrainError):
    """The job was asked to stop (cancel file or SIGTERM)."""


@dataclass(frozen=True)
class RetrainSpec:
    """Everything a retrain job needs; written as JSON for the background process.

    `student`: the student to fine-tune when the rounds folder has no current round yet (later rounds
    start from the current one, unless `from_base`). `examples`: the teacher/reference examples (JSONL
    from `python -m kard build-examples`); `db` (an annotation store, exported with `export`'s rule)
    and/or `corrections` (a `python -m kard export` folder or JSONL) give the corrections. Each
    correction is seen `correction_weight` times per epoch (oversampling) and replaces the teacher
    examples of its question. `training`: StudentTrainingConfig fields to override.
    """

    root: str
    student: str = DEFAULT_STUDENT
    examples: str | None = None
    db: str | None = None
    corrections: str | None = None
    correction_weight: int = 3  # a handful of corrections among thousands of teacher examples needs a push
    from_base: bool = False  # True: fine-tune `student` again instead of the current round's student
    knowledge_from: str = "store"  # export option: the curator's passages ("store") or KARD retrieval ("kb")
    kb: str | None = None  # knowledge base (saved index folder or passages file): reranker / knowledge_from=kb
    training: Mapping[str, Any] = field(default_factory=dict)
    reranker: bool = False  # also retrain the reranker, corrected rationales as the KARD queries
    reranker_from: str | None = None  # reranker to continue from when the current round has none
    reranker_steps: int = 50  # the corrections are few: a short top-up, not a full training
    threads: int = 1  # torch threads of the job: the app keeps the other cores
    nice: int = 10  # lower CPU priority than the app serving visitors
    note: str = ""

    def to_json(self) -> str:
        data = asdict(self)
        data["training"] = dict(self.training)
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "RetrainSpec":
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown retrain spec field(s) {unknown}. Fix: use only {sorted(known)}")
        return cls(**data)


@dataclass(frozen=True)
class JobStatus:
    """What a job reports as it goes (jobs/JOB.json); the app polls it."""

    job_id: str
    state: str  # queued | running | succeeded | failed | cancelled
    phase: str = "queued"  # queued, starting, data, student, reranker, saving, done
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    message: str = ""
    round: str | None = None
    pid: int | None = None
    started_at: str = ""
    updated_at: str = ""
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0


# ---------------------------------------------------------------- small file helpers


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_json(path: Path, data: Any) -> None:
    """Write atomically: readers see the old or the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError as error:
        return error.errno == errno.EPERM
    return True


def new_job_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


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


def read_manifest(root: str | Path, name: str) -> dict[str, Any]:
    path = Path(root) / name / MANIFEST_FILE
    if not path.is_file():
        raise DataError(f"round {name!r} has no manifest", path=path,
                        fix=f"pick one of {list_rounds(root)} (python -m kard rounds --root {root})")
    return json.loads(path.read_text(encoding="utf-8"))


def current(root: str | Path) -> dict[str, Any] | None:
    """The pointer: {"round", "student", "reranker", "updated_at"} with absolute paths, or None before round 1."""
    path = Path(root) / CURRENT_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    base = Path(root)
    for key in ("student", "reranker"):
        if data.get(key) and not data.get(f"{key}_external"):
            data[key] = str(base / data[key])
    return data


def _set_current(root: Path, name: str, reranker: str | None, reranker_external: bool) -> None:
    _write_json(root / CURRENT_FILE, {"round": name, "student": f"{name}/student", "reranker": reranker,
                                      "reranker_external": reranker_external, "updated_at": _now()})


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
            raise RetrainBusyError(_busy_message(self.root, holder)) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"job_id": self.job_id, "pid": os.getpid(), "since": _now()}).encode())
        self.fd = fd
        return self

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


def _busy_message(root: Path, holder: str) -> str:
    try:
        info = json.loads(holder)
        who = f"job {info.get('job_id')} (pid {info.get('pid')}, since {info.get('since')})"
    except (json.JSONDecodeError, AttributeError):
        who = "another job"
    return (f"{who} is already retraining over {root}. Fix: wait for it to finish, cancel it "
            f"(python -m kard retrain --root {root} --cancel), or use another --root folder")


def check_free(root: str | Path) -> None:
    """Raise RetrainBusyError when a job holds the rounds folder (takes the lock for an instant)."""
    RoundsLock(Path(root), "probe").acquire().release()


# ---------------------------------------------------------------- status and cancel


def status_path(root: str | Path, job_id: str) -> Path:
    return Path(root) / JOBS_DIR / f"{job_id}.json"


def read_status(root: str | Path, job_id: str) -> JobStatus:
    """A job's last reported status; a running job whose process is gone reads as failed."""
    path = status_path(root, job_id)
    if not path.is_file():
        raise DataError(f"no retrain job {job_id!r}", path=path, fix="list jobs with `python -m kard retrain --status`")
    data = json.loads(path.read_text(encoding="utf-8"))
    status = JobStatus(**{k: v for k, v in data.items() if k in {f.name for f in fields(JobStatus)}})
    if status.state in ("queued", "running") and status.pid and status.pid != os.getpid() and not _pid_alive(status.pid):
        return replace(status, state="failed", error=f"the job process {status.pid} exited without reporting "
                       f"(killed, or out of memory?). Fix: see {Path(root) / JOBS_DIR / (job_id + '.log')} and start it again")
    return status


def list_jobs(root: str | Path) -> list[JobStatus]:
    """Every job of the folder, newest first."""
    folder = Path(root) / JOBS_DIR
    if not folder.is_dir():
        return []
    ids = sorted((p.stem for p in folder.glob("*.json") if not p.name.startswith(".")), reverse=True)
    return [read_status(root, job_id) for job_id in ids]


def cancel(root: str | Path, job_id: str | None = None) -> JobStatus:
    """Ask a job (default: the newest unfinished one) to stop; it stops at its next step."""
    root = Path(root)
    if job_id is None:
        running = [s for s in list_jobs(root) if not s.finished]
        if not running:
            raise RetrainError(f"no retrain job is running over {root}. Fix: nothing to cancel")
        job_id = running[0].job_id
    status = read_status(root, job_id)
    if status.finished:
        return status
    (root / JOBS_DIR / f"{job_id}.cancel").write_text(_now(), encoding="utf-8")
    if status.pid and status.pid != os.getpid() and _pid_alive(status.pid):
        with contextlib.suppress(OSError):
            os.kill(status.pid, signal.SIGTERM)  # the job's handler turns it into JobCancelled
    return status


class Reporter:
    """Writes a job's status file; `check()` raises JobCancelled once a cancel was requested."""

    def __init__(self, root: Path, job_id: str, on_update: Callable[[JobStatus], None] | None = None):
        self.root = root
        self.status = JobStatus(job_id, "running", "starting", pid=os.getpid(), started_at=_now(), updated_at=_now())
        self.on_update = on_update
        self.cancel_file = root / JOBS_DIR / f"{job_id}.cancel"

    def update(self, **changes: Any) -> None:
        self.status = replace(self.status, updated_at=_now(), **changes)
        _write_json(status_path(self.root, self.status.job_id), asdict(self.status))
        if self.on_update is not None:
            self.on_update(self.status)

    def check(self) -> None:
        if self.cancel_file.exists():
            raise JobCancelled(f"job {self.status.job_id} was cancelled")

    def step(self, step: int, total: int, loss: float | None = None) -> None:
        self.update(step=step, total_steps=total, loss=self.status.loss if loss is None else loss,
                    message=f"{self.status.phase}: step {step}/{total}")
        self.check()


# ---------------------------------------------------------------- the job


def run_job(spec: RetrainSpec, job_id: str | None = None, *,
            on_update: Callable[[JobStatus], None] | None = None) -> JobStatus:
    """Run one retrain job here and now; never raises for a job failure (the status says why).

    Raises RetrainBusyError (before doing anything) when another job holds the folder.
    """
    root = Path(spec.root)
    job_id = job_id or new_job_id()
    lock = RoundsLock(root, job_id).acquire()
    reporter = Reporter(root, job_id, on_update)
    work = root / f".work-{job_id}"
    try:
        reporter.update(message="starting")
        reporter.check()
        name = _train_round(spec, work, reporter)
        reporter.update(state="succeeded", phase="done", round=name, message=f"finished {name}: it now serves")
    except JobCancelled as error:
        _keep_failed(root, work, job_id)
        reporter.update(state="cancelled", phase="done", error=str(error), message="cancelled; nothing changed")
    except Exception as error:  # noqa: BLE001 - a job reports every failure instead of dying silently
        log.error("retrain job %s failed:\n%s", job_id, traceback.format_exc())
        _keep_failed(root, work, job_id)
        why = str(error) if isinstance(error, KardError) else f"{type(error).__name__}: {error}"
        reporter.update(state="failed", phase="done", error=why,
                        message="failed; the current student keeps serving")
    finally:
        lock.release()
    return reporter.status


def _keep_failed(root: Path, work: Path, job_id: str) -> None:
    if work.exists():
        target = root / FAILED_DIR / job_id
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(work, target)


def _train_round(spec: RetrainSpec, work: Path, reporter: Reporter) -> str:
    from kard.distill import read_examples, write_examples
    from kard.loop.export import merge_examples

    root = Path(spec.root)
    pointer = current(root)
    parent = None if (pointer is None or spec.from_base) else pointer
    start_student = spec.student if parent is None else parent["student"]
    work.mkdir(parents=True)

    reporter.update(phase="data", message="collecting teacher examples and corrections")
    corrections, curated = _corrections(spec, work)
    base = read_examples(spec.examples) if spec.examples else []
    train = merge_examples(base, corrections, spec.correction_weight)
    corrected = {c.question_id for c in corrections}
    if not train:
        raise DataError("the round has no training examples",
                        fix="pass --examples (teacher examples) and/or --db / --corrections with accepted corrections")
    write_examples(train, work / "train.jsonl")
    reporter.check()

    reporter.update(phase="student", message=f"fine-tuning {start_student} on {len(train)} examples")
    training = _train_student(start_student, train, work / "student", spec, reporter)
    reporter.check()

    reranker_rel, reranker_external, reranker_info = None, False, None
    if spec.reranker:
        reporter.update(phase="reranker", step=0, message="retraining the reranker on the corrected rationales")
        source = (parent or {}).get("reranker") or spec.reranker_from
        reranker_info = _train_reranker(source, curated, spec, work / "reranker", reporter)
        reranker_rel = "reranker"
    elif parent and parent.get("reranker"):
        reranker_rel, reranker_external = parent["reranker"], True  # carried over unchanged

    reporter.update(phase="saving", message="writing the round")
    name = round_name(_next_number(root))
    manifest = {
        "round": name, "created_at": _now(), "job_id": reporter.status.job_id, "note": spec.note,
        "parent": {"round": parent["round"], "student": parent["student"]} if parent else {"round": None, "student": spec.student},
        "student": "student", "reranker": reranker_rel, "reranker_external": reranker_external,
        "data": {"examples_file": spec.examples, "base_examples": len(base), "corrections": len(corrections),
                 "correction_weight": spec.correction_weight, "train_examples": len(train),
                 "replaced_base_examples": sum(e.question_id in corrected for e in base),
                 "corrected_question_ids": sorted(corrected)},
        "training": training, "reranker_training": reranker_info, "spec": json.loads(spec.to_json()),
    }
    _write_json(work / MANIFEST_FILE, manifest)
    reporter.check()  # last chance to cancel: after this the round is published
    with _uninterrupted():
        os.replace(work, root / name)
        _set_current(root, name, f"{name}/reranker" if spec.reranker else reranker_rel, reranker_external)
    return name


@contextlib.contextmanager
def _uninterrupted():
    """Hold SIGTERM off while the round is renamed and the pointer swapped (they go together)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _next_number(root: Path) -> int:
    rounds = list_rounds(root)
    return (int(ROUND.match(rounds[-1]).group(1)) + 1) if rounds else 1  # type: ignore[union-attr]


def _corrections(spec: RetrainSpec, work: Path) -> tuple[list, list]:
    """(StudentExamples of the accepted corrections, their Revisions for the reranker)."""
    from kard.distill import read_examples
    from kard.loop.export import ExportConfig, export_corrections, read_corrections_dir

    examples, revisions = [], []
    if spec.db:
        from kard.annotations import AnnotationStore

        store = AnnotationStore(spec.db, read_only=True)
        knowledge = load_knowledge(spec.kb) if spec.knowledge_from == "kb" else None
        config = ExportConfig(knowledge_from=spec.knowledge_from)
        result = export_corrections(store, work / "corrections", config, knowledge=knowledge, allow_empty=True)
        examples += result.student_examples
        accepted = {c.item_id for c in result.examples}
        revisions += [r for r in store.latest() if r.item_id in accepted]
    if spec.corrections:
        examples += read_examples(read_corrections_dir(spec.corrections))
    first: dict[str, Any] = {}
    for example in examples:  # the same correction from --db and --corrections counts once
        first.setdefault(example.id, example)
    return list(first.values()), sorted(revisions, key=lambda r: r.item_id)


def load_knowledge(path: str | None):
    """A saved index folder or a passages file; ConfigError when none was given."""
    if not path:
        raise ConfigError("this needs a knowledge base. Fix: pass --kb (a folder from `python -m kard index` or a passages file)")
    from kard.knowledge import KnowledgeBase

    return KnowledgeBase.open(path)


def student_training_config(overrides: Mapping[str, Any]):
    from kard.config import StudentTrainingConfig

    known = {f.name for f in fields(StudentTrainingConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown training setting(s) {unknown}. Fix: use fields of StudentTrainingConfig: {sorted(known)}")
    return replace(StudentTrainingConfig(), **dict(overrides))


def _train_student(student: str, examples: Sequence, out: Path, spec: RetrainSpec, reporter: Reporter) -> dict[str, Any]:
    """Fine-tune through kard.training (transformers Trainer), reporting each step and honouring cancel."""
    from kard import training

    config = student_training_config(spec.training)
    callback = progress_callback(reporter)
    result = training.train_student(student, examples, out, config, callbacks=[callback], progress=False)
    shutil.rmtree(out / training.CHECKPOINTS, ignore_errors=True)  # a round is final: no resume state kept
    return _summary(result)


def _summary(result: Any) -> dict[str, Any]:
    if result is None:
        return {}
    if hasattr(result, "__dataclass_fields__"):
        data = asdict(result)
    elif isinstance(result, Mapping):
        data = dict(result)
    else:
        return {"result": str(result)}
    data.pop("output_dir", None)  # the job's work folder, renamed to round-NNN/student on success
    losses = data.pop("losses", None) or data.pop("loss_history", None)
    if losses:
        values = [x["loss"] if isinstance(x, Mapping) else x for x in losses]
        data.update(first_loss=values[0], last_loss=values[-1], logged_steps=len(values))
    return json.loads(json.dumps(data, default=str))


def progress_callback(reporter: Reporter):
    """A transformers TrainerCallback: step/total/loss into the status file, cancel checked every step."""
    from transformers import TrainerCallback

    class _Progress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
            if logs and "loss" in logs:
                reporter.update(loss=float(logs["loss"]))

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            reporter.step(state.global_step, state.max_steps)

    return _Progress()


def _train_reranker(source: str | None, revisions: Sequence, spec: RetrainSpec, out: Path,
                    reporter: Reporter) -> dict[str, Any]:
    from kard.config import DEFAULT_RERANKER_BACKBONE, RerankerTrainingConfig
    from kard.reranker.encoder import Reranker
    from kard.reranker.training import build_reranker_items, train_reranker

    if not revisions:
        raise DataError("retraining the reranker needs corrections from the annotation store",
                        fix="pass --db (the reranker reads each corrected question and rationale from it)")
    knowledge = load_knowledge(spec.kb)
    pairs = [(r.correction.to_question(), r.correction.rationale) for r in revisions]  # as asked: kind and options
    items = build_reranker_items(pairs, knowledge)
    reranker = Reranker.load(source or DEFAULT_RERANKER_BACKBONE)
    config = replace(RerankerTrainingConfig(), steps=spec.reranker_steps, save_steps=0,
                     batch_size=min(RerankerTrainingConfig.batch_size, len(items)))
    reporter.update(step=0, total_steps=config.steps)
    result = train_reranker(reranker, items, knowledge, out, config, progress=False)
    reporter.step(config.steps, config.steps, result.losses[-1] if result.losses else None)
    return {"from": source or DEFAULT_RERANKER_BACKBONE, "items": len(items), "steps": result.steps,
            "first_loss": result.losses[0] if result.losses else None,
            "last_loss": result.losses[-1] if result.losses else None, "seconds_per_step": result.seconds_per_step}


# ---------------------------------------------------------------- background process


@dataclass(frozen=True)
class BackgroundJob:
    root: Path
    job_id: str
    pid: int
    log_path: Path

    def status(self) -> JobStatus:
        return read_status(self.root, self.job_id)

    def cancel(self) -> JobStatus:
        return cancel(self.root, self.job_id)

    def wait(self, timeout_s: float = 600.0, poll_s: float = 0.5) -> JobStatus:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.status()
            if status.finished:
                return status
            time.sleep(poll_s)
        raise RetrainError(f"job {self.job_id} did not finish within {timeout_s:.0f} s. Fix: check {self.log_path}")


def start_background(spec: RetrainSpec, *, python: str | None = None) -> BackgroundJob:
    """Start `python -m kard retrain --spec FILE` detached; refuse at once if the folder is busy."""
    root = Path(spec.root)
    check_free(root)
    job_id = new_job_id()
    jobs = root / JOBS_DIR
    jobs.mkdir(parents=True, exist_ok=True)
    spec_file = jobs / f"{job_id}.spec"
    spec_file.write_text(spec.to_json(), encoding="utf-8")
    log_path = jobs / f"{job_id}.log"
    env = {**os.environ, "OMP_NUM_THREADS": str(spec.threads), "MKL_NUM_THREADS": str(spec.threads),
           "TOKENIZERS_PARALLELISM": "false"}
    project = str(PROJECT_ROOT)
    env["PYTHONPATH"] = project + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    command = [python or sys.executable, "-m", "kard", "retrain", "--spec", str(spec_file), "--job-id", job_id]
    with log_path.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, start_new_session=True, cwd=os.getcwd())
    _write_json(status_path(root, job_id), asdict(JobStatus(job_id, "queued", pid=process.pid, started_at=_now(),
                                                            updated_at=_now(), message="starting the job process")))
    _reap_later(process)
    return BackgroundJob(root, job_id, process.pid, log_path)


def _reap_later(process: subprocess.Popen) -> None:
    """Collect the child's exit status in a daemon thread, so a finished job leaves no zombie."""
    import threading

    threading.Thread(target=process.wait, daemon=True, name="kard-retrain-reaper").start()


def prepare_process(spec: RetrainSpec) -> None:
    """In the job process: lower priority, limit torch threads, turn SIGTERM into a cancel."""
    with contextlib.suppress(OSError):
        os.nice(spec.nice)
    with contextlib.suppress(ImportError):
        import torch

        torch.set_num_threads(max(1, spec.threads))

    def stop(signum: int, frame: Any) -> None:
        raise JobCancelled("the job was cancelled (SIGTERM)")

    signal.signal(signal.SIGTERM, stop)


__all__ = ["RetrainSpec", "JobStatus", "RetrainError", "RetrainBusyError", "JobCancelled", "run_job",
           "start_background", "BackgroundJob", "cancel", "read_status", "list_jobs", "current", "list_rounds",
           "read_manifest", "round_paths", "check_free", "RoundsLock", "load_knowledge"]

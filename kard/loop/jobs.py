"""The retrain job runner: a job's lifecycle, its status file, cancel, and the background process.

`run_job(spec)` runs one job in this process (the CLI's foreground mode and the tests): it takes the
rounds folder's lock, trains the round in `.work-JOB/` (`kard.loop.retrain.train_round`), and only
then renames that folder to the next `round-NNN` and swaps `current.json`; a failed or cancelled
job's folder goes to `failed/JOB/` and the serving round stays as it was (the folder's layout:
`kard.loop.round_folder`). Every step is written to `jobs/JOB.json` (`Reporter`), which the app polls.

`start_background(spec)` runs the job as `python -m kard retrain --spec FILE` in its own session,
handing it the folder's lock (a second job is refused from the first one's start): it survives
the browser page (and the app) closing, it never competes with the app's threads for the GIL, and
it is niced and limited to `spec.threads` torch threads. `cancel(root, job_id)` asks it to stop.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from kard.config import PROJECT_ROOT
from kard.errors import DataError, KardError
from kard.loop.retrain import PREPARING, RetrainSpec, planned_steps, train_round
from kard.loop.round_folder import (FAILED_DIR, JOBS_DIR, RetrainError, RoundsLock, publish_round,
                                    read_json_object, utc_now, write_json_atomic)

log = logging.getLogger(__name__)

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")


class JobCancelled(RetrainError):
    """The job was asked to stop (cancel file or SIGTERM)."""


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


def new_job_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError as error:
        return error.errno == errno.EPERM
    return True


# ---------------------------------------------------------------- status and cancel


def status_path(root: str | Path, job_id: str) -> Path:
    return Path(root) / JOBS_DIR / f"{job_id}.json"


def read_status(root: str | Path, job_id: str) -> JobStatus:
    """A job's last reported status; a running job whose process is gone reads as failed."""
    path = status_path(root, job_id)
    if not path.is_file():
        raise DataError(f"no retrain job {job_id!r}", path=path, fix="list jobs with `python -m kard retrain --status`")
    fix = f"delete it (it only records job {job_id}'s status; its output is in {path.with_suffix('.log').name})"
    data = read_json_object(path, fix=fix)
    missing = sorted({"job_id", "state"} - set(data))
    if missing:
        raise DataError(f"the job status lacks {', '.join(missing)}", path=path, fix=fix)
    status = JobStatus(**{k: v for k, v in data.items() if k in {f.name for f in fields(JobStatus)}})
    if status.state in ("queued", "running") and status.pid and status.pid != os.getpid() and not _pid_alive(status.pid):
        return _ended_unreported(Path(root), status)
    return status


def _ended_unreported(root: Path, status: JobStatus) -> JobStatus:
    """A job whose process ended without a last report: cancelled if it was asked to stop (SIGTERM can end a job
    still starting up, before it reports anything), else failed."""
    jobs = root / JOBS_DIR
    if (jobs / f"{status.job_id}.cancel").exists():
        return replace(status, state="cancelled", phase="done", error=f"job {status.job_id} was cancelled",
                       message="cancelled; nothing changed")
    log_file = jobs / f"{status.job_id}.log"
    where = f"see {log_file}" if log_file.is_file() else "see the output of the command that ran it"
    return replace(status, state="failed", error=f"the job process {status.pid} exited without reporting "
                   f"(killed, or out of memory?). Fix: {where} and start it again")


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
    (root / JOBS_DIR / f"{job_id}.cancel").write_text(utc_now(), encoding="utf-8")
    if status.pid and status.pid != os.getpid() and _pid_alive(status.pid):
        with contextlib.suppress(OSError):
            os.kill(status.pid, signal.SIGTERM)  # the job's handler turns it into JobCancelled
    return status


class Reporter:
    """Writes a job's status file; `check()` raises JobCancelled once a cancel was requested.

    It is the training step's `kard.loop.retrain.ProgressReporter`.
    """

    def __init__(self, root: Path, job_id: str, on_update: Callable[[JobStatus], None] | None = None):
        self.root = root
        self.status = JobStatus(job_id, "running", "starting", pid=os.getpid(), started_at=utc_now(), updated_at=utc_now())
        self.on_update = on_update
        self.cancel_file = root / JOBS_DIR / f"{job_id}.cancel"

    @property
    def job_id(self) -> str:
        return self.status.job_id

    def update(self, **changes: Any) -> None:
        self.status = replace(self.status, updated_at=utc_now(), **changes)
        write_json_atomic(status_path(self.root, self.status.job_id), asdict(self.status))
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
            on_update: Callable[[JobStatus], None] | None = None, lock_fd: int | None = None) -> JobStatus:
    """Run one retrain job here and now; never raises for a job failure (the status says why).

    Raises RetrainBusyError (before doing anything) when another job holds the folder. `lock_fd`: the folder's
    lock, taken by `start_background` and inherited. A KeyboardInterrupt (Ctrl+C) cancels the job as a cancel
    does, and is raised again once the status says so.
    """
    root = Path(spec.root)
    job_id = job_id or new_job_id()
    lock = RoundsLock.inherited(root, job_id, lock_fd) if lock_fd is not None else RoundsLock(root, job_id).acquire()
    reporter = Reporter(root, job_id, on_update)
    work = root / f".work-{job_id}"
    try:
        _remove_stale_work(root, job_id)
        reporter.update(message=f"{PREPARING}starting the job", total_steps=planned_steps(spec))
        reporter.check()
        manifest = train_round(spec, work, reporter)
        reporter.check()  # last chance to cancel: after this the round is published
        name = publish_round(root, work, manifest)
        reporter.update(state="succeeded", phase="done", round=name, message=f"finished {name}: it now serves")
    except (JobCancelled, KeyboardInterrupt) as error:
        _keep_failed(root, work, job_id)
        why = str(error) if isinstance(error, JobCancelled) else f"job {job_id} was interrupted (Ctrl+C)"
        reporter.update(state="cancelled", phase="done", error=why, message="cancelled; nothing changed")
        if isinstance(error, KeyboardInterrupt):
            raise
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
    """Move a failed or cancelled job's work folder to failed/JOB/, for diagnosis."""
    if work.exists():
        target = root / FAILED_DIR / job_id
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(work, target)


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
    """Start `python -m kard retrain --spec FILE` detached; refuse at once if the folder is busy.

    This process takes the folder's lock and hands it to the job process, which holds it from its start: a
    second job started meanwhile is refused here, not left to fail in its own process.
    """
    root = Path(spec.root)
    total = planned_steps(spec)  # shown from the start; also refuses unknown training settings before launching
    job_id = new_job_id()
    lock = RoundsLock(root, job_id).acquire()
    try:
        process, log_path = _spawn(spec, job_id, python, lock)
        lock.hand_over(process.pid)
    finally:
        lock.release()  # only when the process did not start: after hand_over the lock is the job's
    write_json_atomic(status_path(root, job_id), asdict(JobStatus(
        job_id, "queued", pid=process.pid, started_at=utc_now(), updated_at=utc_now(), total_steps=total,
        message=f"{PREPARING}starting the job process")))
    _reap_later(process)
    return BackgroundJob(root, job_id, process.pid, log_path)


def _spawn(spec: RetrainSpec, job_id: str, python: str | None, lock: RoundsLock) -> tuple[subprocess.Popen, Path]:
    """Start the job process (its spec in jobs/JOB.spec, its output in jobs/JOB.log), passing it the held lock's
    descriptor."""
    jobs = Path(spec.root) / JOBS_DIR
    jobs.mkdir(parents=True, exist_ok=True)
    spec_file = jobs / f"{job_id}.spec"
    spec_file.write_text(spec.to_json(), encoding="utf-8")
    log_path = jobs / f"{job_id}.log"
    command = [python or sys.executable, "-m", "kard", "retrain", "--spec", str(spec_file), "--job-id", job_id,
               "--lock-fd", str(lock.fd)]
    with log_path.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=_job_environment(spec), start_new_session=True, cwd=os.getcwd(),
                                   pass_fds=(lock.fd,))
    return process, log_path


def _job_environment(spec: RetrainSpec) -> dict[str, str]:
    """The job process's environment: `spec.threads` threads, and this project importable."""
    env = {**os.environ, "OMP_NUM_THREADS": str(spec.threads), "MKL_NUM_THREADS": str(spec.threads),
           "TOKENIZERS_PARALLELISM": "false"}
    project = str(PROJECT_ROOT)
    env["PYTHONPATH"] = project + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _reap_later(process: subprocess.Popen) -> None:
    """Collect the child's exit status in a daemon thread, so a finished job leaves no zombie."""
    threading.Thread(target=process.wait, daemon=True, name="kard-retrain-reaper").start()


def prepare_process(spec: RetrainSpec) -> None:
    """In the job process: lower priority, limit torch threads, turn SIGTERM into a cancel."""
    with contextlib.suppress(OSError):
        os.nice(spec.nice)
    with contextlib.suppress(ImportError):
        import torch

        torch.set_num_threads(max(1, spec.threads))

    cancel_on_sigterm()


def cancel_on_sigterm() -> Any:
    """Turn SIGTERM (what `cancel` sends the job's process) into JobCancelled: the job reports "cancelled", moves
    its work to failed/JOB/ and leaves the serving round as it was, instead of dying without a word. Returns the
    handler it replaced."""
    def stop(signum: int, frame: Any) -> None:
        raise JobCancelled("asked to stop (SIGTERM)")

    return signal.signal(signal.SIGTERM, stop)


def stale_work(root: str | Path, running: str | None = None) -> list[tuple[str, str]]:
    """(work folder, job id) of each `.work-JOB/` whose job is not running (killed with -9, or out of memory): it
    will never be published. `running`: the job that holds the folder now, whose work is not stale."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for work in sorted(root.glob(".work-*")):
        job_id = work.name.removeprefix(".work-")
        if job_id == running or not work.is_dir():
            continue
        with contextlib.suppress(KardError):
            if not read_status(root, job_id).finished and running is None:
                continue  # its process still runs (read_status reads a dead one as failed)
        found.append((work.name, job_id))
    return found


def _remove_stale_work(root: Path, job_id: str) -> None:
    """Remove what killed jobs left in `.work-*/` (called holding the lock: no other job is writing there)."""
    for name, stale in stale_work(root, running=job_id):
        shutil.rmtree(root / name, ignore_errors=True)
        log.warning("removed %s: job %s was killed before it finished, so its work could never be published", name,
                    stale)


__all__ = ["STATES", "FINISHED", "JobCancelled", "JobStatus", "new_job_id", "status_path", "read_status", "list_jobs",
           "cancel", "Reporter", "run_job", "cancel_on_sigterm", "stale_work", "BackgroundJob", "start_background",
           "prepare_process"]

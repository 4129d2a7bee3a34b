"""A `train-student --out` folder: whether it holds a run, the settings its run started with, starting afresh.

A new run into a folder that holds another run would mix the two: `pick-checkpoint` scores every checkpoint
there and `--resume` continues from the highest step, whichever run wrote it. So `train-student` refuses a
new run into such a folder unless told `--resume` (go on with it: its recorded settings must match) or
`--overwrite` (delete it first). The settings are recorded in `RUN_SETTINGS` when a run starts, before
its first checkpoint, so an interrupted run can be checked too. A finished run (its training record written
after the trained student) is not resumed: the Trainer would take one more step from its last checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kard.config import StudentTrainingConfig
from kard.distill import StudentExample
from kard.errors import ConfigError
from kard.model_source import ADAPTER_CONFIG
from kard.training import CHECKPOINTS, LOSSES_FILE, TRAINING_FILE, checkpoints_by_step

log = logging.getLogger(__name__)

RUN_SETTINGS = "kard_run_settings.json"
RUN_FILES = (TRAINING_FILE, LOSSES_FILE, ADAPTER_CONFIG, "config.json")  # the settings alone: stopped before a step
# How a run is carried out, not what it learns: these may change when it is resumed (a GPU run resumed on a
# CPU without bf16, more checkpoints kept, a skipped memory check).
RESUMABLE_CHANGES = frozenset({"gradient_checkpointing", "save_steps", "keep_checkpoints", "logging_steps",
                               "check_memory", "bf16"})


def run_contents(out: Path) -> list[str]:
    """What in `out` belongs to a training run (its checkpoints, its student or records); empty when none."""
    if not out.is_dir():
        return []
    found = [path.name for path in checkpoints_by_step(out / CHECKPOINTS)]
    return found + [name for name in RUN_FILES if (out / name).is_file()]


def check_new_run(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse a run that would mix with the run already in `out`, naming the three ways on."""
    if resume and overwrite:
        raise ConfigError("--resume goes on with the run in --out and --overwrite deletes it. Fix: pass one of them")
    held = run_contents(out)
    if held and not (resume or overwrite):
        raise ConfigError(f"--out {out} holds a run already ({_listed(held)}). Fix: pass --resume to go on with "
                          "it, choose another --out, or --overwrite to start afresh (its checkpoints and "
                          "trained student are deleted)")


def has_checkpoint(out: Path) -> bool:
    return bool(checkpoints_by_step(out / CHECKPOINTS))


def finished_steps(out: Path) -> int | None:
    """The optimizer steps of the run in `out` once it has finished (its training record, written after the
    trained student, says how many); None while it is unfinished or its record cannot be read."""
    record = out / TRAINING_FILE
    if not record.is_file():
        return None
    try:
        result = json.loads(record.read_text(encoding="utf-8")).get("result", {})
    except (OSError, ValueError, AttributeError):
        log.warning("%s cannot be read: the run is taken as unfinished", record)
        return None
    steps = result.get("steps") if isinstance(result, dict) else None
    return steps if isinstance(steps, int) and not isinstance(steps, bool) else None


def run_settings(student: str, examples: Sequence[StudentExample], config: StudentTrainingConfig) -> dict[str, Any]:
    """What a resumed run must share with the run it continues: the student, the examples and the recipe
    (the adapter's recorded base, `base_student`, is the student itself)."""
    recipe = {k: v for k, v in asdict(config).items() if k not in RESUMABLE_CHANGES | {"base_student"}}
    return {"student": student, "examples": examples_digest(examples), "config": recipe}


def examples_digest(examples: Sequence[StudentExample]) -> str:
    """A digest of the examples in order (the same file cut by another --limit differs)."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(json.dumps(example.to_dict(), sort_keys=True).encode("utf-8") + b"\n")
    return f"{len(examples)} examples, sha256 {digest.hexdigest()[:16]}"


def check_resumed_settings(out: Path, settings: dict[str, Any]) -> None:
    """Refuse to resume a run recorded with other settings (its checkpoints, or its finished student that a
    run from the start would replace); a run from before settings were recorded passes."""
    path = out / RUN_SETTINGS
    if not run_contents(out):
        return  # nothing to go on with: the run starts from the beginning
    if not path.is_file():
        log.info("%s records no settings (an older run): resuming without checking them", out)
        return
    changed = changed_settings(json.loads(path.read_text(encoding="utf-8")), settings)
    if changed:
        raise ConfigError(f"--out {out} holds a run with other settings (changed: {', '.join(changed)}; see "
                          f"{path.name}). Fix: pass the settings it was started with to --resume it, choose "
                          "another --out, or --overwrite to start afresh (its checkpoints and trained student "
                          "are deleted)")


def changed_settings(saved: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    """Names of the settings that differ (config fields by their own name); a new field's default matches."""
    changed = ["student"] if _student_key(saved.get("student")) != _student_key(settings.get("student")) else []
    changed += ["examples"] if saved.get("examples") != settings.get("examples") else []
    saved_config, config = saved.get("config", {}), settings.get("config", {})
    defaults = asdict(StudentTrainingConfig())
    return changed + sorted(k for k in saved_config.keys() | config.keys()
                            if saved_config.get(k, defaults.get(k)) != config.get(k, defaults.get(k)))


def _student_key(value: Any) -> Any:
    """A local folder by where it is, so `demo/student` and `./demo/student` are the same student."""
    if isinstance(value, str) and Path(value).expanduser().exists():
        return str(Path(value).expanduser().resolve())
    return value


def record_settings(out: Path, settings: dict[str, Any]) -> None:
    (out / RUN_SETTINGS).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")


def clear_run(out: Path) -> None:
    """Delete the run in `out` for `--overwrite`: its checkpoints and the files at its top level (the trained
    student, its tokenizer and records); other folders inside are left alone."""
    held = run_contents(out)
    if not held:
        return
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    for path in out.iterdir():
        if path.is_file() or path.is_symlink():
            path.unlink()
    log.warning("--overwrite: deleted the run in %s (%s)", out, _listed(held))


def _listed(names: list[str], shown: int = 4) -> str:
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")

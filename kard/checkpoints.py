"""Choosing a trained student's checkpoint by accuracy on a dev slice, not by training loss.

A `train-student` run folder holds the final student and the last checkpoints the Trainer kept
(`checkpoints/checkpoint-<step>`). `python -m kard pick-checkpoint` answers the same dev questions with
each (kard.evaluation, greedy) and copies the most accurate one's adapter where the user asks.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from kard.errors import ConfigError
from kard.metrics import Score
from kard.model_source import ADAPTER_CONFIG, adapter_base, adapter_folder, record_adapter_base
from kard.training import CHECKPOINTS, TRAINING_FILE, checkpoints_by_step

log = logging.getLogger(__name__)

FINAL = "final"
ADAPTER_FILES = (ADAPTER_CONFIG, "adapter_model.safetensors")
CHOICE_FILE = "checkpoint_choice.json"


@dataclass(frozen=True)
class CheckpointScore:
    """One candidate's accuracy on the dev slice."""

    name: str  # "checkpoint-<step>" or "final"
    path: Path
    score: Score


def run_candidates(run: Path) -> list[tuple[str, Path]]:
    """(name, adapter folder) of each kept checkpoint by step, then the final student: the order ties follow."""
    found = [(p.name, p) for p in checkpoints_by_step(run / CHECKPOINTS)]
    if adapter_folder(run) is not None:
        found.append((FINAL, run))
    _refuse_stale(run, found)
    unusable = [name for name, path in found if adapter_folder(path) is None]
    if unusable or not found:
        raise ConfigError(f"no LoRA adapters to choose from in {run} ({', '.join(unusable) or 'none found'}). "
                          "Fix: point --run at a `train-student --lora --keep-adapter` output folder")
    return found


def run_base(run: Path) -> str | None:
    """The base the run's final adapter records, which each of its checkpoints was trained on too (a checkpoint
    written before checkpoints recorded it names peft's plain folder, without an adapter the run continued);
    None while the run has no final adapter: each checkpoint's own record is the one there is."""
    return adapter_base(run) if adapter_folder(run) is not None else None


def _refuse_stale(run: Path, found: list[tuple[str, Path]]) -> None:
    """Refuse checkpoints past the finished run's last step: an earlier run into the same folder left them."""
    record = run / TRAINING_FILE
    if not record.is_file():
        return
    steps = json.loads(record.read_text(encoding="utf-8")).get("result", {}).get("steps")
    stale = [name for name, _ in found if name != FINAL and isinstance(steps, int)
             and int(name.rsplit("-", 1)[-1]) > steps]
    if stale:
        raise ConfigError(f"{', '.join(stale)} in {run} lie past its run's last step ({steps}): an earlier run into "
                          "that folder left them. Fix: delete them, or train again with --overwrite")


def best_checkpoint(scores: list[CheckpointScore]) -> CheckpointScore:
    """The most accurate; on a tie the later one (more training), so a flat slice keeps the final student."""
    if not scores:
        raise ConfigError("no checkpoint was scored. Fix: check --run")
    return max(reversed(scores), key=lambda s: s.score.accuracy)  # max keeps the first maximum: the latest


def adopt_checkpoint(chosen: CheckpointScore, run: Path, destination: Path) -> Path:
    """Copy the chosen adapter to `destination`, its base recorded as the run's (not a cache path)."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in ADAPTER_FILES:
        shutil.copy2(chosen.path / name, destination / name)
    record_adapter_base(destination, run_base(run) or adapter_base(chosen.path))
    log.info("copied %s (%.1f%% on the dev slice) to %s", chosen.name, 100 * chosen.score.accuracy, destination)
    return destination


def write_choice(scores: list[CheckpointScore], chosen: CheckpointScore, path: Path) -> None:
    rows = [{"name": s.name, "right": s.score.correct, "total": s.score.total, "accuracy": s.score.accuracy}
            for s in scores]
    path.write_text(json.dumps({"chosen": chosen.name, "scores": rows}, indent=2) + "\n", encoding="utf-8")

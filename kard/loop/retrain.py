"""The training step of one retrain round: teacher examples + curated corrections -> a new student.

`train_round(spec, work, reporter)` fills a job's work folder with the round: the exact training set
(`train.jsonl`), the corrections export it learned from, the fine-tuned `student/`, the retrained
`reranker/` when asked, and `manifest.json`. It reports progress and honours cancel through the
reporter it is given (`ProgressReporter`; the job runner's is `kard.loop.jobs.Reporter`) and never
publishes anything: the job runner (`kard.loop.jobs.run_job`) holds the lock and renames the folder
to the next round (`kard.loop.round_folder`, which also pictures the folder).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

from kard.config import DEFAULT_STUDENT
from kard.errors import ConfigError, DataError
from kard.loop.round_folder import (CURRENT_FILE, MANIFEST_FILE, RetrainError, check_round, current, list_rounds,
                                    next_round_number, round_name, utc_now, write_json_atomic)

APP_TRAINING: Mapping[str, Any] = {"lora": True, "merge_lora": False, "learning_rate": 2e-4}
"""How the app's Retrain, and `python -m kard retrain` by default, train: a LoRA adapter on the serving student,
saved unmerged (about 20 MB a round, where merged weights take over 500 MB), at the learning rate of the
closing-the-loop experiments (docs/closing_the_loop.md, section 5)."""

FULL_FINE_TUNE: Mapping[str, Any] = {"lora": False}
"""Full fine-tuning at StudentTrainingConfig's defaults (`python -m kard retrain --no-lora`): every weight trained
and saved, the whole model (over 500 MB a round for the shipped student)."""


def retrain_training(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A retrain's training settings: `overrides` over the app's (APP_TRAINING), or over StudentTrainingConfig's
    full fine-tuning defaults when `overrides` turns LoRA off (`lora: False`)."""
    base = FULL_FINE_TUNE if overrides.get("lora") is False else APP_TRAINING
    return {**base, **overrides}


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


PREPARING = "preparing: "
"""How a job's message starts before its first training step (loading the student, reading the examples,
exporting the corrections), so the app names that phase instead of showing a step count that has not moved."""


def planned_steps(spec: RetrainSpec, examples: int | None = None) -> int:
    """The student's optimizer steps: the spec's max_steps, or (given how many) its epochs over `examples`;
    0 while that is not known yet."""
    from kard.training import optimizer_steps

    config = student_training_config(spec.training)
    if config.max_steps > 0 or examples is not None:
        return optimizer_steps(config, examples or 0)
    return 0


KB_EXAMPLE = "demo/passages.jsonl, or a folder from python -m kard index"


def check_knowledge_base(kb: str | None, *, give: str = "pass --kb") -> None:
    """Refuse a reranker retrain whose knowledge base is not given or not there, before the student trains.

    `give` says how the caller supplies it: "pass --kb" on the command line, the form's field in the app.
    """
    if not kb:
        raise ConfigError(f"retraining the reranker needs a knowledge base. Fix: {give} a passages file or "
                          f"index folder (e.g. {KB_EXAMPLE})")
    if not Path(kb).expanduser().exists():
        raise ConfigError(f"knowledge base {kb} not found. Fix: {give} an existing passages file or index folder "
                          f"(e.g. {KB_EXAMPLE})")


def check_examples_file(examples: str | None, *, give: str = "pass --examples") -> None:
    """Refuse teacher examples that are not there, before a job starts (the job would fail reading them)."""
    if examples and not Path(examples).expanduser().is_file():
        what = "a folder, not a file" if Path(examples).expanduser().is_dir() else "not found"
        raise ConfigError(f"teacher examples {examples} {what}. Fix: {give} an existing JSONL file of teacher "
                          "examples (python -m kard build-examples writes one), or leave it out to train on the "
                          "corrections only")


def check_reranker_inputs(spec: RetrainSpec, *, give_kb: str = "pass --kb") -> None:
    """A reranker retrain needs the annotation store and a knowledge base: refuse it now, not after the student
    has trained (`train_round` checks again, for specs that came another way)."""
    if not spec.reranker:
        return
    if not spec.db:
        raise ConfigError("retraining the reranker needs the annotation store. Fix: pass --db (the reranker reads "
                          "each corrected question and rationale from it)")
    check_knowledge_base(spec.kb, give=give_kb)


def start_round(spec: RetrainSpec) -> dict[str, Any] | None:
    """The serving round (current.json) a retrain continues from, or None when it starts from `spec.student`.

    Refuses, before anything trains, a serving round whose folder is gone (current.json still names it) or that
    cannot load because a round it is built on is gone (`round_folder.BrokenRoundError`).
    """
    root = Path(spec.root)
    pointer = None if spec.from_base else current(root)
    if pointer is None:
        return None
    name = pointer["round"]
    if not (root / name).is_dir():
        others = list_rounds(root)
        error = RetrainError(
            f"{root / CURRENT_FILE} names {name} as the serving round, but {root / name} is missing, so a retrain "
            f"cannot continue from it. Fix: restore {name} into {root}; or start from the base student with "
            f"--from-base; or point {CURRENT_FILE} at a round that is there ({', '.join(others) or 'none'}), or delete "
            "it to start from --student")
        error.page = (f"The serving round {name} is missing from the rounds folder (its current.json still names it), "
                      f"so a retrain cannot continue from it. Fix: restore {name}'s folder, or point current.json in "
                      "the rounds folder at a round that is there (or delete it to start from the configured student)")
        raise error
    check_round(root, name)
    return pointer


def usable_corrections(spec: RetrainSpec) -> tuple[int, list[str]]:
    """(how many of the store's saved corrections the round would train on, why each other one is left out), by
    export's rule (`kard.loop.export.exclusion_reason`; with the reranker, passage marks count too); (0, [])
    without a store."""
    if not spec.db:
        return 0, []
    from kard.annotations import AnnotationStore
    from kard.loop.export import ExportConfig, exclusion_reason, marks_passages

    config = ExportConfig(knowledge_from=spec.knowledge_from)
    latest = AnnotationStore.existing(spec.db).latest()
    reasons = [(r.item_id, exclusion_reason(r, config)) for r in latest]
    marks = sum(marks_passages(r.correction) for r, (_, why) in zip(latest, reasons) if why) if spec.reranker else 0
    return sum(why is None for _, why in reasons) + marks, [f"{item}: {why}" for item, why in reasons if why]


def no_corrections_error(spec: RetrainSpec, excluded: Sequence[str]) -> DataError:
    """A retrain given a store or an export (not a control run) with no correction to learn from."""
    source = " and ".join(x for x in (spec.db and f"the store {spec.db}",
                                      spec.corrections and f"the export {spec.corrections}") if x)
    why = (f"all {len(excluded)} saved correction(s) are excluded ({'; '.join(excluded[:3])}"
           + (f"; {len(excluded) - 3} more" if len(excluded) > 3 else "") + ")") if excluded \
        else "it holds no saved correction"
    error = DataError(f"no usable correction in {source}: {why}, so the round would learn nothing from the curators",
                      fix="save or fix corrections in curator mode (docs/closing_the_loop.md gives the exclusion "
                          "rule; `python -m kard export` lists each exclusion); for a control run without "
                          "corrections, leave out --db and --corrections")
    error.page = (f"No usable correction to retrain on: {why}. Fix: save corrections (or fix the excluded ones) "
                  "in the Ask & correct tab, then start the retrain")
    return error


def check_corrections(spec: RetrainSpec) -> None:
    """Refuse, before a job starts, a retrain whose store has no usable correction (`no_corrections_error`); a
    run without --db and --corrections is a control run (the controlled experiment's) and is not refused."""
    if spec.db and not spec.corrections:
        usable, excluded = usable_corrections(spec)
        if not usable:
            raise no_corrections_error(spec, excluded)


class ProgressReporter(Protocol):
    """What the training step reports through: phase and step updates, and cancel checks (which raise)."""

    @property
    def job_id(self) -> str: ...

    def update(self, **changes: Any) -> None: ...

    def check(self) -> None: ...

    def step(self, step: int, total: int, loss: float | None = None) -> None: ...


# ---------------------------------------------------------------- one round


def train_round(spec: RetrainSpec, work: Path, reporter: ProgressReporter) -> dict[str, Any]:
    """Train one round into `work` and write its manifest there; returns the manifest (it names the round).

    Publishing the folder (rename to round-NNN, swap current.json) is the job runner's last step.
    """
    check_reranker_inputs(spec)  # before the student trains: a missing --kb would throw that training away
    root = Path(spec.root)
    parent = start_round(spec)
    start_student = spec.student if parent is None else parent["student"]
    work.mkdir(parents=True)

    base, corrections, curated, train = _training_set(spec, work, reporter)
    reporter.update(total_steps=planned_steps(spec, len(train)))
    reporter.check()

    training = _train_student(start_student, train, work / "student", spec, reporter)
    reporter.check()

    reranker_rel, reranker_external, reranker_info = _round_reranker(spec, parent, curated, work, reporter)

    reporter.update(phase="saving", message="writing the round")
    name = round_name(next_round_number(root))
    manifest = {
        "round": name, "created_at": utc_now(), "job_id": reporter.job_id, "note": spec.note,
        "parent": {"round": parent["round"], "student": parent["student"]} if parent else {"round": None, "student": spec.student},
        "student": "student", "reranker": reranker_rel, "reranker_external": reranker_external,
        "data": _data_summary(spec, base, corrections, train),
        "training": training, "reranker_training": reranker_info, "spec": json.loads(spec.to_json()),
    }
    write_json_atomic(work / MANIFEST_FILE, manifest)
    return manifest


def _training_set(spec: RetrainSpec, work: Path, reporter: ProgressReporter) -> tuple[list, list, list, list]:
    """(teacher examples, corrections, their revisions, the merged training set), written to train.jsonl."""
    from kard.distill import read_examples, write_examples
    from kard.loop.export import merge_examples

    reading = "exporting the saved corrections" if spec.db else "reading the corrections"
    reporter.update(phase="data", message=PREPARING + reading)
    corrections, curated, excluded = _corrections(spec, work)
    # a control run passes neither --db nor --corrections; passage marks alone still train the reranker
    if (spec.db or spec.corrections) and not corrections and not (spec.reranker and curated):
        raise no_corrections_error(spec, excluded)
    if spec.examples:
        reporter.update(message=f"{PREPARING}reading the teacher examples ({Path(spec.examples).name})")
    base = read_examples(spec.examples) if spec.examples else []
    train = merge_examples(base, corrections, spec.correction_weight)
    if not train:
        raise DataError("the round has no training examples",
                        fix="pass --examples (teacher examples) and/or --db / --corrections with accepted corrections")
    write_examples(train, work / "train.jsonl")
    return base, corrections, curated, train


def _data_summary(spec: RetrainSpec, base: Sequence, corrections: Sequence, train: Sequence) -> dict[str, Any]:
    """The manifest's "data": what the round learned from, and which teacher examples corrections replaced."""
    corrected = {c.question_id for c in corrections}
    return {"examples_file": spec.examples, "base_examples": len(base), "corrections": len(corrections),
            "correction_weight": spec.correction_weight, "train_examples": len(train),
            "replaced_base_examples": sum(e.question_id in corrected for e in base),
            "corrected_question_ids": sorted(corrected)}


def _round_reranker(spec: RetrainSpec, parent: Mapping[str, Any] | None, curated: Sequence, work: Path,
                    reporter: ProgressReporter) -> tuple[str | None, bool, dict[str, Any] | None]:
    """(the round's reranker path, whether it lies outside the round, its training summary)."""
    if spec.reranker:
        reporter.update(phase="reranker", step=0, message="retraining the reranker on the corrected rationales")
        source = (parent or {}).get("reranker") or spec.reranker_from
        return "reranker", False, _train_reranker(source, curated, spec, work / "reranker", reporter)
    if parent and parent.get("reranker"):
        return parent["reranker"], True, None  # carried over unchanged
    return None, False, None


def _corrections(spec: RetrainSpec, work: Path) -> tuple[list, list, list[str]]:
    """(StudentExamples of the accepted corrections, their Revisions for the reranker, why each other saved
    correction is excluded)."""
    from kard.distill import read_examples
    from kard.knowledge import KnowledgeBase
    from kard.loop.export import ExportConfig, export_corrections, marks_passages, read_corrections_dir

    examples, revisions, excluded = [], [], []
    if spec.db:
        from kard.annotations import AnnotationStore

        store = AnnotationStore.existing(spec.db)
        knowledge = KnowledgeBase.open(spec.kb) if spec.kb and spec.knowledge_from == "kb" else None
        config = ExportConfig(knowledge_from=spec.knowledge_from)
        latest = store.latest()  # read once: the student's examples and the reranker's revisions agree
        result = export_corrections(store, work / "corrections", config, knowledge=knowledge, allow_empty=True,
                                    latest=latest)
        examples += result.student_examples
        excluded += [f"{e.item_id}: {e.reason}" for e in result.excluded]
        accepted = {c.item_id for c in result.examples}
        revisions += [r for r in latest if r.item_id in accepted or marks_passages(r.correction)]
    if spec.corrections:
        examples += read_examples(read_corrections_dir(spec.corrections))
    first: dict[str, Any] = {}
    for example in examples:  # the same correction from --db and --corrections counts once
        first.setdefault(example.id, example)
    return list(first.values()), sorted(revisions, key=lambda r: r.item_id), excluded


def student_training_config(overrides: Mapping[str, Any]):
    from kard.config import StudentTrainingConfig

    known = {f.name for f in fields(StudentTrainingConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown training setting(s) {unknown}. Fix: use fields of StudentTrainingConfig: {sorted(known)}")
    defaults = StudentTrainingConfig()
    for setting in fields(StudentTrainingConfig):
        if setting.name in overrides:
            _check_setting_type(setting.name, overrides[setting.name], str(setting.type), getattr(defaults, setting.name))
    return replace(defaults, **dict(overrides))


_SETTING_TYPES: Mapping[str, tuple[tuple[type, ...], str]] = {
    "int": ((int,), "a whole number"), "float": ((int, float), "a number"), "bool": ((bool,), "true or false"),
    "str": ((str,), "a text in double quotes"),
}


def _check_setting_type(name: str, value: object, annotation: str, default: object) -> None:
    """Raise ConfigError naming the setting when `value` is not of the field's type (a bool is no number)."""
    accepted, words = _SETTING_TYPES.get(annotation, ((object,), ""))
    if isinstance(value, accepted) and (annotation == "bool" or not isinstance(value, bool)):
        return
    raise ConfigError(f"training setting {name}={value!r} is not {words}. Fix: give {name} {words} "
                      f"(its default is {json.dumps(default)}; e.g. --set {name}={json.dumps(default)})")


def _train_student(student: str, examples: Sequence, out: Path, spec: RetrainSpec, reporter: ProgressReporter) -> dict[str, Any]:
    """Fine-tune through kard.training (transformers Trainer), reporting each step and honouring cancel."""
    from kard import training
    from kard.student import Student

    config = student_training_config(spec.training)
    reporter.update(phase="student", message=f"{PREPARING}loading the student {_short(student)}")
    loaded = Student.load(student)
    reporter.check()
    reporter.update(message=f"{PREPARING}encoding {len(examples)} examples and setting up the training")
    callback = progress_callback(reporter)
    result = training.train_student(loaded, examples, out, config, callbacks=[callback], progress=False)
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


def progress_callback(reporter: ProgressReporter):
    """A transformers TrainerCallback: step/total/loss into the status file, cancel checked every step."""
    from transformers import TrainerCallback

    class _Progress(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            reporter.update(total_steps=state.max_steps, message=f"{PREPARING}running the first training step")
            reporter.check()

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
            if logs and "loss" in logs:
                reporter.update(loss=float(logs["loss"]))

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            reporter.step(state.global_step, state.max_steps)

    return _Progress()


def _short(path: str, keep: int = 2) -> str:
    """The last parts of a student's path or hub id, enough to tell which one."""
    parts = Path(path).parts
    return str(Path(*parts[-keep:])) if len(parts) > keep else path


def _train_reranker(source: str | None, revisions: Sequence, spec: RetrainSpec, out: Path,
                    reporter: ProgressReporter) -> dict[str, Any]:
    from kard.config import DEFAULT_RERANKER_BACKBONE, RerankerTrainingConfig
    from kard.knowledge import KnowledgeBase
    from kard.reranker.encoder import Reranker
    from kard.reranker.training import build_reranker_items, train_reranker

    if not revisions:
        raise DataError("retraining the reranker needs corrections from the annotation store",
                        fix="pass --db (the reranker reads each corrected question and rationale from it)")
    check_knowledge_base(spec.kb)
    knowledge = KnowledgeBase.open(spec.kb)
    pairs = [(r.correction.to_question(), r.correction.rationale) for r in revisions]  # as asked: kind and options
    marks = [r.correction.relevance for r in revisions]  # recalled corrections are not marked knowledge
    items = build_reranker_items(pairs, knowledge, marks=marks)
    reranker = Reranker.load(source or DEFAULT_RERANKER_BACKBONE)
    config = replace(RerankerTrainingConfig(), steps=spec.reranker_steps, save_steps=0,
                     batch_size=min(RerankerTrainingConfig.batch_size, len(items)))
    reporter.update(step=0, total_steps=config.steps)
    result = train_reranker(reranker, items, knowledge, out, config, progress=False)
    reporter.step(config.steps, config.steps, result.losses[-1] if result.losses else None)
    return {"from": source or DEFAULT_RERANKER_BACKBONE, "items": len(items), "steps": result.steps,
            "first_loss": result.losses[0] if result.losses else None,
            "last_loss": result.losses[-1] if result.losses else None, "seconds_per_step": result.seconds_per_step}


__all__ = ["APP_TRAINING", "FULL_FINE_TUNE", "KB_EXAMPLE", "PREPARING", "planned_steps", "RetrainSpec",
           "ProgressReporter", "train_round", "start_round", "check_examples_file", "usable_corrections",
           "check_corrections", "no_corrections_error", "retrain_training", "check_knowledge_base",
           "check_reranker_inputs", "student_training_config", "progress_callback"]

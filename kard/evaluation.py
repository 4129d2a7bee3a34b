"""Evaluating a student under the paper's conditions, resumably, one JSONL line per question.

Conditions (the rows of the paper's Table 1, each with the student trained for it):

| condition      | prompt                                     | passages                                         |
|----------------|--------------------------------------------|--------------------------------------------------|
| finetune       | question + options -> answer letter        | none                                             |
| reasoning      | question + options -> rationale + answer   | none (reasoning distillation)                    |
| kard-bm25      | question + options + knowledge -> ...      | BM25 top-k retrieved with the question           |
| kard-reranker  | same                                       | BM25 top-`candidates` with the question, reranked |
| oracle         | same                                       | BM25 top-k retrieved with the teacher's rationale |

Greedy decoding is deterministic, so an evaluation run twice gives the same records. A run that
stops part way resumes from its JSONL file: questions already there are not answered again. The
settings of a run (student, condition, retrieval and decoding) are kept beside it in
`<name>.settings.json`; resuming with other settings is refused, so one file never mixes two runs. The
student counts by a digest of its weights (kard.evaluation_student): one retrained in place is refused, the
same one copied elsewhere resumes. A settings file written before that names the student's absolute path:
it resumes, with a warning that the weights were not checked, only with the student loaded from that place.
An answer is right as `Prediction.is_correct` judges it (an open one: the same words up to case and punctuation).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping, Sequence, Sized

from kard.config import GenerationConfig, RetrievalConfig
from kard.errors import ConfigError, DataError
from kard.evaluation_student import digest as _digest, loaded_from, student_label, student_weights
from kard.metrics import Score
from kard.pipeline import Pipeline, Recalls, Reranks, Searches
from kard.prompts import same_answer
from kard.records import Prediction, Question

if TYPE_CHECKING:  # pragma: no cover
    from kard.student import Student

log = logging.getLogger(__name__)
STUDENT_WEIGHTS = "student_weights"  # the settings key of the student's digest; "student" is its label


@dataclass(frozen=True)
class Condition:
    name: str
    knowledge: str  # "none" | "bm25" | "reranker" | "oracle"
    answer_only: bool = False


CONDITIONS: Mapping[str, Condition] = {
    "finetune": Condition("finetune", "none", answer_only=True),
    "reasoning": Condition("reasoning", "none"),
    "kard-bm25": Condition("kard-bm25", "bm25"),
    "kard-reranker": Condition("kard-reranker", "reranker"),
    "oracle": Condition("oracle", "oracle"),
}


@dataclass(frozen=True)
class EvalRecord:
    """One question's result under one condition: what a per-question JSONL line holds."""

    question_id: str
    condition: str
    gold: str
    answer: str | None
    correct: bool
    rationale: str
    sample_answers: tuple[str | None, ...]
    votes: Mapping[str, int]
    passage_ids: tuple[str, ...]
    tokens_out: int
    seconds: float
    truncation: str | None = None
    answer_source: str = "parsed"  # "parsed" from the text, "stated" by the rationale's conclusion (an option's
    # text, where it differs from the letter written), "chosen" by the model's letter probabilities, "none"

    def to_json(self) -> str:
        data = asdict(self)
        data["sample_answers"] = list(self.sample_answers)
        data["passage_ids"] = list(self.passage_ids)
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> "EvalRecord":
        data = json.loads(line)
        data["sample_answers"] = tuple(data["sample_answers"])
        data["passage_ids"] = tuple(data["passage_ids"])
        return cls(**data)


@dataclass(frozen=True)
class EvalResult:
    condition: str
    score: Score
    records: tuple[EvalRecord, ...]


def get_condition(name: str) -> Condition:
    if name not in CONDITIONS:
        raise ConfigError(f"unknown condition {name!r}. Fix: use one of {', '.join(CONDITIONS)}")
    return CONDITIONS[name]


def condition_pipeline(student: "Student", condition: Condition, knowledge: Searches | None = None,
                       reranker: Reranks | None = None, retrieval: RetrievalConfig = RetrievalConfig(),
                       generation: GenerationConfig = GenerationConfig(), recall: Recalls | None = None) -> Pipeline:
    """The Pipeline that answers under `condition` (the one answering path, set up for a paper row);
    `recall` hands saved corrections back to the student (kard.recall)."""
    if condition.knowledge != "none" and knowledge is None:
        raise ConfigError(f"condition {condition.name!r} needs a knowledge base. Fix: pass --kb")
    if condition.knowledge == "reranker" and reranker is None:
        raise ConfigError("condition 'kard-reranker' needs a reranker. Fix: pass --reranker DIR")
    return Pipeline(None if condition.knowledge == "none" else knowledge, student,
                    reranker if condition.knowledge == "reranker" else None, retrieval, generation,
                    answer_only=condition.answer_only, recall=recall)


def oracle_queries(questions: Sequence[Question], condition: Condition, oracle: Mapping[str, str] | None
                   ) -> dict[str, str]:
    """The oracle row's BM25 queries (each question's teacher rationale); empty for other conditions."""
    if condition.knowledge != "oracle":
        return {}
    missing = [q.id for q in questions if not (oracle or {}).get(q.id)]
    if missing:
        raise DataError(f"question {missing[0]!r} has no teacher rationale for the oracle condition"
                        + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                        fix="pass --oracle-rationales FILE, or drop the oracle row")
    return {q.id: (oracle or {})[q.id] for q in questions}


def record_of(prediction: Prediction, condition: Condition) -> EvalRecord:
    """One question's evaluation record from the pipeline's prediction."""
    question = prediction.question
    samples = prediction.samples
    chosen = next((s for s in samples if s.answer == prediction.answer), samples[0]) if samples else None
    return EvalRecord(
        question_id=question.id, condition=condition.name, gold=question.answer or "", answer=prediction.answer,
        correct=bool(prediction.is_correct), rationale=prediction.rationale,
        sample_answers=tuple(s.answer for s in samples), votes=prediction.votes,
        passage_ids=tuple(h.passage.id for h in prediction.passages), tokens_out=prediction.tokens_out,
        seconds=round(prediction.timings.total_s, 3), truncation=prediction.truncation,
        answer_source=chosen.answer_source if chosen else "none",
    )


def judged(record: EvalRecord, question: Question) -> EvalRecord:
    """`record` with the verdict `Prediction.is_correct` gives (an open answer: the same words up to case and
    punctuation), for records written before open answers were judged that way."""
    correct = same_answer(record.answer, question.answer, question.kind)
    return record if record.correct == correct else replace(record, correct=correct)


def records_score(records: Sequence[EvalRecord]) -> Score:
    """The accuracy of `records` by their own verdicts (`correct`), so the score and each record agree."""
    return Score(total=len(records), correct=sum(r.correct for r in records),
                 unanswered=sum(r.answer is None for r in records))


def read_records(path: Path) -> dict[str, EvalRecord]:
    """Records already written to a results file, by question id (a torn last line is ignored)."""
    records: dict[str, EvalRecord] = {}
    if not path.is_file():
        return records
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = EvalRecord.from_json(line)
        except (json.JSONDecodeError, TypeError, KeyError):
            log.warning("%s line %d is not a complete result; it will be recomputed", path, number)
            continue
        records[record.question_id] = record
    return records


def evaluate(
    student: "Student",
    questions: Sequence[Question],
    condition: Condition | str,
    *,
    out: str | Path | None = None,
    knowledge: Searches | None = None,
    reranker: Reranks | None = None,
    retrieval: RetrievalConfig = RetrievalConfig(),
    generation: GenerationConfig = GenerationConfig(),
    oracle: Mapping[str, str] | None = None,
    progress: bool = True,
    batch_size: int = 16,
    recall: Recalls | None = None,
) -> EvalResult:
    """Answer every question under `condition`; with `out`, append each batch's results and resume from them.

    Greedy decoding runs `batch_size` questions per `generate` call (left padding); sampling runs one
    question at a time. A batch is written once answered, so a stop loses at most one batch. `recall`
    (kard.recall) hands a matching question's saved correction to the student in place of its passages.
    """
    condition = get_condition(condition) if isinstance(condition, str) else condition
    if not questions:
        raise DataError("no questions to evaluate", fix="check the dataset path, split and --limit")
    path = Path(out) if out is not None else None
    done = {} if path is None else _resume(
        path, condition, run_settings(student, condition, knowledge, reranker, retrieval, generation, recall, oracle),
        student)
    todo = [q for q in questions if q.id not in done]
    if done:
        log.info("resuming %s: %d of %d questions already done", condition.name, len(questions) - len(todo), len(questions))
    unlabelled = [q.id for q in todo if q.answer is None]
    if unlabelled:
        raise DataError(f"question {unlabelled[0]!r} has no gold answer", fix="evaluate on a labelled split")
    pipeline = condition_pipeline(student, condition, knowledge, reranker, retrieval, generation, recall)
    queries = oracle_queries(todo, condition, oracle)
    for batch in _progress(_batches(todo, batch_size), progress, condition.name, len(todo)):
        records = [record_of(p, condition) for p in pipeline.answer_many(batch, queries, batch_size=batch_size)]
        done.update((r.question_id, r) for r in records)
        if path is not None:
            with path.open("a", encoding="utf-8") as results:
                results.write("".join(r.to_json() + "\n" for r in records))
    records = tuple(judged(done[q.id], q) for q in questions)
    return EvalResult(condition.name, records_score(records), records)


def chosen_share(records: Sequence[EvalRecord]) -> float:
    """Share of records whose answer was chosen by letter probability, not read from the text."""
    return sum(r.answer_source == "chosen" for r in records) / len(records) if records else 0.0


def run_settings(student: "Student", condition: Condition, knowledge: Searches | None, reranker: Reranks | None,
                 retrieval: RetrievalConfig, generation: GenerationConfig,
                 recall: Recalls | None = None, oracle: Mapping[str, str] | None = None) -> dict[str, object]:
    """What decides a run's answers; two runs with equal settings may share a results file.

    Only what the condition uses counts: a reranker loaded for the paper's other rows does not make
    its kard-bm25 results differ from those of `evaluate` without one. The student's weights, the knowledge
    base, the reranker and the oracle's rationales are recorded by a digest of their content, so a file edited
    in place counts too; the student's label (kard.evaluation_student) only says which it was.
    """
    uses_knowledge = condition.knowledge != "none"
    settings: dict[str, object] = {
        "student": student_label(student),
        STUDENT_WEIGHTS: student_weights(student),
        "condition": condition.name,
        "knowledge_passages": len(knowledge) if isinstance(knowledge, Sized) and uses_knowledge else None,
        "reranker": getattr(reranker, "name", None) if condition.knowledge == "reranker" else None,
        "retrieval": asdict(retrieval),
        "generation": asdict(generation),
    }
    engine = getattr(student, "engine_name", "transformers")
    if engine != "transformers":  # absent = transformers, as in runs written before engines existed
        settings["engine"] = engine
    dtype = getattr(student, "dtype", "float32")
    if dtype != "float32":  # absent = float32, as in runs written before dtypes were recorded
        settings["dtype"] = dtype
    device = str(getattr(getattr(student, "model", None), "device", "cpu"))
    if device != "cpu":  # absent = cpu, as in runs written before devices were recorded (a GPU's sums differ)
        settings["device"] = device
    if recall is not None:  # absent = no recall, as in runs written before it existed
        settings["recalled_corrections"] = len(recall) if isinstance(recall, Sized) else type(recall).__name__
    if uses_knowledge and hasattr(knowledge, "passages"):
        settings["knowledge"] = knowledge_fingerprint(knowledge)
    if condition.knowledge == "reranker" and reranker is not None:
        settings["reranker_model"] = reranker_fingerprint(reranker)
    if condition.knowledge == "oracle":
        settings["oracle_rationales"] = _digest(sorted((oracle or {}).items()))
    return settings


def knowledge_fingerprint(knowledge: object) -> dict[str, object]:
    """The passages (a digest of their ids, titles and texts) and the BM25 settings they are searched with."""
    config = getattr(knowledge, "config", None)
    passages = [(p.id, p.title, p.text) for p in getattr(knowledge, "passages", ())]
    return {"passages_sha256": _digest(passages), "backend": getattr(knowledge, "backend", None),
            "k1": getattr(config, "k1", None), "b": getattr(config, "b", None)}


def reranker_fingerprint(reranker: object) -> str:
    """A digest of what a reranker scores with besides its weights' folder name: its blend, backbone and training."""
    parts = {name: getattr(reranker, name, None) for name in ("kind", "backbone", "trained", "training_info")}
    for name in ("a", "b"):  # a dense reranker's blend weights
        value = getattr(reranker, name, None)
        parts[name] = float(value.item() if hasattr(value, "item") else value) if value is not None else None
    return _digest(parts)


def results_file(path: Path) -> Path:
    """A results file `evaluate` wrote: `path` itself, or the one *.jsonl in a `kard evaluate --out` folder."""
    if not path.is_dir():
        return path
    found = sorted(path.glob("*.jsonl"))
    if len(found) != 1:
        raise DataError(f"{path} holds {len(found)} results files (*.jsonl), not one", fix="name the file")
    return found[0]


def settings_path(results: Path) -> Path:
    return results.with_name(results.stem + ".settings.json")


def _resume(path: Path, condition: Condition, settings: Mapping[str, object],
            student: object = None) -> dict[str, EvalRecord]:
    _make_room(path, condition)
    records = read_records(path)
    other = {r.condition for r in records.values()} - {condition.name}
    if other:
        raise ConfigError(f"{path} holds results of condition {sorted(other)}, not {condition.name!r}. "
                          "Fix: use a separate --out file per condition")
    check_settings(path, settings, resuming=bool(records), student=student)
    _rewrite_clean(path, records.values())
    return records


def _make_room(path: Path, condition: Condition) -> None:
    """The folder of the results file made; a folder in the file's place, or a file in the folder's, refused."""
    if path.is_dir():
        raise ConfigError(f"{path} is a folder, but evaluate writes its results to one file. Fix: pass a file "
                          f"path for out, such as {path / (condition.name + '.jsonl')}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as error:
        raise ConfigError(f"cannot make the folder {path.parent} for the results file {path.name}: a file is in "
                          "the way. Fix: pass an out path whose folders are folders") from error


def check_settings(path: Path, settings: Mapping[str, object], resuming: bool, student: object = None) -> None:
    """Refuse to append to results written with other settings; record the settings of a new run.

    `path` is a results file or folder; its settings are kept beside it in `<name>.settings.json`
    (benchmarks/loop_experiment.py checks its --out folders with this too). With the same weights digest,
    the student's label may differ (the folder copied or moved). `student`: see `_without_weights`."""
    saved_path = settings_path(path)
    if resuming and saved_path.is_file():
        saved = json.loads(saved_path.read_text(encoding="utf-8"))
        saved = _without_weights(saved, settings, student, path) if student is not None else saved
        changed = changed_settings(saved, settings)
        if changed:
            raise ConfigError(f"{path} was written with other settings (changed: {', '.join(changed)}; "
                              f"see {saved_path.name}){_student_change(saved, settings)}. Fix: use a new --out "
                              f"folder, or delete {path.name} to start that run over")
    saved_path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")


def changed_settings(saved: Mapping[str, object], settings: Mapping[str, object]) -> list[str]:
    """The keys whose values differ; the student's label only where its weights' digests differ or are missing."""
    weights = saved.get(STUDENT_WEIGHTS)
    labels = {"student"} if weights is not None and weights == settings.get(STUDENT_WEIGHTS) else set()
    return sorted(key for key in (settings.keys() | saved.keys()) - labels if settings.get(key) != saved.get(key))


def _without_weights(saved: dict[str, object], settings: Mapping[str, object], student: object,
                     path: Path) -> dict[str, object]:
    """Saved settings as they compare, for a file written before students were recorded by their weights.

    Such a file names where the student was loaded from (an absolute path, a path as given, or a hub id). The
    same place resumes, with a warning that the weights behind the answers already there were not checked,
    and the file then records this student's digest; another place is refused as another student."""
    if STUDENT_WEIGHTS in saved or STUDENT_WEIGHTS not in settings or not loaded_from(saved.get("student"), student):
        return saved
    log.warning("%s was written before student weights were recorded: resuming with the student loaded from the "
                "same place (%s) without checking that its weights gave the answers already there. Fix: if it "
                "was retrained since, delete %s (or use another --out) to start over", path, settings["student"],
                path.name)
    return {**saved, "student": settings["student"], STUDENT_WEIGHTS: settings[STUDENT_WEIGHTS]}


def _student_change(saved: Mapping[str, object], settings: Mapping[str, object]) -> str:
    if saved.get(STUDENT_WEIGHTS) == settings.get(STUDENT_WEIGHTS):
        return ""
    if STUDENT_WEIGHTS not in saved:
        return (f": it was written before student weights were recorded, by the student at {saved.get('student')}, "
                "not this one")
    return (f": its answers came from student {saved.get('student')} with weights {saved[STUDENT_WEIGHTS]}, "
            f"this student {settings.get('student')} has weights {settings.get(STUDENT_WEIGHTS)}")


def _rewrite_clean(path: Path, records: Iterable[EvalRecord]) -> None:
    """Drop a torn last line left by an interrupted run, so appends start on a fresh line."""
    if path.is_file():
        path.write_text("".join(r.to_json() + "\n" for r in records), encoding="utf-8")


def _batches(questions: Sequence[Question], size: int) -> list[Sequence[Question]]:
    if size < 1:
        raise ConfigError(f"batch size must be at least 1, got {size}. Fix: pass --batch-size 1 or more")
    return [questions[start : start + size] for start in range(0, len(questions), size)]


def _progress(batches: list[Sequence[Question]], show: bool, name: str, total: int) -> Iterator[Sequence[Question]]:
    if not show:
        yield from batches
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=f"evaluate {name}", unit="question") as bar:
        for batch in batches:
            yield batch
            bar.update(len(batch))

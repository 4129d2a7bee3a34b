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
`<name>.settings.json`; resuming with other settings is refused, so one file never mixes two runs.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Protocol, Sequence, Sized

from kard.config import GenerationConfig, RetrievalConfig
from kard.errors import ConfigError, DataError
from kard.metrics import Score, majority_vote, score
from kard.prompts import answer_only_input, student_input
from kard.records import Hit, Question

if TYPE_CHECKING:  # pragma: no cover
    from kard.student import Student

log = logging.getLogger(__name__)

FINETUNE_NEW_TOKENS = 8
"""The fine-tuning baseline writes only the answer letter."""


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


class Searches(Protocol):
    def search(self, query: str, k: int) -> list[Hit]: ...


class Reranks(Protocol):
    name: str

    def rerank(self, question: Question | str, hits: Sequence[Hit], k: int | None = None) -> list[Hit]: ...


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


def select_passages(
    question: Question,
    condition: Condition,
    knowledge: Searches | None,
    reranker: Reranks | None,
    retrieval: RetrievalConfig,
    oracle_rationale: str | None = None,
) -> list[Hit]:
    """The passages the student reads for `question` under `condition`."""
    if condition.knowledge == "none":
        return []
    if knowledge is None:
        raise ConfigError(f"condition {condition.name!r} needs a knowledge base. Fix: pass --kb")
    if condition.knowledge == "oracle":
        if not oracle_rationale:
            raise DataError(
                f"question {question.id!r} has no teacher rationale for the oracle condition",
                fix="pass --oracle-rationales FILE, or drop the oracle row",
            )
        return knowledge.search(oracle_rationale, retrieval.top_k)
    if condition.knowledge == "reranker":
        if reranker is None:
            raise ConfigError("condition 'kard-reranker' needs a reranker. Fix: pass --reranker DIR")
        candidates = knowledge.search(question.text, retrieval.candidates)
        return list(reranker.rerank(question, candidates, k=retrieval.top_k))
    return knowledge.search(question.text, retrieval.top_k)


def build_prompt(student: "Student", question: Question, condition: Condition, hits: Sequence[Hit],
                 generation: GenerationConfig) -> tuple[str, tuple[Hit, ...], str | None]:
    """(prompt, passages as read, truncation note) — knowledge prompts are fitted to the input budget."""
    from kard.pipeline import fit_prompt, input_budget

    if condition.answer_only:
        return answer_only_input(question), (), None
    if condition.knowledge == "none":
        return student_input(question, (), with_knowledge=False), (), None
    fitted = fit_prompt(question, hits, student.count_tokens, student.text_ids, student.decode,
                        input_budget(student, generation))
    return fitted.prompt, fitted.passages, fitted.truncation


def evaluate_question(
    student: "Student",
    question: Question,
    condition: Condition,
    *,
    knowledge: Searches | None = None,
    reranker: Reranks | None = None,
    retrieval: RetrievalConfig = RetrievalConfig(),
    generation: GenerationConfig = GenerationConfig(),
    oracle_rationale: str | None = None,
) -> EvalRecord:
    if question.answer is None:
        raise DataError(f"question {question.id!r} has no gold answer", fix="evaluate on a labelled split")
    started = time.perf_counter()
    hits = select_passages(question, condition, knowledge, reranker, retrieval, oracle_rationale)
    prompt, used, truncation = build_prompt(student, question, condition, hits, generation)
    if condition.answer_only:
        generation = replace(generation, max_new_tokens=FINETUNE_NEW_TOKENS)
    samples = student.generate(prompt, generation, letters=question.letters)
    answer, votes = majority_vote([s.answer for s in samples])
    chosen = next((s for s in samples if s.answer == answer), samples[0])
    return EvalRecord(
        question_id=question.id, condition=condition.name, gold=question.answer, answer=answer,
        correct=answer == question.answer, rationale=chosen.rationale,
        sample_answers=tuple(s.answer for s in samples), votes=votes,
        passage_ids=tuple(h.passage.id for h in used), tokens_out=sum(s.tokens_out for s in samples),
        seconds=round(time.perf_counter() - started, 3), truncation=truncation,
    )


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
) -> EvalResult:
    """Answer every question under `condition`; with `out`, append each result and resume from it."""
    condition = get_condition(condition) if isinstance(condition, str) else condition
    if not questions:
        raise DataError("no questions to evaluate", fix="check the dataset path, split and --limit")
    path = Path(out) if out is not None else None
    done = {} if path is None else _resume(
        path, condition, run_settings(student, condition, knowledge, reranker, retrieval, generation))
    todo = [q for q in questions if q.id not in done]
    if done:
        log.info("resuming %s: %d of %d questions already done", condition.name, len(questions) - len(todo), len(questions))
    for question in _progress(todo, progress, condition.name):
        record = evaluate_question(
            student, question, condition, knowledge=knowledge, reranker=reranker, retrieval=retrieval,
            generation=generation, oracle_rationale=(oracle or {}).get(question.id),
        )
        done[question.id] = record
        if path is not None:
            with path.open("a", encoding="utf-8") as results:
                results.write(record.to_json() + "\n")
    records = tuple(done[q.id] for q in questions)
    return EvalResult(condition.name, score([r.answer for r in records], [r.gold for r in records]), records)


def run_settings(student: "Student", condition: Condition, knowledge: Searches | None, reranker: Reranks | None,
                 retrieval: RetrievalConfig, generation: GenerationConfig) -> dict[str, object]:
    """What decides a run's answers; two runs with equal settings may share a results file.

    Only what the condition uses counts: a reranker loaded for the paper's other rows does not make
    its kard-bm25 results differ from those of `evaluate` without one.
    """
    return {
        "student": getattr(student, "location", None) or getattr(student, "name", type(student).__name__),
        "condition": condition.name,
        "knowledge_passages": len(knowledge) if isinstance(knowledge, Sized) and condition.knowledge != "none" else None,
        "reranker": getattr(reranker, "name", None) if condition.knowledge == "reranker" else None,
        "retrieval": asdict(retrieval),
        "generation": asdict(generation),
    }


def settings_path(results: Path) -> Path:
    return results.with_name(results.stem + ".settings.json")


def _resume(path: Path, condition: Condition, settings: Mapping[str, object]) -> dict[str, EvalRecord]:
    path.parent.mkdir(parents=True, exist_ok=True)
    records = read_records(path)
    other = {r.condition for r in records.values()} - {condition.name}
    if other:
        raise ConfigError(f"{path} holds results of condition {sorted(other)}, not {condition.name!r}. "
                          "Fix: use a separate --out file per condition")
    _check_settings(path, settings, resuming=bool(records))
    _rewrite_clean(path, records.values())
    return records


def _check_settings(path: Path, settings: Mapping[str, object], resuming: bool) -> None:
    """Refuse to append to results written with other settings; record the settings of a new run."""
    saved_path = settings_path(path)
    if resuming and saved_path.is_file():
        saved = json.loads(saved_path.read_text(encoding="utf-8"))
        changed = sorted(key for key in settings.keys() | saved.keys() if settings.get(key) != saved.get(key))
        if changed:
            raise ConfigError(f"{path} was written with other settings (changed: {', '.join(changed)}; "
                              f"see {saved_path.name}). Fix: use a new --out folder, or delete {path.name} "
                              "to start that run over")
    saved_path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")


def _rewrite_clean(path: Path, records: Iterable[EvalRecord]) -> None:
    """Drop a torn last line left by an interrupted run, so appends start on a fresh line."""
    if path.is_file():
        path.write_text("".join(r.to_json() + "\n" for r in records), encoding="utf-8")


def _progress(items: Sequence[Question], show: bool, name: str) -> Iterable[Question]:
    if not show:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=f"evaluate {name}", unit="question")

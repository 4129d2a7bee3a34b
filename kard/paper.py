"""The paper's comparison as a table and a plot: one row per condition, greedy and self-consistency.

`run_rows` evaluates each condition that has a student; `markdown_table` and `plot_rows` render the
results with the paper's Flan-T5-base figures beside them for context (they are not comparable
one to one: other students, other data sizes).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from kard.config import GenerationConfig, RetrievalConfig
from kard.evaluation import CONDITIONS, EvalRecord, EvalResult, Reranks, Searches, chosen_share, evaluate, records_score
from kard.metrics import compare_paired
from kard.prompts import same_answer
from kard.records import Question

if TYPE_CHECKING:  # pragma: no cover
    from kard.student import Student

log = logging.getLogger(__name__)

PAPER_FLAN_T5_BASE: Mapping[str, Mapping[str, float]] = {
    # Kang et al. 2023, Flan-T5-base (250M) student; accuracy in %.
    "medqa": {"kard-reranker": 38.15, "finetune": 30.71},
    "strategyqa": {"kard-reranker": 56.57},
    "openbookqa": {"kard-reranker": 59.33},
}
ROW_ORDER = ("finetune", "reasoning", "kard-bm25", "kard-reranker", "oracle")


@dataclass(frozen=True)
class Row:
    condition: str
    decoding: str  # "greedy" or "sc-N"
    result: EvalResult


def run_rows(
    students: Mapping[str, "Student"],
    questions: Sequence[Question],
    out_dir: Path,
    *,
    knowledge: Searches | None,
    reranker: Reranks | None,
    retrieval: RetrievalConfig,
    generation: GenerationConfig,
    samples: int = 1,
    oracle: Mapping[str, str] | None = None,
    progress: bool = True,
    batch_size: int = 16,
) -> list[Row]:
    """Evaluate every condition that has a student (students keyed by condition name).

    Conditions without what they need (no reranker, no oracle rationales) are skipped with a log line.
    """
    rows: list[Row] = []
    decodings = [("greedy", replace(generation, samples=1))]
    if samples > 1:
        decodings.append((f"sc-{samples}", replace(generation, samples=samples)))
    for name in ROW_ORDER:
        student = students.get(name)
        reason = _missing(name, student, reranker, oracle)
        if reason:
            log.info("skipping %s: %s", name, reason)
            continue
        for decoding, config in decodings:
            if name == "finetune" and decoding != "greedy":
                continue  # a single answer letter: sampling adds nothing to compare
            result = evaluate(student, questions, CONDITIONS[name], out=out_dir / f"{name}-{decoding}.jsonl",
                              knowledge=knowledge, reranker=reranker, retrieval=retrieval, generation=config,
                              oracle=oracle, progress=progress, batch_size=batch_size)
            rows.append(Row(name, decoding, result))
            log.info("%s (%s): %.1f%%", name, decoding, 100 * result.score.accuracy)
    return rows


def teacher_row(questions: Sequence[Question], answers: Mapping[str, str | None], label: str = "recorded") -> Row:
    """The teacher's own accuracy on the same questions, from its recorded rationales (no generation).

    A question the teacher has no rationale for counts as unanswered, as for the students.
    """
    records = tuple(_recorded(q, answers.get(q.id)) for q in questions)
    return Row("teacher", label, EvalResult("teacher", records_score(records), records))


def _recorded(question: Question, answer: str | None) -> EvalRecord:
    return EvalRecord(question_id=question.id, condition="teacher", gold=question.answer or "", answer=answer,
                      correct=same_answer(answer, question.answer, question.kind), rationale="",
                      sample_answers=(answer,), votes={}, passage_ids=(), tokens_out=0, seconds=0.0)


def _missing(name: str, student: object, reranker: object, oracle: Mapping[str, str] | None) -> str | None:
    if student is None:
        return "no student given for it"
    if name == "kard-reranker" and reranker is None:
        return "no reranker given"
    if name == "oracle" and not oracle:
        return "no teacher rationales for the test questions"
    return None


def markdown_table(rows: Sequence[Row], dataset: str, note: str = "") -> str:
    """The rows with 95% Wilson intervals, then paired tests of KARD against each other row."""
    paper = PAPER_FLAN_T5_BASE.get(dataset, {})
    lines = [
        "| condition | decoding | questions | accuracy % | 95% CI | unanswered % | chosen by letter prob. % "
        "| paper, Flan-T5-base % |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        score = row.result.score
        low, high = score.interval
        reference = f"{paper[row.condition]:.2f}" if row.condition in paper and row.decoding == "greedy" else ""
        lines.append(f"| {row.condition} | {row.decoding} | {score.total} | {100 * score.accuracy:.1f} | "
                     f"{100 * low:.0f}-{100 * high:.0f} | {100 * score.unanswered_share:.1f} | "
                     f"{100 * chosen_share(row.result.records):.1f} | {reference} |")
    comparisons = paired_lines(rows)
    if comparisons:
        lines += ["", "Paired on the same questions (exact McNemar test; p >= 0.05 means the difference "
                      "may be chance at this size):", ""] + comparisons
    return "\n".join(lines) + ("\n\n" + note if note else "") + "\n"


def paired_lines(rows: Sequence[Row], reference: str = "kard-bm25") -> list[str]:
    """One line per other greedy row: questions only KARD got right, only the other did, and p."""
    greedy = {row.condition: row for row in rows if row.decoding == "greedy"}
    if reference not in greedy:
        return []
    kard = {r.question_id: r.correct for r in greedy[reference].result.records}
    lines = []
    for name, row in greedy.items():
        if name == reference:
            continue
        paired = compare_paired(kard, {r.question_id: r.correct for r in row.result.records})
        lines.append(f"- {reference} vs {name}: right only with {reference} {paired.only_first}, "
                     f"only with {name} {paired.only_second}, both {paired.both}, neither {paired.neither}; "
                     f"p = {paired.p_value:.2f}")
    return lines


def write_summary(rows: Sequence[Row], path: Path) -> Path:
    summary = [{"condition": r.condition, "decoding": r.decoding, "questions": r.result.score.total,
                "correct": r.result.score.correct, "unanswered": r.result.score.unanswered,
                "accuracy": r.result.score.accuracy} for r in rows]
    path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return path


def plot_rows(rows: Sequence[Row], dataset: str, path: Path, chance: float | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r.condition}\n{r.decoding}" for r in rows]
    values = [100 * r.result.score.accuracy for r in rows]
    figure, axis = plt.subplots(figsize=(max(5, 1.3 * len(rows)), 3.6))
    axis.bar(labels, values, color=["#4c72b0" if r.decoding == "greedy" else "#55a868" for r in rows])
    if chance is not None:
        axis.axhline(100 * chance, color="grey", linestyle="--", linewidth=1, label="chance")
        axis.legend(loc="upper left")
    for x, value in enumerate(values):
        axis.text(x, value + 1, f"{value:.1f}", ha="center", fontsize=8)
    total = rows[0].result.score.total if rows else 0
    axis.set_ylabel("accuracy %")
    axis.set_ylim(0, 100)
    axis.set_title(f"{dataset}: {total} questions")
    axis.tick_params(axis="x", labelsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path

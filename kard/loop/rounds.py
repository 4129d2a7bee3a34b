"""Round reports: accuracy of each student round on held-out questions, and what changed between rounds.

    evaluate_rounds(root, questions, ...) -> {round: {question_id: answer}}   (cached per round)
    round_report(answers, gold) -> RoundReport                                 (pure)
    report_markdown(report) / plot_accuracy(report, path)

Round "round-000" is the student the first retrain started from (its manifest's parent), so the
report shows where the loop began. Fixed and broken come from `kard.metrics.compare_rounds` between
consecutive rounds and between the first and the last. Questions used as corrections in any round
are left out of the held-out set (`held_out`), so the numbers measure generalisation, not recall.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from kard.config import GenerationConfig, RetrievalConfig
from kard.metrics import RoundChange, Score, compare_rounds, mcnemar_exact, score
from kard.records import Question
from kard.errors import DataError, KardError, page_text
from kard.loop.round_folder import list_rounds, read_manifest, round_paths, round_problem, starting_student

if TYPE_CHECKING:  # pragma: no cover
    from kard.evaluation import Searches

log = logging.getLogger(__name__)

BASE_ROUND = "round-000"
EVAL_DIR = "eval"


@dataclass(frozen=True)
class RoundScore:
    round: str
    student: str
    score: Score


@dataclass(frozen=True)
class Transition:
    before: str
    after: str
    change: RoundChange


@dataclass(frozen=True)
class ControlComparison:
    """A round against the control round of the same number (the same training without the corrections)."""

    round: str
    control: RoundScore
    change: RoundChange  # fixed: right with the corrections, wrong in the control; broken: the reverse

    @property
    def p_value(self) -> float:
        """Exact McNemar test of the round against its control on the questions they disagree on."""
        return mcnemar_exact(len(self.change.fixed), len(self.change.broken))


@dataclass(frozen=True)
class RoundReport:
    question_ids: tuple[str, ...]
    scores: tuple[RoundScore, ...]
    steps: tuple[Transition, ...]  # consecutive rounds
    overall: Transition | None  # first round vs last round (None with fewer than 2 rounds)
    controls: tuple[ControlComparison, ...] = ()  # when a control arm was run
    failed: tuple[tuple[str, str], ...] = ()  # (round, why it could not be evaluated): a row each, no score
    notes: tuple[str, ...] = ()  # e.g. a round the control has no round of the same number for

    def to_dict(self) -> dict[str, Any]:
        def change(t: Transition) -> dict[str, Any]:
            c = t.change
            return {"before": t.before, "after": t.after, "fixed": list(c.fixed), "broken": list(c.broken),
                    "still_right": len(c.still_right), "still_wrong": len(c.still_wrong)}

        return {
            "questions": len(self.question_ids),
            "rounds": [{"round": s.round, "student": s.student, "accuracy": s.score.accuracy,
                        "correct": s.score.correct, "total": s.score.total, "unanswered": s.score.unanswered}
                       for s in self.scores],
            "steps": [change(t) for t in self.steps],
            "overall": change(self.overall) if self.overall else None,
            "controls": [{"round": c.round, "control_student": c.control.student, "control_accuracy": c.control.score.accuracy,
                          "control_correct": c.control.score.correct, "fixed_vs_control": list(c.change.fixed),
                          "broken_vs_control": list(c.change.broken), "p": c.p_value} for c in self.controls],
            "failed": [{"round": name, "error": error} for name, error in self.failed],
            "notes": list(self.notes),
        }


def rounds_with_base(root: str | Path) -> list[tuple[str, str, str | None]]:
    """(round, student path, reranker path) for round-000 (the starting student) and every finished round."""
    rounds = list_rounds(root)
    if not rounds:
        raise DataError("no finished round to report on", path=root,
                        fix="run `python -m kard retrain --root ...` first")
    reranker = (read_manifest(root, rounds[0]).get("spec") or {}).get("reranker_from")
    entries: list[tuple[str, str, str | None]] = [(BASE_ROUND, str(starting_student(root)), reranker)]
    for name in rounds:
        paths = round_paths(root, name)
        entries.append((name, str(paths["student"]), paths["reranker"]))
    return entries


def held_out(questions: Sequence[Question], root: str | Path) -> tuple[list[Question], list[str]]:
    """The questions minus every question corrected in any round (those ids are returned too)."""
    used: set[str] = set()
    for name in list_rounds(root):
        used.update(read_manifest(root, name).get("data", {}).get("corrected_question_ids", []))
    kept = [q for q in questions if q.id not in used]
    return kept, sorted(used & {q.id for q in questions})


def evaluate_rounds(root: str | Path, questions: Sequence[Question], *, knowledge: "Searches | None" = None,
                    condition: str = "kard-bm25", retrieval: RetrievalConfig = RetrievalConfig(),
                    generation: GenerationConfig = GenerationConfig(), use_rerankers: bool = False,
                    progress: bool = True, failed: dict[str, str] | None = None
                    ) -> dict[str, tuple[str, dict[str, str | None]]]:
    """{round: (student, {question id: answer})}; each round's answers cached in ROOT/eval/ and resumed.

    A round that cannot load (its folder, or that of a round it is built on, is gone) is left out with a warning,
    and why goes into `failed` ({round: error}), so the report still shows the others; a round re-trained under the
    same name is evaluated again (its cached answers were another student's)."""
    from kard.evaluation import evaluate
    from kard.student import Student

    results: dict[str, tuple[str, dict[str, str | None]]] = {}
    for name, student_path, reranker_path in rounds_with_base(root):
        out = Path(root) / EVAL_DIR / f"{name}-{condition}.jsonl"
        try:
            if name != BASE_ROUND and (problem := round_problem(root, name)) is not None:
                raise problem
            student = Student.load(student_path)
        except KardError as error:
            log.warning("%s is left out of the report: %s", name, error)
            if failed is not None:
                failed[name] = page_text(error)  # the report shows on the app's page: no paths of this machine
            continue
        _drop_replaced_answers(out, name, student)
        reranker = None
        if use_rerankers and reranker_path:
            from kard.reranker.encoder import load_reranker

            reranker = load_reranker(reranker_path)
        result = evaluate(student, questions, condition, out=out, knowledge=knowledge, reranker=reranker,
                          retrieval=retrieval, generation=generation, progress=progress)
        results[name] = (student_path, {r.question_id: r.answer for r in result.records})
        log.info("%s: accuracy %.3f on %d questions", name, result.score.accuracy, result.score.total)
        del student
    return results


def _drop_replaced_answers(out: Path, name: str, student: Any) -> None:
    """Delete the cached answers of round `name` when they came from other weights (the round was deleted and
    trained again under the same name), so it is evaluated again instead of refused as other settings."""
    from kard.evaluation import STUDENT_WEIGHTS, settings_path
    from kard.evaluation_student import student_weights

    saved = settings_path(out)
    if not (out.is_file() and saved.is_file()):
        return
    try:
        recorded = json.loads(saved.read_text(encoding="utf-8")).get(STUDENT_WEIGHTS)
    except (OSError, ValueError, AttributeError):
        return
    if recorded is not None and recorded != student_weights(student):
        out.unlink()
        saved.unlink()
        log.warning("%s: its student is not the one that wrote %s (re-trained under the same name?): evaluating it "
                    "again; the old answers were replaced", name, out.name)


Answers = Mapping[str, tuple[str, Mapping[str, str | None]]]
"""{round: (student path, {question id: answer})}, as evaluate_rounds returns it."""


def round_report(answers: Answers, gold: Mapping[str, str], control: Answers | None = None,
                 failed: Mapping[str, str] | None = None, control_failed: Mapping[str, str] | None = None
                 ) -> RoundReport:
    """Scores per round (in the mapping's order) over `gold`'s questions, fixed/broken between rounds and,
    with `control` (the same rounds trained without the corrections), against the control round of each name.
    `failed`: rounds that could not be evaluated ({round: why}), a row each; `control_failed`: the control's."""
    if not answers:
        raise DataError("no rounds to report", fix="evaluate at least one round")
    ids = tuple(gold)
    scores = tuple(_round_score(name, student, by_id, gold) for name, (student, by_id) in answers.items())
    names = list(answers)
    steps = tuple(Transition(a, b, compare_rounds(answers[a][1], answers[b][1], gold)) for a, b in zip(names, names[1:]))
    overall = Transition(names[0], names[-1], compare_rounds(answers[names[0]][1], answers[names[-1]][1], gold)) \
        if len(names) > 1 else None
    controls = tuple(
        ControlComparison(name, _round_score(name, control[name][0], control[name][1], gold),
                          compare_rounds(control[name][1], answers[name][1], gold))
        for name in names if control and name in control and name != BASE_ROUND)
    notes: list[str] = []
    if control is not None:
        for name in names:
            if name != BASE_ROUND and name not in control:
                why = (control_failed or {}).get(name)
                notes.append(f"control has no {name}" + (f" that could be evaluated ({why})" if why else "")
                             + ": that round is not compared with a control")
        notes += [f"the control's {name} has no round of that name here: it is not compared" for name in control
                  if name not in answers and name not in (failed or {}) and name != BASE_ROUND]
    return RoundReport(ids, scores, steps, overall, controls, tuple(sorted((failed or {}).items())), tuple(notes))


def _round_score(name: str, student: str, by_id: Mapping[str, str | None], gold: Mapping[str, str]) -> RoundScore:
    missing = [qid for qid in gold if qid not in by_id]
    if missing:
        raise DataError(f"round {name} has no answer for {len(missing)} question(s), e.g. {missing[0]}",
                        fix="evaluate every round on the same questions")
    return RoundScore(name, student, score([by_id[q] for q in gold], list(gold.values())))


def report_markdown(report: RoundReport, title: str = "Accuracy per round") -> str:
    lines = [f"## {title}", "", f"{len(report.question_ids)} held-out questions (none of them used as a correction).", "",
             "| round | accuracy (95% CI) | correct / total | unanswered | fixed / broken vs previous "
             "| control: accuracy, fixed / broken vs it, McNemar p | student |",
             "|---|---|---|---|---|---|---|"]
    changes = {t.after: t.change for t in report.steps}
    controls = {c.round: c for c in report.controls}
    for s in report.scores:
        change = changes.get(s.round)
        moved = f"{len(change.fixed)} / {len(change.broken)}" if change else "-"
        c = controls.get(s.round)
        versus = (f"{100 * c.control.score.accuracy:.1f}%, {len(c.change.fixed)} / {len(c.change.broken)}, "
                  f"p = {c.p_value:.3g}") if c else "-"
        low, high = s.score.interval
        lines.append(f"| {s.round} | {100 * s.score.accuracy:.1f}% ({100 * low:.0f}-{100 * high:.0f}) | "
                     f"{s.score.correct} / {s.score.total} | {s.score.unanswered} | {moved} | {versus} | "
                     f"`{_short(s.student)}` |")
    for name, error in report.failed:
        lines.append(f"| {name} | could not be evaluated: {_cell(error)} | - | - | - | - | - |")
    if report.failed:  # each row in round order
        head, rows = lines[:6], lines[6:]
        lines = head + sorted(rows, key=lambda row: row.split("|")[1].strip())
    if report.notes:
        lines += [""] + [f"Note: {note}." for note in report.notes]
    for transition in report.steps + ((report.overall,) if report.overall and len(report.steps) > 1 else ()):
        c = transition.change
        lines += ["", f"**{transition.before} -> {transition.after}**: fixed {len(c.fixed)}, broken {len(c.broken)}, "
                      f"still right {len(c.still_right)}, still wrong {len(c.still_wrong)}",
                  f"- fixed: {', '.join(c.fixed) or 'none'}", f"- broken: {', '.join(c.broken) or 'none'}"]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text inside a Markdown table cell: on one line, no column break."""
    return " ".join(text.split()).replace("|", "\\|")


def _short(path: str, keep: int = 3) -> str:
    parts = Path(path).parts
    return str(Path(*parts[-keep:])) if len(parts) > keep else path


def plot_accuracy(report: RoundReport, path: str | Path, title: str = "Held-out accuracy per round") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s.round for s in report.scores]
    values = [100 * s.score.accuracy for s in report.scores]
    errors = [[v - 100 * s.score.interval[0] for v, s in zip(values, report.scores)],
              [100 * s.score.interval[1] - v for v, s in zip(values, report.scores)]]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(names) + 2), 3.2))
    ax.errorbar(range(len(names)), values, yerr=errors, marker="o", capsize=3, label="with corrections")
    if report.controls:
        at = {name: x for x, name in enumerate(names)}
        ax.plot([at[c.round] for c in report.controls], [100 * c.control.score.accuracy for c in report.controls],
                marker="s", linestyle="--", color="gray", label="control (no corrections)")
        ax.legend(fontsize=8, loc="lower right")
    for x, (value, s) in enumerate(zip(values, report.scores)):
        ax.annotate(f"{value:.1f}%\n({s.score.correct}/{s.score.total})", (x, value), textcoords="offset points",
                    xytext=(0, 8), ha="center", fontsize=8)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{title} ({len(report.question_ids)} questions)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(report: RoundReport, out_dir: str | Path) -> dict[str, Path]:
    """report.md, report.json and accuracy.png in `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(report_markdown(report), encoding="utf-8")
    (out / "report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return {"markdown": out / "report.md", "json": out / "report.json",
            "plot": plot_accuracy(report, out / "accuracy.png")}


def limit_questions(questions: Sequence[Question], limit: int | None) -> list[Question]:
    """The first `limit` questions by id order of the file (deterministic)."""
    return list(questions[:limit]) if limit else list(questions)


__all__ = ["RoundReport", "RoundScore", "Transition", "ControlComparison", "evaluate_rounds", "round_report", "report_markdown",
           "plot_accuracy", "write_report", "held_out", "rounds_with_base", "limit_questions"]

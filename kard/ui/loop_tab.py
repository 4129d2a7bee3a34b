"""The app's "Retrain & rounds" tab (curator mode): start/cancel a retrain, watch it, compare two rounds.

`LoopPanel` holds the handlers as plain, tested methods; `add_loop_tab(studio, config)` builds the
tab inside the app's Blocks. A retrain runs as a separate process (`python -m kard retrain`, via
`kard.loop.jobs.start_background`): the app's threads keep answering while it trains, closing the
page does not stop it, and the tab picks its progress up again from the status file on the next
visit. The checkpoint switcher answers one question with two students side by side (the serving
pipeline's knowledge base and reranker, each side's own student, loaded once and cached).
"""

import logging
import threading
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from kard.loop import jobs as loop_jobs, retrain, round_folder
from kard.ui import asking, curating, views
from kard.config import DEFAULT_ROUNDS_DIR
from kard.errors import KardError, page_text
from kard.kinds import AUTO

if TYPE_CHECKING:  # pragma: no cover
    from kard.ui.studio import Studio
    from kard.config import AppConfig
    from kard.records import Prediction

log = logging.getLogger(__name__)

"""Where the app's retrain rounds go (`python -m kard retrain --root runs/loop` uses the same folder)."""
BASE = "base"
MAX_CACHED_STUDENTS = 2  # two sides of the comparison; more would only hold memory


APP_TRAINING = retrain.APP_TRAINING  # how the Retrain tab trains; `python -m kard retrain` trains so by default


STEPS_LABEL, DEFAULT_STEPS = "Training steps", 20
WEIGHT_LABEL, DEFAULT_WEIGHT = "Correction weight", 3


def at_least_one(value: float | None, label: str, default: int) -> int:
    """A whole number field's value, refused (naming the field and the fix) when it is empty or below 1.

    The tab checks this itself instead of Gradio's `minimum`, whose refusal names neither the field nor a fix."""
    fix = f"Fix: enter a whole number of 1 or more in '{label}' (the default is {default})"
    if value is None:
        raise KardError(f"{label} is empty. {fix}")
    if value < 1:
        raise KardError(f"{label} must be at least 1 (got {value:g}). {fix}")
    return int(value)


def _check_knowledge_path(kb: str | None) -> None:
    """Refuse a reranker retrain whose knowledge base is not given or not there, before the student trains."""
    retrain.check_knowledge_base(kb, give="fill in 'Knowledge base' with")


class LoopPanel:
    """Handlers of the Retrain & rounds tab over one rounds folder."""

    def __init__(self, studio: "Studio", root: str | Path = DEFAULT_ROUNDS_DIR, *, base_student: str,
                 db: str | Path, examples: str | None = None, kb: str | None = None,
                 launcher: Callable[[retrain.RetrainSpec], Any] = loop_jobs.start_background,
                 student_loader: Callable[[str], Any] | None = None, engine: str = "auto"):
        """`engine` decodes the rounds' answers, as the Ask tab's (the app's KARD_ENGINE), so a round answers a
        question here as it does there."""
        self.studio = studio
        self.root = Path(root)
        self.base_student = base_student
        self.db = Path(db)
        self.examples = examples
        self.kb = kb
        self._launch = launcher
        self._load_student = student_loader or partial(_load_student, engine=engine)
        self._students: dict[str, Any] = {}
        self._lock = threading.Lock()

    # -- rounds -------------------------------------------------------------------------------------
    def pointer(self) -> tuple[dict[str, Any] | None, str | None]:
        """The rounds folder's pointer (None before round 1) and, when current.json cannot be read or names a
        round that cannot load (its folder, or that of a round it is built on, is gone), the problem with its fix
        instead of an error, and the pointer None: the tab must still open to say so, and what answers instead."""
        try:
            pointer = round_folder.current(self.root)
        except KardError as error:  # its files named within the rounds folder: the page shows no server paths
            return None, page_text(error).replace(f"{Path(self.root).resolve()}/", "").replace(f"{self.root}/", "")
        broken = round_folder.round_problem(self.root, pointer["round"]) if pointer else None
        if broken is None:
            return pointer, None
        instead = self._answering()
        shown = "the configured student (base)" if instead == BASE else instead
        return None, (f"The serving round cannot answer: {page_text(broken)}, or delete current.json in the rounds "
                      f"folder to serve the configured student. Meanwhile {shown} answers the Ask tab.")

    def _answering(self) -> str:
        """The round whose student the Ask tab loaded while the pointer's round cannot load (app.serving_round keeps
        the one loaded), or "base"."""
        served = self.studio.serving_now() if hasattr(self.studio, "serving_now") else None
        if served:
            student = Path(served[0])
            if student.parent.parent.resolve() == self.root.resolve() and round_folder.ROUND.match(student.parent.name):
                return student.parent.name
        return BASE

    def serving_round(self) -> str:
        """The round the Ask tab answers with ("base" before round 1, or while the pointer cannot be read; while
        its round cannot load, the one answering instead)."""
        pointer, problem = self.pointer()
        if pointer:
            return pointer["round"]
        return self._answering() if problem else BASE

    def round_choices(self) -> list[tuple[str, str]]:
        serving = self.serving_round()
        names = [BASE, *round_folder.list_rounds(self.root)]
        return [(f"{name} (current)" if name == serving else name, name) for name in names]

    def student_path(self, name: str | None) -> str:
        if not name or name == BASE:
            return round_folder.starting_student(self.root) or self.base_student
        return str(round_folder.round_paths(self.root, name)["student"])

    # -- jobs ---------------------------------------------------------------------------------------
    def start(self, examples: str | None, weight: float | None, max_steps: float | None, with_reranker: bool,
              kb: str | None, curator: str | None) -> str:
        """Start a background retrain; refuses (with the reason) while another job holds the folder."""
        curating.can_write(self.studio, curator)
        spec = retrain.RetrainSpec(
            root=str(self.root), student=self.base_student, examples=(examples or self.examples or None),
            db=str(self.db), correction_weight=at_least_one(weight, WEIGHT_LABEL, DEFAULT_WEIGHT),
            kb=(kb or self.kb or None), reranker=bool(with_reranker), note=f"started from the app by {curator}",
            training={**APP_TRAINING, "max_steps": at_least_one(max_steps, STEPS_LABEL, DEFAULT_STEPS)})
        if spec.reranker:
            _check_knowledge_path(spec.kb)
        # refused now, not in the job: missing teacher examples, a serving round that is gone or cannot load,
        # a store without a correction to learn from
        retrain.check_examples_file(spec.examples, give="fill in 'Teacher examples' with")
        retrain.start_round(spec)
        retrain.check_corrections(spec)
        job = self._launch(spec)
        return views.message(f"Started retrain job {job.job_id}. You can close this page: it keeps running.", "info")

    def cancel(self, curator: str | None) -> str:
        curating.can_write(self.studio, curator)
        status = loop_jobs.cancel(self.root)
        return views.message(f"Asked job {status.job_id} to stop.", "warn")

    def latest_job(self) -> loop_jobs.JobStatus | None:
        jobs = loop_jobs.list_jobs(self.root)
        return jobs[0] if jobs else None

    def status_html(self) -> str:
        """The newest job's progress, and which round serves."""
        pointer, problem = self.pointer()
        answering = pointer["round"] if pointer else (self._answering() if problem else BASE)
        serving = (f"Serving: <b>{views.esc(answering)}</b>" if answering != BASE
                   else f"Serving: <b>base</b> ({views.esc(_page_path(self.base_student))})")
        rounds = round_folder.list_rounds(self.root)
        head = f'<div class="kard-loop-head">{serving} &middot; rounds: {views.esc(", ".join(rounds) or "none yet")}</div>'
        if problem:
            head += views.message(problem, "error")
        job = self.latest_job()
        if job is None:
            return head + '<div class="kard-empty">No retrain job has run over this folder yet.</div>'
        detail = job.error if job.state in ("failed", "cancelled") else ("" if preparing(job) else job.message)
        kind = {"failed": "error", "cancelled": "warn"}.get(job.state, "info")
        below = views.message(detail, kind) if detail else ""  # an empty message would show an empty box
        return (head + f'<div class="kard-job kard-job-{views.esc(job.state)}"><b>job {views.esc(job.job_id)}</b>: '
                f'{views.esc(progress_line(job))}{progress_bar(job)}</div>' + below)

    def job_active(self) -> bool:
        job = self.latest_job()
        return job is not None and not job.finished

    # -- the round report (python -m kard rounds) ----------------------------------------------------
    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    def report_markdown(self) -> str:
        """The rounds folder's report (accuracy with intervals, fixed / broken, the control), or how to make one."""
        path = self.report_dir / "report.md"
        if path.is_file():
            return path.read_text(encoding="utf-8")
        return ("No round report yet. Whoever runs this app makes one on held-out questions with `python -m kard "
                "rounds` over this app's rounds folder (its KARD_ROUNDS_DIR), and, for a controlled comparison, a "
                "control rounds folder trained the same way without the corrections (`--control`): "
                "docs/closing_the_loop.md, section 3, says how.")

    def report_plot(self) -> str | None:
        path = self.report_dir / "accuracy.png"
        return str(path) if path.is_file() else None

    def every_round(self, text: str, options_text: str, picked_id: str | None = None,
                    kind: str | None = AUTO) -> str:
        """The question on screen answered by the starting student and every round, one row each, asked as
        `kind` (the Ask tab's "Ask as"); the table is headed by the kind it was asked as."""
        question, decision = asking.resolve(self.studio, text, options_text, picked_id, kind)
        rows = []
        for name in [BASE, *round_folder.list_rounds(self.root)]:
            try:
                p = self.answer_with(name, question)
            except KardError as error:  # a round that cannot load gets its row, the others still answer
                rows.append(f"<tr><td><b>{views.esc(name)}</b></td>"
                            f'<td colspan="2">{views.message(page_text(error), "error")}</td></tr>')
                continue
            badge = views.answer_badge(p.answer, question.answer, question.options, question.kind)
            rows.append(f"<tr><td><b>{views.esc(name)}</b></td><td>{badge}</td>"
                        f'<td class="kard-rationale">{views.esc(p.rationale)}</td></tr>')
        return (views.kind_line(decision.kind, decision.reason)
                + '<table class="kard-rounds"><tr><th>round</th><th>answer</th><th>rationale</th></tr>'
                + "".join(rows) + "</table>")

    # -- compare two rounds -------------------------------------------------------------------------
    def _student(self, path: str) -> Any:
        with self._lock:
            if path not in self._students:
                while len(self._students) >= MAX_CACHED_STUDENTS:
                    self._students.pop(next(iter(self._students)))
                self._students[path] = self._load_student(path)
            return self._students[path]

    def answer_with(self, name: str, question: Any) -> "Prediction":
        from kard.pipeline import Pipeline

        if name != BASE:
            round_folder.check_round(self.root, name)  # names the round and the one it is built on that is gone
        serving = self.studio.pipeline()
        pipeline = Pipeline(serving.knowledge, self._student(self.student_path(name)), serving.reranker,
                            serving.retrieval, serving.generation)
        return pipeline.answer(question)

    def compare(self, text: str, options_text: str, picked_id: str | None, left: str | None,
                right: str | None, kind: str | None = AUTO) -> tuple[str, str, str]:
        """The same question answered by two rounds' students, asked as `kind` (the Ask tab's "Ask as"), each
        card saying which kind: (left card, right card, word diff)."""
        question, decision = asking.resolve(self.studio, text, options_text, picked_id, kind)
        asked_as = views.kind_line(decision.kind, decision.reason)
        cards, rationales = [], []
        for name in (left or BASE, right or BASE):
            prediction = self.answer_with(name, question)
            rationales.append(prediction.rationale)
            cards.append(views.rationale_card(
                name, _short(self.student_path(name)), prediction.rationale,
                answer_html=views.answer_badge(prediction.answer, question.answer, question.options,
                                               question.kind),
                timing_html=views.timing_line(prediction.timings, prediction.tokens_out, prediction.student_name,
                                              prediction.decoding.get("engine")),
                kind_html=asked_as, level=3))  # under the tab's "Compare two rounds" heading
        return cards[0], cards[1], views.diff_panel(rationales[0], rationales[1], left or BASE, right or BASE)


def preparing(job: loop_jobs.JobStatus) -> bool:
    """The job runs but has not finished a step of its phase yet (loading the student, reading the examples...)."""
    return not job.finished and job.step == 0


def progress_line(job: loop_jobs.JobStatus) -> str:
    """One line of a job's progress: its state, what it does (named while it prepares, before its first step),
    the step out of the total once the total is known, and the last loss."""
    doing = (job.message or job.phase) if preparing(job) else job.phase
    steps = f"step {job.step}/{job.total_steps}" if job.total_steps else ("" if preparing(job) else f"step {job.step}")
    loss = f"loss {job.loss:.4f}" if job.loss is not None else ""
    return " · ".join(part for part in (job.state, doing, steps, loss) if part)


def progress_bar(job: loop_jobs.JobStatus) -> str:
    """The job's progress bar; one without a value (moving, no percentage) while it prepares."""
    if preparing(job):
        return '<progress max="100" style="width:100%"></progress>'
    percent = int(100 * (1.0 if job.state == "succeeded" else job.fraction))
    return f'<progress max="100" value="{percent}" style="width:100%">{percent}%</progress>'


def _page_path(path: str) -> str:
    """A student as the page names it: relative to the working directory, else its folder name (no folder of
    this machine on the page)."""
    shown = views.shown_path(path)
    return Path(shown).name if Path(shown).is_absolute() else shown


def _short(path: str, keep: int = 3) -> str:
    parts = Path(path).parts
    return str(Path(*parts[-keep:])) if len(parts) > keep else path


def _load_student(path: str, engine: str = "auto") -> Any:
    from kard.student import Student

    return Student.load(path, engine=engine)


@dataclass
class LoopTab:
    """The components of the "Retrain & rounds" tab."""

    examples: Any
    kb: Any
    weight: Any
    steps: Any
    with_reranker: Any
    start_btn: Any
    cancel_btn: Any
    refresh_btn: Any
    action_msg: Any
    progress: Any
    timer: Any
    left: Any
    right: Any
    question: Any
    options: Any
    kind: Any
    picked: Any
    compare_btn: Any
    left_card: Any
    right_card: Any
    diff: Any
    report: Any
    plot: Any
    every_btn: Any
    every_table: Any


def add_loop_tab(studio: "Studio", config: "AppConfig", curator_name: Callable[[Any, Any], str | None], *,
                 question: Any = None, options: Any = None, kind: Any = None, picked: Any = None,
                 root: str | Path | None = None, panel: LoopPanel | None = None) -> LoopPanel:
    """Build the "Retrain & rounds" tab inside the current Blocks (call it within `with gr.Blocks()`).

    `curator_name(request, profile)` says who is signed in (app.py's rule). `question`/`options`: the
    Ask tab's textboxes, so the comparison answers the question already there; None adds its own. `kind`/`picked`:
    the Ask tab's "Ask as" radio and demo-question dropdown, so it is asked as that tab asks it (same kind, and a
    listed question keeps its gold); a missing `kind` adds its own "Ask as". `root`: the rounds folder (default
    the config's `rounds_dir`, the one whose current round the Ask tab answers with).
    """
    panel = panel or LoopPanel(studio, root or config.rounds_dir, base_student=config.student, db=config.annotations_db,
                               kb=str(config.knowledge) if config.knowledge else None, engine=config.engine)
    wire_loop_tab(loop_layout(panel, question, options, kind, picked), panel, curator_name)
    return panel


def loop_layout(panel: LoopPanel, question: Any, options: Any, kind: Any = None, picked: Any = None) -> LoopTab:
    import gradio as gr

    from kard.ui.blocks import KIND_CHOICES

    with gr.Tab("Retrain & rounds", elem_id="kard-loop-tab"):
        gr.Markdown("## Retrain the student on the saved corrections\nEach run fine-tunes the serving student on "
                    "the teacher examples plus every accepted correction (a LoRA adapter, about 20 MB) and "
                    "writes a new round; a failed or cancelled run changes nothing. The app keeps answering while it "
                    "trains, and the next question after it finishes is answered by the new round.")
        with gr.Row():
            examples = gr.Textbox(value=panel.examples or "", label="Teacher examples (JSONL from build-examples)",
                                  placeholder="optional: corrections only when empty", elem_id="kard-loop-examples")
            kb = gr.Textbox(value=panel.kb or "", label="Knowledge base (for the reranker)", elem_id="kard-loop-kb",
                            placeholder="needed with 'Also retrain the reranker': a knowledge-base folder "
                                        "(kard index) or a passages file")
        with gr.Row():
            # no `minimum`: LoopPanel.start refuses a value below 1 naming the field, which Gradio's check does not
            weight = gr.Number(DEFAULT_WEIGHT, precision=0, label=f"{WEIGHT_LABEL} (times per epoch)")
            steps = gr.Number(DEFAULT_STEPS, precision=0, label=STEPS_LABEL)
            with_reranker = gr.Checkbox(False, label="Also retrain the reranker")
        with gr.Row():
            start_btn = gr.Button("Start retrain", variant="primary", elem_id="kard-loop-start")
            cancel_btn = gr.Button("Cancel", variant="stop", elem_id="kard-loop-cancel")
            refresh_btn = gr.Button("Refresh", elem_id="kard-loop-refresh")
        action_msg = gr.HTML(elem_id="kard-loop-msg")
        progress = gr.HTML(elem_id="kard-loop-progress")
        timer = gr.Timer(2.0, active=False)

        gr.Markdown("## Compare two rounds on one question\n" + (
            "Answers the question of the *Ask & correct* tab with both students, asked as that tab's *Ask as* says."
            if question is not None else ""))
        with gr.Row():
            left = gr.Dropdown(panel.round_choices(), value=BASE, label="Left", elem_id="kard-loop-left")
            right = gr.Dropdown(panel.round_choices(), value=panel.round_choices()[-1][1], label="Right",
                                elem_id="kard-loop-right")
            if question is None or options is None:
                question = gr.Textbox(label="Question", lines=2, elem_id="kard-loop-question")
                options = gr.Textbox(label="Options", lines=2, elem_id="kard-loop-options")
            if kind is None:
                kind = gr.Radio(KIND_CHOICES, value=AUTO, label="Ask as", elem_id="kard-loop-kind")
        compare_btn = gr.Button("Answer with both", elem_id="kard-loop-compare")
        with gr.Row(equal_height=True):
            with gr.Column(min_width=views.CARD_MIN_WIDTH):  # stacked on a phone (see blocks.ask_layout)
                left_card = gr.HTML(elem_id="kard-loop-left-card")
            with gr.Column(min_width=views.CARD_MIN_WIDTH):
                right_card = gr.HTML(elem_id="kard-loop-right-card")
        diff = gr.HTML(elem_id="kard-loop-diff")
        every_btn = gr.Button("Answer with every round", elem_id="kard-loop-every")
        every_table = gr.HTML(elem_id="kard-loop-every-table")

        gr.Markdown("## Round report: held-out accuracy per round, against the control when one was run")
        # the table takes the whole width (beside the plot its seven columns broke round names letter by letter);
        # the plot below it carries its own title, which a label badge would cover
        report = gr.Markdown(panel.report_markdown(), elem_id="kard-loop-report")
        plot_path = panel.report_plot()
        plot = gr.Image(plot_path, label="Held-out accuracy per round", show_label=False, type="filepath",
                        interactive=False, buttons=["fullscreen", "download"], elem_id="kard-loop-plot",
                        visible=plot_path is not None)
    return LoopTab(examples, kb, weight, steps, with_reranker, start_btn, cancel_btn, refresh_btn, action_msg,
                   progress, timer, left, right, question, options, kind, picked, compare_btn, left_card, right_card,
                   diff, report, plot, every_btn, every_table)


def wire_loop_tab(t: LoopTab, panel: LoopPanel, curator_name: Callable[[Any, Any], str | None]) -> None:
    import gradio as gr
    from gradio.context import Context

    def warn(error: Exception) -> str:
        text = page_text(error)  # a page text where the message names server paths or shell commands
        gr.Warning(views.esc(text))
        return views.message(text, "error")

    def plot_update():
        """The report's plot, shown only once there is one (an empty image box shows a broken icon)."""
        path = panel.report_plot()
        return gr.update(value=path, visible=path is not None)

    def refresh(right: str | None = None):
        """Progress, rounds and report; the Right side moves to the serving round while it shows base (a page
        built before a round finished, or freshly loaded), and stays where the curator put it otherwise."""
        choices = panel.round_choices()
        right_value = panel.serving_round() if right in (None, BASE) else right
        return (panel.status_html(), gr.Timer(active=panel.job_active()), gr.update(choices=choices),
                gr.update(choices=choices, value=right_value), panel.report_markdown(), plot_update())

    def start(ex, w, s, rr, kb_path, request: gr.Request, profile: gr.OAuthProfile | None):
        try:
            text = panel.start(ex, w, s, rr, kb_path, curator_name(request, profile))
        except KardError as error:
            return warn(error), panel.status_html(), gr.Timer(active=panel.job_active())
        return text, panel.status_html(), gr.Timer(active=True)

    def stop(request: gr.Request, profile: gr.OAuthProfile | None):
        try:
            return panel.cancel(curator_name(request, profile))
        except KardError as error:
            return warn(error)

    def compare(text, opts, a, b, kind, picked=None):
        try:
            return panel.compare(text, opts, picked, a, b, kind)
        except KardError as error:
            return warn(error), "", ""

    def every(text, opts, kind, picked=None):
        try:
            return panel.every_round(text, opts, picked, kind)
        except KardError as error:
            return warn(error)

    private = {"api_visibility": "private"}
    asked = [t.question, t.options, t.kind, *([t.picked] if t.picked is not None else [])]
    refresh_outputs = [t.progress, t.timer, t.left, t.right, t.report, t.plot]
    t.every_btn.click(every, asked, [t.every_table], **private)
    t.start_btn.click(start, [t.examples, t.weight, t.steps, t.with_reranker, t.kb], [t.action_msg, t.progress, t.timer],
                      **private)
    t.cancel_btn.click(stop, None, [t.action_msg], **private).then(refresh, [t.right], refresh_outputs, **private)
    t.refresh_btn.click(refresh, [t.right], refresh_outputs, **private)
    t.timer.tick(refresh, [t.right], refresh_outputs, show_progress="hidden", **private)
    t.compare_btn.click(compare, [*asked[:2], t.left, t.right, *asked[2:]], [t.left_card, t.right_card, t.diff],
                        api_name="compare_rounds")
    if Context.root_block is not None:  # a reopened page picks up a running job's progress
        Context.root_block.load(refresh, [t.right], refresh_outputs, **private)


__all__ = ["LoopPanel", "add_loop_tab", "DEFAULT_ROUNDS_DIR"]

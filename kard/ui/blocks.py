"""The Gradio page of KARD Studio: its components, and each event bound to a function of `kard.ui.ask_events`
(asking and comparing), `kard.ui.asking` or `kard.ui.curating` (with `functools.partial` over the `Studio`).

`build_app(studio, config, sync)` returns the Blocks; `app.py` queues and launches it. The components
of each tab are grouped in a small record (`AskTab`, `BrowseTab`), and every event is wired by a short
function named after what the person does (ask, swap the editor's text, save, keep a draft, browse).
"""

# No `from __future__ import annotations` here: Gradio reads the gr.Request / gr.OAuthProfile annotations of
# event functions as objects to know what to pass them.
import json
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Sequence

from kard.annotations import ERROR_TAGS, RELEVANCE_MARKS
from kard.config import SHIPPED_STUDENT, AppConfig
from kard.errors import KardError, page_text
from kard.prompts import format_options
from kard.records import AskedItem
from kard.space_sync import SpaceSync, storage_notice
from kard.ui import asking, conflicts, curating
from kard.ui.ask_events import (
    ASK_OUTPUTS, LOCKED_LABELS, REPLACE_WARNING, AskTurns, ask, ask_as_switched, ask_checked, ask_on_page, compare,
    compare_when_handed_out, loses_correction, next_question, save_refusal, use_refusal, warned_for,
)
from kard.ui.cards import LiveFailure, compare_html, live_diff, rerank_html, student_card, teacher_card
from kard.ui.curating import MAX_MARKED, MAX_TAB_DRAFTS, Edit
from kard.ui.page_script import CLEAR_RATING_JS
from kard.ui.studio import Studio
from kard.ui.updates import (
    answer_radio, answer_updates, editing_label, mark_updates, quiet, rating_radio, skips, warn,
)
from kard.ui.views import CARD_MIN_WIDTH, esc, message, shown_path

TAB_JS = """() => {
  let tab = sessionStorage.getItem("kard-tab");
  if (!tab) { tab = crypto.randomUUID(); sessionStorage.setItem("kard-tab", tab); }
  const read = k => { try { return JSON.parse(localStorage.getItem(k)); } catch (e) { return null; } };
  const base = read("kard-base:" + tab), typed = read("kard-typed:" + tab);
  if (base && base.item && typed && typed.seal === base.item.seal) {
    const {seal, kept_at, ...shown} = typed;
    return [tab, JSON.stringify({...base, ...shown})];
  }
  return [tab, localStorage.getItem("kard-draft:" + tab) || ""];
}"""
"""(this tab's id, its saved draft): the id is kept by the tab across reloads and differs in every other
tab; each tab keeps its draft under its own localStorage key, so tabs never overwrite each other. What was typed or
set in the correction controls that the server never kept (page_script.TYPED_TEXT_JS: it was down) goes into the tab's
last record of the same item, so a draft restored from it saves only where that item's seal holds (restore_draft)."""
KEEP_DRAFT_JS = """(draft, tab) => {
  if (!tab) return;
  const read = k => { try { return JSON.parse(localStorage.getItem(k)); } catch (e) { return null; } };
  let record = null;
  try { record = draft ? JSON.parse(draft) : null; } catch (e) { record = null; }
  const key = "kard-draft:" + tab;
  if (record && record.unsaved !== false) { localStorage.setItem(key, draft); } else { localStorage.removeItem(key); }
  if (record) {
    localStorage.setItem("kard-base:" + tab, JSON.stringify({...record, kept_at: Date.now()}));
    if (typeof kardShowsRecord !== "function" || kardShowsRecord(record)) {
      localStorage.removeItem("kard-typed:" + tab);  // the server has kept what the page shows (page_script)
    }
  }
  const time = k => { const r = read(k) || {}; return r.kept_at || (r.saved_at || 0) * 1000; };
  for (const prefix of ["kard-draft:", "kard-base:", "kard-typed:"]) {
    const keys = Object.keys(localStorage).filter(k => k.startsWith(prefix));
    keys.sort((a, b) => time(b) - time(a)).slice(%d).forEach(k => localStorage.removeItem(k));
  }
}""" % MAX_TAB_DRAFTS
"""Store this tab's record of the editor (kard-base:<tab>) and, when it holds an unsaved correction, its draft; an empty
one drops the draft. Keep the newest few tabs' records."""
HOW_IT_WORKS = """**How it works.** BM25 finds candidate passages for the question; the KARD reranker (trained to
find, from the question alone, the passages a teacher's rationale would) reorders them; the top-k go to the small
student, which writes a rationale and an answer. {compare}
Leave the options empty for a free question: it is answered yes/no or in a few words."""
CURATOR_COMPARE = "Compare it with the teacher's rationale, correct it below, and every save becomes a revision for " \
    "retraining."
DEMO_COMPARE = "Compare it with the teacher's rationale below. Corrections cannot be saved in this public demo."
DEMO_SAVE_NOTE = f"""**Corrections cannot be saved in this public demo.** You can edit the rationale below and see
what changed, but nothing is kept. To correct and save, run your own copy in curator mode:
`pip install -r requirements.txt`, then `{curating.CURATOR_COMMAND}` (the README says more)."""
"""Above the demo's correction form: why Save does nothing here, and how to get an app where it does."""
ABOUT_SHIPPED = """**About the answers.** The student is a small model: `demo/student`, SmolLM2-135M-Instruct
(135 million parameters) with this project's KARD LoRA adapter. This is a research demo of reasoning distillation,
and its answers are often wrong: as this app runs it, it answers 41.2% of the 51 demo questions right
(docs/results.md). Nothing here is medical advice, nor advice of any other kind."""
ABOUT_OTHER = """**About the answers.** The student here is `{name}`, a small model in a research demo of reasoning
distillation, and its answers are often wrong (the shipped student, SmolLM2-135M-Instruct with a KARD LoRA adapter,
answers 41.2% of the 51 demo questions right: docs/results.md). Nothing here is medical advice, nor advice of any
other kind."""
ANY_LETTER = [(letter, letter) for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"]
"""The answer radio's choices before a question narrows them: an API client can save without /compare."""
KIND_CHOICES = [("auto", "auto"), ("multiple choice", "choice"), ("yes/no", "yesno"), ("open", "open")]
"""The "Ask as" control: (label, kard.kinds kind); "auto" decides from the question and its options."""
SHORTCUTS_HELP = "Shortcuts: **Ctrl+Enter** ask · **Ctrl+S** save · **Alt+N** next question"
PRIVATE = {"api_visibility": "private"}
QUIET = {"api_visibility": "private", "show_progress": "hidden"}
ASKING, COMPARING = {"concurrency_id": "ask"}, {"concurrency_id": "compare"}
"""Every way to ask shares one concurrency limit (the queue's default), and every compare another."""
PAGE_ASKING = {**ASKING, **PRIVATE, "trigger_mode": "multiple"}
PAGE_COMPARING = {**COMPARING, **PRIVATE, "trigger_mode": "multiple"}
"""The page's asks and compares: a click while one runs starts another (which supersedes it: AskTurns), where
Gradio's default ("once") would drop the click and leave the boxes showing a question that was never asked."""


def curator_name(request: Any, profile: Any) -> str | None:
    """Who is saving: the Hugging Face user on a Space, else the local login name."""
    if profile is not None:
        return getattr(profile, "username", None)
    return getattr(request, "username", None) if request is not None else None


@dataclass
class AskTab:
    """The components of the "Ask & correct" tab (and the hidden state they share)."""

    item: Any
    original: Any
    original_source: Any
    draft: Any
    tab: Any
    mode_line: Any
    picked: Any = None
    question: Any = None
    options: Any = None
    kind: Any = None
    ask_btn: Any = None
    next_btn: Any = None
    status: Any = None
    student_html: Any = None
    teacher_html: Any = None
    diff_html: Any = None
    rerank_html: Any = None
    editor_label: Any = None
    editor: Any = None
    use_teacher: Any = None
    use_student: Any = None
    edit_diff: Any = None
    answer: Any = None
    answer_text: Any = None
    rating: Any = None
    clear_rating: Any = None
    tags: Any = None
    marks: list = field(default_factory=list)
    note: Any = None
    confirm: Any = None
    save_btn: Any = None
    save_msg: Any = None
    handed_out: Any = None  # gr.State: the turn of the page's ask that handed out a new item (then it compares)
    asked: Any = None  # gr.State: the item the page's last ask handed out, for its compare step to set AskTab.item
    turns: Any = None  # gr.State: the page's AskTurns (a newer ask supersedes the one running)
    last_saved: Any = None  # gr.State: the rationale this page saved last
    seen: Any = None  # gr.State: the item's revision this page saved or was told of (kard.ui.conflicts), or None
    warned: Any = None  # gr.State: (action, correction) a warning armed: that action again discards it; else None
    proceed: Any = None  # gr.State: whether Next question passed the unsaved-correction check (then it asks)
    api_ask: Any = None  # a hidden button that carries the API's /ask and /compare

    @property
    def ask_inputs(self) -> list:
        return [self.question, self.options, self.picked, self.kind]

    @property
    def ask_outputs(self) -> list:
        return [self.rerank_html, self.student_html, self.status, self.item, self.teacher_html]

    @property
    def compare_outputs(self) -> list:
        return [self.status, self.teacher_html, self.diff_html, self.editor, self.original, self.original_source,
                self.editor_label, self.answer, self.edit_diff, self.item, *self.marks, self.answer_text]

    @property
    def edit_inputs(self) -> list:
        """The editor's state, in the order `read_edit` takes it."""
        return [self.item, self.editor, self.answer, self.answer_text, self.rating, self.tags, self.note,
                self.original, self.original_source, *self.marks]


@dataclass
class BrowseTab:
    tag_filter: Any
    curator_filter: Any
    disagreements: Any
    refresh: Any
    table: Any
    item_pick: Any
    revision_pick: Any
    revert_btn: Any
    revert_msg: Any
    history_html: Any
    empty_note: Any  # says why the table is empty (nothing saved yet, or nothing matches the filters)
    shown: Any = None  # gr.State: the picked item's latest revision the history showed or a revert was told of

    @property
    def filters(self) -> list:
        return [self.tag_filter, self.curator_filter, self.disagreements]

    @property
    def outputs(self) -> list:
        return [self.table, self.item_pick, self.curator_filter, self.empty_note]

    @property
    def history_outputs(self) -> list:
        """What `show_history` fills."""
        return [self.history_html, self.revision_pick, self.shown]


def read_edit(current: dict | None, rationale: str, letter: str | None, text: str | None, rating: Any,
              tags: list | None, note: str, original: str, original_source: str, *marks: str | None) -> Edit:
    """The editor's controls (AskTab.edit_inputs) as one Edit."""
    return Edit(rationale or "", curating.chosen_answer(current, letter, text), rating, tuple(tags or ()),
                list(marks), note or "", original or "", original_source or "")


# -- layout -----------------------------------------------------------------------------------------
def build_app(studio: Studio, config: AppConfig | None = None, sync: SpaceSync | None = None):
    """All components and events of KARD Studio over `studio` (and the store's sync, if any)."""
    import gradio as gr

    config = config or AppConfig()
    with gr.Blocks(title="KARD Studio") as demo:
        ask_tab = AskTab(gr.JSON(visible=False, label="item"), gr.Textbox(visible=False, label="original rationale"),
                         gr.Textbox(visible=False, label="original source"),
                         gr.Textbox(visible=False, elem_id="kard-draft"),  # this tab's unsaved correction, as JSON
                         gr.Textbox(visible=False, elem_id="kard-tab"),  # this browser tab's id (TAB_JS)
                         None)
        header(demo, ask_tab, studio, config, sync)
        with gr.Tab("Ask & correct"):
            ask_layout(ask_tab, studio)
        with gr.Tab("Browse & history", elem_id="kard-browse-tab"):
            browse_tab = browse_layout(studio)
        if studio.is_curator:  # retrain on the corrections, compare rounds
            from kard.ui.loop_tab import add_loop_tab

            add_loop_tab(studio, config, curator_name, question=ask_tab.question, options=ask_tab.options,
                         kind=ask_tab.kind, picked=ask_tab.picked)
        wire_asking(ask_tab, studio)
        wire_editor(ask_tab, studio)
        wire_saving(ask_tab, browse_tab, studio)
        wire_drafts(demo, ask_tab, studio)
        wire_browsing(demo, browse_tab, studio)
    return demo


def header(demo: Any, t: AskTab, studio: Studio, config: AppConfig, sync: SpaceSync | None) -> None:
    import gradio as gr

    with gr.Row(equal_height=True):
        gr.Markdown("# KARD Studio\nKnowledge-augmented reasoning distillation: retrieve, reason, compare, correct.")
        t.mode_line = gr.Markdown(elem_id="kard-mode")
        if config.on_spaces and studio.is_curator:
            gr.LoginButton(size="sm", scale=0)
    about = gr.Markdown(about_student(config), elem_id="kard-about")
    if studio.is_curator:  # a retrained round may answer instead of the configured student: the note follows it
        about_now = partial(about_serving, studio, config)
        demo.load(about_now, None, about, **QUIET)
        gr.Timer(30).tick(about_now, None, about, **QUIET)
    notice = storage_notice(config, sync)
    if notice is not None:  # the sync's "last synced" line, or why saves would not survive a restart
        sync_line = gr.Markdown(notice, elem_id="kard-sync")
        if sync is not None:
            gr.Timer(30).tick(sync.status_markdown, None, sync_line, **QUIET)
            demo.load(sync.status_markdown, None, sync_line, **QUIET)


def about_student(config: AppConfig, student: str | None = None) -> str:
    """The note under the title: which model answers (`student`, else the configured one), how often it is right,
    and that nothing here is advice."""
    student = student or config.student
    if Path(student).resolve() == SHIPPED_STUDENT.resolve():
        return ABOUT_SHIPPED
    return ABOUT_OTHER.format(name=shown_path(student))


def about_serving(studio: Studio, config: AppConfig) -> str:
    """The note for the student answering now: the serving round's (curator mode, after a retrain), else the
    configured one."""
    served = studio.serving_now()
    return about_student(config, served[0] if served else None)


def how_it_works(studio: Studio) -> str:
    return HOW_IT_WORKS.format(compare=CURATOR_COMPARE if studio.is_curator else DEMO_COMPARE)


def ask_layout(t: AskTab, studio: Studio) -> None:
    import gradio as gr

    with gr.Row():
        with gr.Column(scale=3):
            t.picked = quiet(gr.Dropdown, asking.question_choices(studio), value=None, label="Demo question",
                             info="pick one, or type your own below", elem_id="kard-picked")
            t.question = gr.Textbox(label="Question", lines=3, max_lines=8, elem_id="kard-question")
            t.options = gr.Textbox(label="Options", lines=3, max_lines=8, elem_id="kard-options",
                                   placeholder="A) first  B) second ...  (leave empty for a yes/no or open question)")
            t.kind = quiet(gr.Radio, KIND_CHOICES, value="auto", label="Ask as", elem_id="kard-kind",
                           info="auto: options typed -> multiple choice, else yes/no or open by the question")
            with gr.Row():
                t.ask_btn = gr.Button("Ask the student", variant="primary", elem_id="kard-ask")
                t.next_btn = gr.Button("Next question", elem_id="kard-next")
                t.api_ask = gr.Button(visible=False)
                t.handed_out, t.asked, t.turns = gr.State(False), gr.State(None), gr.State(AskTurns())
                t.last_saved, t.seen = gr.State(""), gr.State(None)
                t.warned, t.proceed = gr.State(None), gr.State(True)
        with gr.Column(scale=2):
            t.status = gr.HTML(message("Pick a demo question or type one, then ask."), elem_id="kard-status")
            gr.Markdown(how_it_works(studio))
            gr.Markdown(SHORTCUTS_HELP)
    with gr.Row(equal_height=True):
        with gr.Column(min_width=CARD_MIN_WIDTH):  # gr.HTML's own min_width does not reach the page (Gradio 6.31)
            t.student_html = gr.HTML(elem_id="kard-student")
        with gr.Column(min_width=CARD_MIN_WIDTH):
            t.teacher_html = gr.HTML(elem_id="kard-teacher")
    t.diff_html = gr.HTML(elem_id="kard-compare-diff")
    with gr.Accordion("Retrieved passages: BM25 and reranker", open=True):
        t.rerank_html = gr.HTML(elem_id="kard-rerank")
    gr.Markdown("## Correction")
    if not studio.is_curator:
        gr.Markdown(DEMO_SAVE_NOTE, elem_id="kard-demo-note")
    with gr.Row():
        with gr.Column(scale=3):
            t.editor_label = gr.Markdown("Ask a question: the editor fills with the teacher's rationale "
                                         "(or with your saved correction of it).", elem_id="kard-editor-label")
            t.editor = gr.Textbox(label="Corrected rationale", lines=7, max_lines=20, elem_id="kard-editor")
            with gr.Row():
                t.use_teacher = gr.Button("Use teacher's rationale", size="sm", elem_id="kard-use-teacher")
                t.use_student = gr.Button("Use student's rationale", size="sm", elem_id="kard-use-student")
            t.edit_diff = gr.HTML(elem_id="kard-edit-diff")
        with gr.Column(scale=2):
            correction_controls(t, studio)


def correction_controls(t: AskTab, studio: Studio) -> None:
    import gradio as gr

    # Every letter is a valid value from the start (hidden until a question shows its own), so an API client
    # can save without calling /compare first; curating.save checks the answer against the question.
    t.answer = answer_radio(ANY_LETTER, label="Correct answer", elem_id="kard-answer", visible=False)
    t.answer_text = gr.Textbox(label="Correct answer (a few words)", visible=False, max_lines=2,
                               elem_id="kard-answer-text")
    t.rating = rating_radio(label="Rating of the student's rationale (1 bad - 5 good)", elem_id="kard-rating")
    # a radio cannot be unticked: a rating clicked by mistake, or one to take back from a saved correction
    t.clear_rating = gr.Button("No rating", size="sm", elem_id="kard-rating-clear")
    # /save's arguments: a value not among the choices is a one-line error to an API caller, and no traceback
    t.tags = quiet(gr.CheckboxGroup, list(ERROR_TAGS), label="Error tags", elem_id="kard-tags")
    t.marks = [quiet(gr.Radio, list(RELEVANCE_MARKS), label=f"Passage {i + 1}", visible=False,
                     elem_id=f"kard-mark-{i}") for i in range(MAX_MARKED)]
    t.note = gr.Textbox(label="Note", lines=2, elem_id="kard-note")
    t.confirm = gr.Checkbox(label="Save anyway (the rationale states a different answer)", visible=False,
                            elem_id="kard-confirm")
    # enabled in the demo too: a click (or Ctrl+S) says why nothing is saved and how to run a copy that saves
    t.save_btn = gr.Button("Save correction" if studio.is_curator else "Save (curator mode only)",
                           variant="primary", elem_id="kard-save")
    t.save_msg = gr.HTML(elem_id="kard-save-msg")


BROWSE_WIDTHS = ["20%", "44px", "28%", "10%", "10%", "10%", "70px", "12%", "auto", "auto"]
"""The browse table's columns (curating.BROWSE_COLUMNS) as shares of its width, so that on a phone the item, question
and the student, curated and gold answers all fit on the screen (the item id and question wrap); the rest scroll."""


def browse_layout(studio: Studio) -> BrowseTab:
    import gradio as gr

    with gr.Row():
        tag_filter = gr.Dropdown(["", *ERROR_TAGS], value="", label="Error tag")
        curator_filter = gr.Dropdown([""], value="", label="Curator", allow_custom_value=True)
        disagreements = gr.Checkbox(True, label="Disagreements first")
        refresh = gr.Button("Refresh", elem_id="kard-refresh")
    table = gr.Dataframe(headers=curating.BROWSE_COLUMNS, value=[], interactive=False, wrap=True, elem_id="kard-table",
                         column_widths=BROWSE_WIDTHS)
    empty_note = gr.HTML(elem_id="kard-browse-empty")
    with gr.Row():
        item_pick = gr.Dropdown([], label="Item", allow_custom_value=True, elem_id="kard-item", scale=2,
                                min_width=300)  # a whole line on a phone: item ids are long
        revision_pick = gr.Dropdown([], label="Revision", elem_id="kard-revision")
        revert_btn = gr.Button("Revert to this revision", interactive=studio.is_curator, elem_id="kard-revert")
    revert_msg = gr.HTML()
    history_html = gr.HTML(elem_id="kard-history")
    return BrowseTab(tag_filter, curator_filter, disagreements, refresh, table, item_pick, revision_pick, revert_btn,
                     revert_msg, history_html, empty_note, gr.State(None))


def wire_asking(t: AskTab, studio: Studio) -> None:
    asked, compared = partial(ask, studio), partial(compare, studio, len(t.compare_outputs))
    # The API: /ask, then /compare with the item it returned (or either alone); the page's events are private.
    t.api_ask.click(asked, t.ask_inputs, t.ask_outputs, api_name="ask", **ASKING).success(
        compared, [t.item], t.compare_outputs, api_name="compare", **COMPARING)
    wire_page_asking(t, studio)


def wire_page_asking(t: AskTab, studio: Studio) -> None:
    """Ask, "Ask as" and Next question. Each click asks at once (trigger_mode "multiple"): a newer ask supersedes
    the one running (AskTab.turns), so the question last asked is the one answered. The ask hands its item to the
    compare step (AskTab.asked), which sets AskTab.item together with the editor: what Save stores is always the
    item the editor was filled for."""
    ask_outputs = [t.rerank_html, t.student_html, t.status, t.asked, t.teacher_html, t.handed_out, t.editor,
                   t.editor_label]
    # a new item resets the review controls, and clears the save message and its confirmation box
    page_compare_outputs = [*t.compare_outputs, t.rating, t.tags, t.note, t.save_msg, t.confirm]
    compared_on_page = partial(compare_when_handed_out, partial(compare, studio, len(t.compare_outputs), review=True),
                               len(page_compare_outputs), t.compare_outputs.index(t.editor),
                               label_at=t.compare_outputs.index(t.editor_label))
    compare_args = (compared_on_page, [t.asked, t.handed_out, t.turns], page_compare_outputs)
    # Ask, Next question and an "Ask as" switch stop once, with a warning, where they would replace an unsaved
    # correction.
    check_inputs = [t.item, t.editor, t.original, t.last_saved, t.warned, t.rating, t.tags, t.note, *t.marks]

    def ask_clicked(turns: AskTurns, *values: Any):
        yield from ask_checked(studio, *values, turns=turns)

    def kind_switched(turns: AskTurns, *values: Any):
        yield from ask_as_switched(studio, *values, turns=turns)

    def ask_if_checked(turns: AskTurns, text, options_text, picked_id, how, go_on: bool):
        """Next question's ask, unless the unsaved-correction check stopped it."""
        if not go_on:
            yield [*skips(ASK_OUTPUTS), False, *skips(2)]
            return
        yield from ask_on_page(studio, text, options_text, picked_id, how, turns)

    for trigger, event in ((t.ask_btn.click, ask_clicked), (t.kind.input, kind_switched)):
        trigger(event, [t.turns, *t.ask_inputs, *check_inputs], [*ask_outputs, t.warned], **PAGE_ASKING).success(
            *compare_args, **PAGE_COMPARING)
    t.picked.input(lambda qid: (*asking.pick(studio, qid), "auto"), [t.picked], [t.question, t.options, t.kind],
                   **PRIVATE)
    (t.next_btn.click(partial(next_question, studio), [t.picked, *check_inputs],
                      [t.picked, t.question, t.options, t.kind, t.status, t.warned, t.proceed], **PRIVATE)
     .success(ask_if_checked, [t.turns, *t.ask_inputs, t.proceed], ask_outputs, **PAGE_ASKING)
     .success(*compare_args, **PAGE_COMPARING))


EDITOR_OUTPUTS = 5
"""What starting the editor again changes: the editor, its original and source, its label and the word diff."""


def use_rationale(studio: Studio, whose: str, current: dict | None, rationale: str, original: str, last_saved: str,
                  warned: Sequence[Any] | None, turns: AskTurns | None = None) -> tuple:
    """"Use teacher's / student's rationale": the editor starts again from it (EDITOR_OUTPUTS updates, then what a
    warning armed). An unsaved correction is kept after a warning; the same click again replaces it. (The rating,
    tags and note stay as they are, so only the editor's text is checked.) Refused, changing nothing, while the
    editor is read-only for a new ask (`turns`, as Save is)."""
    import gradio as gr

    refusal = use_refusal(turns, whose)
    if refusal:
        gr.Warning(esc(refusal))
        return *skips(EDITOR_OUTPUTS), gr.skip()
    if loses_correction(studio, None, current, rationale, original, last_saved, warned, whose):
        gr.Warning(esc(REPLACE_WARNING.format(whose=whose)))
        return *skips(EDITOR_OUTPUTS), warned_for(whose, rationale)
    try:
        text, label = asking.editor_text(studio, current, whose)
    except KardError as error:
        warn(error)
        return *skips(EDITOR_OUTPUTS), gr.skip()
    return text, text, label, editing_label(label), live_diff(text, text), None


def wire_editor(t: AskTab, studio: Studio) -> None:
    inputs = [t.item, t.editor, t.original, t.last_saved, t.warned, t.turns]
    outputs = [t.editor, t.original, t.original_source, t.editor_label, t.edit_diff, t.warned]
    t.use_teacher.click(partial(use_rationale, studio, "teacher"), inputs, outputs, **PRIVATE)
    t.use_student.click(partial(use_rationale, studio, "student"), inputs, outputs, **PRIVATE)
    t.editor.input(live_diff, [t.original, t.editor], [t.edit_diff], trigger_mode="always_last", **QUIET)
    t.clear_rating.click(None, None, t.rating, js=CLEAR_RATING_JS, **QUIET)  # in the page: works while it is down


def save(studio: Studio, current: dict | None, edit: Edit, confirmed: bool, curator: str | None, seen=None):
    """Save, or say why not (and ask for the confirmation box when the rationale disagrees); the third output is
    the rationale just saved (AskTab.last_saved, a State the API does not show), unchanged when nothing was; the
    fourth the revision saved or told of (AskTab.seen: Save again goes on top of it)."""
    import gradio as gr

    try:
        result = curating.save(studio, current, edit, curator, bool(confirmed), seen)
    except KardError as error:
        return warn(error), gr.skip(), gr.skip(), gr.skip()
    if result.needs_confirmation:
        gr.Warning(esc(result.message))
        return message(result.message, "warn"), gr.update(visible=True, value=False), gr.skip(), gr.skip()
    if not result.saved:  # someone saved the question since the editor opened it
        gr.Warning(esc(result.message))
        return message(result.message, "warn"), gr.skip(), gr.skip(), result.seen
    if result.warning:  # saved into a database started afresh: say so where the save is confirmed
        gr.Warning(esc(result.warning))
        return message(f"{result.message} {result.warning}", "warn"), gr.update(visible=False, value=False), \
            edit.rationale, result.seen
    gr.Info(esc(result.message))
    return message(result.message, "info"), gr.update(visible=False, value=False), edit.rationale, result.seen


def draft_after_save(last_saved: str | None, rationale: str | None):
    """The tab's draft once a save ended: dropped when the editor's text is saved, kept when the save failed
    (a locked database, a missing confirmation), so a page refresh still brings the correction back."""
    import gradio as gr

    saved = bool(last_saved) and last_saved.strip() == (rationale or "").strip()
    return "" if saved else gr.skip()


def wire_saving(t: AskTab, b: BrowseTab, studio: Studio) -> None:
    import gradio as gr

    # The /save API's parameters, in the order API clients send them.
    # turns: the page's AskTurns, a State (API clients send none: Gradio fills it in), says whether the editor
    # is read-only for a new ask; its text and item are then still the previous question's.
    def save_event(current, rationale, letter, rating, tags, m1, m2, m3, m4, m5, note, confirmed, original,
                   original_source, text=None, turns=None, seen=None, request: gr.Request = None,
                   profile: gr.OAuthProfile | None = None):
        refusal = save_refusal(turns)
        if refusal:
            gr.Warning(esc(refusal))
            return message(refusal, "warn"), gr.skip(), gr.skip(), gr.skip()
        edit = read_edit(current, rationale, letter, text, rating, tags, note, original, original_source,
                         m1, m2, m3, m4, m5)  # one mark per slot (MAX_MARKED)
        return save(studio, current, edit, confirmed, curator_name(request, profile), seen)

    inputs = [t.item, t.editor, t.answer, t.rating, t.tags, *t.marks, t.note, t.confirm, t.original,
              t.original_source, t.answer_text, t.turns, t.seen]
    saved = t.save_btn.click(save_event, inputs, [t.save_msg, t.confirm, t.last_saved, t.seen], api_name="save")
    saved.success(partial(browse, studio), b.filters, b.outputs, **PRIVATE)
    # a save of the item Browse shows: its history shows the new revision, and a revert goes on top of it
    saved.success(partial(history_after_save, studio), [b.item_pick, t.seen], b.history_outputs, **PRIVATE)
    saved.success(draft_after_save, [t.last_saved, t.editor], [t.draft], **QUIET).then(
        None, [t.draft, t.tab], None, js=KEEP_DRAFT_JS, **PRIVATE)


def kept_draft(studio: Studio, sealed: dict | None, edit: Edit, last_saved: str | None = None) -> dict | None:
    """The draft a tab keeps of the editor (`curating.draft`), or None: in the demo (it saves nothing), and where
    nothing differs from what the editor started from or was saved (`curating.unsaved_draft`)."""
    if not studio.is_curator or not sealed:
        return None
    try:
        item = AskedItem.from_dict(sealed)
    except (KeyError, TypeError, ValueError):
        return None
    saved = asking.saved_revision(studio, item.question)
    if not curating.unsaved_draft(item, edit, saved, asking.start_answer(item, saved), last_saved):
        return None
    return curating.draft(sealed, edit)


def page_record(studio: Studio, sealed: dict | None, edit: Edit, last_saved: str | None = None,
                seen: dict | None = None) -> dict | None:
    """The editor's controls over a sealed item as the tab keeps them (`curating.draft`), "unsaved" saying whether they
    hold a correction not saved (`kept_draft`), and "seen": the revision this page saved last or was told of
    (AskTab.seen), so that a save after a reload goes on top of it (`restored_seen`); None in the demo and without an
    item. Typed text the server never saw goes into the last one (TAB_JS), so it is kept whether or not it was
    unsaved."""
    if not studio.is_curator or not sealed:
        return None
    kept = kept_draft(studio, sealed, edit, last_saved)
    record = kept or curating.draft(sealed, edit)
    told = conflicts.told_revision(str(sealed.get("item_id")), seen)
    return {**record, "unsaved": kept is not None, "seen": seen if told is not None else None} if record else None


def keep_draft(studio: Studio, label: str | None, last_saved: str | None, *values: Any, seen: dict | None = None):
    """The tab's record (JSON, `page_record`) of the editor's controls (AskTab.edit_inputs), "" where there is none;
    left as it is while the student or the teacher answers (`label`, the editor's, says so): the new item is on the
    page then, the editor's text is not."""
    import gradio as gr

    if label in LOCKED_LABELS:
        return gr.skip()
    record = page_record(studio, values[0], read_edit(*values), last_saved, seen)
    return json.dumps(record) if record else ""


def keep_page(studio: Studio, label: str | None, last_saved: str | None, seen: dict | None, *values: Any):
    """`keep_draft` as the page's events call it: with AskTab.seen before the editor's controls."""
    return keep_draft(studio, label, last_saved, *values, seen=seen)


def wire_drafts(demo: Any, t: AskTab, studio: Studio) -> None:
    import gradio as gr

    # On change, not input: a new item resets the review controls in the update that sets the item, and a draft
    # written on the item's change alone could read them before that update reached them.
    # And on the revision the page saved or was told of (AskTab.seen), which the tab's record carries (`page_record`).
    gr.on([t.editor.change, t.answer.change, t.answer_text.change, t.rating.change, t.tags.change, t.note.change,
           *[m.change for m in t.marks], t.item.change, t.seen.change], partial(keep_page, studio),
          [t.editor_label, t.last_saved, t.seen, *t.edit_inputs], [t.draft],
          trigger_mode="always_last", **QUIET).then(None, [t.draft, t.tab], None, js=KEEP_DRAFT_JS, **PRIVATE)

    restored = [t.mode_line, t.question, t.options, t.picked, t.rerank_html, t.student_html, t.teacher_html,
                t.diff_html, t.item, t.editor, t.original, t.original_source, t.answer, t.rating, t.tags, t.note,
                t.edit_diff, t.status, *t.marks, t.answer_text, t.kind, t.editor_label]

    def restore(draft_json: str, this_tab: str, request: gr.Request, profile: gr.OAuthProfile | None):
        return restore_draft(studio, curating.read_draft(draft_json), curator_name(request, profile), len(restored))

    demo.load(None, None, [t.tab, t.draft], js=TAB_JS, **PRIVATE).then(
        restore, [t.draft, t.tab], restored, **QUIET).then(restored_seen, [t.draft, t.item], [t.seen], **QUIET)


def restored_seen(draft_json: str | None, sealed: dict | None) -> dict | None:
    """AskTab.seen after a reload: the revision this tab saved last or was told of, which the tab's record of the item
    carries (`page_record`), where that item is the one the page restored (`sealed`); else None. (A page could send
    any revision here: the check guards against overwriting others' work, it is no access control.)"""
    kept = curating.read_draft(draft_json)
    if not kept or not sealed or kept["item"].get("seal") != sealed.get("seal"):
        return None
    try:
        item_id = AskedItem.from_dict(sealed).item_id
    except (KeyError, TypeError, ValueError):
        return None
    told = conflicts.told_revision(item_id, kept.get("seen"))
    return conflicts.seen_revision(item_id, told) if told is not None else None


def mode_line(studio: Studio, who: str | None) -> str:
    if not studio.is_curator:
        return "**Demo mode** · read-only: corrections cannot be saved here"
    return f"**Curator mode** · signed in as **{who}**" if who else "**Curator mode** · sign in to save"


def restore_draft(studio: Studio, saved: dict | None, who: str | None, width: int) -> list:
    """The page as the draft left it (the outputs `restored` lists in wire_drafts); the mode line alone without one,
    in the demo, and where the draft holds nothing unsaved (`kept_draft`)."""
    plain = [mode_line(studio, who), *skips(width - 1)]
    if not saved or not saved.get("item"):
        return plain
    try:
        item = AskedItem.from_dict(saved["item"])
        if kept_draft(studio, saved["item"], curating.draft_edit(saved)) is None:
            return plain
    except (KeyError, TypeError, ValueError):  # a draft this version cannot read: start afresh
        return plain
    return [mode_line(studio, who), *restored_page(studio, item, saved)]


RESTORED = "Restored your unsaved correction from this browser."
RESTORED_UNSEALED = (
    "Restored your unsaved correction from this browser, but it cannot be saved as it is: this app's item seal key "
    "changed since its question was asked (a new seal key file or KARD_SEAL_KEY), or the item was changed. Fix: copy "
    "your correction from the editor, ask the question again (Ask warns once about the unsaved edit; Ask again goes "
    "on), paste the correction back and save")


def restored_page(studio: Studio, item: AskedItem, saved: dict) -> list:
    """The outputs after the mode line that `restore_draft` fills from a draft of `item`."""
    sealed, q, source = saved["item"], item.question, saved.get("original_source") or ""
    status = message(RESTORED, "info") if studio.sealed_here(sealed) else message(RESTORED_UNSEALED, "warn")
    radio, text_box = answer_updates(q, saved.get("answer"))
    how = q.kind if item.kind_reason.startswith("chosen by you") else "auto"
    original, rationale = saved.get("original", ""), saved.get("rationale", "")
    return [q.text, format_options(q.options), q.id if q.id in studio.questions else None,
            rerank_html(item), student_card(item), teacher_card(item, restored_failure(studio, item)),
            compare_html(item), sealed,
            rationale, original, source, radio, saved.get("rating"),
            saved.get("tags") or [], saved.get("note", ""), live_diff(original, rationale),
            status,
            *mark_updates(sealed, list(saved.get("marks") or [])), text_box, how,
            editing_label(source) if source else skips(1)[0]]


RESTORED_TEACHER_FAILED = ("it gave no rationale when this question was asked (why was not kept with the draft). "
                           "Fix: ask the question again to get the teacher's rationale")


def restored_failure(studio: Studio, item: AskedItem) -> LiveFailure | None:
    """Why a restored draft's item has no teacher's rationale where a live teacher is configured: it failed then (the
    editor opens only once the teacher has answered or failed); None otherwise (the card says how to set one up)."""
    if item.teacher is None and studio.teacher_factory is not None:
        return LiveFailure(None, RESTORED_TEACHER_FAILED)
    return None


NOT_REFRESHED = "The table was not refreshed:"
"""Before the store's error under a table a read failed to fill (BrowseTab.empty_note): it shows what it last showed."""
HISTORY_UNREAD = "The history of {item} could not be read:"


def browse(studio: Studio, tag: str, curator: str, first: bool):
    """The table, the item picker's and the curator filter's choices, and why the table is empty (BrowseTab.outputs)."""
    import gradio as gr

    try:
        rows = curating.browse(studio, tag or None, curator or None, bool(first))
        names = [""] + studio.store.curators(latest=True)  # those the filter finds a current item of
    except KardError as error:  # the table keeps what it last showed (nothing on a page load): the note says why
        warn(error)
        return gr.skip(), gr.skip(), gr.skip(), message(f"{NOT_REFRESHED} {page_text(error)}", "error")
    recreated = curating.recreated_notice(studio)
    if recreated:
        note = message(recreated, "warn")
    else:
        note = "" if rows else message(curating.empty_table_reason(studio, tag or None, curator or None))
    return rows, gr.update(choices=[r[0] for r in rows]), gr.update(choices=names), note


def wire_browsing(demo: Any, b: BrowseTab, studio: Studio) -> None:
    import gradio as gr

    browsed = partial(browse, studio)
    for trigger in (b.refresh.click, b.tag_filter.change, b.curator_filter.change, b.disagreements.change):
        trigger(browsed, b.filters, b.outputs, **PRIVATE)
    b.refresh.click(partial(reshow_history, studio), [b.item_pick], b.history_outputs, **PRIVATE)
    demo.load(browsed, b.filters, b.outputs, **QUIET)

    def pick_row(event: gr.SelectData):
        row = getattr(event, "row_value", None) or []
        return gr.update(value=row[0]) if row else gr.skip()

    b.table.select(pick_row, None, [b.item_pick], **PRIVATE)

    b.item_pick.change(partial(show_history, studio), [b.item_pick], b.history_outputs, **PRIVATE)

    def revert(item_id, revision, shown, request: gr.Request, profile: gr.OAuthProfile | None):
        return revert_to(studio, item_id, revision, shown, curator_name(request, profile))

    b.revert_btn.click(revert, [b.item_pick, b.revision_pick, b.shown],
                       [b.revert_msg, b.history_html, b.revision_pick, b.shown],
                       **PRIVATE).success(browsed, b.filters, b.outputs, **PRIVATE)


def show_history(studio: Studio, item_id: str | None, reverted: bool = False):
    """The item's history, the Revision picker and the latest revision shown (BrowseTab.shown: a revert goes on top
    of it). The picker starts on the revision before the latest (`curating.revert_choice`), or on the latest right
    after a revert made it (`reverted`), so Revert pressed again is refused instead of undoing the revert. Where the
    store cannot be read, the history says why (the page's text of the error) and the picker is emptied."""
    import gradio as gr

    try:
        html, revisions = curating.history(studio, item_id)
    except KardError as error:
        warn(error)
        said = message(f"{HISTORY_UNREAD.format(item=item_id)} {page_text(error)}", "error")
        return said, gr.update(choices=[], value=None), None
    shown = conflicts.seen_revision(item_id, revisions[-1]) if item_id and revisions else None
    return html, gr.update(choices=revisions, value=curating.revert_choice(revisions, reverted)), shown


def reshow_history(studio: Studio, item_id: str | None):
    """`show_history` again for the item Browse shows (Refresh: someone may have saved it since); left as it is
    without an item picked."""
    import gradio as gr

    return show_history(studio, item_id) if item_id else (gr.skip(), gr.skip(), gr.skip())


def history_after_save(studio: Studio, item_id: str | None, seen: dict | None):
    """`reshow_history` after a save where Browse shows the item saved (`seen`, AskTab.seen, names it): the history
    shows the new revision, and a revert goes on top of it; left as it is after a save of another item."""
    import gradio as gr

    if not isinstance(seen, dict) or not item_id or seen.get("item_id") != item_id:
        return gr.skip(), gr.skip(), gr.skip()
    return reshow_history(studio, item_id)


def revert_to(studio: Studio, item_id: str | None, revision: Any, shown: dict | None, curator: str | None):
    """Revert, or say why not: the message, the history, the Revision picker and BrowseTab.shown. Where someone saved
    the item after the history was shown, the history shows their revision and Revert again goes on top of it."""
    import gradio as gr

    try:
        text = curating.revert(studio, item_id, revision, curator, shown)
    except curating.RevertConflict as conflict:
        gr.Warning(esc(str(conflict)))
        try:
            html, revisions = curating.history(studio, item_id)
        except KardError as error:
            return message(f"{conflict} {page_text(error)}", "warn"), gr.skip(), gr.skip(), conflict.seen
        return message(str(conflict), "warn"), html, gr.update(choices=revisions), conflict.seen
    except KardError as error:
        return warn(error), gr.skip(), gr.skip(), gr.skip()
    gr.Info(esc(text))
    return message(text), *show_history(studio, item_id, reverted=True)

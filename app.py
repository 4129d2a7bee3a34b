"""KARD Studio in the browser: ask, inspect retrieval, compare teacher and student, correct, browse.

`python app.py` starts it offline on the embedded demo (http://127.0.0.1:7860). Everything the
buttons do lives in `kard.ui.handlers` (plain, tested functions); this file only wires Gradio
components to them. Nothing heavy runs at import: the student loads in a background thread at
launch (or on the first question).

Modes: `--mode demo` (default; read-only, for a public Space) and `--mode curator` (saves need a
login: KARD_CURATOR_USER / KARD_CURATOR_PASSWORD locally, the Hugging Face login button on a Space).
On a Space, curator mode keeps the store on persistent storage (/data) and, with KARD_SYNC_REPO, pushes
it to a dataset repo on a schedule (kard/space_sync.py; README "On a Hugging Face Space").
"""

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from kard.annotations import ERROR_TAGS, RELEVANCE_MARKS, AnnotationStore
from kard.ui.handlers import MAX_MARKED, MAX_TAB_DRAFTS, Studio, answer_choices
from kard.config import AppConfig, TeacherConfig, teacher_configured
from kard.errors import ConfigError, KardError
from kard.ui.login import ThrottledLogin
from kard.space_sync import SpaceSync, space_warnings, start_sync, storage_notice
from kard.ui.views import CSS, esc, message

log = logging.getLogger("kard.app")

TAB_JS = """() => {
  let tab = sessionStorage.getItem("kard-tab");
  if (!tab) { tab = crypto.randomUUID(); sessionStorage.setItem("kard-tab", tab); }
  return [tab, localStorage.getItem("kard-draft:" + tab) || ""];
}"""
"""(this tab's id, its saved draft): the id is kept by the tab across reloads and differs in every other
tab; each tab keeps its draft under its own localStorage key, so tabs never overwrite each other."""
KEEP_DRAFT_JS = """(draft, tab) => {
  if (!tab) return;
  const key = "kard-draft:" + tab;
  if (draft) { localStorage.setItem(key, draft); } else { localStorage.removeItem(key); }
  const keys = Object.keys(localStorage).filter(k => k.startsWith("kard-draft:"));
  const time = k => { try { return JSON.parse(localStorage.getItem(k)).saved_at || 0; } catch (e) { return 0; } };
  keys.sort((a, b) => time(b) - time(a)).slice(%d).forEach(k => localStorage.removeItem(k));
}"""
"""Store (or, when empty, drop) this tab's draft; keep the newest few tabs' drafts."""

SHORTCUTS_JS = """
<script>
document.addEventListener("keydown", (event) => {
  const mod = event.ctrlKey || event.metaKey;
  const click = (id) => { const el = document.getElementById(id); if (el) { event.preventDefault(); el.click(); } };
  if (mod && event.key.toLowerCase() === "s") click("kard-save");
  else if (mod && event.key === "Enter") click("kard-ask");
  else if (event.altKey && event.key.toLowerCase() === "n") click("kard-next");
});
</script>
"""
HOW_IT_WORKS = """**How it works.** BM25 finds candidate passages for the question; the KARD reranker (trained to
find, from the question alone, the passages a teacher's rationale would) reorders them; the top-k go to the small student, which writes a rationale and an answer. Compare it
with the teacher's rationale, correct it below, and every save becomes a revision for retraining.
Leave the options empty for a free question: it is answered yes/no or in a few words."""
ANY_LETTER = [(letter, letter) for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"]
"""The answer radio's choices before a question narrows them (see build_app)."""
KIND_CHOICES = [("auto", "auto"), ("multiple choice", "choice"), ("yes/no", "yesno"), ("open", "open")]
"""The "Ask as" control: (label, kard.kinds kind); "auto" decides from the question and its options."""
SHORTCUTS_HELP = "Shortcuts: **Ctrl+Enter** ask · **Ctrl+S** save · **Alt+N** next question"


# -- services --------------------------------------------------------------------------------------
def default_pipeline_factory(config: AppConfig):
    """The default stack: default knowledge base, shipped student and reranker (each as configured)."""
    def load() -> Any:
        from kard.pipeline import Pipeline

        return Pipeline.load(student=config.student, knowledge=config.knowledge, reranker=config.reranker,
                             engine=config.engine)

    return load


def default_teacher_factory() -> Any:
    """A live teacher when $KARD_TEACHER_MODEL or $OPENAI_BASE_URL is set, else None."""
    if not teacher_configured():
        return None
    cache: dict[str, Any] = {}

    def load() -> Any:
        if "teacher" not in cache:
            from kard.teacher.client import Teacher

            cache["teacher"] = Teacher(TeacherConfig.from_env())
        return cache["teacher"]

    return load


def default_questions(config: AppConfig) -> list:
    from kard.datasets import load_demo_questions, load_questions

    try:
        questions = list(load_demo_questions())
    except KardError as error:  # the app still answers typed questions without the demo list
        log.warning("no demo questions: %s", error)
        questions = []
    if config.questions is not None:
        questions += load_questions(config.questions)
    return questions


def make_studio(config: AppConfig) -> Studio:
    questions = default_questions(config)  # before the store: a bad question file must not leave a new database
    store = AnnotationStore(config.annotations_db, read_only=config.mode == "demo")
    return Studio(default_pipeline_factory(config), store, questions,
                  teacher_factory=default_teacher_factory(), mode=config.mode,
                  max_question_chars=config.max_question_chars, curators=config.curators)


def curator_name(request: Any, profile: Any) -> str | None:
    """Who is saving: the Hugging Face user on a Space, else the local login name."""
    if profile is not None:
        return getattr(profile, "username", None)
    return getattr(request, "username", None) if request is not None else None


# -- the Blocks ------------------------------------------------------------------------------------
def build_app(studio: Studio, config: AppConfig | None = None, sync: SpaceSync | None = None):
    """All components and events of KARD Studio, over `studio`'s handlers (and the store's sync, if any)."""
    import gradio as gr

    config = config or AppConfig()
    is_curator = studio.mode == "curator"

    def warn(error: Exception) -> str:
        gr.Warning(esc(str(error)))  # toasts render HTML: the person's own text must stay text
        return message(str(error), "error")

    def mark_updates(item: dict | None) -> list:
        used = (item or {}).get("used", [])
        return [gr.update(visible=i < len(used), value=None,
                          label=f"Passage {i + 1}: {used[i]['title'] or used[i]['id']}" if i < len(used) else "")
                for i in range(MAX_MARKED)]

    with gr.Blocks(title="KARD Studio") as demo:
        item = gr.JSON(visible=False, label="item")
        original = gr.Textbox(visible=False, label="original rationale")
        original_source = gr.Textbox(visible=False, label="original source")
        draft = gr.Textbox(visible=False, elem_id="kard-draft")  # this tab's unsaved correction, as JSON
        tab = gr.Textbox(visible=False, elem_id="kard-tab")  # this browser tab's id (TAB_JS)

        with gr.Row(equal_height=True):
            gr.Markdown("# KARD Studio\nKnowledge-augmented reasoning distillation: retrieve, reason, compare, correct.")
            mode_line = gr.Markdown(elem_id="kard-mode")
            if config.on_spaces and is_curator:
                gr.LoginButton(size="sm", scale=0)
        notice = storage_notice(config, sync)
        if notice is not None:  # the sync's "last synced" line, or why saves would not survive a restart
            sync_line = gr.Markdown(notice, elem_id="kard-sync")
            if sync is not None:
                refresh_sync = sync.status_markdown
                gr.Timer(30).tick(refresh_sync, None, sync_line, api_visibility="private", show_progress="hidden")
                demo.load(refresh_sync, None, sync_line, api_visibility="private", show_progress="hidden")

        with gr.Tab("Ask & correct"):
            with gr.Row():
                with gr.Column(scale=3):
                    picked = gr.Dropdown(studio.question_choices(), value=None, label="Demo question",
                                         info="pick one, or type your own below", elem_id="kard-picked")
                    question = gr.Textbox(label="Question", lines=3, max_lines=8, elem_id="kard-question")
                    options = gr.Textbox(label="Options", lines=3, max_lines=8,
                                         placeholder="A) first  B) second ...  "
                                                     "(leave empty for a yes/no or open question)",
                                         elem_id="kard-options")
                    kind = gr.Radio(KIND_CHOICES, value="auto", label="Ask as", elem_id="kard-kind",
                                    info="auto: options typed -> multiple choice, "
                                         "else yes/no or open by the question")
                    with gr.Row():
                        ask_btn = gr.Button("Ask the student", variant="primary", elem_id="kard-ask")
                        next_btn = gr.Button("Next question", elem_id="kard-next")
                with gr.Column(scale=2):
                    status = gr.HTML(message("Pick a demo question or type one, then ask."), elem_id="kard-status")
                    gr.Markdown(HOW_IT_WORKS)
                    gr.Markdown(SHORTCUTS_HELP)
            with gr.Row(equal_height=True):
                student_html = gr.HTML(elem_id="kard-student")
                teacher_html = gr.HTML(elem_id="kard-teacher")
            diff_html = gr.HTML(elem_id="kard-compare-diff")
            with gr.Accordion("Retrieved passages: BM25 and reranker", open=True):
                rerank_html = gr.HTML(elem_id="kard-rerank")

            gr.Markdown("## Correction")
            with gr.Row():
                with gr.Column(scale=3):
                    editor_label = gr.Markdown("Ask a question: the editor fills with the teacher's rationale.")
                    editor = gr.Textbox(label="Corrected rationale", lines=7, max_lines=20, elem_id="kard-editor")
                    with gr.Row():
                        use_teacher = gr.Button("Use teacher's rationale", size="sm")
                        use_student = gr.Button("Use student's rationale", size="sm")
                    edit_diff = gr.HTML(elem_id="kard-edit-diff")
                with gr.Column(scale=2):
                    # Every letter is a valid value from the start (hidden until a question shows its own), so an
                    # API client can save without calling /compare first; Studio.save checks the question's options.
                    answer = gr.Radio(ANY_LETTER, label="Correct answer", elem_id="kard-answer", visible=False)
                    answer_text = gr.Textbox(label="Correct answer (a few words)", visible=False, max_lines=2,
                                             elem_id="kard-answer-text")
                    rating = gr.Radio([1, 2, 3, 4, 5], label="Rating of the student's rationale (1 bad - 5 good)",
                                      elem_id="kard-rating")
                    tags = gr.CheckboxGroup(list(ERROR_TAGS), label="Error tags", elem_id="kard-tags")
                    marks = [gr.Radio(list(RELEVANCE_MARKS), label=f"Passage {i + 1}", visible=False,
                                      elem_id=f"kard-mark-{i}") for i in range(MAX_MARKED)]
                    note = gr.Textbox(label="Note", lines=2, elem_id="kard-note")
                    confirm = gr.Checkbox(label="Save anyway (the rationale states a different answer)",
                                          visible=False, elem_id="kard-confirm")
                    save_btn = gr.Button("Save correction" if is_curator else "Save (curator mode only)",
                                         variant="primary", elem_id="kard-save", interactive=is_curator)
                    save_msg = gr.HTML(elem_id="kard-save-msg")

        with gr.Tab("Browse & history", elem_id="kard-browse-tab"):
            with gr.Row():
                tag_filter = gr.Dropdown(["", *ERROR_TAGS], value="", label="Error tag")
                curator_filter = gr.Dropdown([""], value="", label="Curator", allow_custom_value=True)
                disagreements = gr.Checkbox(True, label="Disagreements first")
                refresh = gr.Button("Refresh", elem_id="kard-refresh")
            table = gr.Dataframe(headers=Studio.BROWSE_COLUMNS, value=[], interactive=False, wrap=True,
                                 elem_id="kard-table")
            with gr.Row():
                item_pick = gr.Dropdown([], label="Item", allow_custom_value=True, elem_id="kard-item")
                revision_pick = gr.Dropdown([], label="Revision", elem_id="kard-revision")
                revert_btn = gr.Button("Revert to this revision", interactive=is_curator, elem_id="kard-revert")
            revert_msg = gr.HTML()
            history_html = gr.HTML(elem_id="kard-history")

        if is_curator:  # retrain on the corrections, compare rounds (kard/ui/loop_tab.py)
            from kard.ui.loop_tab import add_loop_tab

            add_loop_tab(studio, config, curator_name, question=question, options=options)

        # -- ask -> compare ---------------------------------------------------------------------------
        def ask(text: str, options_text: str, picked_id: str | None, how: str | None = "auto"):
            try:
                for update in studio.ask(text, options_text, picked_id, how or "auto"):
                    teacher = "" if update.item is None else gr.skip()
                    yield update.rerank_html, update.student_html, update.status_html, update.item or gr.skip(), teacher
            except KardError as error:
                yield gr.skip(), gr.skip(), warn(error), gr.skip(), gr.skip()

        def answer_updates(question_dict: dict, value: str | None) -> list:
            """The answer controls for a question's kind: the radio (letters, yes/no) or the text box (open)."""
            is_open = not answer_choices(question_dict)
            return [gr.update(choices=answer_choices(question_dict), value=None if is_open else value,
                              visible=not is_open),
                    gr.update(value=value if is_open else "", visible=is_open)]

        def compare(current: dict | None):
            if not current:  # the ask showed why it has no item; keep that message
                yield [gr.skip()] * (11 + MAX_MARKED)
                return
            try:
                for c in studio.compare_steps(current):
                    if c.partial:
                        yield [gr.skip(), c.teacher_html] + [gr.skip()] * (9 + MAX_MARKED)
                        continue
                    if c.warning:
                        gr.Warning(esc(c.warning))
                    radio, text_box = answer_updates(c.item["question"], c.editor_answer)
                    yield [gr.skip(), c.teacher_html, c.diff_html, c.editor_text, c.editor_text, c.editor_source,
                           f"Editing a copy of the **{c.editor_source}** rationale.", radio,
                           studio.live_diff(c.editor_text, c.editor_text), c.item, *mark_updates(c.item), text_box]
            except KardError as error:
                yield [warn(error)] + [gr.skip()] * (10 + MAX_MARKED)

        ask_inputs = [question, options, picked, kind]
        ask_outputs = [rerank_html, student_html, status, item, teacher_html]
        compare_outputs = [status, teacher_html, diff_html, editor, original, original_source, editor_label, answer,
                           edit_diff, item, *marks, answer_text]
        ask_event = ask_btn.click(ask, ask_inputs, ask_outputs, api_name="ask")
        ask_event.success(compare, [item], compare_outputs, api_name="compare")
        picked.input(lambda qid: (*studio.pick(qid), "auto"), [picked], [question, options, kind],
                     api_visibility="private")

        def ask_again(text: str, options_text: str, picked_id: str | None, how: str | None):
            """Switching "Ask as" re-asks the question that is there (nothing happens before one is typed)."""
            if not (text or "").strip():
                yield [gr.skip()] * len(ask_outputs)
                return
            yield from ask(text, options_text, picked_id, how)

        def compare_again(current: dict | None, text: str):
            if not (text or "").strip():  # nothing was asked again: keep the editor as it is
                yield [gr.skip()] * len(compare_outputs)
                return
            yield from compare(current)

        (kind.input(ask_again, ask_inputs, ask_outputs, api_visibility="private")
         .success(compare_again, [item, question], compare_outputs, api_visibility="private"))

        def next_question(current: str | None):
            qid = studio.next_question(current)
            text, opts = studio.pick(qid)
            return gr.update(value=qid), text, opts, "auto"

        (next_btn.click(next_question, [picked], [picked, question, options, kind], api_visibility="private")
         .success(ask, ask_inputs, ask_outputs, api_visibility="private")
         .success(compare, [item], compare_outputs, api_visibility="private"))

        # -- editor -----------------------------------------------------------------------------------
        def swap(current: dict | None, whose: str):
            try:
                text, label = studio.editor_text(current, whose)
            except KardError as error:
                warn(error)
                return [gr.skip()] * 5
            return text, text, label, f"Editing a copy of the **{label}** rationale.", studio.live_diff(text, text)

        swap_outputs = [editor, original, original_source, editor_label, edit_diff]
        use_teacher.click(lambda c: swap(c, "teacher"), [item], swap_outputs, api_visibility="private")
        use_student.click(lambda c: swap(c, "student"), [item], swap_outputs, api_visibility="private")
        editor.input(studio.live_diff, [original, editor], [edit_diff], api_visibility="private",
                     trigger_mode="always_last", show_progress="hidden")

        def save(current, rationale, chosen, stars, chosen_tags, m1, m2, m3, m4, m5, text_note, confirmed, orig,
                 orig_source, chosen_text=None, request: gr.Request = None, profile: gr.OAuthProfile | None = None):
            chosen_marks = [m1, m2, m3, m4, m5]  # one per mark slot (MAX_MARKED)
            try:
                result = studio.save(current, rationale, Studio.chosen_answer(current, chosen, chosen_text), stars,
                                     chosen_tags, chosen_marks, text_note, bool(confirmed),
                                     curator_name(request, profile), orig, orig_source)
            except KardError as error:
                return warn(error), gr.skip()
            if result.needs_confirmation:
                gr.Warning(esc(result.message))
                return message(result.message, "warn"), gr.update(visible=True, value=False)
            gr.Info(esc(result.message))
            return message(result.message, "info"), gr.update(visible=False, value=False)

        save_inputs = [item, editor, answer, rating, tags, *marks, note, confirm, original, original_source,
                       answer_text]
        saved = save_btn.click(save, save_inputs, [save_msg, confirm], api_name="save")
        saved.success(lambda *f: browse(*f), [tag_filter, curator_filter, disagreements],
                      [table, item_pick, curator_filter], api_visibility="private")
        saved.success(lambda: "", None, [draft], api_visibility="private", show_progress="hidden").then(
            None, [draft, tab], None, js=KEEP_DRAFT_JS % MAX_TAB_DRAFTS, api_visibility="private")

        # -- drafts -----------------------------------------------------------------------------------
        def keep_draft(current, rationale, chosen, stars, chosen_tags, *rest):
            *chosen_marks, text_note, orig, orig_source, chosen_text = rest
            kept = Studio.draft(current, rationale, Studio.chosen_answer(current, chosen, chosen_text), stars,
                                chosen_tags, text_note, chosen_marks, orig, orig_source)
            return json.dumps(kept) if kept else ""

        gr.on([editor.input, answer.input, answer_text.input, rating.input, tags.input, note.input,
               *[m.input for m in marks], item.change], keep_draft,
              [item, editor, answer, rating, tags, *marks, note, original, original_source, answer_text],
              [draft], api_visibility="private", trigger_mode="always_last", show_progress="hidden").then(
            None, [draft, tab], None, js=KEEP_DRAFT_JS % MAX_TAB_DRAFTS, api_visibility="private")

        def restore(draft_json: str, this_tab: str, request: gr.Request, profile: gr.OAuthProfile | None):
            saved = Studio.read_draft(draft_json)
            who = curator_name(request, profile)
            mode = (f"**Curator mode** · signed in as **{who}**" if who else "**Curator mode** · sign in to save") \
                if is_curator else "**Demo mode** · read-only: corrections cannot be saved here"
            if not saved or not saved.get("item"):
                return [mode] + [gr.skip()] * (19 + MAX_MARKED)
            from kard.ui.handlers import compare_html, rerank_html as rerank_view, student_card, teacher_card

            it = saved["item"]
            q = it["question"]
            marks_saved = list(saved.get("marks") or [])
            used = it.get("used", [])
            mark_values = [gr.update(visible=i < len(used), value=marks_saved[i] if i < len(marks_saved) else None,
                                     label=f"Passage {i + 1}: {used[i]['title'] or used[i]['id']}" if i < len(used) else "")
                           for i in range(MAX_MARKED)]
            from kard.prompts import format_options

            radio, text_box = answer_updates(q, saved.get("answer"))
            how = q.get("kind", "auto") if it.get("kind_reason", "").startswith("chosen by you") else "auto"
            return [mode, q["text"], format_options(q["options"]), q["id"] if q["id"] in studio.questions else None,
                    rerank_view(it), student_card(it), teacher_card(it), compare_html(it), it,
                    saved.get("rationale", ""), saved.get("original", ""), saved.get("original_source", ""),
                    radio, saved.get("rating"),
                    saved.get("tags") or [], saved.get("note", ""),
                    studio.live_diff(saved.get("original", ""), saved.get("rationale", "")),
                    message("Restored your unsaved correction from this browser.", "info"), *mark_values,
                    text_box, how]

        restored = [mode_line, question, options, picked, rerank_html, student_html, teacher_html, diff_html, item,
                    editor, original, original_source, answer, rating, tags, note, edit_diff, status, *marks,
                    answer_text, kind]
        demo.load(None, None, [tab, draft], js=TAB_JS, api_visibility="private").then(
            restore, [draft, tab], restored, api_visibility="private", show_progress="hidden")

        # -- browse -----------------------------------------------------------------------------------
        def browse(tag: str, curator: str, first: bool):
            try:
                rows = studio.browse(tag or None, curator or None, bool(first))
                names = [""] + studio.store.curators()
            except KardError as error:
                warn(error)
                return gr.skip(), gr.skip(), gr.skip()
            return rows, gr.update(choices=[r[0] for r in rows]), gr.update(choices=names)

        browse_outputs = [table, item_pick, curator_filter]
        for trigger in (refresh.click, tag_filter.change, curator_filter.change, disagreements.change):
            trigger(browse, [tag_filter, curator_filter, disagreements], browse_outputs, api_visibility="private")
        demo.load(browse, [tag_filter, curator_filter, disagreements], browse_outputs, api_visibility="private",
                  show_progress="hidden")

        def pick_row(event: gr.SelectData):
            row = getattr(event, "row_value", None) or []
            return gr.update(value=row[0]) if row else gr.skip()

        table.select(pick_row, None, [item_pick], api_visibility="private")

        def show_history(item_id: str | None):
            html, revisions = studio.history(item_id)
            return html, gr.update(choices=revisions, value=revisions[-1] if revisions else None)

        item_pick.change(show_history, [item_pick], [history_html, revision_pick], api_visibility="private")

        def revert(item_id, revision, request: gr.Request, profile: gr.OAuthProfile | None):
            try:
                text = studio.revert(item_id, revision, curator_name(request, profile))
            except KardError as error:
                return warn(error), gr.skip(), gr.skip()
            gr.Info(esc(text))
            html, revisions = studio.history(item_id)
            return message(text), html, gr.update(choices=revisions, value=revisions[-1])

        revert_btn.click(revert, [item_pick, revision_pick], [revert_msg, history_html, revision_pick],
                         api_visibility="private").success(browse, [tag_filter, curator_filter, disagreements],
                                                           browse_outputs, api_visibility="private")
    return demo


def queued(demo: Any, config: AppConfig) -> Any:
    """The app's queue: 4 events at once, and past `queue_size` waiting ones Gradio says the queue is full
    at once instead of piling up work (each waiting user sees their place and the expected wait)."""
    return demo.queue(default_concurrency_limit=4, max_size=config.queue_size)


def launch_options(config: AppConfig) -> dict[str, Any]:
    """Keyword arguments of `Blocks.launch` (Gradio 6 takes theme, css and head here)."""
    import gradio as gr

    options: dict[str, Any] = {
        "theme": gr.themes.Soft(primary_hue="indigo", secondary_hue="slate"),
        "css": CSS, "head": SHORTCUTS_JS, "server_name": config.host, "server_port": config.port,
        "footer_links": ["api", "settings"],
    }
    if config.mode == "curator" and not config.on_spaces:
        if not (config.curator_user and config.curator_password):
            raise ConfigError("curator mode needs a login. Fix: set KARD_CURATOR_USER and KARD_CURATOR_PASSWORD "
                              "(or run the read-only demo with --mode demo)")
        options["auth"] = ThrottledLogin(config.curator_user, config.curator_password)  # 5 wrong a minute: locked
        options["auth_message"] = "KARD Studio curator login"
    return options


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="KARD Studio app (Gradio)")
    parser.add_argument("--mode", choices=["demo", "curator"], help="demo: read-only; curator: saves need a login")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 7860)")
    parser.add_argument("--student", help="student folder, hub id or package:NAME (default: packaged SmolLM2)")
    parser.add_argument("--engine", help="decoding engine: auto (CTranslate2 when it loads), ctranslate2 or "
                        "transformers (default auto)")
    parser.add_argument("--reranker", help="trained reranker folder, or none for BM25 only (default: demo/reranker)")
    parser.add_argument("--knowledge", type=Path, help="saved knowledge-base folder or passages file (default: demo)")
    parser.add_argument("--questions", type=Path, help="benchmark question file offered beside the demo questions")
    parser.add_argument("--annotations", type=Path, dest="annotations_db", help="annotation database file")
    parser.add_argument("--no-preload", dest="preload", action="store_false", default=None,
                        help="load the student on the first question instead of at launch")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = vars(parse_args(argv))
    try:
        config = AppConfig.from_env(**args)  # checks every setting given
        options = launch_options(config)  # the curator login, before make_studio creates the database
        studio = make_studio(config)
        sync = start_sync(config, studio.store)  # restores an empty store from KARD_SYNC_REPO first
    except KardError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for warning in space_warnings(config):
        log.warning("%s", warning)
    if sync is not None:  # a Space stops the app with SIGTERM: exit normally, so the last push (atexit) runs
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # Gradio closes its server on it
    if config.preload:
        studio.warm_up()
    queued(build_app(studio, config, sync), config).launch(**options)
    return 0


if __name__ == "__main__":
    sys.exit(main())

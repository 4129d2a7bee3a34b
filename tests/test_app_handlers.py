"""The app's handlers as plain functions, over a scripted pipeline and teacher (no model, no browser)."""

from __future__ import annotations

import copy
import html
import json
import time
from dataclasses import replace

import pytest

from kard.annotations import AnnotationStore
from kard.errors import KardError
from kard.records import AskedItem, Hit, Passage, Prediction, Question, TeacherAnswer, Timings
from kard.ui import asking, curating
from kard.ui.cards import (
    HOW_TO_TEACHER,
    NO_TEACHER_ANSWER,
    answer_choices,
    rerank_html,
    student_card,
    teacher_card,
)
from kard.ui.curating import Edit
from kard.ui.studio import InputError, Studio

XSS = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
QUESTIONS = [
    Question("q1", "Which vitamin deficiency causes scurvy?", {"A": "Vitamin C", "B": "Vitamin D"}, "A", "demo",
             "Scurvy is caused by a lack of vitamin C. Answer: A", "written by the KARD Studio authors"),
    Question("q2", "Which gas do plants absorb?", {"A": "Oxygen", "B": "Carbon dioxide"}, "B", "demo"),
]


class ScriptedPipeline:
    """Stands in for kard.pipeline.Pipeline: fixed passages, a fixed streamed rationale."""

    def __init__(self, output: str = "Rickets is vitamin D. Answer: B"):
        self.output = output
        self.student = type("S", (), {"name": "scripted-student"})()
        self.reranker = None
        self.asked: list[Question] = []

    def retrieve(self, question: Question):
        hits = [Hit(Passage("p1", "Scurvy", "Scurvy is vitamin C deficiency."), 4.0, 1),
                Hit(Passage("p2", "Evil", XSS), 2.0, 2), Hit(Passage("p3", "Rickets", "Vitamin D."), 1.0, 3)]
        return hits, hits[:2], Timings(retrieval_s=0.001)

    def stream(self, question: Question):
        self.asked.append(question)
        candidates, used, _ = self.retrieve(question)
        for word in self.output.split(" "):
            yield word + " "
        rationale, _, answer = self.output.rpartition(" Answer: ")
        yield Prediction(question, tuple(candidates), tuple(used), "prompt", self.output, rationale, answer,
                         timings=Timings(0.001, None, 0.2, 1.0, 1.1), tokens_out=12,
                         student_name="scripted-student", decoding={"strategy": "greedy", "max_new_tokens": 128})


class ScriptedTeacher:
    """Stands in for kard.teacher.client.Teacher: its reply streamed in two chunks."""

    def __init__(self, fail: bool | Exception = False):
        self.fail = fail
        self.config = type("C", (), {"model": "teacher-model"})()

    def reply(self, question: Question) -> str:
        return "Vitamin C prevents scurvy, so A.\nAnswer: A"

    def stream_answer(self, question: Question):
        if isinstance(self.fail, Exception):
            raise self.fail
        if self.fail:
            raise ConnectionError("connection refused")
        text = self.reply(question)
        yield text[:10]
        yield text[10:]


@pytest.fixture
def store(tmp_path):
    return AnnotationStore(tmp_path / "a.db")


def studio(store, mode="curator", **kw) -> Studio:
    pipeline = kw.pop("pipeline", ScriptedPipeline())
    return Studio(lambda: pipeline, store, QUESTIONS, mode=mode, **kw)


def ask_once(s: Studio, *args, **kwargs) -> asking.AskUpdate:
    """The final update of an ask."""
    return list(asking.ask(s, *args, **kwargs))[-1]


def compare(s: Studio, item: dict) -> asking.Comparison:
    return list(asking.compare_steps(s, item))[-1]


def save(s: Studio, item, rationale, answer, rating, tags, marks, note, confirmed, curator, original="",
         original_source="") -> curating.SaveResult:
    return curating.save(s, item, Edit(rationale, answer, rating, tags, marks, note, original, original_source),
                         curator, confirmed)


def asked(s: Studio, qid: str = "q1") -> dict:
    text, options = asking.pick(s, qid)
    return ask_once(s, text, options, qid).item


def test_pick_fills_text_and_options(store):
    s = studio(store)
    assert asking.pick(s, "q1") == ("Which vitamin deficiency causes scurvy?", "A. Vitamin C\nB. Vitamin D")
    assert asking.resolve(s, *asking.pick(s, "q1"), "q1")[1].reason == "a listed question, asked with its options"
    assert asking.resolve(s, "Which gas do we breathe?", "A. oxygen\nB. neon", None)[1].reason == "options were typed"
    inline, why = asking.resolve(s, "Which gas do we breathe? A. oxygen B. neon", "", None)
    assert (inline.text, dict(inline.options), inline.kind) == ("Which gas do we breathe?",
                                                               {"A": "oxygen", "B": "neon"}, "choice")
    assert why.reason == "options read from the question"
    assert asking.resolve(s, *asking.pick(s, "q1"), "q1", "choice")[1].reason == "chosen by you"
    assert [v for _, v in asking.question_choices(s)] == ["q1", "q2"]
    with pytest.raises(InputError, match="unknown question"):
        asking.pick(s, "nope")


def test_ask_streams_then_returns_a_full_item(store):
    s = studio(store)
    updates = list(asking.ask(s, *asking.pick(s, "q1"), "q1"))
    assert updates[0].item is None and "Loading" in updates[0].status_html
    streaming = [u for u in updates if "kard-cursor" in u.student_html]
    assert len(streaming) >= 3  # the rationale grows word by word
    final = updates[-1]
    item = final.item
    assert item["item_id"] == "demo:q1" and item["question"]["answer"] == "A"
    assert item["student"]["answer"] == "B" and item["used_ids"] == ["p1", "p2"]
    assert "gold is A" in final.student_html and "first token 0.20 s" in final.student_html
    assert "BM25 only, no reranker loaded" in final.rerank_html
    assert "<img" not in final.rerank_html and "&lt;img" in final.rerank_html


def test_typed_question_has_no_gold(store):
    s = studio(store)
    item = ask_once(s, "Which vitamin deficiency causes scurvy?", "A) Vitamin C B) Vitamin D", None).item
    assert item["question"]["answer"] is None and item["item_id"].startswith("custom:")
    edited = ask_once(s, "Which vitamin deficiency causes SCURVY?", "A) Vitamin C B) Vitamin D", "q1").item
    assert edited["question"]["id"] == "custom"  # an edited demo question is a new question


@pytest.mark.parametrize("text, options, message", [
    ("", "A) x B) y", "question is empty"),
    ("x" * 20_000, "A) x B) y", "20,000 characters"),
    ("What?", "just one option", "Could not read the options"),
])
def test_bad_questions_give_messages(store, text, options, message):
    with pytest.raises(InputError, match=message):
        list(asking.ask(studio(store), text, options))


def test_compare_uses_recorded_rationale_without_teacher(store):
    s = studio(store)
    c = compare(s, asked(s))
    assert "recorded · written by the KARD Studio authors" in c.teacher_html
    assert c.editor_text.startswith("Scurvy is caused") and c.editor_answer == "A"
    assert "kard-diff" in c.diff_html and c.item["teacher"]["kind"] == "recorded"


def test_compare_without_any_teacher_says_how_to_configure(store):
    s = studio(store)
    c = compare(s, asked(s, "q2"))
    assert "OPENAI_BASE_URL" in c.teacher_html and c.item["teacher"] is None
    assert c.editor_text == "Rickets is vitamin D." and c.editor_source.startswith("student")


def test_compare_with_live_teacher(store):
    s = studio(store, teacher_factory=lambda: ScriptedTeacher())
    c = compare(s, asked(s, "q2"))
    assert "live teacher · teacher-model" in c.teacher_html and c.editor_text == "Vitamin C prevents scurvy, so A."


def test_unreachable_teacher_warns_and_falls_back(store):
    s = studio(store, teacher_factory=lambda: ScriptedTeacher(fail=True))
    c = compare(s, asked(s))
    assert c.warning and "ConnectionError" in c.warning
    assert c.item["teacher"]["kind"] == "recorded"


REJECTED = KardError("the teacher server rejected the API key (HTTP 401). Fix: check OPENAI_API_KEY.")


def test_a_failed_live_teacher_is_named_with_why_not_called_not_configured(store):
    s = studio(store, teacher_factory=lambda: ScriptedTeacher(fail=REJECTED))
    c = compare(s, asked(s, "q2"))  # q2 has no recorded rationale
    assert "live teacher · teacher-model · failed" in c.teacher_html and "not configured" not in c.teacher_html
    why = "The live teacher (teacher-model) could not answer: the teacher server rejected the API key (HTTP 401)."
    assert why in html.unescape(c.teacher_html) and c.warning.startswith(why) and c.item["teacher"] is None


def test_a_recorded_rationale_shown_for_a_failed_live_teacher_says_so_in_the_column(store):
    from kard.ui import ask_events

    s = studio(store, teacher_factory=lambda: ScriptedTeacher(fail=REJECTED))
    item = asked(s)  # q1 has a recorded rationale
    c = compare(s, item)
    notice = ("The live teacher (teacher-model) could not answer: the teacher server rejected the API key (HTTP 401)."
              " Fix: check OPENAI_API_KEY; showing the recorded rationale instead.")
    assert c.item["teacher"]["kind"] == "recorded" and c.warning == notice
    assert notice in html.unescape(c.teacher_html) and "kard-card-notice" in c.teacher_html
    with pytest.warns(UserWarning):  # the toast, outside an event
        api = list(ask_events.compare(s, 16, item))[-1]  # what /compare returns: the teacher column second
    assert notice in html.unescape(api[1])
    plain = studio(store)
    assert "kard-card-notice" not in compare(plain, asked(plain)).teacher_html  # no live teacher: no notice


def test_save_stores_everything_as_a_revision(store):
    s = studio(store)
    item = compare(s, asked(s)).item
    result = save(s, item, "Scurvy means too little vitamin C.\nAnswer: A", "A", 4, ["wrong knowledge"],
                    ["relevant", "irrelevant"], "student read rickets", False, "alice",
                    original="Scurvy is caused by a lack of vitamin C.", original_source="recorded")
    assert result.saved and result.revision == 1
    rev = store.get("demo:q1")
    c = rev.correction
    assert (c.answer, c.gold_answer, c.student_answer, c.curator, c.rating) == ("A", "A", "B", "alice", 4)
    assert c.relevance == {"p1": "relevant", "p2": "irrelevant"}
    assert [(p.id, p.used) for p in c.passages] == [("p1", True), ("p2", True), ("p3", False)]
    assert c.student_model == "scripted-student" and c.decoding["max_new_tokens"] == 128
    assert c.teacher_rationale.startswith("Scurvy is caused") and c.original_source == "recorded"
    assert curating.browse(s)[0][:6] == ["demo:q1", 1, "Which vitamin deficiency causes scurvy?", "B", "A", "A"]


def test_the_editor_goes_on_from_the_saved_correction_when_the_question_is_asked_again(store, tmp_path):
    s = studio(store)
    item = compare(s, asked(s)).item
    assert save(s, item, "Sailors lacked vitamin C.\nAnswer: A", "A", 4, [], [], "", False, "alice").saved
    again = compare(s, asked(s))
    assert again.editor_text == "Sailors lacked vitamin C.\nAnswer: A" and again.editor_answer == "A"
    assert again.editor_source == "saved correction (revision 1, alice)"
    assert compare(s, asked(s, "q2")).editor_source.startswith("student")  # another question: as before
    locked = studio(AnnotationStore(tmp_path / "a.db", read_only=True))
    unreadable = tmp_path / "not-a-db.db"
    unreadable.write_text("this is not SQLite")
    broken = studio(AnnotationStore(unreadable, read_only=True))
    assert compare(locked, asked(locked)).editor_source.startswith("saved correction")  # read-only still reads
    assert compare(broken, asked(broken)).editor_text.startswith("Scurvy is caused")  # unreadable: the teacher's


def test_a_save_that_meets_a_locked_store_says_the_edit_is_still_in_the_editor(tmp_path):
    from test_annotations import FAST, locked_by_another_writer

    store = AnnotationStore(tmp_path / "locked.db", FAST)
    s = studio(store)
    item = compare(s, asked(s)).item
    with locked_by_another_writer(store.path, 1.5):
        with pytest.raises(KardError, match="stayed locked.*Fix: .*save again; your edit is still in the editor$"):
            save(s, item, "Scurvy means too little vitamin C.", "A", 4, [], [], "", False, "alice")
    assert store.count() == 0


def test_save_asks_to_confirm_when_rationale_disagrees(store):
    s = studio(store)
    item = asked(s)
    first = save(s, item, "Vitamin D matters. Answer: B", "A", 3, [], [], "", False, "alice")
    assert not first.saved and first.needs_confirmation and store.count() == 0
    second = save(s, item, "Vitamin D matters. Answer: B", "A", 3, [], [], "", True, "alice")
    assert second.saved and store.count() == 1


def test_save_asks_to_confirm_when_the_rationale_states_another_options_text(store):
    s = studio(store)
    item = asked(s)
    stated = save(s, item, "Bones need it. So the answer is vitamin D.", "A", 3, [], [], "", False, "alice")
    assert not stated.saved and stated.needs_confirmation and "concludes B but you chose A" in stated.message
    assert save(s, item, "Collagen needs it. So the answer is Vitamin C.", "A", 3, [], [], "", False, "alice").saved
    prose = save(s, asked(s), "Scurvy follows a lack of vitamin D.", "A", 3, [], [], "", False, "alice")
    assert prose.saved  # a conclusion in other words is not read: README says what a save checks


@pytest.mark.parametrize("kwargs, message", [
    ({"item": None}, "Ask a question first"),
    ({"rationale": "  "}, "rationale is empty"),
    ({"answer": None}, "Choose the correct answer"),
    ({"curator": None}, "Sign in to save"),
])
def test_bad_saves_give_messages(store, kwargs, message):
    s = studio(store)
    args = {"item": asked(s), "rationale": "text", "answer": "A", "rating": 3, "tags": [], "marks": [],
            "note": "", "confirmed": False, "curator": "alice"}
    args.update(kwargs)
    with pytest.raises(InputError, match=message):
        save(s, **args)


@pytest.mark.parametrize("rationale, note, message", [
    ("x" * 1_000_000, "", "corrected rationale has 1,000,000 characters; the limit is 8,000"),
    ("Vitamin C. Answer: A", "n" * 1_000_000, "note has 1,000,000 characters; the limit is 2,000"),
], ids=["rationale", "note"])
def test_oversized_rationale_or_note_is_refused_and_nothing_stored(store, rationale, note, message):
    s = studio(store)
    with pytest.raises(InputError, match=f"Not saved: the {message}. Fix: shorten the"):
        save(s, asked(s), rationale, "A", 3, [], [], note, True, "alice")
    assert store.count() == 0
    assert save(s, asked(s), "x" * 8_000, "A", 3, [], [], "n" * 2_000, True, "alice").saved  # at the limits


def test_demo_mode_is_read_only(store):
    s = studio(store, mode="demo")
    with pytest.raises(InputError, match="read-only demo"):
        save(s, asked(s), "text", "A", 3, [], [], "", False, "alice")


def test_curator_allow_list(store):
    s = studio(store, curators=["alice"])
    with pytest.raises(InputError, match="not a curator"):
        save(s, asked(s), "text", "A", 3, [], [], "", False, "mallory")


def test_an_empty_browse_table_says_why(store):
    from kard.ui import blocks

    s = studio(store)
    rows, _, _, note = blocks.browse(s, "", "", True)
    assert rows == [] and "No corrections saved yet" in note and "save it" in note
    assert "read-only" in blocks.browse(studio(store, mode="demo"), "", "", True)[3]
    save(s, asked(s), "first", "A", 5, [], [], "", False, "alice")
    rows, _, _, note = blocks.browse(s, "", "", True)
    assert len(rows) == 1 and note == ""
    assert "matches these filters" in blocks.browse(s, "hallucination", "", True)[3]


def test_browse_says_when_the_database_was_deleted_and_started_afresh_and_how_to_get_it_back(store):
    import os

    from kard.ui import blocks

    s = studio(store)
    save(s, asked(s), "first", "A", 5, [], [], "", False, "alice")
    os.remove(store.path)  # deleted while the app runs (journal files, if any, go with it on a real delete)
    rows, _, _, note = blocks.browse(s, "", "", True)
    assert rows == [] and "kard-msg-warn" in note and "was missing or empty" in note
    assert "lists only what was saved since" in note and "python -m kard restore" in note
    saved = save(s, asked(s), "after", "A", 5, [], [], "", False, "alice")
    assert saved.saved and "was missing or empty" in saved.warning  # the save says it too, where it is confirmed
    shown, _, kept, _ = blocks.save(s, asked(s), Edit("again", "A", 5), False, "alice")
    assert "Saved revision 2" in shown and "kard-msg-warn" in shown and "was missing or empty" in shown
    assert kept == "again"
    rows, _, _, note = blocks.browse(s, "", "", True)
    assert len(rows) == 1 and "was missing or empty" in note  # still said beside the new saves


def test_browse_history_and_revert(store):
    s = studio(store)
    item = asked(s)
    save(s, item, "first", "A", 5, [], [], "", False, "alice")
    save(s, asked(s), "second", "B", 2, ["hallucination"], [], "", False, "bob")
    save(s, ask_once(s, *asking.pick(s, "q2"), "q2").item, "plants take CO2", "B", 5, [], [], "", False, "alice")
    assert [r[0] for r in curating.browse(s, disagreements_first=True)] == ["demo:q1", "demo:q2"]
    assert [r[0] for r in curating.browse(s, tag="hallucination")] == ["demo:q1"]
    assert [r[0] for r in curating.browse(s, curator="alice")] == ["demo:q2"]
    html, revisions = curating.history(s, "demo:q1")
    assert revisions == [1, 2] and "<del>first</del> <ins>second</ins>" in html
    assert "revision 3" in curating.revert(s, "demo:q1", 1, "carol")
    assert store.get("demo:q1").correction.rationale == "first"
    with pytest.raises(InputError, match="Pick an item"):
        curating.revert(s, None, 1, "carol")


def test_next_question_skips_annotated_ones(store):
    s = studio(store)
    assert asking.next_question(s, None) == "q1"
    save(s, asked(s, "q2"), "text", "B", 3, [], [], "", False, "alice")
    assert asking.next_question(s, "q1") == "q2"  # nothing else open: simply the next one
    assert asking.next_question(s, "q2") == "q1"


def test_draft_keeps_everything_needed_to_restore(store):
    s = studio(store)
    item = asked(s)
    draft = curating.draft(item, Edit("edited", "A", 4, ["other"], ["relevant", None], "n", "orig", "teacher"))
    assert draft["item"] == item and draft["marks"] == ["relevant", None] and draft["rationale"] == "edited"
    assert curating.draft(None, Edit("", None)) is None


def test_pipeline_load_error_is_shown(store):
    def broken():
        raise KardError("the student 'package:x' is not installed. Fix: pip install x")

    s = Studio(broken, store, QUESTIONS, mode="curator")
    with pytest.raises(KardError, match="pip install x"):
        list(asking.ask(s, *asking.pick(s, "q1"), "q1"))


def test_item_from_prediction_is_json_able():
    import json

    q = QUESTIONS[0]
    hit = Hit(Passage("p", "t", "x"), 1.0, 1).with_rerank(0.5, 1)
    p = Prediction(q, (hit,), (hit,), "prompt", "raw", "r", "A", reranker_name="rr")
    item = AskedItem.from_prediction(p, prompt_version="kard-v1").to_dict()
    assert json.loads(json.dumps(item)) == item and item["candidates"][0]["rerank_rank"] == 1
    assert AskedItem.from_dict(item).to_dict() == item  # one encoding, read back unchanged
    taught = AskedItem.from_dict(item).with_teacher(TeacherAnswer("live", "m", "live teacher · m", "why", "A", 1.5, 0.2))
    assert AskedItem.from_dict(json.loads(json.dumps(taught.to_dict()))) == taught
    assert taught.to_dict()["teacher"]["kind"] == "live"  # the key drafts kept in browsers already use
    assert HOW_TO_TEACHER.startswith("No teacher configured")


def test_item_keeps_the_candidates_the_reranker_put_first():
    q = QUESTIONS[0]
    found = [Hit(Passage(f"p{i}", "", f"text {i}"), 30.0 - i, i) for i in range(1, 31)]  # BM25 order
    reranked = tuple(h.with_rerank(float(h.bm25_rank), 31 - h.bm25_rank) for h in found)  # the reranker reverses it
    p = Prediction(q, reranked, (reranked[-1],), "prompt", "raw", "r", "A", reranker_name="rr",
                   decoding={"candidates_found": 30})
    item = AskedItem.from_prediction(p, prompt_version="kard-v1", max_candidates=20)
    assert [h.passage.id for h in item.candidates][:3] == ["p30", "p29", "p28"] and len(item.candidates) == 20
    assert item.used_ids[0] in {h.passage.id for h in item.candidates}
    panel = rerank_html(item)
    assert "30 candidates, the first 20 kept" in panel
    assert panel.index('data-passage-id="p30"') < panel.index("top-1 above this line")


def test_app_module_imports_nothing_heavy():
    import subprocess
    import sys

    code = ("import sys, app; heavy = [m for m in ('gradio', 'torch', 'transformers', 'sqlite_utils') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert out.stdout.strip() == "[]"


def test_curator_mode_needs_a_login(monkeypatch):
    import app

    from kard.config import AppConfig
    from kard.errors import ConfigError

    with pytest.raises(ConfigError, match="KARD_CURATOR_USER and KARD_CURATOR_PASSWORD"):
        app.launch_options(AppConfig(mode="curator"))
    options = app.launch_options(AppConfig(mode="curator", curator_user="u", curator_password="p"))
    login = options["auth"]  # a throttled check of exactly this user and password
    assert login("u", "p") and not login("u", "q") and not login("x", "p")
    assert "kard-save" in options["head"] and options["css"]
    assert "auth" not in app.launch_options(AppConfig(mode="demo"))
    monkeypatch.setenv("SYSTEM", "spaces")  # a Space, as Gradio sees one: its real login button
    monkeypatch.setenv("SPACE_ID", "alice/kard-studio")
    assert "auth" not in app.launch_options(AppConfig(mode="curator", on_spaces=True))


def test_app_config_from_env_and_flags(monkeypatch):
    import app

    from kard.config import AppConfig

    monkeypatch.setenv("KARD_MODE", "curator")
    monkeypatch.setenv("KARD_CURATOR_PASSWORD", "s3cret")
    monkeypatch.setenv("KARD_CURATORS", "ann, bob")
    config = AppConfig.from_env(**vars(app.parse_args(["--port", "7999", "--reranker", "runs/rr"])))
    assert (config.mode, config.port, config.reranker, config.curators) == ("curator", 7999, "runs/rr", ("ann", "bob"))
    assert "s3cret" not in repr(config)


APP_SETTINGS = ("KARD_MODE", "GRADIO_SERVER_PORT", "KARD_ANNOTATIONS_DB", "KARD_STUDENT", "KARD_RERANKER",
                "KARD_QUESTIONS", "KARD_KNOWLEDGE", "KARD_CURATOR_USER", "KARD_CURATOR_PASSWORD", "SPACE_ID",
                "SYSTEM", "KARD_PERSISTENT_DIR", "KARD_SYNC_REPO", "KARD_SYNC_EVERY_MINUTES", "KARD_RECALL")


@pytest.fixture
def bare_env(monkeypatch, tmp_path):
    """No app settings in the environment; the current folder is an empty tmp_path."""
    import app  # imported before the chdir, which would hide it

    monkeypatch.setattr(app, "build_app", lambda *args, **kwargs: pytest.fail("the app started despite a bad setting"))
    for name in APP_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "not-a-db.db").write_text("hello, not SQLite\n")
    return tmp_path


@pytest.mark.parametrize("env, flags, named", [
    ({"GRADIO_SERVER_PORT": "abc"}, [], "GRADIO_SERVER_PORT='abc' is not a port number"),
    ({}, ["--port", "70000"], "--port='70000' is outside the port range"),
    ({"KARD_MODE": "admin"}, [], "KARD_MODE='admin' is not an app mode"),
    ({"KARD_RECALL": "maybe"}, [], "KARD_RECALL='maybe' is not on or off"),
    ({"KARD_ANNOTATIONS_DB": "not-a-db.db"}, [], "KARD_ANNOTATIONS_DB='not-a-db.db' is not a SQLite database"),
    ({"KARD_MODE": "curator", "KARD_CURATOR_USER": "u", "KARD_CURATOR_PASSWORD": "p"},
     ["--annotations", "not-a-db.db"], "--annotations='not-a-db.db' is not a SQLite database"),
    ({"KARD_STUDENT": "./runs/no-such-student"}, [], "KARD_STUDENT='./runs/no-such-student' is not an existing"),
    ({"KARD_KNOWLEDGE": "no-such-passages.jsonl"}, [], "KARD_KNOWLEDGE='no-such-passages.jsonl' does not exist"),
    ({}, ["--knowledge", "/dev/null"], "--knowledge='/dev/null' is not a regular file"),
    ({"KARD_RERANKER": "runs/no/such-reranker"}, [], "KARD_RERANKER='runs/no/such-reranker': reranker"),
    ({"KARD_QUESTIONS": "no-such-questions.jsonl"}, [], "KARD_QUESTIONS='no-such-questions.jsonl' does not exist"),
    ({"KARD_MODE": "curator"}, ["--annotations", "annotations/annotations.db"], "curator mode needs a login"),
])
def test_bad_settings_stop_the_app_at_start(bare_env, monkeypatch, capsys, env, flags, named):
    import app

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    before = sorted(p.name for p in bare_env.iterdir())
    assert app.main(["--no-preload", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and named in err and "Fix: " in err and "\n" not in err
    assert sorted(p.name for p in bare_env.iterdir()) == before  # no database, no folder


def test_explicit_hub_ids_and_existing_paths_are_accepted(bare_env, monkeypatch):
    from kard.config import AppConfig

    (bare_env / "passages.jsonl").write_text('{"id": "p1", "title": "", "text": "fact"}\n')
    monkeypatch.setenv("KARD_STUDENT", "org/name")
    config = AppConfig.from_env(knowledge=bare_env / "passages.jsonl", port=8000)
    assert (config.student, config.knowledge, config.port) == ("org/name", bare_env / "passages.jsonl", 8000)
    assert AppConfig.from_env().student == "org/name"
    monkeypatch.delenv("KARD_STUDENT")
    assert AppConfig.from_env() == AppConfig()  # defaults (even a student folder not made yet) are not checked


def test_unknown_mode_is_refused(store):
    with pytest.raises(KardError, match="KARD_MODE=demo or KARD_MODE=curator"):
        Studio(lambda: None, store, mode="admin")


# -- the real kard.teacher.client.Teacher against a scripted OpenAI-compatible server -------------------------
def real_teacher_factory(url: str, key: str, cache_path=None):
    from kard.config import TeacherConfig
    from kard.teacher.client import Teacher

    def make():
        return Teacher(TeacherConfig(model="fake-teacher", base_url=url, max_retries=0, timeout_s=3.0),
                       cache_path=cache_path, api_key=key)

    return make


def test_live_teacher_streams_into_the_column_and_never_shows_the_key(store, tmp_path):
    from fake_openai_server import FakeOpenAI, answer_with

    key = "sk-app-test-key-0123456789"
    with FakeOpenAI(api_key=key) as server:
        server.responder = answer_with("Vitamin C builds collagen, so scurvy means too little of it.\nAnswer: A")
        s = studio(store, teacher_factory=real_teacher_factory(server.url, key))
        steps = list(asking.compare_steps(s, asked(s, "q2")))
    partial = [c for c in steps if c.partial]
    final = steps[-1]
    assert len(partial) >= 2 and "kard-cursor" in partial[0].teacher_html
    assert "live teacher · fake-teacher" in final.teacher_html and "first token" in final.teacher_html
    assert final.item["teacher"]["answer"] == "A" and final.editor_text.startswith("Vitamin C builds collagen")
    save(s, final.item, final.editor_text, "A", 5, [], [], "", False, "alice")
    pages = "".join(c.teacher_html + c.diff_html for c in steps)
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert key not in pages and key.encode() not in stored


def test_unreachable_live_teacher_gives_a_message(store):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    s = studio(store, teacher_factory=real_teacher_factory(url, "sk-x"))
    c = compare(s, asked(s, "q2"))
    assert c.warning and "could not answer" in c.warning and url in c.warning
    assert c.item["teacher"] is None and "could not answer" in c.teacher_html


def test_a_live_reply_without_an_answer_is_shown_with_the_fix_and_the_next_ask_asks_again(store, tmp_path):
    from fake_openai_server import FakeOpenAI, Reply, answer_with

    unsure = "Both gases matter to plants; it depends on the time of day."
    with FakeOpenAI(api_key="sk-x") as server:
        server.script(Reply(texts=(unsure,)))
        server.responder = answer_with("Plants take in carbon dioxide for photosynthesis.\nAnswer: B")
        s = studio(store, teacher_factory=real_teacher_factory(server.url, "sk-x", tmp_path / "teacher.sqlite"))
        answerless = compare(s, asked(s, "q2"))
        fixed = compare(s, asked(s, "q2"))
        assert server.count == 2  # the answerless reply was not cached: asked again, a request was sent
    shown = html.unescape(answerless.teacher_html)
    assert unsure in shown and NO_TEACHER_ANSWER in shown and "kard-card-notice" in answerless.teacher_html
    assert "no answer the app can read" in NO_TEACHER_ANSWER and "Fix: ask again" in NO_TEACHER_ANSWER
    assert answerless.warning == NO_TEACHER_ANSWER and answerless.item["teacher"]["answer"] is None
    assert answerless.editor_text == unsure and answerless.editor_answer == "B"  # the gold, to check or change
    assert fixed.item["teacher"]["answer"] == "B" and fixed.warning is None
    assert "kard-card-notice" not in fixed.teacher_html and "first token" in fixed.teacher_html


def test_a_live_reply_cut_off_at_its_token_limit_is_shown_with_the_fix_and_no_answer(store, tmp_path, monkeypatch):
    from fake_openai_server import FakeOpenAI, Reply, answer_with

    from kard.config import TeacherConfig
    from kard.teacher.client import Teacher

    cut = "Plants take in carbon dioxide, so the answer is B.\nAnswer: B because the leaves"
    with FakeOpenAI(api_key="sk-x") as server:
        server.script(Reply(texts=(cut,), finish_reason="length"))
        server.responder = answer_with("Plants take in carbon dioxide for photosynthesis.\nAnswer: B")
        for name, value in [("OPENAI_BASE_URL", server.url), ("KARD_TEACHER_MODEL", "fake-teacher"),
                            ("KARD_TEACHER_RETRIES", "0"), ("KARD_TEACHER_MAX_TOKENS", "96")]:
            monkeypatch.setenv(name, value)
        config = TeacherConfig.for_app()  # as the app reads its environment
        s = studio(store, teacher_factory=lambda: Teacher(config, cache_path=tmp_path / "t.sqlite", api_key="sk-x"))
        shortened = compare(s, asked(s, "q2"))
        whole = compare(s, asked(s, "q2"))
        assert server.count == 2  # the cut reply was not cached
        assert server.requests[0]["max_tokens"] == 96
    shown = html.unescape(shortened.teacher_html)
    assert "cut off at its limit of 96 tokens" in shown and "raise KARD_TEACHER_MAX_TOKENS" in shown
    assert shortened.item["teacher"]["answer"] is None and shortened.warning == shortened.item["teacher"]["notice"]
    assert whole.item["teacher"]["answer"] == "B" and whole.warning is None


def test_a_bad_teacher_token_limit_names_the_setting(monkeypatch):
    from kard.config import TeacherConfig
    from kard.errors import ConfigError

    monkeypatch.setenv("KARD_TEACHER_MAX_TOKENS", "0")
    with pytest.raises(ConfigError, match="KARD_TEACHER_MAX_TOKENS"):
        TeacherConfig.for_app()


def test_a_cached_live_reply_says_cached_and_when_it_was_fetched_not_timings(store, tmp_path):
    from fake_openai_server import FakeOpenAI, answer_with

    with FakeOpenAI(api_key="sk-x") as server:
        server.responder = answer_with("Plants take in carbon dioxide for photosynthesis.\nAnswer: B")
        s = studio(store, teacher_factory=real_teacher_factory(server.url, "sk-x", tmp_path / "teacher.sqlite"))
        live = compare(s, asked(s, "q2"))
        cached = compare(s, asked(s, "q2"))
        assert server.count == 1
    assert "first token" in live.teacher_html and "cached" not in live.teacher_html
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert f"cached reply, fetched {day} " in cached.teacher_html and "no request sent" in cached.teacher_html
    assert "first token" not in cached.teacher_html and "total" not in cached.teacher_html
    assert "live teacher · fake-teacher · cached" in cached.teacher_html
    assert cached.item["teacher"]["cached"] is True and cached.item["teacher"]["answer"] == "B"
    assert cached.editor_source == "teacher (live teacher · fake-teacher · cached)"


def test_teacher_card_of_a_cached_reply_and_its_round_trip():
    hit = Hit(Passage("p", "t", "x"), 1.0, 1)
    item = AskedItem.from_prediction(Prediction(QUESTIONS[0], (hit,), (hit,), "prompt", "raw", "r", "A"),
                                     prompt_version="kard-v1")
    cached = item.with_teacher(TeacherAnswer("live", "m", "live teacher · m · cached", "Why.", "A", cached=True,
                                             fetched_at=1767225600.0))
    assert "cached reply, fetched 2026-01-01 00:00 UTC" in teacher_card(cached)
    assert AskedItem.from_dict(json.loads(json.dumps(cached.to_dict()))).teacher == cached.teacher
    unknown = item.with_teacher(TeacherAnswer("live", "m", "live teacher · m · cached", "Why.", "A", cached=True))
    assert "cached reply, fetched an unknown time" in teacher_card(unknown)
    recorded = item.with_teacher(TeacherAnswer("recorded", "ref", "recorded · ref", "Why.", None))
    assert "kard-card-notice" not in teacher_card(recorded)  # asking again would not change a recorded rationale


# -- free questions: yes/no and open ------------------------------------------------------------------
class FreePipeline(ScriptedPipeline):
    """Answers as the real pipeline reads a free question: yes/no as A/B, an open question in words."""

    OUTPUTS = {"yesno": "Oranges are rich in vitamin C, which scurvy lacks. So the answer is yes.\nAnswer: A",
               "open": "Scurvy comes from too little vitamin C.\nAnswer: vitamin C", "choice": "It is C.\nAnswer: A"}

    def stream(self, question: Question):
        from kard.prompts import parse_question_answer

        self.asked.append(question)
        candidates, used, _ = self.retrieve(question)
        output = self.OUTPUTS[question.kind]
        yield output
        rationale, answer = parse_question_answer(output, question)
        yield Prediction(question, tuple(candidates), tuple(used), "prompt", output, rationale, answer,
                         timings=Timings(0.001, None, 0.2, 1.0, 1.1), tokens_out=12, student_name="scripted-student")


class OpenTeacher(ScriptedTeacher):
    def reply(self, question: Question) -> str:
        return "Vitamin C deficiency causes scurvy.\nAnswer: Vitamin C." if question.is_open else "Yes.\nAnswer: A"


FREE_YES_NO = "Would a person with scurvy benefit from eating oranges?"


def test_a_free_yes_no_question_is_answered_yes_or_no(store):
    s = studio(store, pipeline=FreePipeline())
    final = ask_once(s, FREE_YES_NO, "", None)
    q = final.item["question"]
    assert (q["kind"], q["options"], final.item["student"]["answer"]) == ("yesno", {"A": "yes", "B": "no"}, "A")
    assert "Asked as: <b>yes/no question</b> (no options, and it starts with &#x27;Would&#x27;)" in final.student_html
    assert ">yes &middot; no gold<" in final.student_html and "A. yes" not in final.student_html
    assert "Asked as: yes/no question." in final.status_html
    assert asking.resolve(s, FREE_YES_NO, "", None)[0].kind == "yesno"


def test_the_person_can_switch_a_question_to_open_and_back(store):
    s = studio(store, pipeline=FreePipeline())
    yes_no = ask_once(s, FREE_YES_NO, "", None).item
    free = ask_once(s, FREE_YES_NO, "", None, kind="open").item
    assert free["question"]["kind"] == "open" and free["question"]["options"] == {}
    assert free["student"]["answer"] == "vitamin C" and free["item_id"] != yes_no["item_id"]
    assert free["kind_reason"] == "chosen by you"
    assert "Asked as: <b>open question</b>" in student_card(AskedItem.from_dict(free)) and ">vitamin C &middot; no gold<" in student_card(AskedItem.from_dict(free))
    picked = ask_once(s, *asking.pick(s, "q1"), "q1", kind="open").item  # a demo question asked another way: typed
    assert picked["question"]["id"] == "custom" and picked["question"]["answer"] is None
    assert ask_once(s, *asking.pick(s, "q1"), "q1", kind="auto").item["question"]["id"] == "q1"
    with pytest.raises(InputError, match="Cannot ask it that way.*needs its options"):
        ask_once(s, FREE_YES_NO, "", None, kind="choice")
    with pytest.raises(InputError, match="unknown question kind"):
        ask_once(s, FREE_YES_NO, "", None, kind="maybe")


def test_teacher_column_editor_and_save_of_a_yes_no_question(store):
    s = studio(store, pipeline=FreePipeline(), teacher_factory=lambda: OpenTeacher())
    c = compare(s, ask_once(s, FREE_YES_NO, "", None).item)
    assert c.editor_answer == "A" and ">yes &middot; no gold<" in c.teacher_html and "kard-diff" in c.diff_html
    assert answer_choices(Question.from_dict(c.item["question"])) == [("yes", "A"), ("no", "B")]
    refused = save(s, c.item, "Oranges cannot cure it. So the answer is no.", "A", 3, [], [], "", False, "alice")
    assert refused.needs_confirmation and "concludes no but you chose yes" in refused.message
    with pytest.raises(InputError, match=r"Choose the correct answer \(yes or no\)"):
        save(s, c.item, "text", "yes", 3, [], [], "", False, "alice")
    assert save(s, c.item, "Oranges hold vitamin C. So the answer is yes.", "A", 4, [], [], "", False, "alice").saved
    saved = store.get(c.item["item_id"]).correction
    assert (saved.kind, saved.answer, saved.options) == ("yesno", "A", {"A": "yes", "B": "no"})
    assert curating.browse(s)[0][3:6] == ["yes", "yes", "-"]


def test_teacher_column_editor_and_save_of_an_open_question(store):
    s = studio(store, pipeline=FreePipeline(), teacher_factory=lambda: OpenTeacher())
    c = compare(s, ask_once(s, "Which vitamin deficiency causes scurvy?", "", None).item)
    assert c.item["question"]["kind"] == "open" and c.editor_answer == "Vitamin C"
    assert ">Vitamin C &middot; no gold<" in c.teacher_html and answer_choices(Question.from_dict(c.item["question"])) == []
    assert curating.chosen_answer(c.item, None, "vitamin C") == "vitamin C"
    assert curating.chosen_answer(asked(s), "A", "ignored") == "A"
    refused = save(s, c.item, "Bones soften.\nAnswer: vitamin D", "vitamin C", 3, [], [], "", False, "alice")
    assert refused.needs_confirmation and 'concludes "vitamin D" but you chose "vitamin C"' in refused.message
    with pytest.raises(InputError, match="Write the correct short answer"):
        save(s, c.item, "text", "  ", 3, [], [], "", False, "alice")
    with pytest.raises(InputError, match="Not saved: the answer has 301 characters"):
        save(s, c.item, "text", "x" * 301, 3, [], [], "", False, "alice")
    result = save(s, c.item, "Scurvy is a lack of vitamin C.\nAnswer: Vitamin C.", " vitamin C ", 4, [], [], "", False,
                    "alice")
    assert result.saved  # "Vitamin C." concludes the same answer as "vitamin C"
    saved = store.get(c.item["item_id"]).correction
    assert (saved.kind, saved.answer, saved.options, saved.student_answer) == ("open", "vitamin C", {}, "vitamin C")
    assert curating.browse(s)[0][3:6] == ["vitamin C", "vitamin C", "-"]
    assert "answer vitamin C" in curating.history(s, c.item["item_id"])[0]


def test_items_from_before_kinds_still_load():
    old = {"id": "q", "text": "Which?", "options": {"A": "x", "B": "y"}, "answer": "A"}
    assert Question.from_dict(old).kind == "choice" and answer_choices(Question.from_dict(old)) == [("A", "A"), ("B", "B")]


def test_a_draft_is_read_back_or_ignored_when_unreadable():
    import json

    draft = curating.draft({"question": {"text": "Q"}, "student": {}}, Edit("R", "A", 4, ["t"], [None], "n", "o", "s"))
    assert curating.read_draft(json.dumps(draft)) == draft
    assert curating.read_draft("") is None and curating.read_draft("{not json") is None
    assert curating.read_draft(json.dumps({"rationale": "no item"})) is None


def test_an_answer_stated_by_the_rationale_is_shown_as_such():
    from kard.records import Sample

    text = "Scurvy is a lack of vitamin C. So the answer is Vitamin C.\nAnswer: B"
    stated = Sample(text, "Scurvy is a lack of vitamin C. So the answer is Vitamin C.", "A", 20, "stated")
    p = Prediction(QUESTIONS[0], (), (), "prompt", text, stated.rationale, "A", samples=(stated,), student_name="s")
    item = AskedItem.from_prediction(p, prompt_version="kard-v1")
    assert item.student.answer_source == "stated" and item.to_dict()["student"]["answer_source"] == "stated"
    assert "read from the rationale&#x27;s conclusion" in student_card(item)
    plain = AskedItem.from_prediction(replace(p, samples=(replace(stated, answer_source="parsed"),)), prompt_version="v")
    assert "kard-answer-source" not in student_card(plain)


def test_once_the_student_has_answered_the_editor_label_says_what_it_waits_for(store):
    from kard.ui import ask_events
    from kard.ui.updates import skips

    text, options = "Which vitamin deficiency causes scurvy?", "A) Vitamin C B) Vitamin D"
    steps = list(ask_events.ask_on_page(studio(store, teacher_factory=lambda: ScriptedTeacher()), text, options, None))
    assert steps[0][7] == ask_events.WAITING_LABEL and steps[-1][5] == 1  # handed out
    assert steps[-1][7] == ask_events.TEACHER_WAITING_LABEL and "Waiting for the teacher" in steps[-1][7]
    assert steps[-1][6] == skips(1)[0]  # still read-only: the compare step opens it with the teacher's text
    no_teacher = list(ask_events.ask_on_page(studio(store), text, options, None))
    assert no_teacher[-1][7] == ask_events.COMPARING_LABEL
    failed = lambda current, **_: iter([[skips(1)[0], "the teacher failed", skips(1)[0]]])  # noqa: E731
    opened = list(ask_events.compare_when_handed_out(failed, 3, 0, {"item": 1}, True, label_at=2))[-1]
    assert opened[0]["interactive"] is True and opened[2] == ask_events.COMPARE_FAILED_LABEL


def test_the_page_compares_only_after_an_ask_that_handed_out_a_new_item(store):
    from kard.ui import ask_events
    from kard.ui.updates import skips

    s = studio(store)
    failed = list(ask_events.ask_on_page(s, "", "A) x B) y", None))  # outputs..., handed out, editor, label
    assert [step[5] for step in failed] == [False] and "question is empty" in failed[0][2]
    assert len(failed[0]) == ask_events.ASK_OUTPUTS + 3
    assert failed[0][6]["interactive"] is True and failed[0][7] == skips(1)[0]  # nothing was locked
    answered = list(ask_events.ask_on_page(s, "Which vitamin deficiency causes scurvy?", "A) Vitamin C B) Vitamin D", None))
    assert answered[-1][5] == 1 and answered[-1][3]["question"]["text"].endswith("scurvy?")  # handed out, turn 1
    assert answered[0][6]["interactive"] is False and answered[0][7] == ask_events.WAITING_LABEL  # read-only meanwhile

    compared = lambda current, **_: iter([["compared", current]])  # noqa: E731 - a stand-in for the compare step
    steps = list(ask_events.compare_when_handed_out(compared, 2, 0, {"item": 1}, True))
    assert steps == [[{"__type__": "update", "value": "compared", "interactive": True}, {"item": 1}]]  # filled, open
    assert list(ask_events.compare_when_handed_out(compared, 2, 0, {"item": 1}, False)) == [skips(2)]
    failed = lambda current, **_: iter([[skips(1)[0], "the teacher failed"]])  # noqa: E731 - no editor text
    steps = list(ask_events.compare_when_handed_out(failed, 2, 0, {"item": 1}, True))
    assert len(steps) == 2 and steps[-1][0]["interactive"] is True  # opened in a step of its own

    def crashing_stream(question):
        raise RuntimeError("the model crashed")
        yield

    s.pipeline().stream = crashing_stream
    steps = []
    with pytest.raises(RuntimeError):
        for step in ask_events.ask_on_page(s, "Which vitamin deficiency causes scurvy?", "A) Vitamin C B) Vitamin D", None):
            steps.append(step)
    assert steps[0][6]["interactive"] is False and steps[-1][6]["interactive"] is True  # an unexpected crash opens it

    def broken(current, **_):
        raise RuntimeError("the teacher's client crashed")
        yield

    opened = ask_events.compare_when_handed_out(broken, 2, 0, {"item": 1}, True)
    assert next(opened)[0]["interactive"] is True  # a crashed compare still opens the editor
    with pytest.raises(RuntimeError):
        next(opened)


def test_every_way_to_ask_shares_one_concurrency_limit(store):
    from kard.ui.blocks import build_app

    demo = build_app(studio(store))
    groups: dict[str, set] = {}
    for event in demo.fns.values():
        fn = getattr(event.fn, "func", event.fn)
        if getattr(fn, "__module__", "") in ("kard.ui.blocks", "kard.ui.ask_events"):  # not the rounds tab's events
            groups.setdefault(fn.__name__, set()).add(event.concurrency_id)
    page_asks = groups["ask_clicked"] | groups["ask_if_checked"] | groups["kind_switched"]  # Ask, Next, Ask as
    assert groups["ask"] | page_asks == {"ask"}  # the API's and the page's
    assert groups["compare"] | groups["compare_when_handed_out"] == {"compare"}
    assert {"ask", "compare"} <= {event.api_name for event in demo.fns.values()}  # the API keeps its names


def test_a_click_while_the_page_asks_starts_a_new_ask_and_only_a_compare_sets_the_saved_item(store):
    from kard.ui.blocks import build_app

    demo = build_app(studio(store))
    events = {}
    for event in demo.fns.values():
        fn = getattr(event.fn, "func", event.fn)
        if getattr(fn, "__module__", "") in ("kard.ui.blocks", "kard.ui.ask_events"):
            events.setdefault(fn.__name__, []).append(event)
    item = next(block for block in events["save_event"][0].inputs if block.label == "item")  # what Save stores
    page_asks = [*events["ask_clicked"], *events["ask_if_checked"], *events["kind_switched"]]  # Ask, Next, Ask as
    page_compares = events["compare_when_handed_out"]
    # Gradio's default ("once") dropped a click while an ask ran, and the boxes showed a question never asked
    assert {event.trigger_mode for event in page_asks + page_compares} == {"multiple"}
    assert all(item not in event.outputs for event in page_asks)  # the ask hands its item to the compare step,
    assert all(item in event.outputs for event in page_compares)  # which sets it with the editor


def test_the_answer_radio_reads_a_letter_its_question_no_longer_offers_as_none(store):
    from kard.ui.blocks import build_app
    from kard.ui.updates import answer_radio

    radio = answer_radio([("yes", "A"), ("no", "B")])
    assert radio.preprocess("A") == "A" and radio.preprocess(None) is None
    # the draft kept on a new open question's editor change can send the yes/no letter before the radio drops it
    assert answer_radio([]).preprocess("A") is None and radio.preprocess("C") is None  # no "not in the choices" error
    demo = build_app(studio(store))
    answer = next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "kard-answer")
    assert type(answer).__name__ == type(radio).__name__ == "AnswerRadio"  # the page's answer radio is one
    assert next(c for c in demo.get_config_file()["components"] if c["id"] == answer._id)["type"] == "radio"


def test_the_rating_takes_the_documented_text_and_bad_api_arguments_are_one_line_errors(store):
    import gradio as gr

    from kard.ui.blocks import build_app

    demo = build_app(studio(store))
    by_id = {getattr(block, "elem_id", None): block for block in demo.blocks.values()}
    rating = by_id["kard-rating"]
    assert rating.preprocess("4") == 4 == rating.preprocess(4) and rating.preprocess(None) is None  # view_api: '4'
    assert ["1", "2", "3", "4", "5"] == [str(v) for v in rating.api_info()["enum"]]
    bad = [("kard-rating", 9, "9"), ("kard-rating", "x", "'x'"), ("kard-tags", ["bogus tag"], "'bogus tag'"),
           ("kard-mark-0", "maybe", "'maybe'"), ("kard-kind", "banana", "'banana'"),
           ("kard-picked", "nope-id", "nope-id")]
    for elem_id, value, shown in bad:
        with pytest.raises(gr.Error) as raised:
            by_id[elem_id].preprocess(value)
        error = raised.value
        assert error.print_exception is False, elem_id  # no traceback in the app's log
        assert error.message.startswith(str(by_id[elem_id].label)) and shown in error.message
        assert "\n" not in error.message and len(error.message) <= 300
    types = {c["id"]: c["type"] for c in demo.get_config_file()["components"]}
    assert [types[by_id[e]._id] for e in ("kard-rating", "kard-tags", "kard-kind")] == ["radio", "checkboxgroup",
                                                                                      "radio"]


def test_a_failed_save_keeps_the_draft_and_a_good_one_drops_it():
    from kard.ui import blocks
    from kard.ui.updates import skips

    assert blocks.draft_after_save("Saved text.", "Saved text. ") == ""
    assert blocks.draft_after_save("", "Unsaved text.") == skips(1)[0]
    assert blocks.draft_after_save("Saved earlier.", "Edited since.") == skips(1)[0]


def test_an_unsaved_correction_stops_the_first_ask_and_the_same_click_again_goes_on(store):
    from kard.ui import ask_events
    from kard.ui.updates import skips

    s = studio(store)
    item = asked(s)
    mine, teachers = "My own correction.", "The teacher's text."

    def ask(warned=None, saved: str = "", question: str = "Which vitamin?", who: Studio = s) -> list:
        return list(ask_events.ask_checked(who, question, "A) x B) y", None, "auto", item, mine, teachers, saved,
                                           warned))

    stopped = ask()
    assert len(stopped) == 1 and "have not saved" in stopped[0][2]  # warned, in the status line
    assert stopped[0][5] is False and stopped[0][-1] == ("ask", mine)  # nothing to compare; Ask armed for this text
    went_on = ask(warned=stopped[0][-1])  # the same click again: discard it and ask
    assert went_on[-1][5] == 1 and went_on[-1][3]["question"]["text"] == "Which vitamin?" and went_on[-1][-1] is None
    assert ask(warned=("ask", "An older text."))[0][5] is False  # edited since the warning: warned again
    assert ask(warned=("next", mine))[0][5] is False  # warned by another button: warned again
    assert ask(saved=mine)[-1][5] == 1  # saved: nothing to lose
    assert ask(question="  ")[-1][5] is False and "question is empty" in ask(question="  ")[-1][2]  # fails anyway
    assert ask(who=studio(store, mode="demo"))[-1][5] == 1  # nothing can be saved in the demo

    def switch(question: str = "Which vitamin?", warned=None) -> list:
        return list(ask_events.ask_as_switched(s, question, "A) x B) y", None, "open", item, mine, teachers, "",
                                               warned))

    switched = switch()
    assert len(switched) == 1 and "as another kind" in switched[0][2]  # "Ask as" warns
    assert ask(warned=switched[0][-1])[-1][5] == 1  # and the Ask button then goes on, as the warning says
    assert switch(warned=switched[0][-1])[0][5] is False  # switching again warns again
    assert switch(question="") == [[*skips(ask_events.ASK_OUTPUTS), False, *skips(3)]]  # nothing typed: no ask

    picked = ask_events.next_question(s, None, item, mine, teachers, "", None)
    assert list(picked[:4]) == skips(4) and "have not saved" in picked[4] and picked[5:] == (("next", mine), False)
    moved = ask_events.next_question(s, None, item, mine, teachers, "", picked[5])
    assert moved[0]["value"] and moved[1] and moved[5:] == (None, True)  # the next demo question, to be asked
    assert ask_events.next_question(s, None, item, mine, teachers, "", ("ask", mine))[-1] is False  # another button's
    assert ask_events.next_question(s, None, item, teachers, teachers, "", None)[-1] is True  # the editor is unchanged
    assert not curating.unsaved_edit(None, mine, "", "")  # no item: nothing was asked
    assert not curating.unsaved_edit(item, teachers + " ", teachers, "")  # whitespace is no edit


def test_a_rating_tags_or_note_not_saved_stop_the_first_ask_and_next_question_too(store):
    from kard.ui import ask_events

    s = studio(store)
    item = asked(s)
    teachers = compare(s, item).editor_text  # the editor unchanged: only the review controls differ

    def ask(*review, warned=None) -> list:
        return list(ask_events.ask_checked(s, "Which vitamin?", "A) x B) y", None, "auto", item, teachers, teachers,
                                           "", warned, *review))

    assert ask(None, [], "")[-1][5] == 1  # as the item started them: nothing to lose
    assert ask(None, [], "", None, "irrelevant")[0][5] is False  # a passage marked and not saved
    for review in ((2, [], ""), (None, ["hallucination"], ""), (None, [], "Check the dose.")):
        stopped = ask(*review)
        assert len(stopped) == 1 and "have not saved" in stopped[0][2] and stopped[0][5] is False
        assert ask(*review, warned=stopped[0][-1])[-1][5] == 1  # the same click again discards them
    assert ask(3, [], "", warned=ask(2, [], "")[0][-1])[0][5] is False  # changed since the warning: warned again
    assert ask(2, [], "", warned=("next", teachers, curating.review_of(2, [], "")))[0][5] is False  # another button's
    picked = ask_events.next_question(s, None, item, teachers, teachers, "", None, None, ["other"], "")
    assert picked[-1] is False and "have not saved" in picked[4]
    assert ask_events.next_question(s, None, item, teachers, teachers, "", picked[5], None, ["other"], "")[-1] is True

    save(s, item, "Scurvy is a lack of vitamin C. Answer: A", "A", 4, ["other"], [], "checked", False, "alice")
    reopened = ask_once(s, *asking.pick(s, "q1"), "q1").item  # it starts from the saved rating, tags and note
    saved_text = compare(s, reopened).editor_text
    assert list(ask_events.ask_checked(s, "Which vitamin?", "A) x B) y", None, "auto", reopened, saved_text,
                                       saved_text, "", None, 4, ["other"], " checked "))[-1][5] == 1
    assert list(ask_events.ask_checked(s, "Which vitamin?", "A) x B) y", None, "auto", reopened, saved_text,
                                       saved_text, "", None, 5, ["other"], "checked"))[0][5] is False
    assert ask_events.next_question(studio(store, mode="demo"), None, item, teachers, teachers, "", None, 2, [], "")[-1]


def test_unsaved_review_compares_with_where_the_item_started_them(store):
    used = ["p1", "p2"]
    assert not curating.unsaved_review(None, used, None, [], "  ") and not curating.unsaved_review(None, used, "", None, None)
    assert curating.unsaved_review(None, used, 1, [], "") and curating.unsaved_review(None, used, None, [], "n")
    assert curating.review_of("4", ["b", "a"], " n ") == (4, ("a", "b"), "n")
    assert curating.unsaved_review(None, used, None, [], "", None, "irrelevant")  # a passage marked, not saved
    assert not curating.unsaved_review(None, used, None, [], "", None, None)
    assert not curating.unsaved_review(None, ["correction:x"], None, [], "", "relevant")  # a recalled correction

    s = studio(store)
    item = asked(s)
    used_ids = [hit.passage.id for hit in AskedItem.from_dict(item).used]
    save(s, item, "Scurvy is a lack of vitamin C. Answer: A", "A", None, [], ["relevant"], "", False, "alice")
    saved = store.get(item["item_id"])
    assert not curating.unsaved_review(saved, used_ids, None, [], "", "relevant")  # what was saved
    assert curating.unsaved_review(saved, used_ids, None, [], "", "irrelevant")  # changed since


def test_starting_the_editor_again_warns_before_it_replaces_an_unsaved_correction(store):
    from kard.ui import blocks
    from kard.ui.updates import skips

    s = studio(store)
    item = asked(s)
    teachers, mine = compare(s, item).editor_text, "My own correction."
    stopped = blocks.use_rationale(s, "student", item, mine, teachers, "", None)
    assert stopped[:blocks.EDITOR_OUTPUTS] == tuple(skips(blocks.EDITOR_OUTPUTS)) and stopped[-1] == ("student", mine)
    assert blocks.use_rationale(s, "student", item, mine, teachers, "", ("next", mine))[-1] == ("student", mine)
    again = blocks.use_rationale(s, "student", item, mine, teachers, "", stopped[-1])
    assert again[0] == again[1] and again[0] != mine and again[-1] is None  # replaced: the same button twice
    assert blocks.use_rationale(s, "student", item, teachers, teachers, "", None)[-1] is None  # nothing unsaved


def test_a_new_item_starts_its_rating_tags_and_note_afresh_or_from_its_saved_correction(store):
    from kard.ui import ask_events

    s = studio(store)
    first = asked(s)
    save(s, first, "Scurvy is a lack of vitamin C. Answer: A", "A", 4, ["wrong knowledge"], [], "checked", False, "alice")

    def review_after_compare(item: dict) -> list:
        steps = list(ask_events.compare(s, 3, item, review=True))  # width 3 stands for AskTab.compare_outputs
        return steps[-1][-5:-2]

    second = ask_once(s, *asking.pick(s, "q2"), "q2").item
    assert review_after_compare(second) == [None, [], ""]  # not the first item's rating, tags and note
    assert review_after_compare(asked(s)) == [4, ["wrong knowledge"], "checked"]  # its saved correction's
    assert len(list(ask_events.compare(s, 3, None, review=True))[0]) == 8  # nothing to compare: all skipped
    page, api = list(ask_events.compare(s, 3, first, review=True))[-1], list(ask_events.compare(s, 3, first))[-1]
    assert len(page) == len(api) + ask_events.REVIEW_OUTPUTS and "checked" not in api  # /compare keeps its outputs


def test_a_new_item_clears_the_save_message_and_its_confirmation_box(store):
    from kard.ui import ask_events

    s = studio(store)
    save_msg, confirm = list(ask_events.compare(s, 3, asked(s, "q2"), review=True))[-1][-2:]
    assert save_msg == ""  # "Saved revision 1 of ..." spoke of the item before
    assert confirm == {"__type__": "update", "visible": False, "value": False}


def test_a_newer_ask_of_the_page_supersedes_the_running_one_and_its_compare(store):
    from kard.ui import ask_events
    from kard.ui.updates import skips

    s, turns = studio(store), ask_events.AskTurns()
    first = ask_events.ask_on_page(s, *asking.pick(s, "q1"), "q1", turns=turns)
    assert next(first)[6]["interactive"] is False  # the student answers q1 (turn 1), the editor locked
    second = list(ask_events.ask_on_page(s, *asking.pick(s, "q2"), "q2", turns=turns))  # q2 asked meanwhile
    assert list(first) == []  # q1's ask stops where it is: it hands out nothing, and leaves the editor locked
    assert second[-1][5] == 2 and second[-1][3]["question"]["id"] == "q2"  # q2 is handed out, in turn 2

    compared = lambda current, **_: iter([["compared", current], ["more", current]])  # noqa: E731
    assert list(ask_events.compare_when_handed_out(compared, 2, 0, {"item": 1}, 1, turns)) == [skips(2)]
    steps = ask_events.compare_when_handed_out(compared, 2, 0, {"item": 2}, 2, turns)
    assert next(steps)[1] == {"item": 2}  # the latest ask's item fills the editor
    turns.take()  # and when another ask starts, its compare stops without a word
    assert list(steps) == []
    assert copy.deepcopy(turns).latest == 0  # a new session (Gradio copies the State's value) starts afresh


def test_the_api_gets_an_error_and_no_placeholders_from_a_failed_ask_or_a_compare_without_item(store):
    """A failed /ask returned Gradio's "skip" placeholders ({'__type__': 'update'}) beside the error, and /compare
    without an item returned nothing at all: an API caller had no message to read."""
    from kard.ui.ask_events import ask, compare

    s = studio(store)
    failed = list(ask(s, "", "", None))[-1]
    assert failed[:2] == ["", ""] and failed[3:] == [None, ""] and "The question is empty" in failed[2]
    nothing = next(compare(s, 5, None))
    assert "Nothing to compare" in nothing[0] and "pass the item /ask returned" in nothing[0]
    assert next(compare(s, 5, None, review=True)) == [{"__type__": "update"}] * 10  # the page keeps its message


def test_a_failed_ask_says_the_cards_still_show_the_question_asked_before(store):
    """A failed ask leaves the cards as they were: with an earlier answer on screen, a visitor read it as the answer
    to the (empty, or unreadable) question now in the box. Its message now says whose answer the cards show."""
    from kard.ui import ask_events

    s = studio(store)
    item = asked(s)

    def failed(current) -> str:
        outputs = list(ask_events.ask_checked(s, "  ", "", None, "auto", current, "", "", "", None))[-1]
        return outputs[2]

    assert "question is empty" in failed(item) and "still show the answer to the question asked before" in failed(item)
    assert "question is empty" in failed(None) and "asked before" not in failed(None)  # nothing on screen yet


def test_a_live_reply_stopped_by_the_content_filter_says_asking_again_will_not_help(store, tmp_path):
    from fake_openai_server import FakeOpenAI, Reply, answer_with

    filtered = "Plants take in carbon dioxide, so the answer is B"
    with FakeOpenAI(api_key="sk-x") as server:
        server.script(Reply(texts=(filtered,), finish_reason="content_filter"))
        server.responder = answer_with("Plants take in carbon dioxide for photosynthesis.\nAnswer: B")
        s = studio(store, teacher_factory=real_teacher_factory(server.url, "sk-x", tmp_path / "teacher.sqlite"))
        stopped = compare(s, asked(s, "q2"))
        compare(s, asked(s, "q2"))
        assert server.count == 2  # not cached
    shown = html.unescape(stopped.teacher_html)
    assert "content filter stopped the teacher's reply" in shown and "asking again will not help" in shown
    assert stopped.item["teacher"]["answer"] is None and stopped.warning == stopped.item["teacher"]["notice"]


def test_a_live_reply_shows_no_think_block_in_the_card_or_the_editor(store):
    from fake_openai_server import FakeOpenAI, answer_with

    with FakeOpenAI(api_key="sk-x") as server:
        server.responder = answer_with("<think>Oxygen? Answer: A? No.</think>\nPlants take in carbon dioxide."
                                       "\n**Answer:** B")
        s = studio(store, teacher_factory=real_teacher_factory(server.url, "sk-x"))
        c = compare(s, asked(s, "q2"))
    assert c.item["teacher"]["answer"] == "B" and c.editor_text == "Plants take in carbon dioxide."
    assert "Oxygen?" not in c.teacher_html and "think" not in c.item["teacher"]["rationale"]


def test_credentials_in_the_teacher_url_are_masked_on_the_page(store):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    s = studio(store, teacher_factory=real_teacher_factory(f"http://user:hunter2pass@127.0.0.1:{port}/v1", "sk-x"))
    c = compare(s, asked(s, "q2"))
    assert f"http://***@127.0.0.1:{port}/v1" in c.warning
    assert "hunter2pass" not in c.warning + c.teacher_html

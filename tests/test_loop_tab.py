"""The Retrain & rounds tab asks the question as the Ask tab does ("Ask as"), over stand-in students (no model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kard.annotations import AnnotationStore
from kard.records import Prediction, Question
from kard.ui.loop_tab import LoopPanel
from kard.ui.studio import Studio

LISTED = Question("q1", "Which vitamin deficiency causes scurvy?", {"A": "Vitamin C", "B": "Vitamin D"}, "A", "demo")


class RecordingPanel(LoopPanel):
    """Answers every round with a fixed rationale and keeps the questions it was asked."""

    asked: list[Question]

    def answer_with(self, name: str, question: Any) -> Prediction:
        self.asked.append(question)
        answer = {"open": "wet", "yesno": "A"}.get(question.kind, "A")
        return Prediction(question, (), (), "prompt", f"Water is wet. Answer: {answer}", "Water is wet.", answer,
                          student_name=name)


@pytest.fixture
def panel(tmp_path: Path) -> RecordingPanel:
    store = AnnotationStore(tmp_path / "a.db")
    made = RecordingPanel(Studio(lambda: None, store, [LISTED], mode="curator"), tmp_path / "rounds",
                          base_student="base-student", db=tmp_path / "a.db")
    made.asked = []
    return made


@pytest.mark.parametrize("kind, label", [("open", "open question"), ("yesno", "yes/no question"),
                                         ("auto", "yes/no question")])
def test_both_rounds_answer_the_question_as_the_ask_tab_asks_it(panel, kind, label):
    left, right, _ = panel.compare("Is water wet?", "", None, "base", "base", kind)
    assert [q.kind for q in panel.asked] == [{"auto": "yesno"}.get(kind, kind)] * 2
    assert f"Asked as: <b>{label}</b>" in left and f"Asked as: <b>{label}</b>" in right


def test_every_round_answers_the_question_as_the_ask_tab_asks_it(panel):
    table = panel.every_round("Is water wet?", "", None, "open")
    assert [q.kind for q in panel.asked] == ["open"] and "Asked as: <b>open question</b>" in table
    assert "wet" in table and "no gold" in table


def test_a_listed_question_keeps_its_gold(panel):
    left, _, _ = panel.compare(LISTED.text, "A) Vitamin C\nB) Vitamin D", "q1", "base", "base", "auto")
    assert panel.asked[0] is LISTED and "matches gold" in left


def test_the_tab_takes_the_ask_tabs_kind_and_demo_question(panel):
    import gradio as gr

    from kard.ui.loop_tab import add_loop_tab

    with gr.Blocks() as demo:
        question, options = gr.Textbox(), gr.Textbox()
        kind, picked = gr.Radio(["auto", "open"], value="open"), gr.Dropdown(["q1"])
        add_loop_tab(panel.studio, None, lambda request, profile: "alice", question=question, options=options,
                     kind=kind, picked=picked, panel=panel)
    inputs = {event.api_name or event.fn.__name__: [block._id for block in event.inputs]
              for event in demo.fns.values()}
    assert {kind._id, picked._id} <= set(inputs["compare_rounds"])
    assert {kind._id, picked._id} <= set(inputs["every"])


def test_the_app_wires_its_ask_as_into_the_rounds_comparison(panel):
    from kard.config import AppConfig
    from kard.ui.blocks import build_app

    demo = build_app(panel.studio, AppConfig(mode="curator"))
    compare = next(event for event in demo.fns.values() if event.api_name == "compare_rounds")
    assert {"kard-question", "kard-options", "kard-kind", "kard-picked"} <= {b.elem_id for b in compare.inputs}


@pytest.mark.parametrize("steps, weight, problem", [
    (0, 3, "Training steps must be at least 1 (got 0). Fix: enter a whole number of 1 or more in 'Training steps'"),
    (-2, 3, "Training steps must be at least 1 (got -2). Fix:"),
    (None, 3, "Training steps is empty. Fix: enter a whole number of 1 or more in 'Training steps'"),
    (20, 0, "Correction weight must be at least 1 (got 0). Fix: enter a whole number of 1 or more in 'Correction"),
])
def test_a_retrain_below_one_step_or_weight_is_refused_naming_the_field(panel, steps, weight, problem):
    from kard.errors import KardError

    panel._launch = lambda spec: pytest.fail("no job may start")
    with pytest.raises(KardError) as refused:
        panel.start("", weight, steps, False, "", "alice")
    assert str(refused.value).startswith(problem)


@pytest.mark.filterwarnings("ignore:Training steps must be at least 1")  # gr.Warning outside a request
def test_start_with_zero_steps_shows_the_tabs_message_in_place_of_the_last_one(panel):
    """Gradio's own `minimum` check would refuse 0 first ("Value 0 is less than minimum value 1.", error badges
    left on the outputs); the tab's handler answers instead, its message replacing the one on screen."""
    import gradio as gr

    from kard.ui.loop_tab import add_loop_tab

    with gr.Blocks() as demo:
        add_loop_tab(panel.studio, None, lambda request, profile: "alice", question=gr.Textbox(),
                     options=gr.Textbox(), panel=panel)
    start = next(event for event in demo.fns.values() if event.fn.__name__ == "start")
    steps = [block for block in start.inputs if getattr(block, "label", "") == "Training steps"][0]
    assert steps.preprocess(0) == 0  # reaches the handler
    message, progress, _ = start.fn("", 3, 0, False, "", None, None)
    assert "Training steps must be at least 1 (got 0). Fix:" in message and "kard-msg-error" in message
    assert "No retrain job has run" in progress


def test_a_preparing_job_names_what_it_prepares_and_its_total_steps():
    from kard.loop.jobs import JobStatus
    from kard.ui.loop_tab import progress_line

    loading = JobStatus("j", "running", "student", 0, 2, message="preparing: loading the student demo/student")
    assert progress_line(loading) == "running · preparing: loading the student demo/student · step 0/2"
    queued = JobStatus("j", "queued", message="preparing: starting the job process")
    assert progress_line(queued) == "queued · preparing: starting the job process"  # no 0/0 before the total
    stepping = JobStatus("j", "running", "student", 1, 2, 0.51234, message="student: step 1/2")
    assert progress_line(stepping) == "running · student · step 1/2 · loss 0.5123"
    failed = JobStatus("j", "failed", "done", 0, 2, error="boom")
    assert progress_line(failed) == "failed · done · step 0/2"


def test_the_tab_shows_a_preparing_job_without_a_step_count_that_has_not_moved(panel):
    import os
    from dataclasses import asdict

    from kard.loop.jobs import JobStatus, status_path
    from kard.loop.round_folder import write_json_atomic

    status = JobStatus("job-1", "running", "student", 0, 2, pid=os.getpid(),
                       message="preparing: loading the student demo/student")
    status_path(panel.root, "job-1").parent.mkdir(parents=True)
    write_json_atomic(status_path(panel.root, "job-1"), asdict(status))
    html = panel.status_html()
    assert "running · preparing: loading the student demo/student · step 0/2" in html and "0/0" not in html
    assert '<progress max="100" style="width:100%"></progress>' in html  # moving, no 0%
    assert html.count("preparing: loading") == 1 and "kard-msg" not in html  # no message below: no empty box

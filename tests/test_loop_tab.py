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

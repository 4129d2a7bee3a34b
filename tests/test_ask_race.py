"""A newer ask while the page's compare step waits for the teacher, and Save while the editor is read-only: the
superseded compare changes nothing (no blanked panels, no toast of its teacher's failure), and Save refuses until
the editor opens (tests/test_ask_race_browser.py does both in a browser)."""

from __future__ import annotations

import html
from functools import partial

import pytest
from app_fixtures import demo_studio

from kard.ui import ask_events, asking
from kard.ui.ask_events import AskTurns, compare, compare_when_handed_out, save_refusal
from kard.ui.updates import skips

WIDTH = 3  # the stand-in compare steps' outputs: the editor first


class SupersedingTeacher:
    """A live teacher during whose reply a newer ask of the page starts (takes a turn); then it fails."""

    def __init__(self, turns: AskTurns):
        self.turns = turns
        self.config = type("C", (), {"model": "slow-teacher"})()

    def stream_answer(self, question):
        self.turns.take()
        raise ConnectionError("the teacher's connection dropped")
        yield


@pytest.fixture
def toasts(monkeypatch) -> list[str]:
    """The warnings the events show as toasts."""
    import gradio

    shown: list[str] = []
    monkeypatch.setattr(gradio, "Warning", lambda text, *args, **kwargs: shown.append(text))
    return shown


def test_a_compare_superseded_before_its_first_step_still_sends_one_step_that_changes_nothing():
    """A generator event that ends without a step makes Gradio send None for every output: the page's panels went
    blank, the error tags held None, and every later draft-keeping event failed on it (Ask tab broken)."""
    turns = AskTurns()
    handed_out = turns.take()

    def teacher_still_writing(current, **_):
        turns.take()  # the curator asks again while the teacher writes
        yield [skips(1)[0], "the teacher's first words", skips(1)[0]]

    steps = list(compare_when_handed_out(teacher_still_writing, WIDTH, 0, {"item": 1}, handed_out, turns))
    assert steps == [skips(WIDTH)]


def test_an_ask_superseded_before_its_first_step_still_sends_one_step_that_changes_nothing(tmp_path):
    class RacedTurns(AskTurns):
        def take(self) -> int:  # another ask of the page takes a turn right after this one
            turn = super().take()
            super().take()
            return turn

    s = demo_studio(tmp_path, mode="curator")
    steps = list(ask_events.ask_on_page(s, *asking.pick(s, "q-bare"), "q-bare", turns=RacedTurns()))
    assert steps == [ask_events.unchanged_ask()] and steps[0][5] is False  # nothing handed out, nothing compared


def test_a_superseded_compare_shows_no_toast_of_its_teachers_failure(tmp_path, toasts):
    s = demo_studio(tmp_path, mode="curator")
    turns = AskTurns()
    item = list(ask_events.ask_on_page(s, *asking.pick(s, "q-recorded"), "q-recorded", turns=turns))[-1][3]
    s.teacher_factory = lambda: SupersedingTeacher(turns)
    page_compare = partial(compare, s, 16, review=True)
    steps = list(compare_when_handed_out(page_compare, 21, 3, item, turns.latest, turns))
    assert steps == [skips(21)] and toasts == []  # the newer question's page is left alone

    item = list(ask_events.ask_on_page(s, *asking.pick(s, "q-recorded"), "q-recorded", turns=turns))[-1][3]
    s.teacher_factory = lambda: SupersedingTeacher(AskTurns())  # no newer ask: the failure is the page's to show
    steps = list(compare_when_handed_out(page_compare, 21, 3, item, turns.latest, turns))
    assert "could not answer" in toasts[0] and steps[-1][3]["interactive"] is True


def superseding_student(turns: AskTurns, failure: Exception | None = None):
    """A student's stream during which a newer ask of the page starts (takes a turn); then it ends without an answer
    (the ask fails with a KardError), or with `failure`."""
    def stream(question):
        yield "Plants"
        turns.take()
        if failure is not None:
            raise failure

    return stream


@pytest.mark.parametrize("failure", [None, RuntimeError("the student's device failed")])
def test_a_superseded_ask_shows_no_toast_of_its_students_failure(tmp_path, toasts, failure):
    s = demo_studio(tmp_path, mode="curator")
    turns = AskTurns()
    s.pipeline().stream = superseding_student(turns, failure)
    steps = list(ask_events.ask_on_page(s, *asking.pick(s, "q-bare"), "q-bare", turns=turns))
    assert toasts == [] and all(step[5] is False for step in steps)  # nothing handed out, the newer page left alone
    assert not any("without a prediction" in str(step[2]) for step in steps)  # nor its status line

    s.pipeline().stream = superseding_student(AskTurns())  # no newer ask: the failure is the page's to show
    steps = list(ask_events.ask_on_page(s, *asking.pick(s, "q-bare"), "q-bare", turns=turns))
    assert "without a prediction" in toasts[0] and "without a prediction" in steps[-1][2]


def test_save_is_refused_while_the_editor_waits_for_the_student_or_the_teacher(tmp_path):
    s = demo_studio(tmp_path, mode="curator")
    s.teacher_factory = lambda: SupersedingTeacher(AskTurns())
    turns = AskTurns()
    assert save_refusal(turns) is None  # nothing asked yet: the editor is open
    asked = ask_events.ask_on_page(s, *asking.pick(s, "q-bare"), "q-bare", turns=turns)
    next(asked)
    assert "waiting for the student's answer" in save_refusal(turns)
    item = list(asked)[-1][3]
    refusal = save_refusal(turns)
    assert "waiting for the teacher's rationale" in refusal and "save once the editor opens" in refusal
    list(compare_when_handed_out(partial(compare, s, 16, review=True), 21, 3, item, turns.latest, turns))
    assert save_refusal(turns) is None  # the compare step opened the editor (here: the teacher failed)

    list(ask_events.ask_on_page(s, "", "", None, turns=turns))  # an empty question locks nothing
    assert save_refusal(turns) is None
    failed = ask_events.ask_on_page(s, *asking.pick(s, "q-bare"), "q-bare", turns=turns)
    next(failed)
    s.pipeline().stream = lambda question: iter(())  # the student ends without an answer: the ask fails
    list(failed)
    assert save_refusal(turns) is None  # a failed ask opens the editor


def test_the_page_save_writes_nothing_while_the_editor_is_read_only(tmp_path, toasts):
    from kard.ui.blocks import build_app

    s = demo_studio(tmp_path, mode="curator")
    save_event = _save_event(build_app(s))
    turns = AskTurns()
    item = list(ask_events.ask_on_page(s, *asking.pick(s, "q-bare"), "q-bare", turns=turns))[-1][3]
    turns.lock(turns.latest, ask_events.COMPARISON)
    out = save_event(item, "Plants take in carbon dioxide.\nAnswer: B", "B", 4, [], None, None, None, None, None,
                     "", False, "", "", None, turns)
    assert "Nothing was saved" in out[0] and "waiting for the comparison" in toasts[0]
    assert s.store.latest() == []
    turns.open(turns.latest)
    signed_in = type("Request", (), {"username": "alice"})()
    out = save_event(item, "Plants take in carbon dioxide.\nAnswer: B", "B", 4, [], None, None, None, None, None,
                     "", False, "", "", None, turns, request=signed_in)
    assert "Saved revision 1" in out[0] and len(s.store.latest()) == 1


@pytest.mark.parametrize("whose", ["teacher", "student"])
def test_use_a_rationale_changes_nothing_while_the_editor_is_read_only(tmp_path, toasts, whose):
    import gradio as gr

    from kard.ui.blocks import EDITOR_OUTPUTS, build_app

    s = demo_studio(tmp_path, mode="curator")
    use_event = _use_event(build_app(s), whose)
    turns = AskTurns()
    item = list(ask_events.ask_on_page(s, *asking.pick(s, "q-recorded"), "q-recorded", turns=turns))[-1][3]
    item = list(asking.compare_steps(s, item))[-1].item  # with the recorded teacher's rationale
    turns.lock(turns.latest, ask_events.TEACHER_RATIONALE)  # a newer ask's compare step waits for the teacher
    out = use_event(item, "The previous question's correction.", "", "", None, turns)
    assert out == (*skips(EDITOR_OUTPUTS), gr.skip())  # the editor's text, its source and the warning stay
    toast = html.unescape(toasts[0])
    assert "The editor was not changed" in toast and "waiting for the teacher's rationale" in toast
    turns.open(turns.latest)
    out = use_event(item, "", "", "", None, turns)
    assert isinstance(out[0], str) and out[0] and len(toasts) == 1  # the editor is open again: it fills


def _use_event(app, whose: str):
    """The function the "Use teacher's / student's rationale" button's click runs, its last input the page's turns."""
    from kard.ui import blocks

    fn = next(fn for fn in app.fns.values()
              if getattr(fn.fn, "func", None) is blocks.use_rationale and fn.fn.args[1] == whose)
    assert isinstance(fn.inputs[-1].value, AskTurns)
    return fn.fn


def _save_event(app):
    """The function the Save button's click runs (the /save API's)."""
    return next(fn.fn for fn in app.fns.values() if fn.api_name == "save")

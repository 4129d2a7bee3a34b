"""Gradio updates that several events of the page share: a skipped output, an error shown as a toast and a
status line, the relevance-mark radios, the answer controls of a question's kind and the editor's label; and the
answer radio itself, which reads a letter its question no longer offers as no answer."""

from __future__ import annotations

import functools
import logging
from abc import ABCMeta
from typing import Any, Callable

from kard.errors import page_text
from kard.records import Question, is_recalled
from kard.ui import asking
from kard.ui.cards import answer_choices
from kard.ui.curating import MAX_MARKED
from kard.ui.views import esc, message

log = logging.getLogger(__name__)


def skips(count: int) -> list[Any]:
    """`count` outputs left as they are."""
    import gradio as gr

    return [gr.skip()] * count


def warn(error: Exception) -> str:
    """Show an error as a toast and return it as the status message."""
    import gradio as gr

    text = page_text(error)  # without server paths where the error has a page text
    gr.Warning(esc(text))  # toasts render HTML: the person's own text must stay text
    return message(text, "error")


def mark_updates(item: dict | None, values: list | None = None) -> list:
    """The relevance-mark radios: one per passage the student read, labelled with it; none for a recalled
    correction (kard.recall: it is no knowledge to mark)."""
    import gradio as gr

    used = (item or {}).get("used", [])
    values = values or []
    return [gr.update(visible=i < len(used) and not is_recalled(used[i]["id"]),
                      value=values[i] if i < len(values) else None,
                      label=f"Passage {i + 1}: {used[i]['title'] or used[i]['id']}" if i < len(used) else "")
            for i in range(MAX_MARKED)]


def answer_radio(choices: list, **kwargs: Any) -> Any:
    """The "Correct answer" radio: a gr.Radio that reads a letter its choices no longer hold as no answer.

    A new question's update narrows the choices (a yes/no question's A/B, none for an open one) and drops the old
    letter, but an event the same update sets off (the draft kept on the editor's change) can send the old letter
    before the radio took the new value; Gradio's own Radio then fails that event with an error toast."""
    return _answer_radio_class()(choices, **kwargs)


def _lenient_preprocess(self: Any, payload: str | int | float | None) -> str | int | float | None:
    import gradio as gr

    if payload is not None and payload not in [value for _, value in self.choices]:
        log.debug("answer %r is not among this question's letters: read as none", payload)
        return None
    return gr.Radio.preprocess(self, payload)


@functools.cache
def _answer_radio_class() -> type:
    """gr.Radio with `_lenient_preprocess`, drawn by Gradio's Radio (a template of it). A subclass, as Gradio makes
    a session's copy of an updated component from its class. Made with ABCMeta.__new__ rather than a class
    statement: Gradio's ComponentMeta.__new__ adds nothing to a subclass without events or __init__, but would
    write a .pyi stub beside this module."""
    import gradio as gr

    return _template_subclass(gr.Radio, "AnswerRadio", _lenient_preprocess)


def _template_subclass(base: type, name: str, preprocess: Callable[[Any, Any], Any]) -> type:
    """A subclass `name` of the Gradio component `base` with its own `preprocess`, drawn by `base` (a template)."""
    attrs = {"__module__": __name__, "__qualname__": name, "is_template": True, "preprocess": preprocess}
    return ABCMeta.__new__(type(base), name, (base,), attrs)


MAX_ERROR_CHARS = 300
"""How much of a rejected argument's message an API caller gets (a demo question's list is long)."""


def quiet(component: type, *args: Any, **kwargs: Any) -> Any:
    """`component` (a Gradio input class) made with `kwargs`, whose rejection of a value not among its choices (an
    API caller's) is one line to the caller, led by the control's label, and no traceback in the app's log."""
    return _quiet_class(component)(*args, **kwargs)


def rating_radio(**kwargs: Any) -> Any:
    """The rating radio (values 1-5): it also takes a rating as the text the API description shows ('4')."""
    import gradio as gr

    return _quiet_class(gr.Radio, _rating_number)([1, 2, 3, 4, 5], **kwargs)


def _rating_number(payload: Any) -> Any:
    return int(payload) if isinstance(payload, str) and payload.strip().isdigit() else payload


@functools.cache
def _quiet_class(base: type, convert: Callable[[Any], Any] | None = None) -> type:
    """A template subclass of `base` (as `_answer_radio_class`) whose preprocess first converts the payload with
    `convert`, and raises Gradio's rejection again without the traceback Gradio would log."""
    import gradio as gr

    def preprocess(self: Any, payload: Any) -> Any:
        try:
            return base.preprocess(self, convert(payload) if convert else payload)
        except gr.Error as error:
            text = f"{self.label}: {error.message}"
            text = text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS - 3] + "..."
            raise gr.Error(text, print_exception=False) from None

    return _template_subclass(base, f"Quiet{base.__name__}", preprocess)


def answer_updates(question: Question, value: str | None) -> list:
    """The answer controls for a question's kind: the radio (letters, yes/no) or the text box (open)."""
    import gradio as gr

    choices = answer_choices(question)
    is_open = not choices
    return [gr.update(choices=choices, value=None if is_open else value, visible=not is_open),
            gr.update(value=value if is_open else "", visible=is_open)]


def editing_label(source: str) -> str:
    if source.startswith(asking.SAVED_SOURCE):
        return f"Editing the **{source}** of this question; saving adds a revision."
    return f"Editing a copy of the **{source}** rationale."

"""Gradio updates that several events of the page share: a skipped output, an error shown as a toast and a
status line, the relevance-mark radios, the answer controls of a question's kind and the editor's label."""

from __future__ import annotations

from typing import Any

from kard.records import Question
from kard.ui import asking
from kard.ui.cards import answer_choices
from kard.ui.curating import MAX_MARKED
from kard.ui.views import esc, message


def skips(count: int) -> list[Any]:
    """`count` outputs left as they are."""
    import gradio as gr

    return [gr.skip()] * count


def warn(error: Exception) -> str:
    """Show an error as a toast and return it as the status message."""
    import gradio as gr

    gr.Warning(esc(str(error)))  # toasts render HTML: the person's own text must stay text
    return message(str(error), "error")


def mark_updates(item: dict | None, values: list | None = None) -> list:
    """The relevance-mark radios: one per passage the student read, labelled with it."""
    import gradio as gr

    used = (item or {}).get("used", [])
    values = values or []
    return [gr.update(visible=i < len(used), value=values[i] if i < len(values) else None,
                      label=f"Passage {i + 1}: {used[i]['title'] or used[i]['id']}" if i < len(used) else "")
            for i in range(MAX_MARKED)]


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

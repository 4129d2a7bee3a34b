"""Text of invisible characters only (NUL, zero-width spaces) counts as empty: no correction, no question."""

from __future__ import annotations

import pytest

from kard.annotations import AnnotationStore
from kard.kinds import is_blank
from kard.ui import asking, curating
from kard.ui.curating import Edit
from kard.ui.studio import InputError
from test_app_handlers import asked, studio

INVISIBLE = ["\x00\x00\x00", "\u200b\u200c\u200d", "\ufeff \u2060", "\u3164", "\t\x01\n"]


@pytest.fixture
def store(tmp_path):
    return AnnotationStore(tmp_path / "a.db")


def test_is_blank():
    assert all(is_blank(text) for text in INVISIBLE + ["", "  ", None])
    assert not any(is_blank(text) for text in ["a", "\x00a", "\u200bé", "42"])


@pytest.mark.parametrize("text", INVISIBLE)
def test_a_rationale_of_invisible_characters_is_not_saved(store, text):
    s = studio(store)
    with pytest.raises(InputError, match="The corrected rationale is empty"):
        curating.save(s, asked(s), Edit(text, "A", 3), "alice")
    assert store.count() == 0


@pytest.mark.parametrize("text", INVISIBLE)
def test_a_question_of_invisible_characters_is_not_asked(store, text):
    s = studio(store)
    with pytest.raises(InputError, match="The question is empty"):
        list(asking.ask(s, text, "", None))


def test_an_open_answer_of_invisible_characters_is_not_saved(store):
    s = studio(store)
    item = list(asking.ask(s, "Why does ice float on water?", "", None, "open"))[-1].item
    with pytest.raises(InputError, match="Write the correct short answer"):
        curating.save(s, item, Edit("Ice is less dense than water.", "\u200b\x00"), "alice")


def test_the_command_line_refuses_a_question_of_invisible_characters():
    import argparse

    from kard.cli.ask import _question
    from kard.errors import DataError

    with pytest.raises(DataError, match="the question is empty"):
        _question(argparse.Namespace(sample=None, question="\x00\u200b", options="", kind="auto"))

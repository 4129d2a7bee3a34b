"""A question whose bytes are not UTF-8 is refused with one line before any model loads (command line and app)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from kard.errors import DataError
from kard.kinds import read_question

ROOT = Path(__file__).resolve().parents[1]
NOT_UTF8 = "Is caf\udce9 a drink?"  # what Python makes of the argument b"Is caf\xe9 a drink?" (os.fsdecode)


@pytest.mark.parametrize("argv, says", [
    ([b"Is caf\xe9 a drink?"], "the question is not valid UTF-8 text: the byte 0xe9 at character 7"),
    ([b"Which drink?", b"--options", b"A) caf\xe9 B) tea"], "the options are not valid UTF-8 text: the byte 0xe9"),
])
def test_ask_refuses_an_argument_that_is_not_utf8_before_any_model_loads(argv, says):
    env = dict(os.environ, LC_ALL="C.UTF-8", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "kard", "ask", *argv], cwd=ROOT, env=env, capture_output=True,
                          timeout=300)
    said = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2 and "Traceback" not in said, said
    assert said.startswith(f"error: {says}") and "Fix: type it again in a terminal set to UTF-8" in said
    assert said.count("\n") == 1 and not done.stdout  # one line; nothing loaded or printed before it


@pytest.mark.parametrize("text, options", [(NOT_UTF8, ""), ("Which drink?", {"A": "caf\udce9", "B": "tea"}),
                                           ("Which drink?", "A) caf\udce9 B) tea")])
def test_reading_a_typed_question_refuses_lone_surrogates(text, options):
    with pytest.raises(DataError, match="not valid UTF-8 text.*Fix: "):
        read_question(text, options)


def test_the_apps_question_box_refuses_a_question_that_is_not_utf8():
    from kard.ui import asking
    from kard.ui.studio import InputError

    studio = SimpleNamespace(max_question_chars=2000, questions={})
    with pytest.raises(InputError, match="the question is not valid UTF-8 text"):
        asking.resolve(studio, NOT_UTF8, "", None)

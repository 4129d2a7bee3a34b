"""What a visitor of the public demo is told instead of owner instructions: why a typed question has no teacher's
rationale, and that corrections cannot be saved here (above the form, in "How it works", on Save and Ctrl+S)."""

from __future__ import annotations

import pytest

from app_fixtures import by_elem_id, demo_studio as studio

from kard.ui import asking, blocks, curating
from kard.ui.curating import Edit
from kard.ui.studio import InputError, Studio
from kard.ui.updates import skips


def asked(s: Studio, qid: str = "q-bare") -> dict:
    return list(asking.ask(s, *asking.pick(s, qid), qid))[-1].item


def compared(s: Studio, item: dict) -> asking.Comparison:
    return list(asking.compare_steps(s, item))[-1]


# -- the demo: no teacher for a typed question, and no saving ---------------------------------------------
def test_the_demo_teacher_column_says_only_listed_questions_have_a_recorded_rationale(tmp_path):
    demo = studio(tmp_path)
    column = compared(demo, asked(demo)).teacher_html
    assert "recorded teacher rationales for the listed questions only" in column and "none recorded" in column
    assert "OPENAI_BASE_URL" not in column and "restart the app" not in column  # a visitor cannot do either
    with pytest.raises(InputError, match="listed questions only") as raised:
        asking.editor_text(demo, compared(demo, asked(demo)).item, "teacher")
    assert "OPENAI_BASE_URL" not in str(raised.value)
    curator = studio(tmp_path / "c", mode="curator")
    assert "OPENAI_BASE_URL" in compared(curator, asked(curator)).teacher_html  # the owner still learns how


def test_the_demo_says_above_the_form_and_in_how_it_works_that_corrections_cannot_be_saved(tmp_path):
    page = by_elem_id(blocks.build_app(studio(tmp_path)))
    note = page["kard-demo-note"].value
    assert "cannot be saved in this public demo" in note and curating.CURATOR_COMMAND in note
    assert "pip install -r requirements.txt" in note
    assert "every save becomes a revision" not in blocks.how_it_works(studio(tmp_path))
    assert "cannot be saved in this public demo" in blocks.how_it_works(studio(tmp_path))
    curator = by_elem_id(blocks.build_app(studio(tmp_path / "c", mode="curator")))
    assert "kard-demo-note" not in curator and "every save becomes a revision" in blocks.how_it_works(
        studio(tmp_path / "c", mode="curator"))


@pytest.mark.filterwarnings("ignore:Corrections cannot be saved")  # gr.Warning outside a request warns
def test_the_demo_save_button_answers_a_click_or_ctrl_s_with_how_to_run_a_copy_that_saves(tmp_path):
    """Ctrl+S clicks #kard-save; a disabled button took the click and said nothing."""
    s = studio(tmp_path)
    button = by_elem_id(blocks.build_app(s))["kard-save"]
    assert button.interactive is not False and button.value == "Save (curator mode only)"
    item = compared(s, asked(s)).item
    shown, _, kept, _ = blocks.save(s, item, Edit("my own correction", "B", 3), False, None)
    assert "cannot be saved in this read-only demo" in shown and curating.CURATOR_COMMAND in shown
    assert kept == skips(1)[0]  # nothing counts as saved
    assert s.store.count() == 0

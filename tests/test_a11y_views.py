"""Accessibility of the page's HTML and CSS as strings: headings for the cards, the rerank panel and the Retrain tab;
the status line's short result (read out by screen readers); a streaming cursor that screen readers skip and that
stands still for reduced motion; word diffs told apart by more than colour; a focus ring on every control; contrast
of our colours; whole headings in the browse table on a phone; dropdown text clear of its arrow."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from app_fixtures import demo_studio
from contrast import contrast

from kard.records import Hit, Passage
from kard.ui import asking
from kard.ui.page_script import DROPDOWN_JS, KEYBOARD_JS, LIVE_REGIONS_JS, PAGE_HEAD
from kard.ui.views import CSS, answer_summary, rationale_card, rerank_panel, word_diff


def _rule(selector_part: str, css: str = CSS) -> str:
    """The declarations of the first CSS rule whose selector contains `selector_part`."""
    match = re.search(r"([^{}]*)\{([^{}]*)\}", css[css.index(selector_part) - 1:]) if selector_part in css else None
    assert match, selector_part
    return match.group(2)


# -- headings ------------------------------------------------------------------------------------------
def test_a_cards_writer_is_a_heading_of_the_level_asked_for():
    card = rationale_card("Student", "demo/student", "Because. Answer: A")
    assert '<h2 class="kard-role">Student</h2>' in card and "<b>Student</b>" not in card
    assert '<h3 class="kard-role">round-1</h3>' in rationale_card("round-1", "rounds/round-1", "text", level=3)


def test_the_rerank_panel_has_a_heading_for_screen_readers():
    hits = [Hit(Passage("p1", "Scurvy", "Scurvy is vitamin C deficiency."), 4.0, 1)]
    for panel in (rerank_panel(hits, ["p1"], "scurvy"), rerank_panel([], [], "scurvy")):
        assert '<h2 class="kard-sr-only">Retrieved passages</h2>' in panel
    assert "clip: rect(0, 0, 0, 0)" in _rule(".kard-sr-only")


def test_the_retrain_tab_headings_follow_the_page_title_at_level_two(tmp_path):
    import gradio as gr

    from kard.config import AppConfig
    from kard.ui.loop_tab import add_loop_tab

    studio = demo_studio(tmp_path, mode="curator")
    with gr.Blocks() as demo:
        add_loop_tab(studio, AppConfig(mode="curator", annotations_db=tmp_path / "a.db"),
                     lambda request, profile: "alice", question=gr.Textbox(), options=gr.Textbox(),
                     root=tmp_path / "rounds")
    headings = [block.value.split("\n")[0] for block in demo.blocks.values()
                if isinstance(block, gr.Markdown) and str(block.value or "").startswith("#")]
    assert len(headings) == 3 and all(h.startswith("## ") for h in headings), headings


# -- the status line and the streaming cards -----------------------------------------------------------
@pytest.mark.parametrize("answer, gold, kind, said", [
    ("C", "A", "choice", "Student answered C, gold A: wrong"),
    ("A", "A", "choice", "Student answered A: right"),
    ("B", None, "choice", "Student answered B, no gold"),
    ("A", "B", "yesno", "Student answered yes, gold no: wrong"),
    ("iron", None, "open", 'Student answered "iron", no gold'),
    (None, "A", "choice", "Student answered, but no answer was found; gold A"),
])
def test_the_answer_summary_says_the_answer_and_whether_it_matches_gold(answer, gold, kind, said):
    options = {"A": "yes", "B": "no"} if kind == "yesno" else {"A": "x", "B": "y", "C": "z"} if kind == "choice" else {}
    assert answer_summary("Student", answer, gold, options, kind) == said


def test_the_status_line_leads_with_the_students_result(tmp_path: Path):
    studio = demo_studio(tmp_path)
    updates = list(asking.ask(studio, "Which gas do plants absorb?", "A) Oxygen B) Carbon dioxide", "q-bare"))
    assert updates[-1].status_html.startswith('<div class="kard-msg kard-msg-info">Student answered B: right. '
                                              "Asked as: multiple choice.")
    assert all("Student answered" not in u.status_html for u in updates[:-1])  # nothing while it streams


def test_the_status_line_is_a_polite_live_region_and_gradios_untranslated_one_is_silenced():
    assert LIVE_REGIONS_JS in PAGE_HEAD
    for attribute in ('"role", "status"', '"aria-live", "polite"', '"aria-atomic", "true"'):
        assert f"status.setAttribute({attribute})" in LIVE_REGIONS_JS
    assert 'querySelector("#kard-status .html-container")' in LIVE_REGIONS_JS
    assert '"aria-hidden", "true"' in LIVE_REGIONS_JS


def test_a_streaming_card_is_busy_and_its_cursor_hidden_from_screen_readers():
    streaming = rationale_card("Student", "m", "So far", streaming=True)
    assert '<span class="kard-cursor" aria-hidden="true">' in streaming and 'aria-busy="true"' in streaming
    assert "aria-live" not in streaming
    done = rationale_card("Student", "m", "So far. Answer: A")
    assert "aria-busy" not in done and "kard-cursor" not in done


def test_the_cursor_stands_still_for_reduced_motion():
    reduced = CSS[CSS.index("@media (prefers-reduced-motion: reduce)"):]
    assert re.match(r"@media \(prefers-reduced-motion: reduce\) \{[^\n]*\n  \.kard-cursor \{ animation: none; \}\n\}",
                    reduced)


# -- word diff -----------------------------------------------------------------------------------------
def test_a_replacement_separates_removed_and_added_words_and_added_words_are_underlined():
    assert word_diff("the cat sat", "the dog sat") == \
        '<div class="kard-diff">the <del>cat</del> <ins>dog</ins> sat</div>'
    assert word_diff("a cat", "a cat dog") == '<div class="kard-diff">a cat<ins> dog</ins></div>'  # added only
    assert "text-decoration: underline" in _rule(".kard-diff ins")
    assert "line-through" in _rule(".kard-diff del")


# -- focus, contrast -----------------------------------------------------------------------------------
def test_text_fields_buttons_and_tabs_have_a_focus_ring_in_both_themes():
    start = CSS.index(".gradio-container :is(select, button")
    selector, ring = CSS[start:].split("{", 1)
    assert ring.strip().startswith("outline: 3px solid var(--kard-focus) !important;")
    clicked, typed, dropdown = selector.split(",\n")
    for control in ("button", "[role=tab]", "select"):
        assert control in clicked and ":focus-visible" in clicked
    # text fields and dropdowns only after keyboard use: a clicked text field counts as :focus-visible too
    assert typed.startswith(".kard-keyboard ") and "textarea" in typed and "[role=combobox]" in typed
    assert dropdown.startswith(".kard-keyboard ") and ".wrap:has(" in dropdown  # the whole box, not its input
    assert KEYBOARD_JS in PAGE_HEAD and '"Tab"' in KEYBOARD_JS and '"pointerdown"' in KEYBOARD_JS
    light = re.search(r":root \{ --kard-focus: (#\w{6}); \} \.dark \{ --kard-focus: (#\w{6}); \}", CSS)
    assert light and contrast(light.group(1), "#ffffff") >= 3 and contrast(light.group(2), "#0b0f19") >= 3


def test_our_light_colours_and_the_chosen_tabs_accent_reach_aa_contrast():
    import app

    up = re.search(r":root \{ --kard-up: (#\w{6});", CSS).group(1)
    assert contrast(up, "#eef2ff") >= 4.5  # a used row's background (the accent's soft colour)
    theme = app.theme()
    assert theme.color_accent == "*primary_600"
    assert contrast(theme.primary_600, "#ffffff") >= 4.5  # a chosen tab's label on white


# -- phone ---------------------------------------------------------------------------------------------
def test_the_browse_tables_headings_break_at_spaces_only_on_a_phone():
    phone = CSS[CSS.index("@media (max-width: 640px)"):]
    assert "#kard-table th .header { overflow-wrap: normal; word-break: keep-all; }" in phone
    assert "#kard-table .virtual-table-viewport { overflow-x: auto; }" in phone
    widths = dict(re.findall(r":nth-child\((\d)\) \{ --kard-col: ([^;]+);", phone))
    assert widths["2"] == "36px" and widths["6"] == "40px"


def test_a_dropdowns_long_text_ends_in_an_ellipsis_with_no_padding_before_its_arrow():
    rule = _rule(".secondary-wrap input[role=combobox]")
    assert "text-overflow: ellipsis" in rule and "padding" not in rule  # the arrow sits beside the input


def test_tab_takes_the_open_list_out_of_the_tab_order():
    branch = DROPDOWN_JS[DROPDOWN_JS.index('if (event.key === "Tab")'):]
    assert 'querySelectorAll("[role=listbox]").forEach((list) => { list.tabIndex = -1; })' in branch

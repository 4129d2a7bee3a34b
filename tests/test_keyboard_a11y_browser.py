"""Keyboard, screen reader and lost-connection checks of the curator page in headless Chromium (the tiny stack):
Tab leaves the "Demo question" dropdown closed and moves on, a pick keeps focus on it, Ctrl+Enter leaves focus where
it was; each radio and checkbox group is named by its label (a passage's marks by the passage), with a visible
focus ring; and text typed while the server cannot be reached is restored after a reload, and saves."""

from __future__ import annotations


import pytest

pytest.importorskip("playwright.sync_api")

from app_fixtures import BROWSER_TEST, curator_page, save_on_page, tiny_chromium_app  # noqa: E402
from contrast import contrast  # noqa: E402

QUESTION = "Which antibodies drive Graves thyroid disease?"
OPTIONS = "A) Antibodies that stimulate the TSH receptor B) Antibodies against insulin"
FOCUSED = ("(() => { const a = document.activeElement; const b = a && a.closest('[id^=kard-]');"
           " return b ? b.id : a.tagName; })()")
LIST_OPEN = "document.querySelectorAll('#kard-picked [role=listbox]').length > 0"

pytestmark = BROWSER_TEST
app = tiny_chromium_app("keyboard-a11y")


def _page(app):
    return curator_page(*app[:2])


def _ask(page) -> None:
    page.fill("#kard-question textarea", QUESTION)
    page.fill("#kard-options textarea", OPTIONS)
    page.click("#kard-ask")
    page.wait_for_selector("#kard-editor-label >> text=Editing", timeout=120_000)
    page.wait_for_function("!document.querySelector('#kard-editor textarea').disabled")


def test_the_keyboard_moves_past_the_dropdown_picks_and_asks_without_losing_focus(app):
    page = _page(app)
    page.focus("#kard-picked input")
    page.wait_for_function(LIST_OPEN)  # Gradio opens the list on focus
    page.keyboard.press("Tab")
    page.wait_for_timeout(300)  # Gradio's key handler reopened the list a tick after focus moved on
    assert page.evaluate(FOCUSED) == "kard-question" and not page.evaluate(LIST_OPEN)
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    page.wait_for_timeout(300)
    assert page.evaluate(FOCUSED) != "kard-picked" and not page.evaluate(LIST_OPEN)

    page.focus("#kard-picked input")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")  # a pick: the list closes, focus stays on the dropdown
    page.wait_for_function("document.querySelector('#kard-question textarea').value.length > 0")
    page.wait_for_timeout(300)
    assert page.evaluate(FOCUSED) == "kard-picked" and not page.evaluate(LIST_OPEN)

    _ask(page)
    page.focus("#kard-editor textarea")
    # the editor is disabled while the student answers, then back; the tiny student can answer between two polls,
    # so an observer set up before the key notes that it was disabled at all
    page.evaluate("() => { window.kardEditorLocked = false;"
                  " const box = document.querySelector('#kard-editor textarea');"
                  " new MutationObserver(() => { if (box.disabled) window.kardEditorLocked = true; })"
                  ".observe(box, {attributes: true, attributeFilter: ['disabled']}); }")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("window.kardEditorLocked", timeout=30_000)
    page.wait_for_selector("#kard-editor-label >> text=Editing", timeout=120_000)
    page.wait_for_function("!document.querySelector('#kard-editor textarea').disabled")
    page.wait_for_timeout(300)
    assert page.evaluate(FOCUSED) == "kard-editor"
    page.context.close()


def test_radio_and_checkbox_groups_are_named_and_show_a_focus_ring(app):
    page = _page(app)
    _ask(page)
    page.wait_for_selector("#kard-mark-0 label >> visible=true")
    named = {"#kard-answer": 'group "Correct answer"', "#kard-rating": 'group "Rating of the student',
             "#kard-tags": 'group "Error tags"', "#kard-kind": 'group "Ask as"', "#kard-mark-0": 'group "Passage 1: '}
    for where, name in named.items():
        assert name in page.locator(where).aria_snapshot(), where
    marks = page.locator("#kard-mark-1").aria_snapshot()  # each passage's marks say which passage they are for
    assert 'group "Passage 2: ' in marks and "relevant" in marks

    page.focus("#kard-note textarea")
    page.keyboard.press("Shift+Tab")  # onto the last passage mark, unchecked
    ring = ("(() => { const s = getComputedStyle(document.activeElement.closest('label'));"
            " return [s.outlineStyle, parseFloat(s.outlineWidth), s.outlineColor]; })()")
    page.wait_for_function(f"{ring}[2] === 'rgb(67, 56, 202)'")  # after Gradio's colour transition
    style, width, colour = page.evaluate(ring)
    assert page.evaluate("document.activeElement.type") == "radio"
    background = page.evaluate("getComputedStyle(document.querySelector('#kard-mark-1')).backgroundColor")
    assert style == "solid" and width >= 2 and contrast(colour, background) >= 3
    page.context.close()


def test_text_typed_while_the_server_is_unreachable_is_restored_and_saves(app):
    page, studio = _page(app), app[2]
    _ask(page)
    page.fill("#kard-editor textarea", "")
    page.locator("#kard-editor textarea").press_sequentially("FIRST PART")
    page.wait_for_function("(localStorage.getItem('kard-draft:' + sessionStorage.getItem('kard-tab')) || '')"
                           ".includes('FIRST PART')")
    page.route("**/*", lambda route: route.abort())  # the server is down: no event reaches it
    page.locator("#kard-editor textarea").press("End")
    page.locator("#kard-editor textarea").press_sequentially(" SECOND PART")
    page.locator("#kard-note textarea").press_sequentially("a note")
    page.unroute("**/*")
    page.reload()
    page.wait_for_selector("#kard-status >> text=Restored your unsaved correction")
    assert page.input_value("#kard-editor textarea") == "FIRST PART SECOND PART"
    assert page.input_value("#kard-note textarea") == "a note"

    page.locator("#kard-answer label", has_text="A").first.click()
    save_on_page(page)  # the restored item is the one this server handed out: it saves
    saved = [r.correction for r in studio.store.latest() if r.correction.question == QUESTION]
    assert [(c.rationale, c.note) for c in saved] == [("FIRST PART SECOND PART", "a note")]
    page.context.close()

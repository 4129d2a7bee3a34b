"""The "Demo question" dropdown after a pick, in headless Chromium (the tiny stack): focus stays on it, its list
closed, and a click (on the text or the chevron), a tap on a phone or typed text lists the options again, as on the
first click; typing (over the text, selected) filters them and Enter picks (page_script.DROPDOWN_JS)."""

from __future__ import annotations

import pytest

pytest.importorskip("playwright.sync_api")

from app_fixtures import BROWSER_TEST, curator_page, sign_in, tiny_chromium_app  # noqa: E402

LISTED = "[...document.querySelectorAll('#kard-picked [role=option]')].map((o) => o.getAttribute('aria-label'))"
ON_DROPDOWN = "document.activeElement.closest('#kard-picked') !== null"
SELECTED = ("(() => { const box = document.querySelector('#kard-picked input');"
            " return box.value.length > 0 && box.selectionStart === 0 && box.selectionEnd === box.value.length; })()")
SCURVY, GRAVES = "Which vitamin deficiency causes scurvy?", "Which antibodies drive Graves thyroid disease?"
QUICK = 10_000  # ms: the list opens in the page, with no server in between

pytestmark = BROWSER_TEST
app = tiny_chromium_app("dropdown-repick")


def _listed(page) -> list[str]:
    return page.evaluate(LISTED)


def _wait_listed(page, count: int) -> None:
    page.wait_for_function(f"{LISTED}.length === {count}", timeout=QUICK)


def _picked(page, question: str) -> None:
    """Wait until the pick of `question` has reached the question box and focus is back on the closed dropdown."""
    page.wait_for_function("(q) => document.querySelector('#kard-question textarea').value === q", arg=question)
    page.wait_for_function(ON_DROPDOWN, timeout=QUICK)
    page.wait_for_timeout(300)  # a list reopened by the pick would show by now
    assert _listed(page) == []


def _click(target) -> None:
    target.click()


def _tap(target) -> None:
    target.tap()


def _pick_with(page, act, text: str, question: str) -> None:
    """Open the list with `act` (a click or a tap on the dropdown), then pick the option holding `text` with it."""
    act(page.locator("#kard-picked input"))
    _wait_listed(page, 2)
    act(page.locator("#kard-picked [role=option]", has_text=text))
    _picked(page, question)


def test_a_click_after_a_pick_lists_every_option_again(app):
    page = curator_page(*app[:2])
    _pick_with(page, _click, "scurvy", SCURVY)
    _pick_with(page, _click, "Graves", GRAVES)  # the second click lists both, not none
    page.locator("#kard-picked input").click()
    _wait_listed(page, 2)
    page.wait_for_function(SELECTED, timeout=QUICK)  # the click that opened the list selected the text
    page.keyboard.type("scurvy")  # over it
    _wait_listed(page, 1)
    assert page.input_value("#kard-picked input") == "scurvy"
    page.keyboard.press("Enter")
    _picked(page, SCURVY)

    chevron = page.locator("#kard-picked .icon-wrap").bounding_box()
    page.mouse.click(chevron["x"] + chevron["width"] / 2, chevron["y"] + chevron["height"] / 2)
    _wait_listed(page, 2)
    page.keyboard.press("Escape")  # closed by the keyboard, with focus on it: a click opens it again
    _wait_listed(page, 0)
    page.locator("#kard-picked input").click()
    _wait_listed(page, 2)
    page.context.close()


def test_typing_after_a_pick_filters_the_options_and_enter_picks(app):
    page = curator_page(*app[:2])
    _pick_with(page, _click, "Graves", GRAVES)
    page.keyboard.type("scurvy")  # over the picked question, selected
    _wait_listed(page, 1)
    assert page.input_value("#kard-picked input") == "scurvy" and "scurvy" in _listed(page)[0]
    page.keyboard.press("Enter")
    _picked(page, SCURVY)

    page.keyboard.press("Backspace")  # the keyboard alone, after a pick by Enter: the text changes
    _wait_listed(page, 2)
    assert page.input_value("#kard-picked input") == ""
    page.keyboard.type("antibodies")
    _wait_listed(page, 1)
    page.keyboard.press("Enter")
    _picked(page, GRAVES)
    page.context.close()


def test_a_tap_on_a_phone_after_a_pick_lists_every_option_again(app):
    browser, url = app[:2]
    page = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True).new_page()
    page.set_default_timeout(60_000)
    sign_in(page, url)
    _pick_with(page, _tap, "scurvy", SCURVY)
    _pick_with(page, _tap, "Graves", GRAVES)
    page.context.close()

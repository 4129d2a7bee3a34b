"""Accessibility of the curator page in headless Chromium (the tiny stack, a demo list long enough to scroll): the
status line is a live region that reads out the student's result once, never the streamed tokens; text fields, buttons
and tabs show a focus ring of >= 3:1 in the light and the dark theme; Tab out of the open "Demo question" list goes to
the next field in one press; the streaming cursor stands still for reduced motion; the chosen tab's label reaches
4.5:1; and on a phone the browse table's headings stay whole and a dropdown's text stops short of its arrow."""

from __future__ import annotations


import pytest

pytest.importorskip("playwright.sync_api")

from app_fixtures import (
    BROWSER_TEST,
    CHROMIUM,
    CHROMIUM_ARGS,
    QUESTIONS,
    curator_page,
    launched,
    sign_in,
    tiny_pipeline,
)
from contrast import contrast

from kard.records import Question
from kard.ui.views import rationale_card

QUESTION = "Which antibodies drive Graves thyroid disease?"
OPTIONS = "A) Antibodies that stimulate the TSH receptor B) Antibodies against insulin"
FOCUSED = ("(() => { const a = document.activeElement; const b = a && a.closest('[id^=kard-]');"
           " return b ? b.id : a.tagName; })()")
LIST_OPEN = "document.querySelectorAll('#kard-picked [role=listbox]').length > 0"
MANY = QUESTIONS + [Question(f"t-extra-{i}", f"Extra question number {i} about vitamins?", {"A": "yes", "B": "no"},
                             "A", "demo") for i in range(30)]
"""Enough demo questions that the open list scrolls (a scrolling box is a Tab stop of its own in Chromium)."""
PHONE = {"width": 390, "height": 844}

pytestmark = BROWSER_TEST


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from playwright import sync_api

    folder = tmp_path_factory.mktemp("a11y")
    pipeline = tiny_pipeline(folder)
    with launched(lambda: pipeline, folder, questions=MANY) as (url, _studio), \
            sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser, url
        finally:
            browser.close()


BACKGROUND = """(el) => { for (let e = el; e; e = e.parentElement) {
  const c = getComputedStyle(e).backgroundColor;
  if (c && !c.startsWith('rgba(0, 0, 0, 0)') && c !== 'transparent') return c; }
  return getComputedStyle(document.body).backgroundColor; }"""
"""The colour behind an element: its own or its nearest ancestor's that is not transparent."""
RING = """(el) => { const s = getComputedStyle(el);
  return [el.matches(':focus-visible'), s.outlineStyle, parseFloat(s.outlineWidth), s.outlineColor]; }"""


def test_tab_out_of_the_open_demo_question_list_moves_to_the_next_field_in_one_press(app):
    page = curator_page(*app)
    page.focus("#kard-picked input")
    page.wait_for_function(LIST_OPEN)  # Gradio opens the list on focus
    assert page.evaluate("(() => { const l = document.querySelector('#kard-picked [role=listbox]');"
                         " return l.scrollHeight > l.clientHeight; })()"), "the list must scroll for this test"
    page.keyboard.press("Tab")
    page.wait_for_timeout(300)
    assert page.evaluate(FOCUSED) == "kard-question" and not page.evaluate(LIST_OPEN)

    page.focus("#kard-picked input")
    page.wait_for_function(LIST_OPEN)
    page.keyboard.press("Shift+Tab")
    page.wait_for_timeout(300)
    assert page.evaluate("document.activeElement.getAttribute('role')") == "tab" and not page.evaluate(LIST_OPEN)
    page.context.close()


def test_the_status_line_reads_out_the_students_result_and_not_the_streamed_tokens(app):
    page = curator_page(*app)
    status = page.locator("#kard-status .html-container")  # not the block: it holds Gradio's progress timer
    assert [status.get_attribute(a) for a in ("role", "aria-live", "aria-atomic")] == ["status", "polite", "true"]
    # what each live region holds after every change, as a screen reader would hear it
    page.evaluate("""() => { window.kardHeard = [];
      new MutationObserver(() => { for (const r of document.querySelectorAll('[aria-live]:not([aria-live=off])')) {
          const text = r.textContent.trim(); const last = window.kardHeard[window.kardHeard.length - 1];
          if (text && text !== last) window.kardHeard.push(text); } })
        .observe(document.body, {subtree: true, childList: true, characterData: true}); }""")
    page.fill("#kard-question textarea", QUESTION)
    page.fill("#kard-options textarea", OPTIONS)
    page.click("#kard-ask")
    page.wait_for_selector("#kard-editor-label >> text=Editing", timeout=120_000)
    page.wait_for_timeout(500)
    heard = page.evaluate("window.kardHeard")
    assert heard and heard[-1].startswith("Student answered") and "Asked as: multiple choice" in heard[-1], heard
    assert len(heard) <= 4, heard  # loading, generating, the result: not a line per token
    rationale = page.inner_text("#kard-student .kard-rationale").strip()
    assert rationale and not any(rationale[:20] in text for text in heard)
    for card in ("#kard-student", "#kard-teacher"):
        assert page.evaluate(f"document.querySelector('{card}').closest('[aria-live]:not([aria-live=off])')") is None
    # Gradio's own region, which reads out untranslated keys ("common.complete"), is silenced
    assert page.evaluate("[...document.querySelectorAll('div.sr-only[role=status]')]"
                         ".every(r => r.getAttribute('aria-live') === 'off' && r.getAttribute('aria-hidden'))")
    page.context.close()


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_text_fields_buttons_and_tabs_show_a_focus_ring(app, theme):
    browser, url = app
    page = curator_page(browser, url + ("?__theme=dark" if theme == "dark" else ""))
    assert page.evaluate("document.body.classList.contains('dark')") == (theme == "dark")
    page.keyboard.press("Shift")  # a key first: focus set from script shows its ring as after keyboard use
    for where in ("#kard-question textarea", "#kard-options textarea", "#kard-note textarea", "#kard-editor textarea",
                  "#kard-ask", "[role=tab][aria-selected=true]"):
        page.focus(where)
        page.wait_for_timeout(150)  # after Gradio's transitions
        element = page.locator(where).first
        visible, style, width, colour = element.evaluate(RING)
        background = element.evaluate(f"e => ({BACKGROUND})(e.parentElement)")  # the ring lies around it
        assert visible and style == "solid" and width >= 2, (theme, where, style, width)
        assert contrast(colour, background) >= 3, (theme, where, colour, background)
    page.context.close()


def test_a_dropdown_picked_with_the_mouse_shows_no_ring_and_rings_its_whole_box_after_a_key(app):
    """A picked dropdown keeps focus (DROPDOWN_JS) and a focused text input always counts as :focus-visible, so the
    ring of a text field or dropdown waits for keyboard use (KEYBOARD_JS), and then goes around the dropdown's box."""
    page = curator_page(*app)
    page.locator("#kard-picked input").click()
    page.wait_for_function(LIST_OPEN)
    page.locator("#kard-picked [role=option]").nth(1).click()
    page.wait_for_timeout(300)
    focused = page.evaluate("document.activeElement.getAttribute('role')")
    box = page.locator("#kard-picked .wrap:has(> .wrap-inner)")  # the dropdown's box (the first .wrap is a status)
    assert focused == "combobox"
    assert page.locator("#kard-picked input").evaluate(RING)[1] == "none"
    assert box.evaluate(RING)[1] == "none", "a mouse pick drew a focus ring"
    page.locator("#kard-question textarea").click()
    assert page.locator("#kard-question textarea").evaluate(RING)[1] == "none", "a click into a text field rang"

    page.focus("#kard-picked input")
    page.keyboard.press("Escape")  # keyboard use: the list closes and the box rings
    page.wait_for_timeout(150)
    _, style, width, _ = box.evaluate(RING)
    assert style == "solid" and width >= 2
    assert page.locator("#kard-picked input").evaluate(RING)[1] == "none"  # not a second ring inside the box
    page.context.close()


def test_the_chosen_tabs_label_reaches_aa_contrast_in_the_light_theme(app):
    page = curator_page(*app)
    tab = page.locator("[role=tab][aria-selected=true]").first
    colour, background = tab.evaluate("e => getComputedStyle(e).color"), tab.evaluate(BACKGROUND)
    assert contrast(colour, background) >= 4.5, (colour, background)
    page.context.close()


def test_the_streaming_cursor_stands_still_for_reduced_motion_and_is_hidden_from_screen_readers(app):
    page = curator_page(*app)
    card = rationale_card("Student", "m", "So far", streaming=True)
    page.evaluate("(html) => { const d = document.createElement('div'); d.id = 'kard-probe'; d.innerHTML = html;"
                  " document.querySelector('#kard-student').appendChild(d); }", card)  # where the page's CSS applies
    cursor = page.locator("#kard-probe .kard-cursor")
    assert cursor.get_attribute("aria-hidden") == "true"
    assert cursor.evaluate("e => getComputedStyle(e).animationName") == "kard-blink"
    page.emulate_media(reduced_motion="reduce")
    assert cursor.evaluate("e => getComputedStyle(e).animationName") == "none"
    page.context.close()


def test_on_a_phone_table_headings_stay_whole_and_dropdown_text_clears_its_arrow(app):
    browser, url = app
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.set_default_timeout(60_000)
    sign_in(page, url)
    page.wait_for_selector("#kard-mode >> text=signed in as alice")
    box = page.evaluate("""() => { const input = document.querySelector('#kard-picked input');
      const icon = input.parentElement.querySelector('.icon-wrap'); const s = getComputedStyle(input);
      const text = input.getBoundingClientRect().right - parseFloat(s.paddingRight);  // ellipsis before the arrow
      return [text, icon.getBoundingClientRect().left]; }""")
    assert box[0] <= box[1] + 1, f"the text runs to {box[0]:.0f} px, under the arrow at {box[1]:.0f} px"

    page.click("button[aria-label='More tabs']")  # a phone: the tab sits in the tab bar's overflow menu
    page.locator(".overflow-dropdown button", has_text="Browse & history").click()
    page.wait_for_selector("#kard-table th .header >> visible=true")
    lines = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('#kard-table th .header')]
      .map(h => { const r = document.createRange(); r.selectNodeContents(h);
                  const tops = new Set([...r.getClientRects()].map(x => Math.round(x.top)));
                  return [h.textContent.trim(), tops.size]; }))""")
    broken = {name: count for name, count in lines.items() if " " not in name and count > 1}
    assert lines and not broken, f"headings broken inside a word: {broken}"
    context.close()

"""The rating, error tags, passage marks and answer set while the server cannot be reached are kept in the browser as
the typed text is (page_script.TYPED_TEXT_JS), restored with the draft after a reload, and saved; a restored draft
whose item's seal does not hold is restored but not saved (headless Chromium, the tiny stack)."""

from __future__ import annotations

import html

import pytest

pytest.importorskip("playwright.sync_api")

from app_fixtures import BROWSER_TEST, asked_on_page, save_on_page, tiny_chromium_app  # noqa: E402

QUESTION = "Which antibodies drive Graves thyroid disease?"
OPTIONS = "A) Antibodies that stimulate the TSH receptor B) Antibodies against insulin"
OTHER_QUESTION, OTHER_OPTIONS = "Which vitamin deficiency causes scurvy?", "A) Vitamin C B) Vitamin D"
TAG = "hallucination"
KEPT = "localStorage.getItem('kard-{}:' + sessionStorage.getItem('kard-tab')) || ''"

pytestmark = BROWSER_TEST
app = tiny_chromium_app("review-kept")


def _asked_page(app, question: str = QUESTION, options: str = OPTIONS):
    """A signed-in page with `question` answered and the editor open, its record kept in the browser."""
    page = asked_on_page(*app[:2], question, options)
    page.wait_for_selector("#kard-mark-0 label >> visible=true")
    page.wait_for_function(f"({KEPT.format('base')}).includes('\"seal\"')")
    return page


def _review_while_the_server_is_down(page) -> None:
    page.route("**/*", lambda route: route.abort())  # the server is down: no event reaches it
    page.locator("#kard-rating label", has_text="4").click()
    page.locator("#kard-tags label", has_text=TAG).click()
    page.locator("#kard-mark-0 label", has_text="irrelevant").click()
    page.locator("#kard-answer label", has_text="B").first.click()
    page.wait_for_function(f"({KEPT.format('typed')}).includes('\"answer\":\"B\"')", timeout=10_000)  # all kept
    page.unroute("**/*")


def _checked(page, where: str) -> list[str]:
    return page.eval_on_selector_all(f"{where} input:checked", "boxes => boxes.map(b => b.value === 'on' ? b.name "
                                     ": b.value)")


def test_review_set_while_the_server_is_unreachable_is_restored_and_saves(app):
    page, studio = _asked_page(app), app[2]
    _review_while_the_server_is_down(page)
    page.reload()
    page.wait_for_selector("#kard-status >> text=Restored your unsaved correction")
    page.wait_for_selector("#kard-mark-0 label >> visible=true")
    restored = {where: _checked(page, where) for where in ("#kard-rating", "#kard-tags", "#kard-mark-0",
                                                           "#kard-answer")}
    assert restored == {"#kard-rating": ["4"], "#kard-tags": [TAG], "#kard-mark-0": ["irrelevant"],
                        "#kard-answer": ["B"]}

    save_on_page(page)  # the restored item is the one this server handed out: it saves
    saved = [r.correction for r in studio.store.latest() if r.correction.question == QUESTION]
    first = saved[0].passages[0].id
    assert [(c.rating, c.tags, c.answer, c.relevance.get(first)) for c in saved] == [(4, (TAG,), "B", "irrelevant")]
    page.context.close()


def test_review_restored_over_an_item_whose_seal_does_not_hold_is_not_saved(app):
    page, studio = _asked_page(app, OTHER_QUESTION, OTHER_OPTIONS), app[2]  # none of its review saved yet
    before = len(studio.store.latest())
    _review_while_the_server_is_down(page)
    page.evaluate("""() => {  // the item was changed in the browser (its seal, which the typed record holds, was not)
      const key = "kard-base:" + sessionStorage.getItem("kard-tab");
      const base = JSON.parse(localStorage.getItem(key));
      base.item.question.answer = "B";
      localStorage.setItem(key, JSON.stringify(base));
    }""")
    page.reload()
    page.wait_for_selector("#kard-status >> text=cannot be saved as it is")
    page.wait_for_selector("#kard-mark-0 label >> visible=true")
    assert _checked(page, "#kard-rating") == ["4"] and _checked(page, "#kard-tags") == [TAG]
    page.click("#kard-save")
    message = page.wait_for_selector("#kard-save-msg .kard-msg")
    assert "not produced by this app" in html.unescape(message.inner_text())
    assert len(studio.store.latest()) == before
    page.context.close()

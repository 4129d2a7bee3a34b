"""What a reload must not lose: a rating cleared with "No rating" while the server cannot be reached (it is cleared in
the page itself, page_script.CLEAR_RATING_JS, and kept like the other controls), and the revision the tab saved last
(kept with the tab's record of the editor), so a save after the reload is no false conflict (headless Chromium, the
tiny stack)."""

from __future__ import annotations

import pytest

pytest.importorskip("playwright.sync_api")

from app_fixtures import BROWSER_TEST, asked_on_page, save_on_page, tiny_chromium_app  # noqa: E402

QUESTION = "Which antibodies drive Graves thyroid disease?"
OPTIONS = "A) Antibodies that stimulate the TSH receptor B) Antibodies against insulin"
EDITED = "Stimulating TSH receptor antibodies drive it. Answer: A"
KEPT = "localStorage.getItem('kard-{}:' + sessionStorage.getItem('kard-tab')) || ''"

pytestmark = BROWSER_TEST
OTHER_QUESTION, OTHER_OPTIONS = "Which vitamin deficiency causes scurvy?", "A) Vitamin C B) Vitamin D"
app = tiny_chromium_app("kept-on-reload")


def _rated_page(app):
    """A signed-in page with the question answered, the editor's text changed and rating 4 kept by the server."""
    page = asked_on_page(*app[:2], QUESTION, OPTIONS)
    page.fill("#kard-editor textarea", EDITED)
    page.locator("#kard-rating label", has_text="4").click()
    page.wait_for_function(f"({KEPT.format('draft')}).includes('\"rating\": 4')", timeout=30_000)
    return page


def _rating(page) -> list[str]:
    return page.eval_on_selector_all("#kard-rating input:checked", "boxes => boxes.map(b => b.value)")


def test_no_rating_while_the_server_is_down_clears_it_and_the_save_carries_none(app):
    page, studio = _rated_page(app), app[2]
    page.route("**/*", lambda route: route.abort())  # the server is down: no event reaches it
    page.click("#kard-rating-clear")
    page.wait_for_function("!document.querySelector('#kard-rating input:checked')", timeout=10_000)
    page.wait_for_function(f"({KEPT.format('typed')}).includes('\"rating\":null')", timeout=10_000)
    page.unroute("**/*")
    page.reload()
    page.wait_for_selector("#kard-status >> text=Restored your unsaved correction")
    assert page.input_value("#kard-editor textarea") == EDITED and _rating(page) == []
    save_on_page(page)
    saved = [r.correction for r in studio.store.latest() if r.correction.question == QUESTION]
    assert [(c.rationale, c.rating) for c in saved] == [(EDITED, None)]
    page.context.close()


def test_a_save_after_a_reload_goes_on_top_of_the_revision_this_tab_saved(app):
    page, studio = asked_on_page(*app[:2], OTHER_QUESTION, OTHER_OPTIONS), app[2]
    page.fill("#kard-editor textarea", "Scurvy: too little vitamin C. Answer: A")
    page.locator("#kard-answer label", has_text="A").first.click()
    save_on_page(page)  # revision 1; the editor opened none
    page.fill("#kard-editor textarea", "Scurvy comes from too little vitamin C. Answer: A")
    page.wait_for_function(f"({KEPT.format('draft')}).includes('comes from too little')", timeout=30_000)
    page.reload()
    page.wait_for_selector("#kard-status >> text=Restored your unsaved correction")
    page.click("#kard-save")
    said = page.wait_for_selector("#kard-save-msg .kard-msg").inner_text()
    assert "Saved revision 2" in said, said
    latest = [r for r in studio.store.latest() if r.correction.question == OTHER_QUESTION]
    assert [(r.revision, r.correction.rationale) for r in latest] == [
        (2, "Scurvy comes from too little vitamin C. Answer: A")]
    page.context.close()

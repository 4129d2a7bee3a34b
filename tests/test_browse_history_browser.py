"""The Browse tab's history in headless Chromium over the tiny stack and a real SQLite file: a save in Ask & correct
of the item the history shows, and Refresh, show its new revision (so Revert goes on top of it, no conflict with
your own save), and Revert pressed twice is refused the second time; a store locked by another program says why in
the history and under the table, and the page goes on working once it is free."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import replace

import pytest

pytest.importorskip("playwright.sync_api")

from app_fixtures import BROWSER_TEST, asked_on_page, save_on_page, tiny_chromium_app  # noqa: E402

QUESTION, OPTIONS = "Which vitamin deficiency causes scurvy?", "A) Vitamin C B) Vitamin D"

pytestmark = BROWSER_TEST
app = tiny_chromium_app("browse-history")


def _browse(page) -> None:
    page.get_by_role("tab", name="Browse & history").click()
    page.wait_for_selector("#kard-table .virtual-row")


def _pick(page, item_id: str) -> None:
    picker = page.get_by_role("combobox", name="Item", exact=True)
    picker.click()
    picker.fill(item_id)
    page.keyboard.press("Enter")


def _save_as(page, text: str, revision: int) -> None:
    """Write `text` in the editor and save it (ticking "save anyway" where asked) as `revision`."""
    page.get_by_role("tab", name="Ask & correct").click()
    page.fill("#kard-editor textarea", text)
    page.click("#kard-save")
    page.wait_for_function(f"document.querySelector('#kard-save-msg').innerText.includes('revision {revision}')"
                           " || document.querySelector('#kard-save-msg').innerText.includes('save anyway')")
    if "save anyway" in page.inner_text("#kard-save-msg"):
        page.locator("#kard-confirm input").check()
        page.click("#kard-save")
    page.wait_for_selector(f"#kard-save-msg >> text=Saved revision {revision}")


def _saved_and_browsed(app) -> tuple:
    """A page that asked QUESTION, saved its correction and opened the Browse tab: (page, studio, the item's id)."""
    browser, url, studio = app
    page = asked_on_page(browser, url, QUESTION, OPTIONS)
    save_on_page(page)
    item_id = studio.store.latest()[0].item_id
    _browse(page)
    return page, studio, item_id


def test_a_save_of_the_item_shown_and_refresh_show_its_new_revision_and_revert_goes_on_top(app):
    page, studio, item_id = _saved_and_browsed(app)
    _pick(page, item_id)
    page.wait_for_selector("#kard-history >> text=r1")
    _save_as(page, "Second revision: ascorbic acid deficiency.\nAnswer: A", 2)
    page.get_by_role("tab", name="Browse & history").click()
    page.wait_for_function("document.querySelector('#kard-history').innerText.includes('r2')", timeout=30_000)
    assert page.input_value("#kard-revision input") == "1"
    page.click("#kard-revert")
    page.wait_for_function("document.body.innerText.includes('saved as revision 3')"
                           " || document.body.innerText.includes('Not reverted')", timeout=30_000)
    assert "saved as revision 3" in page.inner_text("body"), "Revert called your own save a conflict"
    page.wait_for_function("document.querySelector('#kard-history').innerText.includes('r3')")
    assert page.input_value("#kard-revision input") == "3"  # the now-current revision: pressed again, it is refused
    page.click("#kard-revert")
    page.wait_for_function("document.body.innerText.includes('already the current one')", timeout=30_000)
    assert studio.store.get(item_id).revision == 3, "Revert pressed again undid the revert"

    latest = studio.store.get(item_id)  # someone else saves it; Refresh shows their revision
    studio.store.save(replace(latest.correction, rationale="Bob's text.", curator="bob"))
    page.click("#kard-refresh")
    page.wait_for_function("document.querySelector('#kard-history').innerText.includes('r4')", timeout=30_000)
    assert "bob" in page.inner_text("#kard-history")
    page.context.close()


def _hold(path, seconds: float, ready: threading.Event) -> None:
    """Another program writes the database in EXCLUSIVE locking mode for `seconds`: readers are refused too."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("UPDATE revisions SET note=note WHERE id=1")
    ready.set()
    time.sleep(seconds)
    holder.execute("ROLLBACK")
    holder.close()


def test_a_locked_store_says_why_in_the_history_and_under_the_table_and_the_page_works_after(app):
    page, studio, item_id = _saved_and_browsed(app)
    ready = threading.Event()
    holder = threading.Thread(target=_hold, args=(studio.store.path, 20, ready))
    holder.start()
    try:
        ready.wait()
        _pick(page, item_id)
        page.wait_for_selector("#kard-history >> text=could not be read", timeout=40_000)
        history = page.inner_text("#kard-history")
        assert "annotations.db stayed locked" in history and str(studio.store.path.parent) not in history
        assert page.locator("#kard-history .kard-msg-error").count() == 1
        page.click("#kard-refresh")
        page.wait_for_selector("#kard-browse-empty >> text=The table was not refreshed", timeout=40_000)
        assert "annotations.db stayed locked" in page.inner_text("#kard-browse-empty")
    finally:
        holder.join()
    page.click("#kard-refresh")  # free again: the table and the history are back
    page.wait_for_function("!document.querySelector('#kard-browse-empty').innerText.includes('not refreshed')",
                           timeout=40_000)
    page.wait_for_function("document.querySelector('#kard-history').innerText.includes('r1')"
                           " || document.querySelector('#kard-history').innerText.includes(' saved by ')",
                           timeout=40_000)
    assert "could not be read" not in page.inner_text("#kard-history")
    page.context.close()

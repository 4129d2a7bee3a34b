"""In headless Chromium, with a scripted live teacher in the app's process: Ctrl+S while the editor waits for the
teacher saves nothing (it re-saved the previous question's correction), and a question asked again while the teacher
still answers the one before ends with every panel showing the newer question, no toast of the older teacher's
failure, Save working, and no traceback (the superseded compare blanked the panels and broke the Ask tab)."""

from __future__ import annotations

import os
import shutil
import threading

import pytest

sync_api = pytest.importorskip("playwright.sync_api")

from app_fixtures import GRADIO_PANDAS_NOISE, DemoPipeline, launched, sign_in  # noqa: E402

CHROMIUM = os.environ.get("KARD_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.browser, *GRADIO_PANDAS_NOISE,
              pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"{CHROMIUM} not installed")]

SCURVY_RATIONALE = "Scurvy follows a lack of vitamin C, which collagen needs.\nAnswer: A"


class GatedTeacher:
    """A live teacher (kard.ui.studio.Teaches): it answers the scurvy question at once; on the Graves question it
    waits until `release` is set, then its connection drops (`dropped` is set)."""

    def __init__(self) -> None:
        self.config = type("Config", (), {"model": "gated-teacher"})()
        self.release, self.dropped = threading.Event(), threading.Event()

    def stream_answer(self, question):
        if "Graves" in question.text:
            self.release.wait(timeout=60)
            self.dropped.set()
            raise ConnectionError("the teacher's connection dropped")
        yield SCURVY_RATIONALE


def _pick(page, words: str) -> None:
    page.locator("#kard-picked input").fill("")
    page.locator("#kard-picked input").press_sequentially(words)
    page.get_by_role("option").first.click()
    page.wait_for_function(f"document.querySelector('#kard-question textarea').value.includes({words!r})")


def test_save_waits_for_the_open_editor_and_a_newer_ask_fills_every_panel(tmp_path, capfd):
    pipeline, teacher = DemoPipeline(), GatedTeacher()
    with launched(lambda: pipeline, tmp_path) as (url, studio), sync_api.sync_playwright() as p:
        studio.teacher_factory = lambda: teacher
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        sign_in(page, url)
        page.wait_for_selector("#kard-mode >> text=signed in as alice")

        _pick(page, "scurvy")  # answered and saved: revision 1
        page.click("#kard-ask")
        page.wait_for_selector("#kard-editor-label >> text=Editing a copy of the teacher")
        page.locator("#kard-editor textarea").press_sequentially(" Checked.")
        page.keyboard.press("Control+s")
        page.wait_for_selector("#kard-save-msg >> text=Saved revision 1")

        _pick(page, "Graves")  # the teacher keeps this one waiting
        page.click("#kard-ask")
        page.wait_for_selector("#kard-editor-label >> text=Waiting for the teacher")
        page.keyboard.press("Control+s")
        page.wait_for_selector("#kard-save-msg >> text=Nothing was saved")
        assert [r.revision for r in studio.store.latest()] == [1]  # scurvy's correction was not saved again

        _pick(page, "scurvy")  # asked again while the teacher still answers Graves
        page.click("#kard-ask")
        page.wait_for_selector("#kard-editor-label >> text=saved correction (revision 1")
        teacher.release.set()  # now Graves' teacher fails: its superseded compare must change nothing
        assert teacher.dropped.wait(timeout=30)
        page.wait_for_timeout(2000)
        assert "lack of vitamin C" in page.inner_text("#kard-teacher")
        assert page.inner_text("#kard-compare-diff").strip() and "Student answered" in page.inner_text("#kard-status")
        assert not [t for t in page.locator(".toast-body").all_inner_texts() if "could not answer" in t]

        page.locator("#kard-editor textarea").press_sequentially(" Again.")
        page.keyboard.press("Control+s")
        page.wait_for_selector("#kard-save-msg >> text=Saved revision 2")
        browser.close()
    assert "Traceback" not in capfd.readouterr().err

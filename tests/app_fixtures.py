"""A launched KARD Studio for the gradio_client and browser tests: real Pipeline, KnowledgeBase and
AnnotationStore; the student is a tiny random model (seconds) unless a test asks for the real one."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from kard.annotations import AnnotationStore
from kard.records import Hit, Passage, Prediction, Question, Timings

GRADIO_PANDAS_NOISE = [pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
                       pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]
"""Gradio 6.31's queue calls pandas options that pandas 3 deprecates; not ours to fix."""

XSS_PASSAGE = Passage(
    "xss", "Thyroid <script>window.kardPwned=1</script>",
    'Graves thyroid disease <img src=x onerror="window.kardPwned=2"> is driven by antibodies. '
    "<script>window.kardPwned=3</script>",
)
PASSAGES = [
    Passage("graves", "Graves disease", "Graves disease: antibodies stimulate the TSH receptor of the thyroid gland."),
    Passage("scurvy", "Scurvy", "Scurvy is caused by a lack of vitamin C, which collagen synthesis needs."),
    Passage("rickets", "Rickets", "Rickets in children follows vitamin D deficiency and soft bones."),
    XSS_PASSAGE,
]
QUESTIONS = [
    Question("t-graves", "Which antibodies drive Graves thyroid disease?",
             {"A": "Antibodies that stimulate the TSH receptor", "B": "Antibodies against insulin"}, "A", "demo",
             "Graves disease is caused by antibodies that stimulate the TSH receptor. Answer: A",
             "written by the test authors"),
    Question("t-scurvy", "Which vitamin deficiency causes scurvy?", {"A": "Vitamin C", "B": "Vitamin D"}, "A", "demo"),
]
USER, PASSWORD = "alice", "correct-horse"


class WritesAtOnce(AnnotationStore):
    """A store on disk whose writes, once `hold` is called, each wait until all the writers named there have
    reached it, then go on in turn: the thread named first writes first, the next 0.3 s later, and so on. Writes
    that arrive at the same moment, in a known order; what a writer read before its write is read by all first."""

    _delays: dict[str, float] = {}
    _barrier: threading.Barrier | None = None

    def hold(self, *writers: str) -> None:
        self._delays = {name: 0.3 * turn for turn, name in enumerate(writers)}
        self._barrier = threading.Barrier(len(writers))

    def _append(self, *args, **kwargs):
        if self._barrier is not None:
            self._barrier.wait(timeout=30)
            time.sleep(self._delays[threading.current_thread().name])
        return super()._append(*args, **kwargs)


def at_once(**jobs) -> dict[str, object]:
    """Run each job (name -> function) in a thread of that name; what each returned or raised, by name."""
    results: dict[str, object] = {}

    def run(name: str) -> None:
        try:
            results[name] = jobs[name]()
        except Exception as error:  # noqa: BLE001 - the test reads it
            results[name] = error

    threads = [threading.Thread(target=run, args=(name,), name=name) for name in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def without_settings(monkeypatch, tmp_path: Path, settings) -> None:
    """Unset the environment variables `settings`, point the Space's persistent storage (/data) at a folder that
    does not exist, and work in a new, empty tmp_path/work."""
    for name in settings:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("kard.config.SPACE_PERSISTENT_DIR", tmp_path / "no-such-data")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)


def sign_in(page, url: str) -> None:
    """Open the app at `url` in a Playwright page and sign in as the test curator, up to the Ask tab."""
    page.goto(url)
    page.fill("input[type=text]", USER)
    page.fill("input[type=password]", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector("#kard-ask")


CHROMIUM = os.environ.get("KARD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
BROWSER_TEST = [pytest.mark.browser, pytest.mark.slow, *GRADIO_PANDAS_NOISE,
                pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"{CHROMIUM} not installed")]
"""A browser test module's pytestmark: headless Debian Chromium (KARD_CHROMIUM), skipped where it is missing."""


@contextmanager
def tiny_app_in_chromium(folder: Path) -> Iterator[tuple[object, str, object]]:
    """(browser, url, studio): the app in curator mode over the tiny stack, and a headless Chromium to drive it."""
    from playwright import sync_api

    pipeline = tiny_pipeline(folder)
    with launched(lambda: pipeline, folder) as (url, studio), sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser, url, studio
        finally:
            browser.close()


def tiny_chromium_app(folder_name: str):
    """A module's `app` fixture: (browser, url, studio) of `tiny_app_in_chromium` over a folder named `folder_name`."""
    @pytest.fixture(scope="module")
    def app(tmp_path_factory):
        with tiny_app_in_chromium(tmp_path_factory.mktemp(folder_name)) as running:
            yield running

    return app


def curator_page(browser, url: str):
    """A new page of `browser` on the app at `url`, signed in as the test curator."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.set_default_timeout(60_000)
    sign_in(page, url)
    page.wait_for_selector("#kard-mode >> text=signed in as alice")
    return page


def asked_on_page(browser, url: str, question: str, options: str):
    """A signed-in page (`curator_page`) with `question` asked and answered, and the editor open."""
    page = curator_page(browser, url)
    page.fill("#kard-question textarea", question)
    page.fill("#kard-options textarea", options)
    page.click("#kard-ask")
    page.wait_for_selector("#kard-editor-label >> text=Editing", timeout=120_000)
    page.wait_for_function("!document.querySelector('#kard-editor textarea').disabled")
    return page


def save_on_page(page) -> None:
    """Click Save, tick "save anyway" and save again where the page asks for it, and wait until it has saved."""
    page.click("#kard-save")
    message = page.wait_for_selector("#kard-save-msg .kard-msg")
    if "save anyway" in message.inner_text():
        page.locator("#kard-confirm input").check()
        page.click("#kard-save")
    page.wait_for_selector("#kard-save-msg >> text=Saved revision")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_pipeline(folder: Path, passages=PASSAGES):
    from tiny_models import save_tiny_decoder

    from kard.config import GenerationConfig, RetrievalConfig
    from kard.knowledge import KnowledgeBase
    from kard.pipeline import Pipeline
    from kard.student import Student

    student = Student.load(save_tiny_decoder(folder / "tiny-student", max_positions=1024))
    return Pipeline(KnowledgeBase.build(passages), student, retrieval=RetrievalConfig(top_k=2),
                    generation=GenerationConfig(max_new_tokens=24))


def real_pipeline(extra: list[Passage]):
    """The default stack (shipped student and reranker, demo passages) with `extra` passages added to the
    base; 48 new tokens instead of 128 keep the test short on a busy 2-core machine."""
    from kard.config import DEFAULT_RERANKER, GenerationConfig
    from kard.datasets import load_demo_passages
    from kard.knowledge import KnowledgeBase
    from kard.pipeline import Pipeline
    from kard.reranker.encoder import load_reranker
    from kard.student import Student

    return Pipeline(KnowledgeBase.build(load_demo_passages() + extra), Student.load(),
                    reranker=load_reranker(DEFAULT_RERANKER), generation=GenerationConfig(max_new_tokens=48))


@contextmanager
def launched(pipeline_factory, folder: Path, questions=QUESTIONS, mode: str = "curator",
             queue_size: int = 16, **settings) -> Iterator[tuple[str, object]]:
    """(url, studio) of a running app on 127.0.0.1; closed afterwards. `settings`: more AppConfig fields."""
    import app as app_module
    from kard.ui.blocks import build_app
    from kard.annotations import AnnotationStore
    from kard.ui.studio import Studio
    from kard.config import AppConfig

    config = AppConfig(mode=mode, curator_user=USER, curator_password=PASSWORD, port=free_port(),
                       annotations_db=folder / "annotations.db", queue_size=queue_size, **settings)
    studio = Studio(pipeline_factory, AnnotationStore(config.annotations_db, read_only=mode == "demo"), questions,
                    mode=mode)
    demo = build_app(studio, config)
    app_module.queued(demo, config).launch(prevent_thread_lock=True, quiet=True, **app_module.launch_options(config))
    try:
        yield f"http://127.0.0.1:{config.port}/", studio
    finally:
        demo.close()


DEMO_QUESTIONS = [
    Question("q-recorded", "Which vitamin deficiency causes scurvy?", {"A": "Vitamin C", "B": "Vitamin D"}, "A",
             "demo", "Scurvy is caused by a lack of vitamin C. Answer: A", "written by the KARD Studio authors"),
    Question("q-bare", "Which gas do plants absorb?", {"A": "Oxygen", "B": "Carbon dioxide"}, "B", "demo"),
]
DEMO_BASE_MODEL = "SmolLM2-135M-Instruct"


class DemoPipeline:
    """The demo tests' pipeline (test_demo_notices, test_demo_read_only): stands in for kard.pipeline.Pipeline
    with one passage, or none (`found=False`), and a fixed rationale."""

    def __init__(self, found: bool = True):
        self.student = type("S", (), {"name": "demo/student"})()
        self.reranker = None
        self.hits = [Hit(Passage("p1", "Scurvy", "Scurvy is vitamin C deficiency."), 4.0, 1)] if found else []

    def retrieve(self, question: Question):
        return self.hits, self.hits, Timings(retrieval_s=0.001)

    def stream(self, question: Question):
        yield "Plants take in carbon dioxide. "
        rationale = "Plants take in carbon dioxide."
        yield Prediction(question, tuple(self.hits), tuple(self.hits), "prompt", rationale + " Answer: B", rationale,
                         "B", timings=Timings(0.001, None, 0.2, 1.0, 1.1), tokens_out=8, student_name="demo/student",
                         decoding={"strategy": "greedy", "base_model": DEMO_BASE_MODEL, "engine": "ctranslate2"})


def demo_studio(tmp_path, mode: str = "demo", found: bool = True):
    from kard.ui.studio import Studio

    pipeline = DemoPipeline(found)
    return Studio(lambda: pipeline, AnnotationStore(tmp_path / "a.db"), DEMO_QUESTIONS, mode=mode)


def by_elem_id(app) -> dict:
    return {getattr(block, "elem_id", None): block for block in app.blocks.values()}

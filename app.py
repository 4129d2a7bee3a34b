"""KARD Studio in the browser: ask, inspect retrieval, compare teacher and student, correct, browse.

`python app.py` starts it offline on the embedded demo (http://127.0.0.1:7860). Everything the
buttons do lives in `kard.ui` (plain, tested functions; the page itself in `kard.ui.blocks`); this
file builds the services from the settings and launches the page. Nothing heavy runs at import: the student loads in a background thread at
launch (or on the first question).

Modes: `--mode demo` (default; read-only, for a public Space) and `--mode curator` (saves need a
login: KARD_CURATOR_USER / KARD_CURATOR_PASSWORD locally, the Hugging Face login button on a Space).
On a Space, curator mode keeps the store on persistent storage (/data) and, with KARD_SYNC_REPO, pushes
it to a dataset repo on a schedule (kard/space_sync.py; README "On a Hugging Face Space").
"""

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from kard.annotations import AnnotationStore
from kard.config import AppConfig, TeacherConfig, ignored_space_id, teacher_configured
from kard.errors import ConfigError, KardError
from kard.space_sync import space_warnings, start_sync
from kard.ui.blocks import build_app
from kard.ui.login import ThrottledLogin
from kard.ui.page_script import PAGE_HEAD
from kard.ui.studio import Studio
from kard.ui.views import CSS

log = logging.getLogger("kard.app")

# -- services --------------------------------------------------------------------------------------
def serving_round(config: AppConfig):
    """In curator mode, a function giving the serving round's (student, reranker) of the Retrain tab's rounds
    folder (`config.rounds_dir`), or None before its first round; None in the demo, which has no Retrain tab.

    A pointer that cannot be read, or a round whose student folder (or that of a round it is built on) is gone,
    changes nothing: the function gives what it gave before (at start: None, the configured student) and logs the
    problem with its fix; the Retrain tab says so too.
    """
    if config.mode != "curator":
        return None
    from kard.loop import round_folder

    last: list[tuple[str, str | None] | None] = [None]
    warned: list[tuple | None] = [None]  # each ask reads the pointer: a problem is logged once, not on every ask

    def warn_once(text: str, *args: Any) -> None:
        if (text, args) != warned[0]:
            warned[0] = (text, args)
            log.warning(text, *args)

    def read() -> tuple[str, str | None] | None:
        try:
            pointer = round_folder.current(config.rounds_dir)
        except KardError as error:
            warn_once("the rounds folder's pointer cannot be read, so the student loaded keeps answering: %s",
                      str(error))
            return last[0]
        broken = round_folder.round_problem(config.rounds_dir, pointer["round"]) if pointer else None
        if broken is not None:  # its folder, or that of a round it is built on, is gone
            warn_once("the serving round cannot load, so the student loaded keeps answering (at start: the "
                      "configured student): %s. Or delete %s to serve the configured student", str(broken),
                      Path(config.rounds_dir) / round_folder.CURRENT_FILE)
            return last[0]
        warned[0] = None
        last[0] = (pointer["student"], pointer.get("reranker")) if pointer else None
        return last[0]

    return read


def default_pipeline_factory(config: AppConfig, store: AnnotationStore, serving=None):
    """The default stack: default knowledge base, shipped student and reranker (each as configured), or the
    serving round's student (and its reranker, if it has one) when `serving` names one; with recall on, a
    question the store holds a saved correction for is answered reading that correction."""
    def load() -> Any:
        from kard.pipeline import Pipeline
        from kard.recall import StoreRecall

        served = serving() if serving else None
        student, reranker = (served[0], served[1] or config.reranker) if served else (config.student, config.reranker)
        pipeline = Pipeline.load(student=student, knowledge=config.knowledge, reranker=reranker, engine=config.engine)
        pipeline.recall = StoreRecall(store) if config.recall else None
        return pipeline

    return load


def default_teacher_factory() -> Any:
    """A live teacher when $KARD_TEACHER_MODEL or $OPENAI_BASE_URL is set, else None."""
    if not teacher_configured():
        return None
    cache: dict[str, Any] = {}
    config = TeacherConfig.for_app()  # a bad KARD_TEACHER_TIMEOUT / _RETRIES stops the app at start

    def load() -> Any:
        if "teacher" not in cache:
            from kard.teacher.client import Teacher

            cache["teacher"] = Teacher(config)
        return cache["teacher"]

    return load


def default_questions(config: AppConfig) -> list:
    from kard.datasets import load_demo_questions, load_questions

    try:
        questions = list(load_demo_questions())
    except KardError as error:  # the app still answers typed questions without the demo list
        log.warning("no demo questions: %s", error)
        questions = []
    if config.questions is not None:
        questions += load_questions(config.questions)
    return questions


def make_studio(config: AppConfig) -> Studio:
    questions = default_questions(config)  # before the store: a bad question file must not leave a new database
    store = AnnotationStore(config.annotations_db, read_only=config.mode == "demo")
    serving = serving_round(config)
    return Studio(default_pipeline_factory(config, store, serving), store, questions,
                  teacher_factory=default_teacher_factory(), mode=config.mode,
                  max_question_chars=config.max_question_chars, curators=config.curators, serving=serving,
                  seal_key=config.seal_key.encode("utf-8") if config.seal_key else None)


def queued(demo: Any, config: AppConfig) -> Any:
    """The app's queue: 4 events at once, and past `queue_size` waiting ones Gradio says the queue is full
    at once instead of piling up work (each waiting user sees their place and the expected wait)."""
    return demo.queue(default_concurrency_limit=4, max_size=config.queue_size)


def theme() -> Any:
    """Gradio's Soft theme in indigo with WCAG AA contrast (4.5:1) where its stock colours fall short in the light
    theme: subdued text (info lines, card sources, timings; its grey is 2.5:1 on white), labels (3.6:1), the
    primary button, a chosen radio (4.46:1) and the accent (a chosen tab's label, 4.47:1) one shade darker; in the dark
    theme subdued text lighter and a chosen radio darker (the accent, which has no dark setting, is in
    kard.ui.views.CSS). Checked with axe-core by the browser tests."""
    import gradio as gr

    return gr.themes.Soft(primary_hue="indigo", secondary_hue="slate").set(
        body_text_color_subdued="#4b5563", body_text_color_subdued_dark="#c4c9d1",
        block_label_text_color="*primary_700", block_title_text_color="*primary_700",
        button_primary_background_fill="*primary_600", button_primary_background_fill_hover="*primary_700",
        checkbox_label_background_fill_selected="*primary_600",
        checkbox_label_background_fill_selected_dark="*primary_600", color_accent="*primary_600")


def launch_options(config: AppConfig) -> dict[str, Any]:
    """Keyword arguments of `Blocks.launch` (Gradio 6 takes theme, css and head here)."""
    options: dict[str, Any] = {
        "theme": theme(),
        "css": CSS, "head": PAGE_HEAD, "server_name": config.host, "server_port": config.port,
        "footer_links": ["api", "settings"],
    }
    if config.mode == "curator" and config.on_spaces:
        refuse_mocked_login()  # the Hugging Face login button (kard.ui.blocks), real only on a Space
    elif config.mode == "curator":
        if not (config.curator_user and config.curator_password):
            raise ConfigError("curator mode needs a login. Fix: set KARD_CURATOR_USER and KARD_CURATOR_PASSWORD "
                              "(or run the read-only demo with --mode demo)")
        login = ThrottledLogin(config.curator_user, config.curator_password)  # 5 wrong a minute: locked
        options["auth"] = login
        options["auth_message"] = f"KARD Studio curator login. {login.rule()}"
    return options


def refuse_mocked_login() -> None:
    """Raise ConfigError unless Gradio sees a Space: elsewhere its login button is a mock that signs whoever
    clicks it in as the owner of the machine's HF token, which would make any visitor a curator."""
    from gradio.utils import get_space

    if get_space() is None:
        raise ConfigError("the Hugging Face login works only on a Space, and Gradio sees none (SYSTEM is not "
                          "\"spaces\"). Fix: run on a Space, or use the KARD_CURATOR_USER / KARD_CURATOR_PASSWORD "
                          "login")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="KARD Studio app (Gradio)")
    parser.add_argument("--mode", choices=["demo", "curator"], help="demo: read-only; curator: saves need a login")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 7860)")
    parser.add_argument("--student", help="student folder, hub id or package:NAME "
                        "(default: the shipped KARD student demo/student)")
    parser.add_argument("--engine", help="decoding engine: auto (CTranslate2 when it loads), ctranslate2 or "
                        "transformers (default auto)")
    parser.add_argument("--reranker", help="trained reranker folder, or none for BM25 only (default: demo/reranker)")
    parser.add_argument("--knowledge", type=Path, help="saved knowledge-base folder or passages file (default: demo)")
    parser.add_argument("--questions", type=Path, help="benchmark question file offered beside the demo questions")
    parser.add_argument("--annotations", type=Path, dest="annotations_db", help="annotation database file")
    parser.add_argument("--no-recall", dest="recall", action="store_false", default=None,
                        help="do not hand saved corrections back to the student when their question is asked again")
    parser.add_argument("--no-preload", dest="preload", action="store_false", default=None,
                        help="load the student on the first question instead of at launch")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = vars(parse_args(argv))
    try:
        config = AppConfig.from_env(**args)  # checks every setting given
        if ignored_space_id(os.environ):
            log.warning("%s", ignored_space_id(os.environ))
        options = launch_options(config)  # the curator login, before make_studio creates the database
        studio = make_studio(config)
        sync = start_sync(config, studio.store)  # restores an empty store from KARD_SYNC_REPO first
    except KardError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for warning in space_warnings(config):
        log.warning("%s", warning)
    if sync is not None:  # a Space stops the app with SIGTERM: exit normally, so the last push (atexit) runs
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # Gradio closes its server on it
    if config.preload:
        studio.warm_up()
    queued(build_app(studio, config, sync), config).launch(**options)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The app's services: the answering pipeline (loaded on first use), the teacher, the store, the questions.

`Studio` holds them and nothing else; what the buttons do are plain functions over it in
`kard.ui.asking` (ask, compare, edit) and `kard.ui.curating` (save, browse, history, drafts), which
`kard.ui.blocks` binds to Gradio events with `functools.partial`. The protocols below name exactly
what those functions call on the pipeline and the teacher, so a test can pass a scripted one.

An item handed to the browser is an `AskedItem` encoded with `to_dict` and sealed (`kard.ui.item_seal`):
`Studio.read_item` accepts only what this server produced, unchanged (`sealed_here` says whether it did).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Hashable
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

from kard.annotations import AnnotationStore
from kard.errors import KardError
from kard.records import AskedItem, Hit, Prediction, Question, Rationale, Timings
from kard.ui.item_seal import ForgedItemError, ItemSeal, stored_key

log = logging.getLogger(__name__)

MODES = ("demo", "curator")


class InputError(KardError):
    """Something the user typed or clicked cannot be used; the message says what to do."""


class Named(Protocol):
    name: str


class AnswersQuestions(Protocol):
    """What the app calls on `kard.pipeline.Pipeline`."""

    student: Named
    reranker: object | None

    def retrieve(self, question: Question) -> tuple[Sequence[Hit], Sequence[Hit], Timings]: ...

    def stream(self, question: Question) -> Iterator[str | Prediction]: ...


class TeacherSettings(Protocol):
    model: str


class Teaches(Protocol):
    """What the app calls on `kard.teacher.client.Teacher`: its reply streamed as text chunks (a reply its cache
    served comes as one `kard.teacher.cache.CachedReply`, which says when it was fetched)."""

    config: TeacherSettings

    def stream_answer(self, question: Question) -> Iterator[str]: ...


class Studio:
    """The app's services. The pipeline loads on first use (or in `warm_up`), under a lock; with `serving` (a
    function naming the student that should answer, e.g. the rounds folder's current round), it loads again
    when that changes, so a retrained round answers the next question."""

    def __init__(self, pipeline_factory: Callable[[], AnswersQuestions], store: AnnotationStore,
                 questions: Sequence[Question] = (), *, teacher_factory: Callable[[], Teaches] | None = None,
                 recorded: Mapping[str, Sequence[Rationale]] | None = None, mode: str = "demo",
                 max_question_chars: int = 4000, curators: Sequence[str] = (),
                 serving: Callable[[], Hashable] | None = None, seal_key: bytes | None = None):
        if mode not in MODES:
            raise KardError(f"unknown app mode {mode!r}. Fix: use KARD_MODE=demo or KARD_MODE=curator")
        self._pipeline_factory = pipeline_factory
        self._pipeline: AnswersQuestions | None = None
        self._serving = serving
        self._served: Hashable = None
        self._lock = threading.Lock()
        self.teacher_factory = teacher_factory
        self.store = store
        self.questions = {q.id: q for q in questions}
        self.recorded = dict(recorded or {})
        self.mode = mode
        self.max_question_chars = max_question_chars
        self.curators = tuple(curators)
        # Items handed out are sealed: a save stores only what this server produced. The key is `seal_key`, else the
        # one kept beside a store that saves (an item handed out before a restart still saves), else this run's.
        keeps_key = not store.read_only and str(store.path) != ":memory:"  # a store in memory has no folder
        self._seal = ItemSeal(seal_key or (stored_key(store.path) if keeps_key else None))

    @property
    def is_curator(self) -> bool:
        return self.mode == "curator"

    def pipeline(self) -> AnswersQuestions:
        with self._lock:
            wanted = self._serving() if self._serving else None
            if self._pipeline is None:
                self._pipeline = self._load_pipeline()
            elif wanted != self._served:
                self._switch_pipeline(wanted)
            self._served = wanted
            return self._pipeline

    def serving_now(self) -> Hashable:
        """What `serving` names now (in the curator app: the serving round's (student, reranker)); None without."""
        return self._serving() if self._serving else None

    def _load_pipeline(self) -> AnswersQuestions:
        started = time.perf_counter()
        pipeline = self._pipeline_factory()
        log.info("pipeline ready in %.1f s", time.perf_counter() - started)
        return pipeline

    def _switch_pipeline(self, wanted: Hashable) -> None:
        """Load the student `wanted` names; if it cannot load, keep answering with the one loaded (logged)."""
        log.info("the serving student changed to %s: loading it", wanted)
        try:
            self._pipeline = self._load_pipeline()
        except Exception:  # noqa: BLE001 - a broken round must not take the app down with it
            log.exception("could not load the new serving student %s; the one loaded before keeps answering", wanted)

    def warm_up(self) -> threading.Thread:
        """Load the pipeline in a background thread, so the first question waits less."""
        def load() -> None:
            try:
                self.pipeline()
            except Exception:  # noqa: BLE001 - the first ask loads again and shows the error
                log.exception("loading the pipeline in the background failed")

        thread = threading.Thread(target=load, name="kard-warm-up", daemon=True)
        thread.start()
        return thread

    def hand_out(self, item: AskedItem) -> dict[str, Any]:
        """The item as the browser gets it: encoded once and sealed."""
        return self._seal.seal(item.to_dict())

    def read_item(self, item: Mapping[str, Any] | None, fix: str = "Ask a question first") -> AskedItem:
        """The item as this server produced it (sealed); nothing, a forged or a changed item is refused."""
        if not item:
            raise InputError(f"Nothing to work on yet. Fix: {fix}")
        if not isinstance(item, Mapping):
            raise InputError("The item is not a JSON object. Fix: send the item /ask or /compare returned, unchanged")
        try:
            return AskedItem.from_dict(self._seal.check(item))
        except ForgedItemError as error:
            raise InputError(str(error)) from None

    def sealed_here(self, item: Mapping[str, Any]) -> bool:
        """Whether `item` is one this server (or one before a restart, on the same store) produced, unchanged: a
        save accepts it."""
        try:
            self._seal.check(item)
        except ForgedItemError:
            return False
        return True

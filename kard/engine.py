"""Fast decoding engines behind `Student`: CTranslate2 on the CPU beside the transformers reference.

transformers stays the training path and the reference decoder. For answering (app, `kard ask`,
`kard evaluate --engine`) a student can hand its generation to CTranslate2 (`ctranslate2` on PyPI,
manylinux wheels, no compiler), which runs the same weights in int8 about 2.5x faster on a 2-core
CPU (benchmarks/README.md, "Decoding engines"). The engine works on token ids: the student's own
tokenizer writes the prompt ids and decodes the answer, so prompts and parsing stay one code path.

The student's weights (an adapter merged into its base) are converted once into
`cache_dir()/engines/ctranslate2-<type>/<digest>`, where the digest covers the bytes of the files the
student was loaded from (kard.disk_cache.content_digest; not their paths or change times), so a
retrained student is converted again and an unchanged one, in any clone or checkout, never is. Each
load marks its folder used; a new conversion removes all but the KARD_ENGINE_CACHE_KEEP (default 4)
most recently used ones.

`--engine auto` (the app's and `kard ask`'s default) uses CTranslate2 when it loads and otherwise
says why in one line and keeps transformers.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from kard.config import ENGINES, GenerationConfig, cache_dir
from kard.disk_cache import content_digest, prune, touch
from kard.errors import ConfigError, KardError

if TYPE_CHECKING:
    from kard.student import Student

log = logging.getLogger(__name__)

TRANSFORMERS = "transformers"
CTRANSLATE2 = "ctranslate2"
AUTO = "auto"
COMPUTE_TYPE = "int8"  # measured fastest on 2 cores; float32 is exact but only ~1.3x transformers
LABEL_FILE = "kard-student.txt"  # which student a converted folder holds, for a person looking at the cache
KEEP_ENV = "KARD_ENGINE_CACHE_KEEP"
KEEP_DEFAULT = 4  # converted students kept per compute type (about 130 MB each for SmolLM2-135M in int8)


class EngineUnavailable(KardError):
    """The engine cannot run this student (not installed, unsupported model, conversion failed)."""


@dataclass(frozen=True)
class Sampling:
    """Self-consistency sampling settings as an engine takes them (None in a call = greedy)."""

    top_k: int
    top_p: float
    temperature: float
    seed: int

    @staticmethod
    def of(config: GenerationConfig) -> "Sampling | None":
        if config.samples <= 1:
            return None
        return Sampling(config.top_k, config.top_p, config.temperature, config.seed)


class CTranslate2Engine:
    """A student's weights in a CTranslate2 Generator: greedy, sampled, batched and streamed token ids."""

    def __init__(self, open_generator: Callable[[], Any], tokens: Callable[[Sequence[int]], list[str]],
                 eos_token_id: int | None, compute_type: str, folder: Path):
        self._open = open_generator
        self._generator = open_generator()
        self._tokens = tokens
        self._end = [eos_token_id] if eos_token_id is not None else None
        self.compute_type = compute_type
        self.folder = folder

    @property
    def name(self) -> str:
        return f"{CTRANSLATE2} {self.compute_type}"

    @classmethod
    def for_student(cls, student: "Student", compute_type: str = COMPUTE_TYPE) -> "CTranslate2Engine":
        if importlib.util.find_spec("ctranslate2") is None:
            raise EngineUnavailable("the Python package 'ctranslate2' is not installed. Fix: pip install -r "
                                    "requirements.txt (or: pip install ctranslate2)")
        if student.is_encoder_decoder:
            raise EngineUnavailable("CTranslate2 runs decoder-only students here, not encoder-decoder (T5) ones")
        import ctranslate2

        folder = converted_folder(student, compute_type)

        def open_generator() -> Any:
            """The generator, converting again if the folder was pruned since (sampling opens a fresh one)."""
            if not (folder / "model.bin").is_file():
                convert(student, folder, compute_type)
            touch(folder)
            return ctranslate2.Generator(str(folder), device="cpu", compute_type=compute_type,
                                         intra_threads=os.cpu_count() or 1)

        return cls(open_generator, student.tokenizer.convert_ids_to_tokens, student.eos_token_id, compute_type, folder)

    def _generator_for(self, sampling: Sampling | None) -> Any:
        """The loaded generator, or for sampling a fresh one seeded with the sampling seed.

        CTranslate2 seeds its worker threads when a generator starts (set_random_seed later does not
        reach them), so reproducible samples need a new generator: about 0.2 s, small beside sampling.
        """
        if sampling is None:
            return self._generator
        import ctranslate2

        ctranslate2.set_random_seed(sampling.seed)
        return self._open()

    def _options(self, max_new_tokens: int, sampling: Sampling | None) -> dict[str, Any]:
        options: dict[str, Any] = {"max_length": max_new_tokens, "end_token": self._end, "return_end_token": True,
                                   "include_prompt_in_result": False}
        if sampling is not None:
            options.update(sampling_topk=sampling.top_k, sampling_topp=sampling.top_p,
                           sampling_temperature=sampling.temperature)
        return options

    def generate(self, ids: Sequence[int], max_new_tokens: int, sampling: Sampling | None = None, n: int = 1,
                 on_first_token: Callable[[], None] | None = None) -> list[list[int]]:
        """New token ids (ending with EOS when reached) of one greedy answer or `n` seeded samples."""
        options = self._options(max_new_tokens, sampling)
        if on_first_token is not None:
            options["callback"] = _once(on_first_token)
        prompt = self._tokens(list(ids))
        results = self._generator_for(sampling).generate_batch([prompt] * (n if sampling is not None else 1), **options)
        return [list(result.sequences_ids[0]) for result in results]

    def generate_batch(self, rows: Sequence[Sequence[int]], max_new_tokens: int) -> list[list[int]]:
        """Greedy new token ids for many prompts, each decoded alone.

        CTranslate2 can batch ragged prompts, but it then feeds the longer prompts' tails through the
        decoding loop, and in int8 that changed answers (demo question 1: B alone, C in a batch of 4).
        One prompt at a time keeps a batched answer equal to the app's.
        """
        return [self.generate(ids, max_new_tokens)[0] for ids in rows]

    def stream(self, ids: Sequence[int], max_new_tokens: int, sampling: Sampling | None = None) -> Iterator[int]:
        """New token ids one at a time; closing the iterator stops the generation."""
        options = {key: value for key, value in self._options(max_new_tokens, sampling).items()
                   if key not in ("return_end_token", "include_prompt_in_result")}
        steps = self._generator_for(sampling).generate_tokens(self._tokens(list(ids)), **options)
        try:
            for step in steps:
                yield step.token_id
        finally:
            steps.close()


def _once(callback: Callable[[], None]) -> Callable[[Any], bool]:
    called = False

    def on_step(_step: Any) -> bool:
        nonlocal called
        if not called:
            called = True
            callback()
        return False  # False: keep generating

    return on_step


# ---------------------------------------------------------------- choosing and converting


def check_engine(name: str) -> str:
    if name not in ENGINES:
        raise ConfigError(f"unknown engine {name!r}. Fix: use one of {', '.join(ENGINES)}")
    return name


def load_engine(student: "Student", name: str) -> CTranslate2Engine | None:
    """The engine for `name` (None = transformers); one warning line and None when it cannot load."""
    if check_engine(name) == TRANSFORMERS:
        return None
    try:
        return CTranslate2Engine.for_student(student)
    except EngineUnavailable as error:
        log.warning("CTranslate2 is not used: %s; answering with transformers (slower)", error)
    except (OSError, RuntimeError, ValueError) as error:  # a conversion or load that failed
        log.warning("CTranslate2 could not load the student (%s: %s); answering with transformers (slower). "
                    "Fix: --engine transformers to skip it", type(error).__name__, error)
    return None


def converted_folder(student: "Student", compute_type: str) -> Path:
    """The student's CTranslate2 folder in the cache, named by the content digest of its files alone."""
    started = time.perf_counter()
    digest = content_digest(student.sources)
    log.debug("student %s has content digest %s (%.2f s)", student.name, digest, time.perf_counter() - started)
    return cache_dir() / "engines" / f"{CTRANSLATE2}-{compute_type}" / digest


def conversions_kept() -> int:
    """How many converted students the cache keeps per compute type: $KARD_ENGINE_CACHE_KEEP, else 4."""
    text = os.environ.get(KEEP_ENV, "").strip()
    if not text:
        return KEEP_DEFAULT
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{KEEP_ENV}={text!r} is not a count. Fix: set it to 1 or more (default {KEEP_DEFAULT})")
    return int(text)


@contextlib.contextmanager
def _older_objects_frozen() -> Iterator[None]:
    """Keep the objects that exist now out of the garbage collector's scans until the block ends.

    The converter runs a full `gc.collect()` after each layer; in the app's process, which holds the
    knowledge base's passages and the reranker, each took 0.5 s (15 of the conversion's 19 s). Frozen,
    a collection only looks at what the conversion made (`gc.freeze`, which forked servers use for the
    same reason); the objects go back to the collector afterwards.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def convert(student: "Student", folder: Path, compute_type: str) -> Path:
    """Save the student's (merged) weights and convert them into a CTranslate2 folder, atomically.

    The conversion is written to a hidden scratch folder and renamed into place; then all but the most
    recently used conversions beside it are removed (`conversions_kept`).
    """
    from ctranslate2.converters import TransformersConverter

    keep = conversions_kept()
    log.info("converting the student %s for CTranslate2 %s (once, a few seconds) into %s", student.name, compute_type,
             folder)
    started = time.perf_counter()
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".convert-") as scratch:
        plain = student.save(Path(scratch) / "plain")
        converted = Path(scratch) / "converted"
        with _older_objects_frozen():
            TransformersConverter(str(plain)).convert(str(converted), quantization=compute_type)
        (converted / LABEL_FILE).write_text(f"{student.name}\n", encoding="utf-8")  # the folder is named by digest
        _move_into_place(converted, folder)
    log.info("converted the student for CTranslate2 in %.1f s", time.perf_counter() - started)
    prune(folder.parent, keep, spare=folder)
    return folder


def _move_into_place(converted: Path, folder: Path) -> None:
    """Rename the finished conversion to `folder`, unless another process finished first (its folder stays)."""
    if (folder / "model.bin").is_file():
        return
    shutil.rmtree(folder, ignore_errors=True)  # an incomplete folder (written before conversions were atomic)
    try:
        os.replace(converted, folder)
    except OSError:  # another process finished first: keep its folder
        pass

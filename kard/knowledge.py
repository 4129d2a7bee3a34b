"""The knowledge base: a BM25 index over passages, with two interchangeable backends.

`KnowledgeBase.build(passages, RetrievalConfig(...))` indexes passages; `.search(query, k)` returns
`Hit`s best first; `.save(dir)` / `KnowledgeBase.load(dir)` round-trip it through a folder.

Scoring (both backends compute the same Lucene BM25, the paper's Pyserini retriever)::

    score(q, d) = sum over query terms t of  idf(t) * tf(t, d) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))
    idf(t)      = log(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

with k1 = 0.9, b = 0.4 by default. A query term counts once per occurrence in the query.

- backend "bm25s" (default): `bm25s.BM25(method="lucene")`, exactly the formula above; scores are
  precomputed into a sparse term x document matrix (float32), so a query sums a few posting lists.
  The top-k is picked here among the matched passages only (`_top_k_from_postings`), not with
  bm25s's `retrieve`, which argpartitions a dense array of every passage per query (11x slower at
  100k passages; a test checks both give the same hits).
- backend "rank_bm25": rank_bm25 has no Lucene variant. Its `BM25Okapi` differs in two places:
  (1) the term-frequency part carries an extra factor (k1 + 1), which rescales every score equally and
  leaves rankings unchanged (we divide it out, so both backends report the same numbers); and
  (2) its IDF is the Robertson/Sparck Jones log((N - df + 0.5) / (df + 0.5)), negative for terms in
  more than half the documents, where it is replaced by epsilon * mean IDF (epsilon = 0.25). That
  changes rankings: it weights common terms far less than Lucene does (log 1 = 0 at df = N/2 versus
  Lucene's log 2). So this backend subclasses `BM25Okapi` with the Lucene IDF above and keeps
  rank_bm25's own counting and scoring. Measured on 300 real StrategyQA questions over the 17,645
  StrategyQA paragraphs: top-10 overlap with bm25s is 99.9% with the Lucene IDF (same order for
  99.3% of queries, scores within 2e-6: bm25s stores float32), and 99.2% with the unmodified
  `BM25Okapi` (same k1, b, tokens; few terms reach df > N/2 once stopwords are gone).
  tests/test_knowledge.py re-measures this on 100 questions.

Tokenisation (`tokenize`, identical for both backends, versioned in `TOKENIZER_VERSION`): lower-case,
split on anything that is not a letter or digit, drop English function words (`STOPWORDS`), then a light
plural stemmer (Harman's S-stemmer: "ies" -> "y", "es" -> "e", "s" -> "", with its exceptions).

Saved folder: `meta.json` (format, backend, k1, b, tokenizer version, passage count),
`passages.jsonl`, and for bm25s its own index files under `bm25s/` (`load(dir, mmap=True)` maps
them from disk instead of reading them into memory, for bases larger than RAM). The rank_bm25 backend has no file format of its own and pickles would run code on
load, so loading a rank_bm25 folder re-tokenises passages.jsonl and rebuilds the index (seconds for
tens of thousands of passages; use bm25s for large bases).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Iterable, Protocol, Sequence

import numpy as np

from kard import disk_cache
from kard.config import DEMO_KNOWLEDGE_DIR, DEMO_PASSAGES, RetrievalConfig, cache_dir
from kard.errors import ConfigError, DataError, KardError, MissingDependencyError
from kard.records import Hit, Passage

log = logging.getLogger(__name__)

TOKENIZER_VERSION = "words-stop124-splural-v1"
FORMAT = "kard-knowledge-base"
FORMAT_VERSION = 1
BACKENDS = ("bm25s", "rank_bm25")

# English function words: Lucene's default 33 (the paper's Pyserini BM25) plus pronouns, auxiliaries and
# question words. The wider list measured better on StrategyQA (top-10 hits reaching a linked paragraph,
# all 2,061 train questions: 95.0% versus 93.9% with Lucene's 33 alone).
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these "
    "they this to was will with "
    "about above after again against all am any because been before being below between both can could did "
    "do does doing down during each few from further had has have having he her here hers herself him "
    "himself his how i its itself just me more most my myself nor off once only other our ours ourselves "
    "out over own same she should so some than them themselves those through too under until up very we "
    "were what when where which while who whom why would you your yours yourself yourselves".split()
)
_WORD = re.compile(r"[^\W_]+")


class PassageNotFoundError(KardError, KeyError):
    """A passage id that the knowledge base does not hold."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def _stem(word: str) -> str:
    """Harman's S-stemmer: folds English plurals, leaves everything else alone."""
    if len(word) <= 3 or not word.endswith("s"):
        return word
    if word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if not word.endswith(("us", "ss")):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Lower-case words, stopwords removed, plurals folded. The same for indexing and querying."""
    return [_stem(word) for word in _WORD.findall(text.lower()) if word not in STOPWORDS]


def _progress(items: Iterable, show: bool, total: int, desc: str) -> Iterable:
    if not show:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, total=total, desc=desc, unit="passage", mininterval=0.5)


# ---------------------------------------------------------------- backends


class _Index(Protocol):
    name: str

    def top_k(self, queries: Sequence[list[str]], k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """(document indices, scores) per query, best first; at most k, zero scores dropped."""

    def save(self, folder: Path) -> None: ...


def _best_first(indices: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop zero-score padding; order by score, ties by passage position (deterministic)."""
    keep = scores > 0
    indices, scores = np.asarray(indices)[keep], np.asarray(scores)[keep]
    order = np.lexsort((indices, -scores))
    return indices[order], scores[order]


def _best_k(indices: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best of `indices` by `scores`, best first; passages tied at the cut are taken by position too.

    argpartition alone keeps an arbitrary subset of the passages tied with the k-th (seen here: which of
    two facts scoring exactly 6.1503 came second differed between machines), so every passage scoring at
    least the k-th score is kept, ordered, then cut.
    """
    if k < len(scores):
        kth_best = -np.partition(-scores, k - 1)[k - 1]
        at_least_kth = scores >= kth_best
        indices, scores = indices[at_least_kth], scores[at_least_kth]
    indices, scores = _best_first(indices, scores)
    return indices[:k], scores[:k]


def _top_k_from_postings(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, num_docs: int,
                         token_ids: list[int], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum the query terms' posting lists (a CSC term x passage score matrix) and keep the best k.

    Few matches (the usual case): sum per matched passage only. Many: sum into a dense array.
    Either way only passages with a positive score compete for the top k.
    """
    spans = [(int(indptr[t]), int(indptr[t + 1])) for t in token_ids]
    matched = sum(end - start for start, end in spans)
    if matched == 0:
        return np.empty(0, dtype=np.int64), np.empty(0)
    docs = np.concatenate([indices[start:end] for start, end in spans])
    weights = np.concatenate([data[start:end] for start, end in spans]).astype(np.float64)
    if matched * 8 < num_docs:
        candidates, where = np.unique(docs, return_inverse=True)
        totals = np.bincount(where, weights=weights)
    else:
        dense = np.bincount(docs, weights=weights, minlength=num_docs)
        candidates = np.flatnonzero(dense)
        totals = dense[candidates]
    return _best_k(candidates, totals, k)


class _Bm25sIndex:
    name = "bm25s"

    def __init__(self, retriever: object):
        self.retriever = retriever

    @staticmethod
    def _module():
        if "jax" not in sys.modules:
            # bm25s runs a JAX top-k when it is imported; on a GPU machine with JAX installed that would
            # take 75% of the GPU's memory away from the student. kard never uses JAX: keep it on the CPU.
            os.environ.setdefault("JAX_PLATFORMS", "cpu")
        try:
            import bm25s
        except ImportError:
            raise MissingDependencyError("bm25s", "the bm25s retrieval backend") from None
        # bm25s pins its logger to DEBUG on import; let it follow the application's level instead.
        logging.getLogger("bm25s").setLevel(logging.NOTSET)
        return bm25s

    @classmethod
    def build(cls, corpus_tokens: list[list[str]], k1: float, b: float, show_progress: bool) -> "_Bm25sIndex":
        retriever = cls._module().BM25(k1=k1, b=b, method="lucene")
        retriever.index(corpus_tokens, show_progress=show_progress)
        return cls(retriever)

    def top_k(self, queries: Sequence[list[str]], k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Scores come from bm25s's precomputed matrix; the top-k is chosen among matched passages only.

        bm25s's own `retrieve` scores into a dense array of every passage and argpartitions all of it,
        mostly zeros: that selection was 90% of a query's time at 100k passages (see benchmarks/).
        """
        vocab = self.retriever.vocab_dict
        scores = self.retriever.scores
        return [_top_k_from_postings(scores["data"], scores["indices"], scores["indptr"], scores["num_docs"],
                                     [vocab[token] for token in query if token in vocab], k)
                for query in queries]

    def top_k_library(self, queries: Sequence[list[str]], k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """The same through bm25s's own `retrieve` (kept for tests and benchmarks)."""
        vocab = self.retriever.vocab_dict
        known = [[token for token in query if token in vocab] for query in queries]
        results: list[tuple[np.ndarray, np.ndarray]] = [(np.empty(0, int), np.empty(0))] * len(queries)
        asked = [i for i, query in enumerate(known) if query]
        if asked:
            # bm25s refuses k > corpus size (the caller clamps k) and pads with zero scores (dropped).
            found = self.retriever.retrieve([known[i] for i in asked], k=k, show_progress=False)
            for row, i in enumerate(asked):
                results[i] = _best_first(found.documents[row], found.scores[row])
        return results

    def save(self, folder: Path) -> None:
        self.retriever.save(folder / "bm25s", show_progress=False)

    @classmethod
    def load(cls, folder: Path, mmap: bool = False) -> "_Bm25sIndex":
        files = folder / "bm25s"
        if not (files / "params.index.json").is_file():
            raise DataError("the bm25s index files are missing", path=files,
                            fix="rebuild the folder with: python -m kard index --passages FILE --out DIR")
        return cls(cls._module().BM25.load(files, mmap=mmap, show_progress=False))


def _lucene_okapi_class():
    try:
        from rank_bm25 import BM25Okapi
    except ImportError:
        raise MissingDependencyError("rank_bm25", "the rank_bm25 retrieval backend") from None

    class LuceneOkapi(BM25Okapi):
        """rank_bm25's BM25Okapi with Lucene's IDF (always positive) instead of Okapi's floored one."""

        def _calc_idf(self, nd: dict[str, int]) -> None:
            n = self.corpus_size
            self.idf = {word: math.log(1.0 + (n - df + 0.5) / (df + 0.5)) for word, df in nd.items()}
            self.average_idf = sum(self.idf.values()) / max(len(self.idf), 1)

    return LuceneOkapi


class _RankBm25Index:
    name = "rank_bm25"

    def __init__(self, model: object, k1: float):
        self.model = model
        self.k1 = k1

    @classmethod
    def build(cls, corpus_tokens: list[list[str]], k1: float, b: float, show_progress: bool) -> "_RankBm25Index":
        return cls(_lucene_okapi_class()(corpus_tokens, k1=k1, b=b), k1)

    def top_k(self, queries: Sequence[list[str]], k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        results = []
        for query in queries:
            # Okapi's tf part is (k1 + 1) times Lucene's: divide it out so both backends agree.
            scores = np.asarray(self.model.get_scores(query), dtype=np.float64) / (self.k1 + 1.0)
            results.append(_best_k(np.arange(len(scores)), scores, k))
        return results

    def save(self, folder: Path) -> None:
        """Nothing to write: `load` rebuilds from passages.jsonl."""

    @classmethod
    def load(cls, folder: Path, corpus_tokens: list[list[str]], k1: float, b: float) -> "_RankBm25Index":
        return cls.build(corpus_tokens, k1, b, show_progress=False)


# ---------------------------------------------------------------- the knowledge base


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ConfigError(f"unknown retrieval backend {backend!r}. Fix: choose one of {', '.join(BACKENDS)}")


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise DataError(f"k must be a whole number of at least 1, got {k!r}", fix="ask for k >= 1 passages")
    return int(k)


def _check_query(query: object, position: int | None = None) -> str:
    where = "" if position is None else f"query {position + 1}: "
    if isinstance(query, (bytes, bytearray)):
        raise DataError(f"{where}the query is {type(query).__name__}, not text", fix="decode it first (query.decode())")
    if not isinstance(query, str) or not query.strip():
        raise DataError(f"{where}the query is empty", fix="give a question or some words to search for")
    return query


class KnowledgeBase:
    """Passages plus a BM25 index over them. Build with `build`, `load` or `demo`."""

    def __init__(self, passages: Sequence[Passage], index: _Index, config: RetrievalConfig):
        self._passages = tuple(passages)
        self._index = index
        self.config = config
        self._position = {passage.id: i for i, passage in enumerate(self._passages)}

    # ---- construction

    @classmethod
    def build(cls, passages: Sequence[Passage], config: RetrievalConfig | None = None,
              show_progress: bool = False) -> "KnowledgeBase":
        config = config or RetrievalConfig()
        _check_backend(config.backend)
        _check_passages(passages)
        tokens = [tokenize(p.as_knowledge()) for p in _progress(passages, show_progress, len(passages), "tokenising")]
        if not any(tokens):
            raise DataError("no passage has any searchable word (all empty or stopwords)",
                            fix="index passages with real text")
        index_class = _Bm25sIndex if config.backend == "bm25s" else _RankBm25Index
        index = index_class.build(tokens, config.k1, config.b, show_progress)
        log.debug("built a %s index over %d passages", config.backend, len(passages))
        return cls(passages, index, config)

    @classmethod
    def open(cls, *paths: str | Path, config: RetrievalConfig | None = None,
             show_progress: bool = False) -> "KnowledgeBase":
        """What a user names as a knowledge base: a saved index folder, or passages files indexed together.

        No path at all gives the default knowledge (`default`: the demo passages plus demo/knowledge/).
        """
        from kard.datasets import load_passages

        if not paths:
            return cls.default()
        folders = [Path(p).expanduser() for p in paths]
        if len(folders) == 1 and folders[0].is_dir():
            return cls.load(folders[0], config)
        for path in folders:
            if not path.is_file():
                raise DataError("knowledge base not found", path=path,
                                fix="pass an index folder from `python -m kard index` or a passages .jsonl/.txt file")
        passages = [passage for path in folders for passage in load_passages(path)]
        return cls.build(passages, config, show_progress=show_progress)

    @classmethod
    def demo(cls) -> "KnowledgeBase":
        """The embedded demo passages alone (demo/passages.jsonl), indexed once per process."""
        return _demo_knowledge_base()

    @classmethod
    def default(cls, files: Sequence[Path] | None = None) -> "KnowledgeBase":
        """The knowledge a user gets with no setting: the demo passages plus demo/knowledge/*.jsonl.

        Indexed once and cached under the cache folder, keyed by the files' contents, so a later
        start loads the saved index instead of rebuilding it.
        """
        files = tuple(files if files is not None else default_knowledge_files())
        return _cached_default(files, files_digest(files))

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "passages.jsonl", "w", encoding="utf-8") as out:
            for p in self._passages:
                out.write(json.dumps({"id": p.id, "title": p.title, "text": p.text}, ensure_ascii=False) + "\n")
        self._index.save(folder)
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "backend": self._index.name,
                "k1": self.config.k1, "b": self.config.b, "tokenizer": TOKENIZER_VERSION, "count": len(self)}
        (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path, config: RetrievalConfig | None = None, mmap: bool = False) -> "KnowledgeBase":
        """A saved knowledge base; its backend, k1 and b come from meta.json (other settings from `config`).

        mmap=True memory-maps the bm25s score matrix instead of reading it (ignored by rank_bm25).
        """
        from dataclasses import replace

        from kard.datasets import load_passages

        folder = Path(folder)
        meta = _read_meta(folder)
        passages = load_passages(folder / "passages.jsonl")
        if len(passages) != meta["count"]:
            raise DataError(f"meta.json says {meta['count']} passages but passages.jsonl holds {len(passages)}",
                            path=folder, fix="rebuild the folder with: python -m kard index")
        config = replace(config or RetrievalConfig(), backend=meta["backend"], k1=meta["k1"], b=meta["b"])
        if meta["backend"] == "bm25s":
            index: _Index = _Bm25sIndex.load(folder, mmap=mmap)
        else:
            tokens = [tokenize(p.as_knowledge()) for p in passages]
            index = _RankBm25Index.load(folder, tokens, config.k1, config.b)
        return cls(passages, index, config)

    # ---- access

    def __len__(self) -> int:
        return len(self._passages)

    def __contains__(self, passage_id: object) -> bool:
        return passage_id in self._position

    @property
    def passages(self) -> tuple[Passage, ...]:
        return self._passages

    @property
    def backend(self) -> str:
        return self._index.name

    def get(self, passage_id: str) -> Passage:
        try:
            return self._passages[self._position[passage_id]]
        except KeyError:
            raise PassageNotFoundError(f"no passage with id {passage_id!r} in this knowledge base. "
                                       "Fix: use an id from a search hit or from the passages file") from None

    # ---- search

    def search(self, query: str, k: int = 10) -> list[Hit]:
        """Top-k hits for one query, best first. k beyond the corpus size is clamped; no-match padding dropped."""
        return self.search_many([_check_query(query)], k)[0]

    def search_many(self, queries: Sequence[str], k: int = 10, show_progress: bool = False,
                    batch_size: int = 256) -> list[list[Hit]]:
        """Top-k hits for each query, retrieved in batches (bm25s scores a batch in one call)."""
        k = _check_k(k)
        if isinstance(queries, (str, bytes)):
            raise DataError(f"search_many takes a list of queries, got one {type(queries).__name__} ({queries[:40]!r})",
                            fix="pass a list (search_many([query])), or use search(query) for one query")
        queries = [_check_query(query, i) for i, query in enumerate(queries)]
        if k > len(self):
            log.debug("k=%d is larger than the %d passages; returning at most %d", k, len(self), len(self))
            k = len(self)
        hits: list[list[Hit]] = []
        starts = range(0, len(queries), batch_size)
        for start in _progress(starts, show_progress, len(starts), "searching"):
            batch = [tokenize(query) for query in queries[start: start + batch_size]]
            for indices, scores in self._index.top_k(batch, k):
                hits.append([Hit(passage=self._passages[int(i)], bm25_score=float(s), bm25_rank=rank)
                             for rank, (i, s) in enumerate(zip(indices, scores), start=1)])
        return hits


def _check_passages(passages: Sequence[Passage]) -> None:
    if not passages:
        raise DataError("there are no passages to index", fix="give at least one passage")
    seen: dict[str, int] = {}
    for position, passage in enumerate(passages, start=1):
        if not isinstance(passage, Passage):
            raise DataError(f"passage {position} is a {type(passage).__name__}, not a Passage",
                            fix="make Passage(id, title, text) objects, or read a passages file with "
                            "kard.datasets.load_passages")
        if passage.id in seen:
            raise DataError(f"duplicate passage id {passage.id!r} (passages {seen[passage.id]} and {position})",
                            fix="give every passage a unique id")
        seen[passage.id] = position


def _read_meta(folder: Path) -> dict:
    fix = "build one with: python -m kard index --passages FILE --out DIR"
    path = folder / "meta.json"
    if not path.is_file():
        problem = "the folder does not exist" if not folder.exists() else "this is not a knowledge-base folder (no meta.json)"
        raise DataError(problem, path=folder, fix=fix)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"malformed JSON ({error.msg})", path=path, line=error.lineno, fix=fix) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError("not a KARD knowledge-base meta.json", path=path, fix=fix)
    if meta.get("tokenizer") != TOKENIZER_VERSION:
        raise DataError(f"the index was built with tokenizer {meta.get('tokenizer')!r}, this version uses "
                        f"{TOKENIZER_VERSION!r}", path=path, fix="rebuild it with: python -m kard index")
    _check_backend(meta.get("backend", ""))
    return meta


def default_knowledge_files() -> list[Path]:
    """demo/passages.jsonl, then every passages file in demo/knowledge/ (sorted by name)."""
    return [DEMO_PASSAGES, *sorted(DEMO_KNOWLEDGE_DIR.glob("*.jsonl"))]


def files_digest(files: Sequence[Path]) -> str:
    """A short content hash of passages files (names and bytes): the default index's cache key."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


INDEXES_KEPT = 2
"""Default-knowledge indexes kept in the cache: the one just built and the most recently used other one."""


@functools.lru_cache(maxsize=2)
def _cached_default(files: tuple[Path, ...], digest: str) -> KnowledgeBase:
    from kard.datasets import load_passages

    folder = cache_dir() / "indexes" / f"default-{digest}"
    if (folder / "meta.json").is_file():
        try:
            knowledge = KnowledgeBase.load(folder)
            disk_cache.touch(folder)
            return knowledge
        except (DataError, OSError, ValueError) as error:
            log.warning("cached index %s is unreadable (%s): rebuilding it", folder, error)
    started = time.perf_counter()
    passages = [passage for path in files for passage in load_passages(path)]
    knowledge = KnowledgeBase.build(passages)
    temporary = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")  # hidden: pruning leaves it alone
    try:
        knowledge.save(temporary)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(temporary, folder)
        disk_cache.prune(folder.parent, keep=INDEXES_KEPT, spare=folder)  # older passages' indexes, ~12 MB each
    except OSError as error:  # a read-only cache still answers, it only rebuilds next time
        log.warning("could not cache the knowledge index in %s (%s)", folder, error)
        shutil.rmtree(temporary, ignore_errors=True)
    log.info("indexed %d passages from %d files in %.1f s (cached in %s)", len(passages), len(files),
             time.perf_counter() - started, folder)
    return knowledge


@functools.lru_cache(maxsize=1)
def _demo_knowledge_base() -> KnowledgeBase:
    from kard.datasets import load_demo_passages

    return KnowledgeBase.build(load_demo_passages(DEMO_PASSAGES))

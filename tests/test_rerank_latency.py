"""benchmarks/rerank_latency.py: what the reranker changes in the passages the student reads."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from kard.records import Hit, Passage

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("rerank_latency", ROOT / "benchmarks" / "rerank_latency.py")
latency = importlib.util.module_from_spec(spec)
spec.loader.exec_module(latency)


def reranked(bm25_ranks: list[int]) -> list[Hit]:
    """Hits in the reranker's order, each with the BM25 place it came from."""
    return [Hit(Passage(f"p{r}", "", "x"), 1.0, r).with_rerank(1.0 - i, i + 1) for i, r in enumerate(bm25_ranks)]


def test_the_deepest_bm25_place_among_the_passages_read():
    assert latency.deepest_bm25_rank(reranked([2, 1, 3]), 2) == 2  # BM25's top 2, reordered
    assert latency.deepest_bm25_rank(reranked([1, 33, 2]), 2) == 33


def test_moves_line_counts_changed_sets_and_deep_passages():
    line = latency.moves_line([2, 33, 11, 2, 3], 2)
    assert "top-2 differs from BM25's on 3 of 5 questions" in line
    assert "below BM25's 10th place on 2" in line and "below the 20th on 1" in line

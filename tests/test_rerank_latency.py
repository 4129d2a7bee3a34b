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


def test_help_describes_the_whole_first_paragraph():
    assert latency.description().endswith("(question encoder + cached passage vectors).")


def test_a_missing_reranker_is_one_line(tmp_path):
    import pytest

    with pytest.raises(SystemExit, match=r"^error: .*nope.* not found\. Fix:"):
        latency.loaded_reranker(str(tmp_path / "nope"))
    assert latency.loaded_reranker("none") is None  # BM25 alone


def test_none_measures_bm25_alone(capsys):
    from kard.knowledge import KnowledgeBase
    from kard.records import Question

    knowledge = KnowledgeBase.build([Passage("p1", "Sun", "The sun gives light."), Passage("p2", "Sea", "Salt water.")])
    question = Question("q1", "What gives light?", {"A": "the sun", "B": "the sea"}, "A", "demo")
    latency.bm25_alone(knowledge, [question], 2, 0.1)
    lines = capsys.readouterr().out.splitlines()
    assert "no reranker" in lines[0] and lines[-1].startswith("| BM25 top-100 | 2 |")

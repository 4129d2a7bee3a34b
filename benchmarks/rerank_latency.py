"""Reranking latency beside BM25, on the app's path: the default knowledge base, BM25's top 100 for
each demo question, then the reranker over them (question encoder + cached passage vectors).

    python benchmarks/rerank_latency.py [--reranker demo/reranker | none] [--repeats 3]

Prints p50 / p90 / max milliseconds per question for BM25 and for reranking, after one warm-up, and
what the reranker changes in what the student reads: on how many questions its top-k differs from
BM25's, and how many take a passage from below BM25's 10th and 20th place (the app shows 10 rows and
keeps 20 candidates). `--reranker none` measures BM25 alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: kard is beside

from kard.config import DEFAULT_RERANKER, RetrievalConfig  # noqa: E402
from kard.errors import KardError  # noqa: E402
from kard.datasets import load_demo_questions  # noqa: E402
from kard.knowledge import KnowledgeBase  # noqa: E402
from kard.pipeline import retrieval_query  # noqa: E402
from kard.reranker.encoder import load_reranker  # noqa: E402


def row(name: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return f"| {name} | {len(seconds)} | {1000 * statistics.median(seconds):.1f} | {1000 * p90:.1f} | {1000 * ordered[-1]:.1f} |"


def deepest_bm25_rank(reranked: list, k: int) -> int:
    """The lowest BM25 place among the reranker's top k (k when it kept BM25's top k as they were)."""
    return max(hit.bm25_rank for hit in reranked[:k])


def moves_line(deepest: list[int], k: int) -> str:
    changed = sum(rank > k for rank in deepest)
    return (f"the reranker's top-{k} differs from BM25's on {changed} of {len(deepest)} questions; a passage the "
            f"student reads comes from below BM25's 10th place on {sum(r > 10 for r in deepest)}, "
            f"below the 20th on {sum(r > 20 for r in deepest)}")


def description() -> str:
    """The docstring's first paragraph, whole (its first line alone stops mid-sentence)."""
    return " ".join(__doc__.split("\n\n")[0].split())


def loaded_reranker(name: str):
    """The reranker named, None for "none" (BM25 alone); a missing one is one line naming the fix."""
    try:
        return load_reranker(name)
    except (KardError, OSError) as error:
        raise SystemExit(f"error: {error}") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=description())
    parser.add_argument("--reranker", default=DEFAULT_RERANKER, help="a reranker folder, or none for BM25 alone")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    reranker = loaded_reranker(args.reranker)
    knowledge = KnowledgeBase.open()
    load_s = time.perf_counter() - started
    questions = load_demo_questions()
    if reranker is None:
        return bm25_alone(knowledge, questions, args.repeats, load_s)
    reranker.rerank(questions[0], knowledge.search(retrieval_query(questions[0], RetrievalConfig.query), 100))
    bm25, rerank, deepest = [], [], {}
    for _ in range(args.repeats):
        for question in questions:
            started = time.perf_counter()
            hits = knowledge.search(retrieval_query(question, RetrievalConfig.query), 100)
            bm25.append(time.perf_counter() - started)
            started = time.perf_counter()
            reranked = reranker.rerank(question, hits)
            rerank.append(time.perf_counter() - started)
            deepest[question.id] = deepest_bm25_rank(reranked, RetrievalConfig.top_k)
    print(f"knowledge base and reranker loaded in {load_s:.1f} s; {len(questions)} demo questions x {args.repeats}")
    print("| step | runs | p50 ms | p90 ms | max ms |\n|---|---:|---:|---:|---:|")
    print(row("BM25 top-100", bm25))
    print(row(f"rerank 100 ({Path(args.reranker).name})", rerank))
    print(moves_line(list(deepest.values()), RetrievalConfig.top_k))


def bm25_alone(knowledge: KnowledgeBase, questions: list, repeats: int, load_s: float) -> None:
    """--reranker none: BM25's top 100 alone, timed the same way."""
    knowledge.search(retrieval_query(questions[0], RetrievalConfig.query), 100)  # warm-up
    bm25 = []
    for _ in range(repeats):
        for question in questions:
            started = time.perf_counter()
            knowledge.search(retrieval_query(question, RetrievalConfig.query), 100)
            bm25.append(time.perf_counter() - started)
    print(f"knowledge base loaded in {load_s:.1f} s (no reranker); {len(questions)} demo questions x {repeats}")
    print("| step | runs | p50 ms | p90 ms | max ms |\n|---|---:|---:|---:|---:|")
    print(row("BM25 top-100", bm25))


if __name__ == "__main__":
    main()

"""Does the reranker find, from the question alone, the passage the rationale would retrieve?

For each held-back (question, rationale): the target is BM25's top-1 passage for the rationale (the
passage KARD trains the student with). The candidates are BM25's top-N (default 100) for the question.
We count how often the target is in the top-1 / top-3 of BM25-by-question alone and of the reranker
over the same candidates; `reachable` is how often it is among the candidates at all (the ceiling).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from kard.errors import DataError
from kard.prompts import strip_answer_line
from kard.records import Question
from kard.reranker.encoder import Reranker, reranker_query

if TYPE_CHECKING:  # pragma: no cover
    from kard.knowledge import KnowledgeBase

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RerankerEval:
    questions: int
    candidates: int
    reachable: float
    bm25: dict[int, float]
    reranker: dict[int, float]
    seconds_per_question: float
    per_question: list[dict] = field(default_factory=list)

    def table(self) -> str:
        """A markdown table of the hit rates."""
        ks = sorted(self.bm25)
        lines = ["| ranking | " + " | ".join(f"top-{k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
        lines.append("| BM25 (question) | " + " | ".join(f"{self.bm25[k]:.3f}" for k in ks) + " |")
        lines.append("| BM25 + reranker | " + " | ".join(f"{self.reranker[k]:.3f}" for k in ks) + " |")
        lines.append(f"| target among the {self.candidates} candidates | " + " | ".join(f"{self.reachable:.3f}" for _ in ks) + " |")
        return "\n".join(lines)


def evaluate_reranker(reranker: Reranker, knowledge: "KnowledgeBase", pairs: Sequence[tuple[Question, str]], *,
                      candidates: int = 100, ks: Sequence[int] = (1, 3), progress: bool = True) -> RerankerEval:
    """Hit rates of BM25-by-question and of the reranker against the rationale's top-1 passage."""
    from tqdm.auto import tqdm

    pairs = [(q, strip_answer_line(r)) for q, r in pairs if r and strip_answer_line(r)]
    if not pairs:
        raise DataError("no (question, rationale) pairs to evaluate", fix="pass held-back questions with rationales")
    targets = knowledge.search_many([r for _, r in pairs], 1)
    pool = knowledge.search_many([reranker_query(q) for q, _ in pairs], candidates)
    rows: list[dict] = []
    started = time.perf_counter()
    for (question, _), target_hits, hits in tqdm(list(zip(pairs, targets, pool)), desc="eval", disable=not progress):
        if not target_hits or not hits:
            continue
        target = target_hits[0].passage.id
        reranked = reranker.rerank(question, hits)
        rows.append({
            "question_id": question.id,
            "target": target,
            "bm25_rank": _rank(target, [h.passage.id for h in hits]),
            "rerank_rank": _rank(target, [h.passage.id for h in reranked]),
        })
    if not rows:
        raise DataError("the knowledge base returned nothing for the evaluation questions",
                        fix="use the knowledge base the reranker was trained with")
    seconds = (time.perf_counter() - started) / len(rows)
    rate = lambda key, k: sum(1 for r in rows if r[key] is not None and r[key] <= k) / len(rows)  # noqa: E731
    return RerankerEval(
        questions=len(rows), candidates=candidates,
        reachable=sum(1 for r in rows if r["bm25_rank"] is not None) / len(rows),
        bm25={k: rate("bm25_rank", k) for k in ks}, reranker={k: rate("rerank_rank", k) for k in ks},
        seconds_per_question=seconds, per_question=rows,
    )


def _rank(target: str, ids: list[str]) -> int | None:
    return ids.index(target) + 1 if target in ids else None

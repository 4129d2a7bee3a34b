"""Would extra terms in the shipped reranker's score help? A probe with its question encoder frozen.

    python benchmarks/reranker_head_probe.py [--reranker demo/reranker] [--steps 300]

The shipped dense reranker scores a candidate as a * z(BM25) + b * cos(question, passage). Here the
question vectors come from the shipped encoder, once, and only small heads are trained (full batch,
Adam, KARD's KL to BM25 given the rationale at temperature 1, on the reranker's own training pairs):

- "a, b retrained": the blend alone, trained again (the reference);
- "+ passage prior": a linear term on the cached passage vector (what kind of passage rationales find);
- "+ lexical features": the share of the passage title's words in the question, log of BM25's rank,
  and whether it is an article's first paragraph (id ending -0/-1);
- both, and the prior with weight decay.

Printed: top-1 of each head on the held-back sets of train_default_reranker.py (the target is BM25's
top-1 passage for the rationale; candidates: BM25's 100 for the question). Minutes on 2 cores, most of
it BM25 and encoding the questions.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from train_default_reranker import pairs  # noqa: E402

from kard.config import SHIPPED_RERANKER  # noqa: E402
from kard.knowledge import KnowledgeBase  # noqa: E402
from kard.prompts import strip_answer_line  # noqa: E402
from kard.reranker.dense import DenseReranker, dense_items  # noqa: E402
from kard.reranker.encoder import reranker_query  # noqa: E402

FEATURES = 3


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def batch_of(pairs_: list, knowledge: KnowledgeBase, reranker: DenseReranker) -> dict[str, torch.Tensor]:
    """Every question's candidates as padded tensors: vectors, BM25 both ways, features, target index."""
    items = dense_items(pairs_, knowledge)
    usable = [(q, strip_answer_line(r)) for q, r in pairs_ if r and strip_answer_line(r)]
    found = knowledge.search_many([r for _, r in usable], 1)
    target_of = {reranker_query(q): hits[0].passage.id for (q, _), hits in zip(usable, found) if hits}
    by_id = {p.id: p for p in knowledge.passages}
    width = max(len(item.passage_ids) for item in items)
    n = len(items)
    out = {"P": torch.zeros(n, width, 384), "B": torch.zeros(n, width), "R": torch.zeros(n, width),
           "F": torch.zeros(n, width, FEATURES), "M": torch.zeros(n, width, dtype=torch.bool),
           "T": torch.full((n,), -1, dtype=torch.long)}
    for i, item in enumerate(items):
        count = len(item.passage_ids)
        passages = [by_id[pid] for pid in item.passage_ids]
        out["P"][i, :count] = torch.from_numpy(reranker.vectors.of(passages))
        out["B"][i, :count] = torch.tensor(item.bm25_question)
        out["R"][i, :count] = torch.tensor(item.bm25_rationale)
        out["M"][i, :count] = True
        target = target_of.get(item.query)
        if target in item.passage_ids:
            out["T"][i] = item.passage_ids.index(target)
        question_words = words(item.query)
        for j, passage in enumerate(passages):
            title = words(passage.title or "")
            out["F"][i, j] = torch.tensor([len(title & question_words) / max(1, len(title)), float(np.log1p(j)),
                                           float(passage.id.endswith(("-0", "-1")))])
    with torch.inference_mode():
        out["Q"] = torch.cat([reranker.encode_questions([item.query for item in items[s: s + 128]])
                              for s in range(0, n, 128)])
    return out


class Head(torch.nn.Module):
    def __init__(self, a: float, b: float, prior: bool = False, features: bool = False):
        super().__init__()
        self.a, self.b = torch.nn.Parameter(torch.tensor(a)), torch.nn.Parameter(torch.tensor(b))
        self.prior = torch.nn.Linear(384, 1) if prior else None
        self.features = torch.nn.Linear(FEATURES, 1) if features else None
        for layer in (self.prior, self.features):
            if layer is not None:
                torch.nn.init.zeros_(layer.weight)
                torch.nn.init.zeros_(layer.bias)

    def forward(self, d: dict[str, torch.Tensor]) -> torch.Tensor:
        score = DenseReranker.blend(self, d["Q"], d["P"], d["B"], d["M"])  # the shipped a * z(BM25) + b * cos
        if self.prior is not None:
            score = score + self.prior(d["P"]).squeeze(-1)
        if self.features is not None:
            score = score + self.features(d["F"]).squeeze(-1)
        return score.masked_fill(~d["M"], -1e4)


def fit(head: Head, d: dict[str, torch.Tensor], steps: int, weight_decay: float = 0.0) -> Head:
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2, weight_decay=weight_decay)
    target = torch.log_softmax(d["R"].masked_fill(~d["M"], -1e4), -1)
    for _ in range(steps):
        loss = (target.exp() * (target - torch.log_softmax(head(d), -1))).sum(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return head


def top1(head: Head, d: dict[str, torch.Tensor]) -> float:
    with torch.no_grad():
        return float(((head(d).argmax(1) == d["T"]) & (d["T"] >= 0)).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--reranker", type=Path, default=SHIPPED_RERANKER)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    torch.manual_seed(0)
    knowledge = KnowledgeBase.open()
    reranker = DenseReranker.load(args.reranker)
    train, held_back = pairs(args.data)
    sets = {"training pairs": batch_of(train, knowledge, reranker)}
    sets.update({name: batch_of(p, knowledge, reranker) for name, p in held_back.items()})
    a, b = reranker.a.item(), reranker.b.item()
    shipped = Head(a, b)
    bm25 = Head(1.0, 0.0)
    heads = {"BM25 alone": bm25, "shipped a, b": shipped,
             "a, b retrained": fit(Head(a, b), sets["training pairs"], args.steps),
             "+ passage prior": fit(Head(a, b, prior=True), sets["training pairs"], args.steps),
             "+ lexical features": fit(Head(a, b, features=True), sets["training pairs"], args.steps),
             "+ both": fit(Head(a, b, prior=True, features=True), sets["training pairs"], args.steps),
             "+ passage prior, weight decay 1e-3": fit(Head(a, b, prior=True), sets["training pairs"], args.steps, 1e-3)}
    print("| head | " + " | ".join(f"{name} top-1 %" for name in sets) + " |")
    print("|---|" + "---:|" * len(sets))
    for label, head in heads.items():
        print(f"| {label} | " + " | ".join(f"{100 * top1(head, d):.1f}" for d in sets.values()) + " |")


if __name__ == "__main__":
    main()

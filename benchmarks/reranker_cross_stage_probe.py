"""Probe: a cross-encoder second stage over the shipped dense reranker's top-N (the paper reads question
and passage together; the shipped reranker reads them apart).

    python benchmarks/reranker_cross_stage_probe.py [--top 10] [--steps 300] [--batch 8] [--out runs/cross-stage]

Stage 1 is demo/reranker as shipped (BM25's 100 candidates for the question, reranked). Stage 2 reads
(question, passage) pairs for stage 1's top N with the packaged all-MiniLM-L6-v2 body (LoRA r16) and a linear head
that starts at zero, and adds its output to stage 1's score: before training it is exactly the shipped
reranker. It is trained with KARD's loss restricted to those N: KL(softmax(BM25 given the rationale / tau1)
|| softmax(stage 1 + stage 2)), tau1 annealed 3 -> 1, on the shipped reranker's training pairs (StrategyQA
train outside the 300 held out, OpenBookQA train; `--obqa` caps how many OpenBookQA pairs). Measured as
benchmarks/train_default_reranker.py measures (kard.reranker.evaluation: the rationale's top-1 passage found
from the question among BM25's 100), stage 1 alone and both stages, on the same held-back sets.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # kard, beside
sys.path.insert(0, str(Path(__file__).resolve().parent))  # train_default_reranker, beside this file

import torch  # noqa: E402
from train_default_reranker import pairs, rate  # noqa: E402

from kard.config import DEFAULT_RERANKER_BACKBONE, SHIPPED_RERANKER  # noqa: E402
from kard.knowledge import KnowledgeBase  # noqa: E402
from kard.metrics import compare_paired  # noqa: E402
from kard.records import Hit, Question  # noqa: E402
from kard.reranker.dense import DenseItem, DenseReranker, dense_items  # noqa: E402
from kard.reranker.encoder import rank_by_scores, reranker_query, resolve_backbone  # noqa: E402
from kard.reranker.evaluation import evaluate_reranker  # noqa: E402
from kard.reranker.training import kard_kl_loss, temperature  # noqa: E402

log = logging.getLogger("cross-stage")


class PairScorer(torch.nn.Module):
    """MiniLM reading "query [SEP] passage"; mean-pooled; a linear head that starts at zero."""

    def __init__(self, backbone: str, max_length: int):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        source = resolve_backbone(backbone)
        self.tokenizer = AutoTokenizer.from_pretrained(source)
        from peft import LoraConfig, get_peft_model

        self.body = get_peft_model(AutoModel.from_pretrained(source), LoraConfig(  # small enough to commit
            r=16, lora_alpha=32, target_modules=["query", "key", "value", "dense"]))
        self.head = torch.nn.Linear(self.body.config.hidden_size, 1)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)
        self.max_length = max_length

    def forward(self, queries: Sequence[str], texts: Sequence[str]) -> torch.Tensor:
        batch = self.tokenizer(list(queries), list(texts), truncation="longest_first", max_length=self.max_length,
                               padding=True, return_tensors="pt")
        states = self.body(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.head(pooled).squeeze(-1)


class TwoStage:
    """Stage 1 orders all candidates; stage 2 reorders its top N (the rest keep stage 1's order below)."""

    def __init__(self, first: DenseReranker, second: PairScorer, top: int):
        self.first, self.second, self.top, self.name = first, second, top, "dense + cross stage"

    def rerank(self, question: Question | str, hits: Sequence[Hit], k: int | None = None) -> list[Hit]:
        return rank_by_scores(hits, lambda: self.scores(question, hits), k)

    def scores(self, question: Question | str, hits: Sequence[Hit]) -> list[float]:
        first = self.first.score_hits(question, hits)
        best = sorted(range(len(hits)), key=lambda i: -first[i])[: self.top]
        with torch.inference_mode():
            extra = self.second([reranker_query(question)] * len(best), [hits[i].passage.text for i in best]).tolist()
        scores = [value - 1e4 for value in first]  # below every one of the top N
        for i, add in zip(best, extra):
            scores[i] = first[i] + add
        return scores


def stage_one_tops(first: DenseReranker, items: Sequence[DenseItem], knowledge: KnowledgeBase,
                   top: int) -> list[tuple[str, list[str], torch.Tensor, torch.Tensor]]:
    """(query, top-N passage texts, their stage-1 scores, their BM25-given-the-rationale scores) per item."""
    by_id = {p.id: p for p in knowledge.passages}
    out = []
    for start in range(0, len(items), 64):
        chunk = items[start : start + 64]
        with torch.inference_mode():
            questions = first.encode_questions([item.query for item in chunk])
        for item, vector in zip(chunk, questions):
            if len(item.passage_ids) < top:  # BM25 found fewer candidates than stage 2 reads: not a training item
                continue
            passages = torch.from_numpy(first.vectors.of([by_id[pid] for pid in item.passage_ids]))[None]
            bm25 = torch.tensor([item.bm25_question], dtype=torch.float32)
            with torch.inference_mode():
                scores = first.blend(vector[None], passages, bm25, torch.ones_like(bm25, dtype=torch.bool))[0]
            best = torch.argsort(scores, descending=True)[:top]
            out.append((item.query, [by_id[item.passage_ids[i]].text for i in best.tolist()], scores[best].clone(),
                        torch.tensor([item.bm25_rationale[i] for i in best.tolist()])))
    return out


def train(second: PairScorer, data: list, steps: int, batch: int, seed: int, lr_body: float, lr_head: float) -> list[float]:
    rng = random.Random(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW([{"params": [p for p in second.body.parameters() if p.requires_grad], "lr": lr_body},
                                   {"params": second.head.parameters(), "lr": lr_head}])
    second.train()
    losses = []
    for step in range(steps):
        tau1 = temperature(step, steps, 3.0, 1.0)
        chosen = rng.sample(data, batch)
        queries = [query for query, texts, _, _ in chosen for _ in texts]
        texts = [text for _, texts, _, _ in chosen for text in texts]
        extra = second(queries, texts).view(len(chosen), -1)
        scores = torch.stack([first for _, _, first, _ in chosen]) + extra
        loss = kard_kl_loss(torch.stack([rationale for *_, rationale in chosen]), scores, tau1, 1.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % 20 == 0 or step == steps - 1:
            log.info("step %d/%d loss %.4f (tau1 %.2f)", step + 1, steps, loss.item(), tau1)
    second.eval()
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--top", type=int, default=10, help="stage 1's top N that stage 2 reorders")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=8, help="questions a step (each with its N pairs)")
    parser.add_argument("--obqa", type=int, default=1761, help="OpenBookQA training pairs used (random, seed 0)")
    parser.add_argument("--lr-body", type=float, default=3e-4, help="LoRA learning rate (as the shipped reranker's)")
    parser.add_argument("--lr-head", type=float, default=1e-3)
    parser.add_argument("--max-length", type=int, default=192)
    parser.add_argument("--held-back", type=int, default=0, help="evaluate on the first N of each set (0: all)")
    parser.add_argument("--out", type=Path, default=Path("runs/cross-stage"))
    parser.add_argument("--load", action="store_true", help="measure the stage 2 saved in --out instead of training")
    parser.add_argument("--sets", nargs="*", default=None, help="held-back sets to measure (default all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(2)
    knowledge = KnowledgeBase.open()
    first = DenseReranker.load(SHIPPED_RERANKER)
    train_pairs, held_back = pairs(args.data)
    second = PairScorer(DEFAULT_RERANKER_BACKBONE, args.max_length)
    losses: list[float] = []
    if args.load:
        second.load_state_dict(torch.load(args.out / "stage2.pt"))
        second.eval()
    else:
        losses = train_stage_two(args, second, train_pairs, knowledge, first)
    both = TwoStage(first, second, args.top)
    held_back = {name: held for name, held in held_back.items() if args.sets is None or name in args.sets}
    measure(args, first, both, knowledge, held_back, losses)


def train_stage_two(args: argparse.Namespace, second: PairScorer, train_pairs: list, knowledge: KnowledgeBase,
                    first: DenseReranker) -> list[float]:
    strategyqa = [p for p in train_pairs if p[0].dataset == "strategyqa"]
    obqa = [p for p in train_pairs if p[0].dataset != "strategyqa"]
    chosen = strategyqa + random.Random(0).sample(obqa, min(args.obqa, len(obqa)))
    started = time.perf_counter()
    data = stage_one_tops(first, dense_items(chosen, knowledge), knowledge, args.top)
    log.info("%d training questions (%d StrategyQA), stage-1 tops in %.0f s", len(data), len(strategyqa),
             time.perf_counter() - started)
    started = time.perf_counter()
    losses = train(second, data, args.steps, args.batch, 0, args.lr_body, args.lr_head)
    train_s = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(second.state_dict(), args.out / "stage2.pt")
    print(f"stage 2: {args.steps} steps x {args.batch} questions x {args.top} pairs, {train_s:.0f} s "
          f"({train_s / args.steps:.2f} s a step); loss {sum(losses[:20]) / min(20, len(losses)):.3f} -> "
          f"{sum(losses[-20:]) / min(20, len(losses)):.3f}\n")
    return losses


def measure(args: argparse.Namespace, first: DenseReranker, both: TwoStage, knowledge: KnowledgeBase,
            held_back: dict[str, list], losses: list[float]) -> None:
    print("| questions | n | BM25 top-1 % | stage 1 (shipped) top-1 % | both stages top-1 % | top-1 only stage 1 / "
          "only both, McNemar | stage 1 top-3 % | both top-3 % | stage 1 s/question | both s/question |")
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    results = {}
    for name, held in held_back.items():
        held = held[: args.held_back] if args.held_back else held
        one = evaluate_reranker(first, knowledge, held, progress=False)
        two = evaluate_reranker(both, knowledge, held, progress=False)
        n = two.questions
        top1 = [{r["question_id"]: r["rerank_rank"] == 1 for r in run.per_question} for run in (one, two)]
        paired = compare_paired(*top1)
        print(f"| {name} | {n} | {rate(two.bm25[1], n)} | {rate(one.reranker[1], n)} | {rate(two.reranker[1], n)} | "
              f"{paired.only_first} / {paired.only_second}, p = {paired.p_value:.3g} | {rate(one.reranker[3], n)} | "
              f"{rate(two.reranker[3], n)} | {one.seconds_per_question:.3f} | {two.seconds_per_question:.3f} |", flush=True)
        results[name] = {"n": n, "bm25": two.bm25, "stage1": one.reranker, "both": two.reranker,
                         "only_stage1": paired.only_first, "only_both": paired.only_second, "p": paired.p_value}
    (args.out / ("evaluation.json" if not args.load else "evaluation-again.json")).write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                          "losses": losses, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Train the shipped reranker (demo/reranker) from ../shared data and measure it against BM25.

    python benchmarks/train_default_reranker.py [--out demo/reranker] [--steps 400] [--evaluate-only]

Training pairs: StrategyQA train questions outside the 300 held out (seed 0) with their FLAN
rationales, and OpenBookQA train questions with their gold facts as rationales; knowledge: the
app's default knowledge base (24,481 passages). The held-back measure (docs/training.md,
kard/reranker/evaluation.py): the passage BM25 finds with the rationale, found from the question alone
among BM25's 100 candidates, top-1 and top-3, for BM25, the untrained blend and the trained reranker,
on the 300 held-out StrategyQA questions, OpenBookQA dev (500) and the 51 demo questions (their
recorded rationales). Prints a markdown table with Wilson 95% intervals; the passage vectors of the
whole knowledge base are saved with the reranker, so the app never encodes them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: kard is beside

from kard.teacher import recorded as importers  # noqa: E402
from kard.cli.train import rationale_pairs  # noqa: E402
from kard.config import SHIPPED_RERANKER  # noqa: E402
from kard.datasets import load_demo_questions, load_questions  # noqa: E402
from kard.reranker.dense import DenseReranker, DenseRerankerConfig, dense_items, train_dense_reranker  # noqa: E402
from kard.distill import rationales_from_questions, split_questions  # noqa: E402
from kard.knowledge import KnowledgeBase  # noqa: E402
from kard.metrics import compare_paired, wilson_interval  # noqa: E402
from kard.reranker.evaluation import evaluate_reranker  # noqa: E402


def pairs(data: Path, strategyqa_copies: int = 1) -> tuple[list, dict[str, list]]:
    """(training pairs, {held-back set: pairs}); the StrategyQA pairs `strategyqa_copies` times."""
    strategyqa = load_questions(data / "strategyqa/train.json")
    flan = importers.import_flan_strategyqa(data / "strategyqa/flan_cot_train.tsv", strategyqa)
    sqa_train, sqa_test = split_questions(strategyqa, 300, seed=0)
    obqa_train = load_questions(data / "openbookqa/train_complete.jsonl")
    obqa_dev = load_questions(data / "openbookqa/dev_complete.jsonl")
    demo = load_demo_questions()
    facts = importers.rationales_from_facts
    train = strategyqa_copies * rationale_pairs(sqa_train, flan) + rationale_pairs(obqa_train, facts(obqa_train, "facts"))
    held_back = {"StrategyQA held-out": rationale_pairs(sqa_test, flan),
                 "OpenBookQA dev": rationale_pairs(obqa_dev, facts(obqa_dev, "facts")),
                 "demo questions": rationale_pairs(demo, rationales_from_questions(demo))}
    return train, held_back


def rate(value: float, n: int) -> str:
    low, high = wilson_interval(round(value * n), n)
    return f"{100 * value:.1f} ({100 * low:.0f}-{100 * high:.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=SHIPPED_RERANKER)
    parser.add_argument("--steps", type=int, default=DenseRerankerConfig.steps)
    parser.add_argument("--tau1-end", type=float, default=DenseRerankerConfig.tau1_end,
                        help="temperature of BM25-given-the-rationale at the end of its annealing (lower: sharper target)")
    parser.add_argument("--vectors", type=Path, default=None, help="passage vectors saved before (a cache)")
    parser.add_argument("--evaluate-only", action="store_true", help="measure the reranker saved in --out")
    parser.add_argument("--rationale-candidates", type=int, default=0,
                        help="add the rationale's top-K passages the question's 100 candidates miss (default none)")
    parser.add_argument("--strategyqa-copies", type=int, default=1,
                        help="each StrategyQA training pair this many times (its share of the steps; default 1)")
    args = parser.parse_args()
    knowledge = KnowledgeBase.open()
    train, held_back = pairs(args.data, args.strategyqa_copies)
    if args.evaluate_only:
        return evaluate(DenseReranker.load(args.out), knowledge, held_back, args.out)
    started = time.perf_counter()
    items = dense_items(train, knowledge, rationale_candidates=args.rationale_candidates)
    reranker = DenseReranker.fresh()
    if args.vectors:
        reranker.vectors.load(args.vectors)
    reranker.vectors.of(list(knowledge.passages))  # the whole knowledge base, saved with the reranker
    vectors_s = time.perf_counter() - started
    config = replace(DenseRerankerConfig(), steps=args.steps, tau1_end=args.tau1_end)
    losses = train_dense_reranker(reranker, items, knowledge, config)
    train_s = time.perf_counter() - started - vectors_s
    reranker.save(args.out, with_vectors=True)
    print(f"{len(items)} training pairs; passage vectors {vectors_s:.0f} s; training {config.steps} steps "
          f"{train_s:.0f} s; loss {losses[0]:.3f} -> {sum(losses[-20:]) / 20:.3f}; saved to {args.out}\n")
    evaluate(reranker, knowledge, held_back, args.out)


def evaluate(reranker: DenseReranker, knowledge: KnowledgeBase, held_back: dict[str, list], out: Path) -> None:
    untrained = DenseReranker.fresh()
    untrained.vectors = reranker.vectors
    print("| questions | n | target among 100 % | BM25 top-1 % | untrained blend top-1 % | reranker top-1 % | "
          "top-1 only BM25 / only reranker, McNemar | BM25 top-3 % | reranker top-3 % | reranker s/question |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    results = {}
    for name, held in held_back.items():
        before = evaluate_reranker(untrained, knowledge, held, progress=False)
        after = evaluate_reranker(reranker, knowledge, held, progress=False)
        n = after.questions
        top1 = {key: {r["question_id"]: r[key] == 1 for r in after.per_question} for key in ("bm25_rank", "rerank_rank")}
        paired = compare_paired(top1["bm25_rank"], top1["rerank_rank"])
        only_bm25, only_reranker = paired.only_first, paired.only_second
        print(f"| {name} | {n} | {100 * after.reachable:.1f} | {rate(after.bm25[1], n)} | {rate(before.reranker[1], n)} | "
              f"{rate(after.reranker[1], n)} | {only_bm25} / {only_reranker}, p = {paired.p_value:.3g} | "
              f"{rate(after.bm25[3], n)} | {rate(after.reranker[3], n)} | {after.seconds_per_question:.3f} |")
        results[name] = {"n": n, "bm25": after.bm25, "untrained": before.reranker, "reranker": after.reranker,
                         "top1_only_bm25": only_bm25, "top1_only_reranker": only_reranker}
    (out / "evaluation.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

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

The reranker is trained and measured in a folder beside --out (.<name>.training) and moved into --out only
when complete: an interrupted run leaves --out (by default the shipped demo/reranker) as it was. Encoding
the 24,481 passages takes about 5 minutes on 2 CPU cores; the vectors are cached (--vectors, default
runs/reranker-passage-vectors.npz) and a rerun reuses them (a passage whose text changed is encoded again).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from anywhere: kard is beside

from kard.teacher import recorded as importers  # noqa: E402
from kard.cli.train import rationale_pairs  # noqa: E402
from kard.config import SHIPPED_RERANKER  # noqa: E402
from kard.datasets import load_demo_questions, load_questions  # noqa: E402
from kard.errors import KardError  # noqa: E402
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


DATA_FILES = ("strategyqa/train.json", "strategyqa/flan_cot_train.tsv", "openbookqa/train_complete.jsonl",
              "openbookqa/dev_complete.jsonl")
VECTORS_CACHE = ROOT / "runs" / "reranker-passage-vectors.npz"


def check_data(data: Path) -> None:
    for name in DATA_FILES:
        if not (data / name).is_file():
            raise SystemExit(f"error: {data / name} does not exist (the datasets). Fix: put the shared datasets at "
                             "../shared/data beside the checkout, or pass --data FOLDER")


def final_loss(losses: list[float], last: int = 20) -> float:
    """The mean of the last `last` losses (all of them when fewer steps ran), as kard_reranker.json records it."""
    tail = losses[-last:]
    return sum(tail) / len(tail)


def training_folder(out: Path) -> Path:
    """Where a run trains before it replaces --out: beside it, so the move is a rename on the same disk."""
    return out.with_name(f".{out.name}.training")


def replace_folder(new: Path, out: Path) -> None:
    """Move a complete `new` into `out`: the old folder is set aside first and removed only after the move."""
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    new.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def passage_vectors(reranker: DenseReranker, knowledge: KnowledgeBase, cache: Path) -> None:
    """Every passage's vector: from the cache where its text is unchanged, the rest encoded (said up front)
    and the cache rewritten with them."""
    if cache.is_file():
        reranker.vectors.load(cache)
    passages = list(knowledge.passages)
    missing = reranker.vectors.missing(passages)
    if not missing:
        print(f"passage vectors: all {len(passages):,} from {cache}", flush=True)
        return
    print(f"passage vectors: encoding {missing:,} of {len(passages):,} passages (all 24,481: about 5 minutes on "
          f"2 CPU cores); cached in {cache} for reruns", flush=True)
    reranker.vectors.of(passages)
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_name(cache.stem + ".partial.npz")
    reranker.vectors.save(partial).replace(cache)


def rate(value: float, n: int) -> str:
    low, high = wilson_interval(round(value * n), n)
    return f"{100 * value:.1f} ({100 * low:.0f}-{100 * high:.0f})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                        help="the shared datasets (default ../shared/data beside the checkout)")
    parser.add_argument("--out", type=Path, default=SHIPPED_RERANKER,
                        help="replaced only when training and measuring are complete (default demo/reranker)")
    parser.add_argument("--steps", type=int, default=DenseRerankerConfig.steps)
    parser.add_argument("--tau1-end", type=float, default=DenseRerankerConfig.tau1_end,
                        help="temperature of BM25-given-the-rationale at the end of its annealing (lower: sharper target)")
    parser.add_argument("--vectors", type=Path, default=VECTORS_CACHE,
                        help="the passage vectors' cache, read and rewritten "
                             "(default runs/reranker-passage-vectors.npz)")
    parser.add_argument("--evaluate-only", action="store_true", help="measure the reranker saved in --out")
    parser.add_argument("--rationale-candidates", type=int, default=0,
                        help="add the rationale's top-K passages the question's 100 candidates miss (default none)")
    parser.add_argument("--strategyqa-copies", type=int, default=1,
                        help="each StrategyQA training pair this many times (its share of the steps; default 1)")
    args = parser.parse_args(argv)
    check_data(args.data)
    try:
        run(args)
    except KardError as error:
        raise SystemExit(f"error: {error}") from None


def run(args: argparse.Namespace) -> None:
    knowledge = KnowledgeBase.open()
    train, held_back = pairs(args.data, args.strategyqa_copies)
    if args.evaluate_only:
        return evaluate(DenseReranker.load(args.out), knowledge, held_back, args.out)
    building = training_folder(args.out)
    shutil.rmtree(building, ignore_errors=True)  # what an interrupted run left
    print(f"training in {building}; {args.out} is replaced only when training and measuring are complete "
          "(an interrupted run leaves it as it was)", flush=True)
    started = time.perf_counter()
    items = dense_items(train, knowledge, rationale_candidates=args.rationale_candidates)
    reranker = DenseReranker.fresh()
    passage_vectors(reranker, knowledge, args.vectors)  # the whole knowledge base, saved with the reranker
    vectors_s = time.perf_counter() - started
    config = replace(DenseRerankerConfig(), steps=args.steps, tau1_end=args.tau1_end)
    losses = train_dense_reranker(reranker, items, knowledge, config)
    train_s = time.perf_counter() - started - vectors_s
    reranker.save(building, with_vectors=True)
    print(f"{len(items)} training pairs; passage vectors {vectors_s:.0f} s; training {config.steps} steps "
          f"{train_s:.0f} s; loss {losses[0]:.3f} -> {final_loss(losses):.3f} (mean of the last "
          f"{min(20, len(losses))})\n")
    evaluate(reranker, knowledge, held_back, building)
    replace_folder(building, args.out)
    print(f"\nsaved to {args.out} (the reranker and evaluation.json together)")


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

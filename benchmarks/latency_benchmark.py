"""End-to-end answer latency of the KARD pipeline on this machine: fp32 vs bf16, side by side.

Load the student once per dtype (from the converted cache), answer one warm-up question each, then
answer the demo questions, each by every dtype in turn (fair on a shared, busy machine): demo
knowledge base, BM25 top-100, top-2 passages, greedy, and a rationale forced to exactly --tokens new
tokens (EOS suppressed with min_new_tokens, so every run decodes the same length). Reports p50 (and p90) of retrieval, time to first token, total, tokens/s.

    nice -n 10 python benchmarks/latency_benchmark.py --limit 20 --out /tmp/latency.json

Run `python -m kard prepare-models` first, or the first load includes the one-time GGUF conversion.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kard.config import DEFAULT_STUDENT, GenerationConfig, RetrievalConfig  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load_pipeline(dtype: str, args: argparse.Namespace) -> tuple[object, float]:
    from kard.knowledge import KnowledgeBase
    from kard.pipeline import Pipeline
    from kard.student import Student

    started = time.perf_counter()
    student = Student.load(args.student, dtype=dtype)
    load_s = time.perf_counter() - started
    student.model.generation_config.min_new_tokens = args.tokens  # every answer decodes exactly --tokens tokens
    generation = replace(GenerationConfig(), max_new_tokens=args.tokens)
    return Pipeline(KnowledgeBase.demo(), student, retrieval=RetrievalConfig(query=args.query), generation=generation), load_s


def measure(pipeline: object, question: object) -> dict:
    p = pipeline.answer(question)
    t = p.timings
    return {"id": question.id, "retrieval_ms": t.retrieval_s * 1000, "first_token_s": t.first_token_s,
            "ttft_s": t.retrieval_s + (t.first_token_s or 0.0), "total_s": t.total_s, "tokens_in": p.tokens_in,
            "tokens_out": p.tokens_out, "tokens_per_s": p.tokens_out / t.generation_s, "correct": p.is_correct}


def summarize(dtype: str, load_s: float, rows: list[dict]) -> dict:
    summary = {"dtype": dtype, "load_s": load_s, "questions": len(rows), "rows": rows}
    for key in ("retrieval_ms", "first_token_s", "ttft_s", "total_s", "tokens_per_s", "tokens_in"):
        values = [row[key] for row in rows]
        summary[f"p50_{key}"] = statistics.median(values)
        summary[f"p90_{key}"] = percentile(values, 0.9)
    return summary


def run(questions: list, args: argparse.Namespace) -> list[dict]:
    """Each question is answered by every dtype in turn, so a busy shared machine slows them alike."""
    pipelines = {dtype: load_pipeline(dtype, args) for dtype in args.dtypes}
    for pipeline, _ in pipelines.values():
        pipeline.answer(questions[0])  # warm-up: first-call allocations and kernels
    rows: dict[str, list[dict]] = {dtype: [] for dtype in args.dtypes}
    for question in questions:
        for dtype, (pipeline, _) in pipelines.items():
            row = measure(pipeline, question)
            rows[dtype].append(row)
            print(f"  {dtype} {question.id}: total {row['total_s']:.2f} s, first token {row['first_token_s']:.2f} s, "
                  f"{row['tokens_out']} tokens, load avg {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
    return [summarize(dtype, pipelines[dtype][1], rows[dtype]) for dtype in args.dtypes]


def table(results: list[dict], tokens: int) -> str:
    lines = [
        f"| dtype | questions | load (s) | retrieval p50 (ms) | first token p50 (s) | retrieval + first token p50 (s) "
        f"| total p50 for {tokens} tokens (s) | total p90 (s) | tokens/s p50 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['dtype']} | {r['questions']} | {r['load_s']:.1f} | {r['p50_retrieval_ms']:.2f} | "
            f"{r['p50_first_token_s']:.2f} | {r['p50_ttft_s']:.2f} | {r['p50_total_s']:.2f} | "
            f"{r['p90_total_s']:.2f} | {r['p50_tokens_per_s']:.1f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", default=DEFAULT_STUDENT)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per answer (default %(default)s)")
    parser.add_argument("--limit", type=int, default=None, help="first N demo questions (default: all)")
    parser.add_argument("--query", default=RetrievalConfig.query, choices=("question", "question+options"))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=None, help="write all rows and summaries as JSON")
    args = parser.parse_args()

    from transformers.utils import logging as hf_logging

    import torch
    from kard.datasets import load_demo_questions

    hf_logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    questions = load_demo_questions()[: args.limit]
    load_before = os.getloadavg()
    results = run(questions, args)
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "torch_threads": torch.get_num_threads(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()}
    print(table(results, args.tokens))
    print(f"\nmachine: {machine}")
    if args.out:
        args.out.write_text(json.dumps({"machine": machine, "tokens": args.tokens, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

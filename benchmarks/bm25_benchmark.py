"""BM25 knowledge-base benchmark: build time, memory and top-100 query latency for both backends.

Run by hand, not in CI (it takes minutes and a few GB at 1M passages):

    nice -n 10 python benchmarks/bm25_benchmark.py --write-readme

Each case runs in its own child process. Memory: the peak resident size sampled while the index is
built, and that peak minus the resident size just before (passages already loaded). Cases:
synthetic passages at 100k and 1M (rank_bm25 only up to --rank-bm25-max passages, 100k by default, on a few queries),
and the real StrategyQA paragraphs (../shared/data) with real StrategyQA questions as queries.

Synthetic text: a 200,000-word vocabulary with Zipf frequencies (s = 1.0, as English). The 124 most
frequent ranks are the tokenizer's own stopwords, as in English where the most frequent words are
function words (they make up ~42% of running text here); the other words are "t<rank>". A passage
is 20-80 words (mean 50, like the StrategyQA paragraphs). A query is 8 consecutive words of a random
passage (about 5 searchable words once stopwords are dropped).

Latency is `KnowledgeBase.search(query, 100)` one query at a time (tokenising, scoring, top-100,
building Hits), after 3 warm-up queries; "batched" is `search_many` over all queries divided by
their count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kard.config import RetrievalConfig  # noqa: E402
from kard.knowledge import STOPWORDS, KnowledgeBase, tokenize  # noqa: E402
from kard.records import Passage  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "strategyqa"
README = ROOT / "benchmarks" / "README.md"
START, END = "<!-- bm25-results:start -->", "<!-- bm25-results:end -->"
VOCABULARY = 200_000
ZIPF_S = 1.0


def synthetic_passages(count: int, seed: int = 0) -> list[Passage]:
    rng = np.random.default_rng(seed)
    words = np.array(sorted(STOPWORDS) + [f"t{rank}" for rank in range(VOCABULARY - len(STOPWORDS))], dtype=object)
    weights = 1.0 / np.arange(1, VOCABULARY + 1) ** ZIPF_S
    lengths = rng.integers(20, 81, size=count)
    drawn = rng.choice(VOCABULARY, size=int(lengths.sum()), p=weights / weights.sum())
    ends = np.cumsum(lengths)
    return [Passage(id=f"s{i}", title="", text=" ".join(words[drawn[end - n: end]]))
            for i, (n, end) in enumerate(zip(lengths, ends))]


def synthetic_queries(passages: list[Passage], count: int, seed: int = 1) -> list[str]:
    rng = np.random.default_rng(seed)
    queries = []
    for index in rng.integers(0, len(passages), size=count):
        words = passages[index].text.split()
        start = int(rng.integers(0, max(len(words) - 8, 1)))
        queries.append(" ".join(words[start: start + 8]))
    return queries


def strategyqa_case(count: int) -> tuple[list[Passage], list[str]]:
    from kard.datasets import load_passages, load_strategyqa

    passages = load_passages(SHARED / "wiki_paragraphs.jsonl")
    questions = load_strategyqa(SHARED / "train.json")
    return passages, [q.text for q in questions[:count]]


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRss:
    """Highest resident memory seen while the block runs (sampled every 5 ms in a thread)."""

    def __enter__(self) -> "PeakRss":
        self.peak, self._done = rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._done.wait(0.005):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def run_case(backend: str, corpus: str, queries_count: int) -> dict:
    """One measurement, in this process. corpus: a passage count or 'strategyqa'."""
    if corpus == "strategyqa":
        passages, queries = strategyqa_case(queries_count)
    else:
        passages = synthetic_passages(int(corpus))
        queries = synthetic_queries(passages, queries_count)
    before = rss_mb()
    with PeakRss() as peak_rss:
        started, started_cpu = time.perf_counter(), time.process_time()
        kb = KnowledgeBase.build(passages, RetrievalConfig(backend=backend))
        build_s, build_cpu_s = time.perf_counter() - started, time.process_time() - started_cpu
    peak = peak_rss.peak
    for query in queries[:3]:
        kb.search(query, 100)
    wall, cpu = timed(lambda query: kb.search(query, 100), queries)
    started, started_cpu = time.perf_counter(), time.process_time()
    kb.search_many(queries, 100)
    batched = (time.perf_counter() - started) / len(queries)
    batched_cpu = (time.process_time() - started_cpu) / len(queries)
    row = {"backend": backend, "corpus": corpus, "passages": len(passages), "queries": len(queries),
           "build_s": build_s, "build_cpu_s": build_cpu_s, "rss_before_mb": before, "peak_rss_mb": peak, "build_mem_mb": peak - before,
           "p50_ms": pct(wall, 50), "p95_ms": pct(wall, 95), "cpu_p50_ms": pct(cpu, 50),
           "batched_ms": batched * 1e3, "batched_cpu_ms": batched_cpu * 1e3, "load_avg": os.getloadavg()[0]}
    if backend == "bm25s":  # the same queries through bm25s's own retrieve(), for comparison
        library = kb._index.top_k_library  # noqa: SLF001 (benchmark only)
        wall, cpu = timed(lambda query: library([tokenize(query)], 100), queries)
        row.update(library_p50_ms=pct(wall, 50), library_cpu_p50_ms=pct(cpu, 50))
    return row


def timed(search, queries: list[str]) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds of each call (CPU time is less disturbed by other users' jobs)."""
    wall, cpu = [], []
    for query in queries:
        started, started_cpu = time.perf_counter(), time.process_time()
        search(query)
        cpu.append(time.process_time() - started_cpu)
        wall.append(time.perf_counter() - started)
    return wall, cpu


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q) * 1e3)


def in_child(backend: str, corpus: str, queries: int) -> dict:
    command = [sys.executable, __file__, "--case", backend, corpus, str(queries)]
    print(f"running {backend} on {corpus} ({queries} queries) ...", file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"case failed: {' '.join(command)}\n{done.stderr[-3000:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {row}", file=sys.stderr, flush=True)
    return row


def table(rows: list[dict]) -> str:
    lines = ["| corpus | passages | backend | build (s) | build CPU (s) | peak RSS in build (MB) | build memory (MB) | queries | "
             "top-100 p50 (ms) | p95 (ms) | CPU p50 (ms) | batched mean / CPU (ms/query) | bm25s retrieve() p50 / CPU p50 (ms) |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        name = "StrategyQA paragraphs" if r["corpus"] == "strategyqa" else "synthetic Zipf"
        library = f"{r['library_p50_ms']:.2f} / {r['library_cpu_p50_ms']:.2f}" if "library_p50_ms" in r else "-"
        lines.append(f"| {name} | {r['passages']:,} | {r['backend']} | {r['build_s']:.1f} | {r['build_cpu_s']:.1f} | {r['peak_rss_mb']:,.0f} | "
                     f"{r['build_mem_mb']:,.0f} | {r['queries']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | "
                     f"{r['cpu_p50_ms']:.2f} | {r['batched_ms']:.2f} / {r['batched_cpu_ms']:.2f} | {library} |")
    return "\n".join(lines)


def ratios(rows: list[dict]) -> str:
    out = []
    for corpus in dict.fromkeys(r["corpus"] for r in rows):
        pair = {r["backend"]: r for r in rows if r["corpus"] == corpus}
        if {"bm25s", "rank_bm25"} <= pair.keys():
            fast, slow = pair["bm25s"], pair["rank_bm25"]
            out.append(f"- {fast['passages']:,} passages: rank_bm25 / bm25s = {slow['p50_ms'] / fast['p50_ms']:.0f}x "
                       f"query p50 ({slow['cpu_p50_ms'] / fast['cpu_p50_ms']:.0f}x in CPU time), "
                       f"{slow['build_cpu_s'] / fast['build_cpu_s']:.1f}x build CPU time, "
                       f"{slow['build_mem_mb'] / max(fast['build_mem_mb'], 1):.1f}x build memory")
    return "\n".join(out)


def environment() -> str:
    import bm25s
    import rank_bm25  # noqa: F401

    return (f"Python {platform.python_version()}, numpy {np.__version__}, bm25s {bm25s.__version__} "
            f"(numpy backend), rank-bm25 0.2.2, {os.cpu_count()} CPU cores ({platform.machine()}), "
            f"{time.strftime('%Y-%m-%d')}")


def write_readme(section: str) -> None:
    text = README.read_text(encoding="utf-8") if README.exists() else "# Benchmarks\n"
    block = f"{START}\n{section}\n{END}"
    if START in text and END in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    README.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", nargs=3, metavar=("BACKEND", "CORPUS", "QUERIES"), help=argparse.SUPPRESS)
    parser.add_argument("--queries", type=int, default=200, help="queries per bm25s case (default %(default)s)")
    parser.add_argument("--slow-queries", type=int, default=20,
                        help="queries per rank_bm25 case: it scores every passage in Python (default %(default)s)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--rank-bm25-max", type=int, default=100_000,
                        help="largest synthetic size for rank_bm25 (default %(default)s)")
    parser.add_argument("--write-readme", action="store_true", help=f"write the table into {README.relative_to(ROOT)}")
    args = parser.parse_args()
    if args.case:
        backend, corpus, queries = args.case
        print(json.dumps(run_case(backend, corpus, int(queries))))
        return

    rows = []
    if SHARED.is_dir():
        rows += [in_child("bm25s", "strategyqa", args.queries), in_child("rank_bm25", "strategyqa", args.slow_queries)]
    for size in args.sizes:
        rows.append(in_child("bm25s", str(size), args.queries))
        if size <= args.rank_bm25_max:
            rows.append(in_child("rank_bm25", str(size), args.slow_queries))
    loads = ", ".join(f"{r['load_avg']:.1f}" for r in rows)
    command = "nice -n 10 python benchmarks/bm25_benchmark.py " + " ".join(sys.argv[1:])
    section = "\n\n".join([
        "## BM25 knowledge base (`benchmarks/bm25_benchmark.py`)",
        f"Command: `{command.strip()}`  \n{environment()}. All rows come from one run, side by side. "
        f"The machine was shared with other jobs (1-minute load average at each row's end: {loads}), so "
        "wall-clock times are inflated; the CPU-time columns are the steadier measure.",
        table(rows),
        "Ratios measured in the same run:\n" + ratios(rows),
    ])
    print(section)
    if args.write_readme:
        write_readme(section)


if __name__ == "__main__":
    main()

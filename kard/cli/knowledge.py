"""`python -m kard index` and `python -m kard search`: build a BM25 knowledge base, query it."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from kard.cli.arguments import make_out_folder, non_negative_float, positive_int, probability
from kard.config import RetrievalConfig
from kard.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    index = subparsers.add_parser("index", help="build a BM25 knowledge base from a passages file",
                                  description="Index passages (JSONL {id, title, text}, or .txt one fact a line).")
    index.add_argument("--passages", required=True, type=Path, help="passages .jsonl or .txt file")
    index.add_argument("--out", required=True, type=Path, help="folder to write the index into")
    index.add_argument("--backend", choices=("bm25s", "rank_bm25"), default=RetrievalConfig.backend)
    index.add_argument("--k1", type=non_negative_float, default=RetrievalConfig.k1, help="BM25 k1 (default %(default)s)")
    index.add_argument("--b", type=probability, default=RetrievalConfig.b, help="BM25 b, from 0 to 1 (default %(default)s)")
    index.add_argument("--no-progress", action="store_true", help="hide progress bars")
    index.set_defaults(func=run_index)

    search = subparsers.add_parser("search", help="search a knowledge base built with `index`")
    search.add_argument("query", help="the question or words to search for")
    search.add_argument("--index", required=True, type=Path, help="folder written by `python -m kard index`")
    search.add_argument("-k", type=positive_int, default=10, help="number of hits (default %(default)s)")
    search.add_argument("--json", action="store_true", help="print hits as JSON lines")
    search.add_argument("--mmap", action="store_true", help="memory-map a bm25s index instead of reading it")
    search.set_defaults(func=run_search)


def run_index(args: argparse.Namespace) -> int:
    from kard.datasets import load_passages
    from kard.knowledge import KnowledgeBase

    started = time.perf_counter()
    passages = load_passages(args.passages)
    make_out_folder(args.out)  # before indexing, which can take minutes
    config = RetrievalConfig(backend=args.backend, k1=args.k1, b=args.b)
    knowledge = KnowledgeBase.build(passages, config, show_progress=not args.no_progress)
    try:
        knowledge.save(args.out)
    except OSError as error:
        raise ConfigError(f"--out {args.out}: could not write the index ({error.strerror or error}). Fix: free "
                          "some disk space, or pass a folder in a writable place") from None
    print(f"indexed {len(knowledge)} passages with {args.backend} (k1={args.k1}, b={args.b}) "
          f"into {args.out} in {time.perf_counter() - started:.1f} s")
    return 0


def run_search(args: argparse.Namespace) -> int:
    from kard.knowledge import KnowledgeBase

    knowledge = KnowledgeBase.load(args.index, mmap=args.mmap)
    hits = knowledge.search(args.query, args.k)
    for hit in hits:
        if args.json:
            print(json.dumps({"rank": hit.bm25_rank, "score": round(hit.bm25_score, 4), "id": hit.passage.id,
                              "title": hit.passage.title, "text": hit.passage.text}, ensure_ascii=False))
        else:
            print(f"{hit.bm25_rank:>3}  {hit.bm25_score:7.3f}  {hit.passage.id}  {_shorten(hit.passage.as_knowledge())}")
    if not hits and not args.json:
        print("no passage shares a word with the query")
    return 0


def _shorten(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"

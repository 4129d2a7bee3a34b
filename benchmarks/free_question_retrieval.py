"""Retrieval quality, measured by a reader: top-2 BM25 passages for the demo and free questions.

    nice -n 19 python benchmarks/free_question_retrieval.py

For two knowledge bases, "demo" (demo/passages.jsonl alone, 344 passages: before) and "default"
(`KnowledgeBase.open()`: the demo passages plus demo/knowledge/*.jsonl, 24,481 passages: after),
this retrieves the top-2 BM25 passages (what the student reads, RetrievalConfig.top_k = 2, no
reranker), and as a third list "reranked" the top-2 the app gives by default: the shipped reranker
(demo/reranker) over BM25's 100 candidates from the default knowledge base, for

- the 51 demo questions (demo/questions.jsonl), queried as `retrieval_query(question,
  "question+options")`, the default query; their gold passages are the `passage_ids` field;
- the free questions (demo/free_questions.jsonl): questions a person would type into the demo,
  without options, queried with the question text alone.

It writes every top-2 list (id, title, first 150 characters) to a markdown file (--out) for a
reader to judge. Reader judgements live in demo/free_questions_judged.jsonl, one line per
question and knowledge base: {"id", "kb": "demo"|"default", "top2": [passage ids], "relevant":
true|false, "note"}. "relevant" means at least one of the two passages states a fact that helps
answer the question. When the file is there the script prints the shares, and lists every
question whose current top-2 differs from the judged one (or that has no judgement): those must
be judged again. `--template` rewrites the judgements file with a "relevant": null line for each
of them (fresh judgements kept), to fill in.

Exit status: 0 when every question is judged on its current top-2, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kard.config import DEMO_PASSAGES, DEMO_QUESTIONS  # noqa: E402

log = logging.getLogger("free_question_retrieval")

FREE_QUESTIONS = ROOT / "demo" / "free_questions.jsonl"
JUDGEMENTS = ROOT / "demo" / "free_questions_judged.jsonl"
REPORT = ROOT / "docs" / "retrieval_top2.md"
KB_NAMES = ("demo", "default", "reranked")
KINDS = ("yesno", "open")
TOPICS = ("medical", "commonsense", "science")
TOP_K = 2
SNIPPET = 150


@dataclass(frozen=True)
class Query:
    id: str
    set: str  # "demo" or "free"
    group: str  # demo: medical/yesno/science; free: medical/commonsense/science
    question: str
    query: str  # the BM25 query
    answer: str
    gold: tuple[str, ...] = ()  # gold passage ids (demo questions only)
    asked: object = None  # the demo Question itself, which the reranker reads with its options


# ---------------------------------------------------------------- inputs


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}:{number}: malformed JSON ({error.msg})") from None
    return rows


def free_question_problems(rows: Sequence[Mapping]) -> list[str]:
    """What is wrong with the free questions file (empty when it is well-formed)."""
    problems, seen = [], set()
    for number, row in enumerate(rows, start=1):
        where = f"line {number} ({row.get('id', '?')})"
        for field in ("id", "topic", "kind", "question", "answer"):
            if not isinstance(row.get(field), str) or not row[field].strip():
                problems.append(f"{where}: {field!r} must be a non-empty string")
        if row.get("id") in seen:
            problems.append(f"{where}: duplicate id")
        seen.add(row.get("id"))
        if row.get("kind") not in KINDS:
            problems.append(f"{where}: kind must be one of {KINDS}")
        if row.get("topic") not in TOPICS:
            problems.append(f"{where}: topic must be one of {TOPICS}")
        if row.get("kind") == "yesno" and row.get("answer") not in ("yes", "no"):
            problems.append(f"{where}: a yesno answer must be 'yes' or 'no'")
        if "options" in row:
            problems.append(f"{where}: free questions have no options")
    return problems


def demo_queries(path: Path = DEMO_QUESTIONS) -> list[Query]:
    from kard.datasets import load_demo_questions
    from kard.pipeline import retrieval_query

    gold = {row["id"]: tuple(row.get("passage_ids") or ()) for row in read_jsonl(path)}
    return [Query(q.id, "demo", q.dataset.removeprefix("demo-"), q.text,
                  retrieval_query(q, "question+options"), f"{q.answer}: {q.answer_text}", gold[q.id], q)
            for q in load_demo_questions(path)]


def free_queries(path: Path = FREE_QUESTIONS) -> list[Query]:
    rows = read_jsonl(path)
    problems = free_question_problems(rows)
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))
    return [Query(row["id"], "free", row["topic"], row["question"], row["question"], row["answer"])
            for row in rows]


class Reranked:
    """A knowledge base seen through a reranker, as the app retrieves: BM25's candidates, reranked."""

    def __init__(self, knowledge: object, reranker: object, candidates: int):
        self.knowledge, self.reranker, self.candidates = knowledge, reranker, candidates

    def __len__(self) -> int:
        return len(self.knowledge)

    def top(self, query: Query, k: int) -> list:
        hits = self.knowledge.search(query.query, self.candidates)
        return self.reranker.rerank(query.asked or query.query, hits, k) if hits else []


def knowledge_bases() -> dict[str, object]:
    """"demo": the demo passages alone (before); "default": `KnowledgeBase.open()` (after);
    "reranked": the default one through the shipped reranker (the app's default)."""
    from kard.config import DEFAULT_RERANKER, RetrievalConfig
    from kard.knowledge import KnowledgeBase
    from kard.reranker.encoder import load_reranker

    default = KnowledgeBase.open()
    return {"demo": KnowledgeBase.open(DEMO_PASSAGES), "default": default,
            "reranked": Reranked(default, load_reranker(DEFAULT_RERANKER), RetrievalConfig.candidates)}


def top2(knowledge: object, queries: Sequence[Query]) -> dict[str, list]:
    """Question id -> its top-2 hits."""
    if isinstance(knowledge, Reranked):
        return {q.id: knowledge.top(q, TOP_K) for q in queries}
    hits = knowledge.search_many([q.query for q in queries], k=TOP_K)
    return {q.id: found for q, found in zip(queries, hits)}


def current_top2(queries: Sequence[Query],
                 bases: Mapping[str, object] | None = None) -> dict[tuple[str, str], list]:
    """(question id, kb name) -> top-2 hits, for every knowledge base."""
    bases = bases if bases is not None else knowledge_bases()
    return {(qid, name): found
            for name, knowledge in bases.items() for qid, found in top2(knowledge, queries).items()}


# ---------------------------------------------------------------- judgements


def load_judgements(path: Path = JUDGEMENTS) -> dict[tuple[str, str], dict]:
    """(question id, kb) -> judgement; a later line for the same pair replaces an earlier one."""
    if not path.is_file():
        return {}
    judged = {}
    for row in read_jsonl(path):
        if row.get("kb") not in KB_NAMES:
            raise ValueError(f"{path}: {row.get('id')}: kb must be one of {KB_NAMES}")
        judged[(row["id"], row["kb"])] = row
    return judged


def to_redo(judged: Mapping[tuple[str, str], dict], current: Mapping[tuple[str, str], list]) -> list[str]:
    """Why each (question, kb) needs a (new) judgement: none yet, undecided, or its top-2 changed."""
    reasons = []
    for (qid, kb), hits in current.items():
        ids = [hit.passage.id for hit in hits]
        row = judged.get((qid, kb))
        if row is None:
            reasons.append(f"{qid} [{kb}]: not judged")
        elif list(row.get("top2") or []) != ids:
            reasons.append(f"{qid} [{kb}]: judged top-2 {row.get('top2')} but retrieval now returns {ids}")
        elif not isinstance(row.get("relevant"), bool):
            reasons.append(f"{qid} [{kb}]: 'relevant' is not true/false")
    return reasons


# ---------------------------------------------------------------- shares


def shares(queries: Sequence[Query], current: Mapping[tuple[str, str], list],
           judged: Mapping[tuple[str, str], dict]) -> list[tuple[str, str, dict[str, str]]]:
    """Rows (question set, measure, {kb: "n/N (p%)"})."""

    def fraction(hits: int, total: int) -> str:
        return f"{hits}/{total} ({100 * hits / total:.0f}%)" if total else "-"

    def reader(qs: Sequence[Query], kb: str) -> str:
        rows = [judged.get((q.id, kb)) for q in qs]
        ids = [[hit.passage.id for hit in current[(q.id, kb)]] for q in qs]
        if any(row is None or row.get("top2") != found or not isinstance(row.get("relevant"), bool)
               for row, found in zip(rows, ids)):
            return "not judged"
        return fraction(sum(row["relevant"] for row in rows), len(qs))

    table = []
    demo = [q for q in queries if q.set == "demo"]
    free = [q for q in queries if q.set == "free"]
    if demo:
        def gold(kb: str) -> str:
            found = sum(bool(set(q.gold) & {hit.passage.id for hit in current[(q.id, kb)]}) for q in demo)
            return fraction(found, len(demo))

        table.append((f"demo questions ({len(demo)})", "gold passage in top-2",
                      {kb: gold(kb) for kb in KB_NAMES}))
        table.append((f"demo questions ({len(demo)})", "reader: a relevant passage in top-2",
                      {kb: reader(demo, kb) for kb in KB_NAMES}))
    if free:
        table.append((f"free questions ({len(free)})", "reader: a relevant passage in top-2",
                      {kb: reader(free, kb) for kb in KB_NAMES}))
        for topic in TOPICS:
            part = [q for q in free if q.group == topic]
            if part:
                table.append((f"- {topic} ({len(part)})", "reader",
                              {kb: reader(part, kb) for kb in KB_NAMES}))
    return table


def table_markdown(rows: Iterable[tuple[str, str, dict[str, str]]], sizes: Mapping[str, int]) -> str:
    lines = [f"| questions | measure | before: demo passages ({sizes['demo']:,}) "
             f"| after: default KB ({sizes['default']:,}) | default KB + shipped reranker (the app) |",
             "|---|---|---:|---:|---:|"]
    lines += [f"| {name} | {measure} | {values['demo']} | {values['default']} | {values['reranked']} |"
              for name, measure, values in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- the reader's file


def _one_line(text: str, limit: int = SNIPPET) -> str:
    text = " ".join(text.split()).replace("|", "/")
    return text if len(text) <= limit else text[:limit] + "..."


def report_markdown(queries: Sequence[Query], current: Mapping[tuple[str, str], list],
                    judged: Mapping[tuple[str, str], dict], sizes: Mapping[str, int]) -> str:
    out = ["# Top-2 BM25 passages for the demo and free questions",
           "",
           "Written by `benchmarks/free_question_retrieval.py` for a reader to judge; judgements are in",
           "`demo/free_questions_judged.jsonl` and the shares in `docs/retrieval.md`. Before: the demo",
           f"passages alone ({sizes['demo']:,}); after: the default knowledge base ({sizes['default']:,});",
           "reranked: the default knowledge base with the shipped reranker over BM25's 100 candidates.",
           "Demo questions are queried with question + options, free questions with the question alone.",
           "`[gold]` marks a gold passage of a demo question; the verdict is the recorded judgement (`?`",
           "when none matches the current top-2).",
           ""]
    for set_name, title in (("free", "Free questions"), ("demo", "Demo questions")):
        out += [f"## {title}", ""]
        for q in (q for q in queries if q.set == set_name):
            gold = f" gold: {', '.join(q.gold)}." if q.gold else ""
            out += [f"### {q.id} ({q.group}): {q.question}", "", f"Answer: {q.answer}.{gold}", ""]
            for kb in KB_NAMES:
                hits = current[(q.id, kb)]
                row = judged.get((q.id, kb)) or {}
                fresh = row.get("top2") == [h.passage.id for h in hits]
                verdict = {True: "relevant", False: "not relevant"}.get(row.get("relevant"), "?")
                verdict = verdict if fresh else "?"
                note = f" ({row['note']})" if fresh and row.get("note") else ""
                out.append(f"- **{kb}**: {verdict}{note}")
                for hit in hits or []:
                    mark = " [gold]" if hit.passage.id in q.gold else ""
                    title_text = hit.passage.title or "(no title)"
                    out.append(f"  {hit.bm25_rank}. `{hit.passage.id}`{mark} {_one_line(title_text, 60)}: "
                               f"{_one_line(hit.passage.text)}")
                if not hits:
                    out.append("  (no passage shares a word with the query)")
            out.append("")
    return "\n".join(out)


def write_template(path: Path, queries: Sequence[Query], current: Mapping[tuple[str, str], list],
                   judged: Mapping[tuple[str, str], dict]) -> int:
    """Rewrite the judgements file in question order: fresh judgements kept, a "relevant": null line
    for every (question, kb) not judged on its current top-2. Returns how many need judging."""
    rows, open_rows = [], 0
    for q in queries:
        for kb in KB_NAMES:
            ids = [hit.passage.id for hit in current[(q.id, kb)]]
            row = judged.get((q.id, kb))
            if row is None or row.get("top2") != ids or not isinstance(row.get("relevant"), bool):
                row = {"id": q.id, "kb": kb, "top2": ids, "relevant": None}
                open_rows += 1
            if q.gold:
                row = {**row, "gold_in_top2": bool(set(q.gold) & set(ids))}
            rows.append(row)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return open_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--free", type=Path, default=FREE_QUESTIONS, help="free questions JSONL")
    parser.add_argument("--judgements", type=Path, default=JUDGEMENTS, help="reader judgements JSONL")
    parser.add_argument("--out", type=Path, default=REPORT, help="markdown file with every top-2 list")
    parser.add_argument("--template", action="store_true",
                        help="rewrite --judgements with a 'relevant': null line for each question to judge")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")

    queries = [*free_queries(args.free), *demo_queries()]
    bases = knowledge_bases()
    sizes = {name: len(kb) for name, kb in bases.items()}
    current = current_top2(queries, bases)
    judged = load_judgements(args.judgements)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report_markdown(queries, current, judged, sizes) + "\n", encoding="utf-8")
    log.info("wrote the top-2 passages of %d questions x %d knowledge bases to %s",
             len(queries), len(bases), args.out)

    redo = to_redo(judged, current)
    if args.template and redo:
        added = write_template(args.judgements, queries, current, judged)
        log.info("%d lines of %s now say \"relevant\": null: judge them, then run again",
                 added, args.judgements)
    for reason in redo[:10]:
        log.warning("judge again: %s", reason)
    if len(redo) > 10:
        log.warning("... and %d more to judge", len(redo) - 10)
    print(table_markdown(shares(queries, current, judged), sizes))
    if redo:
        print(f"\n{len(redo)} judgements missing or stale: read {args.out}, "
              f"fix {args.judgements} and run again.")
    return 1 if redo else 0


if __name__ == "__main__":
    sys.exit(main())

"""The free questions (demo/free_questions.jsonl) and the reader judgements of their retrieval.

The judgements in demo/free_questions_judged.jsonl hold for one top-2 list per question and knowledge
base. When retrieval changes (tokeniser, BM25 settings, the default knowledge files, the query), the
lists change and the judgements no longer measure anything: these tests fail and say what to redo.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "free_question_retrieval.py"
REDO = ("re-run `python benchmarks/free_question_retrieval.py --template`, judge the lines marked "
        '"relevant": null against docs/retrieval_top2.md, and update the table in docs/retrieval.md')


def _load_script():
    spec = importlib.util.spec_from_file_location("free_question_retrieval", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


fqr = _load_script()


@pytest.fixture(scope="module")
def queries():
    return [*fqr.free_queries(), *fqr.demo_queries()]


@pytest.fixture(scope="module")
def bases():
    """The demo passages alone and the default knowledge base (its index is cached on disk)."""
    return fqr.knowledge_bases()


@pytest.fixture(scope="module")
def current(queries, bases):
    """Top-2 hits now, for every question and both knowledge bases."""
    return fqr.current_top2(queries, bases)


@pytest.fixture(scope="module")
def judged():
    return fqr.load_judgements()


def test_free_questions_are_well_formed():
    rows = fqr.read_jsonl(fqr.FREE_QUESTIONS)
    assert len(rows) >= 30
    assert fqr.free_question_problems(rows) == []
    ids = [row["id"] for row in rows]
    assert len(set(ids)) == len(ids)
    assert {row["kind"] for row in rows} <= {"yesno", "open"}
    assert all(row["answer"] in ("yes", "no") for row in rows if row["kind"] == "yesno")
    assert all(row["question"].rstrip().endswith("?") for row in rows)
    # about a third each: everyday medical, commonsense yes/no, school science
    for topic in fqr.TOPICS:
        assert sum(row["topic"] == topic for row in rows) >= len(rows) // 4, topic
    assert {row["kind"] for row in rows if row["topic"] == "commonsense"} == {"yesno"}


def test_the_checks_catch_a_bad_free_question():
    bad = [{"id": "x", "topic": "medical", "kind": "yesno", "question": "Q?", "answer": "maybe"},
           {"id": "x", "topic": "art", "kind": "choice", "question": "", "answer": "a"}]
    problems = " ".join(fqr.free_question_problems(bad))
    for expected in ("'yes' or 'no'", "duplicate id", "topic must be", "kind must be", "'question'"):
        assert expected in problems


def test_every_question_is_judged_on_the_top2_retrieval_returns_now(current, judged):
    redo = fqr.to_redo(judged, current)
    assert not redo, (f"{len(redo)} retrieval judgements are missing or stale, e.g. {redo[:3]}. Fix: {REDO}")
    extra = sorted(set(judged) - set(current))
    assert not extra, f"judgements for questions or knowledge bases that no longer exist: {extra[:5]}"


def test_gold_flags_match_and_a_gold_passage_counts_as_relevant(queries, current, judged):
    for q in queries:
        if not q.gold:
            continue
        for kb in fqr.KB_NAMES:
            ids = {hit.passage.id for hit in current[(q.id, kb)]}
            row = judged[(q.id, kb)]
            assert row["gold_in_top2"] == bool(ids & set(q.gold)), (q.id, kb)
            if row["gold_in_top2"]:
                assert row["relevant"] is True, (q.id, kb)


def test_the_shares_in_docs_retrieval_md_are_the_ones_the_judgements_give(queries, bases, current, judged):
    sizes = {name: len(knowledge) for name, knowledge in bases.items()}
    table = fqr.table_markdown(fqr.shares(queries, current, judged), sizes)
    assert "not judged" not in table
    docs = (ROOT / "docs" / "retrieval.md").read_text(encoding="utf-8")
    assert table in docs, f"docs/retrieval.md has other shares than the judgements give. Fix: {REDO}"


def test_stale_judgements_are_reported(current, judged):
    key = next(iter(current))
    changed = {**judged, key: {**judged[key], "top2": ["not-a-passage"]}}
    assert any(reason.startswith(f"{key[0]} [{key[1]}]") for reason in fqr.to_redo(changed, current))
    missing = {k: v for k, v in judged.items() if k != key}
    assert f"{key[0]} [{key[1]}]: not judged" in fqr.to_redo(missing, current)


def test_judgements_file_is_plain_json_lines():
    for line in fqr.JUDGEMENTS.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        assert set(row) >= {"id", "kb", "top2", "relevant"}
        assert row["kb"] in fqr.KB_NAMES and isinstance(row["relevant"], bool) and len(row["top2"]) <= 2

"""Checks on the embedded demo data (demo/passages.jsonl, demo/questions.jsonl), read as plain JSON.

These fail if the files break: a malformed line, a duplicate id, a missing field, an answer letter that
is not an option, a rationale that no longer ends in its answer, or passages that BM25 can no longer
find from a question's rationale (KARD retrieves training knowledge with the rationale).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from kard.config import DEMO_PASSAGES, DEMO_QUESTIONS

PASSAGE_PREFIXES = {"demo-med-": 140, "demo-sci-": 80, "demo-com-": 70}
"""Id prefix -> the fewest passages of that kind (clinical, basic science, commonsense)."""

KINDS = ("medical", "yesno", "science")
FOUR_LETTERS = ["A", "B", "C", "D"]
YES_NO = {"A": "yes", "B": "no"}

STOPWORDS = frozenset(
    "a an the and or of to in on at for with by from is are was were be been it its this that these "
    "those as which what who how why when where than then so not no yes do does did can could would "
    "should will his her he she they them their there into about after before".split()
)
NEGATION = re.compile(r"\b(not|no|cannot|never)\b|n't\b", re.IGNORECASE)


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            pytest.fail(f"{path.name} line {number} is not valid JSON: {error}")
    return rows


def content_words(text: str) -> list[str]:
    return [word for word in re.findall(r"[a-z0-9]+", text.lower()) if word not in STOPWORDS]


def last_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s+", text.strip())[-1]


@pytest.fixture(scope="module")
def passages() -> list[dict]:
    return read_jsonl(DEMO_PASSAGES)


@pytest.fixture(scope="module")
def questions() -> list[dict]:
    return read_jsonl(DEMO_QUESTIONS)


@pytest.fixture(scope="module")
def bm25(passages):
    from rank_bm25 import BM25Okapi

    corpus = [content_words(f"{p['title']} {p['text']}") for p in passages]
    return BM25Okapi(corpus, k1=0.9, b=0.4), corpus


def top_k(bm25, query: str, k: int) -> list[int]:
    index, _ = bm25
    scores = index.get_scores(content_words(query))
    return sorted(range(len(scores)), key=lambda i: -scores[i])[:k]


# --- passages -------------------------------------------------------------------------------------


def test_passages_have_the_promised_size_and_mix(passages):
    assert len(passages) >= 300
    for prefix, floor in PASSAGE_PREFIXES.items():
        count = sum(p["id"].startswith(prefix) for p in passages)
        assert count >= floor, f"only {count} passages with prefix {prefix}"
    assert all(p["id"].startswith(tuple(PASSAGE_PREFIXES)) for p in passages)


def test_passage_records_are_complete_and_unique(passages):
    for p in passages:
        assert set(p) == {"id", "title", "text"}, p.get("id")
        assert all(isinstance(p[key], str) and p[key].strip() for key in p), p["id"]
    assert len({p["id"] for p in passages}) == len(passages)
    assert len({p["title"].lower() for p in passages}) == len(passages)
    assert len({p["text"] for p in passages}) == len(passages)


def test_passages_are_short(passages):
    lengths = {p["id"]: len(p["text"].split()) for p in passages}
    outside = {pid: n for pid, n in lengths.items() if not 20 <= n <= 70}
    assert not outside, f"passages outside 20-70 words: {outside}"


# --- questions ------------------------------------------------------------------------------------


def test_questions_have_the_promised_size_and_mix(questions):
    assert len(questions) >= 40
    kinds = Counter(q["kind"] for q in questions)
    assert set(kinds) == set(KINDS)
    assert all(kinds[kind] >= 12 for kind in KINDS), kinds


def test_question_records_are_complete_and_unique(questions):
    fields = {"id", "kind", "question", "options", "answer", "rationale", "rationale_source", "passage_ids"}
    for q in questions:
        assert set(q) == fields, q.get("id")
        for key in ("id", "question", "answer", "rationale", "rationale_source"):
            assert isinstance(q[key], str) and q[key].strip(), (q["id"], key)
        assert all(isinstance(text, str) and text.strip() for text in q["options"].values()), q["id"]
        assert q["answer"] in q["options"], q["id"]
        assert "answer:" not in q["rationale"].lower(), q["id"]
    assert len({q["id"] for q in questions}) == len(questions)
    assert len({q["question"] for q in questions}) == len(questions)


def test_option_letters_fit_each_kind(questions):
    for q in questions:
        if q["kind"] == "yesno":
            assert q["options"] == YES_NO, q["id"]
        else:
            assert list(q["options"]) == FOUR_LETTERS, q["id"]
            assert len(set(q["options"].values())) == 4, q["id"]


def test_answer_letters_are_spread(questions):
    four = Counter(q["answer"] for q in questions if q["kind"] != "yesno")
    assert set(four) == set(FOUR_LETTERS)
    assert max(four.values()) <= 0.35 * sum(four.values()), four
    yes_no = Counter(q["answer"] for q in questions if q["kind"] == "yesno")
    assert abs(yes_no["A"] - yes_no["B"]) <= 2, yes_no


def test_supporting_passage_ids_exist(questions, passages):
    known = {p["id"] for p in passages}
    for q in questions:
        assert 1 <= len(q["passage_ids"]) <= 3, q["id"]
        assert set(q["passage_ids"]) <= known, q["id"]


def test_four_option_rationales_end_in_their_answer(questions):
    """In the last sentence, the gold option's words are covered better than any other option's."""
    for q in questions:
        if q["kind"] == "yesno":
            continue
        ending = set(content_words(last_sentence(q["rationale"])))
        cover = {}
        for letter, text in q["options"].items():
            words = set(content_words(text))
            cover[letter] = len(words & ending) / len(words)
        best = cover.pop(q["answer"])
        assert best > max(cover.values()), (q["id"], best, cover)


def test_yes_no_rationales_end_in_their_answer(questions):
    """A 'no' rationale ends with a negated conclusion, a 'yes' rationale with an affirmative one."""
    for q in questions:
        if q["kind"] == "yesno":
            negated = bool(NEGATION.search(last_sentence(q["rationale"])))
            assert negated == (q["answer"] == "B"), (q["id"], last_sentence(q["rationale"]))


# --- retrieval (rank_bm25 directly, k1=0.9, b=0.4 as in the paper) ------------------------------


def test_rationale_query_finds_a_passage_sharing_its_words(questions, bm25):
    """Measured 51/51 (1.00) on the shipped data: a top-3 passage shares >= 3 content words."""
    _, corpus = bm25
    found = []
    for q in questions:
        words = set(content_words(q["rationale"]))
        top = top_k(bm25, q["rationale"], 3)
        found.append(any(len(words & set(corpus[i])) >= 3 for i in top))
    assert sum(found) / len(found) >= 0.95, [q["id"] for q, ok in zip(questions, found) if not ok]


def test_rationale_query_retrieves_the_supporting_passage(questions, passages, bm25):
    """Measured 51/51 (1.00) at top-1 and top-3 on the shipped data; floor 0.95 at top-3."""
    missed = []
    for q in questions:
        top = {passages[i]["id"] for i in top_k(bm25, q["rationale"], 3)}
        if not top & set(q["passage_ids"]):
            missed.append(q["id"])
    assert 1 - len(missed) / len(questions) >= 0.95, missed


def test_question_query_retrieves_the_supporting_passage(questions, passages, bm25):
    """Inference-time retrieval (question + options, no rationale): measured 50/51 (0.98) at top-3."""
    missed = []
    for q in questions:
        query = " ".join([q["question"], *q["options"].values()])
        top = {passages[i]["id"] for i in top_k(bm25, query, 3)}
        if not top & set(q["passage_ids"]):
            missed.append(q["id"])
    assert 1 - len(missed) / len(questions) >= 0.9, missed

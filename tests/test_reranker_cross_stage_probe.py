"""benchmarks/reranker_cross_stage_probe.py: the second stage starts as the shipped reranker (its head is zero,
so the order is stage 1's until it learns), and KARD's loss over stage 1's top N trains it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("sentence_transformers", reason="sentence-transformers is in requirements.txt")

from test_dense_reranker import PAIRS, knowledge, tiny_bert  # noqa: E402,F401 - the tiny BERT and its passages

from kard.reranker.dense import DenseReranker, dense_items  # noqa: E402
from kard.reranker.encoder import reranker_query  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    sys.path.insert(0, str(ROOT / "benchmarks"))  # the script imports train_default_reranker beside it
    spec = importlib.util.spec_from_file_location("reranker_cross_stage_probe",
                                                  ROOT / "benchmarks" / "reranker_cross_stage_probe.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_second_stage_starts_as_the_first_and_learns(tiny_bert, knowledge) -> None:  # noqa: F811
    probe = load_script()
    first = DenseReranker.fresh(tiny_bert)
    second = probe.PairScorer(tiny_bert, max_length=64)
    both = probe.TwoStage(first, second, top=2)
    for question, _ in PAIRS:
        hits = knowledge.search(reranker_query(question), 6)
        assert [h.passage.id for h in both.rerank(question, hits)] == [h.passage.id for h in first.rerank(question, hits)]
    data = probe.stage_one_tops(first, dense_items(PAIRS, knowledge), knowledge, top=2)
    assert data and all(len(texts) == 2 for _, texts, _, _ in data)
    losses = probe.train(second, data, steps=3, batch=2, seed=0, lr_body=1e-3, lr_head=1e-2)
    assert len(losses) == 3 and float(second.head.weight.abs().sum()) > 0

"""The dense reranker: cached passage vectors, the rerank contract, KARD training, save/load, loading by
kind, and the shipped reranker on the default knowledge base (where it beats BM25 on the demo questions).

A tiny BERT built in-test stands in for MiniLM; the shipped reranker test uses the real packaged one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sentence_transformers", reason="sentence-transformers is in requirements.txt")

from kard.config import NO_RERANKER, SHIPPED_RERANKER, AppConfig  # noqa: E402
from kard.reranker.dense import DenseReranker, DenseRerankerConfig, dense_items, train_dense_reranker  # noqa: E402
from kard.errors import ConfigError  # noqa: E402
from kard.knowledge import KnowledgeBase  # noqa: E402
from kard.records import Passage, Question  # noqa: E402
from kard.reranker.encoder import load_reranker  # noqa: E402

WORDS = ["plants", "absorb", "carbon", "dioxide", "oxygen", "sun", "light", "energy", "water", "roots", "magnet",
         "iron", "attracts", "metal", "which", "what", "do", "gas", "the", "a", "is", "from", "release", "leaves"]
PASSAGES = [
    Passage("p-co2", "", "plants absorb carbon dioxide from the air"),
    Passage("p-o2", "", "plants release oxygen from the leaves"),
    Passage("p-sun", "", "the sun is a energy from light"),
    Passage("p-water", "", "roots absorb water"),
    Passage("p-magnet", "", "a magnet attracts iron metal"),
    Passage("p-iron", "", "iron is a metal"),
]
PAIRS = [
    (Question("q1", "which gas do plants absorb ?", {"A": "oxygen", "B": "carbon dioxide"}, "B"),
     "plants absorb carbon dioxide from the air"),
    (Question("q2", "what do leaves release ?", {"A": "oxygen", "B": "iron"}, "A"), "plants release oxygen"),
    (Question("q3", "what attracts iron ?", {"A": "magnet", "B": "water"}, "A"), "a magnet attracts iron metal"),
    (Question("q4", "what do roots absorb ?", {"A": "water", "B": "light"}, "A"), "roots absorb water"),
]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, ".", "?", ":", "(", ")"])}
    BertTokenizer(vocab=vocab).save_pretrained(folder)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0)).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def knowledge() -> KnowledgeBase:
    return KnowledgeBase.build(PASSAGES)


def test_passage_vectors_are_encoded_once_and_again_when_the_text_changes(tiny_bert, tmp_path) -> None:
    reranker = DenseReranker.fresh(tiny_bert)
    calls: list[int] = []
    encode = reranker.vectors._encode
    reranker.vectors._encode = lambda texts: calls.append(len(texts)) or encode(texts)
    first = reranker.vectors.of(PASSAGES[:3])
    assert first.shape == (3, 32) and calls == [3]
    reranker.vectors.of(PASSAGES[:4])
    assert calls == [3, 1]  # only the new one
    changed = Passage("p-co2", "", "plants absorb water")
    reranker.vectors.of([changed])
    assert calls == [3, 1, 1]  # same id, other text: encoded again
    saved = reranker.vectors.save(tmp_path / "vectors.npz")
    again = DenseReranker.fresh(tiny_bert)
    again.vectors._encode = lambda texts: pytest.fail(f"encoded {texts} although they were loaded")
    again.vectors.load(saved)
    assert again.vectors.of([changed, PASSAGES[1]]) == pytest.approx(reranker.vectors.of([changed, PASSAGES[1]]), abs=1e-3)


def test_rerank_scores_every_hit_and_cuts_to_k(tiny_bert, knowledge) -> None:
    reranker = DenseReranker.fresh(tiny_bert)
    hits = knowledge.search("plants absorb", 5)
    ranked = reranker.rerank(PAIRS[0][0], hits)
    assert sorted(h.passage.id for h in ranked) == sorted(h.passage.id for h in hits)
    assert [h.rerank_rank for h in ranked] == list(range(1, len(hits) + 1))
    assert all(a.rerank_score >= b.rerank_score for a, b in zip(ranked, ranked[1:]))
    assert len(reranker.rerank(PAIRS[0][0], hits, k=2)) == 2
    assert reranker.rerank(PAIRS[0][0], []) == []
    with pytest.raises(ConfigError, match="empty"):
        reranker.rerank("   ", hits)


def test_rationale_candidates_add_the_passages_the_question_misses(knowledge) -> None:
    plain = dense_items(PAIRS, knowledge, candidates=1)
    both = dense_items(PAIRS, knowledge, candidates=1, rationale_candidates=2)
    assert [len(item.passage_ids) for item in plain] == [1, 1, 1, 1]
    for (_, rationale), only_question, item in zip(PAIRS, plain, both):
        by_rationale = [hit.passage.id for hit in knowledge.search(rationale, 2)]
        extra = [pid for pid in by_rationale if pid not in only_question.passage_ids]
        assert item.passage_ids == only_question.passage_ids + tuple(extra)
        assert item.bm25_question == only_question.bm25_question * (1 + len(extra))  # the question's floor
        assert len(item.bm25_rationale) == len(item.passage_ids)
    assert any(len(item.passage_ids) > 1 for item in both)


def test_training_lowers_the_kard_loss_and_survives_save_and_load(tiny_bert, knowledge, tmp_path) -> None:
    reranker = DenseReranker.fresh(tiny_bert)
    items = dense_items(PAIRS, knowledge, candidates=6)
    assert len(items) == 4 and all(len(i.passage_ids) == len(i.bm25_rationale) for i in items)
    losses = train_dense_reranker(reranker, items, knowledge,
                                  DenseRerankerConfig(steps=60, batch_size=4, learning_rate=3e-3), progress=False)
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:10]) / 10
    assert reranker.trained and reranker.training_info["items"] == 4
    hits = knowledge.search("which gas do plants absorb", 6)
    before = [h.rerank_score for h in reranker.rerank(PAIRS[0][0], hits)]
    folder = reranker.save(tmp_path / "dense", with_vectors=True)
    import json

    recorded = json.loads((folder / "question_lora" / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert (folder / "question_lora" / recorded).resolve() == Path(tiny_bert).resolve()  # relative: no machine path
    loaded = load_reranker(folder)
    assert isinstance(loaded, DenseReranker) and loaded.trained
    assert [h.rerank_score for h in loaded.rerank(PAIRS[0][0], hits)] == pytest.approx(before, abs=1e-3)
    assert len(loaded.vectors) == len(reranker.vectors)


def test_none_turns_the_reranker_off_everywhere(monkeypatch) -> None:
    assert load_reranker(NO_RERANKER) is None and load_reranker("None") is None and load_reranker(None) is None
    monkeypatch.setenv("KARD_RERANKER", "none")
    assert load_reranker(AppConfig.from_env().reranker) is None
    monkeypatch.delenv("KARD_RERANKER")
    assert AppConfig.from_env().reranker == str(SHIPPED_RERANKER)


@pytest.mark.skipif(not (SHIPPED_RERANKER / "kard_reranker.json").is_file(), reason="no shipped reranker in demo/")
def test_the_shipped_reranker_covers_the_default_knowledge_and_beats_bm25_on_the_demo_questions() -> None:
    from kard.datasets import load_demo_questions
    from kard.distill import rationales_from_questions
    from kard.reranker.evaluation import evaluate_reranker

    reranker = load_reranker(SHIPPED_RERANKER)
    knowledge = KnowledgeBase.open()
    assert isinstance(reranker, DenseReranker) and reranker.trained
    assert len(reranker.vectors) >= len(knowledge)  # shipped vectors: the app never encodes a default passage
    reranker.vectors._encode = lambda texts: pytest.fail("a default passage had no shipped vector")
    demo = load_demo_questions()
    rationales = rationales_from_questions(demo)
    pairs = [(q, rationales[q.id][0].text) for q in demo if rationales.get(q.id)]
    result = evaluate_reranker(reranker, knowledge, pairs, progress=False)
    assert result.questions == 51
    assert result.reranker[1] > result.bm25[1]  # measured 2026-11-30: see docs/training.md
    moved = [h for h in reranker.rerank(demo[0], knowledge.search(demo[0].text, 100)) if h.rerank_rank != h.bm25_rank]
    assert moved  # the panel shows real moves


def test_a_truncated_passage_vectors_file_is_named_with_a_fix(tmp_path) -> None:
    import numpy as np

    from kard.errors import KardError
    from kard.reranker.dense import PassageVectors

    path = tmp_path / "passage_vectors.npz"
    np.savez_compressed(path, ids=np.array(["p1"]), digests=np.array(["d"]), vectors=np.ones((1, 4), np.float16))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(KardError, match="passage_vectors.npz: the file is damaged or is not a passage vectors file.*Fix: "):
        PassageVectors(lambda texts: None).load(path)


def test_a_damaged_reranker_meta_file_is_named_not_a_missing_config_json(tmp_path) -> None:
    from kard.errors import KardError
    from kard.reranker.encoder import META_FILE

    (tmp_path / META_FILE).write_text("{bad")
    with pytest.raises(KardError, match=f"{META_FILE} is not valid JSON.*Fix: ") as raised:
        load_reranker(tmp_path)
    assert "config.json" not in str(raised.value)


def test_a_git_lfs_pointer_for_the_question_adapter_is_named_before_the_encoder_loads(tmp_path) -> None:
    import json

    from kard.errors import KardError
    from kard.reranker.encoder import META_FILE

    (tmp_path / META_FILE).write_text(json.dumps({"kind": "dense", "backbone": str(tmp_path / "nowhere"), "a": 0.4,
                                                  "b": 9.0, "trained": True}))
    adapter = tmp_path / "question_lora"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_text("version https://git-lfs.github.com/spec/v1\nsize 1\n")
    with pytest.raises(KardError, match="adapter_model.safetensors: this looks like a Git LFS pointer.*git lfs pull"):
        load_reranker(tmp_path)

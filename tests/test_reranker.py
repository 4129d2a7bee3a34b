"""The KARD reranker: KL loss by hand, rerank contract, save/load, and a tiny BERT that learns."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")

from kard.config import RerankerTrainingConfig  # noqa: E402
from kard.errors import ConfigError, DataError, ModelNotFoundError  # noqa: E402
from kard.records import Hit, Passage, Question  # noqa: E402
from kard.reranker.encoder import Reranker, reranker_query  # noqa: E402
from kard.reranker.training import (  # noqa: E402
    RerankerItem,
    build_reranker_items,
    kard_kl_loss,
    mean_kl,
    sample_candidates,
    temperature,
    train_reranker,
)

WORDS = (
    "the a is of and in to what which who capital city country france paris germany berlin italy rome "
    "river seine rhine tiber flows through largest sun star moon planet water ice cold hot boils at "
    "degrees freezes yes no"
).split()

PASSAGES = [
    Passage("p-paris", "Paris", "paris is the capital city of france and the seine flows through paris."),
    Passage("p-berlin", "Berlin", "berlin is the capital city of germany and the rhine is a river of germany."),
    Passage("p-rome", "Rome", "rome is the capital of italy and the tiber flows through rome."),
    Passage("p-water", "Water", "water boils at the hot degrees and freezes to ice when cold."),
]


class PassageStore:
    """Only the `get` part of a knowledge base: what training reads passage texts through."""

    def __init__(self, passages):
        self.by_id = {p.id: p for p in passages}

    def get(self, passage_id):
        return self.by_id[passage_id]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A 2-layer, 32-wide BERT with a word-level WordPiece vocabulary, saved as a backbone folder."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, ".", "?", ":"])}
    tokenizer = BertTokenizer(vocab=vocab)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def hand_kl(p_logits, q_logits):
    p = [math.exp(x) / sum(math.exp(y) for y in p_logits) for x in p_logits]
    q = [math.exp(x) / sum(math.exp(y) for y in q_logits) for x in q_logits]
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


# ---- the loss ---------------------------------------------------------------------------------
def test_kl_loss_matches_hand_computed_value():
    # p = softmax([2, 0]) = [0.8808, 0.1192]; q = [0.5, 0.5]
    # KL = 0.8808 ln(0.8808/0.5) + 0.1192 ln(0.1192/0.5) = 0.4987 - 0.1709 = 0.3278
    loss = kard_kl_loss(torch.tensor([[10.0, 0.0]]), torch.tensor([[0.0, 0.0]]), tau1=5.0, tau2=1.0)
    assert loss.item() == pytest.approx(0.3278, abs=1e-4)
    assert loss.item() == pytest.approx(hand_kl([2.0, 0.0], [0.0, 0.0]), rel=1e-6)


def test_kl_loss_temperatures_scale_each_side_and_batch_is_averaged():
    bm25 = torch.tensor([[3.0, 1.0, 0.0], [0.0, 0.0, 6.0]])
    scores = torch.tensor([[1.0, 2.0, 0.5], [4.0, 0.0, 2.0]])
    loss = kard_kl_loss(bm25, scores, tau1=2.0, tau2=0.5)
    expected = (hand_kl([1.5, 0.5, 0.0], [2.0, 4.0, 1.0]) + hand_kl([0.0, 0.0, 3.0], [8.0, 0.0, 4.0])) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_kl_loss_is_zero_when_distributions_agree_and_ignores_masked_slots():
    bm25 = torch.tensor([[4.0, 2.0, 99.0]])
    scores = torch.tensor([[2.0, 1.0, -50.0]])
    mask = torch.tensor([[True, True, False]])
    assert kard_kl_loss(bm25, scores, tau1=2.0, tau2=1.0, mask=mask).item() == pytest.approx(0.0, abs=1e-6)
    unmasked = kard_kl_loss(bm25, scores, tau1=2.0, tau2=1.0)
    assert unmasked.item() > 1.0


def test_kl_loss_rejects_non_positive_temperature():
    with pytest.raises(ConfigError, match="temperatures must be positive"):
        kard_kl_loss(torch.zeros(1, 2), torch.zeros(1, 2), tau1=0.0, tau2=1.0)


def test_temperature_anneals_linearly_from_start_to_end():
    assert temperature(0, 5, 5.0, 1.0) == 5.0
    assert temperature(2, 5, 5.0, 1.0) == 3.0
    assert temperature(4, 5, 5.0, 1.0) == 1.0
    assert temperature(0, 1, 5.0, 1.0) == 1.0


def test_sample_candidates_takes_per_source_from_each_list_and_tops_up():
    import random

    item = RerankerItem("q", "query", ("r1", "r2", "r3", "r4", "r5"), ("q1", "q2"), {})
    chosen = sample_candidates(item, 2, random.Random(0))
    assert len(chosen) == 4 and len(set(chosen)) == 4
    assert sum(pid.startswith("r") for pid in chosen) == 2 and sum(pid.startswith("q") for pid in chosen) == 2
    short = RerankerItem("q", "query", ("r1", "r2", "r3", "r4", "r5"), ("q1",), {})
    chosen = sample_candidates(short, 2, random.Random(0))
    assert len(chosen) == 4 and "q1" in chosen  # one question candidate, topped up from the rationale list


# ---- the reranker -----------------------------------------------------------------------------
def hits():
    return [Hit(p, bm25_score=10.0 - i, bm25_rank=i + 1) for i, p in enumerate(PASSAGES)]


def test_rerank_scores_every_hit_sets_ranks_and_cuts_to_k(tiny_bert):
    reranker = Reranker.load(tiny_bert)
    assert reranker.kind == "cross-encoder" and not reranker.trained
    ranked = reranker.rerank("what is the capital of france?", hits())
    assert sorted(h.passage.id for h in ranked) == sorted(p.id for p in PASSAGES)
    assert [h.rerank_rank for h in ranked] == [1, 2, 3, 4]
    assert all(a.rerank_score >= b.rerank_score for a, b in zip(ranked, ranked[1:]))
    assert {h.passage.id: h.bm25_rank for h in ranked} == {p.id: i + 1 for i, p in enumerate(PASSAGES)}
    top2 = reranker.rerank("what is the capital of france?", hits(), k=2)
    assert [h.passage.id for h in top2] == [h.passage.id for h in ranked[:2]]
    assert reranker.rerank("anything", []) == []


def test_rerank_bad_inputs(tiny_bert, tmp_path):
    reranker = Reranker.load(tiny_bert)
    with pytest.raises(ConfigError, match="k must be at least 1"):
        reranker.rerank("capital", hits(), k=0)
    with pytest.raises(ConfigError, match="k must be at least 1 and a whole number, got '2'"):
        reranker.rerank("capital", hits(), k="2")
    with pytest.raises(ConfigError, match="question is empty"):
        reranker.rerank("  ", hits())
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        Reranker.load(tmp_path)
    with pytest.raises(ModelNotFoundError, match="not installed"):
        Reranker.load("package:no_such_reranker_package")
    with pytest.raises(ConfigError, match="unknown reranker kind"):
        Reranker.load(tiny_bert, kind="bi-encoder")


def test_reranker_query_adds_options_except_yes_no():
    yes_no = Question("q1", "Is ice cold?", {"A": "yes", "B": "no"}, "A")
    multi = Question("q2", "Which city is the capital of France?", {"A": "Paris", "B": "Rome"}, "A")
    assert reranker_query(yes_no) == "Is ice cold?"
    assert reranker_query(multi) == "Which city is the capital of France? (A) Paris (B) Rome"


def items_for_training():
    """Each query's own passage gets the high BM25-against-rationale score (Berlin is only a distractor)."""
    queries = {
        "p-paris": "what is the capital of france?",
        "p-rome": "which river flows through rome?",
        "p-water": "water boils at what degrees?",
    }
    items = []
    for right, query in queries.items():
        others = tuple(p.id for p in PASSAGES if p.id != right)
        targets = {pid: (12.0 if pid == right else 2.0) for pid in (right, *others)}
        items.append(RerankerItem(right, query, (right, others[0]), others[1:], targets))
    return items


def params_of(module):
    return {name: p.detach().clone() for name, p in module.named_parameters()}


@pytest.mark.parametrize("kind", ["cross-encoder", "maxsim"])
def test_tiny_reranker_learns_the_bm25_rationale_ranking(tiny_bert, tmp_path, kind):
    reranker = Reranker.load(tiny_bert, kind=kind, max_length=64)
    before = params_of(reranker.module)
    config = RerankerTrainingConfig(steps=40, batch_size=3, per_source=2, learning_rate=3e-3, head_learning_rate=1e-2,
                                    tau1_start=2.0, tau1_end=2.0, tau2_start=1.0, tau2_end=1.0, warmup_steps=0,
                                    save_steps=0)
    items = items_for_training()
    kl_before = mean_kl(reranker, items, PassageStore(PASSAGES), tau1=2.0, per_source=2)
    result = train_reranker(reranker, items, PassageStore(PASSAGES), tmp_path / "reranker", config, progress=False)
    assert mean_kl(reranker, items, PassageStore(PASSAGES), tau1=2.0, per_source=2) < 0.7 * kl_before
    assert len(result.losses) == 40
    assert sum(result.losses[-5:]) / 5 < 0.7 * sum(result.losses[:5]) / 5
    after = params_of(reranker.module)
    changed = [name for name in before if name in after and not torch.equal(before[name], after[name])]
    assert any("embeddings" in name for name in changed) and any(("classifier" in n or "project" in n) for n in changed)
    for item in items:
        ranked = [h.passage.id for h in reranker.rerank(item.query, hits())]
        assert ranked.index(item.question_id) < ranked.index("p-berlin")  # the distractor every target ranks low
        if kind == "maxsim":  # late interaction matches words from the start; a 2-layer random
            assert ranked[0] == item.question_id  # cross-encoder needs more steps to learn that

    loaded = Reranker.load(tmp_path / "reranker")
    assert loaded.trained and loaded.kind == kind and loaded.max_length == 64
    meta = json.loads((tmp_path / "reranker" / "kard_reranker.json").read_text())
    assert meta["training"]["steps"] == 40 and meta["training"]["last_loss"] == pytest.approx(result.losses[-1])
    query = items[0].query
    assert [h.passage.id for h in loaded.rerank(query, hits())] == [h.passage.id for h in reranker.rerank(query, hits())]
    logged = [json.loads(line) for line in (tmp_path / "reranker" / "losses.jsonl").read_text().splitlines()]
    assert [row["loss"] for row in logged] == pytest.approx(result.losses)
    assert all(row["loss_final_t"] == pytest.approx(row["loss"], abs=1e-4) for row in logged)  # fixed temperatures
    with pytest.raises(ConfigError, match="holds a"):
        Reranker.load(tmp_path / "reranker", kind="maxsim" if kind == "cross-encoder" else "cross-encoder")


def test_lora_reranker_trains_and_saves_merged_weights(tiny_bert, tmp_path):
    reranker = Reranker.load(tiny_bert, max_length=64)
    config = RerankerTrainingConfig(steps=6, batch_size=2, per_source=2, learning_rate=1e-2, lora=True, lora_r=4,
                                    warmup_steps=0, save_steps=0)
    result = train_reranker(reranker, items_for_training(), PassageStore(PASSAGES), tmp_path / "lora", config,
                            progress=False)
    assert len(result.losses) == 6
    assert not hasattr(reranker.module, "peft_config")
    loaded = Reranker.load(tmp_path / "lora")
    query = items_for_training()[0].query
    assert loaded.score_passages(query, PASSAGES) == pytest.approx(reranker.score_passages(query, PASSAGES), abs=1e-5)


def test_training_bad_inputs(tiny_bert, tmp_path):
    reranker = Reranker.load(tiny_bert)
    with pytest.raises(DataError, match="no reranker training items"):
        train_reranker(reranker, [], PassageStore(PASSAGES), tmp_path, RerankerTrainingConfig(steps=1), progress=False)
    with pytest.raises(ConfigError, match="at least 1"):
        train_reranker(reranker, items_for_training(), PassageStore(PASSAGES), tmp_path,
                       RerankerTrainingConfig(steps=0), progress=False)
    with pytest.raises(DataError, match="no \\(question, rationale\\) pairs"):
        build_reranker_items([(Question("q", "x?", {"A": "yes", "B": "no"}, "A"), "  ")], PassageStore(PASSAGES))


def test_build_items_takes_both_candidate_lists_with_bm25_rationale_targets():
    from kard.knowledge import KnowledgeBase

    passages = PASSAGES + [
        Passage("p-seine", "Seine", "the seine is a river of france that flows through paris to the sea."),
        Passage("p-capital", "Capital", "a capital city is the seat of the government of a country."),
    ]
    kb = KnowledgeBase.build(passages)
    question = Question("q", "which river flows through the capital of france?", {"A": "yes", "B": "no"}, "A")
    rationale = "the seine flows through paris. paris is the capital of france."
    (item,) = build_reranker_items([(question, rationale)], kb, candidates=2)
    by_rationale = kb.search(rationale, len(kb))
    by_question = kb.search(reranker_query(question), 2)
    assert item.rationale_ids == tuple(h.passage.id for h in by_rationale[:2])
    assert item.question_ids == tuple(h.passage.id for h in by_question if h.passage.id not in item.rationale_ids)
    exact = {h.passage.id: h.bm25_score for h in by_rationale}
    assert item.targets == {pid: exact.get(pid, 0.0) for pid in item.rationale_ids + item.question_ids}
    assert item.query == question.text

    shallow = build_reranker_items([(question, rationale)], kb, candidates=1, score_depth=1)[0]
    floor = by_rationale[0].bm25_score  # beyond the scoring depth: the lowest score seen there, an upper bound
    assert all(shallow.targets[pid] == floor for pid in shallow.question_ids)

from pathlib import Path

import pytest

from kard.config import GenerationConfig, RetrievalConfig
from kard.errors import ConfigError, DataError
from kard.evaluation import CONDITIONS, evaluate, read_records
from kard.knowledge import KnowledgeBase
from kard.records import Passage, Question, Sample

PASSAGES = [
    Passage("p-sun", "Sun", "The sun is a star that gives the earth light and heat."),
    Passage("p-plant", "Plants", "Plants absorb carbon dioxide and release oxygen."),
    Passage("p-ice", "Ice", "Water freezes into ice at zero degrees Celsius."),
    Passage("p-moon", "Moon", "The moon orbits the earth about once a month."),
]
QUESTIONS = [
    Question("q1", "Which gas do plants absorb?", {"A": "oxygen", "B": "carbon dioxide"}, answer="B"),
    Question("q2", "At what temperature does water freeze?", {"A": "zero degrees", "B": "fifty degrees"}, answer="A"),
    Question("q3", "What orbits the earth monthly?", {"A": "the sun", "B": "the moon"}, answer="B"),
]


class ScriptedStudent:
    """Answers each prompt by a rule and records every prompt it was given."""

    is_encoder_decoder = False
    context_length = None

    def __init__(self, rule):
        self.rule = rule
        self.prompts: list[str] = []

    def generate(self, prompt, config, *, letters=(), on_first_token=None, n=None):
        self.prompts.append(prompt)
        return [Sample(raw_output=text, rationale=text, answer=answer, tokens_out=3)
                for text, answer in self.rule(prompt, config)]

    def generate_batch(self, prompts, config, *, letters=()):
        return [self.generate(prompt, config)[0] for prompt in prompts]

    def with_answer(self, prompt, sample, letters):
        return sample

    def decoding_settings(self, config):
        return {}

    name = location = "scripted"

    def count_tokens(self, prompt):
        return len(prompt.split())

    def text_ids(self, text):
        return list(range(len(text.split())))

    def decode(self, ids):
        return " ".join("w" for _ in ids)


@pytest.fixture(scope="module")
def knowledge():
    return KnowledgeBase.build(PASSAGES)


def always(letter):
    return lambda prompt, config: [(f"Reasoning. Answer: {letter}", letter)]


def test_accuracy_counts_wrong_and_unanswered(knowledge):
    rule = lambda prompt, config: [("no idea", None)] if "freeze" in prompt else [("Answer: B", "B")]
    result = evaluate(ScriptedStudent(rule), QUESTIONS, "kard-bm25", knowledge=knowledge, progress=False)
    assert (result.score.total, result.score.correct, result.score.unanswered) == (3, 2, 1)
    assert [r.correct for r in result.records] == [True, False, True]


def test_conditions_build_the_papers_prompts(knowledge):
    retrieval = RetrievalConfig(top_k=1)
    rows = {}
    for name in ("finetune", "reasoning", "kard-bm25"):
        student = ScriptedStudent(always("B"))
        result = evaluate(student, QUESTIONS[:1], name, knowledge=knowledge, retrieval=retrieval, progress=False)
        rows[name] = (student.prompts[0], result.records[0].passage_ids)
    assert rows["finetune"][0].endswith("Answer:") and "Explanation:" not in rows["finetune"][0]
    assert "Knowledge:" not in rows["reasoning"][0] and rows["reasoning"][0].endswith("Explanation:")
    assert "Knowledge: Plants: Plants absorb carbon dioxide" in rows["kard-bm25"][0]
    assert rows["kard-bm25"][1] == ("p-plant",)
    assert rows["finetune"][1] == rows["reasoning"][1] == ()


def test_oracle_retrieves_with_the_teacher_rationale(knowledge):
    oracle = {"q1": "Ice forms when water freezes at zero degrees."}
    result = evaluate(ScriptedStudent(always("B")), QUESTIONS[:1], "oracle", knowledge=knowledge,
                      retrieval=RetrievalConfig(top_k=1), oracle=oracle, progress=False)
    assert result.records[0].passage_ids == ("p-ice",)


def test_oracle_without_rationale_is_a_clear_error(knowledge):
    with pytest.raises(DataError, match="no teacher rationale.*--oracle-rationales"):
        evaluate(ScriptedStudent(always("B")), QUESTIONS[:1], "oracle", knowledge=knowledge, progress=False)


def test_reranker_order_decides_the_passages(knowledge):
    class Reverse:
        name = "reverse"

        def rerank(self, question, hits, k=None):
            ranked = [h.with_rerank(float(i), i + 1) for i, h in enumerate(reversed(hits))]
            return ranked[:k] if k else ranked

    result = evaluate(ScriptedStudent(always("B")), QUESTIONS[:1], "kard-reranker", knowledge=knowledge,
                      reranker=Reverse(), retrieval=RetrievalConfig(top_k=1, candidates=2), progress=False)
    bm25_top2 = [h.passage.id for h in knowledge.search(QUESTIONS[0].text, 2)]
    assert result.records[0].passage_ids == (bm25_top2[-1],)


def test_self_consistency_votes(knowledge):
    rule = lambda prompt, config: [("a", "A"), ("b", "B"), ("b2", "B"), ("none", None), ("a2", "A")][: config.samples]
    result = evaluate(ScriptedStudent(rule), QUESTIONS[:1], "reasoning", generation=GenerationConfig(samples=5), progress=False)
    record = result.records[0]
    assert record.answer == "A"  # 2-2 tie: the answer seen first wins
    assert record.votes == {"A": 2, "B": 2} and record.sample_answers == ("A", "B", "B", None, "A")


def test_resume_answers_only_missing_questions(tmp_path: Path, knowledge):
    out = tmp_path / "kard.jsonl"
    first = ScriptedStudent(always("B"))
    full = evaluate(first, QUESTIONS, "kard-bm25", knowledge=knowledge, out=out, progress=False)
    lines = out.read_text().splitlines()
    out.write_text(lines[0] + "\n" + lines[1][:20])  # an interrupted run: one line, then a torn one
    second = ScriptedStudent(always("B"))
    resumed = evaluate(second, QUESTIONS, "kard-bm25", knowledge=knowledge, out=out, progress=False)
    assert len(second.prompts) == 2
    assert [r.answer for r in resumed.records] == [r.answer for r in full.records]
    assert list(read_records(out)) == ["q1", "q2", "q3"]


def test_results_file_of_another_condition_is_refused(tmp_path: Path, knowledge):
    out = tmp_path / "results.jsonl"
    evaluate(ScriptedStudent(always("B")), QUESTIONS[:1], "reasoning", out=out, progress=False)
    with pytest.raises(ConfigError, match="separate --out file"):
        evaluate(ScriptedStudent(always("B")), QUESTIONS[:1], "kard-bm25", knowledge=knowledge, out=out, progress=False)


def test_resuming_with_other_settings_is_refused(tmp_path: Path, knowledge):
    out = tmp_path / "kard.jsonl"
    evaluate(ScriptedStudent(always("B")), QUESTIONS[:1], "kard-bm25", knowledge=knowledge, out=out, progress=False,
             retrieval=RetrievalConfig(top_k=1))
    assert (tmp_path / "kard.settings.json").is_file()
    with pytest.raises(ConfigError, match="other settings .changed: retrieval.*new --out folder"):
        evaluate(ScriptedStudent(always("B")), QUESTIONS, "kard-bm25", knowledge=knowledge, out=out, progress=False,
                 retrieval=RetrievalConfig(top_k=2))
    other_student = ScriptedStudent(always("A"))
    other_student.location = "runs/another-student"
    with pytest.raises(ConfigError, match="changed: student"):
        evaluate(other_student, QUESTIONS, "kard-bm25", knowledge=knowledge, out=out, progress=False,
                 retrieval=RetrievalConfig(top_k=1))
    assert len(read_records(out)) == 1  # the refused runs wrote nothing


def test_a_reranker_the_condition_does_not_use_does_not_block_resuming(tmp_path: Path, knowledge):
    class NamedReranker:
        name = "some-reranker"

    out = tmp_path / "kard.jsonl"
    evaluate(ScriptedStudent(always("B")), QUESTIONS[:1], "kard-bm25", knowledge=knowledge, out=out, progress=False,
             reranker=NamedReranker())
    resumed = evaluate(ScriptedStudent(always("B")), QUESTIONS, "kard-bm25", knowledge=knowledge, out=out,
                       progress=False)
    assert len(resumed.records) == 3


def test_questions_without_gold_are_refused(knowledge):
    unlabelled = Question("u", "Any question?", {"A": "x", "B": "y"})
    with pytest.raises(DataError, match="no gold answer"):
        evaluate(ScriptedStudent(always("A")), [unlabelled], "reasoning", progress=False)


def test_unknown_condition():
    with pytest.raises(ConfigError, match="unknown condition"):
        evaluate(ScriptedStudent(always("A")), QUESTIONS, "magic", progress=False)
    assert set(CONDITIONS) == {"finetune", "reasoning", "kard-bm25", "kard-reranker", "oracle"}


def test_greedy_evaluation_of_a_real_tiny_model_is_deterministic(tmp_path: Path, knowledge):
    from kard.student import Student
    from tests.tiny_models import save_tiny_decoder

    student = Student.load(save_tiny_decoder(tmp_path / "tiny"))
    generation = GenerationConfig(max_new_tokens=12)
    runs = [evaluate(student, QUESTIONS, "kard-bm25", knowledge=knowledge, generation=generation, progress=False)
            for _ in range(2)]
    assert runs[0].records[0].tokens_out > 0
    assert [(r.answer, r.rationale) for r in runs[0].records] == [(r.answer, r.rationale) for r in runs[1].records]


@pytest.mark.parametrize("condition", ["kard-bm25", "finetune", "reasoning"])
def test_batched_evaluation_matches_one_question_at_a_time(knowledge, tmp_path, condition):
    """The same records (answers, rationales, passages, answer sources) from padded batches and from one-by-one."""
    from kard.student import Student
    from tiny_models import save_tiny_decoder

    student = Student.load(save_tiny_decoder(tmp_path / "tiny"))
    config = GenerationConfig(max_new_tokens=12)
    one = evaluate(student, QUESTIONS, condition, knowledge=knowledge, generation=config, progress=False, batch_size=1)
    batched = evaluate(student, QUESTIONS, condition, knowledge=knowledge, generation=config, progress=False,
                       batch_size=3)

    def content(result):
        return [(r.answer, r.rationale, r.passage_ids, r.answer_source, r.sample_answers) for r in result.records]

    assert content(batched) == content(one)
    assert all(r.answer in ("A", "B") for r in batched.records)  # never unreadable: chosen when not parsed


def test_resuming_with_other_oracle_rationales_is_refused(tmp_path: Path, knowledge):
    out = tmp_path / "oracle.jsonl"
    rationales = {q.id: f"{q.text} rationale" for q in QUESTIONS}
    evaluate(ScriptedStudent(always("B")), QUESTIONS[:1], "oracle", knowledge=knowledge, out=out, progress=False,
             oracle=rationales)
    edited = {**rationales, QUESTIONS[0].id: "The moon orbits the earth."}
    with pytest.raises(ConfigError, match="changed: oracle_rationales"):
        evaluate(ScriptedStudent(always("B")), QUESTIONS, "oracle", knowledge=knowledge, out=out, progress=False,
                 oracle=edited)
    resumed = evaluate(ScriptedStudent(always("B")), QUESTIONS, "oracle", knowledge=knowledge, out=out,
                       progress=False, oracle=rationales)
    assert len(resumed.records) == 3


def test_resuming_with_another_knowledge_base_of_the_same_size_is_refused(tmp_path: Path, knowledge):
    out = tmp_path / "kard.jsonl"
    evaluate(ScriptedStudent(always("B")), QUESTIONS[:1], "kard-bm25", knowledge=knowledge, out=out, progress=False)
    edited = [Passage(p.id, p.title, p.text + " Edited.") for p in PASSAGES]
    with pytest.raises(ConfigError, match="changed: knowledge"):
        evaluate(ScriptedStudent(always("B")), QUESTIONS, "kard-bm25", knowledge=KnowledgeBase.build(edited),
                 out=out, progress=False)


def test_resuming_with_a_retrained_reranker_of_the_same_name_is_refused(tmp_path: Path, knowledge):
    class BlendReranker:
        name, kind, backbone, trained, training_info, b = "reranker", "dense", "minilm", True, None, 9.0

        def __init__(self, a: float):
            self.a = a

        def rerank(self, question, hits, k=None):
            return list(hits)[:k]

    out = tmp_path / "kard.jsonl"
    evaluate(ScriptedStudent(always("B")), QUESTIONS[:1], "kard-reranker", knowledge=knowledge, out=out,
             progress=False, reranker=BlendReranker(a=0.4))
    with pytest.raises(ConfigError, match="changed: reranker_model"):
        evaluate(ScriptedStudent(always("B")), QUESTIONS, "kard-reranker", knowledge=knowledge, out=out,
                 progress=False, reranker=BlendReranker(a=0.7))


def test_resuming_on_another_device_or_dtype_is_refused(tmp_path: Path, knowledge):
    class Model:
        device = "cpu"

    out = tmp_path / "kard.jsonl"
    evaluate(ScriptedStudent(always("B")), QUESTIONS[:1], "kard-bm25", knowledge=knowledge, out=out, progress=False)
    on_gpu = ScriptedStudent(always("B"))
    on_gpu.model, on_gpu.model.device = Model(), "cuda:0"
    with pytest.raises(ConfigError, match="changed: device"):
        evaluate(on_gpu, QUESTIONS, "kard-bm25", knowledge=knowledge, out=out, progress=False)
    in_bfloat16 = ScriptedStudent(always("B"))
    in_bfloat16.dtype = "bfloat16"
    with pytest.raises(ConfigError, match="changed: dtype"):
        evaluate(in_bfloat16, QUESTIONS, "kard-bm25", knowledge=knowledge, out=out, progress=False)


def test_an_open_answer_is_judged_as_prediction_judges_it(tmp_path: Path):
    """The same words up to case and punctuation: right in the record, in the score and in a resumed file."""
    from kard.evaluation import record_of
    from kard.pipeline import make_question
    from kard.records import Prediction

    question = make_question("What gas do plants take in?", qid="open-1", kind="open", answer="carbon dioxide")
    prediction = Prediction(question, (), (), "prompt", "raw", "Plants take it in.", "Carbon dioxide.")
    assert prediction.is_correct and record_of(prediction, CONDITIONS["reasoning"]).correct
    out = tmp_path / "open.jsonl"
    result = evaluate(ScriptedStudent(lambda p, c: [("Answer: Carbon dioxide.", "Carbon dioxide.")]), [question],
                      "reasoning", out=out, progress=False)
    assert [r.correct for r in result.records] == [True] and result.score.correct == 1
    out.write_text(out.read_text().replace('"correct": true', '"correct": false'))  # judged by exact match before
    resumed = evaluate(ScriptedStudent(always("A")), [question], "reasoning", out=out, progress=False)
    assert resumed.records[0].correct and resumed.score.correct == 1


def test_an_out_folder_or_a_file_in_place_of_its_folder_is_refused_clearly(tmp_path: Path):
    folder = tmp_path / "results"
    folder.mkdir()
    with pytest.raises(ConfigError, match=r"results is a folder.*Fix: .*reasoning\.jsonl"):
        evaluate(ScriptedStudent(always("B")), QUESTIONS[:1], "reasoning", out=folder, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]  # no settings file written beside it
    (tmp_path / "notes").write_text("")
    with pytest.raises(ConfigError, match="a file is in the way"):
        evaluate(ScriptedStudent(always("B")), QUESTIONS[:1], "reasoning", out=tmp_path / "notes" / "r.jsonl",
                 progress=False)

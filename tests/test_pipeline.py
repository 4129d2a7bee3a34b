"""Pipeline: BM25 -> optional reranker -> student, on a four-sentence knowledge base and tiny students."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import pytest

from kard.config import GenerationConfig, RetrievalConfig
from kard.errors import ConfigError, DataError, KardError
from kard.knowledge import KnowledgeBase
from kard.pipeline import (
    Pipeline, check_question, fit_prompt, make_question, read_answers, retrieval_query, vote_key,
)
from kard.prompts import parse_free_answer, student_input
from kard.records import Hit, Passage, Prediction, Question, Sample
from kard.student import Student
from tiny_models import save_tiny_decoder, save_tiny_t5

PASSAGES = [
    Passage("sun", "Sun", "The sun is a star at the centre of the solar system."),
    Passage("plants", "Photosynthesis", "Plants absorb carbon dioxide and release oxygen in sunlight."),
    Passage("moon", "Moon", "The moon orbits the earth about once a month."),
    Passage("water", "Water", "Water boils at one hundred degrees Celsius at sea level."),
]
QUESTION = Question(id="q-plants", text="Which gas do plants absorb from the air?",
                    options={"A": "oxygen", "B": "carbon dioxide", "C": "helium"}, answer="B")
SHORT = GenerationConfig(max_new_tokens=6)


class ReverseReranker:
    """A fake reranker: puts BM25's order upside down, so its effect is visible."""

    name = "reverse"

    def rerank(self, question: Question | str, hits: Sequence[Hit], k: int | None = None) -> list[Hit]:
        ordered = list(reversed(hits))
        scored = [hit.with_rerank(score=float(len(ordered) - i), rank=i + 1) for i, hit in enumerate(ordered)]
        return scored[:k] if k else scored


@pytest.fixture(scope="module")
def knowledge() -> KnowledgeBase:
    return KnowledgeBase.build(PASSAGES)


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory) -> Student:
    return Student.load(save_tiny_decoder(tmp_path_factory.mktemp("student") / "tiny"))


@pytest.fixture(scope="module")
def t5(tmp_path_factory: pytest.TempPathFactory) -> Student:
    return Student.load(save_tiny_t5(tmp_path_factory.mktemp("student") / "tiny-t5"))


def test_answer_fills_every_field(knowledge: KnowledgeBase, student: Student) -> None:
    prediction = Pipeline(knowledge, student, generation=SHORT).answer(QUESTION)
    assert isinstance(prediction, Prediction) and prediction.question == QUESTION
    assert prediction.candidates[0].passage.id == "plants" and prediction.candidates[0].bm25_rank == 1
    assert [h.bm25_rank for h in prediction.candidates] == list(range(1, len(prediction.candidates) + 1))
    assert [h.passage.id for h in prediction.passages] == [h.passage.id for h in prediction.candidates[:2]]
    assert prediction.prompt == student_input(QUESTION, [h.passage for h in prediction.passages])
    assert prediction.raw_output and len(prediction.samples) == 1
    assert prediction.raw_output == prediction.samples[0].raw_output
    assert prediction.rationale == prediction.samples[0].rationale and prediction.answer == prediction.samples[0].answer
    assert prediction.tokens_in == student.count_tokens(prediction.prompt)
    assert 1 <= prediction.tokens_out <= SHORT.max_new_tokens
    timings = prediction.timings
    assert timings.rerank_s is None and timings.first_token_s is not None
    assert 0 < timings.retrieval_s <= timings.total_s and 0 < timings.first_token_s <= timings.generation_s <= timings.total_s
    assert prediction.truncation is None
    assert prediction.student_name == "tiny" and prediction.reranker_name is None
    assert prediction.decoding["strategy"] == "greedy" and prediction.decoding["chat_template"] is True
    assert prediction.decoding["prompt_version"] and prediction.decoding["top_k_passages"] == 2


def test_reranker_orders_the_passages_and_keeps_bm25_ranks(knowledge: KnowledgeBase, student: Student) -> None:
    pipeline = Pipeline(knowledge, student, reranker=ReverseReranker(), generation=SHORT)
    candidates, passages, timings = pipeline.retrieve(QUESTION)
    assert [h.bm25_rank for h in candidates] == list(range(1, len(candidates) + 1))  # BM25 order kept
    assert all(h.rerank_rank is not None for h in candidates)
    assert [h.passage.id for h in passages] == [h.passage.id for h in reversed(candidates)][:2]
    assert passages[0].rerank_rank == 1 and timings.rerank_s is not None
    assert pipeline.answer(QUESTION).reranker_name == "reverse"


def test_self_consistency_votes_over_all_samples(knowledge: KnowledgeBase, student: Student) -> None:
    config = GenerationConfig(max_new_tokens=6, samples=3, seed=1)
    prediction = Pipeline(knowledge, student, generation=config).answer(QUESTION)
    assert len(prediction.samples) == 3
    answers = [s.answer for s in prediction.samples]
    assert sum(prediction.votes.values()) == sum(a is not None for a in answers)
    if prediction.answer is not None:
        assert prediction.votes[prediction.answer] == max(prediction.votes.values())
    assert prediction.decoding["samples"] == 3 and prediction.decoding["seed"] == 1
    assert prediction.tokens_out == sum(s.tokens_out for s in prediction.samples)


def test_stream_yields_text_then_the_same_prediction(knowledge: KnowledgeBase, student: Student) -> None:
    pipeline = Pipeline(knowledge, student, generation=SHORT)
    items = list(pipeline.stream(QUESTION))
    chunks, final = items[:-1], items[-1]
    assert chunks and all(isinstance(c, str) for c in chunks)
    assert isinstance(final, Prediction)
    assert "".join(chunks).strip() == final.raw_output
    assert final.raw_output == pipeline.answer(QUESTION).raw_output  # greedy: stream == answer
    assert final.timings.first_token_s is not None


def test_stream_with_samples_gives_n_samples(knowledge: KnowledgeBase, student: Student) -> None:
    config = GenerationConfig(max_new_tokens=4, samples=3)
    final = list(Pipeline(knowledge, student, generation=config).stream(QUESTION))[-1]
    assert isinstance(final, Prediction) and len(final.samples) == 3


def test_t5_student_answers_too(knowledge: KnowledgeBase, t5: Student) -> None:
    prediction = Pipeline(knowledge, t5, generation=SHORT).answer(QUESTION)
    assert prediction.raw_output and prediction.decoding["chat_template"] is False


def test_long_passages_are_cut_before_the_question(knowledge: KnowledgeBase, student: Student) -> None:
    short_prompt = student.count_tokens(student_input(QUESTION, []))
    generation = GenerationConfig(max_new_tokens=6, max_input_tokens=short_prompt + 12)
    prediction = Pipeline(knowledge, student, generation=generation).answer(QUESTION)
    assert prediction.tokens_in <= generation.max_input_tokens
    assert prediction.truncation and "passage" in prediction.truncation and "question" not in prediction.truncation
    assert QUESTION.text in prediction.prompt
    assert len(prediction.passages) <= 1


def test_question_is_cut_when_passages_are_not_enough(student: Student) -> None:
    long_question = replace(QUESTION, text="Which gas do plants absorb? " * 60)
    budget = student.count_tokens(student_input(QUESTION, []))
    hits = [Hit(PASSAGES[1], 1.0, 1)]
    fitted = fit_prompt(long_question, hits, student.count_tokens, student.text_ids, student.decode, budget)
    assert fitted.tokens <= budget and student.count_tokens(fitted.prompt) == fitted.tokens
    assert fitted.passages == ()
    assert "dropped passage plants" in fitted.truncation and "question cut" in fitted.truncation
    with pytest.raises(DataError, match="options"):
        fit_prompt(QUESTION, hits, student.count_tokens, student.text_ids, student.decode, 5)


def test_prompt_that_fits_is_untouched(student: Student) -> None:
    hits = [Hit(p, 1.0, i + 1) for i, p in enumerate(PASSAGES)]
    fitted = fit_prompt(QUESTION, hits, student.count_tokens, student.text_ids, student.decode, 10_000)
    assert fitted.truncation is None and fitted.passages == tuple(hits)


def test_context_length_limits_the_budget(knowledge: KnowledgeBase, tmp_path: Path) -> None:
    small = Student.load(save_tiny_decoder(tmp_path / "small", max_positions=40))
    with pytest.raises(ConfigError, match="max_new_tokens"):
        Pipeline(knowledge, small, generation=GenerationConfig(max_new_tokens=64)).answer(QUESTION)


def test_bad_questions_are_clear_errors(knowledge: KnowledgeBase, student: Student) -> None:
    pipeline = Pipeline(knowledge, student, generation=SHORT)
    with pytest.raises(DataError, match="no text.*Fix"):
        pipeline.answer(replace(QUESTION, text="   "))
    with pytest.raises(DataError, match="2 or more"):
        pipeline.answer(replace(QUESTION, options={"A": "oxygen"}))
    with pytest.raises(DataError, match="bad letters"):
        check_question(replace(QUESTION, options={"A": "oxygen", "bb": "helium"}))
    with pytest.raises(DataError, match="Question"):
        pipeline.answer("Which gas?")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        Pipeline(knowledge, student, retrieval=RetrievalConfig(top_k=0))


def test_query_can_include_the_options(knowledge: KnowledgeBase, student: Student) -> None:
    question = replace(QUESTION, text="Which one is it?", options={"A": "the moon", "B": "boiling water"})
    assert retrieval_query(question, "question+options") == "Which one is it? the moon boiling water"
    pipeline = Pipeline(knowledge, student, retrieval=RetrievalConfig(query="question+options"), generation=SHORT)
    _, passages, _ = pipeline.retrieve(question)
    assert {h.passage.id for h in passages} == {"moon", "water"}
    with pytest.raises(ConfigError, match="query"):
        Pipeline(knowledge, student, retrieval=RetrievalConfig(query="rationale"))


def test_make_question_reads_typed_options() -> None:
    question = make_question(" Which gas? ", "A) oxygen B) carbon dioxide")
    assert question.text == "Which gas?" and dict(question.options) == {"A": "oxygen", "B": "carbon dioxide"}
    assert dict(make_question("Which?", {"a": "x", "b": "y"}).options) == {"A": "x", "B": "y"}
    with pytest.raises(KardError, match="two options"):
        make_question("Which gas?", "just one option")
    with pytest.raises(DataError, match="the question is empty"):
        make_question("", "A) x B) y")
    inline = make_question("Which gas do plants take in? A) oxygen B) carbon dioxide")  # options in the text
    assert (inline.text, inline.kind, dict(inline.options)) == ("Which gas do plants take in?", "choice",
                                                               {"A": "oxygen", "B": "carbon dioxide"})


def test_more_than_26_options_is_a_clear_error() -> None:
    options = {f"{chr(65 + i // 26)}{chr(65 + i % 26)}" if i >= 26 else chr(65 + i): f"option {i}" for i in range(27)}
    with pytest.raises(DataError, match=r"27 options; at most 26 \(A-Z\) are supported.*Fix"):
        check_question(replace(QUESTION, options=options))
    with pytest.raises(DataError, match="at most 26"):
        make_question("Which?", "\n".join(f"option {i}" for i in range(30)))


def test_cli_ask_prints_passages_answer_and_timings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kard.__main__ import main

    folder = save_tiny_decoder(tmp_path / "cli-student")
    facts = tmp_path / "facts.txt"
    facts.write_text("\n".join(p.text for p in PASSAGES) + "\n", encoding="utf-8")
    code = main(["ask", QUESTION.text, "--options", "A) oxygen B) carbon dioxide C) helium", "--student", str(folder),
                 "--knowledge", str(facts), "--max-new-tokens", "4", "--k", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "BM25 #1" in out and "carbon dioxide and release oxygen" in out
    assert "Answer:" in out and "first token" in out and "tokens/s" in out
    assert out.startswith(f"Question (multiple choice): {QUESTION.text}\n")  # a typed question: no internal id


def test_cli_ask_rejects_bad_input_before_loading_a_model(capsys: pytest.CaptureFixture[str]) -> None:
    from kard.__main__ import main

    assert main(["ask", "Which gas?", "--options", "only one", "--student", "/no/such/model"]) == 2
    assert "two options" in capsys.readouterr().err
    assert main(["ask", "--sample", "no-such-demo-id"]) == 2
    assert "no demo question" in capsys.readouterr().err


def test_cli_ask_reports_a_missing_reranker_before_loading_the_student(monkeypatch, tmp_path, capsys) -> None:
    from kard.__main__ import main
    from kard.student import Student

    def must_not_load(*args, **kwargs):
        raise AssertionError("the student was loaded before the reranker was checked")

    monkeypatch.setattr(Student, "load", must_not_load)
    facts = tmp_path / "facts.txt"
    facts.write_text("\n".join(p.text for p in PASSAGES) + "\n", encoding="utf-8")
    assert main(["ask", "Which gas?", "--options", "A) x B) y", "--knowledge", str(facts),
                 "--reranker", str(tmp_path / "no-such-reranker")]) == 2
    assert "no-such-reranker' not found" in capsys.readouterr().err


def test_make_question_without_options_is_yes_no_or_open() -> None:
    yes_no = make_question("Is the sun a star?", "")
    assert yes_no.kind == "yesno" and dict(yes_no.options) == {"A": "yes", "B": "no"}
    assert make_question("Is the sun a star?", None, answer="no").answer == "B"
    open_question = make_question("Which gas do plants absorb?", "", answer="carbon dioxide")
    assert open_question.kind == "open" and open_question.options == {} and open_question.answer == "carbon dioxide"
    switched = make_question("Is the sun a star?", "A) x B) y", kind="open")  # the person's kind wins
    assert switched.kind == "open" and switched.options == {}
    with pytest.raises(DataError, match="needs its options"):
        make_question("Which gas?", "", kind="choice")


def test_check_question_knows_the_kinds() -> None:
    check_question(Question("o", "Which gas?", {}, kind="open"))
    check_question(Question("y", "Is it?", {"A": "yes", "B": "no"}, kind="yesno"))
    with pytest.raises(DataError, match="open but has options"):
        check_question(replace(QUESTION, kind="open"))
    with pytest.raises(DataError, match="exactly A. yes, B. no"):
        check_question(replace(QUESTION, kind="yesno"))
    with pytest.raises(DataError, match="unknown kind 'free'"):
        check_question(replace(QUESTION, kind="free"))


def test_yes_no_question_is_answered_with_a_letter_shown_as_yes_or_no(knowledge: KnowledgeBase,
                                                                      student: Student) -> None:
    question = make_question("Do plants absorb carbon dioxide?", "")
    prediction = Pipeline(knowledge, student, generation=SHORT).answer(question)
    assert "A. yes\nB. no" in prediction.prompt and prediction.answer in ("A", "B")  # letter probabilities decide
    assert prediction.passages[0].passage.id == "plants"
    assert retrieval_query(question, "question+options") == question.text  # "yes no" carries no topic


def test_open_question_gets_a_free_text_answer_and_never_a_letter(knowledge: KnowledgeBase, student: Student) -> None:
    question = make_question("Which gas do plants absorb from the air?", "")
    pipeline = Pipeline(knowledge, student, generation=SHORT)
    prediction = pipeline.answer(question)
    assert "Answer: <short answer>" in prediction.prompt and "\nA. " not in prediction.prompt
    assert prediction.answer == parse_free_answer(prediction.raw_output)[1]  # read from the text, or None
    assert prediction.samples[0].answer_source == ("parsed" if prediction.answer else "none")
    *chunks, streamed = list(pipeline.stream(question))
    assert streamed.answer == prediction.answer and "".join(chunks).strip() == prediction.raw_output
    batched = pipeline.answer_many([question, QUESTION])
    assert batched[0].answer == parse_free_answer(batched[0].raw_output)[1] and batched[1].answer in ("A", "B", "C")


def test_open_answers_are_read_and_voted_as_text() -> None:
    open_question = Question("o", "Which gas?", {}, kind="open")
    samples = [Sample("CO2 it is.\nAnswer: Carbon dioxide.", "x", "A"), Sample("Answer: B", "x", "B", 3, "chosen"),
               Sample("so the answer is carbon dioxide", "x", None)]
    read = read_answers(open_question, samples)
    assert [s.answer for s in read] == ["Carbon dioxide", None, "carbon dioxide"]
    assert [s.answer_source for s in read] == ["parsed", "none", "parsed"]
    assert read_answers(QUESTION, samples) == samples
    assert {vote_key(open_question, s.answer) for s in read} == {"carbon dioxide", None}
    assert vote_key(QUESTION, "B") == "B"


def test_the_option_a_rationale_concludes_with_is_the_answer() -> None:
    concluded = Sample("Leaves take it in. So the answer is carbon dioxide.\nAnswer: A",
                       "Leaves take it in. So the answer is carbon dioxide.", "A")
    agreeing = Sample("So the answer is the Carbon Dioxide!\nAnswer: B", "So the answer is the Carbon Dioxide!", "B")
    unclear = Sample("So the answer is a gas.\nAnswer: C", "So the answer is a gas.", "C")
    chosen = Sample("So the answer is oxygen.", "So the answer is oxygen.", "B", 4, "chosen")
    read = read_answers(QUESTION, [concluded, agreeing, unclear, chosen])
    assert [(s.answer, s.answer_source) for s in read] == [("B", "stated"), ("B", "parsed"), ("C", "parsed"),
                                                            ("A", "stated")]
    yes_no = Question("y", "Do plants absorb carbon dioxide?", {"A": "yes", "B": "no"}, kind="yesno")
    assert read_answers(yes_no, [Sample("So the answer is no.\nAnswer: A", "So the answer is no.", "A")])[0].answer == "B"
    same_text = Question("d", "Which?", {"A": "gas", "B": "Gas.", "C": "rock"})
    assert read_answers(same_text, [unclear])[0].answer == "C"  # "a gas" names two options: the letter stays


def test_cli_ask_answers_a_free_question(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kard.__main__ import main

    folder = save_tiny_decoder(tmp_path / "cli-student")
    facts = tmp_path / "facts.txt"
    facts.write_text("\n".join(p.text for p in PASSAGES) + "\n", encoding="utf-8")
    common = ["--student", str(folder), "--knowledge", str(facts), "--max-new-tokens", "4", "--k", "1"]
    assert main(["ask", "Do plants absorb carbon dioxide?", *common]) == 0
    out = capsys.readouterr().out
    assert "(yes/no question): Do plants absorb" in out and re.search(r"\nAnswer: (yes|no)\b", out)
    assert main(["ask", "Do plants absorb carbon dioxide?", "--kind", "open", *common]) == 0
    out = capsys.readouterr().out
    assert "(open question)" in out and "  A. " not in out and not re.search(r"\nAnswer: [A-E]\.", out)
    assert main(["ask", "Which gas?", "--kind", "choice", "--student", "/no/such/model"]) == 2
    assert "needs its options" in capsys.readouterr().err


def test_pipeline_load_takes_a_reranker_path_like_a_str(monkeypatch, knowledge: KnowledgeBase, student: Student,
                                                         tmp_path: Path) -> None:
    import kard.reranker.encoder as encoder

    loaded: list[object] = []
    monkeypatch.setattr(encoder, "load_reranker", lambda folder: loaded.append(folder) or ReverseReranker())
    monkeypatch.setattr(Student, "load", lambda *args, **kwargs: student)
    pipeline = Pipeline.load(knowledge=knowledge, reranker=tmp_path / "reranker", generation=SHORT)
    assert loaded == [tmp_path / "reranker"] and pipeline.answer(QUESTION).reranker_name == "reverse"


def test_pipeline_load_refuses_a_missing_reranker_path_before_the_student(monkeypatch, knowledge: KnowledgeBase,
                                                                         tmp_path: Path) -> None:
    def must_not_load(*args, **kwargs):
        raise AssertionError("the student was loaded before the reranker was checked")

    monkeypatch.setattr(Student, "load", must_not_load)
    with pytest.raises(KardError, match="no-such-reranker"):
        Pipeline.load(knowledge=knowledge, reranker=tmp_path / "no-such-reranker")
    with pytest.raises(ConfigError, match="has no rerank method"):
        Pipeline.load(knowledge=knowledge, reranker=42)


def test_a_reranker_without_rerank_is_refused_up_front(knowledge: KnowledgeBase, student: Student) -> None:
    with pytest.raises(ConfigError, match="'demo/reranker' .str. has no rerank method"):
        Pipeline(knowledge, student, reranker="demo/reranker")


@pytest.mark.parametrize("options, answer, kind", [("A) a B) b", "Z", None), (None, "maybe", "yesno")],
                         ids=["letter", "yes-no"])
def test_a_gold_answer_that_is_not_an_option_is_refused(options: str | None, answer: str, kind: str | None) -> None:
    with pytest.raises(DataError, match="gold answer .* is not one of its options A, B"):
        make_question("Which one?", options, answer=answer, kind=kind)
    assert make_question("Which one?", "A) a B) b", answer="b").answer == "B"

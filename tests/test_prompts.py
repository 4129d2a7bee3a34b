import pytest

from kard.errors import DataError
from kard.prompts import parse_answer, parse_options, strip_answer_line, student_input, student_target
from kard.records import Passage, Question

QUESTION = Question(id="q1", text="Which gas do plants take in?", options={"A": "oxygen", "B": "carbon dioxide"}, answer="B")


def test_student_input_has_question_options_knowledge_and_cue():
    prompt = student_input(QUESTION, [Passage("p1", "Photosynthesis", "Plants absorb carbon dioxide.")])
    assert "Question: Which gas do plants take in?" in prompt
    assert "A. oxygen\nB. carbon dioxide" in prompt
    assert "Knowledge: Photosynthesis: Plants absorb carbon dioxide." in prompt
    assert prompt.endswith("Explanation:")


def test_each_passage_is_on_its_own_line():
    facts = [Passage("f1", "", "the sun is a source of heat"), Passage("f2", "", "heat melts ice")]
    prompt = student_input(QUESTION, facts)
    assert "Knowledge: the sun is a source of heat\nheat melts ice\nExplanation:" in prompt


def test_reasoning_distillation_prompt_has_no_knowledge():
    assert "Knowledge:" not in student_input(QUESTION, [], with_knowledge=False)


def test_target_ends_with_single_answer_line_even_if_rationale_had_one():
    target = student_target("Plants use CO2.\nAnswer: B", "B")
    assert target == " Plants use CO2.\nAnswer: B"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Plants need CO2.\nAnswer: B", "B"),
        ("so the answer is (b).", "B"),
        ("Answer: E\nAnswer: A", "A"),  # the last valid letter after Answer: wins
        ("Option A is wrong, option B fits.", "B"),
        ("I cannot tell.", None),
        ("", None),
        (" B", "B"),  # the fine-tuning baseline writes the bare letter after its "Answer:" cue
        ("C\n", "C"),
        ("(D)", "D"),
        ("A psychic would know.", None),  # an article is not an answer
        (" E", None),  # not an option of this question
    ],
)
def test_parse_answer(text, expected):
    assert parse_answer(text, ["A", "B", "C", "D"])[1] == expected


def test_inline_answer_stays_in_the_rationale():
    assert parse_answer("Plants need CO2, so the answer is B.", ["A", "B"]) == ("Plants need CO2, so the answer is B.", "B")


def test_parse_answer_yes_no_words_fall_back():
    assert parse_answer("Cats cannot fly, so no.", ["A", "B"]) == ("Cats cannot fly, so no.", "B")


def test_strip_answer_line_keeps_the_reasoning():
    assert strip_answer_line("Step one. Step two.\nAnswer: C") == "Step one. Step two."


@pytest.mark.parametrize(
    "text",
    ["A) red B) blue C) green", "A. red\nB. blue\nC. green", "(A) red (B) blue (C) green", "red\nblue\ngreen"],
)
def test_parse_options_formats(text):
    assert parse_options(text) == {"A": "red", "B": "blue", "C": "green"}


def test_parse_options_needs_two():
    with pytest.raises(DataError, match="at least two options"):
        parse_options("just one")


@pytest.mark.parametrize("text", ["A) sugar A) salt B) water", "A) sugar\nA) salt\nB) water", "a. sugar\na. salt"])
def test_parse_options_refuses_a_repeated_letter(text):
    with pytest.raises(DataError, match=r"option letter A is used for more than one option.*Fix: letter the options"):
        parse_options(text)


@pytest.mark.parametrize("text", ["A) sugar C) salt", "A) sugar\nC) salt"])
def test_parse_options_refuses_a_skipped_letter(text):
    with pytest.raises(DataError, match=r"option letters A, C do not run A, B.*Fix"):
        parse_options(text)


@pytest.mark.parametrize("text, expected", [
    ("A) Vitamin A. B) iron", {"A": "Vitamin A.", "B": "iron"}),
    ("A) Vitamin C. B) iron", {"A": "Vitamin C.", "B": "iron"}),
    ("A) Vitamin A.\nB) iron", {"A": "Vitamin A.", "B": "iron"}),
    ("A) a long\nanswer B) short", {"A": "a long\nanswer", "B": "short"}),
])
def test_parse_options_letters_inside_option_text(text, expected):
    assert parse_options(text) == expected


def test_parse_options_allows_at_most_26():
    assert list(parse_options("\n".join(f"option {i}" for i in range(26))))[-1] == "Z"
    with pytest.raises(DataError, match=r"30 options given; at most 26 \(A-Z\) are supported.*Fix"):
        parse_options("\n".join(f"option {i}" for i in range(30)))

"""The student card of an open question whose output ends "Answer: C": the parser reads no answer from a bare letter
(there are no options), and the card says so under the badge instead of showing the letter line as the answer."""

from __future__ import annotations

from kard.prompts import parse_question_answer
from kard.records import CHOICE, OPEN, AskedItem, Prediction, Question
from kard.ui.cards import student_card

AUTUMN = Question("custom", "Why do leaves change colour in autumn?", {}, kind=OPEN)
OUTPUT = "Leaves stop making chlorophyll, so other pigments show. So the answer is autumn colours.\nAnswer: C"
NOTE = "a letter answer (&quot;Answer: C&quot;) was ignored: this question has no options"


def _card(question: Question, output: str) -> str:
    rationale, answer = parse_question_answer(output, question)
    prediction = Prediction(question, (), (), "prompt", output, rationale, answer, student_name="s")
    return student_card(AskedItem.from_prediction(prediction, prompt_version="kard-v1"))


def test_an_open_questions_card_says_a_letter_answer_line_was_ignored():
    card = _card(AUTUMN, OUTPUT)
    assert ">autumn colours &middot; no gold<" in card  # the stated answer, not the letter
    assert NOTE in card and card.index(NOTE) > card.index("kard-badge")


def test_no_note_without_a_letter_line_or_for_a_question_with_options():
    assert "was ignored" not in _card(AUTUMN, OUTPUT.replace("Answer: C", "Answer: autumn colours"))
    assert "was ignored" not in _card(AUTUMN, OUTPUT.replace("Answer: C", "Answer: a change of pigments"))
    lettered = Question("custom", AUTUMN.text, {"A": "cold", "B": "light", "C": "pigments"}, kind=CHOICE)
    card = _card(lettered, OUTPUT)
    assert "was ignored" not in card and "C. pigments" in card


def test_a_letter_line_in_markdown_or_brackets_counts_and_an_answer_word_does_not():
    assert NOTE in _card(AUTUMN, OUTPUT.replace("Answer: C", "Answer: **(C).**"))
    assert "was ignored" not in _card(AUTUMN, OUTPUT.replace("Answer: C", "Answer: Colours"))

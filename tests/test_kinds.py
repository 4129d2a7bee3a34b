"""Question kinds: which kind a typed question is asked as (choice, yes/no, open), and the person's override."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kard.errors import DataError
from kard.kinds import (
    AUTO, KIND_LABELS, KindDecision, as_listed, decide_kind, gold_for, options_for, question_sentence, read_question,
    yes_no_opener,
)
from kard.records import CHOICE, OPEN, YES_NO, YES_NO_OPTIONS, Question

FREE_QUESTIONS = Path(__file__).resolve().parents[1] / "demo" / "free_questions.jsonl"


@pytest.mark.parametrize("text", [
    "Is a tomato a fruit?", "Can penguins fly?", "Did Napoleon ever talk on a telephone?",
    "Would a goldfish survive in the Dead Sea?", "Should someone with lactose intolerance avoid milk?",
    "Has anyone walked on Mars?", "Must a square have four sides?", "Isn't the Sun a star?",
    "Can\u2019t birds see ultraviolet light?", "  does ice float on water?",
    "A child has chickenpox. Is it safe to give her aspirin?",  # the asking sentence decides
])
def test_yes_no_questions_without_options(text):
    decision = decide_kind(text, "")
    assert decision.kind == YES_NO and "no options, and it starts with" in decision.reason


@pytest.mark.parametrize("text", [
    "Why does ice float on water?", "Which planet is closest to the Sun?", "What causes goitre?",
    "How is malaria spread?", "At what temperature does water boil at sea level?",
    "Island nations are usually small. Which one is the largest?", "Isolated islands: why are they odd?",
])
def test_other_questions_without_options_are_open(text):
    assert decide_kind(text, None).kind == OPEN


def test_typed_options_make_a_multiple_choice_question():
    assert decide_kind("Is a tomato a fruit?", "A) fruit B) vegetable") == decide_kind("Is it?", {"A": "x"})
    assert decide_kind("Which gas?", "A) oxygen B) nitrogen").kind == CHOICE


def test_the_demo_free_questions_are_read_as_their_kind():
    rows = [json.loads(line) for line in FREE_QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    wrong = [(row["question"], row["kind"]) for row in rows if decide_kind(row["question"]).kind != row["kind"]]
    assert len(rows) >= 30 and not wrong


def test_the_person_can_switch_the_kind():
    assert decide_kind("Is a tomato a fruit?", "", "open") == decide_kind("Why?", "", OPEN)
    assert decide_kind("Why is the sky blue?", "", YES_NO).reason == "chosen by you"
    assert "typed options are not used" in decide_kind("Which?", "A) x B) y", OPEN).reason
    assert decide_kind("Is a tomato a fruit?", "", AUTO).kind == YES_NO


@pytest.mark.parametrize("override, options, message", [
    ("maybe", "", "unknown question kind 'maybe'.*Fix: use one of auto, choice, yesno, open"),
    (CHOICE, "", "needs its options.*Fix: type at least two options"),
])
def test_bad_overrides_are_clear_errors(override, options, message):
    with pytest.raises(DataError, match=message):
        decide_kind("Is a tomato a fruit?", options, override)


def test_options_and_gold_as_each_kind_stores_them():
    typed = {"A": "x", "B": "y"}
    assert options_for(CHOICE, typed) == typed and options_for(YES_NO, typed) == dict(YES_NO_OPTIONS)
    assert options_for(OPEN, typed) == {}
    assert [gold_for(YES_NO, a) for a in ("yes", "No", "B", None)] == ["A", "B", "B", None]
    assert gold_for(OPEN, " Vitamin D ") == "Vitamin D" and gold_for(CHOICE, "b") == "B"
    assert gold_for(OPEN, "  ") is None
    assert KIND_LABELS[YES_NO] == "yes/no question"


def test_question_sentence_and_opener():
    assert question_sentence("He is 7. Can he run? ") == "Can he run?"
    assert question_sentence("Name the largest ocean") == "Name the largest ocean"
    assert yes_no_opener("Why not?") is None and yes_no_opener("Are cats mammals?") == "Are"


def test_existing_questions_stay_multiple_choice():
    question = Question("q", "Which?", {"A": "x", "B": "y"}, "A")
    assert question.kind == CHOICE and question.letters == ("A", "B") and question.answer_text == "x"
    free = Question("q", "Which planet is closest to the Sun?", {}, "Mercury", kind=OPEN)
    assert free.letters == () and free.answer_text == "Mercury" and free.is_open


def test_an_open_prediction_is_correct_when_its_words_match_the_gold_answer():
    from kard.records import Prediction

    free = Question("q", "Which planet is closest to the Sun?", {}, "Mercury", kind=OPEN)
    assert Prediction(free, (), (), "p", "raw", "r", "mercury.").is_correct
    assert not Prediction(free, (), (), "p", "raw", "r", "Venus").is_correct
    assert Prediction(Question("c", "Which?", {"A": "x", "B": "y"}, "A"), (), (), "p", "raw", "r", "A").is_correct


def test_options_typed_into_the_question_make_it_multiple_choice():
    text, options, decision = read_question("Which is a mammal? A) shark B) dolphin", "")
    assert (text, options, decision) == ("Which is a mammal?", "A) shark B) dolphin",
                                         KindDecision(CHOICE, "options read from the question"))
    assert read_question("Which is a mammal? A) shark B) dolphin", "", "choice")[2].reason == "chosen by you"
    # the options box wins; a person's yes/no or open choice keeps the text whole
    assert read_question("Which? A) x B) y", "A) p B) q")[:2] == ("Which? A) x B) y", "A) p B) q")
    for override in (YES_NO, OPEN):
        assert read_question("Which? A) x B) y", "", override) == ("Which? A) x B) y", "",
                                                                    decide_kind("Which? A) x B) y", "", override))
    assert read_question("Is a tomato a fruit?", None) == ("Is a tomato a fruit?", None,
                                                          decide_kind("Is a tomato a fruit?", None))


def test_a_listed_question_with_yes_no_options_is_a_yes_no_question():
    listed = Question("q", "Would a polar bear meet a penguin?", dict(YES_NO_OPTIONS), "B", "demo-yesno")
    assert (as_listed(listed).kind, as_listed(listed).answer, as_listed(listed).id) == (YES_NO, "B", "q")
    flipped = Question("q", "Which?", {"A": "no", "B": "yes"}, "A", "demo")  # the letters mean other answers
    assert as_listed(flipped) == flipped and as_listed(flipped).kind == CHOICE
    assert as_listed(Question("q", "Which?", {"A": "yes", "B": "no", "C": "maybe"}, "A", "demo")).kind == CHOICE

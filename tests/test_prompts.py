import re
from dataclasses import replace

import pytest

from kard.errors import DataError
from kard.prompts import (
    OPEN_INSTRUCTION, STUDENT_INSTRUCTION, answer_only_input, concluded_answer, normalise_free_answer, parse_answer,
    parse_free_answer, split_inline_options, parse_options, parse_question_answer, same_answer, strip_answer,
    strip_answer_line, student_input, student_target,
)
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


@pytest.mark.parametrize("rationale, answer, options, target", [
    ("Antibodies stimulate the TSH receptor. Answer: A", "A", None,
     " Antibodies stimulate the TSH receptor.\nAnswer: A"),
    ("Leaves take in CO2. answer: (B).", "B", None, " Leaves take in CO2.\nAnswer: B"),
    ("Leaves take in <b>CO2</b> Final answer: B", "B", None, " Leaves take in <b>CO2</b>\nAnswer: B"),
    ("Leaves take in CO2. Answer: carbon dioxide", "B", QUESTION.options, " Leaves take in CO2.\nAnswer: B"),
    ("Scurvy is too little vitamin C. Answer: Vitamin C.", "vitamin C", None,
     " Scurvy is too little vitamin C.\nAnswer: vitamin C"),
    # another answer is the rationale's own conclusion and stays; so does "answer:" inside a sentence
    ("Leaves give off oxygen. Answer: A", "B", None, " Leaves give off oxygen. Answer: A\nAnswer: B"),
    ("The correct answer: B", "B", None, " The correct answer: B\nAnswer: B"),
    ("Leaves take in CO2, answer: B", "B", None, " Leaves take in CO2, answer: B\nAnswer: B"),
    ("Leaves take in CO2. **Answer:** B", "B", None, " Leaves take in CO2.\nAnswer: B"),  # markdown bold
    ("Leaves take in **CO2**. Answer: B", "B", None, " Leaves take in **CO2**.\nAnswer: B"),
])
def test_a_trailing_inline_answer_that_agrees_is_not_repeated_in_the_target(rationale, answer, options, target):
    assert student_target(rationale, answer, options) == target
    assert target.startswith(f" {strip_answer(rationale, answer, options)}\n")


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
        ("Scurvy is caused by a lack of vitamin C.", None),  # a name's letter is no answer
        ("Bones need vitamin D. Hepatitis B) spreads by blood.", None),
        ("Vitamin C prevents scurvy, so it is C.", "C"),  # after a word that names a choice it is one
        ("The options:\nC. Iron\n", "C"),  # a letter starting a line
        ("Option C.", "C"), ("Therefore C.", "C"), ("So D)", "D"), ("Hence C.", "C"), ("It's C.", "C"),
        ("Answer: C, D-dimer", "C"),  # an option's text after its letter is no second answer
        ("Answer: A, B-type natriuretic peptide", "A"), ("Answer: B and C-peptide", "B"),
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


OPEN_QUESTION = Question(id="q-open", text="Which vitamin deficiency causes rickets?", options={}, kind="open")
YES_NO_QUESTION = Question(id="q-yn", text="Is a tomato a fruit?", options={"A": "yes", "B": "no"}, kind="yesno")


def test_open_prompt_has_no_options_and_asks_for_a_short_answer():
    prompt = student_input(OPEN_QUESTION, [Passage("p", "Rickets", "Rickets follows vitamin D deficiency.")])
    assert prompt.startswith(OPEN_INSTRUCTION) and "'Answer: <short answer>'" in prompt
    assert "Question: Which vitamin deficiency causes rickets?\nKnowledge: Rickets: Rickets follows" in prompt
    assert not re.search(r"^[A-E]\. ", prompt, re.MULTILINE) and "letter" not in prompt
    assert answer_only_input(OPEN_QUESTION) == "Question: Which vitamin deficiency causes rickets?\nAnswer:"


def test_yes_no_prompt_is_the_strategyqa_prompt():
    prompt = student_input(YES_NO_QUESTION, [])
    assert prompt.startswith(STUDENT_INSTRUCTION) and "Question: Is a tomato a fruit?\nA. yes\nB. no\n" in prompt
    assert student_input(replace(YES_NO_QUESTION, kind="choice"), []) == prompt


def test_open_target_is_the_rationale_then_the_answer_text():
    assert student_target("Bones need vitamin D.\nAnswer: vitamin D", "vitamin D") == \
        " Bones need vitamin D.\nAnswer: vitamin D"


@pytest.mark.parametrize("text, expected", [
    ("Bones need vitamin D.\nAnswer: vitamin D", ("Bones need vitamin D.", "vitamin D")),
    ("Bones need vitamin D, so the answer is vitamin D.", ("Bones need vitamin D, so the answer is vitamin D.",
                                                          "vitamin D")),
    ("Answer: x\nMore thought.\nAnswer: **Vitamin D**.", ("", "Vitamin D")),  # the last answer line wins
    ("The answer is: the Sun.", ("", "the Sun")),
    ("Water expands as it freezes.\nThe final answer is 100 degrees Celsius.", None),
    ("It is D.\nAnswer: D", ("It is D.", None)),  # no fake letters: a bare letter is no open answer
    ("Vitamin D. So the answer is vitamin D.\nAnswer: (B)", None),  # ... the sentence is used instead
    ("Asdf is a word. So the answer is Asdf qwer.\nAnswer: <short answer>", ("Asdf is a word. So the answer is "
                                                                            "Asdf qwer.", "Asdf qwer")),
    ("No idea.\nAnswer: <short answer>", ("No idea.", None)),  # the prompt's slot copied back is no answer
    ("I am not sure.", ("I am not sure.", None)),
    ("", ("", None)),
])
def test_parse_free_answer(text, expected):
    rationale, answer = parse_free_answer(text)
    if expected is None:
        assert answer in ("100 degrees Celsius", "vitamin D")
    else:
        assert (rationale, answer) == expected


def test_parse_question_answer_follows_the_kind():
    text = "A tomato grows from a flower and holds seeds. So the answer is yes.\nAnswer: A"
    assert parse_question_answer(text, YES_NO_QUESTION)[1] == "A"
    assert parse_question_answer("Tomatoes hold seeds, so yes.", YES_NO_QUESTION)[1] == "A"
    assert parse_question_answer("Soft bones.\nAnswer: vitamin D", OPEN_QUESTION) == ("Soft bones.", "vitamin D")
    assert parse_question_answer("Plants use CO2.\nAnswer: B", QUESTION) == ("Plants use CO2.", "B")


def test_same_answer_compares_open_answers_loosely_and_letters_exactly():
    assert same_answer("The Sun.", "sun", "open") and same_answer("Vitamin-D", "vitamin d", "open")
    assert not same_answer("vitamin C", "vitamin D", "open") and not same_answer("a", "A")
    assert same_answer(None, None) and not same_answer("A", None)
    assert normalise_free_answer("  An Apple! ") == "apple"


def test_stated_option_maps_the_conclusion_to_one_option():
    from kard.prompts import stated_option

    options = {"A": "the Sun", "B": "the Moon", "C": "a comet"}
    assert stated_option("Light comes from it. So the answer is the sun.", options) == "A"
    assert stated_option("The answer is Moon. Later: so the answer is a comet", options) == "C"  # the last one
    assert stated_option("So the answer is Mars.", options) is None
    assert stated_option("No conclusion here.", options) is None and stated_option("the answer is x", {}) is None


def test_concluded_answer_reads_a_stated_option_text_a_letter_or_nothing():
    """What a save checks: the option text after "the answer is" (over a letter named earlier), a letter,
    an open answer; a conclusion in other words is not read (no false alarm on a negation or paraphrase)."""
    assert concluded_answer("Leaves take in CO2. So the answer is carbon dioxide.", QUESTION) == "B"
    assert concluded_answer("Not (A): oxygen is given off. So the answer is Carbon Dioxide", QUESTION) == "B"
    assert concluded_answer("Plants use CO2.\nAnswer: A", QUESTION) == "A"
    assert concluded_answer("Plants breathe carbon dioxide in, not oxygen.", QUESTION) is None
    assert concluded_answer("So the answer is nitrogen.", QUESTION) is None
    assert concluded_answer("Tomatoes hold seeds. So the answer is no.", YES_NO_QUESTION) == "B"
    assert concluded_answer("Soft bones. So the answer is vitamin D.", OPEN_QUESTION) == "vitamin D"


@pytest.mark.parametrize("text, expected", [
    ("Which is a mammal? A) shark B) dolphin C) trout", ("Which is a mammal?", "A) shark B) dolphin C) trout")),
    ("Which is a mammal?\nA. shark\nB. dolphin", ("Which is a mammal?", "A. shark\nB. dolphin")),
    ("Which is a mammal? (A) shark (B) dolphin", ("Which is a mammal?", "(A) shark (B) dolphin")),
    ("Pick the gas: a) oxygen b) neon", ("Pick the gas:", "a) oxygen b) neon")),
    ("A woman is tired. Which vitamin? A) Vitamin A. B) iron", ("A woman is tired. Which vitamin?",
                                                               "A) Vitamin A. B) iron")),
    ('He says "which is it?" A) x B) y', ('He says "which is it?"', "A) x B) y")),  # a closing quote after '?'
    ("Name the mammal. A. shark B. dolphin", ("Name the mammal.", "A. shark B. dolphin")),
    ("Is vitamin A good for the eyes?", None),       # a letter in a sentence is no option
    ("Is Plan A: go home, or Plan B: stay?", None),  # letters in a sentence, not after its end
    ("Sharks live in the A) sea B) desert", None),   # no sentence end before them: could be words
    ("Does vitamin A. B) help?", None),              # no '?', ':' or new line before the options
    ("Which is it? A) x", None),                     # one option is not a choice
    ("Which is it? A) x B) ", None),                 # an empty option
    ("Which is it? A) x A) y", None),                # letters that do not run A, B, C...
    ("A) x B) y", None),                             # options only, no question
])
def test_split_inline_options(text, expected):
    assert split_inline_options(text) == expected


def test_a_lone_digit_on_the_answer_line_yields_to_the_answer_the_rationale_states() -> None:
    """An open question: the student stated "brown" and then numbered an option that is not there; the chip read
    "1". A lone digit still answers where nothing else is stated (a count), and a word on the line still wins."""
    assert parse_free_answer("Cactus live in dry areas. So the answer is Brown.\nAnswer: 1") == (
        "Cactus live in dry areas. So the answer is Brown.", "Brown")
    assert parse_free_answer("A spider has eight legs.\nAnswer: 8")[1] == "8"
    assert parse_free_answer("So the answer is stems.\nAnswer: thick stems")[1] == "thick stems"


@pytest.mark.parametrize("text, expected", [
    ("Because reasons.\n**Answer:** B", "B"),
    ("Okay.\n\n**Final Answer:** C", "C"),
    ("Because reasons.\nAnswer: Option B", "B"),
    ("Because reasons.\nFinal Answer: $\\boxed{B}$", "B"),
    ("So it is $\\boxed{\\text{D}}$.", "D"),
    ("Because reasons.\nAnswer: \uff22", "B"),  # a full-width letter
    ("Because reasons.\nThe answer is: C", "C"),
    ("because reasons.\nanswer: b", "B"),
    ("The answer is a.", "A"),  # a lone lowercase letter is still a letter...
    ("The answer is a vitamin C deficiency, option B.", "B"),  # ...but not the article before a word
    ("The answer is a cold.", None),
    ("Because reasons.\nAnswer: B and C", None),  # two answers are none
    ("Because reasons.\nAnswer: A or B", None),
    ("Because reasons.\nAnswer: (A), (C)", None),
    ("Because reasons.\nAnswer: B. A is wrong.", "B"),
    ("Because reasons.\nAnswer: A, Iron deficiency anemia", "A"),
])
def test_parse_answer_reads_the_formats_teachers_write(text, expected):
    assert parse_answer(text, ["A", "B", "C", "D"])[1] == expected


def test_a_guess_inside_a_think_block_is_neither_the_answer_nor_the_rationale():
    text = "<think>Could be A. Answer: A? Let me check.</think>\nThe inferior leads point to the RCA.\n**Answer:** C"
    assert parse_answer(text, "ABCD") == ("The inferior leads point to the RCA.", "C")
    assert parse_answer("<think>Let me reason... Answer: B</think>", "ABCD") == ("", None)  # only thinking
    assert parse_answer("<think>Answer: B, so far", "ABCD") == ("", None)  # cut off while thinking
    assert parse_answer("Hmm, B? Answer: B.</think>\nIt is C.\nAnswer: C", "ABCD") == ("It is C.", "C")
    assert parse_free_answer("<think>Maybe Mars? Answer: Mars</think>\nIt glows red.\nAnswer: Mars") == (
        "It glows red.", "Mars")
    assert student_target("<think>hmm</think>\nRCA supplies it.\n**Answer:** C", "C") == " RCA supplies it.\nAnswer: C"


def test_a_bold_answer_line_is_cut_from_the_rationale_of_an_open_question():
    assert parse_free_answer("Bones need it.\n**Final Answer:** vitamin D") == ("Bones need it.", "vitamin D")

"""The teacher's chat prompts: few-shot chain-of-thought examples per kind of question, pure functions.

Two modes share the same examples. `rationalize` is the paper's training mode: the gold answer is
shown and the teacher explains it (answer-conditioned rationales). `answer` hides the gold answer, so
the teacher's reply can be compared with the student's. Every reply ends with `Answer: <letter>`, which
`kard.prompts.parse_answer` reads back. An open question (`Question.kind == "open"`, no options) gets
its own system prompt and examples, and ends with `Answer: <short answer>` (`parse_free_answer`).

The examples were written for this project; they are not copied from any benchmark.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Literal, Mapping

from kard.errors import ConfigError, DataError
from kard.prompts import format_options
from kard.records import OPEN, YES_NO_OPTIONS, Question

TEACHER_PROMPT_VERSION = "teacher-v1"
"""Bump when a template or an example changes: the teacher cache keys on it."""

Mode = Literal["rationalize", "answer"]
Kind = Literal["medical", "yesno", "science", "open"]
MODES: tuple[Mode, ...] = ("rationalize", "answer")


@dataclass(frozen=True)
class Example:
    """One worked few-shot example: question, options, gold letter (an open one: the short answer), explanation."""

    text: str
    options: Mapping[str, str]
    answer: str
    explanation: str


_MEDICAL = (
    Example(
        "A 38-year-old woman has had fatigue and shortness of breath on exertion for 4 months. Her menstrual "
        "periods have been very heavy for a year. Her hemoglobin is 9.1 g/dL, the mean corpuscular volume is "
        "71 fL and the serum ferritin is low. Which of the following is the most likely diagnosis?",
        {
            "A": "Iron deficiency anemia",
            "B": "Vitamin B12 deficiency anemia",
            "C": "Anemia of chronic disease",
            "D": "Hereditary spherocytosis",
        },
        "A",
        "The anemia is microcytic (MCV below 80 fL) and the ferritin, which reflects the body's iron stores, is "
        "low. Chronic blood loss from heavy menstrual bleeding is the most common cause of iron deficiency in "
        "women of this age. Vitamin B12 deficiency makes a macrocytic anemia, anemia of chronic disease has a "
        "normal or high ferritin, and hereditary spherocytosis is a hemolytic anemia with spherocytes.",
    ),
    Example(
        "A 62-year-old man is brought to the emergency department 40 minutes after the onset of crushing "
        "substernal chest pain. An ECG shows ST-segment elevations in leads II, III and aVF. Occlusion of "
        "which of the following arteries is the most likely cause?",
        {
            "A": "Left anterior descending artery",
            "B": "Left circumflex artery",
            "C": "Right coronary artery",
            "D": "Left main coronary artery",
        },
        "C",
        "ST elevations in the inferior leads II, III and aVF mean an acute inferior wall myocardial "
        "infarction. The inferior wall is supplied by the posterior descending artery, which arises from "
        "the right coronary artery in most people (right-dominant circulation). An occluded left anterior "
        "descending artery causes anterior changes (V1-V4), the circumflex lateral changes (I, aVL, V5-V6), "
        "and a left main occlusion widespread anterolateral changes.",
    ),
    Example(
        "A 7-year-old boy has dark, cola-colored urine and puffy eyelids. Two weeks ago he had a sore throat. "
        "His blood pressure is 130/85 mm Hg and the serum C3 complement level is low. Which of the following "
        "is the most likely diagnosis?",
        {
            "A": "Poststreptococcal glomerulonephritis",
            "B": "IgA nephropathy",
            "C": "Minimal change disease",
            "D": "Alport syndrome",
        },
        "A",
        "Hematuria, edema and hypertension make a nephritic syndrome. Its onset about two weeks after a "
        "streptococcal throat infection, with a low C3 from immune-complex activation of complement, is typical "
        "of poststreptococcal glomerulonephritis in a child. IgA nephropathy causes hematuria within days of an "
        "infection with normal complement, minimal change disease is nephrotic without hematuria, and Alport "
        "syndrome is hereditary with hearing loss.",
    ),
)

_YES_NO = (
    Example(
        "Could a person walk from Paris to Madrid in a single day?",
        YES_NO_OPTIONS,
        "B",
        "Paris and Madrid are about 1,000 km apart by road. A person walks about 5 km an hour, so even "
        "walking for 24 hours without a break covers only about 120 km, far less than the distance.",
    ),
    Example(
        "Could someone have sent an email in 1950?",
        YES_NO_OPTIONS,
        "B",
        "Email needs computers connected to each other. The first messages between users of a shared computer "
        "were sent in the 1960s, and email between computers on a network began in 1971. In 1950 only a few "
        "large computers existed and none were networked for messages.",
    ),
    Example(
        "Is an adult blue whale heavier than a school bus?",
        YES_NO_OPTIONS,
        "A",
        "An adult blue whale weighs around 100 to 150 tonnes. A full-size school bus weighs about 10 to 15 "
        "tonnes. So a blue whale weighs roughly ten times as much as a school bus.",
    ),
)

_SCIENCE = (
    Example(
        "Which of these lets the most light pass through it?",
        {
            "A": "a wooden door",
            "B": "a clear glass window",
            "C": "a brick wall",
            "D": "a sheet of aluminum foil",
        },
        "B",
        "A transparent material lets light pass through it. Clear glass is transparent, while wood, brick "
        "and aluminum foil are opaque and block light.",
    ),
    Example(
        "A green plant is kept in a dark closet for two weeks. It will most likely",
        {
            "A": "grow faster",
            "B": "become a darker green",
            "C": "turn pale and weaken",
            "D": "produce more flowers",
        },
        "C",
        "Plants need light to make food by photosynthesis and to make chlorophyll, the green pigment. In the "
        "dark the plant cannot make food or new chlorophyll, so it turns pale and weakens.",
    ),
    Example(
        "Which tool should a student use to measure the mass of a rock?",
        {"A": "a ruler", "B": "a balance", "C": "a thermometer", "D": "a graduated cylinder"},
        "B",
        "Mass is measured with a balance. A ruler measures length, a thermometer measures temperature and a "
        "graduated cylinder measures the volume of a liquid.",
    ),
)

_OPEN = (
    Example(
        "Why is salt spread on icy roads in winter?",
        {},
        "salt lowers the freezing point of water",
        "Salt dissolves in the thin film of water on the ice. Salty water freezes at a lower temperature than "
        "pure water, so the ice melts and the road stays wet instead of icy unless it gets much colder.",
    ),
    Example(
        "Which organ pumps blood around the human body?",
        {},
        "the heart",
        "Blood is moved through the arteries and veins by the contractions of a muscular organ in the chest. "
        "That organ is the heart: its ventricles squeeze blood into the arteries with each beat.",
    ),
    Example(
        "What do bees collect from flowers to make honey?",
        {},
        "nectar",
        "Honey bees visit flowers to drink nectar, a sugary liquid. In the hive they pass it between bees and "
        "let water evaporate from it until it thickens into honey.",
    ),
)

EXAMPLES: Mapping[Kind, tuple[Example, ...]] = {"medical": _MEDICAL, "yesno": _YES_NO, "science": _SCIENCE,
                                                 "open": _OPEN}

_SYSTEM = {
    "rationalize": (
        "You are an expert teacher writing explanations for a study guide. You are given a multiple-choice "
        "question, its options and the correct answer. Explain step by step, with the facts that are needed, "
        "why the correct answer is right. Do not mention that the answer was given to you. End with a last "
        "line of the form 'Answer: <letter>'."
    ),
    "answer": (
        "You are an expert answering a multiple-choice question. Reason step by step, with the facts that "
        "are needed, then give the letter of the best option on a last line of the form 'Answer: <letter>'."
    ),
}
_OPEN_SYSTEM = {
    "rationalize": (
        "You are an expert teacher writing explanations for a study guide. You are given a question and its "
        "correct answer. Explain step by step, with the facts that are needed, why the answer is right. Do not "
        "mention that the answer was given to you. End with a last line of the form 'Answer: <short answer>'."
    ),
    "answer": (
        "You are an expert answering a question. Reason step by step, with the facts that are needed, then give "
        "a short answer (a few words) on a last line of the form 'Answer: <short answer>'."
    ),
}


def question_kind(question: Question) -> Kind:
    """Which few-shot examples fit: medical (MedQA), yes/no (StrategyQA), science (OpenBookQA, others), or
    open for a question without options."""
    if question.kind == OPEN:
        return "open"
    dataset = question.dataset.lower()
    if dataset.startswith("medqa") or dataset == "demo-medical":
        return "medical"
    values = [text.strip().lower() for text in question.options.values()]
    if dataset.startswith("strategyqa") or dataset == "demo-yesno" or values == ["yes", "no"]:
        return "yesno"
    return "science"


def _user_turn(text: str, options: Mapping[str, str], gold: str | None) -> str:
    lines = [f"Question: {text}", *([format_options(options)] if options else [])]
    if gold is not None:
        lines.append(f"Correct answer: {gold}. {options[gold]}" if options else f"Correct answer: {gold}")
    lines.append("Explanation:")
    return "\n".join(lines)


def _assistant_turn(example: Example) -> str:
    return f"{example.explanation}\nAnswer: {example.answer}"


def build_messages(question: Question, mode: Mode, kind: Kind | None = None) -> list[dict[str, str]]:
    """The chat messages for one question: system, few-shot user/assistant turns, then the question.

    In `rationalize` mode the gold answer is shown (the question must have one); in `answer` it is not.
    """
    if mode not in _SYSTEM:
        raise ConfigError(f"unknown teacher mode {mode!r}. Fix: use one of {', '.join(MODES)}")
    show_gold = mode == "rationalize"
    if show_gold and question.kind == OPEN and not (question.answer or "").strip():
        raise DataError(f"open question {question.id!r} has no gold answer",
                        fix="rationalize needs gold answers; use Teacher.answer for questions without one")
    if show_gold and question.kind != OPEN and question.answer not in question.options:
        raise DataError(
            f"question {question.id!r} has no gold answer among its options {list(question.options)}",
            fix="rationalize needs gold answers; use Teacher.answer for questions without one",
        )
    kind = "open" if question.kind == OPEN else kind or question_kind(question)
    messages = [{"role": "system", "content": (_OPEN_SYSTEM if kind == "open" else _SYSTEM)[mode]}]
    for example in EXAMPLES[kind]:
        messages.append(
            {
                "role": "user",
                "content": _user_turn(example.text, example.options, example.answer if show_gold else None),
            }
        )
        messages.append({"role": "assistant", "content": _assistant_turn(example)})
    gold = question.answer if show_gold else None
    messages.append({"role": "user", "content": _user_turn(question.text, question.options, gold)})
    return messages


def prompt_version(mode: Mode) -> str:
    """The cache's prompt version for a mode, e.g. 'teacher-v1/rationalize'."""
    return f"{TEACHER_PROMPT_VERSION}/{mode}"


def prompt_fingerprint(messages: list[dict[str, str]]) -> str:
    """A short hash of the exact prompt: a cached sample whose prompt changed is not reused."""
    blob = json.dumps(messages, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]

"""The teacher's chat prompts: few-shot chain-of-thought examples per kind of question, pure functions.

Two modes share the same examples. `rationalize` is the paper's training mode: the gold answer is
shown and the teacher explains it (answer-conditioned rationales). `answer` hides the gold answer, so
the teacher's reply can be compared with the student's. Every reply ends with `Answer: <letter>`, which
`kard.prompts.parse_answer` reads back.

The examples were written for this project; they are not copied from any benchmark.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Literal, Mapping

from kard.errors import ConfigError, DataError
from kard.prompts import format_options
from kard.records import YES_NO_OPTIONS, Question

TEACHER_PROMPT_VERSION = "teacher-v1"
"""Bump when a template or an example changes: the teacher cache keys on it."""

Mode = Literal["rationalize", "answer"]
Kind = Literal["medical", "yesno", "science"]
MODES: tuple[Mode, ...] = ("rationalize", "answer")


@dataclass(frozen=True)
class Example:
    """One worked few-shot example: question, options, gold letter and the explanation."""

    text: str
    options: Mapping[str, str]
    answer: str
    explanation: str


_MEDICAL = (
    Example(
        "A 27-year-old woman comes to the physician because of palpitations, heat intolerance and a "
        "6-kg weight loss over 3 months. Her pulse is 112/min. Examination shows a diffusely enlarged, "
        "nontender thyroid gland, bilateral proptosis and nonpitting swelling over both shins. Which of "
        "the following is the most likely cause of her condition?",
        {
            "A": "Antibodies that stimulate the thyrotropin (TSH) receptor",
            "B": "Antibodies against thyroid peroxidase with lymphocytic destruction of the gland",
            "C": "An autonomously functioning thyroid adenoma",
            "D": "Granulomatous inflammation of the thyroid after a viral infection",
        },
        "A",
        "The patient is hyperthyroid (palpitations, heat intolerance, weight loss, tachycardia). A diffuse "
        "painless goiter together with ophthalmopathy (proptosis) and pretibial myxedema is specific for "
        "Graves disease, which is caused by IgG antibodies that bind and stimulate the TSH receptor. "
        "Hashimoto thyroiditis usually causes hypothyroidism, a toxic adenoma gives a single nodule without "
        "eye or skin findings, and subacute granulomatous thyroiditis makes the gland painful.",
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
        "A 34-year-old man started treatment for pulmonary tuberculosis 2 months ago. He now has burning "
        "pain and tingling in both feet. Supplementation with which of the following would most likely "
        "have prevented these symptoms?",
        {"A": "Thiamine (vitamin B1)", "B": "Pyridoxine (vitamin B6)", "C": "Cobalamin (vitamin B12)", "D": "Folic acid"},
        "B",
        "Standard tuberculosis treatment includes isoniazid. Isoniazid depletes pyridoxine (vitamin B6), and "
        "pyridoxine deficiency causes a symmetric peripheral neuropathy with burning and tingling in the "
        "feet. Giving pyridoxine with isoniazid prevents it. Thiamine, cobalamin and folate deficiencies are "
        "not caused by isoniazid.",
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
        "Was the Eiffel Tower standing when the Titanic sank?",
        YES_NO_OPTIONS,
        "A",
        "The Eiffel Tower was completed in 1889 for the World's Fair in Paris. The Titanic sank in 1912. "
        "1889 is before 1912, and the tower is still standing today, so it was standing then.",
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
        {"A": "a wooden door", "B": "a clear glass window", "C": "a brick wall", "D": "a sheet of aluminum foil"},
        "B",
        "A transparent material lets light pass through it. Clear glass is transparent, while wood, brick "
        "and aluminum foil are opaque and block light.",
    ),
    Example(
        "A green plant is kept in a dark closet for two weeks. It will most likely",
        {"A": "grow faster", "B": "become a darker green", "C": "turn pale and weaken", "D": "produce more flowers"},
        "C",
        "Plants need light to make food by photosynthesis and to make chlorophyll, the green pigment. In the "
        "dark the plant cannot make food or new chlorophyll, so it turns pale and weakens.",
    ),
    Example(
        "When water freezes, it",
        {
            "A": "gains mass",
            "B": "changes from a liquid to a solid",
            "C": "changes from a gas to a liquid",
            "D": "becomes a different substance",
        },
        "B",
        "Freezing is the change of state from a liquid to a solid when a substance is cooled. Ice is still "
        "water, with the same mass; only its state changes.",
    ),
)

EXAMPLES: Mapping[Kind, tuple[Example, ...]] = {"medical": _MEDICAL, "yesno": _YES_NO, "science": _SCIENCE}

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


def question_kind(question: Question) -> Kind:
    """Which few-shot examples fit: medical (MedQA), yes/no (StrategyQA) or science (OpenBookQA, others)."""
    if question.dataset.lower().startswith("medqa"):
        return "medical"
    values = [text.strip().lower() for text in question.options.values()]
    if question.dataset.lower().startswith("strategyqa") or values == ["yes", "no"]:
        return "yesno"
    return "science"


def _user_turn(text: str, options: Mapping[str, str], gold: str | None) -> str:
    lines = [f"Question: {text}", format_options(options)]
    if gold is not None:
        lines.append(f"Correct answer: {gold}. {options[gold]}")
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
    if show_gold and question.answer not in question.options:
        raise DataError(
            f"question {question.id!r} has no gold answer among its options {list(question.options)}",
            fix="rationalize needs gold answers; use Teacher.answer for questions without one",
        )
    messages = [{"role": "system", "content": _SYSTEM[mode]}]
    for example in EXAMPLES[kind or question_kind(question)]:
        messages.append({"role": "user", "content": _user_turn(example.text, example.options, example.answer if show_gold else None)})
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

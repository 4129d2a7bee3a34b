"""KARD prompt templates and answer parsing: pure functions, no models.

The student reads `student_input(question, passages)` and learns to write `student_target(...)`:
the rationale, then a last line `Answer: X`. `parse_answer` turns any generated text back into a
(rationale, letter) pair and never raises on model output.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping, Sequence

from kard.errors import DataError
from kard.records import Passage, Question

PROMPT_VERSION = "kard-v1"
"""Bump when a template changes: caches and annotations record it."""

STUDENT_INSTRUCTION = (
    "Answer the multiple-choice question. Use the knowledge if it helps, explain your reasoning "
    "step by step, then give the letter of the answer on the last line as 'Answer: <letter>'."
)

_ANSWER_LINE = re.compile(r"answer\s*(?:is|:)\s*[\(\[]?\s*([A-Za-z])\b[\)\]]?", re.IGNORECASE)
_ANSWER_LINE_START = re.compile(r"^[ \t]*(?:the\s+|final\s+)?answer\s*(?:is|:)", re.IGNORECASE | re.MULTILINE)
_LETTER_MENTION = re.compile(r"(?:\(([A-Z])\)|\boption\s+([A-Z])\b|\b([A-Z])[\.\)](?=\s|$))")
_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
_BARE_LETTER = re.compile(r"^\s*[\(\[]?([A-Z])[\)\]\.:]?\s*(?:\n|$)")  # " B": the answer-only baseline's output
_OPTION_MARK = re.compile(r"(?:^|\s|\n)\(?([A-Za-z])[\)\.:]\s+")


def format_options(options: Mapping[str, str]) -> str:
    return "\n".join(f"{letter}. {text}" for letter, text in options.items())


def format_knowledge(passages: Iterable[Passage]) -> str:
    """One passage a line, so facts without a final full stop (OpenBookQA's) do not run together."""
    return "\n".join(p.as_knowledge() for p in passages)


def student_input(question: Question, passages: Sequence[Passage] = (), *, with_knowledge: bool = True) -> str:
    """The KARD student prompt. `with_knowledge=False` gives the reasoning-distillation baseline."""
    parts = [STUDENT_INSTRUCTION, "", f"Question: {question.text}", format_options(question.options)]
    if with_knowledge:
        parts.append(f"Knowledge: {format_knowledge(passages)}")
    parts.append("Explanation:")
    return "\n".join(parts)


def student_target(rationale: str, answer: str) -> str:
    """What the student learns to write after `Explanation:`."""
    return f" {strip_answer_line(rationale).strip()}\nAnswer: {answer}"


def answer_only_input(question: Question) -> str:
    """Prompt of the plain fine-tuning baseline (question -> answer, no rationale)."""
    return "\n".join([f"Question: {question.text}", format_options(question.options), "Answer:"])


def strip_answer_line(text: str) -> str:
    """The rationale part of a generation: everything before the first line that states the answer.

    Only a line that starts with the answer ("Answer: B", "The answer is B") is cut; an answer
    stated inside a sentence stays part of the reasoning.
    """
    match = _ANSWER_LINE_START.search(text)
    return (text[: match.start()] if match else text).strip()


def parse_answer(text: str, letters: Sequence[str]) -> tuple[str, str | None]:
    """Split generated text into (rationale, answer letter or None).

    The letter after the last `Answer:` wins. Failing that, a bare letter alone on the first line
    (what the fine-tuning baseline writes after its "Answer:" cue), the last option letter mentioned
    ("(B)", "option B", "B."), and for yes/no questions the last "yes"/"no". No answer -> None.
    """
    valid = {letter.upper() for letter in letters}
    rationale = strip_answer_line(text)
    for match in reversed(list(_ANSWER_LINE.finditer(text))):
        letter = match.group(1).upper()
        if letter in valid:
            return rationale, letter
    bare = _BARE_LETTER.match(text)
    if bare and bare.group(1) in valid:
        return "", bare.group(1)
    mentioned = [next(g for g in m.groups() if g) for m in _LETTER_MENTION.finditer(text)]
    mentioned = [letter for letter in mentioned if letter in valid]
    if mentioned:
        return rationale, mentioned[-1]
    if valid == {"A", "B"}:
        words = _YES_NO.findall(text)
        if words:
            return rationale, "A" if words[-1].lower() == "yes" else "B"
    return rationale, None


def parse_options(text: str) -> dict[str, str]:
    """Read options typed by a person: "A) x B) y", "A. x\\nB. y", "(A) x (B) y", or one per line.

    Lines without letters get A, B, C... in order. Raises DataError when fewer than two options.
    """
    text = text.strip()
    marks = list(_OPTION_MARK.finditer(" " + text))
    letters = [m.group(1).upper() for m in marks]
    expected = [chr(ord("A") + i) for i in range(len(letters))]
    if len(marks) >= 2 and letters == expected:
        padded = " " + text
        options = {}
        for i, mark in enumerate(marks):
            end = marks[i + 1].start() if i + 1 < len(marks) else len(padded)
            options[letters[i]] = padded[mark.end() : end].strip()
    else:
        lines = [line.strip() for line in re.split(r"[\n;|]", text) if line.strip()]
        options = {chr(ord("A") + i): line for i, line in enumerate(lines)}
    options = {k: v for k, v in options.items() if v}
    if len(options) < 2:
        raise DataError(
            f"could not read at least two options from {text[:80]!r}",
            fix="write options as 'A) first B) second', or one option per line",
        )
    return options

"""Which kind of question a person typed: multiple choice, yes/no, or open. Pure functions, no models.

    decide_kind("Is a tomato a fruit?", "")                 -> yesno: no options, starts with "Is"
    decide_kind("Why does ice float on water?", "")         -> open: no options, not a yes/no question
    decide_kind("Which gas?", "A) oxygen B) nitrogen")      -> choice: options were typed
    decide_kind("Is a tomato a fruit?", "", override="open") -> open: the person's choice wins
    read_question("Which gas? A) oxygen B) nitrogen", "")   -> choice: options typed into the question
    as_listed(Question(..., {"A": "yes", "B": "no"}, ...))  -> yesno: a listed question with yes/no options

A yes/no question is asked with YES_NO_OPTIONS exactly as StrategyQA is (what the student was trained
on) and shown as "yes"/"no", never as letters. An open question is asked without options and gets a
short free-text answer. The kind is recorded on `Question.kind`; prompts, answer parsing, the app,
the annotation store and the export all read it from there.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from typing import Mapping

from kard.errors import DataError
from kard.prompts import split_inline_options
from kard.records import CHOICE, OPEN, QUESTION_KINDS, YES_NO, YES_NO_OPTIONS, Question

AUTO = "auto"
"""No override: decide from the text and the options."""
KIND_CHOICES: tuple[str, ...] = (AUTO, *QUESTION_KINDS)
KIND_LABELS: Mapping[str, str] = {CHOICE: "multiple choice", YES_NO: "yes/no question", OPEN: "open question"}

YES_NO_OPENERS = frozenset(
    "is are was were am do does did can could would will shall should has have had may might must "
    "isn't aren't wasn't weren't don't doesn't didn't can't cannot couldn't wouldn't won't shouldn't "
    "hasn't haven't hadn't mustn't".split()
)
"""First words of a yes/no question: the auxiliary verbs (and negations) that invert with the subject."""

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_FIRST_WORD = re.compile(r"[A-Za-z][A-Za-z']*")


@dataclass(frozen=True)
class KindDecision:
    """The kind a question is asked as, and why (shown to the person, who can switch it)."""

    kind: str
    reason: str

    @property
    def label(self) -> str:
        return KIND_LABELS[self.kind]


def question_sentence(text: str) -> str:
    """The sentence that asks: the last one ending in '?' (a case vignette comes before it), else the last."""
    sentences = [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]
    asking = [s for s in sentences if s.endswith("?")]
    return (asking or sentences or [""])[-1]


def yes_no_opener(text: str) -> str | None:
    """The auxiliary verb a yes/no question starts with ("Is", "Can't"...), or None."""
    match = _FIRST_WORD.search(question_sentence(text).replace("\u2019", "'"))
    if match is None or match.group(0).lower() not in YES_NO_OPENERS:
        return None
    return match.group(0)


def decide_kind(text: str, options: Mapping[str, str] | str | None = None,
                override: str | None = None) -> KindDecision:
    """How to ask `text`: the person's `override` if given, else options typed -> choice, else yes/no or open.

    `options` only counts as typed or not (a string is not parsed here). Raises DataError for an
    unknown override, or "choice" without options.
    """
    typed = _typed(options)
    if override in (None, "", AUTO):
        return _detected(text, typed)
    if override not in QUESTION_KINDS:
        raise DataError(f"unknown question kind {override!r}", fix=f"use one of {', '.join(KIND_CHOICES)}")
    if override == CHOICE and not typed:
        raise DataError("a multiple-choice question needs its options",
                        fix="type at least two options ('A) first B) second'), "
                            "or ask it as a yes/no or open question")
    unused = "; the typed options are not used" if typed and override != CHOICE else ""
    return KindDecision(override, f"chosen by you{unused}")


OptionsTyped = Mapping[str, str] | str | None


def read_question(text: str, options: OptionsTyped = None,
                  override: str | None = None) -> tuple[str, OptionsTyped, KindDecision]:
    """(question text, options, kind) of what a person typed: as `decide_kind`, except that options typed
    into the question itself ("Which gas? A) oxygen B) nitrogen", nothing in the options box) move out
    of it and make it multiple choice, unless the person chose to ask it as yes/no or open."""
    check_unicode(text, "the question")
    check_unicode(options, "the options", verb="are")
    typed = _typed(options)
    inline = None if typed or override in (YES_NO, OPEN) else split_inline_options(text)
    if inline is None:
        return text, options, decide_kind(text, options, override)
    stem, options_text = inline
    decision = decide_kind(stem, options_text, override)
    if override in (None, "", AUTO):
        decision = KindDecision(CHOICE, "options read from the question")
    return stem, options_text, decision


INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
"""Letters and symbols that show as blank space (Hangul fillers, the blank Braille pattern)."""


def is_blank(text: str | None) -> bool:
    """Whether `text` shows nothing: empty, white space, or only invisible characters (control characters such as
    NUL, format characters such as zero-width spaces, blank fillers), so it counts as empty."""
    return all(ch.isspace() or ch in INVISIBLE_LETTERS or unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp")
               for ch in text or "")


def check_unicode(typed: OptionsTyped, what: str, *, verb: str = "is") -> None:
    """Raise DataError when `typed` (text, or options as letter -> text) holds a byte that was not UTF-8.

    Python turns such a byte of a command-line argument into a lone surrogate (os.fsdecode), and a JSON
    request may hold one too; the tokenizer cannot encode it, so it is refused before any model loads."""
    pieces = [typed] if isinstance(typed, str) else [str(part) for pair in (typed or {}).items() for part in pair]
    for piece in pieces:
        try:
            piece.encode("utf-8")
        except UnicodeEncodeError as error:
            raise DataError(f"{what} {verb} not valid UTF-8 text: {_undecodable(piece[error.start])} at character "
                            f"{error.start + 1} of {piece!r:.60}",
                            fix="type it again in a terminal set to UTF-8 (e.g. export LANG=C.UTF-8), or pass "
                                "it from a file saved as UTF-8") from None


def _undecodable(character: str) -> str:
    """How a lone surrogate is named: the byte it stands for (surrogateescape), else its code point."""
    code = ord(character)
    return f"the byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"the lone surrogate U+{code:04X}"


def _typed(options: OptionsTyped) -> bool:
    """Whether options were given: a non-blank text or a non-empty mapping (a string is not parsed here)."""
    return bool(options.strip() if isinstance(options, str) else options)


def _detected(text: str, typed: bool) -> KindDecision:
    if typed:
        return KindDecision(CHOICE, "options were typed")
    opener = yes_no_opener(text)
    if opener:
        return KindDecision(YES_NO, f"no options, and it starts with '{opener}'")
    return KindDecision(OPEN, "no options, and it is not a yes/no question")


def as_listed(question: Question) -> Question:
    """A listed question as it is asked unless the person chooses another kind: one loaded as multiple choice
    whose options are exactly YES_NO_OPTIONS (StrategyQA's, the demo's yes/no questions) is a yes/no question,
    its gold letter unchanged (A = yes, B = no); any other as it was loaded."""
    if question.kind == CHOICE and dict(question.options) == dict(YES_NO_OPTIONS):
        return replace(question, kind=YES_NO)
    return question


def asked_alike(saved_kind: str, question: Question) -> bool:
    """Whether a correction saved as `saved_kind` answers `question` as it is asked now: the same kind, or a
    question with the options yes and no saved as multiple choice and asked as yes/no (or the other way): the same
    letters, A = yes and B = no. Listed yes/no questions were asked as multiple choice before `as_listed`, and their
    saved corrections must still open in the editor and be recalled."""
    alike = {saved_kind, question.kind} == {CHOICE, YES_NO} and dict(question.options) == dict(YES_NO_OPTIONS)
    return saved_kind == question.kind or alike


def options_for(kind: str, typed: Mapping[str, str]) -> dict[str, str]:
    """The options a question of `kind` is asked with: the typed ones, yes/no, or none."""
    if kind == YES_NO:
        return dict(YES_NO_OPTIONS)
    return {} if kind == OPEN else dict(typed)


def gold_for(kind: str, answer: str | None) -> str | None:
    """A gold answer as its kind stores it: a letter (yes/no read as A/B too), or an open answer's text."""
    if answer is None or not answer.strip():
        return None
    answer = answer.strip()
    if kind == OPEN:
        return answer
    if kind == YES_NO:
        return {"yes": "A", "no": "B"}.get(answer.lower(), answer.upper())
    return answer.upper()

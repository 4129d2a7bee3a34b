"""KARD prompt templates and answer parsing: pure functions, no models.

The student reads `student_input(question, passages)` and learns to write `student_target(...)`:
the rationale, then a last line `Answer: X`. `parse_answer` turns any generated text back into a
(rationale, letter) pair and never raises on model output; the student's outputs and the teacher's
replies are read by the same parser. A reasoning model's `<think>...</think>` block is no part of the
rationale and states no answer (`strip_thinking`).

An open question (`Question.kind == "open"`, kard.kinds) has no options: its prompt asks for a short
answer on the last line (`Answer: <short answer>`), and `parse_free_answer` reads that text back,
never a letter. `parse_question_answer` picks the parser for a question's kind.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping, Sequence

from kard.errors import DataError
from kard.records import CHOICE, OPEN, Passage, Question

PROMPT_VERSION = "kard-v1"
"""Bump when a template changes: caches and annotations record it."""

STUDENT_INSTRUCTION = (
    "Answer the multiple-choice question. Use the knowledge if it helps, explain your reasoning "
    "step by step, then give the letter of the answer on the last line as 'Answer: <letter>'."
)

OPEN_INSTRUCTION = (
    "Answer the question. Use the knowledge if it helps, explain your reasoning step by step, then give a "
    "short answer on the last line as 'Answer: <short answer>'."
)
"""The instruction of an open question (no options): the answer is free text, not a letter."""

_MARKUP = r"[*_`]*"  # markdown emphasis around "Answer:" or the letter: "**Answer:** B"
_LETTER = (r"(?:(?:option|choice)\s+)?"  # "Answer: Option B"
           r"(?:\$*\s*\\boxed\s*\{\s*(?:\\text(?:bf)?\s*\{\s*)?)?"  # "Final Answer: $\\boxed{B}$"
           r"[\(\[]?\s*(?-i:([A-Z])|(?!a[ \t]+\w)([a-z]))\b[\)\]]?")  # never the article of "is a cold"
_ANSWER_LINE = re.compile(rf"answer{_MARKUP}\s*(?:is\s*:?|:){_MARKUP}\s*{_MARKUP}{_LETTER}"
                          r"|\\boxed\s*\{\s*(?:\\text(?:bf)?\s*\{\s*)?([A-Za-z])\s*\}", re.IGNORECASE)
_OTHER_LETTER = re.compile(rf"[ \t]*(?:,|/|&|\band\b|\bor\b)[ \t]*{_MARKUP}[\(\[]?(?-i:([A-Z]))(?![\w-])",
                           re.IGNORECASE)  # "Answer: B and C", "Answer: A or B": two answers are none
_ANSWER_LINE_START = re.compile(r"^[ \t]*[*_#>]*[ \t]*(?:the\s+|final\s+)?answer[*_]*\s*(?:is|:)",
                                re.IGNORECASE | re.MULTILINE)
_THINKING = re.compile(r"<(think|thinking)>.*?</\1>", re.IGNORECASE | re.DOTALL)
_THINKING_END = re.compile(r"^.*</think(?:ing)?>", re.IGNORECASE | re.DOTALL)  # the opening tag left in the prompt
_THINKING_OPEN = re.compile(r"<think(?:ing)?>.*\Z", re.IGNORECASE | re.DOTALL)  # cut off while thinking
_FULL_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}  # "Ｂ" -> "B", "：" -> ":"
_LETTER_MENTION = re.compile(r"(?:\(([A-Z])\)|\b(?i:option)\s+([A-Z])\b"
                             r"|(?:\b([A-Za-z']+)[ \t]+)?\b([A-Z])[\.\)](?=\s|$))")
_NAMES_A_LETTER = frozenset({"is", "it's", "be", "was", "choose", "chose", "select", "selected", "pick", "picked",
                             "answer", "choice", "letter", "option", "so", "therefore", "thus", "hence", "then"})
"""Words after which a bare "C." is the letter chosen ("so it is C."); after any other word it is part of a name
("vitamin C.", "hepatitis B.", "type A.")."""
_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
_BARE_LETTER = re.compile(r"^\s*[\(\[]?([A-Z])[\)\]\.:]?\s*(?:\n|$)")  # " B": the answer-only baseline's output
_OPTION_MARK = re.compile(r"(?:^|\s)\(?([A-Za-z])([\)\.:])(?=\s)")  # the whitespace after stays for the next mark
_LINE_LABEL = re.compile(r"^\(?([A-Za-z])([\)\.:])\s+")
_FREE_ANSWER_LINE = re.compile(r"^[ \t]*[*_#>]*[ \t]*(?:the\s+)?(?:final\s+)?answer[*_]*\s*(?:is\s*:?|:)"
                               r"\s*(\S.*?)[ \t]*$", re.IGNORECASE | re.MULTILINE)
_SO_THE_ANSWER = re.compile(r"\bthe\s+(?:final\s+)?answer\s+is[ \t:]+(.+?)(?=\.\s|\.?$|\n)",
                            re.IGNORECASE | re.MULTILINE)
_INLINE_ANSWER = re.compile(r"\b(?:final\s+)?answer\s*:", re.IGNORECASE)
_LETTER_ONLY = re.compile(r"^[\(\[]?[A-Z][\)\]\.:]?$")
_ONE_DIGIT = re.compile(r"^[\(\[]?\d[\)\]\.:]?$")
_TEMPLATE_SLOT = re.compile(r"^<[^<>]*>$")  # "<short answer>": the prompt's format, copied, is no answer
_ARTICLES = re.compile(r"^(?:the|an|a)\s+")
_SENTENCE_ENDS = ("?", ":", ".", "!")


def format_options(options: Mapping[str, str]) -> str:
    return "\n".join(f"{letter}. {text}" for letter, text in options.items())


def format_knowledge(passages: Iterable[Passage]) -> str:
    """One passage a line, so facts without a final full stop (OpenBookQA's) do not run together."""
    return "\n".join(p.as_knowledge() for p in passages)


def instruction_for(question: Question) -> str:
    """The student's instruction: pick a letter, or (open question) write a short answer."""
    return OPEN_INSTRUCTION if question.kind == OPEN else STUDENT_INSTRUCTION


def _question_lines(question: Question) -> list[str]:
    """"Question: ..." and the lettered options (an open question has none)."""
    return [f"Question: {question.text}", *([format_options(question.options)] if question.options else [])]


def student_input(question: Question, passages: Sequence[Passage] = (), *, with_knowledge: bool = True) -> str:
    """The KARD student prompt. `with_knowledge=False` gives the reasoning-distillation baseline.

    Multiple-choice and yes/no questions list their lettered options; an open question has none and
    its instruction asks for a short free-text answer.
    """
    parts = [instruction_for(question), "", *_question_lines(question)]
    if with_knowledge:
        parts.append(f"Knowledge: {format_knowledge(passages)}")
    parts.append("Explanation:")
    return "\n".join(parts)


def student_target(rationale: str, answer: str, options: Mapping[str, str] | None = None) -> str:
    """What the student learns to write after `Explanation:`: the rationale (`strip_answer`) and the answer once."""
    return f" {strip_answer(rationale, answer, options)}\nAnswer: {answer}"


def answer_only_input(question: Question) -> str:
    """Prompt of the plain fine-tuning baseline (question -> answer, no rationale)."""
    return "\n".join([*_question_lines(question), "Answer:"])


def strip_thinking(text: str) -> str:
    """`text` without a reasoning model's thinking: its `<think>...</think>` (or `<thinking>`) blocks, everything up
    to a lone `</think>` (a chat template that opened the block in the prompt) and an unclosed `<think>` to the end (a
    reply cut off while thinking). A guess inside the thinking ("Answer: A?") is no answer, nor part of a rationale."""
    if "think" not in text.lower():
        return text
    text = _THINKING_END.sub("", _THINKING.sub("", text))
    return _THINKING_OPEN.sub("", text).strip()


def strip_answer_line(text: str) -> str:
    """The rationale part of a generation: everything before the first line that states the answer.

    Only a line that starts with the answer ("Answer: B", "The answer is B", "**Final Answer:** B") is cut; an
    answer stated inside a sentence stays part of the reasoning. A `<think>` block goes too (`strip_thinking`).
    """
    text = strip_thinking(text)
    match = _ANSWER_LINE_START.search(_half_width(text))
    return (text[: match.start()] if match else text).strip()


def _half_width(text: str) -> str:
    """Full-width letters and punctuation ("Answer：Ｂ", as CJK input writes them) as ASCII, one character for one."""
    return text.translate(_FULL_WIDTH)


def strip_answer(text: str, answer: str | None, options: Mapping[str, str] | None = None) -> str:
    """The rationale without the answer a target appends: `strip_answer_line`, then a last "Answer: X" after the
    end of a sentence (or markup: not after a word or comma) that states `answer` (its letter or text, or with
    `options` its option's text).

    "Antibodies stimulate the TSH receptor. Answer: A" -> "Antibodies stimulate the TSH receptor.", so
    "<rationale>\nAnswer: A" states the answer once. An inline answer naming another answer stays: it is
    the rationale's own conclusion (the export leaves such a correction out as inconsistent).
    """
    rationale = strip_answer_line(text)
    starts = list(_INLINE_ANSWER.finditer(rationale))
    if not starts or answer is None:
        return rationale
    before, stated = rationale[: starts[-1].start()].rstrip(), rationale[starts[-1].end():]
    if before.endswith(("**", "__")) and before.count(before[-2:]) % 2:  # the bold of "**Answer:** B" opens here
        before = before[:-2].rstrip()
    if before[-1:].isalnum() or before.endswith(",") or "\n" in stated:
        return rationale  # "the correct answer: B" is part of a sentence
    return before if _names_answer(stated, answer, options or {}) else rationale


def _names_answer(stated: str, answer: str, options: Mapping[str, str]) -> bool:
    """Whether the text after an "Answer:" is `answer`, or its option's text (up to case and punctuation)."""
    words = normalise_free_answer(stated)
    return bool(words) and words in {normalise_free_answer(answer), normalise_free_answer(options.get(answer, ""))}


def parse_answer(text: str, letters: Sequence[str]) -> tuple[str, str | None]:
    """Split generated text into (rationale, answer letter or None).

    The letter of the last answer statement wins: "Answer: B", "answer: (b)", "The answer is B", "**Answer:** B",
    "**Final Answer:** B", "Answer: Option B", "Final Answer: $\\boxed{B}$" or a lone "\\boxed{B}" (full-width
    "Ｂ" too). A lowercase "a" followed by a word is the article ("the answer is a cold"), not a letter, and a
    statement naming two letters ("Answer: B and C", "Answer: A or B") is no answer. Failing a statement, a bare
    letter alone on the first line (what the fine-tuning baseline writes after its "Answer:" cue), the last option
    letter mentioned ("(B)", "option B", "B." but not the "C." of "vitamin C."), and for yes/no questions the last
    "yes"/"no". No answer -> None. A `<think>...</think>` block is read as neither answer nor rationale
    (`strip_thinking`). The student's outputs and the teacher's replies are read alike.
    """
    valid = {letter.upper() for letter in letters}
    visible = strip_thinking(text)
    rationale = strip_answer_line(visible)
    text = _half_width(visible)
    for match in reversed(list(_ANSWER_LINE.finditer(text))):
        letter = next(group for group in match.groups() if group).upper()
        if letter in valid:
            other = _OTHER_LETTER.match(text, match.end())
            if other and other.group(1) in valid and other.group(1) != letter:
                return rationale, None  # two answers: no answer
            return rationale, letter
    bare = _BARE_LETTER.match(text)
    if bare and bare.group(1) in valid:
        return "", bare.group(1)
    mentioned = [letter for letter in _mentioned_letters(text) if letter in valid]
    if mentioned:
        return rationale, mentioned[-1]
    if valid == {"A", "B"}:
        words = _YES_NO.findall(text)
        if words:
            return rationale, "A" if words[-1].lower() == "yes" else "B"
    return rationale, None


def _mentioned_letters(text: str) -> list[str]:
    """The option letters a text mentions, in order: "(B)", "option B", and a bare "B." or "B)" at the start of a
    line or after a word that names a choice ("it is B."), never after another word ("lack of vitamin C.")."""
    letters = []
    for match in _LETTER_MENTION.finditer(text):
        in_brackets, after_option, word_before, bare = match.groups()
        if bare and word_before and word_before.lower() not in _NAMES_A_LETTER:
            continue
        letters.append(in_brackets or after_option or bare)
    return letters


def parse_free_answer(text: str) -> tuple[str, str | None]:
    """Split generated text into (rationale, short free-text answer or None): an open question's parser.

    The text of the last "Answer: ..." line wins; failing that, the last "the answer is ..." sentence.
    A bare letter ("Answer: B") is not an answer to a question without options, and the prompt's own
    slot copied back ("Answer: <short answer>") is none either, so both are skipped. A lone digit
    ("Answer: 1", a small model numbering options that are not there) yields to a stated answer ("So the
    answer is brown."), and counts only without one ("How many legs? ... Answer: 8"). Never raises on
    model output.
    """
    text = strip_thinking(text)
    rationale = strip_answer_line(text)
    lines = [_clean_free_answer(m.group(1)) for m in reversed(list(_FREE_ANSWER_LINE.finditer(text)))]
    stated = [_clean_free_answer(m.group(1)) for m in reversed(list(_SO_THE_ANSWER.finditer(text)))]
    strong = [answer for answer in lines if answer and not _ONE_DIGIT.match(answer)]
    found = [*strong, *stated, *lines]  # a lone digit (an option number?) yields to a stated answer
    return rationale, next((answer for answer in found if answer), None)


def skipped_letter_answers(text: str) -> list[str]:
    """The letters of the "Answer: C" lines `parse_free_answer` skips (an open question has no options), in order."""
    lines = (_answer_text(m.group(1)) for m in _FREE_ANSWER_LINE.finditer(text))
    return [line.strip("()[].:") for line in lines if _LETTER_ONLY.match(line)]


def _answer_text(text: str) -> str:
    """An answer line's text without the quotes, emphasis and closing punctuation around it."""
    return text.strip().strip("*_`\"'").rstrip(".;,!").strip().strip("*_`\"'").strip()


def _clean_free_answer(text: str) -> str | None:
    answer = _answer_text(text)
    return None if not answer or _LETTER_ONLY.match(answer) or _TEMPLATE_SLOT.match(answer) else answer


def parse_question_answer(text: str, question: Question) -> tuple[str, str | None]:
    """(rationale, answer) as `question`'s kind is answered: a letter, or an open question's free text."""
    if question.kind == OPEN:
        return parse_free_answer(text)
    return parse_answer(text, question.letters)


def stated_option(rationale: str, options: Mapping[str, str]) -> str | None:
    """The letter of the one option whose text the rationale's last "the answer is ..." states, else None.

    The trained student concludes its reasoning with "So the answer is <option text>." and then writes
    an answer letter; with options shuffled, mapping text to letter is the step a small model gets
    wrong, so the stated text decides (compared up to case, punctuation and a leading article).
    """
    matches = list(_SO_THE_ANSWER.finditer(rationale or ""))
    if not matches or not options:
        return None
    stated = normalise_free_answer(matches[-1].group(1))
    letters = [letter for letter, text in options.items() if normalise_free_answer(text) == stated]
    return letters[0] if stated and len(letters) == 1 else None


def concluded_answer(rationale: str, question: Question) -> str | None:
    """The answer a rationale itself states, as a save checks it against the chosen one, else None.

    For a question with options: the option whose text its last "the answer is ..." states (`stated_option`,
    the pipeline's rule), else the letter (or yes/no word) `parse_question_answer` reads ("Answer: C",
    "the answer is (C)", "option C"); for an open question, its free answer. A conclusion in other words
    ("The Moon shines by reflecting sunlight.") states none: paraphrase and negation make it unreliable.
    """
    if question.kind != OPEN:
        letter = stated_option(rationale, question.options)
        if letter is not None:
            return letter
    return parse_question_answer(rationale, question)[1]


def normalise_free_answer(text: str) -> str:
    """An open answer for comparing: lower case, no punctuation, no leading article ("The Sun." -> "sun")."""
    words = " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())
    return _ARTICLES.sub("", words)


def same_answer(first: str | None, second: str | None, kind: str = CHOICE) -> bool:
    """Whether two answers agree: the same letter, or (open) the same words up to case and punctuation."""
    if first is None or second is None:
        return first is second
    if kind == OPEN:
        return normalise_free_answer(first) == normalise_free_answer(second)
    return first == second


MAX_OPTIONS = 26
"""Options are lettered A to Z, so a question has at most 26."""
_HOW_TO_WRITE = "write options as 'A) first B) second', or one option per line"
_RELETTER = ("letter the options once each, in order ('A) first B) second C) third'), "
             "or give one option a line without letters")


def parse_options(text: str) -> dict[str, str]:
    """Read options typed by a person: "A) x B) y", "A. x\\nB. y", "(A) x (B) y", or one per line.

    Lines without letters get A, B, C... in order. Raises DataError when fewer than two options,
    more than MAX_OPTIONS, or options lettered by the person with a repeated or skipped letter.
    """
    text = text.strip()
    labelled = _labelled_options(text)
    if labelled is not None:
        options = labelled
    else:
        lines = [line.strip() for line in re.split(r"[\n;|]", text) if line.strip()]
        _check_option_count(len(lines))
        options = {_letter(i): line for i, line in enumerate(lines)}
    options = {k: v for k, v in options.items() if v}
    if len(options) < 2:
        raise DataError(f"could not read at least two options from {text[:80]!r}", fix=_HOW_TO_WRITE)
    return options


def split_inline_options(text: str) -> tuple[str, str] | None:
    """(question, options) when lettered options were typed into the question itself, else None.

    "Which is a mammal? A) shark B) dolphin" -> ("Which is a mammal?", "A) shark B) dolphin"). The options
    must start at A on a new line or after the end of a sentence ('?', ':', '.' or '!', a closing quote or
    bracket after it allowed), run in order to the end of the text, and be at least two; anything else (a
    "vitamin A." in a sentence, "Plan A: ... or Plan B: ...") leaves the text alone.
    """
    for mark in _OPTION_MARK.finditer(text):
        if mark.group(1) not in "Aa":
            continue
        stem = text[:mark.start(1)].rstrip(" \t(")
        if not stem.strip() or not (stem.endswith("\n") or stem.rstrip("\"'\u201d\u2019)]").endswith(_SENTENCE_ENDS)):
            continue
        tail = text[mark.start(1):].strip()
        if mark.group(0).lstrip().startswith("("):
            tail = "(" + tail
        try:
            options = _labelled_options(tail)
        except DataError:
            return None
        if options is not None and len(options) >= 2 and all(options.values()):
            return stem.strip(), tail
    return None


def _letter(position: int) -> str:
    return chr(ord("A") + position)


def _check_option_count(count: int) -> None:
    if count > MAX_OPTIONS:
        raise DataError(f"{count} options given; at most {MAX_OPTIONS} (A-Z) are supported",
                        fix=f"keep at most {MAX_OPTIONS} options, one per line or 'A) first B) second'")


def _labelled_options(text: str) -> dict[str, str] | None:
    """Options the person lettered ("A) x B) y", or one "A. x" a line); None when they are not lettered.

    Letters must run A, B, C...: a repeated or skipped letter raises DataError instead of being relabelled.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) >= 2 and all(_LINE_LABEL.match(line) for line in lines):
        marks = [_LINE_LABEL.match(line) for line in lines]
        return _in_order([m.group(1) for m in marks], [line[m.end():].strip() for line, m in zip(lines, marks)])
    padded = " " + text
    marks = list(_OPTION_MARK.finditer(padded))
    if len(marks) >= 2 and _runs_in_order([m.group(1) for m in marks]):
        return _split_at(padded, marks)
    if not marks or marks[0].start() != 0:
        return None  # not lettered: one option a line
    same_style = [m for m in marks if m.group(2) == marks[0].group(2)]  # "A) Vitamin A. B) iron": the ")" marks
    if len(same_style) < 2:
        return None
    letters = [m.group(1) for m in same_style]
    return _in_order(letters, list(_split_at(padded, same_style).values()))


def _split_at(padded: str, marks: Sequence[re.Match[str]]) -> dict[str, str]:
    ends = [m.start() for m in marks[1:]] + [len(padded)]
    return {m.group(1).upper(): padded[m.end():end].strip() for m, end in zip(marks, ends)}


def _runs_in_order(letters: Sequence[str]) -> bool:
    return [letter.upper() for letter in letters] == [_letter(i) for i in range(len(letters))]


def _in_order(letters: Sequence[str], texts: Sequence[str]) -> dict[str, str]:
    """letter -> text when the letters run A, B, C...; else a DataError naming the repeated or odd letter."""
    upper = [letter.upper() for letter in letters]
    repeated = next((letter for i, letter in enumerate(upper) if letter in upper[:i]), None)
    if repeated is not None:
        raise DataError(f"option letter {repeated} is used for more than one option", fix=_RELETTER)
    if not _runs_in_order(upper):
        expected = ", ".join(_letter(i) for i in range(len(upper)))
        raise DataError(f"option letters {', '.join(upper)} do not run {expected}", fix=_RELETTER)
    return dict(zip(upper, texts))

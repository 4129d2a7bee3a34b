"""Loaders: benchmark questions and knowledge-base passages from their released file formats.

Every loader returns plain records (`Question`, `Passage`) and raises `DataError` naming the file,
the line (or record) and the fix for anything it cannot read. Supported formats:

- passages: JSONL `{"id", "title", "text"}` (title optional), or `.txt` with one fact a line
  (surrounding double quotes are stripped, as in the OpenBookQA open book; ids are
  "<file stem>-<line number>").
- MedQA-USMLE 4-option JSONL `{"question", "options", "answer_idx", "source_index", ...}`;
  ids "medqa-<file stem>-<source_index>" (so dev.jsonl gives "medqa-dev-12").
- MedQA instruction format `{"instances": {"input": "Question: ...\\nOption A: ...", "output": <option
  text>}}`; the released file gives every record the same id, so ids are "medqa-train-<n>" with n the
  0-based record position.
- StrategyQA JSON list `{"qid", "question", "answer": bool, "facts", "term", "description"}`:
  options A = yes, B = no.
- OpenBookQA JSONL `{"id", "question": {"stem", "choices"}, "answerKey"}` (`*_complete.jsonl` adds
  `fact1`, kept in `facts`).
- The project's demo JSONL `{"id", "kind", "question", "options", "answer", "rationale",
  "rationale_source"}`; dataset "demo-<kind>".
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Callable, Iterator

from kard.config import DEMO_PASSAGES, DEMO_QUESTIONS
from kard.errors import DataError
from kard.records import YES_NO_OPTIONS, Passage, Question

log = logging.getLogger(__name__)

Record = dict[str, Any]
_OPTION_LINE = re.compile(r"^Option ([A-Z]): ?", re.MULTILINE)


# ---------------------------------------------------------------- reading files


def read_text_file(path: str | Path) -> tuple[Path, str]:
    """The path and the text of a non-empty UTF-8 data file, or a DataError naming the file and the fix."""
    path = Path(path)
    if path.exists() and not path.is_file() and not path.is_dir():
        raise DataError("the path is a device, pipe or socket, not a data file", path=path,
                        fix="point to a saved data file (.jsonl, .json or .txt)")
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise DataError(f"the file {what}", path=path, fix="check the path (relative paths start at the current folder)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"the file is not UTF-8 text ({error.reason} at byte {error.start})", path=path,
                        fix="save the file as UTF-8") from None
    except OSError as error:
        raise DataError(f"the file cannot be read ({error.strerror})", path=path,
                        fix="make it readable, or point to a copy you can read") from None
    if not text.strip():
        raise DataError("the file is empty", path=path, fix="point to a file with at least one record")
    return path, text


def _jsonl_records(path: str | Path) -> Iterator[tuple[Path, int, Record]]:
    """(path, 1-based line number, record) for each non-blank line; blank lines are skipped."""
    path, text = read_text_file(path)
    # lines end at "\n" only: str.splitlines would also split inside a JSON string holding U+2028 or U+0085
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"malformed JSON ({error.msg}, column {error.colno})", path=path, line=number,
                            fix="make each line one complete JSON object") from None
        if not isinstance(record, dict):
            raise DataError(f"expected a JSON object, found {type(record).__name__}", path=path, line=number,
                            fix="make each line one JSON object such as {\"id\": ..., \"text\": ...}")
        yield path, number, record


def _json_list(path: str | Path) -> tuple[Path, list[Any]]:
    path, text = read_text_file(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"malformed JSON ({error.msg}, column {error.colno})", path=path, line=error.lineno,
                        fix="repair the JSON (a StrategyQA file is one JSON list of objects)") from None
    if not isinstance(data, list) or not data:
        raise DataError("expected a non-empty JSON list of question objects", path=path,
                        fix="use the StrategyQA release layout: [{\"qid\": ..., \"question\": ..., \"answer\": true}, ...]")
    return path, data


def _field(record: Record, key: str, path: Path, line: int | None, fix: str, where: str = "") -> str:
    """A required non-empty string field, such as an id or a label (numbers are accepted and turned into text)."""
    value = record.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        found = "missing" if value is None else f"empty or not text ({value!r:.40})"
        raise DataError(f"{where}field '{key}' is {found}", path=path, line=line, fix=fix)
    return value.strip()


def _text_field(record: Record, key: str, path: Path, line: int | None, fix: str, where: str = "") -> str:
    """A required non-empty text field (a question, a passage): a number there is a mistake, not text to send."""
    value = record.get(key)
    if isinstance(value, (int, float)):
        raise DataError(f"{where}field '{key}' is {_json_kind(value)} ({value!r}), not text", path=path,
                        line=line, fix=f'write it as text in quotes ("{key}": "...")')
    return _field(record, key, path, line, fix, where)


def _optional_text(record: Record, key: str, path: Path, line: int | None) -> str | None:
    """An optional text field (a rationale): None when absent or blank; anything but text is a DataError."""
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DataError(f"field '{key}' is {_json_kind(value)} ({value!r:.40}), not text", path=path,
                        line=line, fix=f'write it as text in quotes ("{key}": "..."), or leave it out')
    return value.strip() or None


def _json_kind(value: Any) -> str:
    """What a JSON value is, in words: "a number", "true or false", "a list", "an object"."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    return {"list": "a list", "dict": "an object"}.get(type(value).__name__, f"a {type(value).__name__}")


# ---------------------------------------------------------------- passages


def load_passages(path: str | Path) -> list[Passage]:
    """Passages from JSONL `{"id", "title", "text"}` or a `.txt` file with one fact a line."""
    path = Path(path)
    passages = _load_fact_lines(path) if path.suffix.lower() == ".txt" else _load_passage_jsonl(path)
    log.debug("loaded %d passages from %s", len(passages), path)
    return passages


def _load_passage_jsonl(path: Path) -> list[Passage]:
    fix = 'give every line an "id" and a non-empty "text" (and optionally a "title")'
    passages: list[Passage] = []
    first_line: dict[str, int] = {}
    for path, number, record in _jsonl_records(path):
        passage_id = _field(record, "id", path, number, fix)
        text = _text_field(record, "text", path, number, fix)
        title = record.get("title") or ""
        if passage_id in first_line:
            raise DataError(f"duplicate passage id {passage_id!r} (first on line {first_line[passage_id]})",
                            path=path, line=number, fix="give every passage a unique id")
        first_line[passage_id] = number
        passages.append(Passage(id=passage_id, title=str(title).strip(), text=text))
    return passages


def _load_fact_lines(path: Path) -> list[Passage]:
    path, text = read_text_file(path)
    passages = []
    for number, line in enumerate(text.splitlines(), start=1):
        fact = _strip_quotes(line.strip())
        if fact:
            passages.append(Passage(id=f"{path.stem}-{number}", title="", text=fact))
    return passages


def _strip_quotes(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].strip()
    return text


def load_demo_passages(path: str | Path = DEMO_PASSAGES) -> list[Passage]:
    """The embedded demo knowledge base (demo/passages.jsonl)."""
    return load_passages(path)


# ---------------------------------------------------------------- questions


def _checked_question(question: Question, path: Path, line: int | None) -> Question:
    if not question.options:
        raise DataError(f"question {question.id!r} has no options", path=path, line=line,
                        fix="give each question its answer options (letter -> text)")
    if question.answer is not None and question.answer not in question.options:
        raise DataError(f"question {question.id!r}: answer {question.answer!r} is not among its options "
                        f"{', '.join(question.options)}", path=path, line=line,
                        fix="set the answer to one of the option letters")
    return question


def _unique(questions: list[Question], lines: list[int | None], path: Path) -> list[Question]:
    seen: dict[str, int | None] = {}
    for question, line in zip(questions, lines):
        if question.id in seen:
            raise DataError(f"duplicate question id {question.id!r}", path=path, line=line,
                            fix="give every question a unique id")
        seen[question.id] = line
    return questions


def _letter_options(raw: Any, path: Path, line: int, fix: str) -> dict[str, str]:
    if not isinstance(raw, dict) or not raw:
        raise DataError("field 'options' is missing or not an object of letter -> text", path=path, line=line, fix=fix)
    return {str(letter).strip(): str(text).strip() for letter, text in raw.items()}


def load_medqa(path: str | Path, dataset: str = "medqa") -> list[Question]:
    """MedQA-USMLE in its original 4-option JSONL layout."""
    fix = 'use the MedQA layout {"question", "options": {"A": ...}, "answer_idx": "A", "source_index": 0}'
    questions, lines = [], []
    for path, number, record in _jsonl_records(path):
        index = record.get("source_index", len(questions))
        meta = {"meta_info": str(record["meta_info"])} if record.get("meta_info") else {}
        question = Question(
            id=f"medqa-{path.stem}-{index}",
            text=_text_field(record, "question", path, number, fix),
            options=_letter_options(record.get("options"), path, number, fix),
            answer=_field(record, "answer_idx", path, number, fix),
            dataset=dataset,
            meta=meta,
        )
        questions.append(_checked_question(question, path, number))
        lines.append(number)
    return _unique(questions, lines, path)


def parse_instruction_input(text: str) -> tuple[str, dict[str, str]]:
    """Split "Question: ...\\nOption A: ...\\nOption B: ..." into (question text, {letter: option})."""
    starts = list(_OPTION_LINE.finditer(text))
    if not starts:
        raise ValueError("no 'Option A: ...' lines")
    stem = text[: starts[0].start()].strip()
    stem = stem[len("Question:"):].strip() if stem.startswith("Question:") else stem
    options = {}
    for match, following in zip(starts, starts[1:] + [None]):
        end = following.start() if following else len(text)
        options[match.group(1)] = text[match.end(): end].strip()
    return stem, options


def _normalise_option(text: str) -> str:
    return " ".join(_strip_quotes(text.strip().strip('"').strip()).split()).casefold()


def load_medqa_instructions(path: str | Path, dataset: str = "medqa") -> list[Question]:
    """The MedQA train subset in instruction layout; the answer is given as option text, mapped to its letter."""
    fix = 'use the layout {"instances": {"input": "Question: ...\\nOption A: ...", "output": "<option text>"}}'
    questions = []
    for position, (path, number, record) in enumerate(_jsonl_records(path)):
        instance = record.get("instances")
        if isinstance(instance, list) and len(instance) == 1:
            instance = instance[0]
        if not isinstance(instance, dict):
            raise DataError("field 'instances' is missing or not an object", path=path, line=number, fix=fix)
        raw_input = _text_field(instance, "input", path, number, fix, where="instances: ")
        output = _field(instance, "output", path, number, fix, where="instances: ")
        try:
            stem, options = parse_instruction_input(raw_input)
        except ValueError as error:
            raise DataError(f"cannot parse the question input: {error}", path=path, line=number, fix=fix) from None
        wanted = _normalise_option(output)
        letters = [letter for letter, option in options.items() if _normalise_option(option) == wanted]
        if len(letters) != 1:
            problem = "matches none of the options" if not letters else f"matches several options ({', '.join(letters)})"
            raise DataError(f"the output {output!r:.60} {problem}", path=path, line=number,
                            fix="make 'output' the exact text of the one correct option")
        if not stem:
            raise DataError("the question text before 'Option A:' is empty", path=path, line=number, fix=fix)
        question = Question(id=f"medqa-train-{position}", text=stem, options=options, answer=letters[0], dataset=dataset)
        questions.append(_checked_question(question, path, number))
    return questions


def load_strategyqa(path: str | Path, dataset: str = "strategyqa") -> list[Question]:
    """StrategyQA's JSON list; yes/no become options A = yes, B = no. Facts, term and description are kept."""
    path, data = _json_list(path)
    fix = 'use the StrategyQA layout {"qid", "question", "answer": true|false, "facts": [...]}'
    questions = []
    for position, record in enumerate(data, start=1):
        where = f"record {position}: "
        if not isinstance(record, dict):
            raise DataError(f"{where}expected a JSON object", path=path, fix=fix)
        answer = record.get("answer")
        if answer is not None and not isinstance(answer, bool):
            raise DataError(f"{where}answer {answer!r} is not true or false", path=path, fix=fix)
        facts = record.get("facts") or []
        meta = {key: str(record[key]) for key in ("term", "description") if record.get(key)}
        questions.append(Question(
            id=_field(record, "qid", path, None, fix, where=where),
            text=_text_field(record, "question", path, None, fix, where=where),
            options=dict(YES_NO_OPTIONS),
            answer=None if answer is None else ("A" if answer else "B"),
            dataset=dataset,
            facts=tuple(str(fact).strip() for fact in facts if str(fact).strip()),
            meta=meta,
        ))
    return _unique(questions, [None] * len(questions), path)


def load_openbookqa(path: str | Path, dataset: str = "openbookqa") -> list[Question]:
    """OpenBookQA JSONL; `fact1` of the `*_complete.jsonl` files goes into `facts`."""
    fix = 'use the OpenBookQA layout {"id", "question": {"stem", "choices": [{"label", "text"}]}, "answerKey"}'
    questions, lines = [], []
    for path, number, record in _jsonl_records(path):
        body = record.get("question")
        if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
            raise DataError("field 'question' must hold 'stem' and a 'choices' list", path=path, line=number, fix=fix)
        options = {}
        for choice in body["choices"]:
            if not isinstance(choice, dict):
                raise DataError("each choice must be an object with 'label' and 'text'", path=path, line=number, fix=fix)
            options[_field(choice, "label", path, number, fix, "choice: ")] = _field(choice, "text", path, number, fix, "choice: ")
        fact = record.get("fact1")
        question = Question(
            id=_field(record, "id", path, number, fix),
            text=_text_field(body, "stem", path, number, fix, "question: "),
            options=options,
            answer=_field(record, "answerKey", path, number, fix),
            dataset=dataset,
            facts=(fact.strip(),) if isinstance(fact, str) and fact.strip() else (),
        )
        questions.append(_checked_question(question, path, number))
        lines.append(number)
    return _unique(questions, lines, path)


def load_demo_questions(path: str | Path = DEMO_QUESTIONS, dataset: str | None = None) -> list[Question]:
    """The project's own question JSONL (demo/questions.jsonl); dataset "demo-<kind>" unless given."""
    fix = 'give each line {"id", "kind", "question", "options": {"A": ...}, "answer": "A", "rationale"}'
    questions, lines = [], []
    for path, number, record in _jsonl_records(path):
        kind = record.get("kind")
        answer = record.get("answer")
        question = Question(
            id=_field(record, "id", path, number, fix),
            text=_text_field(record, "question", path, number, fix),
            options=_letter_options(record.get("options"), path, number, fix),
            answer=None if answer is None else str(answer).strip(),
            dataset=dataset or (f"demo-{kind}" if kind else "demo"),
            rationale=_optional_text(record, "rationale", path, number),
            rationale_source=record.get("rationale_source") or None,
            facts=tuple(record.get("facts") or ()),
        )
        questions.append(_checked_question(question, path, number))
        lines.append(number)
    return _unique(questions, lines, path)


# ---------------------------------------------------------------- format detection


def _detect_jsonl(first: Record) -> Callable[..., list[Question]] | None:
    if "instances" in first:
        return load_medqa_instructions
    if isinstance(first.get("question"), dict) and "answerKey" in first:
        return load_openbookqa
    if "answer_idx" in first and "options" in first:
        return load_medqa
    if "options" in first and "question" in first and "id" in first:
        return load_demo_questions
    return None


def load_questions(path: str | Path, dataset: str | None = None) -> list[Question]:
    """Questions from any supported file; the format is detected from the suffix and the first record."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        loader: Callable[..., list[Question]] | None = load_strategyqa
    else:
        first = next(_jsonl_records(path))[2]
        loader = _detect_jsonl(first)
    if loader is None:
        raise DataError("unrecognised question format", path=path, line=1,
                        fix="use MedQA, MedQA instruction, OpenBookQA JSONL, StrategyQA JSON, or "
                            '{"id", "question", "options", "answer"} JSONL (see kard/datasets.py)')
    questions = loader(path) if dataset is None else loader(path, dataset=dataset)
    log.debug("loaded %d questions from %s with %s", len(questions), path, loader.__name__)
    return questions

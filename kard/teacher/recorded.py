"""Recorded rationales as teacher sources: import them, keep who wrote them, write them as JSONL.

Every importer returns a `RationaleSet`: a dict question id -> [Rationale], which also lists the lines
it skipped and why. Question ids match `kard.datasets` (MedQA dev: "medqa-dev-<source_index>",
StrategyQA: qid, OpenBookQA: id). Sources say who wrote the text, e.g. "gpt-4-32k (recorded, MIRAGE)"
or "human (FLAN)", and travel with each Rationale wherever it goes.

Formats:
- MedQA recorded teacher outputs (MIRAGE runs): `{"file", "id", "raw": ["<JSON string>"], "source_index"}`
  where raw[0] should hold `{"step_by_step_thinking", "answer_choice"}` but is sometimes malformed
  (unescaped quotes), empty, or a refusal message. Parsed defensively; the unusable ones are skipped.
- StrategyQA FLAN chain-of-thought TSV: `question<TAB>yes|no<TAB>rationale`, matched to qids by text.
- StrategyQA facts and OpenBookQA `fact1`: the datasets' own gold facts, as human rationales.
- Generic JSONL: `{"question_id", "rationale" (or "text"), "answer"?, "source"?, "sample_index"?}`;
  `write_rationales` writes this format, so outputs of `teach` import back.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from kard.errors import ConfigError, DataError
from kard.metrics import Score, score
from kard.records import Question, Rationale

log = logging.getLogger(__name__)

MIRAGE = "recorded, MIRAGE"
FLAN_SOURCE = "human (FLAN)"
STRATEGYQA_FACTS_SOURCE = "human (StrategyQA facts)"
OPENBOOKQA_FACTS_SOURCE = "human (OpenBookQA fact1)"

_LEADING_LETTER = re.compile(r"^\(?([A-Za-z])\)?(?:[.):]|\s|$)")
_THINKING_THEN_CHOICE = re.compile(
    r'^\s*\{\s*"step_by_step_thinking"\s*:\s*"(?P<thinking>.*)"\s*,\s*"answer_choice"\s*:\s*"(?P<choice>[^"]*)"\s*\}\s*$',
    re.DOTALL,
)
_UNESCAPED_QUOTE = re.compile(r'(?<!\\)"')


@dataclass(frozen=True)
class Skipped:
    line: int  # 1-based line (or record) number in the file
    reason: str


class RationaleSet(dict):
    """question id -> list of Rationale, plus what the importer skipped (`skipped`) and read (`rows`)."""

    def __init__(self, rows: int = 0, skipped: Sequence[Skipped] = ()):
        super().__init__()
        self.rows = rows
        self.skipped: list[Skipped] = list(skipped)

    def add(self, rationale: Rationale) -> None:
        self.setdefault(rationale.question_id, []).append(rationale)

    def rationales(self) -> list[Rationale]:
        return [r for group in self.values() for r in group]

    def skip_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.skipped:
            kind = item.reason.split(":")[0]
            counts[kind] = counts.get(kind, 0) + 1
        return counts


# ----------------------------------------------------------------------------- MedQA recorded (MIRAGE)


def parse_recorded_reply(raw: object) -> tuple[str, str] | str:
    """(thinking, answer_choice) from one recorded `raw[0]`, or the reason it cannot be read.

    Tries strict JSON first, then the same layout with unescaped quotes inside the thinking (a
    frequent defect of these files). Anything else (refusals, truncated text) is a reason string.
    """
    if isinstance(raw, dict):
        data: object = raw
    elif isinstance(raw, str):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            data = _lenient_reply(raw)
            if data is None:
                return f"not a JSON reply: {raw.strip()[:60]!r}"
    else:
        return f"unexpected reply type {type(raw).__name__}"
    if not isinstance(data, dict):
        return f"not a JSON object: {str(data)[:60]!r}"
    thinking = data.get("step_by_step_thinking")
    if isinstance(thinking, list):
        thinking = " ".join(str(step) for step in thinking)
    if not isinstance(thinking, str) or not thinking.strip():
        return "empty rationale: no step_by_step_thinking"
    choice = data.get("answer_choice")
    return thinking.strip(), (str(choice).strip() if choice is not None else "")


def _lenient_reply(raw: str) -> dict | None:
    match = _THINKING_THEN_CHOICE.match(raw)
    if not match:
        return None
    try:
        thinking = json.loads('"' + _UNESCAPED_QUOTE.sub(lambda _: '\\"', match["thinking"]) + '"')
    except json.JSONDecodeError:
        return None
    return {"step_by_step_thinking": thinking, "answer_choice": match["choice"]}


def choice_letter(choice: str, options: Mapping[str, str] | None = None) -> str | None:
    """The option letter of a recorded answer choice: "C", "C. text", "(C)"; an option's exact text
    when options are known. Ambiguous ("A/B") or absent ("None of the above") -> None."""
    letters = set(options) if options else {"A", "B", "C", "D"}
    match = _LEADING_LETTER.match(choice.strip())
    if match and match.group(1).upper() in letters:
        return match.group(1).upper()
    if options:
        wanted = " ".join(choice.split()).casefold()
        found = [letter for letter, text in options.items() if " ".join(text.split()).casefold() == wanted]
        if len(found) == 1:
            return found[0]
    return None


def import_medqa_recorded(
    path: str | Path, questions: Iterable[Question] | None = None, split: str = "dev"
) -> RationaleSet:
    """Recorded GPT-3.5 / GPT-4 chain-of-thought replies for MedQA (the MIRAGE runs).

    Ids are "medqa-<split>-<source_index>". With `questions`, answers given as option text are
    mapped to letters and records of unknown questions are skipped.
    """
    by_id = {q.id: q for q in questions} if questions is not None else None
    result = RationaleSet()
    for number, record in _json_lines(path, result):
        index = record.get("source_index")
        raw = record.get("raw")
        if not isinstance(index, int):
            result.skipped.append(Skipped(number, "no source_index"))
            continue
        qid = f"medqa-{split}-{index}"
        question = by_id.get(qid) if by_id is not None else None
        if by_id is not None and question is None:
            result.skipped.append(
                Skipped(number, f"unknown question: {qid} is not among the given questions")
            )
            continue
        if not isinstance(raw, list) or not raw:
            result.skipped.append(Skipped(number, "empty raw: no reply recorded"))
            continue
        parsed = parse_recorded_reply(raw[0])
        if isinstance(parsed, str):
            result.skipped.append(Skipped(number, parsed))
            continue
        thinking, choice = parsed
        letter = choice_letter(choice, question.options if question else None)
        result.add(Rationale(qid, thinking, letter, f"{_recorded_model(record, path)} ({MIRAGE})", 0))
    return _finish(result, path, "MedQA recorded teacher replies")


def _recorded_model(record: Mapping, path: str | Path) -> str:
    """The model name from the record's `file` (".../OpenAI/gpt-4-32k/test_0000.json"), else the file name."""
    parts = str(record.get("file") or "").split("/")
    if len(parts) >= 2 and parts[-2]:
        return parts[-2]
    stem = Path(path).stem
    return stem.split("teacher_cot_", 1)[-1] if "teacher_cot_" in stem else stem


# ----------------------------------------------------------------------------- StrategyQA and OpenBookQA


def _normalise(text: str) -> str:
    return " ".join(text.split()).casefold()


def import_flan_strategyqa(path: str | Path, questions: Iterable[Question]) -> RationaleSet:
    """FLAN's human-written StrategyQA rationales (TSV), matched to `questions` by question text.

    A text shared by several qids gives each of them the rationale; an exact duplicate row is read once.
    """
    by_text: dict[str, list[Question]] = {}
    for question in questions:
        by_text.setdefault(_normalise(question.text), []).append(question)
    result = RationaleSet()
    seen: set[tuple[str, str]] = set()
    for number, line in _text_lines(path, result):
        fields = line.split("\t")
        if len(fields) != 3:
            result.skipped.append(
                Skipped(number, f"malformed row: {len(fields)} tab-separated fields, expected 3")
            )
            continue
        text, verdict, rationale = (field.strip() for field in fields)
        if verdict.lower() not in ("yes", "no") or not rationale:
            result.skipped.append(
                Skipped(number, f"malformed row: answer {verdict!r} is not yes/no or the rationale is empty")
            )
            continue
        matches = by_text.get(_normalise(text), [])
        if not matches:
            result.skipped.append(Skipped(number, f"unmatched question: {text[:60]!r}"))
            continue
        letter = "A" if verdict.lower() == "yes" else "B"
        for question in matches:
            if (question.id, rationale) in seen:
                continue
            seen.add((question.id, rationale))
            result.add(
                Rationale(question.id, rationale, letter, FLAN_SOURCE, len(result.get(question.id, [])))
            )
    return _finish(result, path, "FLAN StrategyQA rationales")


def rationales_from_facts(questions: Iterable[Question], source: str) -> RationaleSet:
    """Each question's gold facts (StrategyQA `facts`, OpenBookQA `fact1`) as one human rationale."""
    result = RationaleSet()
    for number, question in enumerate(questions, start=1):
        result.rows += 1
        facts = [fact.strip() for fact in question.facts if fact.strip()]
        if not facts:
            result.skipped.append(Skipped(number, f"no facts: question {question.id} has none"))
            continue
        text = " ".join(fact if fact.endswith((".", "!", "?")) else fact + "." for fact in facts)
        result.add(Rationale(question.id, text, question.answer, source, 0))
    return result


def import_strategyqa_facts(path: str | Path) -> RationaleSet:
    """StrategyQA's annotated facts (train.json) as human rationales."""
    from kard.datasets import load_strategyqa

    return _finish(
        rationales_from_facts(load_strategyqa(path), STRATEGYQA_FACTS_SOURCE), path, "StrategyQA facts"
    )


def import_openbookqa_facts(path: str | Path) -> RationaleSet:
    """OpenBookQA's gold open-book fact (`fact1` of *_complete.jsonl) as human rationales."""
    from kard.datasets import load_openbookqa

    result = rationales_from_facts(load_openbookqa(path), OPENBOOKQA_FACTS_SOURCE)
    if not result:
        raise DataError(
            "no question has a fact1", path=path, fix="use the *_complete.jsonl files, which carry fact1"
        )
    return _finish(result, path, "OpenBookQA facts")


# ----------------------------------------------------------------------------- generic JSONL


def import_jsonl(
    path: str | Path,
    source: str | None = None,
    *,
    strict: bool = False,
    questions: Iterable[Question] | None = None,
    flag: str = "--kind",
) -> RationaleSet:
    """Any JSONL of `{"question_id", "rationale" or "text", "answer"?, "source"?, "sample_index"?}`.

    A missing source becomes `source` (default "imported (<file name>)"). With `questions`, an answer
    that is not one of its question's option letters is a bad line. Bad lines are skipped and listed,
    or with `strict` raise a DataError naming the line. `flag`: the option that named the file, for the
    fix when nothing could be read (import-rationales' --kind, or e.g. build-examples' --rationales).
    """
    default_source = source or f"imported ({Path(path).name})"
    by_id = {q.id: q for q in questions} if questions is not None else {}
    result = RationaleSet()
    for number, record in _json_lines(path, result, strict=strict):
        try:
            rationale = _generic_record(record, default_source, result)
            _check_answer_letter(rationale, by_id.get(rationale.question_id))
        except ValueError as error:
            if strict:
                raise DataError(str(error), path=path, line=number, fix=_GENERIC_FIX) from None
            result.skipped.append(Skipped(number, f"bad record: {error}"))
            continue
        result.add(rationale)
    if flag == "--kind":
        return _finish(result, path, "rationales")
    return _finish(result, path, "rationales", fix=(
        f"check that {flag} names a rationales JSONL written by `python -m kard teach` or `import-rationales` "
        "(one {\"question_id\", \"text\", \"answer\"} object a line)"))


_GENERIC_FIX = (
    'write one JSON object a line: {"question_id": "...", "rationale": "...", "answer": "B", "source": "..."}'
)


def _generic_record(record: Mapping, default_source: str, result: RationaleSet) -> Rationale:
    qid = record.get("question_id")
    text = record.get("rationale", record.get("text"))
    if not isinstance(qid, str) or not qid.strip():
        raise ValueError("no question_id")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"no rationale text for {qid}")
    answer = _answer_letter(record.get("answer"))
    source = (
        record.get("source")
        if isinstance(record.get("source"), str) and record["source"].strip()
        else default_source
    )
    index = record.get("sample_index")
    if not isinstance(index, int) or index < 0:
        index = len(result.get(qid, []))
    return Rationale(qid.strip(), text.strip(), answer, source, index)


def _check_answer_letter(rationale: Rationale, question: Question | None) -> None:
    """A ValueError when `question` has options and the rationale's answer is none of their letters."""
    if question is None or not question.options or rationale.answer is None:
        return
    if rationale.answer not in question.options:
        raise ValueError(
            f"answer {rationale.answer!r} is not among the options {', '.join(question.options)} "
            f"of question {question.id}"
        )


def _answer_letter(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "A" if value else "B"
    text = str(value).strip()
    if text.lower() in ("yes", "no"):
        return "A" if text.lower() == "yes" else "B"
    if len(text) == 1 and text.isalpha():
        return text.upper()
    raise ValueError(f"answer {text[:20]!r} is not an option letter (or yes/no)")


def write_rationales(rationales: Iterable[Rationale], path: str | Path) -> int:
    """Write rationales as JSONL (question_id, text, answer, source, sample_index); returns the count.

    The file is replaced whole once written, so a failed write leaves an earlier file as it was.
    """
    path = Path(path)
    lines = [json.dumps(asdict(rationale), ensure_ascii=False) + "\n" for rationale in rationales]
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text("".join(lines), encoding="utf-8")
        os.replace(partial, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise ConfigError(
            f"cannot write the rationales to {path} ({error.strerror or error}). "
            "Fix: pass an --out file in a writable folder with free space"
        ) from None
    return len(lines)


# ----------------------------------------------------------------------------- accuracy of a source


def teacher_score(rationales: Mapping[str, Sequence[Rationale]], questions: Sequence[Question]) -> Score:
    """Accuracy of the first rationale's answer against the gold one, over all `questions`
    (a question without a rationale or without an answer counts as wrong)."""
    gold = [q for q in questions if q.answer is not None]
    predicted = [(rationales.get(q.id) or [None])[0] for q in gold]
    return score([r.answer if r else None for r in predicted], [q.answer for q in gold])  # type: ignore[misc]


# ----------------------------------------------------------------------------- reading files


def _text_lines(path: str | Path, result: RationaleSet):
    from kard.datasets import read_text_file  # rejects a missing, non-UTF-8 or empty file as the loaders do

    _, text = read_text_file(path)
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            result.rows += 1
            yield number, line


def _json_lines(path: str | Path, result: RationaleSet, strict: bool = False):
    for number, line in _text_lines(path, result):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if strict:
                raise DataError(
                    f"not valid JSON ({error.msg})", path=path, line=number, fix=_GENERIC_FIX
                ) from None
            result.skipped.append(Skipped(number, f"not JSON: {error.msg}"))
            continue
        if not isinstance(record, dict):
            if strict:
                raise DataError("expected a JSON object", path=path, line=number, fix=_GENERIC_FIX)
            result.skipped.append(Skipped(number, "not a JSON object"))
            continue
        yield number, record


def _finish(result: RationaleSet, path: str | Path, what: str,
            fix: str = "check that the file and --kind match") -> RationaleSet:
    if not result:
        reasons = (
            "; ".join(f"{count} {kind}" for kind, count in result.skip_counts().items())
            or "the file has no records"
        )
        first = result.skipped[0] if result.skipped else None
        detail = f"; line {first.line}: {first.reason}" if first else ""
        raise DataError(
            f"no {what} could be read ({reasons}{detail})", path=path, fix=fix
        )
    if result.skipped:
        log.info(
            "%s: read %d rationales for %d questions, skipped %d lines (%s)",
            Path(path).name,
            sum(map(len, result.values())),
            len(result),
            len(result.skipped),
            result.skip_counts(),
        )
    return result

"""Answering one question the KARD way: BM25 candidates, an optional reranker, top-k passages, the student.

    Pipeline(knowledge, student, reranker=None).answer(question) -> Prediction

`reranker=None` is the paper's KARD-BM25 setting (the top-k BM25 hits go to the student). A reranker
is anything with `.rerank(question, hits, k=None) -> list[Hit]` and `.name` (kard.reranker.encoder.Reranker).
With `recall` (kard.recall), a question that has a saved correction is answered reading that correction.

Timings in a Prediction: `retrieval_s` (BM25), `rerank_s` (None without a reranker), `first_token_s`
(from the start of generation to the first new token, prompt processing included), `generation_s`,
and `total_s` (the whole answer, retrieval included). `tokens_out` sums the new tokens of all samples.

A prompt longer than the budget (GenerationConfig.max_input_tokens, and for decoder-only models the
context length minus max_new_tokens) is cut passages first (the lowest-ranked passage is shortened,
those after it dropped), then the question text; `Prediction.truncation` says what was cut, and
`Prediction.passages` holds the passages exactly as the student read them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Protocol, Sequence

from kard.config import DEFAULT_STUDENT, GenerationConfig, RetrievalConfig
from kard.errors import ConfigError, DataError
from kard.kinds import gold_for, options_for, read_question
from kard.metrics import majority_vote
from kard.prompts import (
    MAX_OPTIONS, PROMPT_VERSION, answer_only_input, normalise_free_answer, parse_free_answer, parse_options,
    stated_option, student_input,
)
from kard.records import (
    CHOICE, OPEN, QUESTION_KINDS, YES_NO, YES_NO_OPTIONS, Hit, Prediction, Question, Sample, Timings, is_recalled,
)

if TYPE_CHECKING:  # pragma: no cover
    from kard.student import Student

log = logging.getLogger(__name__)


ANSWER_ONLY_NEW_TOKENS = 8
"""The fine-tuning baseline writes only the answer letter."""


class Reranks(Protocol):
    name: str

    def rerank(self, question: Question | str, hits: Sequence[Hit], k: int | None = None) -> list[Hit]: ...


class Searches(Protocol):
    def search(self, query: str, k: int) -> list[Hit]: ...


class Recalls(Protocol):
    """kard.recall: a saved correction for the question, the one passage the student then reads."""

    def find(self, question: Question) -> Hit | None: ...


# ---------------------------------------------------------------- questions


TYPED_QUESTION_ID = "user"
"""The id of a question a person typed (`make_question`'s default): not a dataset's id, so not shown."""


def make_question(text: str, options: str | Mapping[str, str] | None = None, qid: str = TYPED_QUESTION_ID,
                  answer: str | None = None, kind: str | None = None) -> Question:
    """A Question from what a person typed; options as text ("A) .. B) ..") or a letter -> text dict.

    Options typed into the text ("Which? A) x B) y") are read from it. Without options it is a free
    question: yes/no or open, as `kard.kinds.decide_kind` reads the text;
    `kind` ("choice", "yesno", "open"; None or "auto" = decide) overrides that. `answer` is a letter,
    "yes"/"no" for a yes/no question, or the free text of an open question.
    """
    if not (text or "").strip():  # what a person typed: its id ("user") is not worth naming
        raise DataError("the question is empty", fix="type a question")
    text, options, decision = read_question(text, options, kind)
    typed = _typed_options(options) if decision.kind == CHOICE else {}
    question = Question(id=qid, text=text.strip(), options=options_for(decision.kind, typed),
                        answer=gold_for(decision.kind, answer), kind=decision.kind)
    check_question(question)
    return question


def _typed_options(options: str | Mapping[str, str] | None) -> dict[str, str]:
    if isinstance(options, str):
        return parse_options(options)
    return {str(k).strip().upper(): str(v).strip() for k, v in (options or {}).items()}


def check_question(question: Question) -> None:
    """Raise DataError for a question the student cannot answer: empty text, an unknown kind, options that
    do not fit the kind (< 2 or > 26 lettered options, odd letters; yes/no other than A. yes B. no; an open
    question with options), or a gold answer that is not one of the option letters."""
    if not isinstance(question, Question):
        raise DataError(
            f"expected a Question, got {type(question).__name__}",
            fix="build one with kard.pipeline.make_question(text, options)",
        )
    if not question.text.strip():
        raise DataError(f"question {question.id!r} has no text", fix="type a question")
    if question.kind not in QUESTION_KINDS:
        raise DataError(f"question {question.id!r} has the unknown kind {question.kind!r}",
                        fix=f"use one of {', '.join(QUESTION_KINDS)}")
    if question.kind == OPEN:
        if question.options:
            raise DataError(f"question {question.id!r} is open but has options {list(question.options)}",
                            fix="drop the options, or ask it as a multiple-choice question (kind 'choice')")
        return
    if question.kind == YES_NO and dict(question.options) != dict(YES_NO_OPTIONS):
        raise DataError(f"yes/no question {question.id!r} has the options {dict(question.options)}",
                        fix="a yes/no question has exactly A. yes, B. no (make_question(text, kind='yesno'))")
    if len(question.options) < 2:
        raise DataError(
            f"question {question.id!r} has {len(question.options)} option(s); a multiple-choice question needs 2 or more",
            fix="give options as 'A) first B) second'",
        )
    if len(question.options) > MAX_OPTIONS:
        raise DataError(
            f"question {question.id!r} has {len(question.options)} options; at most {MAX_OPTIONS} (A-Z) are supported",
            fix=f"keep at most {MAX_OPTIONS} options",
        )
    bad = [letter for letter in question.options if len(letter) != 1 or not letter.isalpha() or not letter.isupper()]
    empty = [letter for letter, text in question.options.items() if not str(text).strip()]
    if bad or empty:
        raise DataError(
            f"question {question.id!r} has options with bad letters {bad} or empty text {empty}",
            fix="label options with single capital letters A, B, C... and give each a text",
        )
    _check_gold_letter(question)


def _check_gold_letter(question: Question) -> None:
    """A gold answer of a lettered question is one of its letters (else no answer could ever be right)."""
    if question.answer is not None and question.answer not in question.options:
        yes_no = " (or yes / no)" if question.kind == YES_NO else ""
        raise DataError(f"question {question.id!r}: the gold answer {question.answer!r} is not one of its options "
                        f"{', '.join(question.options)}", fix=f"set the answer to one of the option letters{yes_no}")


QUERY_MODES = ("question", "question+options")


def retrieval_query(question: Question, mode: str = "question") -> str:
    """The BM25 query for a question: its text, or its text and option texts (RetrievalConfig.query).

    Only a multiple-choice question adds its options: a typed yes/no question's "yes no" and an open
    question's (absent) options carry no topic.
    """
    if mode == "question" or (mode == "question+options" and question.kind != CHOICE):
        return question.text
    if mode == "question+options":
        return " ".join([question.text, *question.options.values()])
    raise ConfigError(f"unknown retrieval query mode {mode!r}. Fix: use one of {', '.join(QUERY_MODES)}")


# ---------------------------------------------------------------- fitting the prompt


@dataclass(frozen=True)
class FittedPrompt:
    prompt: str
    passages: tuple[Hit, ...]
    tokens: int
    truncation: str | None


def input_budget(student: "Student", generation: GenerationConfig) -> int:
    """Most prompt tokens: max_input_tokens, and room for the answer within a decoder's context."""
    budget = generation.max_input_tokens
    if not student.is_encoder_decoder and student.context_length:
        budget = min(budget, student.context_length - generation.max_new_tokens)
    if budget < 1:
        raise ConfigError(
            f"no room for a prompt: max_input_tokens {generation.max_input_tokens}, context "
            f"{student.context_length}, max_new_tokens {generation.max_new_tokens}. Fix: lower max_new_tokens"
        )
    return budget


def fit_prompt(question: Question, hits: Sequence[Hit], count: Callable[[str], int],
               ids: Callable[[str], list[int]], decode: Callable[[list[int]], str], budget: int) -> FittedPrompt:
    """The student prompt within `budget` tokens: cut passages (lowest-ranked first), then the question.

    `count` gives the token count of a whole prompt, `ids`/`decode` tokenize and detokenize a
    piece of text (Student.count_tokens, Student.text_ids, Student.decode).
    """

    def build(q: Question, used: Sequence[Hit]) -> str:
        return student_input(q, [h.passage for h in used])

    full = build(question, hits)
    if count(full) <= budget:
        return FittedPrompt(full, tuple(hits), count(full), None)
    notes: list[str] = []
    kept: list[Hit] = []
    for position, hit in enumerate(hits):
        if count(build(question, [*kept, hit])) <= budget:
            kept.append(hit)
            continue
        cut = _longest_prefix(hit.passage.text, ids, decode, lambda t: count(build(question, [*kept, _with_text(hit, t)])) <= budget)
        if cut is not None and cut.strip():
            kept.append(_with_text(hit, cut))
            notes.append(f"passage {hit.passage.id} cut from {len(ids(hit.passage.text))} to {len(ids(cut))} tokens")
        dropped = [h.passage.id for h in hits[position + (1 if cut and cut.strip() else 0):]]
        if dropped:
            notes.append(f"dropped passage{'s' if len(dropped) > 1 else ''} {', '.join(dropped)}")
        break
    prompt_question = question
    if not kept and count(build(question, [])) > budget:
        text = _longest_prefix(question.text, ids, decode, lambda t: count(build(replace(question, text=t), [])) <= budget)
        if text is None or not text.strip():
            raise DataError(
                f"question {question.id!r}: the options and instruction alone exceed {budget} tokens",
                fix="shorten the options, or raise GenerationConfig.max_input_tokens",
            )
        prompt_question = replace(question, text=text)
        notes.append(f"question cut from {len(ids(question.text))} to {len(ids(text))} tokens")
    prompt = build(prompt_question, kept)
    notes.append(f"to fit {budget} input tokens")
    return FittedPrompt(prompt, tuple(kept), count(prompt), "; ".join(notes))


def _with_text(hit: Hit, text: str) -> Hit:
    return replace(hit, passage=replace(hit.passage, text=text))


def _longest_prefix(text: str, ids: Callable[[str], list[int]], decode: Callable[[list[int]], str],
                    fits: Callable[[str], bool]) -> str | None:
    """The longest token prefix of `text` for which `fits` holds (binary search), or None."""
    tokens = ids(text)
    low, high, best = 0, len(tokens), None
    while low <= high:
        middle = (low + high) // 2
        candidate = decode(tokens[:middle]).rstrip()
        if fits(candidate):
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    return best


# ---------------------------------------------------------------- the pipeline


class Pipeline:
    """Knowledge base + optional reranker + student -> Prediction.

    The one answering path of KARD Studio: the app, `kard ask` and evaluation all use it. Without a
    knowledge base it is the reasoning-distillation setting (no passages); `answer_only` is the
    fine-tuning baseline (question -> letter); `answer_many` answers a batch (greedy: one padded
    `generate` call), and its `queries` replace the retrieval query per question (the oracle row
    searches with the teacher's rationale).
    """

    def __init__(self, knowledge: Searches | None, student: "Student", reranker: Reranks | None = None,
                 retrieval: RetrievalConfig = RetrievalConfig(), generation: GenerationConfig = GenerationConfig(),
                 *, answer_only: bool = False, recall: Recalls | None = None):
        if retrieval.top_k < 1 or retrieval.candidates < 1:
            raise ConfigError("top_k and candidates must be at least 1. Fix: pass k >= 1")
        if retrieval.query not in QUERY_MODES:
            raise ConfigError(f"unknown retrieval query mode {retrieval.query!r}. Fix: use one of {', '.join(QUERY_MODES)}")
        self.knowledge = knowledge
        self.student = student
        self.reranker = _check_reranker(reranker)
        self.retrieval = retrieval
        self.generation = replace(generation, max_new_tokens=ANSWER_ONLY_NEW_TOKENS) if answer_only else generation
        self.answer_only = answer_only
        self.recall = recall

    @classmethod
    def load(cls, student: str = DEFAULT_STUDENT, knowledge: Any = None, reranker: Any = None, dtype: str = "float32",
             retrieval: RetrievalConfig = RetrievalConfig(), generation: GenerationConfig = GenerationConfig(),
             engine: str = "auto") -> "Pipeline":
        """A Pipeline from names and paths: `knowledge` (None: the default knowledge base; or a saved index
        folder / passages file, or a loaded one), `student` (default: the shipped student, decoded by the
        fastest engine that loads: `engine`, see kard.engine) and `reranker`.

        `reranker=None` (the default) or "none" is BM25 only: the paper's KARD-BM25 row, and what the speed
        benchmarks measure. The app and `kard ask` rerank with the shipped reranker: pass
        `reranker=kard.config.DEFAULT_RERANKER` (demo/reranker) for their set-up. A str or Path is loaded
        with kard.reranker.encoder.load_reranker before the student, so a wrong path fails before the slow load;
        anything else must be a loaded reranker (`.rerank` and `.name`)."""
        from kard.knowledge import KnowledgeBase
        from kard.student import Student

        if knowledge is None or isinstance(knowledge, (str, Path)):
            knowledge = KnowledgeBase.open(*([knowledge] if knowledge is not None else []), config=retrieval)
        reranker = _load_reranker(reranker)  # a wrong reranker path fails before the slower student loads
        return cls(knowledge, Student.load(student, dtype=dtype, engine=engine), reranker, retrieval, generation)

    @property
    def reranker_name(self) -> str | None:
        return None if self.reranker is None else str(getattr(self.reranker, "name", type(self.reranker).__name__))

    def retrieve(self, question: Question, query: str | None = None) -> tuple[tuple[Hit, ...], tuple[Hit, ...], Timings]:
        """(all candidates in BM25 order, with rerank scores when reranked; top-k passages; timings).

        `query` replaces the question-based BM25 query (the oracle setting); it is never reranked.
        """
        check_question(question)
        if self.knowledge is None or self.answer_only:
            return (), (), Timings()
        started = time.perf_counter()
        text = query if query is not None else retrieval_query(question, self.retrieval.query)
        candidates = list(self.knowledge.search(text, self.retrieval.candidates))
        retrieval_s = time.perf_counter() - started
        if self.reranker is None or query is not None:
            return self._with_recalled(question, candidates, candidates, Timings(retrieval_s=retrieval_s))
        started = time.perf_counter()
        reranked = list(self.reranker.rerank(question, candidates, k=None))
        rerank_s = time.perf_counter() - started
        by_id = {hit.passage.id: hit for hit in reranked}
        candidates = [by_id.get(hit.passage.id, hit) for hit in candidates]
        return self._with_recalled(question, candidates, reranked, Timings(retrieval_s=retrieval_s, rerank_s=rerank_s))

    def _with_recalled(self, question: Question, candidates: Sequence[Hit], ranked: Sequence[Hit],
                       timings: Timings) -> tuple[tuple[Hit, ...], tuple[Hit, ...], Timings]:
        """(candidates, top-k, timings); when recall has a saved correction for the question, it is the first
        candidate and the only passage the student reads: it is the curator's whole reasoning for the question,
        and with BM25's passages after it the student went on copying those and concluding again
        (docs/closing_the_loop.md, 5l)."""
        recalled = self.recall.find(question) if self.recall is not None else None
        if recalled is None:
            return tuple(candidates), tuple(ranked[: self.retrieval.top_k]), timings
        log.info("question %s: recalled %s", question.id, recalled.passage.id)
        return (recalled, *candidates), (recalled,), timings

    def _fit(self, question: Question, passages: Sequence[Hit]) -> FittedPrompt:
        student = self.student
        if self.answer_only or self.knowledge is None:
            prompt = answer_only_input(question) if self.answer_only else student_input(question, with_knowledge=False)
            return FittedPrompt(prompt, (), student.count_tokens(prompt), None)
        return fit_prompt(question, passages, student.count_tokens, student.text_ids, student.decode,
                          input_budget(student, self.generation))

    def answer(self, question: Question, query: str | None = None) -> Prediction:
        """One question's Prediction; `query` replaces the BM25 query (see `retrieve`)."""
        started = time.perf_counter()
        candidates, passages, timings = self.retrieve(question, query)
        fitted = self._fit(question, passages)
        generation_started = time.perf_counter()
        first: list[float] = []
        samples = self.student.generate(
            fitted.prompt, self.generation, letters=question.letters,
            on_first_token=lambda: first.append(time.perf_counter() - generation_started),
        )
        generation_s = time.perf_counter() - generation_started
        timings = replace(timings, first_token_s=first[0] if first else None, generation_s=generation_s,
                          total_s=time.perf_counter() - started)
        return self._prediction(question, candidates, fitted, samples, timings)

    def answer_many(self, questions: Sequence[Question], queries: Mapping[str, str] | None = None,
                    batch_size: int = 16) -> list[Prediction]:
        """Predictions for many questions: greedy in left-padded batches, sampling one question at a time.

        Timings of a batched answer are its share of the batch (retrieval per question, generation
        divided evenly); first-token time is not measured in a batch.
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        queries = queries or {}
        if self.generation.samples > 1:
            return [self.answer(q, queries.get(q.id)) for q in questions]
        predictions: list[Prediction] = []
        for start in range(0, len(questions), batch_size):
            predictions += self._answer_batch(questions[start : start + batch_size], queries)
        return predictions

    def _answer_batch(self, questions: Sequence[Question], queries: Mapping[str, str]) -> list[Prediction]:
        retrieved = [self.retrieve(q, queries.get(q.id)) for q in questions]
        fitted = [self._fit(q, passages) for q, (_, passages, _) in zip(questions, retrieved)]
        started = time.perf_counter()
        samples = self.student.generate_batch([f.prompt for f in fitted], self.generation,
                                              letters=[q.letters for q in questions])
        share = (time.perf_counter() - started) / len(questions)
        return [
            self._prediction(q, candidates, fit, [sample], replace(timings, generation_s=share,
                                                                      total_s=timings.retrieval_s + (timings.rerank_s or 0) + share))
            for q, (candidates, _, timings), fit, sample in zip(questions, retrieved, fitted, samples)
        ]

    def stream(self, question: Question) -> Iterator[str | Prediction]:
        """Text chunks of the (first) sample as decoded, then the final Prediction.

        With self-consistency, the first sample is streamed and the other n-1 are sampled after it
        (seed + 1), so the samples differ from `answer`'s; greedy output is identical.
        """
        started = time.perf_counter()
        candidates, passages, timings = self.retrieve(question)
        fitted = self._fit(question, passages)
        generation_started = time.perf_counter()
        text = self.student.start_stream(fitted.prompt, self.generation, letters=question.letters)
        yield from text
        samples = [self.student.with_answer(fitted.prompt, text.sample, question.letters)]  # open: no letters
        if self.generation.samples > 1:
            more = replace(self.generation, seed=self.generation.seed + 1)
            samples += self.student.generate(fitted.prompt, more, letters=question.letters, n=self.generation.samples - 1)
        generation_s = time.perf_counter() - generation_started
        timings = replace(timings, first_token_s=text.first_token_s, generation_s=generation_s,
                          total_s=time.perf_counter() - started)
        yield self._prediction(question, candidates, fitted, samples, timings)

    def _prediction(self, question: Question, candidates: tuple[Hit, ...], fitted: FittedPrompt,
                    samples: Sequence[Sample], timings: Timings) -> Prediction:
        samples = read_answers(question, samples)
        keys = [vote_key(question, s.answer) for s in samples]
        winner, votes = majority_vote(keys)
        chosen = next((s for s, key in zip(samples, keys) if key == winner), samples[0])
        answer = None if winner is None else chosen.answer
        decoding = {**self.student.decoding_settings(self.generation), "prompt_version": PROMPT_VERSION,
                    "top_k_passages": self.retrieval.top_k, "candidates": self.retrieval.candidates,
                    "candidates_found": len(candidates),
                    "query": self.retrieval.query}
        recalled = [hit.passage.id for hit in candidates if is_recalled(hit.passage.id)]
        if recalled:  # the saved correction handed back first (kard.recall); BM25 found the others
            decoding["recalled"] = recalled[0]
            decoding["candidates_found"] = len(candidates) - len(recalled)
        if fitted.truncation:
            log.info("question %s: %s", question.id, fitted.truncation)
        return Prediction(
            question=question, candidates=candidates, passages=fitted.passages, prompt=fitted.prompt,
            raw_output=chosen.raw_output, rationale=chosen.rationale, answer=answer, samples=tuple(samples),
            votes=votes, timings=timings, tokens_in=fitted.tokens, tokens_out=sum(s.tokens_out for s in samples),
            truncation=fitted.truncation, student_name=self.student.name, reranker_name=self.reranker_name,
            decoding=decoding,
        )


def read_answers(question: Question, samples: Sequence[Sample]) -> list[Sample]:
    """Samples with answers read for the question's kind: an open question's free text, never a letter.

    The student parses letters (and may fall back on letter probabilities); when the rationale itself
    concludes with one option's text ("So the answer is <text>."), that option is the answer
    (answer_source "stated" where it differs from the letter written). For an open question the answer
    is read again from the raw output with `parse_free_answer`.
    """
    if question.kind == OPEN:
        return [_free_answer(sample) for sample in samples]
    return [_stated_answer(sample, question.options) for sample in samples]


def _stated_answer(sample: Sample, options: Mapping[str, str]) -> Sample:
    letter = stated_option(sample.rationale, options)
    if letter is None or letter == sample.answer:
        return sample
    return replace(sample, answer=letter, answer_source="stated")


def _free_answer(sample: Sample) -> Sample:
    rationale, answer = parse_free_answer(sample.raw_output)
    return replace(sample, rationale=rationale, answer=answer, answer_source="parsed" if answer else "none")


def vote_key(question: Question, answer: str | None) -> str | None:
    """What self-consistency counts: the letter, or an open answer up to case, punctuation and article."""
    if answer is None or question.kind != OPEN:
        return answer
    return normalise_free_answer(answer) or None


def _load_reranker(reranker: Any) -> Any:
    """A reranker given as a folder (str or Path) loaded; None and loaded rerankers as they are."""
    if not isinstance(reranker, (str, Path)):
        return _check_reranker(reranker)
    from kard.reranker.encoder import load_reranker

    return load_reranker(reranker)


def _check_reranker(reranker: Any) -> Any:
    """`reranker` if it is None or has `.rerank`; else a ConfigError naming what was passed."""
    if reranker is not None and not callable(getattr(reranker, "rerank", None)):
        raise ConfigError(f"the reranker {reranker!r} ({type(reranker).__name__}) has no rerank method. Fix: pass "
                          "a loaded reranker (kard.reranker.encoder.load_reranker(folder)), or a folder to "
                          "Pipeline.load(reranker=folder)")
    return reranker

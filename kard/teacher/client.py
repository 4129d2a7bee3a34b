"""The teacher: rationales from any OpenAI-compatible chat server, cached, gold-filtered and resumable.

`Teacher(config)` talks to OpenAI or any compatible server (vLLM, llama.cpp, Ollama, ...) through the
`openai` client only; its own `max_retries` (exponential backoff on 429 and 5xx, honouring Retry-After)
and `timeout` do the retrying. Failures become `TeacherError`s whose messages say what to fix.

Several samples per question: one request with `n=k` for the k samples a question still misses. A
server that ignores `n` (llama.cpp, Ollama return one choice) or refuses it (HTTP 400) is noticed on
the first such request; the missing samples are then asked one request each, and later questions skip
`n` altogether. With `n`, the prompt is paid once per question instead of once per sample, which is
most of the cost with a few-shot prompt.

The API key goes to the client and nowhere else: not to logs, messages, the cache or outputs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Self, Sequence

from kard.config import TeacherConfig, cache_dir, teacher_api_key
from kard.errors import ConfigError, DataError
from kard.prompts import parse_question_answer, same_answer
from kard.records import Question, Rationale
from kard.teacher.cache import CachedReply, CachedSample, CacheKey, TeacherCache
from kard.teacher.gate import AdaptiveGate
from kard.teacher.workers import DaemonWorkers
from kard.teacher.errors import (  # noqa: F401 - re-exported: callers catch them from kard.teacher.client
    FATAL_ERRORS,
    TeacherAuthError,
    TeacherCacheError,
    TeacherError,
    TeacherIncompleteError,
    TeacherRateLimitError,
    TeacherReplyError,
    TeacherRequestError,
    TeacherServerError,
    TeacherTimeoutError,
    TeacherUnreachableError,
    cut_off_notice,
    empty_reply,
    filtered_notice,
    fixes_for,
    incomplete_reply,
    mask_url,
    no_reply_notice,
    not_a_completion,
    redact,
    server_error_reply,
    translate_error,
    url_credentials,
)
from kard.teacher.prompts import Mode, build_messages, prompt_fingerprint, prompt_version

log = logging.getLogger(__name__)

DEFAULT_CACHE = object()
"""Sentinel: the cache file under `kard.config.cache_dir()`."""

NO_KEY_PLACEHOLDER = "no-key"
"""Sent to a custom base URL when OPENAI_API_KEY is unset: local servers usually ignore the key."""

WRONG_ANSWER, NO_ANSWER, CUT_OFF, FILTERED, ERROR = "wrong answer", "no answer", "cut off", "filtered", "error"

LENGTH = "length"
"""The finish_reason of a reply cut off at max_tokens: never cached, never kept (its answer may be missing or wrong)."""
CONTENT_FILTER = "content_filter"
"""The finish_reason of a reply the provider's content filter stopped: never cached, never kept, like a cut off one;
asking again gets the same."""

ERROR_REPLY_RETRY_S = 0.5
"""The first wait before asking again after a 200 reply that holds an error (doubled on each retry, as the `openai`
client does for a 5xx)."""

INTERRUPT_WAIT_S = 1.0
"""How long Ctrl+C on a teach job waits for the requests in flight (a reply about to arrive is still cached)."""


def default_cache_path() -> Path:
    return cache_dir() / "teacher_cache.sqlite"


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Usage:
    """Requests made and tokens paid (cache hits cost nothing and are not counted)."""

    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            self.requests + other.requests,
            self.tokens_in + other.tokens_in,
            self.tokens_out + other.tokens_out,
        )

    def __sub__(self, other: "Usage") -> "Usage":
        return Usage(
            self.requests - other.requests,
            self.tokens_in - other.tokens_in,
            self.tokens_out - other.tokens_out,
        )


def cost_usd(usage: Usage, config: TeacherConfig) -> float | None:
    """What `usage` cost at the configured prices, or None when no price is configured."""
    if config.price_in_per_mtok is None and config.price_out_per_mtok is None:
        return None
    return (
        usage.tokens_in * (config.price_in_per_mtok or 0.0)
        + usage.tokens_out * (config.price_out_per_mtok or 0.0)
    ) / 1e6


@dataclass(frozen=True)
class QuestionOutcome:
    """The samples of one question, how many came from the cache, and what fetching the rest cost."""

    question_id: str
    rationales: tuple[Rationale, ...]
    cached: int
    usage: Usage = Usage()
    cut_off: tuple[int, ...] = ()  # sample indexes cut off at max_tokens (their answer is None; not cached)
    filtered: tuple[int, ...] = ()  # sample indexes stopped by the provider's content filter (the same)


@dataclass(frozen=True)
class TeachReport:
    """What a `teach` job got: kept rationales, dropped ones with reasons, errors, tokens and cost."""

    questions: int
    samples_per_question: int
    kept: tuple[Rationale, ...]
    rejected: tuple[Rationale, ...]  # parsed but dropped by the gold filter (wrong or no answer)
    dropped: Mapping[str, int]  # reason -> samples: "wrong answer", "no answer", "cut off" (at max_tokens),
    # "filtered" (by the provider's content filter), "error"
    errors: tuple[tuple[str, str], ...]  # (question id, message) for questions given up on
    cached: int  # samples served from the cache
    usage: Usage  # requests and tokens paid by this run
    cost_usd: float | None
    stopped: str | None = None  # set when a fatal error (bad key, no server) ended the job early
    max_tokens: int = 0  # the job's token limit per reply, named where replies were cut off at it

    @property
    def samples(self) -> int:
        return self.questions * self.samples_per_question

    def reason_label(self, reason: str) -> str:
        """How `summary` names a drop reason: a cut off reply names the limit and the fix."""
        if reason == CUT_OFF:
            return f"cut off at --max-tokens {self.max_tokens} (Fix: raise --max-tokens)"
        if reason == FILTERED:
            return "filtered (the provider's content filter stopped the reply; asking again will not help)"
        return reason

    def summary(self) -> str:
        dropped = ", ".join(f"{count} {self.reason_label(reason)}"
                            for reason, count in self.dropped.items() if count) or "none"
        cost = "" if self.cost_usd is None else f", cost ${self.cost_usd:.4f}"
        return (
            f"{self.questions} questions x {self.samples_per_question} samples: kept {len(self.kept)}, "
            f"dropped {dropped}; {self.cached} from cache, {self.usage.requests} requests, "
            f"{self.usage.tokens_in} tokens in / {self.usage.tokens_out} out{cost}"
        )


def drop_reason(rationale: Rationale, question: Question) -> str | None:
    """Why the gold filter drops a rationale ("no answer", "wrong answer"), or None to keep it."""
    if rationale.answer is None:
        return NO_ANSWER
    if not same_answer(rationale.answer, question.answer, question.kind):  # open answers compare as words
        return WRONG_ANSWER
    return None


def keep_correct(rationales: Iterable[Rationale], question: Question) -> list[Rationale]:
    """The rationales whose final answer matches the question's gold answer."""
    return [r for r in rationales if drop_reason(r, question) is None]


# ----------------------------------------------------------------------------- the teacher


@dataclass
class _Request:
    """One question's prompt, as sent and as keyed in the cache."""

    question: Question
    mode: Mode
    messages: list[dict[str, str]] = field(default_factory=list)
    sha: str = ""

    def key(self, model: str, index: int) -> CacheKey:
        return CacheKey(model, prompt_version(self.mode), self.question.id, index)


@dataclass
class _StreamedReply:
    """What a streamed reply has brought so far."""

    pieces: list[str] = field(default_factory=list)
    usage: Usage = Usage(requests=1)
    finish: str | None = None
    chunks: int = 0  # chat completion chunks received
    reasoning: bool = False  # whether a reasoning model sent reasoning text (apart from the reply)

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def sample(self, sha: str, temperature: float) -> CachedSample:
        return CachedSample(self.text, sha, self.finish, self.usage.tokens_in, self.usage.tokens_out, temperature)


class CutOffReply(str):
    """`stream_answer`'s last chunk after a reply cut off at max_tokens or stopped by the provider's content filter: no
    text (the reply came in the chunks before it) and a `notice` saying what happened and the fix, to show beside the
    reply. Such a reply is not cached."""

    notice: str

    def __new__(cls, notice: str) -> Self:
        marker = super().__new__(cls, "")
        marker.notice = notice
        return marker


class Teacher:
    """An LLM teacher behind an OpenAI-compatible API, with a SQLite cache in front of it.

    `cache_path`: a file (default: under `kard.config.cache_dir()`), or None for an in-memory cache.
    `api_key`: defaults to $OPENAI_API_KEY. `client`: an `openai.OpenAI` to use instead of building one.
    """

    def __init__(
        self,
        config: TeacherConfig | None = None,
        cache_path: str | Path | None | object = DEFAULT_CACHE,
        *,
        api_key: str | None = None,
        client: object | None = None,
    ):
        self.config = config or TeacherConfig.from_env()
        _check_config(self.config)
        self._client = client or _make_client(self.config, api_key or teacher_api_key())
        self.cache = TeacherCache(default_cache_path() if cache_path is DEFAULT_CACHE else cache_path)  # type: ignore[arg-type]
        where = str(getattr(self._client, "base_url", self.config.base_url or "the default endpoint")).rstrip("/")
        self.where = mask_url(where)  # shown in messages and logs: never a password written into the URL
        self._url_secrets = url_credentials(where)
        if self.where != where:
            mask_credentials_in_logs()
        self.usage = Usage()
        self._fix = fixes_for(self.config)  # how error messages phrase the fix where they are shown
        self._n_supported: bool | None = None  # learnt on the first request that asks for n > 1
        self._lock = threading.Lock()
        self._gate = AdaptiveGate(self.config.concurrency, self.config.timeout_s)  # requests in flight at once

    @property
    def model(self) -> str:
        return self.config.model

    def source(self, mode: Mode) -> str:
        """How rationales from this teacher are labelled, e.g. 'gpt-4o-mini (teacher-v1/rationalize)'."""
        return f"{self.model} ({prompt_version(mode)})"

    def close(self) -> None:
        self.cache.close()
        close = getattr(self._client, "close", None)
        if close:
            close()

    def __enter__(self) -> "Teacher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --------------------------------------------------------------- public modes

    def rationalize(self, question: Question, n: int | None = None) -> list[Rationale]:
        """`n` (default: config.samples) explanations of the gold answer, parsed, all kept (filter with
        `keep_correct`). Cached samples are reused; only the missing ones are requested."""
        return list(self._run(question, "rationalize", self.config.samples if n is None else n).rationales)

    def answer(self, question: Question) -> Rationale:
        """The teacher's own answer, gold hidden (for comparing with the student)."""
        return self._run(question, "answer", 1).rationales[0]

    def stream_answer(self, question: Question) -> Iterator[str]:
        """The answer-mode reply as text chunks while it is generated (`stream=True`).

        A cached reply comes back as one `CachedReply` chunk (it says when it was fetched). The full reply is
        cached when the stream ends with a finish_reason and states an answer the app can read; one that states
        none is yielded but not cached, so the next ask asks again. One cut off at max_tokens (finish_reason
        "length") or stopped by the provider's content filter ("content_filter") is yielded, then a `CutOffReply`
        chunk saying so and the fix; it is not cached either. A stream cut off before it finished, an empty one (a
        reasoning model that spent max_tokens thinking, a filter or a tool call before any text: the error says
        which) or one that is no chat completion raises a TeacherError instead and is not cached either.
        """
        request = self._prepare(question, "answer")
        key = request.key(self.model, 0)
        cached = self.cache.get(key)
        if cached is not None and _reusable(cached, request.sha, finished=True) \
                and _worth_caching("answer", question, cached):
            yield CachedReply(cached.text, cached.created_at)
            return
        reply = _StreamedReply()
        stream = None
        try:
            stream = self._client.chat.completions.create(  # type: ignore[attr-defined]
                model=self.model,
                messages=request.messages,
                temperature=self.config.answer_temperature,
                max_tokens=self.config.max_tokens,
                stream=True,
            )
            for chunk in stream:
                yield from self._stream_chunk(reply, chunk)
        except Exception as error:  # noqa: BLE001 - every client failure becomes a TeacherError
            self._add_usage(Usage(requests=_requests_sent(error)))
            raise self._translate(error, retried=stream is None) from None  # a begun stream is not retried
        self._add_usage(reply.usage)
        self._check_streamed(reply, stream)
        sample = reply.sample(request.sha, self.config.answer_temperature)
        self._cache_reply(question, "answer", key, sample)
        if _incomplete(sample):
            yield CutOffReply(self._incomplete_notice(sample))

    def _stream_chunk(self, reply: "_StreamedReply", chunk: object) -> Iterator[str]:
        """The text of one streamed chunk (recorded in `reply`); a TeacherReplyError when it is no chunk."""
        problem = _not_a_chunk(chunk)
        if problem:
            raise not_a_completion(problem, where=self.where, secret=self._secret(), fix=self._fix)
        reply.chunks += 1
        if getattr(chunk, "usage", None):
            reply.usage = Usage(1, _count(chunk.usage, "prompt_tokens"), _count(chunk.usage, "completion_tokens"))
        for choice in chunk.choices:  # type: ignore[attr-defined]
            reply.finish = choice.finish_reason or reply.finish
            reply.reasoning = reply.reasoning or bool(_reasoning_of(choice.delta))
            text = choice.delta.content if choice.delta else None
            if text:
                reply.pieces.append(text)
                yield text

    def _check_streamed(self, reply: "_StreamedReply", stream: object) -> None:
        """Raise when the stream held no chunk, stopped before a finish_reason, or held no text."""
        if not reply.chunks:
            headers = getattr(getattr(stream, "response", None), "headers", None) or {}
            body = headers.get("content-type", "an unlabelled").split(";")[0]
            raise not_a_completion(f"no chat completion chunks in a {body} body", where=self.where,
                                   secret=self._secret(), fix=self._fix)
        if reply.finish is None:
            raise incomplete_reply(
                f"stopped sending after {len(reply.text)} characters, before the reply finished "
                "(the stream ended without a finish_reason)", where=self.where, fix=self._fix)
        if not reply.text.strip():
            raise self._empty_reply(reply.finish, reply.reasoning)

    def teach(
        self,
        questions: Sequence[Question],
        n: int | None = None,
        *,
        progress: Callable[[QuestionOutcome | None], None] | None = None,
    ) -> TeachReport:
        """Rationalize every question with `n` samples, `config.concurrency` questions at a time.

        Keeps the samples whose answer matches the gold one. A question that still fails after the
        retries (429, 5xx, timeout) is given up and reported; the job goes on. A bad key, an unreachable
        server or a refused request stops the job (every question would fail alike); what finished is
        in the cache and in the report. `progress` is called once per finished question (None on error).
        """
        n = self.config.samples if n is None else n
        if n < 1:
            raise ConfigError(f"the number of samples must be at least 1, got {n}. Fix: pass --n 1 or more")
        _check_questions(questions)
        outcomes: dict[str, QuestionOutcome] = {}
        errors: list[tuple[str, str]] = []
        stopped: str | None = None
        by_id = {q.id: q for q in questions}
        usage_before = self.usage
        workers = DaemonWorkers(self.config.concurrency, "kard-teacher")
        stop = threading.Event()  # set by the worker that meets a fatal error: queued questions are not paid for
        try:
            futures = {workers.submit(self._run_unless_stopped, stop, q, n): q.id for q in questions}
            pending = set(futures)
            while pending and stopped is None:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    qid = futures[future]
                    try:
                        outcome = future.result()
                        if outcome is not None:
                            outcomes[qid] = outcome
                    except FATAL_ERRORS as error:
                        stopped = str(error)
                        errors.append((qid, str(error)))
                    except TeacherError as error:
                        log.warning("gave up on question %s: %s", qid, error)
                        errors.append((qid, str(error)))
                    if progress:
                        progress(outcomes.get(qid))
        except BaseException:  # Ctrl+C: requests in flight are not waited for (their retries could take minutes)
            stop.set()
            workers.abandon(wait_s=INTERRUPT_WAIT_S)
            raise
        workers.shutdown()
        if stopped:
            log.error("teach job stopped: %s", stopped)
        return self._report(questions, by_id, n, outcomes, errors, stopped, self.usage - usage_before)

    # --------------------------------------------------------------- internals
    def _run_unless_stopped(self, stop: threading.Event, question: Question, n: int) -> QuestionOutcome | None:
        """`_run` for a teach job's worker: None once the job is stopping; a fatal error stops the job at once,
        before the main thread sees it, so the workers do not start (and pay for) the questions queued behind."""
        if stop.is_set():
            return None
        try:
            return self._run(question, "rationalize", n)
        except FATAL_ERRORS:
            stop.set()
            raise


    def _report(self, questions, by_id, n, outcomes, errors, stopped, usage: Usage) -> TeachReport:
        """Tally the outcomes; `usage` is what this job paid, failed questions' partial replies included."""
        kept: list[Rationale] = []
        rejected: list[Rationale] = []
        dropped = {WRONG_ANSWER: 0, NO_ANSWER: 0, CUT_OFF: 0, FILTERED: 0, ERROR: 0}
        cached = 0
        for question in questions:
            outcome = outcomes.get(question.id)
            if outcome is None:
                dropped[ERROR] += n
                continue
            cached += outcome.cached
            for rationale in outcome.rationales:
                cut = rationale.sample_index in outcome.cut_off
                filtered = rationale.sample_index in outcome.filtered
                reason = CUT_OFF if cut else FILTERED if filtered else drop_reason(rationale, by_id[question.id])
                if reason is None:
                    kept.append(rationale)
                else:
                    dropped[reason] += 1
                    if not (cut or filtered):  # a cut off or filtered reply is never written, not even by --all-samples
                        rejected.append(rationale)
        return TeachReport(
            questions=len(questions),
            samples_per_question=n,
            kept=tuple(kept),
            rejected=tuple(rejected),
            dropped=dropped,
            errors=tuple(errors),
            cached=cached,
            usage=usage,
            cost_usd=cost_usd(usage, self.config),
            stopped=stopped,
            max_tokens=self.config.max_tokens,
        )

    def _prepare(self, question: Question, mode: Mode) -> _Request:
        messages = build_messages(question, mode)
        return _Request(question, mode, messages, prompt_fingerprint(messages))

    def _run(self, question: Question, mode: Mode, n: int) -> QuestionOutcome:
        """Samples 0..n-1 of one question: cached ones reused, missing ones requested and cached as
        each reply arrives (a question that fails half-way keeps what it got)."""
        if n < 1:
            raise ConfigError(f"the number of samples must be at least 1, got {n}. Fix: pass --n 1 or more")
        request = self._prepare(question, mode)
        found = self.cache.get_many(self.model, prompt_version(mode), question.id, range(n))
        samples = {i: s for i, s in found.items()
                   if _reusable(s, request.sha) and _worth_caching(mode, question, s)}
        missing = [i for i in range(n) if i not in samples]
        usage = Usage()
        temperature = self.config.temperature if mode == "rationalize" else self.config.answer_temperature
        slots = iter(missing)
        for batch, spent in self._complete(request, len(missing), temperature):
            usage = usage + spent
            self._add_usage(spent)
            for sample, index in zip(batch, slots):  # batch first: zip must not consume a slot it cannot fill
                self._cache_reply(question, mode, request.key(self.model, index), sample)
                samples[index] = sample
        rationales = tuple(self._parse(question, mode, i, samples[i]) for i in range(n))
        cut_off = tuple(i for i in range(n) if _cut_off(samples[i]))
        filtered = tuple(i for i in range(n) if _filtered(samples[i]))
        return QuestionOutcome(question.id, rationales, cached=n - len(missing), usage=usage, cut_off=cut_off,
                               filtered=filtered)

    def _cache_reply(self, question: Question, mode: Mode, key: CacheKey, sample: CachedSample) -> None:
        """Cache a reply, unless `_worth_caching` says asking again is better (cut off, filtered, or an answer that
        states none)."""
        if _worth_caching(mode, question, sample):
            self.cache.put(key, sample)
        elif _incomplete(sample):
            log.warning("question %s: %s", question.id, self._incomplete_notice(sample))
        else:
            log.info("the teacher's reply to question %s states no answer the app can read; not cached, so the "
                     "next ask asks again", question.id)

    def _incomplete_notice(self, sample: CachedSample) -> str:
        """What a cut off or filtered reply means, and the fix."""
        if _filtered(sample):
            return filtered_notice(self._fix)
        if not sample.text.strip():
            return no_reply_notice(self.config.max_tokens, self._fix)
        return cut_off_notice(self.config.max_tokens, self._fix)

    def _empty_reply(self, finish: str | None, reasoning: bool) -> TeacherError:
        return empty_reply(finish, reasoning=reasoning, max_tokens=self.config.max_tokens, where=self.where,
                           fix=self._fix)

    def _parse(self, question: Question, mode: Mode, index: int, sample: CachedSample) -> Rationale:
        """The sample's rationale and answer (a letter, or an open question's text); none for a cut off or filtered
        reply."""
        text, answer = parse_question_answer(sample.text, question)
        return Rationale(question.id, text, None if _incomplete(sample) else answer, self.source(mode), index)

    def _complete(
        self, request: _Request, k: int, temperature: float
    ) -> Iterator[tuple[list[CachedSample], Usage]]:
        """k fresh samples, a batch per request: one request with n=k where the server honours n,
        else (or for what a short reply left missing) one request per sample."""
        got = 0
        if k > 1 and self._n_supported is not False:
            try:
                batch, spent, choices = self._call(request, k, temperature)
            except TeacherRequestError:
                if self._n_supported:
                    raise
                self._learn_n_support(False)
            else:
                self._learn_n_support(choices >= k)
                got += len(batch)
                yield batch, spent
        while got < k:
            batch, spent, _ = self._call(request, 1, temperature)
            got += len(batch[:1])
            yield batch[:1], spent

    def _learn_n_support(self, honoured: bool) -> None:
        with self._lock:
            if self._n_supported is None and not honoured:
                log.info(
                    "the server at %s does not return n choices per request; asking one sample per request",
                    self.where,
                )
            self._n_supported = honoured if self._n_supported is None else self._n_supported and honoured

    def _call(self, request: _Request, n: int, temperature: float) -> tuple[list[CachedSample], Usage, int]:
        """The non-empty samples of one request, what it cost, and how many choices came (empty ones
        included: they say whether the server honours n). An empty one cut off at max_tokens (a reasoning model
        that spent them all thinking) or stopped by a content filter counts, as such. All empty raises a
        TeacherIncompleteError saying why where the finish_reason tells."""
        options: dict[str, object] = {"n": n} if n > 1 else {}
        for attempt in range(self.config.max_retries + 1):
            raw, response = self._send(request, temperature, options)
            sent = Usage(requests=1 + _count(raw, "retries_taken"))
            problem = _error_reply(response)
            if problem is None:
                break
            self._add_usage(sent)  # the server answered, though with an error
            if attempt < self.config.max_retries:
                log.info("the teacher server at %s answered with an error (%s); retrying", self.where,
                         redact(problem, self._secret()))
                time.sleep(min(ERROR_REPLY_RETRY_S * 2 ** attempt, 8.0))
        else:
            raise server_error_reply(redact(problem, self._secret()), where=self.where, config=self.config)
        try:
            choices = sorted(self._chat_choices(response), key=lambda c: _count(c, "index"))[:n]
        except TeacherError:
            self._add_usage(sent)  # the request reached the server and was answered, though not with a completion
            raise
        tokens_in = _count(getattr(response, "usage", None), "prompt_tokens")
        tokens_out = _count(getattr(response, "usage", None), "completion_tokens")
        shares = _split(tokens_out, len(choices))
        samples = [
            CachedSample(
                text=(choice.message.content if choice.message else None) or "",
                prompt_sha=request.sha,
                finish_reason=choice.finish_reason,
                tokens_in=tokens_in if i == 0 else 0,
                tokens_out=shares[i],
                temperature=temperature,
            )
            for i, choice in enumerate(choices)
        ]
        if not samples:
            self._add_usage(sent)
            raise TeacherServerError(
                f"the teacher server at {self.where} returned no choices. Fix: check the server and the model name"
            )
        spent = Usage(1 + _count(raw, "retries_taken"), tokens_in, tokens_out)
        kept = [sample for sample in samples if sample.text.strip() or _incomplete(sample)]
        if not kept:
            self._add_usage(spent)  # paid, though nothing is kept
            raise self._empty_reply(samples[0].finish_reason, bool(_reasoning_of(choices[0].message)))
        return kept, spent, len(samples)

    def _send(self, request: _Request, temperature: float, options: Mapping[str, object]) -> tuple[object, object]:
        """One chat completion request, as the `openai` client sends and retries it: (raw response, parsed body)."""
        try:
            with self._gate.slot():  # as many in flight as the server answers in time (kard.teacher.gate)
                raw = self._client.chat.completions.with_raw_response.create(  # type: ignore[attr-defined]
                    model=self.model,
                    messages=request.messages,
                    temperature=temperature,
                    max_tokens=self.config.max_tokens,
                    **options,
                )
                return raw, raw.parse()
        except Exception as error:  # noqa: BLE001 - every client failure becomes a TeacherError
            self._add_usage(Usage(requests=_requests_sent(error)))  # failed tries reached the server too
            translated = self._translate(error)
            if isinstance(translated, TeacherTimeoutError):
                self._gate.timed_out()
            raise translated from None

    def _chat_choices(self, response: object) -> list:
        """The reply's choices, or a TeacherReplyError when the reply is no chat completion."""
        choices = getattr(response, "choices", None)
        problem = _not_a_completion(response, choices)
        if problem:
            raise not_a_completion(problem, where=self.where, secret=self._secret(), fix=self._fix)
        return choices  # type: ignore[return-value]

    def _translate(self, error: Exception, retried: bool = True) -> TeacherError:
        if isinstance(error, TeacherError):
            return error
        if isinstance(error, json.JSONDecodeError):  # a 200 reply labelled JSON that is not
            return not_a_completion(f"a body that is not JSON: {error.msg}", where=self.where, secret=self._secret(),
                                    fix=self._fix)
        return translate_error(
            error, where=self.where, model=self.model, config=self.config, secret=self._secret(), retried=retried
        )

    def _secret(self) -> tuple[str, ...]:
        """What messages mask: the API key and the credentials written into the base URL."""
        key = getattr(self._client, "api_key", None)
        return ((key,) if isinstance(key, str) else ()) + self._url_secrets

    def _add_usage(self, usage: Usage) -> None:
        with self._lock:
            self.usage = self.usage + usage


def _error_reply(response: object) -> str | None:
    """The server's message when a 200 reply holds an error instead of a completion (OpenRouter and other proxies
    answer `{"error": {"message": ...}}` when the provider behind them fails), else None."""
    if getattr(response, "choices", None):
        return None
    error = getattr(response, "error", None)
    if isinstance(error, dict):
        message = error.get("message") or error.get("code") or "no message"
        return str(message)[:300]
    if isinstance(error, str) and error.strip():
        return error.strip()[:300]
    return None


def _not_a_completion(response: object, choices: object) -> str | None:
    """What a reply holds instead of a chat completion (for the error message), or None when it is one."""
    if isinstance(response, str):
        return f"text {response.strip()[:60]!r}"
    if not isinstance(choices, list):
        if isinstance(response, (list, int, float, bool)):
            return f"a JSON {type(response).__name__}"
        return "a JSON object without a list of choices"
    for choice in choices:
        content = getattr(getattr(choice, "message", None), "content", None)
        if not hasattr(choice, "message") or not isinstance(content, (str, type(None))):
            what = type(content).__name__ if hasattr(choice, "message") else type(choice).__name__
            return f"a choice whose message is a {what}, not text"
    return None


def _not_a_chunk(chunk: object) -> str | None:
    """What a streamed event holds instead of a chat completion chunk, or None when it is one."""
    choices = getattr(chunk, "choices", None)
    if not isinstance(choices, list):
        return "a stream event without a list of choices"
    for choice in choices:
        delta = getattr(choice, "delta", None)
        if delta is not None and not isinstance(getattr(delta, "content", None), (str, type(None))):
            return f"a stream event whose text is a {type(delta.content).__name__}, not text"
    return None


def _reusable(sample: CachedSample, sha: str, *, finished: bool = False) -> bool:
    """A cached sample is served again when it was asked with this prompt and holds text (and, with
    `finished`, the stream that brought it ended with a finish_reason: caches written before these checks
    may hold cut or empty replies)."""
    return sample.prompt_sha == sha and bool(sample.text.strip()) and (not finished or bool(sample.finish_reason))


def _worth_caching(mode: Mode, question: Question, sample: CachedSample) -> bool:
    """Whether a reply is cached, and a cached one served again: never one cut off at max_tokens or stopped by a
    content filter (caches written before this check may hold some; they are asked again); every other rationalize
    sample (a teach job pays once for each; its gold filter drops those without the gold answer, see
    `drop_reason`), but an answer-mode reply only when it states an answer the app can read: one that does not is
    shown once, and the next ask asks again."""
    if _incomplete(sample):
        return False
    return mode == "rationalize" or parse_question_answer(sample.text, question)[1] is not None


def _cut_off(sample: CachedSample) -> bool:
    """Whether the server stopped the reply at max_tokens (finish_reason "length")."""
    return sample.finish_reason == LENGTH


def _filtered(sample: CachedSample) -> bool:
    """Whether the provider's content filter stopped the reply (finish_reason "content_filter")."""
    return sample.finish_reason == CONTENT_FILTER


def _incomplete(sample: CachedSample) -> bool:
    """A reply that did not finish on its own: cut off at max_tokens or stopped by a content filter."""
    return _cut_off(sample) or _filtered(sample)


def _reasoning_of(message: object) -> str:
    """The reasoning text a reasoning model's message or stream delta carries beside its reply ("reasoning_content":
    vLLM, DeepSeek; "reasoning": OpenRouter, Ollama), else ""."""
    for name in ("reasoning_content", "reasoning"):
        value = getattr(message, name, None)
        if isinstance(value, str) and value.strip():
            return value
    return ""


def _requests_sent(error: Exception) -> int:
    """How many tries reached the server before the client gave up with `error`: the first and the
    `openai` client's retries (it numbers them in a request header); none when no connection was made."""
    import openai

    if isinstance(error, openai.APIConnectionError) and not isinstance(error, openai.APITimeoutError):
        return 0
    headers = getattr(getattr(error, "request", None), "headers", None) or {}
    retries = str(headers.get("x-stainless-retry-count", "0"))
    return 1 + int(retries) if retries.isdigit() else 1


def _count(record: object, name: str) -> int:
    """A whole-number field of a reply part (token counts, choice index); 0 when absent or not a number."""
    value = getattr(record, name, None)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _split(total: int, parts: int) -> list[int]:
    """`total` tokens shared out over `parts` samples, the remainder on the first."""
    if parts <= 0:
        return []
    share = [total // parts] * parts
    share[0] += total - sum(share)
    return share


class _MaskCredentials(logging.Filter):
    """Masks the credentials of the URLs in a log record (the HTTP clients log each request's URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_url(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


CLIENT_LOGGERS = ("httpx2", "httpx", "openai", "openai._base_client")
"""The loggers that write request URLs: `openai`'s HTTP client logs "HTTP Request: POST <url>" at INFO."""
_MASK = _MaskCredentials()


def mask_credentials_in_logs() -> None:
    """Mask URL credentials in what the HTTP client loggers write (once; for a base URL that holds some)."""
    for name in CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        if _MASK not in logger.filters:
            logger.addFilter(_MASK)


def _make_client(config: TeacherConfig, api_key: str | None) -> object:
    import openai

    from kard.teacher.deadline import KeepAliveDeadline

    if api_key is None:
        if config.base_url is None:
            raise ConfigError(
                "no API key for the teacher. Fix: set OPENAI_API_KEY, or point OPENAI_BASE_URL (--base-url) "
                "at a local OpenAI-compatible server"
            )
        api_key = NO_KEY_PLACEHOLDER
    options: dict[str, object] = {
        "api_key": api_key,
        "timeout": config.timeout_s,
        "max_retries": config.max_retries,
        # keep-alive bytes do not hold a request past the timeout (kard.teacher.deadline)
        "http_client": openai.DefaultHttpxClient(event_hooks=KeepAliveDeadline(config.timeout_s).hooks()),
    }
    if config.base_url:
        options["base_url"] = config.base_url
    return openai.OpenAI(**options)


def _check_config(config: TeacherConfig) -> None:
    problems = []
    if not config.model:
        problems.append("the model name is empty (set --model or KARD_TEACHER_MODEL)")
    if config.samples < 1:
        problems.append(f"samples must be at least 1, got {config.samples}")
    if config.concurrency < 1:
        problems.append(f"concurrency must be at least 1, got {config.concurrency}")
    if config.timeout_s <= 0:
        problems.append(f"timeout_s must be positive, got {config.timeout_s}")
    if config.max_retries < 0:
        problems.append(f"max_retries must be 0 or more, got {config.max_retries}")
    if problems:
        raise ConfigError(
            "invalid teacher settings: "
            + "; ".join(problems)
            + ". Fix: correct them in TeacherConfig or the command line"
        )


def _check_questions(questions: Sequence[Question]) -> None:
    seen: set[str] = set()
    for question in questions:
        if question.id in seen:
            raise DataError(
                f"question id {question.id!r} appears twice",
                fix="give every question a unique id (the cache keys on it)",
            )
        seen.add(question.id)
        answer = question.answer
        has_gold = bool((answer or "").strip()) if question.is_open else answer in question.options
        if not has_gold:
            raise DataError(
                f"question {question.id!r} has no gold answer among its options",
                fix="the teacher's rationalize mode needs gold answers; drop such questions or use answer mode",
            )

"""Teacher errors: what an `openai` failure means for the user, and how to fix it.

Messages name the server (its base URL) and the fix; they never contain the API key, even when a
server echoes it back (it is masked as ***), nor credentials written into the base URL
(`http://user:password@host/v1` shows as `http://***@host/v1`, `mask_url`). The fix fits where the message is shown
(`TeacherConfig.shown_in`): a `teach` job names its flags and resuming, the app its environment
variables and asking again.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from kard.config import TeacherConfig
from kard.errors import KardError

Secrets = str | Sequence[str] | None
"""What a message must not show: the API key, and the credentials written into the base URL."""


class TeacherError(KardError):
    """A teacher request failed."""


class TeacherAuthError(TeacherError):
    """The server refused the key (401/403). Fatal for a job."""


class TeacherUnreachableError(TeacherError):
    """No connection to the server. Fatal for a job."""


class TeacherRequestError(TeacherError):
    """The server refused the request itself (400/404/422: model name, parameters). Fatal for a job."""


class TeacherRateLimitError(TeacherError):
    """Still rate limited (429) after the retries."""


class TeacherServerError(TeacherError):
    """Still failing (5xx) after the retries."""


class TeacherTimeoutError(TeacherError):
    """No reply within the timeout, retries included."""


class TeacherReplyError(TeacherError):
    """The server answered 200 with something that is not a chat completion (a web page, another API).
    Fatal for a job."""


class TeacherIncompleteError(TeacherError):
    """The server's reply was cut off before it finished (no finish_reason) or held no text. Not cached:
    the next ask asks again."""


class TeacherCacheError(TeacherError):
    """The teacher cache file cannot be read or written (locked, read-only). Fatal for a job."""


FATAL_ERRORS = (
    TeacherAuthError,
    TeacherUnreachableError,
    TeacherRequestError,
    TeacherReplyError,
    TeacherCacheError,
)
"""Errors that would hit every question alike: a job stops on them instead of trying each question."""


@dataclass(frozen=True)
class Fixes:
    """How a message's fix names the settings and the next try where it is shown."""

    model: str  # the model setting
    base_url: str  # the server's address setting
    restart: str  # what else a changed setting needs
    again: str  # trying again
    resume: str  # what trying again keeps
    busy: str  # easing a rate limit
    slow: str  # allowing a slow server more time
    longer: str  # what to do about a reply cut off at the token limit
    budget: str  # raising the token limit, for a reply that spent it all before writing a word
    filtered: str  # what to do about a reply the provider's content filter stopped


FIXES = {
    "cli": Fixes(
        model="--model (KARD_TEACHER_MODEL)",
        base_url="--base-url (OPENAI_BASE_URL)",
        restart="",
        again="rerun",
        resume="; finished samples are cached, so rerunning the same job resumes where it stopped",
        busy="lower --concurrency or wait",
        slow="raise the timeout (--timeout) or lower --concurrency",
        longer="raise --max-tokens",
        budget="raise --max-tokens (KARD_TEACHER_MAX_TOKENS): a reasoning model needs room to think and then answer",
        filtered="use another --model (KARD_TEACHER_MODEL) or leave the question out",
    ),
    "app": Fixes(
        model="KARD_TEACHER_MODEL",
        base_url="OPENAI_BASE_URL",
        restart=" and restart the app",
        again="ask again",
        resume="",
        busy="wait a minute",
        slow="wait and ask again; if the server is just slow, raise KARD_TEACHER_TIMEOUT (seconds) "
        "and restart the app",
        longer="correct it and choose the answer below, or raise KARD_TEACHER_MAX_TOKENS and restart the app",
        budget="raise KARD_TEACHER_MAX_TOKENS (a reasoning model needs room to think and then answer) and restart "
        "the app",
        filtered="write or correct the rationale yourself and choose the answer below, or set KARD_TEACHER_MODEL to "
        "another model and restart the app",
    ),
}
"""The fixes of a `teach` job (its flags, a rerun resumes) and of the app's live teacher (its environment)."""


def fixes_for(config: TeacherConfig) -> Fixes:
    return FIXES.get(config.shown_in, FIXES["cli"])


def translate_error(
    error: Exception, *, where: str, model: str, config: TeacherConfig, secret: Secrets, retried: bool = True
) -> TeacherError:
    """An `openai` exception as a `TeacherError` whose message names the problem and the fix. `retried`: whether the
    client's retries ran (not for a stream whose reply had begun: its reading is never retried)."""
    import httpx2
    import openai

    retries = f"{config.max_retries} retr{'y' if config.max_retries == 1 else 'ies'}"
    fix = fixes_for(config)
    detail = _redact(_server_message(error), secret)
    if isinstance(error, openai.AuthenticationError):
        return TeacherAuthError(
            f"the teacher server at {where} rejected the API key (HTTP 401). Fix: check OPENAI_API_KEY{fix.restart}"
        )
    if isinstance(error, openai.PermissionDeniedError):
        return TeacherAuthError(
            f"the API key may not use model {model!r} at {where} (HTTP 403: {detail}). "
            f"Fix: check OPENAI_API_KEY and {fix.model}{fix.restart}"
        )
    if isinstance(error, openai.RateLimitError):
        return TeacherRateLimitError(
            f"still rate limited by {where} (HTTP 429) after {retries}: {detail}. "
            f"Fix: {fix.busy} and {fix.again}{fix.resume}"
        )
    if isinstance(error, openai.InternalServerError):
        return TeacherServerError(
            f"the teacher server at {where} kept failing (HTTP {error.status_code}) after {retries}: {detail}. "
            f"Fix: check the server's logs and {fix.again} later{fix.resume}"
        )
    if isinstance(error, (openai.APITimeoutError, httpx2.TimeoutException)):  # the latter: while reading the body
        tried = retries if retried else "its reply had begun, so no retry"
        return TeacherTimeoutError(
            f"no reply from {where} within {config.timeout_s:g} s ({tried}). "
            f"Fix: {fix.slow}{fix.resume}"
        )
    if isinstance(error, openai.APIConnectionError):
        return TeacherUnreachableError(
            f"could not connect to the teacher server at {where}. Fix: is the server at {where} running? "
            f"Set {fix.base_url} to its address{fix.restart}"
        )
    if isinstance(error, openai.NotFoundError):
        return TeacherRequestError(
            f"model {model!r} or the chat endpoint was not found at {where} (HTTP 404: {detail}). "
            f"Fix: check {fix.model} and that the base URL ends in /v1{fix.restart}"
        )
    if isinstance(error, openai.APIStatusError):
        return TeacherRequestError(
            f"the teacher server at {where} refused the request (HTTP {error.status_code}: {detail}). "
            f"Fix: check {fix.model} and the sampling settings against what the server supports"
        )
    if isinstance(error, openai.APIError) and getattr(error, "body", None) is not None:  # an error event mid-stream
        return TeacherServerError(
            f"the teacher server at {where} sent an error instead of the rest of its reply: {detail}. "
            f"Fix: {fix.again} later{fix.resume}; if it keeps happening, check the provider behind it and {fix.model}"
        )
    return TeacherError(
        f"the teacher request to {where} failed: {_redact(str(error), secret)}. Fix: check the server and rerun"
    )


def server_error_reply(message: str, *, where: str, config: TeacherConfig) -> TeacherServerError:
    """The error for 200 replies that held the server's error instead of a completion (a proxy whose provider failed),
    still after the retries: retryable like a 5xx, with the server's own message."""
    retries = f"{config.max_retries} retr{'y' if config.max_retries == 1 else 'ies'}"
    fix = fixes_for(config)
    return TeacherServerError(
        f"the teacher server at {where} answered with an error instead of a reply (HTTP 200) after {retries}: "
        f"{mask_url(message)}. Fix: {fix.again} later{fix.resume}; if it keeps happening, check the provider behind "
        f"it and {fix.model}"
    )


def not_a_completion(got: str, *, where: str, secret: Secrets, fix: Fixes = FIXES["cli"]) -> TeacherReplyError:
    """The error for a 200 reply that is not a chat completion; `got` says what came instead."""
    return TeacherReplyError(
        f"the server at {where} did not answer with a chat completion (got {_redact(got, secret)}). "
        f"Fix: check {fix.base_url} points at an OpenAI-compatible /v1 endpoint"
    )


def incomplete_reply(problem: str, *, where: str, fix: Fixes = FIXES["cli"]) -> TeacherIncompleteError:
    """The error for a reply that stopped before it finished or held no text; `problem` says which."""
    return TeacherIncompleteError(
        f"the teacher server at {where} {problem}; it was not kept. Fix: {fix.again}; if it keeps happening, "
        f"check the server's logs (a crash or a proxy cutting long replies) and {fix.model}"
    )


def cut_off_notice(max_tokens: int, fix: Fixes = FIXES["cli"]) -> str:
    """What a reply cut off at the token limit (finish_reason "length") means, and the fix."""
    return (f"the teacher's reply was cut off at its limit of {max_tokens} tokens (finish_reason 'length'), so its "
            f"answer may be missing or wrong; it was not cached or kept. Fix: {fix.longer}")


def no_reply_notice(max_tokens: int, fix: Fixes = FIXES["cli"]) -> str:
    """What a reply with no text that stopped at the token limit means: a reasoning model spent it all thinking."""
    return (f"the teacher spent its whole limit of {max_tokens} tokens reasoning and wrote no reply (finish_reason "
            f"'length', no text); it was not cached or kept. Fix: {fix.budget}")


def filtered_notice(fix: Fixes = FIXES["cli"]) -> str:
    """What a reply stopped by the provider's content filter (finish_reason "content_filter") means, and the fix."""
    return ("the provider's content filter stopped the teacher's reply (finish_reason 'content_filter'), so it may be "
            "incomplete and its answer was not read; it was not cached or kept, and asking again will not help. "
            f"Fix: {fix.filtered}")


def empty_reply(finish: str | None, *, reasoning: bool, max_tokens: int, where: str,
                fix: Fixes = FIXES["cli"]) -> TeacherIncompleteError:
    """The error for a reply without text, saying why where its finish_reason tells: a reasoning model that spent its
    token limit thinking, a content filter, a tool call, reasoning only; else `incomplete_reply`'s."""
    if finish == "length":
        return TeacherIncompleteError(
            f"the teacher at {where} spent its whole limit of {max_tokens} tokens reasoning and wrote no reply "
            f"(finish_reason 'length', no text); it was not kept, and asking again gets the same. Fix: {fix.budget}")
    if finish == "content_filter":
        return TeacherIncompleteError(
            f"the provider's content filter at {where} stopped the teacher's reply before it wrote anything "
            f"(finish_reason 'content_filter'); asking again will not help. Fix: {fix.filtered}")
    if finish == "tool_calls":
        return TeacherIncompleteError(
            f"the teacher at {where} answered with a tool call instead of text (finish_reason 'tool_calls'); it was "
            f"not kept. Fix: the model or its server is set up to call tools (a chat template or proxy adding them): "
            f"turn that off, or check {fix.model}")
    if reasoning:
        return TeacherIncompleteError(
            f"the teacher at {where} sent only its reasoning and no reply text (finish_reason {finish!r}); it was "
            f"not kept. Fix: check the server's reasoning settings (a reasoning parser that moves the whole reply "
            f"into 'reasoning_content') and {fix.model}")
    return incomplete_reply(f"sent an empty reply (finish_reason {finish!r})", where=where, fix=fix)


def _server_message(error: Exception) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if message:
            return str(message)[:300]
    return str(getattr(error, "message", error))[:300]


_URL_CREDENTIALS = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]+@")


def mask_url(text: str) -> str:
    """`text` with the credentials of every URL in it masked: "http://user:pw@host/v1" -> "http://***@host/v1"."""
    return _URL_CREDENTIALS.sub(r"\1***@", text)


def url_credentials(url: str) -> tuple[str, ...]:
    """What a server could echo of the credentials written into `url` ("user:password@"): the password, the pair, and
    the pair as the Basic authorization header the HTTP client sends from them."""
    match = re.search(r"://([^/\s@]+)@", url)
    if not match:
        return ()
    pair = unquote(match.group(1))
    password = pair.split(":", 1)[1] if ":" in pair else ""
    return tuple(secret for secret in (base64.b64encode(pair.encode()).decode(), pair, password) if len(secret) > 2)


def redact(text: str, secret: Secrets) -> str:
    """`text` with the secrets (the API key, the base URL's credentials) masked as ***, and URL credentials too."""
    for one in [secret] if isinstance(secret, str) else secret or ():
        if one:
            text = text.replace(one, "***")
    return mask_url(text)


_redact = redact

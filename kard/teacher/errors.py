"""Teacher errors: what an `openai` failure means for the user, and how to fix it.

Messages name the server (its base URL) and the fix; they never contain the API key, even when a
server echoes it back (it is masked as ***).
"""

from __future__ import annotations

from kard.config import TeacherConfig
from kard.errors import KardError


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


def translate_error(
    error: Exception, *, where: str, model: str, config: TeacherConfig, secret: str | None
) -> TeacherError:
    """An `openai` exception as a `TeacherError` whose message names the problem and the fix."""
    import openai

    retries = f"{config.max_retries} retr{'y' if config.max_retries == 1 else 'ies'}"
    resume = "finished samples are cached, so rerunning the same job resumes where it stopped"
    detail = _redact(_server_message(error), secret)
    if isinstance(error, openai.AuthenticationError):
        return TeacherAuthError(
            f"the teacher server at {where} rejected the API key (HTTP 401). Fix: check OPENAI_API_KEY"
        )
    if isinstance(error, openai.PermissionDeniedError):
        return TeacherAuthError(
            f"the API key may not use model {model!r} at {where} (HTTP 403: {detail}). Fix: check OPENAI_API_KEY and --model"
        )
    if isinstance(error, openai.RateLimitError):
        return TeacherRateLimitError(
            f"still rate limited by {where} (HTTP 429) after {retries}: {detail}. "
            f"Fix: lower --concurrency or wait and rerun; {resume}"
        )
    if isinstance(error, openai.InternalServerError):
        return TeacherServerError(
            f"the teacher server at {where} kept failing (HTTP {error.status_code}) after {retries}: {detail}. "
            f"Fix: check the server's logs and rerun later; {resume}"
        )
    if isinstance(error, openai.APITimeoutError):
        return TeacherTimeoutError(
            f"no reply from {where} within {config.timeout_s:g} s ({retries}). "
            f"Fix: raise the timeout (--timeout) or lower --concurrency; {resume}"
        )
    if isinstance(error, openai.APIConnectionError):
        return TeacherUnreachableError(
            f"could not connect to the teacher server at {where}. Fix: is the server at {where} running? "
            "Set OPENAI_BASE_URL or --base-url to its address"
        )
    if isinstance(error, openai.NotFoundError):
        return TeacherRequestError(
            f"model {model!r} or the chat endpoint was not found at {where} (HTTP 404: {detail}). "
            "Fix: check --model (KARD_TEACHER_MODEL) and that the base URL ends in /v1"
        )
    if isinstance(error, openai.APIStatusError):
        return TeacherRequestError(
            f"the teacher server at {where} refused the request (HTTP {error.status_code}: {detail}). "
            "Fix: check --model and the sampling settings against what the server supports"
        )
    return TeacherError(
        f"the teacher request to {where} failed: {_redact(str(error), secret)}. Fix: check the server and rerun"
    )


def not_a_completion(got: str, *, where: str, secret: str | None) -> TeacherReplyError:
    """The error for a 200 reply that is not a chat completion; `got` says what came instead."""
    return TeacherReplyError(
        f"the server at {where} did not answer with a chat completion (got {_redact(got, secret)}). "
        "Fix: check --base-url points at an OpenAI-compatible /v1 endpoint"
    )


def incomplete_reply(problem: str, *, where: str) -> TeacherIncompleteError:
    """The error for a reply that stopped before it finished or held no text; `problem` says which."""
    return TeacherIncompleteError(
        f"the teacher server at {where} {problem}; it was not kept. Fix: ask again; if it keeps happening, "
        "check the server's logs (a crash or a proxy cutting long replies) and the model name"
    )


def _server_message(error: Exception) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if message:
            return str(message)[:300]
    return str(getattr(error, "message", error))[:300]


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text

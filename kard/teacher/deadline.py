"""The teacher's timeout counts seconds without a word, and keep-alive bytes are no word.

The HTTP client's read timeout starts again on every byte that arrives, so a server (or a proxy such as
OpenRouter) that sends keep-alive comments (": OPENROUTER PROCESSING") or whitespace while it waits can hold
a request for as long as it likes. `KeepAliveDeadline` watches each reply's body as it is read: when
`seconds` pass with only such bytes (since the request was sent, or since the last real text), it raises the
HTTP client's `ReadTimeout`, which the `openai` client retries and the teacher reports as a timeout. A reply
that keeps sending text is never cut: the timeout still runs between real chunks, as before.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx2

_STARTED = "kard_started"  # the request extension holding when it was sent (time.monotonic)


class KeepAliveDeadline:
    """The `openai` client's HTTP event hooks: `request` stamps when a request is sent, `response` watches its body."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def hooks(self) -> dict[str, list]:
        return {"request": [self.request], "response": [self.response]}

    def request(self, request: httpx2.Request) -> None:
        request.extensions[_STARTED] = time.monotonic()

    def response(self, response: httpx2.Response) -> None:
        started = response.request.extensions.get(_STARTED, time.monotonic())
        events = response.headers.get("content-type", "").startswith("text/event-stream")
        response.stream = _Watched(response.stream, response.request, started, self.seconds, events)


class _Watched(httpx2.SyncByteStream):
    """A response body that raises ReadTimeout after `seconds` of keep-alive bytes only."""

    def __init__(self, stream: httpx2.SyncByteStream, request: httpx2.Request, started: float, seconds: float,
                 events: bool):
        self._stream, self._request, self._last_word, self._seconds, self._events = (
            stream, request, started, seconds, events)

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            now = time.monotonic()
            if _has_words(chunk, self._events):
                self._last_word = now
            elif now - self._last_word > self._seconds:
                raise httpx2.ReadTimeout(
                    f"only keep-alive bytes for {self._seconds:g} s, no reply", request=self._request)
            yield chunk

    def close(self) -> None:
        self._stream.close()


def _has_words(chunk: bytes, events: bool) -> bool:
    """Whether a body chunk holds more than keep-alive: whitespace, and in an event stream comment lines (":...")."""
    if not events:
        return bool(chunk.strip())
    return any(line.strip() and not line.lstrip().startswith(b":") for line in chunk.split(b"\n"))

"""A scripted OpenAI-compatible chat server for tests: real HTTP on 127.0.0.1, a free port, in a thread.

    with FakeOpenAI(api_key="sk-test") as server:
        server.script(status(429), status(429))        # the next two requests get 429, then...
        server.responder = answer_with("Answer: B")     # ...every request gets this reply
        client = openai.OpenAI(base_url=server.url, api_key="sk-test")

A responder is a function `(body: dict) -> Reply`. Scripted replies are used first, one per request,
then `responder`. `server.requests` keeps every request body, so tests can count what reached the wire.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse


@dataclass(frozen=True)
class Reply:
    """What the server does with one request."""

    status: int = 200
    texts: tuple[str | None, ...] = ()  # one per choice (None: no content); fewer than `n` asked = a server ignoring n
    delay_s: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str = ""
    body: str | None = None  # sent as is instead of a chat completion (a server that is not OpenAI's kind)
    media_type: str = "application/json"
    finish_reason: str | None = "stop"  # None: a stream cut off before its last chunk and [DONE]
    reasoning: str = ""  # a reasoning model's thinking, sent as "reasoning_content" beside the reply
    keep_alive_s: float = 0.0  # keep-alive bytes (whitespace; in a stream, ": comments") this long before the reply


Responder = Callable[[dict], Reply]


def status(code: int, message: str = "scripted failure", retry_after_ms: int = 1) -> Reply:
    """An error reply; `retry-after-ms` keeps the client's backoff tiny in tests."""
    return Reply(status=code, error=message, headers={"retry-after-ms": str(retry_after_ms)})


def raw_body(body: str, media_type: str = "application/json") -> Reply:
    """A 200 reply whose body is `body` as is, not a chat completion."""
    return Reply(body=body, media_type=media_type)


def last_user_message(body: dict) -> str:
    return next((m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")


def answer_with(*texts: str, honor_n: bool = True) -> Responder:
    """Replies with `texts` (cycled) as the choices; `n` choices unless `honor_n` is False."""

    def responder(body: dict) -> Reply:
        count = int(body.get("n") or 1) if honor_n else 1
        return Reply(texts=tuple(texts[i % len(texts)] for i in range(count)))

    return responder


def by_question(answers: Mapping[str, str | Reply], default: str = "No idea.\nAnswer: A") -> Responder:
    """Replies by which question is asked: the first key found in the last user message wins."""

    def responder(body: dict) -> Reply:
        asked = last_user_message(body)
        for needle, reply in answers.items():
            if needle in asked:
                if isinstance(reply, Reply):
                    return reply
                return Reply(texts=(reply,) * int(body.get("n") or 1))
        return Reply(texts=(default,) * int(body.get("n") or 1))

    return responder


def _tokens(text: str | None) -> int:
    return len((text or "").split())


class FakeOpenAI:
    """The server. Use as a context manager; `url` is the base URL to give the openai client."""

    def __init__(self, api_key: str | None = None, responder: Responder | None = None):
        self.api_key = api_key
        self.responder: Responder = responder or answer_with("It follows.\nAnswer: A")
        self.requests: list[dict] = []
        self.auth_failures = 0
        self.single_stream = False  # True: one request served at a time, the others wait (like a local server)
        self.max_in_flight = 0  # the most requests the server held at once
        self._in_flight = 0
        self._scripted: list[Reply] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        config = uvicorn.Config(
            self._app(), log_level="warning", access_log=False, timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._scripted.extend(replies)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def _next_reply(self, body: dict) -> Reply:
        with self._lock:
            self.requests.append(body)
            scripted = self._scripted.pop(0) if self._scripted else None
        return scripted or self.responder(body)

    def _app(self) -> FastAPI:
        app = FastAPI()
        serving = asyncio.Lock()  # the single-stream server's one seat

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Response:
            if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
                self.auth_failures += 1
                return _error(401, "Incorrect API key provided.", "invalid_api_key")
            body = await request.json()
            reply = self._next_reply(body)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            try:
                if self.single_stream:
                    async with serving:
                        await asyncio.sleep(reply.delay_s)
                elif reply.delay_s:
                    await asyncio.sleep(reply.delay_s)
            finally:
                self._in_flight -= 1
            if reply.body is not None:
                return Response(reply.body, status_code=reply.status, media_type=reply.media_type)
            if reply.status != 200:
                return _error(reply.status, reply.error, "scripted", reply.headers)
            if body.get("stream"):
                return StreamingResponse(_stream(body, reply), media_type="text/event-stream")
            if reply.keep_alive_s:
                return StreamingResponse(_kept_alive(body, reply), media_type="application/json")
            return JSONResponse(_completion(body, reply), headers=dict(reply.headers))

        return app

    def __enter__(self) -> "FakeOpenAI":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake OpenAI server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


def _error(code: int, message: str, kind: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "code": kind}}
    return JSONResponse(body, status_code=code, headers=dict(headers or {}))


def _prompt_tokens(body: dict) -> int:
    return sum(_tokens(m.get("content", "")) for m in body.get("messages", []))


def _completion(body: dict, reply: Reply) -> dict:
    prompt_tokens = _prompt_tokens(body)
    thinking = {"reasoning_content": reply.reasoning} if reply.reasoning else {}
    choices = [
        {"index": i, "message": {"role": "assistant", "content": text, **thinking},
         "finish_reason": reply.finish_reason}
        for i, text in enumerate(reply.texts)
    ]
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": sum(_tokens(t) for t in reply.texts),
            "total_tokens": prompt_tokens + sum(_tokens(t) for t in reply.texts),
        },
    }


KEEP_ALIVE_EVERY_S = 0.05


async def _kept_alive(body: dict, reply: Reply):
    """Whitespace while the reply is "in the making" (OpenRouter's keep-alive), then the completion."""
    for _ in range(int(reply.keep_alive_s / KEEP_ALIVE_EVERY_S)):
        yield " \n"
        await asyncio.sleep(KEEP_ALIVE_EVERY_S)
    yield json.dumps(_completion(body, reply))


async def _stream(body: dict, reply: Reply):
    text = reply.texts[0] if reply.texts else ""
    for _ in range(int(reply.keep_alive_s / KEEP_ALIVE_EVERY_S)):
        yield ": keep-alive\n\n"
        await asyncio.sleep(KEEP_ALIVE_EVERY_S)
    for word in reply.reasoning.split(" ") if reply.reasoning else ():
        chunk = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "delta": {"content": None, "reasoning_content": word + " "},
                         "finish_reason": None}],
        }
        yield f"data: {json.dumps(chunk)}\n\n"
    words = text.split(" ") if text is not None else []
    for i, word in enumerate(words):
        piece = word if i == 0 else " " + word
        chunk = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
        }
        yield f"data: {json.dumps(chunk)}\n\n"
        await asyncio.sleep(0)
    if reply.finish_reason is None:
        return  # cut off: the body ends here, with no finish_reason and no [DONE]
    final = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "delta": {}, "finish_reason": reply.finish_reason}],
        "usage": {
            "prompt_tokens": _prompt_tokens(body),
            "completion_tokens": len(words),
            "total_tokens": _prompt_tokens(body) + len(words),
        },
    }
    yield f"data: {json.dumps(final)}\n\n"
    yield "data: [DONE]\n\n"

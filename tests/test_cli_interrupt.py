"""Ctrl+C on a real `python -m kard` process: it stops at once, says what it kept in one line, exits 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from tests.interruptible import popen_interruptible

ROOT = Path(__file__).resolve().parents[1]
INTERRUPTED = 130


class FirstAnswerThenHang(ThreadingHTTPServer):
    """A chat server on 127.0.0.1 that answers the first request and never answers the others (until closed)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests = 0
        self.hanging = threading.Event()  # set once a request is left waiting
        self.release = threading.Event()  # set at the end of the test: the waiting handlers return

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: FirstAnswerThenHang

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.server.requests += 1
        if self.server.requests > 1:
            self.server.hanging.set()
            self.server.release.wait(120)
            return
        body = json.dumps({"id": "c1", "object": "chat.completion", "created": 0, "model": "m",
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": "Because.\nAnswer: A"}}],
                           "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hanging_server() -> Iterator[FirstAnswerThenHang]:
    server = FirstAnswerThenHang()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def _kard(*argv: str) -> subprocess.Popen:
    env = dict(os.environ, OPENAI_API_KEY="sk-test", PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
    return popen_interruptible([sys.executable, "-m", "kard", *argv], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _interrupt(process: subprocess.Popen) -> tuple[float, str, str]:
    """Send Ctrl+C; (seconds until the process ended, its stdout, its stderr)."""
    process.send_signal(signal.SIGINT)
    started = time.monotonic()
    try:
        out, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"still running 30 s after Ctrl+C; stderr: {err[-2000:]}")
    return time.monotonic() - started, out, err


def test_ctrl_c_stops_teach_at_once_keeps_the_cache_and_leaves_out_as_it_was(hanging_server, tmp_path):
    from kard.teacher.cache import TeacherCache

    out, cache = tmp_path / "r.jsonl", tmp_path / "c.db"
    earlier = json.dumps({"question_id": "demo-q-med-01", "text": "Kept.", "answer": "A"}) + "\n"
    out.write_text(earlier)
    process = _kard("teach", "--dataset", "demo", "--limit", "3", "--n", "1", "--base-url", hanging_server.url,
                    "--model", "m", "--concurrency", "1", "--no-progress", "--cache", str(cache), "--out", str(out))
    if not hanging_server.hanging.wait(60):
        process.kill()
        pytest.fail(f"the teacher never sent its second request; stderr: {process.communicate()[1][-2000:]}")
    time.sleep(1)  # the job has counted the first question as done; the second waits on its reply
    took, printed, said = _interrupt(process)
    assert process.returncode == INTERRUPTED, said
    assert "Traceback" not in said
    last = said.strip().splitlines()[-1]
    assert last.startswith("interrupted: 1 of 3 questions") and f"{out} was left as it was" in last, said
    assert took < 10, f"took {took:.1f} s to stop"  # before: each request in flight went through its retries
    assert out.read_text() == earlier
    kept = TeacherCache(cache)
    try:
        assert kept.count() == 1  # the first question's reply, cached as it came
    finally:
        kept.close()

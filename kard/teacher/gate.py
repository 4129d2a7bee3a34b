"""How many teacher requests may be in flight at once, learned from the server's reply times.

Local OpenAI-compatible servers (transformers serve, llama.cpp's server, Ollama) often answer one
request at a time: four requests sent together then queue on the server, the last ones time out on
the client, the client sends them again while the server still works on the first copies, and the
pile grows. `AdaptiveGate` starts with one request in flight and lets one more in only while a
reply comes back as fast with company as alone and the queue it would make still fits the timeout;
when replies slow down with company (the server queues) or one times out, it steps back.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from typing import Iterator

log = logging.getLogger(__name__)

SLOWDOWN = 1.5
"""A reply this many times slower than the fastest lone reply means the server made it wait."""


class AdaptiveGate:
    def __init__(self, maximum: int, timeout_s: float):
        self.maximum, self.timeout_s = max(1, maximum), timeout_s
        self.limit = 1
        self._in_flight = 0
        self._alone_s: float | None = None  # the fastest reply seen with nothing else in flight
        self._changed = threading.Condition()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Wait for room, hold it for one request, learn from how long the reply took."""
        with self._changed:
            while self._in_flight >= self.limit:
                self._changed.wait()
            self._in_flight += 1
            company = self._in_flight - 1
        started, replied = time.monotonic(), False
        try:
            yield
            replied = True
        finally:
            with self._changed:
                self._in_flight -= 1
                if replied:
                    self._learn(time.monotonic() - started, company)
                self._changed.notify_all()

    def timed_out(self) -> None:
        """A request timed out: back to one at a time."""
        with self._changed:
            if self.limit > 1:
                log.warning("the teacher server timed out with %d requests in flight; sending one at a time",
                            self.limit)
            self.limit = 1

    def _learn(self, seconds: float, company: int) -> None:
        if company == 0:
            self._alone_s = seconds if self._alone_s is None else min(self._alone_s, seconds)
        alone = self._alone_s or seconds
        if company > 0 and seconds > SLOWDOWN * alone:
            if self.limit > 1:
                log.info("the teacher server queues requests (%.1f s with company vs %.1f s alone): %d at a time",
                         seconds, alone, self.limit - 1)
            self.limit = max(1, self.limit - 1)
        elif self.limit < self.maximum and alone * (self.limit + 1) < self.timeout_s:
            self.limit += 1  # even a server that queues would answer one more within the timeout

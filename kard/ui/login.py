"""The local curator login: a constant-time password check that stops guessing.

Gradio calls `auth(username, password)` for every login attempt. After `max_failures` wrong attempts
within `window_s` seconds, every attempt is refused (the right password too) until the window has
passed since the latest failure, and a warning names the user (never the password). One slow
guess per `window_s / max_failures` seconds on average is all a client gets.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections import deque
from typing import Callable

log = logging.getLogger(__name__)


class ThrottledLogin:
    """A callable for `Blocks.launch(auth=...)` checking one user and password."""

    def __init__(self, user: str, password: str, max_failures: int = 5, window_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        self._user, self._password = user.encode(), password.encode()
        self.max_failures, self.window_s = max_failures, window_s
        self._clock = clock
        self._failures: deque[float] = deque()
        self._lock = threading.Lock()

    def rule(self) -> str:
        """The lockout as the login page says it (Gradio 6.31's page shows "Incorrect Credentials" for a
        refusal of either kind and only a static `auth_message`, so the rule is stated up front)."""
        wait = "a minute" if self.window_s == 60 else f"{self.window_s:g} seconds"
        return (f"Wrong password or too many tries: after {self.max_failures} wrong passwords, every login "
                f"(the right password too) is refused until {wait} has passed since the last wrong one. "
                "Wait, then sign in again.")

    def locked(self) -> bool:
        """True while too many recent failures refuse every attempt."""
        with self._lock:
            self._forget_old()
            return len(self._failures) >= self.max_failures

    def __call__(self, username: str, password: str) -> bool:
        right = hmac.compare_digest(str(username).encode(), self._user) & hmac.compare_digest(
            str(password).encode(), self._password)
        with self._lock:
            self._forget_old()
            if len(self._failures) >= self.max_failures:
                log.warning("curator login refused for %r: %d failed attempts in the last %.0f s; wait and retry",
                            username, len(self._failures), self.window_s)
                return False
            if not right:
                self._failures.append(self._clock())
            return bool(right)

    def _forget_old(self) -> None:
        if self._failures and self._clock() - self._failures[-1] >= self.window_s:
            self._failures.clear()

"""Start a child process that Ctrl+C (SIGINT) reaches, however the test run itself was started.

A shell starts a background job (`pytest ... &`, `nohup`) with SIGINT ignored, and a child inherits that, so a
Python child would never see the signal a Ctrl+C test sends and the test would wait out its timeout. The child is
given the default disposition back before it starts; Python then installs its KeyboardInterrupt handler.
"""

from __future__ import annotations

import signal
import subprocess
from typing import Any


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def popen_interruptible(argv: list[str], **kwargs: Any) -> subprocess.Popen:
    """`subprocess.Popen(argv, **kwargs)` whose child takes SIGINT as a terminal's Ctrl+C."""
    return subprocess.Popen(argv, preexec_fn=_default_sigint, **kwargs)  # noqa: PLW1509 - only a signal reset

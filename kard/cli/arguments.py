"""Checks shared by the commands' arguments: output folders, checked before anything slow starts."""

from __future__ import annotations

import os
from pathlib import Path

from kard.errors import ConfigError


def make_out_folder(out: Path, *, flag: str = "--out", holds: str = "the index", example: str = "kb") -> None:
    """Create the folder `flag` names, or raise ConfigError when `out` is a file or cannot be created.

    `holds` says what the folder is for and `example` is a folder name to suggest in the fix.
    """
    suggestion = f"{flag} {example}"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{flag} {out} is a file, not a folder. Fix: pass a new folder name for {holds} "
                          f"(e.g. {suggestion}), or move the file aside")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"{flag} {out}: cannot create the folder ({error.strerror or error}). Fix: pass a folder "
                          f"in a writable place (e.g. {suggestion} in the current folder)") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {out}: the folder is not writable. Fix: pass a folder in a writable place "
                          f"(e.g. {suggestion} in the current folder)")

"""Checks shared by the commands' arguments, done before anything slow starts: output folders and files, number types.

A number type goes in `add_argument(type=...)`, so argparse refuses a bad value with the flag's name
(`argument --k: '0' is not a whole number, 1 or more. Fix: ...`) before the command runs.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Callable

from kard.errors import ConfigError


def make_out_folder(out: Path, *, flag: str = "--out", holds: str = "the index", example: str = "kb") -> None:
    """Create the folder `flag` names, or raise ConfigError when `out` is a file or cannot be created.

    `holds` says what the folder is for and `example` is a folder name to suggest in the fix.
    """
    suggestion = f"{flag} {example}"
    refuse_file_as_folder(out, flag=flag, holds=holds, example=example)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"{flag} {out}: cannot create the folder ({error.strerror or error}). Fix: pass a folder "
                          f"in a writable place (e.g. {suggestion} in the current folder)") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {out}: the folder is not writable. Fix: pass a folder in a writable place "
                          f"(e.g. {suggestion} in the current folder)")


def refuse_file_as_folder(out: Path, *, flag: str = "--out", holds: str = "the index", example: str = "kb") -> None:
    """Raise ConfigError when `out`, meant as a folder, is a file; creates nothing (see make_out_folder)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{flag} {out} is a file, not a folder. Fix: pass a new folder name for {holds} "
                          f"(e.g. {flag} {example}), or move the file aside")


def check_out_file(out: Path) -> None:
    """Raise ConfigError unless `out` can be written as a file: not a folder, its folder creatable and
    writable. Run before the work, so a bad --out does not cost a finished job."""
    if out.is_dir():
        raise ConfigError(
            f"--out {out} is a folder. Fix: pass a file name, e.g. --out {out / 'rationales.jsonl'}"
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"--out {out}: cannot create its folder {out.parent} ({error.strerror or error}). "
            "Fix: pass an --out file in a writable folder"
        ) from None
    if not os.access(out.parent, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise ConfigError(f"--out {out} is not writable. Fix: pass an --out file in a writable folder")


# ---------------------------------------------------------------- number types (argparse `type=`)


def positive_int(text: str) -> int:
    """A whole number, 1 or more (counts: --k, --samples, --batch-size, --max-new-tokens, ...)."""
    return _number(text, int, "a whole number, 1 or more", lambda value: value >= 1)


def non_negative_int(text: str) -> int:
    """A whole number, 0 or more (where 0 means 'off' or 'fitted', as --steps 0 = train by epochs)."""
    return _number(text, int, "a whole number, 0 or more", lambda value: value >= 0)


def positive_float(text: str) -> float:
    """A number above 0 (a temperature, a learning rate, a number of epochs)."""
    return _number(text, float, "a number above 0", lambda value: value > 0)


def non_negative_float(text: str) -> float:
    """A number, 0 or more (BM25's k1)."""
    return _number(text, float, "a number, 0 or more", lambda value: value >= 0)


def probability(text: str) -> float:
    """A number from 0 to 1 (BM25's b)."""
    return _number(text, float, "a number from 0 to 1", lambda value: 0 <= value <= 1)


def _number(text: str, kind: type, what: str, allowed: Callable[[float], bool]) -> int | float:
    try:
        value = kind(text.strip())
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or not allowed(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}. Fix: pass {what}")
    return value

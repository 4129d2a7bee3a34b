"""Items the app hands out are sealed, so that a save stores only what this server produced.

An item (the asked question, its passages, the student's and teacher's answers) travels through the
browser or an API client between ask, compare and save. `ItemSeal.seal` adds an HMAC of its content
under a key that never leaves the server; `ItemSeal.check` refuses an item whose seal is missing or
does not match (forged, edited or malformed), with a message saying to ask the question again. The
content is hashed in a canonical form (sorted keys; 1.0 written as 1) because JSON in the browser
does not keep Python's float spelling.

The key: $KARD_SEAL_KEY where set; else, for a store that saves, a file beside the annotation database
(`stored_key`: made once, readable by its owner only), so an item handed out before a restart (a draft
the browser kept) still saves after it; else (the read-only demo) a new key per process.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any, Mapping

from kard.errors import KardError

log = logging.getLogger(__name__)

SEAL = "seal"
KEY_SUFFIX = ".seal-key"
"""The key file is the annotation database's name plus this (annotations.db.seal-key); never synced or exported."""
MIN_KEY_CHARS = 32


class ForgedItemError(KardError):
    """An item that this server did not produce, or that was changed after it did."""


class ItemSeal:
    def __init__(self, key: bytes | None = None):
        self._key = key or secrets.token_bytes(32)

    def seal(self, item: Mapping[str, Any]) -> dict[str, Any]:
        content = {k: v for k, v in item.items() if k != SEAL}
        return {**content, SEAL: self._digest(content)}

    def check(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """The item (seal included) when its seal matches; ForgedItemError otherwise."""
        content = {k: v for k, v in item.items() if k != SEAL}
        given = item.get(SEAL)
        if not isinstance(given, str) or not hmac.compare_digest(given, self._digest(content)):
            raise ForgedItemError("This item was not produced by this app, or it was changed after it was (or the "
                                  "app's seal key changed since). Fix: ask the question again, then correct and save "
                                  "(copy an unsaved correction first: asking again replaces it)")
        return dict(item)

    def _digest(self, content: Mapping[str, Any]) -> str:
        text = json.dumps(_canonical(content), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        return hmac.new(self._key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def _canonical(value: Any) -> Any:
    """Tuples as lists, integral floats as ints: what survives a trip through JavaScript's JSON."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def key_file(database: Path) -> Path:
    return database.with_name(database.name + KEY_SUFFIX)


def stored_key(database: Path) -> bytes | None:
    """The seal key kept beside the annotation database `database`, made on first use (mode 0600); None (a key per
    process) where the file cannot be made or read, logged with its path and never with the key."""
    path = key_file(database)
    try:
        _make_key_file(path)
        key = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeError) as error:
        log.warning("cannot keep the item seal key in %s (%s): items handed out before a restart will need asking "
                    "again. Fix: make its folder writable, or set KARD_SEAL_KEY", path, error)
        return None
    if len(key) < MIN_KEY_CHARS:
        log.warning("the item seal key file %s holds under %d characters: using a key for this run only. Fix: "
                    "delete the file (the app makes a new one)", path, MIN_KEY_CHARS)
        return None
    return key.encode("ascii")


def _make_key_file(path: Path) -> None:
    """Write a new random key to `path` unless it exists: written to a private temp file, then linked into place, so
    two apps starting at once never read a half-written key."""
    if path.exists():
        return
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".seal-key-")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_hex(32) + "\n")
        os.link(temp, path)  # fails when another process made it first: theirs is kept
    except FileExistsError:
        pass
    finally:
        os.unlink(temp)

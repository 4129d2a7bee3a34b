"""Items the app hands out are sealed, so that a save stores only what this server produced.

An item (the asked question, its passages, the student's and teacher's answers) travels through the
browser or an API client between ask, compare and save. `ItemSeal.seal` adds an HMAC of its content
under a key that never leaves the process; `ItemSeal.check` refuses an item whose seal is missing or
does not match (forged, edited or malformed), with a message saying to ask the question again. The
content is hashed in a canonical form (sorted keys; 1.0 written as 1) because JSON in the browser
does not keep Python's float spelling.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any, Mapping

from kard.errors import KardError

SEAL = "seal"


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
            raise ForgedItemError("This item was not produced by this app, or it was changed after it was (or the app "
                                  "restarted since). Fix: ask the question again, then correct and save")
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

"""WCAG contrast ratios of CSS colours, for the accessibility tests: "#rrggbb" or "rgb(r, g, b)" / "rgba(...)"."""

from __future__ import annotations

import re


def _channels(colour: str) -> list[float]:
    if colour.startswith("#"):
        return [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    return [int(c) / 255 for c in re.findall(r"\d+", colour)[:3]]


def _luminance(colour: str) -> float:
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in _channels(colour)]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    """The WCAG 2 contrast ratio of two colours, from 1 (the same) to 21 (black on white)."""
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)

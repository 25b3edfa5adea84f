"""Small helpers shared by the log line handlers: loose `key = number` extraction and conversions."""

from __future__ import annotations

import re

_KV_RE = re.compile(r"([A-Za-z_][\w.]*(?:\(\))?) *= *(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?|inf|nan)")


def kv(msg: str) -> dict[str, str]:
    """Every `key = number` pair in a message (the loose fallback when an exact pattern misses)."""
    return dict(_KV_RE.findall(msg))


def int_or_none(d: dict[str, str], key: str) -> int | None:
    """``d[key]`` as an int, or None when absent."""
    v = d.get(key)
    return int(float(v)) if v is not None else None


def float_or_none(d: dict[str, str], key: str) -> float | None:
    """``d[key]`` as a float, or None when absent."""
    v = d.get(key)
    return float(v) if v is not None else None


def int_value(text: str) -> int | None:
    """The text as an int when it is only digits."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    return None

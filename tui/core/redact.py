"""Redaction of secrets before anything is stored or shown."""

from __future__ import annotations

from collections.abc import Iterable

SECRET_HEADERS: frozenset[str] = frozenset(
    {"authorization", "x-api-key", "cookie", "set-cookie", "proxy-authorization", "api-key"}
)
SECRET_WORDS: tuple[str, ...] = ("token", "secret", "key")
REDACTED = "[redacted]"


def is_secret_header(name: str) -> bool:
    """Whether a header's value must never be stored or shown."""
    lower = name.lower()
    return lower in SECRET_HEADERS or any(word in lower for word in SECRET_WORDS)


def redact(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers as a dict (repeats joined with ", ") with secret values replaced by "[redacted]"."""
    out: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        shown = REDACTED if is_secret_header(key) else value
        out[key] = f"{out[key]}, {shown}" if key in out and shown != REDACTED else shown
    return out

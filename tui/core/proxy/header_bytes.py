"""Header values cross the proxy as the bytes they arrived as, non-UTF-8 bytes included."""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import chain

import aiohttp.http_writer as http_writer
from aiohttp.helpers import NO_EXTENSIONS
from multidict import CIMultiDict

# aiohttp's parsers decode header bytes as UTF-8 with surrogateescape, but its writers encode strict
# UTF-8 (the C writer drops what it cannot encode), so a byte such as 0xE9 would be lost on the way
# through. This serializer restores those bytes; the injection check is aiohttp's own rule.
_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

# aiohttp's C serializer (same injection check, same bytes for text without surrogates), when built.
_C_SERIALIZE: Callable[[str, CIMultiDict[str]], bytes] | None = (
    None if NO_EXTENSIONS else getattr(http_writer, "_c_serialize_headers", None)
)


def _checked(text: str) -> str:
    if _FORBIDDEN.search(text) is not None:
        raise ValueError("Forbidden control character detected in headers (header injection)")
    return text


def serialize_headers(status_line: str, headers: CIMultiDict[str]) -> bytes:
    """The head of a message, with surrogate-escaped bytes written back as the bytes they stand for.

    An all-ASCII head (nearly every one) cannot hold a surrogate: aiohttp's C serializer writes the
    same bytes for it, with the same injection check, in a fraction of the time.
    """
    if _C_SERIALIZE is not None and status_line.isascii():
        if "".join(chain.from_iterable(headers.items())).isascii():
            return _C_SERIALIZE(status_line, headers)
    lines = [_checked(status_line)]
    lines.extend(_checked(name) + ": " + _checked(value) for name, value in headers.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


def install() -> None:
    """Make every aiohttp writer in this process use `serialize_headers` (idempotent)."""
    http_writer._serialize_headers = serialize_headers

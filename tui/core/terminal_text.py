"""Text from requests, made safe to print: control characters become visible escapes."""

from __future__ import annotations

import re

# C0 and C1 controls and DEL (ESC starts CSI/OSC sequences, BEL ends OSC 52 clipboard writes), line and
# paragraph separators, and the bidirectional overrides and isolates that reorder what a terminal shows.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every terminal control character written as a visible \\xNN or \\uNNNN escape."""
    return _UNSAFE.sub(_escape, text)


def printable_lines(text: str) -> str:
    """Like `printable` for multi-line output: newlines stay, every other control is escaped."""
    return "\n".join(printable(line) for line in text.split("\n"))

"""Propose a stabilizer regex from two versions of a block that differ only in a short volatile span."""

from __future__ import annotations

import re

MAX_SPAN = 64
MAX_LEFT = 24
MAX_RIGHT = 16

# Known volatile shapes, tried before the generic character-class guess.
_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"),
        r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}",
    ),
    (
        re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"),
        r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?",
    ),
    (re.compile(r"\d{4}-\d{2}-\d{2}"), r"\d{4}-\d{2}-\d{2}"),
    (re.compile(r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?"), r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?"),
)


def _diff_bounds(old: str, new: str) -> tuple[int, int, int]:
    """Common prefix length and the ends of the differing middle in old and in new."""
    limit = min(len(old), len(new))
    p = 0
    while p < limit and old[p] == new[p]:
        p += 1
    s = 0
    while s < limit - p and old[-1 - s] == new[-1 - s]:
        s += 1
    return p, len(old) - s, len(new) - s


def _shape_span(old: str, new: str, p: int, end_old: int, end_new: int) -> tuple[int, int, int, str] | None:
    for shape, pattern in _SHAPES:
        for m_old in shape.finditer(old, max(0, p - 40), min(len(old), end_old + 40)):
            if not (m_old.start() <= p and m_old.end() >= end_old):
                continue
            m_new = shape.match(new, m_old.start())
            if m_new and m_new.end() >= end_new and old[m_old.end() :] == new[m_new.end() :]:
                return m_old.start(), m_old.end(), m_new.end(), pattern
    return None


def _class_for(spans: tuple[str, str]) -> str | None:
    chars = set(spans[0] + spans[1])
    if not chars:
        return None
    if chars <= set("0123456789"):
        return r"\d+"
    if chars <= set("0123456789abcdef"):
        return "[0-9a-f]+"
    if chars <= set("0123456789ABCDEF"):
        return "[0-9A-F]+"
    if all(c.isascii() and c.isalnum() for c in chars):
        return "[0-9A-Za-z]+"
    if not any(c.isspace() for c in chars) and not chars & set(";,\"'"):
        return r"[^\s;,\"']+"
    return None


def _word_span(old: str, new: str, p: int, end_old: int, end_new: int) -> tuple[int, int, int, str] | None:
    def word(c: str) -> bool:
        return c.isascii() and c.isalnum()

    a = p
    while a > 0 and word(old[a - 1]):
        a -= 1
    b_old, b_new = end_old, end_new
    while b_old < len(old) and b_new < len(new) and word(old[b_old]) and old[b_old] == new[b_new]:
        b_old += 1
        b_new += 1
    cls = _class_for((old[a:b_old], new[a:b_new]))
    return (a, b_old, b_new, cls) if cls else None


def suggest_pattern(old_text: str, new_text: str) -> str | None:
    """A regex matching the one short span where two texts differ (with literal context), or None."""
    if old_text == new_text:
        return None
    p, end_old, end_new = _diff_bounds(old_text, new_text)
    if max(end_old - p, end_new - p) > MAX_SPAN:
        return None
    found = _shape_span(old_text, new_text, p, end_old, end_new) or _word_span(
        old_text, new_text, p, end_old, end_new
    )
    if found is None:
        return None
    a, b_old, b_new, body = found
    if max(b_old - a, b_new - a) > MAX_SPAN + 16:
        return None
    regex = _left_anchor(old_text, a) + f"(?:{body})" + _right_anchor(old_text, b_old)
    try:
        compiled = re.compile(regex)
    except re.error:
        return None
    if compiled.sub("0", old_text) != compiled.sub("0", new_text):
        return None
    return regex


def suggest_pattern_spec(old_text: str, new_text: str, scope: str = "system") -> str | None:
    """The same suggestion as a ready-to-paste stabilizer_patterns entry."""
    regex = suggest_pattern(old_text, new_text)
    return None if regex is None else f"[{scope}] {regex} => 0"


def _left_anchor(text: str, a: int) -> str:
    start = max(0, a - MAX_LEFT)
    window = text[start:a]
    cut = max(window.rfind(" "), window.rfind("\n"), window.rfind("\t"))
    left = window[cut + 1 :] if cut >= 0 else window
    if not left:
        return "(?m)^" if a == 0 or text[a - 1] == "\n" else r"(?<=\s)"
    return f"(?<={re.escape(left)})"


def _right_anchor(text: str, b: int) -> str:
    window = text[b : b + MAX_RIGHT]
    stop = len(window)
    for sep in (" ", "\n", "\t"):
        at = window.find(sep)
        if at >= 0:
            stop = min(stop, at)
    right = window[:stop]
    if not right:
        return r"(?=\s|$)"
    return f"(?={re.escape(right)})"

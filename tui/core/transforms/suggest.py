"""Propose a stabilizer regex from two versions of a block that differ only in a few short volatile spans."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

MAX_MIDDLE = 2_000
MAX_SPAN = 64
MAX_SPANS = 4
MAX_LEFT = 24
MAX_RIGHT = 16

# Known volatile shapes, tried before the generic character-class guess.
_SHAPE_SOURCES: tuple[str, ...] = (
    r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}",
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?",
    r"\d{4}-\d{2}-\d{2}",
    r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?",
)
_SHAPES = tuple((re.compile(source), source) for source in _SHAPE_SOURCES)


@dataclass(frozen=True)
class _Span:
    """One differing region: [old_start, old_end) in the old text, [new_start, new_end) in the new one."""

    old_start: int
    old_end: int
    new_start: int
    new_end: int


def _common_affixes(old: str, new: str) -> tuple[int, int]:
    limit = min(len(old), len(new))
    p = 0
    while p < limit and old[p] == new[p]:
        p += 1
    s = 0
    while s < limit - p and old[-1 - s] == new[-1 - s]:
        s += 1
    return p, s


def _diff_spans(old: str, new: str) -> list[_Span] | None:
    p, s = _common_affixes(old, new)
    a, b = old[p : len(old) - s], new[p : len(new) - s]
    if len(a) > MAX_MIDDLE or len(b) > MAX_MIDDLE:
        return None
    ops = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    return [_Span(p + i1, p + i2, p + j1, p + j2) for tag, i1, i2, j1, j2 in ops if tag != "equal"]


def _word(c: str) -> bool:
    return c.isascii() and c.isalnum()


def _widen(old: str, new: str, span: _Span) -> _Span:
    """Grow a span to whole alphanumeric words, over characters both texts share."""
    os_, oe, ns, ne = span.old_start, span.old_end, span.new_start, span.new_end
    while os_ > 0 and ns > 0 and _word(old[os_ - 1]) and old[os_ - 1] == new[ns - 1]:
        os_, ns = os_ - 1, ns - 1
    while oe < len(old) and ne < len(new) and _word(old[oe]) and old[oe] == new[ne]:
        oe, ne = oe + 1, ne + 1
    return _Span(os_, oe, ns, ne)


def _shape_for(old: str, new: str, span: _Span) -> tuple[_Span, str] | None:
    for shape, source in _SHAPES:
        for m_old in shape.finditer(old, max(0, span.old_start - 40), min(len(old), span.old_end + 40)):
            if not (m_old.start() <= span.old_start and m_old.end() >= span.old_end):
                continue
            shift = span.new_start - span.old_start
            m_new = shape.match(new, m_old.start() + shift)
            if m_new and m_new.end() >= span.new_end:
                return _Span(m_old.start(), m_old.end(), m_new.start(), m_new.end()), source
    return None


def _class_for(old_part: str, new_part: str) -> str | None:
    chars = set(old_part + new_part)
    if not chars:
        return None
    if chars <= set("0123456789"):
        return r"\d+"
    if chars <= set("0123456789abcdef"):
        return "[0-9a-f]+"
    if chars <= set("0123456789ABCDEF"):
        return "[0-9A-F]+"
    if all(_word(c) for c in chars):
        return "[0-9A-Za-z]+"
    if not any(c.isspace() for c in chars) and not chars & set(";,\"'"):
        return r"[^\s;,\"']+"
    return None


def _context_length(pairs: list[tuple[str, str]], limit: int) -> int:
    """How many shared context characters to keep: stop at a line break, or at a blank once 3 are kept."""
    kept = 0
    solid = 0
    for old_c, new_c in pairs[:limit]:
        if old_c != new_c or old_c == "\n" or (old_c.isspace() and solid >= 3):
            break
        kept += 1
        solid += not old_c.isspace()
    return kept


def _escape(text: str) -> str:
    return re.escape(text).replace("\\ ", " ")


def _left_anchor(old: str, new: str, span: _Span) -> str:
    old_before = old[max(0, span.old_start - MAX_LEFT) : span.old_start]
    new_before = new[max(0, span.new_start - MAX_LEFT) : span.new_start]
    before = list(zip(reversed(old_before), reversed(new_before), strict=False))
    k = _context_length(before, MAX_LEFT)
    if k:
        return f"(?<={_escape(old[span.old_start - k : span.old_start])})"
    return "(?<![^\\s])"


def _right_anchor(old: str, new: str, span: _Span) -> str:
    old_after = old[span.old_end : span.old_end + MAX_RIGHT]
    after = list(zip(old_after, new[span.new_end : span.new_end + MAX_RIGHT], strict=False))
    k = _context_length(after, MAX_RIGHT)
    if k:
        return f"(?={_escape(old[span.old_end : span.old_end + k])})"
    return "(?![^\\s])"


def _merge_within_words(old: str, spans: list[_Span]) -> list[_Span]:
    """Join differing spans separated only by letters or digits: they are one volatile word."""
    out: list[_Span] = []
    for span in spans:
        if out and all(_word(c) for c in old[out[-1].old_end : span.old_start]):
            last = out[-1]
            out[-1] = _Span(last.old_start, span.old_end, last.new_start, span.new_end)
        else:
            out.append(span)
    return out


def _piece(old: str, new: str, raw: _Span) -> tuple[str, _Span] | None:
    found = _shape_for(old, new, raw)
    if found is None:
        span = _widen(old, new, raw)
        body = _class_for(old[span.old_start : span.old_end], new[span.new_start : span.new_end])
        if body is None:
            return None
    else:
        span, body = found
    if max(span.old_end - span.old_start, span.new_end - span.new_start) > MAX_SPAN:
        return None
    return _left_anchor(old, new, span) + f"(?:{body})" + _right_anchor(old, new, span), span


def suggest_pattern(old_text: str, new_text: str) -> str | None:
    """A regex matching the few short spans where two texts differ (with literal context), or None."""
    if old_text == new_text:
        return None
    spans = _diff_spans(old_text, new_text)
    if not spans or len(spans) > MAX_SPANS * 3:
        return None
    pieces: list[str] = []
    covered = 0
    for span in _merge_within_words(old_text, spans):
        if span.old_start < covered:
            continue  # inside a shape already matched (a timestamp or UUID changing in several places)
        found = _piece(old_text, new_text, span)
        if found is None:
            return None
        piece, covered_span = found
        covered = covered_span.old_end
        if piece not in pieces:
            pieces.append(piece)
    if len(pieces) > MAX_SPANS:
        return None
    regex = "|".join(pieces)
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

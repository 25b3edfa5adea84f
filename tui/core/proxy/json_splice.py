"""Rebuild a rewritten JSON body from the client's bytes: only the values that changed are re-serialised."""

from __future__ import annotations

import re
from json import JSONDecoder, decoder, scanner
from typing import Any

import orjson

_WS = re.compile(r"[ \t\n\r]*")
_UNKNOWN: Any = object()
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
# The C scanner of the standard library: the end offset of a value at a given offset, at C speed.
_scan_value: Any = scanner.make_scanner(JSONDecoder())  # type: ignore[arg-type]  # typeshed names it oddly
_scan_string: Any = decoder.scanstring  # type: ignore[attr-defined]  # public in the module, not in typeshed


class SpanLocator:
    """Byte spans of the children of a JSON container, found on demand (only where a rewrite descends)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def skip_ws(self, at: int) -> int:
        """The first offset at or after `at` that is not JSON whitespace."""
        match = _WS.match(self.text, at)
        return match.end() if match else at

    def value_end(self, start: int, parsed: Any = _UNKNOWN) -> int:
        """The offset just past the value that starts at `start` (`parsed`: what it is known to parse to)."""
        if isinstance(parsed, dict | list | str):
            # Most clients (Claude Code among them) write compact JSON just as orjson does: then the end
            # is found by one comparison instead of a scan. Self-delimiting values only (not "1.50").
            try:
                compact = orjson.dumps(parsed).decode("utf-8")
            except (TypeError, orjson.JSONEncodeError):
                compact = ""
            if compact and self.text.startswith(compact, start):
                return start + len(compact)
        try:
            _, end = _scan_value(self.text, start)
        except RecursionError:  # nested deeper than the C scanner goes: count brackets instead
            return self._container_end(start)
        return int(end)

    def _container_end(self, start: int) -> int:
        depth = 0
        for token in _STRING_OR_BRACKET.finditer(self.text, start):
            kind = token.group()[0]
            if kind in "[{":
                depth += 1
            elif kind in "]}":
                depth -= 1
                if depth == 0:
                    return token.end()
        raise ValueError(f"unterminated container at {start}")

    def members(self, start: int, parsed: dict[str, Any] | None = None) -> list[tuple[str, int, int, int]]:
        """(key, key start, value start, value end) of the object at `start`, duplicates too."""
        text = self.text
        out: list[tuple[str, int, int, int]] = []
        at = self.skip_ws(start + 1)
        if text[at] == "}":
            return out
        while True:
            key_start = at
            key, at = _scan_string(text, at + 1)
            at = self.skip_ws(at)
            if text[at] != ":":
                raise ValueError(f"expected ':' at {at}")
            value_start = self.skip_ws(at + 1)
            value_end = self.value_end(value_start, parsed.get(key, _UNKNOWN) if parsed else _UNKNOWN)
            out.append((key, key_start, value_start, value_end))
            at = self.skip_ws(value_end)
            if text[at] == "}":
                return out
            if text[at] != ",":
                raise ValueError(f"expected ',' or '}}' at {at}")
            at = self.skip_ws(at + 1)

    def elements(self, start: int, parsed: list[Any] | None = None) -> list[tuple[int, int]]:
        """(value start, value end) of each element of the array at `start`."""
        text = self.text
        out: list[tuple[int, int]] = []
        at = self.skip_ws(start + 1)
        if text[at] == "]":
            return out
        while True:
            hint = parsed[len(out)] if parsed is not None and len(out) < len(parsed) else _UNKNOWN
            end = self.value_end(at, hint)
            out.append((at, end))
            at = self.skip_ws(end)
            if text[at] == "]":
                return out
            if text[at] != ",":
                raise ValueError(f"expected ',' or ']' at {at}")
            at = self.skip_ws(at + 1)


def splice_body(raw: bytes, old: Any, new: Any) -> bytes:
    """`raw` (which parses to `old`) changed to parse to `new`, keeping every byte of the parts not changed.

    Unchanged parts are found by identity (the transforms share untouched subtrees with their input);
    a changed string, a new value or an element of a replaced run is written as compact JSON; removed
    members and elements take one neighbouring separator with them.
    """
    if new is old:
        return raw
    text = raw.decode("utf-8")
    locator = SpanLocator(text)
    start = locator.skip_ws(0)
    end = locator.value_end(start)
    pieces: list[str] = [text[:start]]
    _render(locator, start, end, old, new, pieces)
    pieces.append(text[end:])
    return "".join(pieces).encode("utf-8")


def _dump(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


def _render(locator: SpanLocator, start: int, end: int, old: Any, new: Any, out: list[str]) -> None:
    text = locator.text
    if new is old or (type(new) is type(old) and not isinstance(new, dict | list) and new == old):
        out.append(text[start:end])
    elif isinstance(new, dict) and isinstance(old, dict) and text[start] == "{":
        _render_object(locator, start, end, old, new, out)
    elif isinstance(new, list) and isinstance(old, list) and text[start] == "[":
        _render_array(locator, start, end, old, new, out)
    else:
        out.append(_dump(new))


def _join(
    locator: SpanLocator,
    start: int,
    end: int,
    spans: list[tuple[int, int]],
    items: list[tuple[int | None, str]],
    out: list[str],
) -> None:
    """Write a container: `items` are (raw child index or None for a new child, rendered text)."""
    text = locator.text
    if not spans:
        out.append(text[start])
        out.append(",".join(rendered for _, rendered in items))
        out.append(text[locator.skip_ws(start + 1) : end])
        return
    default_sep = text[spans[0][1] : spans[1][0]] if len(spans) > 1 else ","
    out.append(text[start : spans[0][0]])
    for n, (index, rendered) in enumerate(items):
        if n:
            if index is not None and index > 0:
                out.append(text[spans[index - 1][1] : spans[index][0]])
            else:
                out.append(default_sep)
        out.append(rendered)
    out.append(text[spans[-1][1] : end])


def _render_object(
    locator: SpanLocator, start: int, end: int, old: dict[str, Any], new: dict[str, Any], out: list[str]
) -> None:
    text = locator.text
    members = locator.members(start, old)
    last = {key: i for i, (key, _, _, _) in enumerate(members)}  # duplicate keys: the last one counts
    spans = [(key_start, value_end) for _, key_start, _, value_end in members]
    items: list[tuple[int | None, str]] = []
    for i, (key, key_start, value_start, value_end) in enumerate(members):
        if key not in new:
            continue  # removed, with any earlier duplicate of it
        if last[key] != i or key not in old:
            items.append((i, text[key_start:value_end]))  # an earlier duplicate: left as it was
        else:
            piece: list[str] = [text[key_start:value_start]]
            _render(locator, value_start, value_end, old[key], new[key], piece)
            items.append((i, "".join(piece)))
    for key, value in new.items():
        if key not in last:
            items.append((None, _dump(key) + ":" + _dump(value)))
    _join(locator, start, end, spans, items, out)


def _derived(new: Any, old: Any) -> bool:
    """Whether `new` is a changed copy of `old` (it shares an unchanged subtree or string with it)."""
    if isinstance(new, dict) and isinstance(old, dict):
        return any(_shared(v, old.get(k)) for k, v in new.items())
    if isinstance(new, list) and isinstance(old, list):
        return any(_shared(a, b) for a, b in zip(new, old, strict=False))
    return False


def _shared(a: Any, b: Any) -> bool:
    return a is b and (isinstance(a, dict | list) or (isinstance(a, str) and len(a) > 1))


def _render_array(
    locator: SpanLocator, start: int, end: int, old: list[Any], new: list[Any], out: list[str]
) -> None:
    text = locator.text
    spans = locator.elements(start, old)
    if len(spans) != len(old):
        out.append(_dump(new))
        return
    # Anchors: new elements that are old containers, unchanged (the identity of a scalar means nothing).
    where = {id(v): i for i, v in enumerate(old) if isinstance(v, dict | list)}
    anchors = [(j, where.get(id(v), -1)) for j, v in enumerate(new)]
    items: list[tuple[int | None, str]] = []
    prev_old = -1
    prev_new = -1
    for j, i in [*[(j, i) for j, i in anchors if i >= 0], (len(new), len(old))]:
        if i <= prev_old:  # reordered: not a shape any rewrite produces; write the array anew
            out.append(_dump(new))
            return
        _render_gap(locator, spans, old, new, prev_old + 1, i, prev_new + 1, j, items)
        if i < len(old):
            items.append((i, text[spans[i][0] : spans[i][1]]))
        prev_old, prev_new = i, j
    _join(locator, start, end, spans, items, out)


def _render_gap(
    locator: SpanLocator,
    spans: list[tuple[int, int]],
    old: list[Any],
    new: list[Any],
    old_lo: int,
    old_hi: int,
    new_lo: int,
    new_hi: int,
    items: list[tuple[int | None, str]],
) -> None:
    """Pair the unanchored elements between two anchors: copies with their originals, the rest written."""
    tail: list[tuple[int | None, str]] = []
    equal = old_hi - old_lo == new_hi - new_lo
    while old_lo < old_hi and new_lo < new_hi and (equal or _derived(new[new_lo], old[old_lo])):
        items.append((old_lo, _element(locator, spans[old_lo], old[old_lo], new[new_lo])))
        old_lo, new_lo = old_lo + 1, new_lo + 1
    while old_lo < old_hi and new_lo < new_hi and _derived(new[new_hi - 1], old[old_hi - 1]):
        old_hi, new_hi = old_hi - 1, new_hi - 1
        tail.append((old_hi, _element(locator, spans[old_hi], old[old_hi], new[new_hi])))
    items.extend((None, _dump(value)) for value in new[new_lo:new_hi])
    items.extend(reversed(tail))


def _element(locator: SpanLocator, span: tuple[int, int], old: Any, new: Any) -> str:
    piece: list[str] = []
    _render(locator, span[0], span[1], old, new, piece)
    return "".join(piece)

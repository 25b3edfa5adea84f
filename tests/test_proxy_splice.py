"""Splicing a rewrite into the client's bytes: untouched bytes stay identical, the result parses right."""

from __future__ import annotations

import json
import random
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tui.core.proxy.json_splice import splice_body
from tui.core.transforms.body_slots import Path, replace_texts

Spans = dict[Path, tuple[int, int]]

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner, max_size=5),
    max_leaves=30,
)
_bodies = st.dictionaries(st.text(max_size=6), _values, min_size=1, max_size=6)


def _ws(rng: random.Random) -> str:
    return rng.choice(["", "", " ", "\n  ", "\t", " \r\n "])


def _string(text: str, rng: random.Random) -> str:
    """A JSON string written the way some client might: escapes chosen at random."""
    out = ['"']
    for ch in text:
        roll = rng.random()
        if ch in '"\\' or ord(ch) < 0x20:
            out.append(json.dumps(ch)[1:-1])
        elif roll < 0.2 and ord(ch) < 0x10000 and not 0xD800 <= ord(ch) < 0xE000:
            out.append(f"\\u{ord(ch):04x}")
        elif ch == "/" and roll < 0.6:
            out.append("\\/")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _number(value: int | float, rng: random.Random) -> str:
    if isinstance(value, int):
        return str(value)
    text = repr(value)
    if "e" not in text and "." in text and rng.random() < 0.5:
        text += "0"  # 0.70 rather than 0.7
    return text


def emit(value: Any, path: Path, rng: random.Random, spans: Spans, out: list[str]) -> None:
    """Write `value` as JSON with random whitespace and escapes, recording where each value lies."""
    start = sum(len(p) for p in out)
    if isinstance(value, dict):
        out.append("{" + _ws(rng))
        for n, (key, item) in enumerate(value.items()):
            if n:
                out.append(_ws(rng) + "," + _ws(rng))
            out.append(_string(key, rng) + _ws(rng) + ":" + _ws(rng))
            emit(item, (*path, key), rng, spans, out)
        out.append(_ws(rng) + "}")
    elif isinstance(value, list):
        out.append("[" + _ws(rng))
        for n, item in enumerate(value):
            if n:
                out.append(_ws(rng) + "," + _ws(rng))
            emit(item, (*path, n), rng, spans, out)
        out.append(_ws(rng) + "]")
    elif isinstance(value, str):
        out.append(_string(value, rng))
    elif value is None or isinstance(value, bool):
        out.append(json.dumps(value))
    else:
        out.append(_number(value, rng))
    spans[path] = (start, sum(len(p) for p in out))


def string_paths(value: Any, path: Path = ()) -> list[Path]:
    """Paths of every string value (not key) in a tree."""
    if isinstance(value, str):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in string_paths(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in string_paths(v, (*path, i))]
    return []


@settings(max_examples=300, deadline=None)
@given(_bodies, st.randoms(use_true_random=False), st.data())
def test_only_the_replaced_strings_change(
    body: dict[str, Any], rng: random.Random, data: st.DataObject
) -> None:
    spans: Spans = {}
    pieces: list[str] = [_ws(rng)]
    emit(body, (), rng, spans, pieces)
    text = "".join(pieces) + _ws(rng)
    raw = text.encode()
    parsed = orjson.loads(raw)
    paths = string_paths(parsed)
    chosen = data.draw(st.lists(st.sampled_from(paths), unique=True, max_size=4)) if paths else []
    replacements = {p: data.draw(st.text(max_size=8)) + '\u00e9"x' for p in chosen}
    new = replace_texts(parsed, replacements)

    out = splice_body(raw, parsed, new)

    assert orjson.loads(out) == new
    expected = text
    for path in sorted(chosen, key=lambda p: spans[p][0], reverse=True):
        start, end = spans[path]
        expected = expected[:start] + orjson.dumps(replacements[path]).decode() + expected[end:]
    assert out == expected.encode()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.dictionaries(st.text(max_size=4), _scalars, min_size=1, max_size=3), min_size=1, max_size=8),
    st.randoms(use_true_random=False),
    st.data(),
)
def test_removed_elements_leave_the_others_as_they_were(
    tools: list[dict[str, Any]], rng: random.Random, data: st.DataObject
) -> None:
    spans: Spans = {}
    pieces: list[str] = []
    emit({"tools": tools, "model": "m"}, (), rng, spans, pieces)
    raw = "".join(pieces).encode()
    parsed = orjson.loads(raw)
    keep = data.draw(st.lists(st.booleans(), min_size=len(tools), max_size=len(tools)))
    new = {**parsed, "tools": [t for t, k in zip(parsed["tools"], keep, strict=True) if k]}

    out = splice_body(raw, parsed, new)

    assert orjson.loads(out) == new
    text = raw.decode()
    kept = [text[slice(*spans[("tools", i)])] for i, k in enumerate(keep) if k]
    at = 0
    for piece in kept:  # every kept element's bytes, in order, verbatim
        found = out.decode().find(piece, at)
        assert found >= 0
        at = found + len(piece)
    start, end = spans[("tools",)]
    assert out.startswith(text[:start].encode()) and out.endswith(text[end:].encode())


def test_numbers_escapes_duplicates_and_whitespace_survive_a_rewrite() -> None:
    raw = (
        b'{ "temperature" : 0.70, "seed": 123456789012345678901234567890,\n'
        b'  "name": "caf\\u00e9", "name": "dup wins",\n'
        b'  "messages": [ {"role":"user", "content": "old text"} ,\n   {"role":"user","content":"keep"} ] }\n'
    )
    parsed = orjson.loads(raw)
    new = replace_texts(parsed, {("messages", 0, "content"): "new text"})
    out = splice_body(raw, parsed, new)
    assert out == raw.replace(b'"old text"', b'"new text"')


def test_a_replaced_run_of_elements_keeps_the_rest() -> None:
    # Compaction: the first messages replaced by a summary; later ones and a changed copy kept in place.
    raw = b'{"messages": [ {"a": "1"}, {"a": "2"}, {"a": "3", "b": "x y"}, {"a": "4"} ],"z":0.50}'
    parsed = orjson.loads(raw)
    changed = {**parsed["messages"][2], "a": "three"}
    new = {**parsed, "messages": [{"summary": "s"}, changed, parsed["messages"][3]]}
    out = splice_body(raw, parsed, new)
    assert orjson.loads(out) == new
    assert out == b'{"messages": [ {"summary":"s"}, {"a": "three", "b": "x y"}, {"a": "4"} ],"z":0.50}'


def test_removing_every_element_or_a_member() -> None:
    raw = b'{"tools": [ {"n": 1}, {"n": 2} ], "tool_choice": {"type": "tool"} , "x": 1.0}'
    parsed = orjson.loads(raw)
    new = {k: v for k, v in parsed.items() if k not in ("tools", "tool_choice")}
    assert splice_body(raw, parsed, new) == b'{"x": 1.0}'
    emptied = {**parsed, "tools": []}
    assert splice_body(raw, parsed, emptied) == b'{"tools": [  ], "tool_choice": {"type": "tool"} , "x": 1.0}'


def test_a_removed_key_takes_its_earlier_duplicates_along() -> None:
    raw = b'{"tools": [1], "model": "m", "tools": [2]}'
    parsed = orjson.loads(raw)
    assert splice_body(raw, parsed, {"model": "m"}) == b'{"model": "m"}'


def test_values_nested_deeper_than_the_scanner_goes_are_skipped_by_their_brackets() -> None:
    raw = b'{"a": ' + b"[" * 1000 + b'"s]\\"["' + b"]" * 1000 + b', "b": "x"}'
    parsed = orjson.loads(raw)
    assert splice_body(raw, parsed, {**parsed, "b": "y"}) == raw.replace(b'"x"', b'"y"')

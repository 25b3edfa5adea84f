"""Reading only a body's top-level `system` (simdjson): what it returns, and when it declines."""

from __future__ import annotations

import json

from tui.core.proxy.system_view import REUSED_PARSER_MAX_BYTES, SystemReader, SystemView


def test_the_system_prompt_is_built_and_the_rest_only_validated() -> None:
    reader = SystemReader()
    blocks = [{"type": "text", "text": "x-anthropic-billing-header: cch=1;"}, {"type": "text", "text": "hi"}]
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "é"}], "system": blocks})
    assert reader.read(body.encode()) == SystemView(True, blocks)
    assert reader.read(b'{"system": "plain"}') == SystemView(True, "plain")
    assert reader.read(b'{"messages": []}') == SystemView(False)
    assert reader.read(b'{"messages": []}').as_body() == {}  # type: ignore[union-attr]


def test_bodies_it_cannot_vouch_for_are_declined_and_the_reader_keeps_working() -> None:
    reader = SystemReader()
    for body in (
        b"[1, 2]",  # not an object
        b'"system"',
        b'{"system": "a", "system": "b"}',  # duplicate keys: parsers disagree on which counts
        b'{"system": "a", "m": [1,]}',  # invalid JSON
        b'{"system": "a", "m": "\xff"}',  # invalid UTF-8
        b'{"system": "a", "m": 123456789012345678901234567890}',  # past 64 bits
        b'{"system": "a"} trailing',
    ):
        assert reader.read(body) is None, body
        assert reader.read(b'{"system": "ok"}') == SystemView(True, "ok")


def test_a_body_over_the_reuse_limit_gets_a_parser_of_its_own() -> None:
    reader = SystemReader()
    kept = reader._parser
    content = "y" * 1000
    big = json.dumps({"system": "s", "messages": [{"role": "user", "content": content}] * 5000}).encode()
    assert len(big) > REUSED_PARSER_MAX_BYTES
    assert reader.read(big) == SystemView(True, "s")
    assert reader._parser is kept and reader.read(b'{"system": "next"}') == SystemView(True, "next")

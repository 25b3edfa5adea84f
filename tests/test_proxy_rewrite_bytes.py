"""The raw-bytes billing stabilizer gives the same request as parsing and running the stabilizer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from builders import cc_request
from support.rewriters import make_rewriter

from tui.core.actions.compaction import CompactionStore
from tui.core.actions.compaction_summary import finish_compaction, plan_compaction
from tui.core.actions.mcp_switch import McpSwitchStore
from tui.core.analysis.savings import savings_for
from tui.core.control import recent
from tui.core.control.transform_state import TransformSwitchStore
from tui.core.proxy.rewrite import RequestRewriter
from tui.core.records import TransformSaving
from tui.core.tokens import TiktokenCounter
from tui.core.transforms.pipeline import TransformPipeline, measure_savings
from tui.core.transforms.settings import TransformSettings


def hook(tmp_path: Path, settings: TransformSettings) -> RequestRewriter:
    return make_rewriter(
        settings,
        (),
        McpSwitchStore(tmp_path / "m.json"),
        TransformSwitchStore(settings.enabled, tmp_path / "t.json"),
    )


def slow(body: dict[str, Any], settings: TransformSettings) -> dict[str, Any]:
    out, _ = TransformPipeline(settings).run(body, "anthropic", ("stabilize",))
    return out


BILLING = "x-anthropic-billing-header: cc_version=2.1.197.9e1; cc_entrypoint=cli; cch=a1b2c;"
STABLE_LINE = "x-anthropic-billing-header: cc_version=2.1.197; cc_entrypoint=cli; cch=00000;"
CASES = {
    "claude-code": cc_request(billing=BILLING),
    "system-string-with-newline": {
        "model": "m",
        "system": BILLING + "\nYou are a helpful agent.",
        "messages": [{"role": "user", "content": "hi"}],
    },
    "header-after-a-newline": {
        "model": "m",
        "system": "intro\n" + BILLING,
        "messages": [{"role": "user", "content": "hi"}],
    },
    "only-cch": {
        "model": "m",
        "system": [{"type": "text", "text": "x-anthropic-billing-header: cch=zz9;"}],
        "messages": [{"role": "user", "content": "hi"}],
    },
    "no-match-mid-line": {
        "model": "m",
        "system": "see x-anthropic-billing-header: cch=zz9;",
        "messages": [{"role": "user", "content": "x"}],
    },
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("builtins", [["cc_billing_version", "cc_billing_cch"], ["cc_billing_cch"]])
def test_bytes_path_equals_parsed_path(tmp_path: Path, name: str, builtins: list[str]) -> None:
    settings = TransformSettings(enabled=["stabilize"], stabilizer_builtins=builtins)
    body = CASES[name]
    raw = orjson.dumps(body)
    out, note = hook(tmp_path, settings).process("POST", "/v1/messages?beta=true", {}, raw)
    expected = slow(body, settings)
    assert orjson.loads(out) == expected
    assert note is not None and note.transforms == ("stabilize",)
    if expected == body:
        assert out is raw and note.changed == ()
    else:
        assert note.changed == ("stabilize",) and note.edits
        # What the bytes path notes measures the same savings as the parsed path's full count.
        counter = TiktokenCounter()
        _, (measured,) = measure_savings(body, "anthropic", counter, ["stabilize"], settings)
        savings = savings_for(note, counter, orjson.loads(out))
        assert savings is not None and savings.transforms == (
            TransformSaving("stabilize", measured.tokens_before, measured.tokens_after),
        )


def test_a_second_copy_of_the_line_outside_system_is_left_alone(tmp_path: Path) -> None:
    settings = TransformSettings()
    body = cc_request(billing=BILLING)
    body["messages"][0]["content"][-1]["text"] = BILLING  # pasted by the user: not the system prompt
    raw = orjson.dumps(body)
    out, _ = hook(tmp_path, settings).process("POST", "/v1/messages", {}, raw)
    forwarded = orjson.loads(out)
    assert forwarded == slow(body, settings)
    assert forwarded["messages"][0]["content"][-1]["text"] == BILLING
    assert "cch=00000" in forwarded["system"][0]["text"]


# ---------------------------------------------------------------- bytes outside the rewrite stay the client's

# Members a re-serialisation would change: a trailing zero, a 30-digit integer, a duplicate key.
ODD_MEMBERS = '{"temperature": 0.70, "seed": 123456789012345678901234567890, "dup": 1, "dup": 2,\n'
ODD_KEYS = ("temperature", "seed", "dup")


def hostile(body: dict[str, Any]) -> bytes:
    """How some other client writes JSON: indented, every non-ASCII character escaped, odd members first."""
    text = json.dumps(body, indent=1, ensure_ascii=True)
    return (ODD_MEMBERS + text[1:]).encode()


def without_odd(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ODD_KEYS}


def accented_request() -> dict[str, Any]:
    body = cc_request(billing=BILLING)
    body["messages"][0]["content"][-1]["text"] = "répare le test, s'il te plaît"
    return body


PLACES = {
    "user-message": lambda b: b["messages"][0]["content"][-1].update(text=BILLING),
    "tool-result": lambda b: b["messages"][2]["content"][0].update(content=BILLING),
    "tool-input": lambda b: b["messages"][1]["content"][-1]["input"].update(command=BILLING),
    "tool-description": lambda b: b["tools"][0].update(description=BILLING),
}


@pytest.mark.parametrize("place", list(PLACES))
def test_billing_line_outside_the_system_prompt_is_never_rewritten(tmp_path: Path, place: str) -> None:
    body = cc_request(billing="You are an agent.")
    PLACES[place](body)
    raw = orjson.dumps(body)
    assert raw.count(b"x-anthropic-billing-header") == 1
    out, note = hook(tmp_path, TransformSettings()).process("POST", "/v1/messages", {}, raw)
    assert out is raw
    assert note is not None and note.changed == ()


def test_billing_line_in_a_tool_result_only_is_left_alone_and_system_copy_is_rewritten(
    tmp_path: Path,
) -> None:
    body = cc_request(billing=BILLING)
    body["messages"][1]["content"].append({"type": "text", "text": BILLING})
    raw = hostile(body)
    out, note = hook(tmp_path, TransformSettings()).process("POST", "/v1/messages", {}, raw)
    new_line = BILLING.replace("2.1.197.9e1", "2.1.197").replace("cch=a1b2c", "cch=00000")
    assert out == raw.replace(BILLING.encode(), new_line.encode(), 1)
    assert out.count(BILLING.encode()) == 1
    assert note is not None and note.changed == ("stabilize",)


def test_a_parsed_rewrite_keeps_every_other_byte(tmp_path: Path) -> None:
    # Marker twice (system and a user message): the parsed path runs and splices.
    body = accented_request()
    body["messages"][0]["content"].append({"type": "text", "text": BILLING})
    raw = hostile(body)
    settings = TransformSettings()
    out, note = hook(tmp_path, settings).process("POST", "/v1/messages", {}, raw)
    expected = slow(orjson.loads(raw), settings)
    assert orjson.loads(out) == expected
    assert out == hostile(without_odd(expected))
    assert b"r\\u00e9pare" in out and note is not None and note.changed == ("stabilize",)


def test_mcp_switched_off_removes_only_its_tool_elements(tmp_path: Path) -> None:
    body = accented_request()
    raw = hostile(body)
    mcp = McpSwitchStore(tmp_path / "m.json")
    mcp.set_enabled("memory", False)
    settings = TransformSettings()
    rewriter = make_rewriter(
        settings, ("filesystem", "memory"), mcp, TransformSwitchStore(settings.enabled, tmp_path / "t.json")
    )
    out, note = rewriter.process("POST", "/v1/messages", {}, raw)
    assert note is not None and [t["name"] for t in note.mcp_removed] == [
        "mcp__memory__create_entities",
        "mcp__memory__read_graph",
    ]
    kept = [t for t in body["tools"] if not t["name"].startswith("mcp__memory__")]
    expected = slow({**body, "tools": kept}, settings)
    assert out == hostile(expected)


def test_another_transform_rewrites_only_its_strings(tmp_path: Path) -> None:
    body = accented_request()
    for tool in body["tools"][:3]:
        tool["description"] = "First paragraph.\n\n" + "more words " * 60
    raw = hostile(body)
    settings = TransformSettings(enabled=["stabilize", "trim_descriptions"])
    out, note = hook(tmp_path, settings).process("POST", "/v1/messages", {}, raw)
    assert note is not None and note.changed == ("stabilize", "trim_descriptions")
    expected = without_odd(TransformPipeline(settings).run(orjson.loads(raw), "anthropic")[0])
    assert out == hostile(expected)


def test_bodies_kept_for_compaction_are_capped_in_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recent, "RECENT_BYTES", 2_500_000)
    settings = TransformSettings()
    rewriter = make_rewriter(
        settings,
        (),
        McpSwitchStore(tmp_path / "m.json"),
        TransformSwitchStore(settings.enabled, tmp_path / "t.json"),
        CompactionStore(tmp_path / "c.json"),
    )
    bodies = [orjson.dumps(cc_request(billing=f"turn {i}", prompt_words=160_000)) for i in range(8)]
    assert all(1_000_000 < len(b) < 1_250_000 for b in bodies)
    for body in bodies:
        assert rewriter.process("POST", "/v1/messages", {}, body)[0] is body
        kept = rewriter.controls.recent
        assert kept.total_bytes == sum(len(b) for b, _, _ in kept.of("")) <= 2_500_000
    assert [b for b, _, _ in rewriter.controls.recent.of("")] == bodies[-2:]


def test_openai_billing_line_only_in_system_or_developer_messages(tmp_path: Path) -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "developer", "content": BILLING + "\nbe brief"},
            {"role": "user", "content": "why is it slow?"},
        ],
    }
    raw = hostile(body)
    out, note = hook(tmp_path, TransformSettings()).process("POST", "/v1/chat/completions", {}, raw)
    new_line = BILLING.replace("2.1.197.9e1", "2.1.197").replace("cch=a1b2c", "cch=00000")
    assert out == raw.replace(BILLING.encode(), new_line.encode())
    assert note is not None and note.changed == ("stabilize",)
    body["messages"] = [{"role": "user", "content": BILLING}]
    raw = hostile(body)
    out, _ = hook(tmp_path, TransformSettings()).process("POST", "/v1/chat/completions", {}, raw)
    assert out is raw


def test_compaction_replaces_only_the_compacted_messages(tmp_path: Path) -> None:
    body = accented_request()
    for n in range(4):
        body["messages"] += [
            {"role": "assistant", "content": [{"type": "text", "text": f"réponse {n}"}]},
            {"role": "user", "content": [{"type": "text", "text": f"tour {n}: et ça ?"}]},
        ]
    raw = hostile(body)
    parsed = orjson.loads(raw)
    plan = plan_compaction(without_odd(parsed), "anthropic", "s1", keep_turns=2)
    item = finish_compaction(plan, "Earlier: the user asked to fix a test; it was read and edited.")
    store = CompactionStore(tmp_path / "c.json")
    store.add(item)
    settings = TransformSettings()
    rewriter = make_rewriter(
        settings,
        (),
        McpSwitchStore(tmp_path / "m.json"),
        TransformSwitchStore(settings.enabled, tmp_path / "t.json"),
        store,
    )
    out, note = rewriter.process("POST", "/v1/messages", {}, raw)
    assert note is not None and note.compaction_saved == item.tokens_saved
    cut = len(item.prefix_hashes)
    expected = slow(
        {**without_odd(parsed), "messages": [*item.replacement, *parsed["messages"][cut:]]}, settings
    )
    assert orjson.loads(out) == {**parsed, **expected}
    # Everything outside the replaced run is the client's bytes: the head up to the first message and the
    # kept messages to the end.
    text = raw.decode()
    first_kept = json.dumps(parsed["messages"][cut], indent=1, ensure_ascii=True).replace("\n", "\n  ")
    tail = text[text.index(first_kept) :]
    head = text[: text.index('"messages": [') + len('"messages": [')]
    assert out.decode().startswith(head.replace(BILLING, STABLE_LINE)) and out.decode().endswith(tail)


def _with_members(raw: bytes, members: bytes) -> bytes:
    """The body with raw members put first (what a client with an odd JSON writer might send)."""
    assert raw.startswith(b"{")
    return b"{" + members + b"," + raw[1:]


def test_bodies_the_system_only_read_cannot_decide_get_the_full_parse_result(tmp_path: Path) -> None:
    """The bytes path builds only the system prompt (simdjson); where that could differ from the full
    parse (duplicate keys, numbers past 64 bits, bad UTF-8, the line in a system message inside
    `messages`), the request is what the full parse and the stabilizer make of it, or untouched."""
    settings = TransformSettings()
    rewriter = hook(tmp_path, settings)
    plain = orjson.dumps(cc_request(billing="You are an agent."))
    billed = orjson.dumps(cc_request(billing=BILLING))
    stable = STABLE_LINE.encode()
    cases = {
        # The last duplicate counts (orjson, llama-server): a line in the first one is not the system prompt.
        "first-duplicate": _with_members(plain, b'"system": "' + BILLING.encode() + b'"'),
        "last-duplicate": plain[:-1] + b', "system": "' + BILLING.encode() + b'"}',
        "bigint": _with_members(billed, b'"seed": 123456789012345678901234567890'),
        "bad-utf8": _with_members(billed, b'"note": "\xff"'),
    }
    in_messages = cc_request(billing="You are an agent.")
    in_messages["messages"].insert(0, {"role": "system", "content": BILLING})
    cases["system-message"] = orjson.dumps(in_messages)
    for name, raw in cases.items():
        assert raw.count(b"x-anthropic-billing-header") == 1, name
        out, _ = rewriter.process("POST", "/v1/messages", {}, raw)
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            assert out is raw, name  # not JSON to the full parse either: forwarded as sent
            continue
        expected = slow(parsed, settings)
        assert orjson.loads(out) == expected, name
        if expected == parsed:
            assert out is raw, name
        else:
            assert out == raw.replace(BILLING.encode(), stable), name
    assert rewriter.failures == 0


def test_claude_codes_request_is_stabilized_without_building_its_whole_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hot path reads only the system prompt of a Claude Code request (no full parse at all)."""
    raw = orjson.dumps(cc_request(billing=BILLING))
    loads = orjson.loads

    def no_full_parse(data: bytes | str) -> Any:
        assert len(data) < len(raw) // 2, "the whole body was parsed"
        return loads(data)

    monkeypatch.setattr(orjson, "loads", no_full_parse)
    out, note = hook(tmp_path, TransformSettings()).process("POST", "/v1/messages?beta=true", {}, raw)
    monkeypatch.undo()
    assert out == raw.replace(BILLING.encode(), STABLE_LINE.encode())
    assert note is not None and note.changed == ("stabilize",)

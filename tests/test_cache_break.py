"""Cache-break explanations: where a request first differs from the previous one of its conversation."""

from __future__ import annotations

from typing import Any

from builders import BILLING, anthropic_sse, cc_request, cc_tools, exchange, oc_request, openai_sse

from tui.core.anatomy.analyze import AnalysisResult, Analyzer
from tui.core.insight.findings import break_cause
from tui.core.records import CacheBreak
from tui.core.tokens import TiktokenCounter


def pair(prev: dict[str, Any], cur: dict[str, Any], path: str = "/v1/messages?beta=true",
         response: bytes = b"") -> tuple[AnalysisResult, CacheBreak | None]:  # fmt: skip
    a = Analyzer(TiktokenCounter(), ("filesystem", "memory"))
    first = a.analyze(exchange(prev, path))
    assert first.cache_break is None and first.kind == "main"
    second = a.analyze(exchange(cur, path, response=response))
    assert second.kind == "main"
    return first, second.cache_break


def prefix_tokens(result: AnalysisResult, upto_label: str) -> int:
    assert result.anatomy is not None
    total = 0
    for part in result.anatomy.parts:
        if part.label == upto_label:
            return total
        total += part.tokens
    raise AssertionError(upto_label)


def test_appending_turns_is_not_a_break() -> None:
    _, brk = pair(cc_request(turns=1), cc_request(turns=3))
    assert brk is None


def test_moving_cache_control_marker_is_not_a_break() -> None:
    prev = cc_request(turns=1)
    cur = cc_request(turns=2)
    assert "cache_control" in prev["messages"][-1]["content"][-1]
    assert "cache_control" not in cur["messages"][2]["content"][-1]
    assert pair(prev, cur)[1] is None


def test_billing_cc_version_change() -> None:
    cur = cc_request(turns=2, billing=BILLING.replace("2.1.197.a3f", "2.1.197.9e0"))
    first, brk = pair(cc_request(turns=1), cur, response=anthropic_sse(10, 0, 1))
    assert brk is not None
    assert brk.where == "system[0]"
    assert brk.description == "system[0] changed: cc_version hash"
    assert brk.reusable_prefix_tokens == 0
    assert brk.server_reused_tokens == 0


def test_cch_only_change_is_normalised_like_the_server() -> None:
    cur = cc_request(turns=2, billing=BILLING.replace("cch=1b2c3", "cch=99999"))
    assert pair(cc_request(turns=1), cur)[1] is None


def test_tool_list_change() -> None:
    tools = cc_tools()
    changed = [t for t in tools if t["name"] != "WaitForMcpServers"] + [dict(tools[0], name="NewTool")]
    first, brk = pair(cc_request(turns=1, tools=tools), cc_request(turns=2, tools=changed))
    assert brk is not None
    assert brk.description == "tool list changed: -WaitForMcpServers +NewTool"
    assert brk.where == "tools"
    assert brk.reusable_prefix_tokens == prefix_tokens(first, "tool WaitForMcpServers")


def test_tool_schema_change() -> None:
    tools = cc_tools()
    edited = [dict(t) for t in tools]
    edited[3] = dict(edited[3], description="changed description")
    first, brk = pair(cc_request(turns=1, tools=tools), cc_request(turns=2, tools=edited))
    assert brk is not None
    assert brk.where == "tools[3]"
    assert brk.description == f"tools[3] schema changed ({tools[3]['name']})"
    assert brk.reusable_prefix_tokens == prefix_tokens(first, f"tool {tools[3]['name']}")


def test_edited_message() -> None:
    prev = cc_request(turns=2)
    cur = cc_request(turns=3)
    cur["messages"][3]["content"][1]["text"] = "I rewrote this answer"
    first, brk = pair(prev, cur, response=anthropic_sse(100, 4321, 1))
    assert brk is not None
    assert brk.description == "message 3 edited" and brk.where == "messages[3]"
    assert brk.reusable_prefix_tokens == prefix_tokens(first, "messages[3] assistant text")
    assert brk.server_reused_tokens == 4321


def test_compaction_truncates_messages() -> None:
    prev = cc_request(turns=4)
    cur = cc_request(turns=0)
    cur["messages"] = [{"role": "user", "content": "Summary of the conversation so far: ..."}]
    _, brk = pair(prev, cur)
    assert brk is not None
    assert brk.description.startswith("messages truncated/compacted (9 -> 1 messages")
    assert brk.where == "messages[0]"


def test_dropping_trailing_messages_is_a_truncation() -> None:
    _, brk = pair(cc_request(turns=3), cc_request(turns=1))
    assert brk is not None and brk.description.startswith("messages truncated/compacted (7 -> 3")


def test_openai_system_prompt_change() -> None:
    prev = oc_request(turns=1)
    cur = oc_request(turns=2)
    cur["messages"][0]["content"] += " (edited)"
    a = Analyzer(TiktokenCounter())
    a.analyze(exchange(prev, "/v1/chat/completions"))
    # the changed system prompt gives a new hash session: nothing to compare against
    assert a.analyze(exchange(cur, "/v1/chat/completions")).cache_break is None
    # with an explicit session id the change is explained
    a = Analyzer(TiktokenCounter())
    headers = {"x-claude-code-session-id": "s1"}
    a.analyze(exchange(prev, "/v1/chat/completions", headers=headers))
    result = a.analyze(exchange(cur, "/v1/chat/completions", headers=headers, response=openai_sse(50, 0, 1)))
    assert result.cache_break is not None
    assert result.cache_break.description == "messages[0] system changed"
    assert result.cache_break.reusable_prefix_tokens == 0


def _with_server(a: Analyzer, body: dict[str, Any], prompt: int, cached: int) -> AnalysisResult:
    return a.analyze(exchange(body, response=anthropic_sse(prompt - cached, cached, 1)))


def test_reusable_prefix_counts_template_overhead_in_server_tokens() -> None:
    a = Analyzer(TiktokenCounter(), ("filesystem", "memory"))
    prev, cur = cc_request(turns=2), cc_request(turns=3)
    cur["messages"][3]["content"][1]["text"] = "I rewrote this answer"
    first = _with_server(a, prev, 9_000, 0)
    assert first.anatomy is not None
    parts = sum(p.tokens for p in first.anatomy.parts if p.category != "template_overhead")
    server = parts + parts // 10  # the chat template adds about 10% here
    second = _with_server(a, cur, server, 4_000)
    brk = second.cache_break
    assert brk is not None and brk.cause == "content"
    assert second.anatomy is not None
    cur_parts = sum(p.tokens for p in second.anatomy.parts if p.category != "template_overhead")
    upto = prefix_tokens(second, "messages[3] assistant text")
    before = [p.label for p in second.anatomy.parts].index("messages[3] assistant text")
    n_parts = sum(1 for p in second.anatomy.parts if p.category != "template_overhead")
    assert brk.reusable_prefix_tokens == upto + round((server - cur_parts) * before / n_parts)
    assert brk.reusable_prefix_tokens > upto


def test_unchanged_prefix_the_server_did_not_reuse_is_a_server_miss() -> None:
    a = Analyzer(TiktokenCounter(), ("filesystem", "memory"))
    _with_server(a, cc_request(turns=1), 8_071, 0)
    brk = _with_server(a, cc_request(turns=2), 8_400, 46).cache_break
    assert brk == CacheBreak(
        "server cache",
        "prefix unchanged, but the server reused 46 of 8,071 tokens: its cache of this conversation was lost"
        " (evicted, restarted or not kept)",
        8_071,
        46,
        cause="server",
    )
    assert CacheBreak.from_json(brk.to_json()) == brk
    assert break_cause(brk.description) == "server cache lost"
    # reusing the previous prompt is no break
    assert _with_server(a, cc_request(turns=3), 8_900, 8_390).cache_break is None

"""Proxy-mode compaction logic, both dialects: cut points, validity, prefix matching, undo, persistence."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tui.core.actions.compaction import (
    ACK_TEXT,
    CompactionError,
    CompactionStore,
    choose_cut,
    is_turn_start,
    message_text,
    validation_problems,
)
from tui.core.actions.compaction_service import CompactionService, conversation_key
from tui.core.actions.compaction_summary import finish_compaction, parse_summary, plan_compaction
from tui.core.actions.counting import ESTIMATE_NAME

FILLER = "def handler(request):\n    return respond(request.body)\n" * 40


def anthropic_body(turns: int) -> dict[str, Any]:
    """A Claude-Code-like body: each turn is user text, a tool call, its result and an answer."""
    messages: list[dict[str, Any]] = []
    for t in range(turns):
        messages.append({"role": "user", "content": [{"type": "text", "text": f"task {t}: fix the handler"}]})
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Reading the file."},
                    {
                        "type": "tool_use",
                        "id": f"toolu_{t}",
                        "name": "Read",
                        "input": {"file_path": f"/s{t}.py"},
                    },
                ],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": f"toolu_{t}", "content": FILLER}],
            }
        )
        messages.append({"role": "assistant", "content": [{"type": "text", "text": f"Fixed task {t}."}]})
    messages.append({"role": "user", "content": [{"type": "text", "text": "now run the tests"}]})
    return {
        "model": "m",
        "max_tokens": 64,
        "system": [{"type": "text", "text": "You are a coding agent."}],
        "tools": [{"name": "Read", "description": "read a file", "input_schema": {"type": "object"}}],
        "messages": messages,
    }


def openai_body(turns: int) -> dict[str, Any]:
    """An opencode-like body: system message, tool_calls and role=tool results."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a coding agent."}]
    for t in range(turns):
        messages.append({"role": "user", "content": f"task {t}: fix the handler"})
        messages.append(
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"id": f"call_{t}", "type": "function", "function": {"name": "read", "arguments": "{}"}}
                ],
            }
        )
        messages.append({"role": "tool", "tool_call_id": f"call_{t}", "content": FILLER})
        messages.append({"role": "assistant", "content": f"Fixed task {t}."})
    messages.append({"role": "user", "content": "now run the tests"})
    tools = [{"type": "function", "function": {"name": "read", "parameters": {"type": "object"}}}]
    return {"model": "m", "max_tokens": 64, "tools": tools, "messages": messages}


BODIES = {"anthropic": anthropic_body, "openai": openai_body}


def follow_up(body: dict[str, Any], dialect: str) -> dict[str, Any]:
    """The next request of the session: the same messages plus one more exchange."""
    nxt = copy.deepcopy(body)
    if dialect == "anthropic":
        nxt["messages"].append({"role": "assistant", "content": [{"type": "text", "text": "Tests pass."}]})
        nxt["messages"].append({"role": "user", "content": [{"type": "text", "text": "commit it"}]})
    else:
        nxt["messages"] += [
            {"role": "assistant", "content": "Tests pass."},
            {"role": "user", "content": "commit"},
        ]
    return nxt


@pytest.mark.parametrize("dialect", ["anthropic", "openai"])
@pytest.mark.parametrize("keep_turns", [1, 2, 3])
def test_cut_is_at_a_turn_boundary_and_result_is_valid(dialect: str, keep_turns: int) -> None:
    body = BODIES[dialect](4)
    messages = body["messages"]
    assert validation_problems(messages, dialect) == []
    cut = choose_cut(messages, dialect, keep_turns)
    assert is_turn_start(messages[cut], dialect)
    starts = [i for i, m in enumerate(messages) if is_turn_start(m, dialect)]
    assert cut == starts[-keep_turns]
    plan = plan_compaction(body, dialect, "s1", keep_turns)
    item = finish_compaction(plan, "- fixed handlers in s0..s3")
    new_messages = [*item.replacement, *messages[cut:]]
    assert validation_problems(new_messages, dialect) == []
    if dialect == "openai":
        assert new_messages[0] == {"role": "system", "content": "You are a coding agent."}
    else:
        assert new_messages[0]["role"] == "user"


@pytest.mark.parametrize("dialect", ["anthropic", "openai"])
def test_validator_catches_a_cut_inside_a_tool_pair(dialect: str) -> None:
    messages = BODIES[dialect](2)["messages"]
    first_result = 2 if dialect == "anthropic" else 3  # the message holding the first tool result
    tail = messages[first_result:]
    broken = [{"role": "user", "content": "summary"}, {"role": "assistant", "content": ACK_TEXT}, *tail]
    problems = validation_problems(broken, dialect)
    assert any("tool" in p for p in problems), problems


@pytest.mark.parametrize("dialect", ["anthropic", "openai"])
def test_too_few_turns_and_zero_keep_are_refused(dialect: str) -> None:
    body = BODIES[dialect](1)  # two user turns
    with pytest.raises(CompactionError, match="nothing to compact"):
        choose_cut(body["messages"], dialect, 2)
    with pytest.raises(CompactionError, match="at least 1"):
        choose_cut(body["messages"], dialect, 0)


@pytest.mark.parametrize("dialect", ["anthropic", "openai"])
def test_rewrite_matches_prefix_then_undo_restores_pass_through(dialect: str, tmp_path: Path) -> None:
    body = BODIES[dialect](3)
    plan = plan_compaction(body, dialect, "sess", keep_turns=1)
    item = finish_compaction(plan, "Summary: handlers fixed.")
    assert item.counter == ESTIMATE_NAME and not item.exact
    assert item.prefix_tokens > item.summary_tokens > 0
    store = CompactionStore(tmp_path / "compactions.json")
    store.add(item)

    nxt = follow_up(body, dialect)
    result = store.rewrite(nxt, "sess")
    assert result.applied and result.tokens_saved == item.tokens_saved > 0
    out = result.body["messages"]
    assert len(out) == len(nxt["messages"]) - len(item.prefix_hashes) + len(item.replacement)
    assert "Summary: handlers fixed." in str(out)
    assert out[-1] == nxt["messages"][-1]
    assert validation_problems(out, dialect) == []
    for key in ("system", "tools", "model", "max_tokens"):
        assert result.body.get(key) == nxt.get(key)
    assert nxt["messages"] == follow_up(body, dialect)["messages"]  # the input body is not modified

    # Moving cache_control markers does not break the match; other sessions and edited prefixes pass through.
    marked = copy.deepcopy(nxt)
    if dialect == "anthropic":
        marked["messages"][1]["content"][0]["cache_control"] = {"type": "ephemeral"}
    assert store.rewrite(marked, "sess").applied
    assert not store.rewrite(nxt, "other").applied
    edited = copy.deepcopy(nxt)
    edited["messages"][len(item.prefix_hashes) - 1] = {"role": "assistant", "content": "changed"}
    miss = store.rewrite(edited, "sess")
    assert not miss.applied and "prefix" in miss.reason

    # Persisted: a new store (another process) rewrites too; undo restores pass-through everywhere.
    reloaded = CompactionStore(tmp_path / "compactions.json")
    assert reloaded.rewrite(nxt, "sess").applied
    assert reloaded.undo("sess")
    assert not reloaded.rewrite(nxt, "sess").applied
    assert not CompactionStore(tmp_path / "compactions.json").rewrite(nxt, "sess").applied
    assert not reloaded.undo("sess")


def test_parse_summary_reports_server_errors() -> None:
    ok = '{"content":[{"type":"text","text":"short"}]}'
    assert parse_summary("anthropic", 200, ok) == "short"
    chat = '{"choices":[{"message":{"content":"brief"}}]}'
    assert parse_summary("openai", 200, chat) == "brief"
    error = '{"error":{"code":400,"message":"request (9000 tokens) exceeds the available context size"}}'
    with pytest.raises(CompactionError, match="exceeds the available context size"):
        parse_summary("openai", 400, error)


def test_service_picks_the_main_conversation_and_rewrites_without_session(tmp_path: Path) -> None:
    main, side = anthropic_body(3), anthropic_body(0)
    side["messages"] = [{"role": "user", "content": "write a title for this chat"}]
    service = CompactionService(CompactionStore(tmp_path / "c.json"), upstream="http://127.0.0.1:9")
    service.observe(main, "anthropic")
    service.observe(side, "anthropic")  # a later side request (title generator) must not be picked
    picked = service.pick()
    assert picked.body is main and picked.key == conversation_key(main)
    assert conversation_key(follow_up(main, "anthropic")) == picked.key
    with pytest.raises(CompactionError, match="no request seen"):
        service.pick("nope")
    plan = plan_compaction(picked.body, "anthropic", picked.key, keep_turns=2)
    service.store.add(finish_compaction(plan, "summary"))
    assert service.observe(follow_up(main, "anthropic"), "anthropic", session_id="any-header-id").applied
    assert not service.observe(side, "anthropic").applied
    assert service.undo() == picked.key and service.undo() is None


def test_service_finds_a_conversation_by_its_journal_session_id(tmp_path: Path) -> None:
    from tui.core.anatomy.analyze import split_body
    from tui.core.anatomy.sessions import session_id_of

    first, second = anthropic_body(3), anthropic_body(2)
    second["messages"][0] = {"role": "user", "content": "another conversation entirely"}
    service = CompactionService(CompactionStore(tmp_path / "c.json"), upstream="http://127.0.0.1:9")
    service.observe(first, "anthropic")
    service.observe(second, "anthropic")
    # The dashboard selects rows by the journal's session id (the anatomy's h-… hash), not the proxy's key.
    journal_id = session_id_of({}, first, split_body(first, "anthropic", ()))
    assert journal_id.startswith("h-") and journal_id != conversation_key(first)
    assert service.pick(journal_id).body is first


def test_summary_budget_scales_with_the_prefix() -> None:
    """A fixed 1,024-token budget cut long summaries off: the budget follows the prefix it replaces."""
    small = plan_compaction(BODIES["anthropic"](2), "anthropic", "s", 1)
    assert small.call.body["max_tokens"] == 1024  # the floor
    big_body = anthropic_body(60)  # ~140k characters of history
    big = plan_compaction(big_body, "anthropic", "s", 1)
    prefix_tokens = sum(len(message_text(m)) for m in big.prefix) // 3
    assert big.call.body["max_tokens"] == prefix_tokens // 8 > 1024
    # A small slot bounds it: the summary request must fit the server's context.
    assert plan_compaction(big_body, "anthropic", "s", 1, context_tokens=8192).call.body["max_tokens"] == 2048
    assert plan_compaction(big_body, "anthropic", "s", 1, max_tokens=64).call.body["max_tokens"] == 64

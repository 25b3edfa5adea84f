"""MCP switches: tool removal in both dialects, the persisted state, candidates, switch cost, the CLI."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tui.commands import mcp_cmd
from tui.core.actions.counting import ESTIMATE_NAME
from tui.core.actions.mcp_switch import McpSwitchStore, filter_tools, switch_cost, tool_name, unused_servers
from tui.core.anatomy.model import Anatomy, Part
from tui.core.config import AnatomySettings, JournalSettings, Settings
from tui.core.tokens import TiktokenCounter

HELPERS = ["ListMcpResourcesTool", "ReadMcpResourceTool", "ReadMcpResourceDirTool"]


def anthropic_tool(name: str) -> dict[str, Any]:
    return {"name": name, "description": f"{name} does things " * 5, "input_schema": {"type": "object"}}


def openai_tool(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": "does things", "parameters": {}}}


def claude_body() -> dict[str, Any]:
    names = ["Bash", "Read", *HELPERS, "mcp__filesystem__read_file", "mcp__filesystem__list_directory"]
    names += ["mcp__memory__create_entities"]
    return {
        "model": "m",
        "system": "sys",
        "tools": [anthropic_tool(n) for n in names],
        "tool_choice": {"type": "tool", "name": "mcp__memory__create_entities"},
        "messages": [
            {"role": "user", "content": "list files"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "t1", "name": "mcp__filesystem__list_directory", "input": {}}
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "a.py"}]},
        ],
    }


def test_anthropic_filter_removes_one_server_then_helpers_when_all_off() -> None:
    body = claude_body()
    original = json.dumps(body)
    one = filter_tools(body, {"filesystem"})
    assert one.removed == ("mcp__filesystem__read_file", "mcp__filesystem__list_directory")
    assert [tool_name(t) for t in one.body["tools"]] == [
        "Bash",
        "Read",
        *HELPERS,
        "mcp__memory__create_entities",
    ]
    assert one.removed_tokens > 0 and one.counter == ESTIMATE_NAME and not one.exact
    assert json.dumps(body) == original  # the input body is untouched

    both = filter_tools(body, {"filesystem", "memory"}, counter=TiktokenCounter())
    assert set(both.removed) == {*HELPERS, *one.removed, "mcp__memory__create_entities"}
    assert [tool_name(t) for t in both.body["tools"]] == ["Bash", "Read"]
    assert both.counter.startswith("tiktoken") and both.removed_tokens > one.removed_tokens
    assert both.body["tool_choice"] == {"type": "auto"}  # it named a removed tool
    assert both.body["messages"] == body["messages"] and both.body["system"] == body["system"]

    assert not filter_tools(body, set()).changed
    assert not filter_tools(body, {"github"}).changed


def test_openai_filter_uses_configured_server_names() -> None:
    names = ["bash", "filesystem_list_directory", "memory_create_entities", "git_hub_search", "git_log"]
    body = {
        "model": "m",
        "tools": [openai_tool(n) for n in names],
        "messages": [{"role": "user", "content": "x"}],
    }
    result = filter_tools(body, {"git"}, known_servers=["filesystem", "memory", "git", "git_hub"])
    assert result.removed == ("git_log",)  # git_hub_search belongs to the longer server name
    everything = filter_tools(
        body, {"filesystem", "memory", "git", "git_hub"}, ["filesystem", "memory", "git", "git_hub"]
    )
    assert [tool_name(t) for t in everything.body["tools"]] == ["bash"]


def test_state_is_persisted_and_reloaded_by_mtime(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    proxy_side = McpSwitchStore(path)
    assert proxy_side.off() == frozenset()
    cli_side = McpSwitchStore(path)
    cli_side.set_enabled("memory", False)
    assert proxy_side.off() == {"memory"}
    cli_side.set_enabled("filesystem", False)
    cli_side.set_enabled("memory", True)
    assert proxy_side.off() == {"filesystem"}
    # A hand edit is picked up too (new mtime).
    time.sleep(0.01)
    path.write_text(json.dumps({"version": 1, "off": ["a", "b"]}))
    os.utime(path, ns=(time.time_ns(), time.time_ns()))
    assert proxy_side.off() == {"a", "b"}
    path.write_text("not json")
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert proxy_side.off() == frozenset()


def test_candidates_are_servers_never_called() -> None:
    body = claude_body()
    found = unused_servers(body)
    assert [c.server for c in found] == ["memory"]
    assert unused_servers(body, called=["mcp__memory__create_entities"]) == []


def test_switch_cost_counts_tokens_after_the_first_tool_of_the_server() -> None:
    parts = (
        Part("system", "system", 100),
        Part("tools", "tool Bash", 50, tool="Bash"),
        Part("mcp_tools", "mcp memory/a", 30, server="memory", tool="mcp__memory__a"),
        Part("mcp_tools", "mcp fs/b", 20, server="filesystem", tool="mcp__filesystem__b"),
        Part("mcp_tools", "mcp memory/c", 10, server="memory", tool="mcp__memory__c"),
        Part("history", "msg 0", 400, message_index=0),
        Part("template_overhead", "template overhead", 25),
    )
    categories = {"system": 100, "tools": 50, "mcp_tools": 60, "history": 400, "template_overhead": 25}
    anatomy = Anatomy("anthropic", "x", True, categories, parts=parts)
    cost = switch_cost(anatomy, "memory")
    # The template's 25 tokens wrap the 6 other parts evenly: memory's 2 parts carry 2/6 of them.
    assert (cost.schema_tokens, cost.reprocess_tokens) == (round(40 + 25 * 2 / 6), round(420 + 25 * 2 / 6))
    expected = "saves ~48 tokens per request; the server re-processes ~428 of 635 prompt tokens once"
    assert cost.text() == expected
    assert switch_cost(anatomy, "github").reprocess_tokens == 0  # not in the request: nothing changes
    # Switching on a server the request went out without: its schemas go in after the other MCP tools.
    on = switch_cost(anatomy, "github", switching_on=True, known_schema_tokens=70)
    assert (on.schema_tokens, on.reprocess_tokens) == (70, round(400 + 25 * 1 / 6 + 70))
    assert on.text().startswith("adds ~70 tokens per request")
    assert switch_cost(anatomy, "github", switching_on=True).text().startswith("adds its (unseen) tokens")
    # With the server's own prompt count, the figures are server tokens.
    scaled = switch_cost(anatomy, "memory", server_prompt_tokens=1270)
    assert (scaled.schema_tokens, scaled.reprocess_tokens, scaled.total_tokens) == (97, 857, 1270)


def test_cli_on_off_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CTXBUDGET_DATA_DIR", str(tmp_path))
    settings = Settings(
        anatomy=AnatomySettings(mcp_servers=["filesystem"]),
        journal=JournalSettings(path=str(tmp_path / "none.sqlite3")),
    )
    run = mcp_cmd.run_mcp
    assert run(argparse.Namespace(action="off", name="memory", json=False, user=None), settings) == 0
    assert run(argparse.Namespace(action="off", name=None, json=False, user=None), settings) == 2
    capsys.readouterr()
    assert run(argparse.Namespace(action="list", name=None, json=True, user=None), settings) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {r["server"]: r["state"] for r in listed["servers"]} == {"filesystem": "on", "memory": "off"}
    assert run(argparse.Namespace(action="on", name="memory", json=False, user=None), settings) == 0
    assert McpSwitchStore(tmp_path / "mcp_switches.json").off() == frozenset()

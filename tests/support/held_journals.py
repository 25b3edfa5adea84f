"""Journals written by the real proxy and a real llama-server from Claude-Code-shaped sub-agent traffic.

The session: a title request, a main agent whose tool list carries two MCP servers (filesystem, memory)
that it never calls, a sub-agent, growing turns with shell outputs (ANSI colour, repeated lines, one
output returned twice), a system prompt whose date changes mid-session (a cache break the stabilizer
prevents), and a last request larger than the slot (HTTP 400 exceed_context_size_error).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from builders import BILLING, IDENTITY, cc_title_request, cc_tools, words

from tui.core.config import AnatomySettings, JournalSettings, ProxySettings, Settings
from tui.core.proxy.service import ProxyService

SESSION = "7d1e9c2a-2222-4b3c-8d4e-abcdefabcdef"
MCP = {"filesystem": ("read_file", "write_file", "list_directory", "search_files", "get_file_info"),
       "memory": ("create_entities", "read_graph")}  # fmt: skip
ESC = "\x1b"


def shell_output(turn: int) -> str:
    """A test run's output: colour codes, a progress line repeated many times, a long log."""
    lines = [f"{ESC}[32mPASS{ESC}[0m tests/test_{turn}_{i}.py  " + words(8, 900 + i) for i in range(40)]
    lines += ["Downloading dependencies ........ 100%"] * 60
    lines += [f"{ESC}[31mFAIL{ESC}[0m tests/test_{turn}.py::test_case - AssertionError   "]
    return "\n".join(lines)


def system_blocks(date: str) -> list[dict[str, Any]]:
    """Claude Code's system blocks, its environment section carrying today's date."""
    env = f"<env>\nWorking directory: /home/dev/project\nToday's date is {date}.\n</env>"
    return [
        {"type": "text", "text": BILLING},
        {"type": "text", "text": IDENTITY},
        {"type": "text", "text": words(500, 7) + "\n" + env},
    ]


def conversation(turns: int, read_twice: bool = True) -> list[dict[str, Any]]:
    """A user task, then (assistant tool_use, user tool_result) pairs using built-in tools only."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Please fix the failing test in foo.py"}]
    for t in range(turns):
        name = "Bash" if t % 2 else "Read"
        output = shell_output(t) if name == "Bash" else words(250, 40)  # Read returns the same file
        if name == "Read" and not read_twice and t > 1:
            output = words(250, 40 + t)
        tool_id = f"toolu_{t:04d}"
        messages.append({"role": "assistant", "content": [
            {"type": "text", "text": words(20, 300 + t)},
            {"type": "tool_use", "id": tool_id, "name": name, "input": {"path": "foo.py"}}]})  # fmt: skip
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": tool_id, "content": output}]})  # fmt: skip
    return messages


def request(messages: list[dict[str, Any]], date: str, *, subagent: bool = False) -> dict[str, Any]:
    """A Claude-Code-shaped /v1/messages body of this session."""
    system = system_blocks(date)
    if subagent:
        system = [{"type": "text", "text": BILLING.rstrip(";") + "; cc_is_subagent=true;"},
                  {"type": "text", "text": "You are a search agent. " + words(80, 5)}]  # fmt: skip
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 8,
        "temperature": 0,
        "stream": not subagent,
        "metadata": {"user_id": json.dumps({"device_id": "d" * 64, "session_id": SESSION})},
        "system": system,
        "tools": cc_tools(mcp=dict(MCP), desc_words=60),
        "messages": messages,
    }


def session_bodies(turns: int = 8) -> list[dict[str, Any]]:
    """The whole session in order (the last body overflows a 16k slot)."""
    bodies = [cc_title_request(SESSION)]
    for t in range(turns):
        date = "2026-11-21" if t < 3 else "2026-11-22"  # the date turns over mid-session
        bodies.append(request(conversation(t), date))
        if t == 1:
            sub = [{"role": "user", "content": "Find where foo is defined"}]
            bodies.append(request(sub, date, subagent=True))
    huge = conversation(turns)
    huge.append({"role": "user", "content": words(16_000, 77)})
    bodies.append(request(huge, "2026-11-22"))
    return bodies


@dataclass(frozen=True)
class HeldJournal:
    """A journal file written by the real proxy and the statuses the server answered."""

    path: Path
    statuses: tuple[int, ...]
    n_ctx: int


async def _drive(url: str, bodies: Sequence[dict[str, Any]]) -> list[int]:
    statuses = []
    async with aiohttp.ClientSession() as http:
        for body in bodies:
            async with http.post(url + "/v1/messages?beta=true", json=body) as response:
                await response.read()
                statuses.append(response.status)
    return statuses


def write_held_journal(
    server_url: str, journal: Path, n_ctx: int, *, store_bodies: bool = True
) -> HeldJournal:
    """Send the session through a real ProxyService to the server; the journal it wrote."""
    settings = Settings(
        proxy=ProxySettings(listen="127.0.0.1:0", upstream=server_url),
        journal=JournalSettings(path=str(journal), store_bodies=store_bodies),
        anatomy=AnatomySettings(mcp_servers=list(MCP)),
    )

    async def run() -> list[int]:
        service = ProxyService(settings)
        await service.start()
        try:
            statuses = await _drive(service.url, session_bodies())
            assert await asyncio.to_thread(service.flush, 60.0)
            return statuses
        finally:
            await service.stop()

    return HeldJournal(journal, tuple(asyncio.run(run())), n_ctx)

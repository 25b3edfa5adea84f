"""The control API and the rewrite hook through the real proxy in front of a real llama-server."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from corpus_builders import billing_line
from prometheus_client.parser import text_string_to_metric_families
from support.llama import RunningServer
from test_actions_compaction import BODIES, follow_up

from tui.core.config import AnatomySettings, JournalSettings, ProxySettings, Settings
from tui.core.journal.writer import JournalReader
from tui.core.proxy.service import ProxyService
from tui.core.records import RequestRecord

pytestmark = [pytest.mark.llama, pytest.mark.timeout(240)]

MCP_DESCRIPTION = "Read the complete contents of a file from the allowed directories, as text. " * 12
TOOLS: list[dict[str, Any]] = [
    {"name": "Read", "description": "Read a file.", "input_schema": {"type": "object"}},
    *(
        {
            "name": f"mcp__filesystem__{verb}",
            "description": MCP_DESCRIPTION,
            "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
        }
        for verb in ("read_file", "list_directory", "search_files")
    ),
]
SYSTEM_TAIL = "\n".join(f"Rule {i}: keep the code tidy and tested." for i in range(120))


def agent_body(cch: str = "11111", tool_output: str = "done") -> dict[str, Any]:
    """A Claude-Code-shaped request with a billing line, MCP tools and one tool result."""
    return {
        "model": "claude-test",
        "max_tokens": 2,
        "temperature": 0,
        "system": [
            {"type": "text", "text": billing_line(cch=cch)},
            {"type": "text", "text": SYSTEM_TAIL},
        ],
        "tools": TOOLS,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "build it"}]},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"cmd": "make"}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": tool_output}],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "Built."}]},
            {"role": "user", "content": [{"type": "text", "text": "thanks, what next?"}]},
        ],
    }


class Proxy:
    """A running ProxyService with its records and an HTTP client."""

    def __init__(
        self, service: ProxyService, records: list[RequestRecord], client: httpx.AsyncClient
    ) -> None:
        self.service = service
        self.records = records
        self.client = client

    async def send(self, body: dict[str, Any], path: str = "/v1/messages") -> RequestRecord:
        """POST a model request and return its journal record."""
        before = len(self.records)
        response = await self.client.post(path, json=body)
        assert response.status_code == 200, response.text
        assert await asyncio.to_thread(self.service.flush, 60.0)
        for _ in range(200):
            if len(self.records) > before:
                break
            await asyncio.sleep(0.01)  # on_record runs on this loop right after the flush
        return self.records[-1]

    async def control(self, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call the control API and return its JSON answer (must be 200)."""
        if payload is None:
            response = await self.client.get(f"/_ctxbudget/{path}")
        else:
            response = await self.client.post(f"/_ctxbudget/{path}", json=payload, timeout=300)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data


StartProxy = Callable[..., Any]


@pytest.fixture
async def start_proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[..., Any]]:
    """Factory: start(upstream, analysis="thread", store_bodies=False) -> Proxy (state files in tmp)."""
    monkeypatch.setenv("CTXBUDGET_DATA_DIR", str(tmp_path / "data"))
    started: list[Proxy] = []

    async def start(upstream: str, analysis: str = "thread", store_bodies: bool = False) -> Proxy:
        settings = Settings(
            proxy=ProxySettings(listen="127.0.0.1:0", upstream=upstream),
            journal=JournalSettings(path=str(tmp_path / "journal.sqlite3"), store_bodies=store_bodies),
            anatomy=AnatomySettings(mcp_servers=["filesystem"]),
        )
        records: list[RequestRecord] = []
        service = ProxyService(settings, on_record=records.append, analysis=analysis)
        await service.start()
        proxy = Proxy(service, records, httpx.AsyncClient(base_url=service.url, timeout=120))
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        await proxy.client.aclose()
        await proxy.service.stop()


async def test_mcp_server_switched_off_leaves_the_forwarded_request(
    shared_llama_server: RunningServer, start_proxy: StartProxy
) -> None:
    proxy: Proxy = await start_proxy(shared_llama_server.url)
    first = await proxy.send(agent_body())
    assert first.mcp_saved_tokens is None
    state = await proxy.control("state")
    servers = {s["server"]: s for s in state["mcp"]["servers"]}
    assert servers["filesystem"]["enabled"] and servers["filesystem"]["tools"] == 3
    assert [c["server"] for c in state["mcp"]["never_called"]] == ["filesystem"]

    answer = await proxy.control("mcp", {"server": "filesystem", "enabled": False})
    assert answer["off"] == ["filesystem"]
    # In server tokens: the schemas plus their share of the chat template's wrapping.
    assert answer["cost"]["schema_tokens"] >= servers["filesystem"]["tokens"] > 0
    assert answer["cost"]["counter"] == "server"
    assert 0 < answer["cost"]["reprocess_tokens"] < answer["cost"]["total_tokens"]

    second = await proxy.send(agent_body())
    assert first.usage.prompt_tokens is not None and second.usage.prompt_tokens is not None
    dropped = first.usage.prompt_tokens - second.usage.prompt_tokens
    assert second.mcp_saved_tokens is not None and second.mcp_saved_tokens > 0
    # The server's own count drops by about what the journal says was removed (template glue aside).
    assert abs(dropped - second.mcp_saved_tokens) < 0.2 * second.mcp_saved_tokens
    assert second.anatomy is not None and "filesystem" not in second.anatomy.mcp_servers
    assert abs(dropped - answer["cost"]["schema_tokens"]) < 0.2 * dropped  # the estimate the user saw
    row = JournalReader(proxy.service.journal_path).get(second.id)
    assert row is not None and row.mcp_saved_tokens == second.mcp_saved_tokens

    await proxy.control("mcp", {"server": "filesystem", "enabled": True})
    third = await proxy.send(agent_body())
    assert third.usage.prompt_tokens == first.usage.prompt_tokens and third.mcp_saved_tokens is None
    state = await proxy.control("state")
    assert state["mcp"]["saved_tokens"] == second.mcp_saved_tokens


async def test_transform_switched_on_and_off_at_runtime(
    shared_llama_server: RunningServer, start_proxy: StartProxy
) -> None:
    proxy: Proxy = await start_proxy(shared_llama_server.url)
    noisy = "\n".join(["compiling module core ... ok"] * 300 + ["all 300 modules built"])
    plain = await proxy.send(agent_body(tool_output=noisy))
    assert [t.name for t in plain.transforms] == ["stabilize"]

    answer = await proxy.control("transforms", {"name": "slim_results", "enabled": True})
    assert answer["changed"] and answer["enabled_now"] == ["stabilize", "slim_results"]
    assert answer["reprocess"] is not None and answer["reprocess"]["where"].startswith("messages[2]")
    assert answer["reprocess"]["reprocesses"]  # the result sits before the latest user turn

    slim = await proxy.send(agent_body(tool_output=noisy))
    saved = {t.name: t for t in slim.transforms}
    assert set(saved) == {"stabilize", "slim_results"}
    assert saved["slim_results"].saved > 100 and abs(saved["stabilize"].saved) <= 3
    assert slim.transform_saved_tokens == saved["slim_results"].saved + saved["stabilize"].saved
    assert plain.usage.prompt_tokens is not None and slim.usage.prompt_tokens is not None
    assert plain.usage.prompt_tokens - slim.usage.prompt_tokens > 100

    state = await proxy.control("state")
    by_name = {t["name"]: t for t in state["transforms"]["available"]}
    assert by_name["slim_results"]["enabled"] and not by_name["slim_results"]["configured"]
    assert by_name["slim_results"]["saved_tokens"] == saved["slim_results"].saved

    off = await proxy.control("transforms", {"name": "slim_results", "enabled": False})
    assert off["enabled_now"] == ["stabilize"]
    again = await proxy.send(agent_body(tool_output=noisy))
    assert again.usage.prompt_tokens == plain.usage.prompt_tokens
    bad = await proxy.client.post("/_ctxbudget/transforms", json={"name": "nope", "enabled": True})
    assert bad.status_code == 404 and "valid" in bad.json()["error"]
    # A form post (what a web page could send without a CORS preflight) is refused.
    form = await proxy.client.post(
        "/_ctxbudget/transforms",
        content=b'{"name": "stabilize", "enabled": false}',
        headers={"content-type": "text/plain"},
    )
    assert form.status_code == 415 and proxy.service.transform_switches.enabled() == ("stabilize",)


def chat_body(cch: str) -> dict[str, Any]:
    """An OpenAI-dialect request whose system prompt starts with Claude Code's billing line.

    (This llama-server drops the billing line of /v1/messages requests itself, so the chat endpoint shows
    what a changing line costs.)
    """
    return {
        "model": "m",
        "max_tokens": 2,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": billing_line(cch=cch) + "\n" + SYSTEM_TAIL},
            {"role": "user", "content": "hi"},
        ],
    }


async def test_stabilizer_keeps_the_cache_across_billing_hashes(
    llama_server: Callable[..., RunningServer], start_proxy: StartProxy
) -> None:
    server = llama_server()
    proxy: Proxy = await start_proxy(server.url)
    path = "/v1/chat/completions"
    await proxy.send(chat_body("11111"), path)
    stable = await proxy.send(chat_body("22222"), path)
    await proxy.control("transforms", {"name": "stabilize", "enabled": False})
    await proxy.send(chat_body("33333"), path)
    raw = await proxy.send(chat_body("44444"), path)
    for record in (stable, raw):
        assert record.usage.prompt_tokens is not None and record.usage.cached_tokens is not None
    assert stable.reused_fraction is not None and stable.reused_fraction > 0.95
    assert raw.reused_fraction is not None and raw.reused_fraction < 0.1
    assert [t.name for t in stable.transforms] == ["stabilize"] and raw.transforms == ()


async def test_compaction_through_the_control_api(
    shared_llama_server: RunningServer, start_proxy: StartProxy
) -> None:
    proxy: Proxy = await start_proxy(shared_llama_server.url)
    body = BODIES["anthropic"](3)
    before = await proxy.send({**body, "max_tokens": 2})
    item = await proxy.control("compact", {"session": None, "keep_turns": 1})
    assert item["tokens_saved"] > 0 and item["prefix_tokens"] > item["summary_tokens"]

    nxt = {**follow_up(body, "anthropic"), "max_tokens": 2}
    after = await proxy.send(copy.deepcopy(nxt))
    assert after.compaction_saved_tokens == item["tokens_saved"]
    assert before.usage.prompt_tokens is not None and after.usage.prompt_tokens is not None
    assert after.usage.prompt_tokens < before.usage.prompt_tokens
    state = await proxy.control("state")
    (active,) = state["compactions"]["active"]
    assert active["session_id"] == item["session_id"] and active["rewritten_requests"] == 1

    undone = await proxy.control("compact/undo", {"session": item["session_id"]})
    assert undone["session_id"] == item["session_id"] and undone["folded_bytes"] == item["folded_bytes"]
    plain = await proxy.send(copy.deepcopy(nxt))
    assert plain.compaction_saved_tokens is None
    assert plain.usage.prompt_tokens is not None and plain.usage.prompt_tokens > before.usage.prompt_tokens
    missing = await proxy.client.post("/_ctxbudget/compact/undo", json={"session": "nope"})
    assert missing.status_code == 404


async def test_metrics_after_real_traffic(
    shared_llama_server: RunningServer, start_proxy: StartProxy
) -> None:
    proxy: Proxy = await start_proxy(shared_llama_server.url, analysis="process")
    records = [await proxy.send(agent_body(cch=str(10000 + i))) for i in range(3)]
    text = (await proxy.client.get("/_ctxbudget/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    requests = sum(s.value for s in families["ctxbudget_requests"].samples if s.name.endswith("_total"))
    assert requests == len(records)
    prompt = sum(s.value for s in families["ctxbudget_prompt_tokens"].samples if s.name.endswith("_total"))
    assert prompt == sum(r.usage.prompt_tokens or 0 for r in records)


async def test_unchanged_requests_are_forwarded_byte_for_byte(
    shared_llama_server: RunningServer, start_proxy: StartProxy
) -> None:
    proxy: Proxy = await start_proxy(shared_llama_server.url, store_bodies=True)
    raw = b'{ "model":"m",  "max_tokens": 2, "messages": [ {"role":"user","content":"hi \\u00e9"} ] }'
    response = await proxy.client.post(
        "/v1/messages", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200
    broken = b'{"model": "m", "messages": [ '
    response = await proxy.client.post(
        "/v1/messages", content=broken, headers={"content-type": "application/json"}
    )
    assert response.status_code in (400, 500)
    assert await asyncio.to_thread(proxy.service.flush, 60.0)
    reader = JournalReader(proxy.service.journal_path)
    first, second = reader.latest(2)
    assert reader.body(first.id) == raw
    assert reader.body(second.id) == broken and second.unparsed_reason

"""The proxy in front of a real llama-server: both dialects, streaming, journal rows, faults."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from support.llama import RunningServer, StartServer

from tui.core.config import AnatomySettings, JournalSettings, ProxySettings, Settings
from tui.core.journal.writer import JournalReader
from tui.core.proxy.service import ProxyService
from tui.core.records import RequestRecord

pytestmark = [pytest.mark.llama, pytest.mark.timeout(180)]

SYSTEM = "You are a careful coding agent. Follow the repository rules. " * 20
TOOLS = [
    {
        "name": "Read",
        "description": "Read a file from disk and return its contents with line numbers. " * 5,
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    },
    {
        "name": "mcp__filesystem__list_directory",
        "description": "List a directory.",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
    },
]


def anthropic_body(stream: bool, max_tokens: int = 16) -> dict[str, Any]:
    """A small Claude-Code-shaped Messages request."""
    return {
        "model": "claude-test",
        "max_tokens": max_tokens,
        "stream": stream,
        "temperature": 0,
        "system": [{"type": "text", "text": SYSTEM}],
        "tools": TOOLS,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "list the files please"}]}],
    }


def openai_body(stream: bool, max_tokens: int = 16) -> dict[str, Any]:
    """A small opencode-shaped Chat Completions request."""
    body: dict[str, Any] = {
        "model": "local",
        "max_tokens": max_tokens,
        "stream": stream,
        "temperature": 0,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "hello there"}],
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


async def start_proxy(
    upstream: str, journal: Path, records: list[RequestRecord] | None = None
) -> ProxyService:
    """A ProxyService with the real default analyzer (the Analyzer, counter "auto")."""
    settings = Settings(
        proxy=ProxySettings(listen="127.0.0.1:0", upstream=upstream),
        journal=JournalSettings(path=str(journal)),
        anatomy=AnatomySettings(mcp_servers=["filesystem"]),
    )
    service = ProxyService(settings, on_record=None if records is None else records.append)
    await service.start()
    return service


async def flushed(service: ProxyService) -> None:
    """Wait until every finished exchange is journaled."""
    assert await asyncio.to_thread(service.flush, 60.0)
    await asyncio.sleep(0.02)


def sse_events(raw: bytes) -> list[str]:
    """The non-empty events of an SSE body."""
    return [e for e in raw.decode().split("\n\n") if e.strip()]


async def test_both_dialects_stream_and_not_through_proxy(
    shared_llama_server: RunningServer, tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite3"
    records: list[RequestRecord] = []
    service = await start_proxy(shared_llama_server.url, journal, records)
    try:
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            async with session.head(service.url + "/") as r:
                head_status = r.status
            async with session.post(service.url + "/v1/messages?beta=true", json=anthropic_body(False)) as r:
                assert r.status == 200, await r.text()
                message = json.loads(await r.read())
            async with session.post(service.url + "/v1/messages?beta=true", json=anthropic_body(True)) as r:
                assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
                a_events = sse_events(await r.read())
            async with session.post(service.url + "/v1/chat/completions", json=openai_body(False)) as r:
                assert r.status == 200
                chat = json.loads(await r.read())
            async with session.post(service.url + "/v1/chat/completions", json=openai_body(True)) as r:
                assert r.status == 200
                o_events = sse_events(await r.read())
            async with session.post(
                service.url + "/v1/messages/count_tokens", json=anthropic_body(False)
            ) as r:
                count = json.loads(await r.read())
                assert r.status == 200, count
            for path in ("/v1/models", "/health", "/slots", "/props"):
                async with session.get(service.url + path) as r:
                    direct = httpx.get(shared_llama_server.url + path)
                    assert r.status == direct.status_code
        await flushed(service)
    finally:
        await service.stop()
    assert head_status == httpx.head(shared_llama_server.url + "/").status_code
    assert message["type"] == "message" and message["usage"]["output_tokens"] > 0
    assert any(e.startswith("event: message_stop") for e in a_events)
    assert chat["object"] == "chat.completion" and chat["usage"]["prompt_tokens"] > 0
    assert o_events[-1] == "data: [DONE]"
    assert count["input_tokens"] > 0

    rows = JournalReader(journal).latest(100)
    assert [r.path for r in rows] == [r.path for r in records]
    assert len(rows) == 10
    by_path = {(r.method, r.path, r.stream): r for r in rows}
    for stream in (False, True):
        row = by_path[("POST", "/v1/messages?beta=true", stream)]
        assert row.dialect == "anthropic" and row.unparsed_reason is None and row.status == 200
        assert row.anatomy is not None and row.anatomy.categories["system"] > 0
        assert row.anatomy.categories["mcp_tools"] > 0 and row.anatomy.categories["tools"] > 0
        assert row.usage.prompt_tokens and row.ttfb_ms is not None and row.total_ms is not None
        openai_row = by_path[("POST", "/v1/chat/completions", stream)]
        assert openai_row.dialect == "openai" and openai_row.anatomy is not None
        assert openai_row.usage.prompt_tokens == chat["usage"]["prompt_tokens"]
    assert rows[0].method == "HEAD"


def long_generation(body: dict[str, Any]) -> dict[str, Any]:
    """The body asking for thousands of tokens that do not stop at EOS (llama-server's ignore_eos, which
    b11434 honours on /v1/chat/completions, not on /v1/messages)."""
    return {**body, "ignore_eos": True}


def slot_busy(server: RunningServer) -> bool:
    """Whether any slot is processing (asked directly, not through the proxy)."""
    return any(s["is_processing"] for s in httpx.get(server.url + "/slots", timeout=5).json())


async def test_client_gone_mid_stream_frees_the_slot(llama_server: StartServer, tmp_path: Path) -> None:
    server = llama_server(n_predict=-1, ctx_size=8192)
    service = await start_proxy(server.url, tmp_path / "j.sqlite3")
    try:
        async with aiohttp.ClientSession() as session:
            resp = await session.post(
                service.url + "/v1/chat/completions", json=long_generation(openai_body(True, max_tokens=7000))
            )
            for _ in range(5):
                await resp.content.readuntil(b"\n\n")
            assert slot_busy(server), httpx.get(server.url + "/slots").text
            resp.close()  # the agent went away mid-generation
        gone = time.monotonic()
        while slot_busy(server):
            assert time.monotonic() - gone < 3.0, "slot still processing 3 s after the client left"
            await asyncio.sleep(0.05)
        server.wait_for_log("cancel task", timeout=5)
        await flushed(service)
        row = JournalReader(tmp_path / "j.sqlite3").latest(1)[0]
        assert row.error is not None and row.error.startswith("client closed the connection after ")
        assert "while the response streamed" in row.error and row.state == "done"
    finally:
        await service.stop()


async def test_upstream_killed_mid_stream_and_then_down(llama_server: StartServer, tmp_path: Path) -> None:
    # A generation that cannot end before the kill. b11434's /v1/messages ignores a request's ignore_eos
    # (its /v1/chat/completions honours it): the tiny model ended after 6 tokens, so the test passed only
    # when the kill beat the sixth token. --ignore-eos makes it the server's default for every endpoint.
    server = llama_server(n_predict=-1, ctx_size=65536, extra_args=["--ignore-eos"])
    service = await start_proxy(server.url, tmp_path / "j.sqlite3")
    try:
        async with aiohttp.ClientSession() as session:
            resp = await session.post(
                service.url + "/v1/messages", json=anthropic_body(True, max_tokens=60000)
            )
            received = b""
            for _ in range(4):
                received += await resp.content.readuntil(b"\n\n")
            server.proc.kill()
            received += await asyncio.wait_for(resp.read(), 10)
            last = sse_events(received)[-1]
            assert last.startswith("event: error\n")
            error = json.loads(last.split("data: ", 1)[1])
            assert error["type"] == "error" and server.url in error["error"]["message"]
            async with session.post(service.url + "/v1/chat/completions", json=openai_body(False)) as r:
                assert r.status == 502
                down = json.loads(await r.read())
            assert server.url in down["error"]["message"]
            async with session.get(service.url + "/_ctxbudget/health") as r:
                assert (await r.json())["status"] == "ok"
    finally:
        await service.stop()


async def test_api_key_forwarded_but_never_stored(llama_server: StartServer, tmp_path: Path) -> None:
    secret = "sk-ctxbudget-SECRET-4242"
    server = llama_server(api_key=secret)
    journal = tmp_path / "j.sqlite3"
    service = await start_proxy(server.url, journal)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(
                service.url + "/v1/messages", json=anthropic_body(False), headers={"x-api-key": secret}
            ) as r:
                assert r.status == 200
            async with session.post(
                service.url + "/v1/chat/completions",
                json=openai_body(False),
                headers={"Authorization": f"Bearer {secret}"},
            ) as r:
                assert r.status == 200
            async with session.post(service.url + "/v1/chat/completions", json=openai_body(False)) as r:
                assert r.status == 401  # the server's own answer, passed through
        await flushed(service)
        rows = JournalReader(journal).latest(10)
        assert [r.status for r in rows] == [200, 200, 401]
    finally:
        await service.stop()
    stored = [p for p in tmp_path.rglob("*") if p.is_file() and "j.sqlite3" in str(p.relative_to(tmp_path))]
    on_disk = b"".join(p.read_bytes() for p in stored)  # journal, WAL, SHM and the capture spool
    assert secret.encode() not in on_disk

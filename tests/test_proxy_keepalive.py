"""Regression: llama-server closes the connection after every streamed reply; the proxy must not 502."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.llama import RunningServer

from tui.core.analysis.sinks import NullAnalyzer
from tui.core.config import JournalSettings, ProxySettings, Settings
from tui.core.proxy.service import ProxyService

pytestmark = [pytest.mark.timeout(240)]

BODY: dict[str, Any] = {
    "model": "m",
    "max_tokens": 8,
    "temperature": 0,
    "system": "be brief " * 50,
    "messages": [{"role": "user", "content": "hello"}],
}


def raw_request(stream: bool) -> bytes:
    """One HTTP/1.1 POST /v1/messages as bytes (for pipelining several on one connection)."""
    body = json.dumps(BODY | {"stream": stream}).encode()
    head = (
        "POST /v1/messages HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


async def start_proxy(upstream: str, tmp_path: Path) -> ProxyService:
    """A journal-less proxy (the bug is in forwarding, not analysis)."""
    settings = Settings(
        proxy=ProxySettings(listen="127.0.0.1:0", upstream=upstream),
        journal=JournalSettings(path=str(tmp_path / "j.sqlite3")),
    )
    service = ProxyService(settings, analyzer_factory=NullAnalyzer, analysis="thread", journal_enabled=False)
    await service.start()
    return service


async def read_responses(reader: asyncio.StreamReader, count: int) -> bytes:
    """Read until `count` status lines arrived (or the proxy closed the connection)."""
    data = b""
    while data.count(b"HTTP/1.1 ") < count:
        chunk = await asyncio.wait_for(reader.read(65536), 60)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.llama
async def test_pipelined_stream_then_plain_requests_all_succeed(
    shared_llama_server: RunningServer, tmp_path: Path
) -> None:
    # Pipelined requests reach the upstream pool right after a stream ends: the tightest reuse window.
    service = await start_proxy(shared_llama_server.url, tmp_path)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        writer.write(b"".join(raw_request(s) for _ in range(20) for s in (False, True, False)))
        await writer.drain()
        data = await read_responses(reader, 60)
        writer.close()
    finally:
        await service.stop()
    assert data.count(b"HTTP/1.1 200 ") == 60, data.count(b"HTTP/1.1 502")
    assert service.forwarder is not None
    stats = service.forwarder.stats
    # llama-server closes the connection after a stream: the pool never hands out such a connection
    # (it is found closed before anything is written), so no POST needs a retry.
    assert (stats.requests, stats.upstream_errors) == (60, 0)


@pytest.mark.llama
async def test_sequential_stream_and_plain_requests_all_succeed(
    shared_llama_server: RunningServer, tmp_path: Path
) -> None:
    service = await start_proxy(shared_llama_server.url, tmp_path)
    statuses: list[int] = []
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=60) as client:
            for _ in range(20):
                for stream in (False, True, False):
                    response = await client.post("/v1/messages", json=BODY | {"stream": stream})
                    statuses.append(response.status_code)
    finally:
        await service.stop()
    assert statuses == [200] * 60


async def test_post_not_resent_when_the_upstream_drops_it_after_reading(tmp_path: Path) -> None:
    # An upstream that answers one request per connection with keep-alive, then reads the start of the
    # next one and hangs up: it may have acted on it, so the POST is answered 502, never sent twice.
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        head = (await reader.readuntil(b"\r\n\r\n")).decode().lower()
        length = int(head.split("content-length:")[1].split("\r\n")[0])
        await reader.readexactly(length)
        body = b'{"ok":true}'
        reply = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        writer.write(reply.encode() + body)
        await writer.drain()
        await reader.read(1)  # the next request's first byte: close without answering
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    service = await start_proxy(f"http://127.0.0.1:{port}", tmp_path)
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            replies = [await client.post("/v1/messages", json=BODY) for _ in range(3)]
    finally:
        await service.stop()
        server.close()
        await server.wait_closed()
    assert [r.status_code for r in replies] == [200, 502, 200], connections
    assert replies[1].json()["type"] == "error"  # the Anthropic dialect, as the client asked
    assert service.forwarder is not None
    assert service.forwarder.stats.upstream_errors == 1
    assert connections == 2

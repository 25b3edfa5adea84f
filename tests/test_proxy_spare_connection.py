"""A streamed reply's upstream connection is retired; a spare opened meanwhile serves the next request."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.llama import RunningServer

from tui.core.analysis.sinks import NullAnalyzer
from tui.core.config import JournalSettings, ProxySettings, Settings
from tui.core.proxy.pool import LivePoolConnector
from tui.core.proxy.service import ProxyService

pytestmark = [pytest.mark.timeout(240)]

BODY: dict[str, Any] = {
    "model": "m",
    "max_tokens": 8,
    "temperature": 0,
    "system": "be brief " * 50,
    "messages": [{"role": "user", "content": "hello"}],
}


@dataclass
class Seen:
    """One request as the upstream saw it: its connection's number and when that connection was opened."""

    connection: int
    accepted: float
    arrived: float
    stream: bool


@dataclass
class ClosingUpstream:
    """Answers JSON with keep-alive and closes the connection after a streamed reply, as llama-server does."""

    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    server: asyncio.Server | None = None
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    stopped: bool = False

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        assert self.server is not None
        self.stopped = True
        self.server.close()
        for writer in self.writers:  # idle keep-alive connections too
            writer.close()
        await self.server.wait_closed()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.stopped:  # accepted just before the stop, handled after it
            writer.close()
            return
        self.connections += 1
        self.writers.append(writer)
        number, accepted = self.connections, time.monotonic()
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode().lower()
                length = int(head.split("content-length:")[1].split("\r\n")[0])
                stream = json.loads(await reader.readexactly(length)).get("stream", False)
                self.seen.append(Seen(number, accepted, time.monotonic(), stream))
                if not stream:
                    body = b'{"ok":true}'
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                        % (len(body), body)
                    )
                    await writer.drain()
                    continue
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                )
                for i in range(5):
                    event = b"data: {\"n\": %d}\n\n" % i
                    writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                    await writer.drain()
                    await asyncio.sleep(0.01)  # tokens come one by one
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                break  # closed without a Connection: close header
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def start_proxy(upstream: str, tmp_path: Path) -> ProxyService:
    settings = Settings(
        proxy=ProxySettings(listen="127.0.0.1:0", upstream=upstream),
        journal=JournalSettings(path=str(tmp_path / "j.sqlite3")),
    )
    service = ProxyService(settings, analyzer_factory=NullAnalyzer, analysis="thread", journal_enabled=False)
    await service.start()
    return service


def connector_of(service: ProxyService) -> LivePoolConnector:
    assert service.forwarder is not None
    connector = service.forwarder.session.connector
    assert isinstance(connector, LivePoolConnector)
    return connector


async def test_request_after_a_stream_goes_out_on_a_spare_opened_before_it(tmp_path: Path) -> None:
    upstream = ClosingUpstream()
    service = await start_proxy(await upstream.start(), tmp_path)
    connector = connector_of(service)
    sent: list[float] = []
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            for stream in (True, False, True, True, False):
                await asyncio.sleep(0.05)
                sent.append(time.monotonic())
                response = await client.post("/v1/messages", json=BODY | {"stream": stream})
                assert response.status_code == 200
    finally:
        await service.stop()
        await upstream.stop()
    assert [s.stream for s in upstream.seen] == [True, False, True, True, False]  # each sent once
    # Every request after the first stream went out on a connection opened before the client sent it.
    for seen, at in zip(upstream.seen[1:], sent[1:], strict=True):
        assert seen.accepted < at, upstream.seen
    # No streamed connection was used twice (the upstream closed each one), and nothing was retried.
    stream_connections = [s.connection for s in upstream.seen if s.stream]
    assert len(set(stream_connections)) == 3
    assert service.forwarder is not None
    assert service.forwarder.stats.upstream_errors == 0
    assert connector.spares_opened >= 3


async def test_an_unreachable_upstream_after_a_stream_still_answers_502(tmp_path: Path) -> None:
    upstream = ClosingUpstream()
    service = await start_proxy(await upstream.start(), tmp_path)
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            first = await client.post("/v1/messages", json=BODY | {"stream": True})
            await upstream.stop()  # the listener and every connection, the spare included
            await asyncio.sleep(0.1)
            second = await client.post("/v1/messages", json=BODY)
    finally:
        await service.stop()
    assert first.status_code == 200
    assert second.status_code == 502
    assert second.json()["type"] == "error"


@pytest.mark.llama
async def test_streams_and_plain_requests_on_spares_against_llama_server(
    shared_llama_server: RunningServer, tmp_path: Path
) -> None:
    service = await start_proxy(shared_llama_server.url, tmp_path)
    connector = connector_of(service)
    statuses: list[int] = []
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=60) as client:
            for _ in range(8):
                for stream in (True, False, True):
                    response = await client.post("/v1/messages", json=BODY | {"stream": stream})
                    statuses.append(response.status_code)
    finally:
        await service.stop()
    assert statuses == [200] * 24
    assert service.forwarder is not None
    assert (service.forwarder.stats.requests, service.forwarder.stats.upstream_errors) == (24, 0)
    assert connector.spares_opened >= 8

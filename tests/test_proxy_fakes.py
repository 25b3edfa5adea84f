"""A fake fast upstream (aiohttp) that records exactly what it received, plus proxy fixtures.

Imported by the other tests/test_proxy_*.py modules; it holds one self-check of the fake itself.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tui.core.anatomy.analyze import AnalysisResult
from tui.core.anatomy.exchange import Exchange
from tui.core.config import JournalSettings, ProxySettings, Settings
from tui.core.proxy.service import ProxyService
from tui.core.records import RequestRecord

JSON_BODY = b'{"id":"msg_1","type":"message","usage":{"input_tokens":12,"output_tokens":3}}'


@dataclass
class Received:
    """One request as the upstream saw it."""

    method: str
    raw_path: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class FakeUpstream:
    """Behaviour is chosen by the `x-fake-mode` request header (forwarded by the proxy)."""

    received: list[Received] = field(default_factory=list)
    sse_sent: int = 0
    client_gone: asyncio.Event = field(default_factory=asyncio.Event)
    runner: web.ServerRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on a free loopback port."""
        server = web.Server(self.handle)
        self.runner = web.ServerRunner(server)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self.runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop listening."""
        if self.runner is not None:
            await self.runner.cleanup()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Record the request, then answer per x-fake-mode."""
        body = await request.content.read()  # unbounded, unlike request.read()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
        self.received.append(Received(request.method, request.raw_path, headers, body))
        mode = request.headers.get("x-fake-mode", "json")
        if mode == "json":
            resp = web.Response(body=JSON_BODY, content_type="application/json")
            resp.headers.add("X-Upstream", "fake")
            resp.headers.add("Set-Cookie", "a=1")
            resp.headers.add("Set-Cookie", "b=2")
            return resp
        if mode == "gzip":
            resp = web.Response(body=gzip.compress(JSON_BODY), content_type="application/json")
            resp.headers["Content-Encoding"] = "gzip"
            return resp
        if mode.startswith("status:"):
            return web.Response(
                status=int(mode[7:]), body=b'{"error":"nope"}', content_type="application/json"
            )
        if mode.startswith("sse:"):
            count, _, delay = mode[4:].partition(":")
            return await self._sse(request, int(count), float(delay or 0), die_after=None)
        if mode.startswith("die:"):
            return await self._sse(request, 100, 0.01, die_after=int(mode[4:]))
        if mode == "die-json":
            partial = web.StreamResponse(headers={"Content-Type": "application/json"})
            partial.content_length = 1000
            await partial.prepare(request)
            await partial.write(b'{"partial": ')
            await asyncio.sleep(0.05)
            assert request.transport is not None
            request.transport.abort()
            return partial
        return web.Response(status=400, text=f"unknown fake mode {mode}")

    async def _sse(
        self, request: web.BaseRequest, count: int, delay: float, die_after: int | None
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        try:
            for i in range(count):
                if die_after is not None and i == die_after:
                    assert request.transport is not None
                    request.transport.abort()
                    return resp
                await resp.write(f'event: content_block_delta\ndata: {{"i": {i}}}\n\n'.encode())
                self.sse_sent += 1
                if delay:
                    await asyncio.sleep(delay)
            await resp.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            self.client_gone.set()
            raise
        return resp


class StubAnalyzer:
    """Stands in for the Analyzer in transport-level tests (real analysis is tested against llama-server)."""

    def analyze(self, exchange: Exchange) -> AnalysisResult:
        """Mark everything as unparsed with a reason naming the path."""
        return AnalysisResult(unparsed_reason=f"stub analyzer: {exchange.path}")


def proxy_settings(upstream: str, journal: Path, **journal_kw: Any) -> Settings:
    """Settings for a proxy on a free loopback port forwarding to `upstream`."""
    return Settings(
        proxy=ProxySettings(listen="127.0.0.1:0", upstream=upstream),
        journal=JournalSettings(path=str(journal), **journal_kw),
    )


@pytest.fixture
async def fake_upstream() -> AsyncIterator[FakeUpstream]:
    """A running fake upstream."""
    upstream = FakeUpstream()
    await upstream.start()
    yield upstream
    await upstream.stop()


@dataclass
class RunningProxy:
    """A started ProxyService with the records it delivered."""

    service: ProxyService
    records: list[RequestRecord]

    @property
    def url(self) -> str:
        """Proxy base URL."""
        return self.service.url

    async def flushed(self) -> list[RequestRecord]:
        """Wait until every finished exchange is journaled and delivered."""
        assert await asyncio.to_thread(self.service.flush, 30.0)
        await asyncio.sleep(0.01)  # let call_soon_threadsafe deliveries run
        return self.records


ProxyFactory = Callable[..., Any]


@pytest.fixture
async def start_proxy(tmp_path: Path) -> AsyncIterator[ProxyFactory]:
    """Factory: `await start_proxy(upstream_url, analyzer=StubAnalyzer(), **journal_kw)`."""
    started: list[ProxyService] = []

    async def start(upstream: str, analyzer: Any = None, **journal_kw: Any) -> RunningProxy:
        records: list[RequestRecord] = []
        chosen = analyzer or StubAnalyzer()
        service = ProxyService(
            proxy_settings(upstream, tmp_path / "journal.sqlite3", **journal_kw),
            on_record=records.append,
            analyzer_factory=lambda: chosen,
            analysis="thread",
        )
        await service.start()
        started.append(service)
        return RunningProxy(service, records)

    yield start
    for service in started:
        await service.stop()


def client_session() -> aiohttp.ClientSession:
    """A client that changes nothing on the way (no decompression, no auto headers beyond the minimum)."""
    return aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=60))


async def test_fake_upstream_records_requests(fake_upstream: FakeUpstream) -> None:
    async with client_session() as session:
        async with session.post(fake_upstream.url + "/x?q=1", data=b"abc") as resp:
            assert await resp.read() == JSON_BODY
    assert fake_upstream.received[0].raw_path == "/x?q=1"
    assert fake_upstream.received[0].body == b"abc"

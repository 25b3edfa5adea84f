"""Bytes untouched: what a raw recording upstream receives through the proxy, hostile inputs and faults."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from builders import cc_request

from tui.core.actions.compaction import CompactionStore
from tui.core.actions.mcp_switch import McpSwitchStore
from tui.core.anatomy.analyze import AnalysisResult
from tui.core.anatomy.body import decode_bytes
from tui.core.anatomy.exchange import Exchange
from tui.core.config import AnatomySettings, JournalSettings, ProxySettings, Settings
from tui.core.control.transform_state import TransformSwitchStore
from tui.core.proxy.pool import LivePoolConnector
from tui.core.proxy.service import ProxyService
from tui.core.records import RequestRecord

pytestmark = pytest.mark.timeout(60)

BILLING = "x-anthropic-billing-header: cc_version=2.1.197.9e1; cc_entrypoint=cli; cch=a1b2c;"
STABLE = "x-anthropic-billing-header: cc_version=2.1.197; cc_entrypoint=cli; cch=00000;"
REPLY = b'{"id":"msg_1","type":"message","usage":{"input_tokens":12,"output_tokens":3}}'


@dataclass
class Seen:
    """One request exactly as it arrived on the upstream's socket."""

    head: bytes
    body: bytes

    def header(self, name: str) -> str | None:
        """A header value (first), by case-insensitive name."""
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower().encode():
                return value.strip().decode("latin-1")
        return None


@dataclass
class RawUpstream:
    """A raw asyncio HTTP/1.1 upstream: records head and body bytes; `close_after_read` never answers."""

    close_after_read: bool = False
    close_when_idle: bool = False
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read whole requests (Content-Length or chunked) and answer each with a small JSON body."""
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                seen = Seen(head, b"")
                length = seen.header("Content-Length")
                if length is not None:
                    seen.body = await reader.readexactly(int(length))
                elif (seen.header("Transfer-Encoding") or "").lower() == "chunked":
                    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                        seen.body += (await reader.readexactly(size + 2))[:-2]
                    await reader.readuntil(b"\r\n")
                self.seen.append(seen)
                if self.close_after_read:
                    writer.close()
                    return
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(REPLY), REPLY)
                )
                await writer.drain()
                if self.close_when_idle:
                    writer.close()  # like llama-server after a stream, without saying Connection: close
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        """Stop listening."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


class KeepBodies:
    """Records the request body the analysis reads (decoded by its Content-Encoding, as the worker does)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def analyze(self, exchange: Exchange) -> AnalysisResult:
        """Keep the decoded request body; nothing else."""
        self.bodies.append(decode_bytes(exchange.request_body, exchange.request_headers))
        return AnalysisResult(unparsed_reason="test analyzer")


@dataclass
class Proxy:
    """A started proxy, its records and what its analyzer saw."""

    service: ProxyService
    records: list[RequestRecord]
    analyzer: KeepBodies

    async def flushed(self) -> list[RequestRecord]:
        """Every finished exchange journaled and delivered."""
        assert await asyncio.to_thread(self.service.flush, 30.0)
        await asyncio.sleep(0.01)
        return self.records


StartProxy = Callable[..., Awaitable[Proxy]]


@pytest.fixture
async def upstream() -> AsyncIterator[RawUpstream]:
    """A running raw upstream that answers every request."""
    server = RawUpstream()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def start_proxy(tmp_path: Path) -> AsyncIterator[StartProxy]:
    """Factory: a proxy (state files in tmp_path) forwarding to `url`, with [proxy] overrides."""
    started: list[ProxyService] = []

    async def start(url: str, capture_limit: int | None = None, **proxy_kw: Any) -> Proxy:
        settings = Settings(
            proxy=ProxySettings(listen="127.0.0.1:0", upstream=url, **proxy_kw),
            journal=JournalSettings(path=str(tmp_path / "journal.sqlite3")),
        )
        records: list[RequestRecord] = []
        analyzer = KeepBodies()
        service = ProxyService(
            settings,
            on_record=records.append,
            analyzer_factory=lambda: analyzer,
            analysis="thread",
            capture_limit=capture_limit,
            mcp_store=McpSwitchStore(tmp_path / "mcp.json"),
            transform_switches=TransformSwitchStore(settings.transforms.enabled, tmp_path / "t.json"),
            compaction_store=CompactionStore(tmp_path / "compactions.json"),
        )
        await service.start()
        started.append(service)
        return Proxy(service, records, analyzer)

    yield start
    for service in started:
        await service.stop()


async def exchange(port: int, raw: bytes) -> bytes:
    """Send raw request bytes on a new connection; everything the proxy answers until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = b""
    while b"\r\n\r\n" not in data or not _complete(data):
        chunk = await asyncio.wait_for(reader.read(65536), 30)
        if not chunk:
            break
        data += chunk
    writer.close()
    return data


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def post(body: bytes, path: str = "/v1/messages", extra: str = "") -> bytes:
    """A POST request as bytes."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def hostile(body: dict[str, Any]) -> bytes:
    """Indented, non-ASCII escaped, with members a re-serialisation would change."""
    text = json.dumps(body, indent=2, ensure_ascii=True)
    odd = b'{"temperature": 0.70, "seed": 123456789012345678901234567890, "d": 1, "d": 2,'
    return odd + text[1:].encode()


def status_and_body(data: bytes) -> tuple[int, dict[str, Any]]:
    """The status code and JSON body of one answer."""
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), orjson.loads(body)


async def test_a_parsed_rewrite_reaches_the_upstream_with_only_its_line_changed(
    upstream: RawUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(upstream.url)
    body = cc_request(billing=BILLING)
    body["messages"][0]["content"][-1]["text"] = "répare: " + BILLING  # marker twice: the parsed path
    raw = hostile(body)
    status, _ = status_and_body(await exchange(proxy.service.port, post(raw)))
    assert status == 200
    assert upstream.seen[0].body == raw.replace(BILLING.encode(), STABLE.encode(), 1)
    assert upstream.seen[0].header("Content-Length") == str(len(upstream.seen[0].body))


async def test_gzip_body_forwarded_as_received_and_analysed_decompressed(
    upstream: RawUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(upstream.url)
    plain = orjson.dumps(cc_request(billing=BILLING))
    packed = gzip.compress(plain)
    status, _ = status_and_body(
        await exchange(proxy.service.port, post(packed, extra="Content-Encoding: gzip\r\n"))
    )
    assert status == 200
    assert upstream.seen[0].body == packed  # never decompressed, never rewritten
    assert upstream.seen[0].header("Content-Encoding") == "gzip"
    await proxy.flushed()
    assert proxy.analyzer.bodies == [plain]


async def test_post_the_upstream_read_and_dropped_is_sent_once_and_answered_502(
    start_proxy: StartProxy,
) -> None:
    dropping = RawUpstream(close_after_read=True)
    await dropping.start()
    try:
        proxy = await start_proxy(dropping.url)
        data = await exchange(proxy.service.port, post(b'{"model":"m","messages":[]}'))
        status, body = status_and_body(data)
        get = await exchange(proxy.service.port, b"GET /v1/models HTTP/1.1\r\nHost: proxy\r\n\r\n")
    finally:
        await dropping.stop()
    # The POST once; the GET twice (idempotent: aiohttp retries it once).
    assert [s.head.split(b" ")[0] for s in dropping.seen] == [b"POST", b"GET", b"GET"]
    assert status == 502
    assert body["type"] == "error" and "not sent twice" in body["error"]["message"]
    assert status_and_body(get)[0] == 502


async def test_pooled_connection_closed_by_the_upstream_is_not_used() -> None:
    closing = RawUpstream(close_when_idle=True)  # like llama-server after a stream
    await closing.start()
    connector = LivePoolConnector(limit=0)
    statuses = []
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            for _ in range(3):
                async with session.post(closing.url + "/v1/messages", data=b"{}") as response:
                    await response.read()
                    statuses.append(response.status)
                # Block the loop: the upstream's FIN reaches the socket but the loop has not read it, so
                # the pooled connection still looks open (a plain aiohttp pool then fails the POST).
                time.sleep(0.1)
    finally:
        await closing.stop()
    assert statuses == [200, 200, 200]
    assert len(closing.seen) == 3
    assert connector.peer_closed == 2


async def test_upstream_credentials_and_a_client_authorization_header(
    upstream: RawUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(f"http://alice:s3cret-pw@127.0.0.1:{upstream.port}")
    clash = await exchange(proxy.service.port, post(b"{}", extra="Authorization: Bearer client-token\r\n"))
    status, body = status_and_body(clash)
    assert status == 502 and body["type"] == "error"
    assert "s3cret" not in clash.decode() and "Authorization" in body["error"]["message"]
    ok = await exchange(proxy.service.port, post(b"{}"))
    assert status_and_body(ok)[0] == 200
    assert [s.header("Authorization") for s in upstream.seen] == ["Basic YWxpY2U6czNjcmV0LXB3"]
    assert b"s3cret" not in upstream.seen[0].head.split(b"\r\n")[0]
    records = await proxy.flushed()
    assert sorted(r.status for r in records) == [200, 502]
    assert all("s3cret" not in (r.error or "") for r in records)


async def test_absolute_form_target_answered_400_in_the_client_dialect(
    upstream: RawUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(upstream.url)
    data = await exchange(proxy.service.port, post(b"{}", path="http://elsewhere.example/v1/messages"))
    status, body = status_and_body(data)
    assert status == 400
    assert body["type"] == "error" and "origin-form" in body["error"]["message"]
    openai = await exchange(proxy.service.port, post(b"{}", path="http://u:pw-9@h/v1/chat/completions"))
    assert status_and_body(openai)[1]["error"]["code"] == 400
    assert b"pw-9" not in openai
    assert upstream.seen == []
    records = await proxy.flushed()
    assert sorted(r.path for r in records) == [
        "http://elsewhere.example/v1/messages",
        "http://h/v1/chat/completions",
    ]


async def test_body_over_the_capture_limit_is_streamed_untouched(
    upstream: RawUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(upstream.url, capture_limit=64 * 1024)
    body = cc_request(billing=BILLING)
    body["messages"][0]["content"][-1]["text"] = "x" * 300_000
    raw = orjson.dumps(body)
    status, _ = status_and_body(await exchange(proxy.service.port, post(raw)))
    assert status == 200
    assert upstream.seen[0].body == raw  # not rewritten: the billing line is as the client sent it
    assert upstream.seen[0].header("Content-Length") == str(len(raw))
    (record,) = await proxy.flushed()
    assert record.request_bytes == len(raw)
    assert proxy.analyzer.bodies == [raw[: 64 * 1024]]
    assert proxy.service.rewriter is not None and not proxy.service.controls.recent  # nothing kept whole


async def test_slow_loris_is_dropped_while_a_normal_request_goes_through(
    upstream: RawUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(upstream.url, header_timeout=1.0, body_timeout=1.0)
    port = proxy.service.port
    lorises = [await asyncio.open_connection("127.0.0.1", port) for _ in range(50)]
    for _, writer in lorises:
        writer.write(b"POST /v1/messages HTTP/1.1\r\nHost: proxy\r\n")  # and never the rest
    slow_body = await asyncio.open_connection("127.0.0.1", port)
    slow_body[1].write(b"POST /v1/messages HTTP/1.1\r\nHost: proxy\r\nContent-Length: 100\r\n\r\n{")
    normal = await exchange(port, post(b'{"model":"m","messages":[]}'))
    assert status_and_body(normal)[0] == 200
    for reader, _ in lorises:
        assert await asyncio.wait_for(reader.read(), 30) == b""  # closed, nothing answered
    timed_out = await asyncio.wait_for(slow_body[0].read(), 30)
    status, body = status_and_body(timed_out)
    assert status == 408 and "body_timeout" in body["error"]["message"]
    for _, writer in [*lorises, slow_body]:
        writer.close()
    assert len(upstream.seen) == 1


async def test_the_real_analyzer_reads_a_gzip_body_the_proxy_forwarded_compressed(
    upstream: RawUpstream, tmp_path: Path
) -> None:
    settings = Settings(
        proxy=ProxySettings(listen="127.0.0.1:0", upstream=upstream.url),
        journal=JournalSettings(path=str(tmp_path / "journal.sqlite3")),
        anatomy=AnatomySettings(counter="tiktoken"),
    )
    records: list[RequestRecord] = []
    service = ProxyService(
        settings,
        on_record=records.append,
        analysis="thread",
        mcp_store=McpSwitchStore(tmp_path / "mcp.json"),
        transform_switches=TransformSwitchStore(settings.transforms.enabled, tmp_path / "t.json"),
        compaction_store=CompactionStore(tmp_path / "compactions.json"),
    )
    await service.start()
    try:
        packed = gzip.compress(orjson.dumps(cc_request(billing=BILLING)))
        reply = await exchange(service.port, post(packed, extra="Content-Encoding: gzip\r\n"))
        assert status_and_body(reply)[0] == 200
        assert await asyncio.to_thread(service.flush, 30.0)
        await asyncio.sleep(0.01)
    finally:
        await service.stop()
    assert upstream.seen[0].body == packed
    (record,) = records
    assert record.model == "claude-sonnet-4-5" and record.anatomy is not None
    assert record.anatomy.categories["system"] > 0


async def test_an_mcp_server_switched_off_reaches_the_upstream_as_a_cut(
    upstream: RawUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(upstream.url)
    proxy.service.mcp_store.set_enabled("memory", False)
    body = cc_request(billing=BILLING)
    raw = hostile(body)
    status, _ = status_and_body(await exchange(proxy.service.port, post(raw)))
    assert status == 200
    kept = [t for t in body["tools"] if not t["name"].startswith("mcp__memory__")]
    assert len(kept) < len(body["tools"])
    expected = hostile({**body, "tools": kept}).replace(BILLING.encode(), STABLE.encode(), 1)
    assert upstream.seen[0].body == expected

"""Transport tests against a fake fast upstream: byte identity, streaming, faults, control API."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket

import aiohttp
import pytest
from test_proxy_fakes import (
    JSON_BODY,
    FakeUpstream,
    ProxyFactory,
    client_session,
    fake_upstream,
    start_proxy,
)
from yarl import URL

from tui.core.config import ConfigError, ProxySettings, Settings
from tui.core.proxy.address import parse_listen
from tui.core.proxy.headers import HOP_BY_HOP
from tui.core.proxy.service import ProxyService

__all__ = ["fake_upstream", "start_proxy"]  # fixtures re-exported for pytest

pytestmark = pytest.mark.timeout(60)


def big_body(size: int) -> bytes:
    """A JSON-ish body of about `size` bytes with non-ASCII content."""
    unit = '{"type":"text","text":"héllo wörld ✓ ' + "x" * 80 + '"},'
    n = size // len(unit.encode()) + 1
    return ('{"model":"m","stream":true,"messages":[' + unit * n + '{}]}').encode()


async def test_request_reaches_upstream_byte_identical(
    fake_upstream: FakeUpstream, start_proxy: ProxyFactory
) -> None:
    proxy = await start_proxy(fake_upstream.url)
    body = big_body(150_000)
    sent = [
        ("Content-Type", "application/json"),
        ("x-api-key", "sk-secret-value"),
        ("anthropic-beta", "a,b"),
        ("X-Dup", "one"),
        ("X-Dup", "two"),
        ("Accept-Encoding", "gzip"),
    ]
    async with client_session() as session:
        async with session.post(
            URL(proxy.url + "/v1/messages?beta=true&x=%2F", encoded=True), data=body, headers=sent,
            skip_auto_headers=["User-Agent", "Accept"],
        ) as resp:
            assert resp.status == 200
            assert await resp.read() == JSON_BODY
    got = fake_upstream.received[-1]
    assert got.method == "POST"
    assert got.raw_path == "/v1/messages?beta=true&x=%2F"
    assert got.body == body
    end_to_end = [(k, v) for k, v in got.headers if k.lower() not in HOP_BY_HOP]
    assert end_to_end == sent  # same names, values, order and duplicates; nothing added
    assert dict((k.lower(), v) for k, v in got.headers)["content-length"] == str(len(body))


async def test_response_status_headers_and_compressed_body_preserved(
    fake_upstream: FakeUpstream, start_proxy: ProxyFactory
) -> None:
    proxy = await start_proxy(fake_upstream.url)
    async with client_session() as session:
        async with session.get(proxy.url + "/v1/models") as resp:
            assert resp.status == 200
            assert resp.headers.getall("Set-Cookie") == ["a=1", "b=2"]
            assert resp.headers["X-Upstream"] == "fake"
            assert await resp.read() == JSON_BODY
        async with session.get(proxy.url + "/gz", headers={"x-fake-mode": "gzip"}) as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            raw = await resp.read()
            assert raw == gzip.compress(JSON_BODY) or gzip.decompress(raw) == JSON_BODY
            assert raw != JSON_BODY  # not decompressed on the way
        async with session.post(
            proxy.url + "/v1/chat/completions", data=b"{}", headers={"x-fake-mode": "status:418"}
        ) as resp:
            assert resp.status == 418
            assert await resp.read() == b'{"error":"nope"}'


async def test_head_request_forwarded_without_body(
    fake_upstream: FakeUpstream, start_proxy: ProxyFactory
) -> None:
    proxy = await start_proxy(fake_upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.service.port)
    writer.write(b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert rest == b""
    assert fake_upstream.received[-1].method == "HEAD"
    assert fake_upstream.received[-1].raw_path == "/"


async def test_sse_streamed_chunk_by_chunk(fake_upstream: FakeUpstream, start_proxy: ProxyFactory) -> None:
    proxy = await start_proxy(fake_upstream.url)
    direct: bytes
    async with client_session() as session:
        async with session.post(fake_upstream.url + "/v1/messages", data=b"{}",
                                headers={"x-fake-mode": "sse:20"}) as resp:
            direct = await resp.read()
        async with session.post(proxy.url + "/v1/messages", data=b"{}",
                                headers={"x-fake-mode": "sse:20:0.1"}) as resp:
            assert resp.headers["Content-Type"] == "text/event-stream"
            first = await resp.content.readuntil(b"\n\n")
            # The first event arrives while the upstream is still producing the rest.
            assert fake_upstream.sse_sent - 20 < 20
            assert first == b'event: content_block_delta\ndata: {"i": 0}\n\n'
            rest = await resp.read()
    assert first + rest == direct


async def test_upstream_down_gives_502_in_each_dialect(start_proxy: ProxyFactory) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    proxy = await start_proxy(dead)
    async with client_session() as session:
        async with session.post(proxy.url + "/v1/messages?beta=true", data=b"{}") as resp:
            assert resp.status == 502
            anthropic = json.loads(await resp.read())
        async with session.post(proxy.url + "/v1/chat/completions", data=b"{}") as resp:
            assert resp.status == 502
            openai = json.loads(await resp.read())
        async with session.get(proxy.url + "/_ctxbudget/health") as resp:
            health = json.loads(await resp.read())
    assert anthropic["type"] == "error" and anthropic["error"]["type"] == "api_error"
    assert dead in anthropic["error"]["message"]
    assert set(openai["error"]) == {"message", "type", "code"} and dead in openai["error"]["message"]
    assert health["status"] == "ok" and health["upstream_errors"] == 2
    records = await proxy.flushed()
    assert [r.status for r in records] == [502, 502]
    assert all(r.error and dead in r.error for r in records)


async def test_upstream_dies_mid_sse_sends_error_event(
    fake_upstream: FakeUpstream, start_proxy: ProxyFactory
) -> None:
    proxy = await start_proxy(fake_upstream.url)
    async with client_session() as session:
        die = {"x-fake-mode": "die:3"}
        async with session.post(proxy.url + "/v1/messages", data=b"{}", headers=die) as r:
            text = (await r.read()).decode()
        async with session.post(proxy.url + "/v1/chat/completions", data=b"{}",
                                headers={"x-fake-mode": "die:2"}) as r:
            openai_text = (await r.read()).decode()
        async with session.get(proxy.url + "/v1/models") as r:
            assert r.status == 200  # still up
    events = text.strip().split("\n\n")
    assert len(events) == 4
    assert events[-1].startswith("event: error\ndata: ")
    payload = json.loads(events[-1].split("data: ", 1)[1])
    assert payload["error"]["type"] == "api_error" and fake_upstream.url in payload["error"]["message"]
    last = json.loads(openai_text.strip().split("\n\n")[-1].removeprefix("data: "))
    assert fake_upstream.url in last["error"]["message"]
    records = await proxy.flushed()
    assert "mid-response" in (records[0].error or "")


async def test_upstream_dies_mid_json_cuts_client(
    fake_upstream: FakeUpstream, start_proxy: ProxyFactory
) -> None:
    proxy = await start_proxy(fake_upstream.url)
    async with client_session() as session:
        async with session.get(proxy.url + "/v1/x", headers={"x-fake-mode": "die-json"}) as r:
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()


async def test_client_gone_closes_upstream_at_once(
    fake_upstream: FakeUpstream, start_proxy: ProxyFactory
) -> None:
    proxy = await start_proxy(fake_upstream.url)
    async with client_session() as session:
        slow = {"x-fake-mode": "sse:200:0.05"}
        resp = await session.post(proxy.url + "/v1/messages", data=b"{}", headers=slow)
        await resp.content.readuntil(b"\n\n")
        resp.close()  # drop the connection mid-stream
    await asyncio.wait_for(fake_upstream.client_gone.wait(), 2.0)
    assert fake_upstream.sse_sent < 100
    records = await proxy.flushed()
    error = records[-1].error or ""
    assert error.startswith("client closed the connection after ") and "while the response streamed" in error


async def test_control_prefix_is_not_forwarded(
    fake_upstream: FakeUpstream, start_proxy: ProxyFactory
) -> None:
    proxy = await start_proxy(fake_upstream.url)
    async with client_session() as session:
        async with session.get(proxy.url + "/_ctxbudget/health") as r:
            health = await r.json()
        async with session.post(proxy.url + "/_ctxbudget/other", data=b"x") as r:
            assert r.status == 404
    assert health["upstream"] == fake_upstream.url and health["listen"] == proxy.url
    assert fake_upstream.received == []


async def test_odd_bodies_forwarded_untouched_and_journaled(
    fake_upstream: FakeUpstream, start_proxy: ProxyFactory
) -> None:
    proxy = await start_proxy(fake_upstream.url)
    bodies = {
        "/v1/messages": b'{"model": "m", "messages": [',  # malformed JSON
        "/v1/chat/completions": b"\x00\xffnot json at all",
        "/some/unknown/path?z=1": b"plain text",
        "/v1/completions": big_body(20 * 1024 * 1024),
    }
    async with client_session() as session:
        for path, body in bodies.items():
            async with session.post(proxy.url + path, data=body) as r:
                assert r.status == 200
                await r.read()
    assert [(r.raw_path, r.body) for r in fake_upstream.received] == list(bodies.items())
    records = await proxy.flushed()
    assert [r.path for r in records] == list(bodies)
    assert all(r.unparsed_reason for r in records)
    assert records[-1].request_bytes == len(bodies["/v1/completions"])


async def test_sequential_and_concurrent_requests_all_journaled(
    fake_upstream: FakeUpstream, start_proxy: ProxyFactory
) -> None:
    proxy = await start_proxy(fake_upstream.url)
    async with client_session() as session:
        for i in range(500):
            async with session.post(proxy.url + f"/v1/chat/completions?n={i}", data=b"{}") as r:
                assert await r.read() == JSON_BODY

        async def one(i: int) -> int:
            async with session.post(proxy.url + f"/v1/messages?c={i}", data=b"{}",
                                    headers={"x-fake-mode": "sse:50:0.002"}) as r:
                await r.read()
                return r.status

        assert await asyncio.gather(*(one(i) for i in range(16))) == [200] * 16
    records = await proxy.flushed()
    assert len(records) == 516
    from tui.core.journal.writer import JournalReader

    reader = JournalReader(proxy.service.journal_path)
    rows = reader.latest(1000)
    assert len(rows) == 516
    assert {r.path for r in rows} == {f"/v1/chat/completions?n={i}" for i in range(500)} | {
        f"/v1/messages?c={i}" for i in range(16)
    }
    reader.close()


def test_listen_refuses_remote_without_flag() -> None:
    with pytest.raises(ConfigError, match="allow-remote"):
        ProxyService(Settings(proxy=ProxySettings(listen="0.0.0.0:3000")))
    assert parse_listen("0.0.0.0:3000", allow_remote=True).host == "0.0.0.0"
    assert parse_listen("[::1]:3000").is_loopback
    assert parse_listen("localhost:1").port == 1
    with pytest.raises(ConfigError):
        parse_listen("127.0.0.1")

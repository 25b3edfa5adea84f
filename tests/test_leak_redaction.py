"""Nothing leaked: secrets in headers, query strings and upstream URLs never reach the journal or a reply.

The upstream (a recording fake) still receives every value byte for byte.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from test_proxy_fakes import FakeUpstream, ProxyFactory, client_session, fake_upstream, start_proxy
from yarl import URL

from tui.core.redact import REDACTED, redact, redact_query, redact_text, redact_url

__all__ = ["fake_upstream", "start_proxy"]  # fixtures re-exported for pytest

pytestmark = pytest.mark.timeout(60)

SECRET = "sk-TOPSECRET-4242"
SECRET_HEADERS = ("X-Auth", "Authentication", "X-Password", "X-Access-Credential", "Authorization",
                  "x-api-key", "Proxy-Authorization", "X-Goog-Api-Key", "X-Amz-Security-Token")
SECRET_QUERY_KEYS = ("key", "api_key", "apikey", "access_token", "token", "secret", "password", "sig",
                     "X-Amz-Signature", "client_secret", "auth")


@pytest.mark.parametrize("name", SECRET_HEADERS)
def test_secret_header_names_are_redacted(name: str) -> None:
    assert redact([(name, SECRET), ("anthropic-beta", "visible")]) == {
        name.lower(): REDACTED, "anthropic-beta": "visible"
    }


@pytest.mark.parametrize("name", ["anthropic-version", "content-type", "x-claude-code-session-id",
                                  "x-session-affinity", "user-agent", "accept-encoding"])
def test_ordinary_headers_are_kept(name: str) -> None:
    assert redact([(name, "value")]) == {name: "value"}


@pytest.mark.parametrize("key", SECRET_QUERY_KEYS)
def test_secret_query_values_are_redacted(key: str) -> None:
    shown = redact_query(f"/v1/messages?beta=true&{key}={SECRET}&x=%2F")
    assert shown == f"/v1/messages?beta=true&{key}={REDACTED}&x=%2F"


def test_query_without_secrets_is_unchanged() -> None:
    for target in ("/v1/messages?beta=true", "/health", "/v1/models?limit=5&after=a%3Db", "/?"):
        assert redact_query(target) == target


def test_url_password_is_redacted_user_kept() -> None:
    assert redact_url(f"http://alice:{SECRET}@gpu-box:8080/v1?key={SECRET}") == (
        f"http://alice:{REDACTED}@gpu-box:8080/v1?key={REDACTED}"
    )
    assert redact_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert redact_url(f"https://{SECRET}@gpu-box/") == f"https://{REDACTED}@gpu-box/"
    message = f"upstream https://bob:{SECRET}@h:1 unreachable: Cannot connect to host h:1 (?token={SECRET})"
    assert SECRET not in redact_text(message)
    assert "bob" in redact_text(message)


async def test_secrets_reach_upstream_but_not_the_journal(
    fake_upstream: FakeUpstream, start_proxy: ProxyFactory, tmp_path: Path
) -> None:
    proxy = await start_proxy(fake_upstream.url, store_bodies=True)
    target = f"/v1/messages?beta=true&key={SECRET}1&api_key={SECRET}2&access_token={SECRET}3"
    sent = [(name, f"{SECRET}-{i}") for i, name in enumerate(SECRET_HEADERS)]
    sent.append(("Content-Type", "application/json"))
    async with client_session() as session:
        async with session.post(
            URL(proxy.url + target, encoded=True), data=b'{"model":"m"}', headers=sent
        ) as resp:
            assert resp.status == 200
    got = fake_upstream.received[-1]
    assert got.raw_path == target  # forwarded exactly
    received = dict(got.headers)
    for name, value in sent:
        if name.lower() != "proxy-authorization":  # hop-by-hop: never forwarded
            assert received[name] == value
    records = await proxy.flushed()
    shown = f"/v1/messages?beta=true&key={REDACTED}&api_key={REDACTED}&access_token={REDACTED}"
    assert records[-1].path == shown
    await proxy.service.stop()
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("journal.sqlite3"))
    assert on_disk
    assert SECRET.encode() not in on_disk


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_upstream_password_not_in_502_journal_or_health(
    start_proxy: ProxyFactory, tmp_path: Path
) -> None:
    upstream = f"http://alice:{SECRET}@127.0.0.1:{_dead_port()}"
    proxy = await start_proxy(upstream)
    async with client_session() as session:
        async with session.post(proxy.url + "/v1/messages", data=b"{}") as resp:
            assert resp.status == 502
            body = await resp.read()
        async with session.get(proxy.url + "/_ctxbudget/health") as resp:
            health = await resp.text()
    assert b"unreachable" in body and SECRET.encode() not in body
    assert "alice" in health and SECRET not in health
    records = await proxy.flushed()
    assert records[-1].error is not None and SECRET not in records[-1].error
    await proxy.service.stop()
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("journal.sqlite3"))
    assert b"unreachable" in on_disk
    assert SECRET.encode() not in on_disk



async def test_server_poller_snapshot_hides_url_password() -> None:
    from tui.core.poll.server_poller import ServerPoller

    poller = ServerPoller(f"http://alice:{SECRET}@127.0.0.1:{_dead_port()}", timeout=2.0)
    try:
        snapshot = await poller.poll_once()
    finally:
        await poller.aclose()
    assert snapshot.state == "down"
    assert "alice" in snapshot.url and SECRET not in snapshot.url
    assert snapshot.error and SECRET not in snapshot.error


def test_proxy_command_prints_no_secret(tmp_path: Path) -> None:
    """Banner and request lines of a real `ctxbudget proxy`: URL passwords and query secrets redacted."""
    import os
    import subprocess
    import sys

    import httpx
    from support.llama import free_port

    upstream = f"http://alice:{SECRET}@127.0.0.1:{_dead_port()}"
    config = tmp_path / "config.toml"
    config.write_text(f'[server]\nurl = "{upstream}"\n')
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTXBUDGET")}
    env.update(CTXBUDGET_CONFIG=str(config), XDG_DATA_HOME=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui", "proxy", "--listen", f"127.0.0.1:{port}", "--upstream", upstream,
         "--journal", str(tmp_path / "j.sqlite3")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert "listening on" in banner and "alice:[redacted]@" in banner, banner
        reply = httpx.post(f"http://127.0.0.1:{port}/v1/messages?key={SECRET}&beta=true", json={}, timeout=30)
        assert reply.status_code == 502 and SECRET not in reply.text
        line = proc.stdout.readline()
        assert "/v1/messages?key=[redacted]&beta=true" in line and "unreachable" in line, line
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert SECRET not in banner + line + out + err


def test_spooled_capture_holds_no_secret() -> None:
    """What the proxy writes to its crash spool is redacted like a journal row."""
    import pickle
    import time

    from tui.core.analysis.capture import Capture
    from tui.core.analysis.worker import _scrub

    capture = Capture(
        "POST", f"/v1/messages?beta=true&access_token={SECRET}", [("X-Auth", SECRET), ("X-Password", SECRET)],
        b'{"model":"m"}', time.time(),
    )
    capture.response_headers = [("Set-Cookie", f"s={SECRET}")]
    capture.error = f"upstream http://alice:{SECRET}@h:1 failed"
    _scrub(capture)
    assert SECRET.encode() not in pickle.dumps(capture)
    assert capture.path == f"/v1/messages?beta=true&access_token={REDACTED}"

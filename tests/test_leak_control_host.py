"""DNS rebinding: control routes answer only a Host that names this machine (metrics excepted)."""

from __future__ import annotations

import pytest
from test_proxy_fakes import FakeUpstream, ProxyFactory, client_session, fake_upstream, start_proxy

from tui.core.control.api import host_names_this_machine

__all__ = ["fake_upstream", "start_proxy"]  # fixtures re-exported for pytest

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("localhost", True),
        ("LOCALHOST:3000", True),
        ("127.0.0.1:3000", True),
        ("127.0.0.2", True),
        ("[::1]:3000", True),
        ("::1", True),
        ("localhost.:3000", True),
        (None, True),  # HTTP/1.0 without Host: not a browser
        ("evil.example", False),
        ("evil.example:3000", False),
        ("localhost.evil.example", False),
        ("10.0.0.5:3000", False),
        ("gpu-box:3000", False),
    ],
)
def test_host_names_this_machine(host: str | None, allowed: bool) -> None:
    assert host_names_this_machine(host, "127.0.0.1", "127.0.0.1") is allowed


def test_listen_host_is_accepted() -> None:
    assert host_names_this_machine("gpu-box:3000", "gpu-box", "127.0.0.1")
    assert host_names_this_machine("192.168.1.7:3000", "0.0.0.0", "192.168.1.7")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/_ctxbudget/state"),
        ("GET", "/_ctxbudget/health"),
        ("POST", "/_ctxbudget/mcp"),
        ("POST", "/_ctxbudget/transforms"),
        ("POST", "/_ctxbudget/compact/undo"),
        ("GET", "/_ctxbudget/nope"),
    ],
)
async def test_rebinding_host_is_refused(
    fake_upstream: FakeUpstream, start_proxy: ProxyFactory, method: str, path: str
) -> None:
    proxy = await start_proxy(fake_upstream.url)
    port = proxy.service.port
    async with client_session() as session:
        async with session.request(
            method, proxy.url + path, headers={"Host": f"evil.example:{port}"}, json={}
        ) as resp:
            assert resp.status == 403
            assert "DNS-rebinding" in (await resp.json())["error"]
        async with session.request(
            method, proxy.url + path, headers={"Host": f"localhost:{port}"}, json={}
        ) as resp:
            assert resp.status != 403


async def test_metrics_answer_any_host(fake_upstream: FakeUpstream, start_proxy: ProxyFactory) -> None:
    proxy = await start_proxy(fake_upstream.url)
    async with client_session() as session:
        async with session.get(
            proxy.url + "/_ctxbudget/metrics", headers={"Host": "prometheus.team.example"}
        ) as resp:
            assert resp.status == 200
            assert b"# HELP ctxbudget_server_state" in await resp.read()


async def test_forwarded_paths_are_not_host_checked(
    fake_upstream: FakeUpstream, start_proxy: ProxyFactory
) -> None:
    proxy = await start_proxy(fake_upstream.url)
    async with client_session() as session:
        async with session.post(
            proxy.url + "/v1/messages", data=b"{}", headers={"Host": "api.anthropic.com"}
        ) as resp:
            assert resp.status == 200
    assert fake_upstream.received[-1].raw_path == "/v1/messages"

"""Metric label bounds through a running proxy: real analysis of Claude-Code-style MCP tools per request."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_proxy_fakes import FakeUpstream, client_session, fake_upstream

from tui.core.config import AnatomySettings, JournalSettings, ProxySettings, Settings
from tui.core.prom.metrics import MCP_SERVER_LABELS_SEEN
from tui.core.proxy.service import ProxyService
from tui.core.records import RequestRecord

__all__ = ["fake_upstream"]  # fixture re-exported for pytest

pytestmark = pytest.mark.timeout(120)

REQUESTS = 60


def body(server: str) -> dict[str, object]:
    tool = {"name": f"mcp__{server}__read", "description": "read a file", "input_schema": {"type": "object"}}
    return {
        "model": "m", "max_tokens": 4, "system": "you are a coding agent",
        "tools": [tool, {"name": "Bash", "description": "run", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": "hi"}],
    }


async def test_mcp_server_series_stay_bounded(fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    settings = Settings(
        proxy=ProxySettings(listen="127.0.0.1:0", upstream=fake_upstream.url),
        journal=JournalSettings(path=str(tmp_path / "j.sqlite3")),
        anatomy=AnatomySettings(mcp_servers=["filesystem"], counter="tiktoken"),
    )
    records: list[RequestRecord] = []
    service = ProxyService(settings, on_record=records.append, analysis="thread")
    await service.start()
    try:
        async with client_session() as session:
            for i in range(REQUESTS):
                async with session.post(service.url + "/v1/messages", json=body(f"evil{i}")) as resp:
                    assert resp.status == 200
            async with session.post(
                service.url + "/v1/messages/count_tokens", json=body("filesystem")
            ) as resp:
                assert resp.status == 200
            assert await asyncio.to_thread(service.flush, 60.0)
            await asyncio.sleep(0.05)  # deliveries run on the loop
            async with session.get(service.url + "/_ctxbudget/metrics") as resp:
                text = await resp.text()
    finally:
        await service.stop()
    assert len(records) == REQUESTS + 1
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    servers = {s.labels["server"] for s in samples if s.name == "ctxbudget_mcp_tool_tokens_total"}
    assert len(servers) == MCP_SERVER_LABELS_SEEN + 1  # the first names seen and "other"
    assert "other" in servers
    kinds = {s.labels["kind"]: s.value for s in samples if s.name == "ctxbudget_requests_total"}
    assert kinds == {"main": REQUESTS, "count_tokens": 1}

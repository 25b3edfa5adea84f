"""Prometheus metrics after real traffic through the proxy to a real llama-server, scraped and parsed.

The proxy does not mount the route itself yet, so the handler is served here on its own aiohttp app,
fed by ProxyService's on_record (the journal rows as written) and by D's ServerPoller.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from support.llama import RunningServer

from tui.core.config import AnatomySettings, JournalSettings, ProxySettings, Settings
from tui.core.journal.writer import JournalReader
from tui.core.poll.server_poller import ServerPoller
from tui.core.prom import METRICS_PATH, ProxyMetrics, mount_metrics
from tui.core.proxy.service import ProxyService

pytestmark = [pytest.mark.llama, pytest.mark.timeout(180)]

SYSTEM = "You are a careful coding agent that reads files before editing them. " * 15
TOOLS = [
    {"name": "mcp__github__create_issue", "description": "Create a GitHub issue. " * 6,
     "input_schema": {"type": "object", "properties": {"title": {"type": "string"}}}},
    {"name": "Bash", "description": "Run a shell command. " * 4,
     "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}},
]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape keyed by (name, sorted labels)."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(scrape: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    return sum(v for (n, lab), v in scrape.items() if n == name and set(labels.items()) <= set(lab))


async def test_metrics_endpoint_after_real_traffic(
    shared_llama_server: RunningServer, tmp_path: Path
) -> None:
    metrics = ProxyMetrics()
    journal = tmp_path / "j.sqlite3"
    settings = Settings(
        proxy=ProxySettings(listen="127.0.0.1:0", upstream=shared_llama_server.url),
        journal=JournalSettings(path=str(journal)),
        anatomy=AnatomySettings(mcp_servers=["github"]),
    )
    service = ProxyService(settings, on_record=metrics.observe)
    app = web.Application()
    mount_metrics(app, metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    metrics_url = f"http://127.0.0.1:{runner.addresses[0][1]}{METRICS_PATH}"
    poller = ServerPoller(shared_llama_server.url)
    usage = {"prompt": 0, "cached": 0, "output": 0}
    await service.start()
    try:
        async with aiohttp.ClientSession() as http:
            for i in range(3):
                body: dict[str, Any] = {
                    "model": "claude-haiku-4-5", "max_tokens": 10, "temperature": 0,
                    "system": SYSTEM, "tools": TOOLS,
                    "messages": [{"role": "user", "content": f"open an issue about bug {i}"}],
                }
                async with http.post(service.url + "/v1/messages", json=body) as r:
                    assert r.status == 200
                    u = (await r.json())["usage"]
                cached = u.get("cache_read_input_tokens", 0)
                usage["prompt"] += u["input_tokens"] + cached + u.get("cache_creation_input_tokens", 0)
                usage["cached"] += cached
                usage["output"] += u["output_tokens"]
            async with http.get(service.url + "/health") as r:
                assert r.status == 200
            assert await asyncio.to_thread(service.flush, 60.0)
            # on_record runs on this loop via call_soon_threadsafe: let the 4 callbacks land.
            for _ in range(100):
                if total(samples(metrics.exposition().decode()), "ctxbudget_requests_total") >= 4:
                    break
                await asyncio.sleep(0.05)
            metrics.observe_server(await poller.poll_once())
            async with http.get(metrics_url) as r:
                assert r.status == 200
                assert r.headers["Content-Type"].startswith("text/plain")
                text = await r.text()
    finally:
        await service.stop()
        await poller.aclose()
        await runner.cleanup()

    scrape = samples(text)
    rows = JournalReader(journal).latest(50)
    assert len(rows) == 4
    assert total(scrape, "ctxbudget_requests_total") == len(rows)
    assert total(scrape, "ctxbudget_requests_total", kind="other", status="200") == 1
    assert total(scrape, "ctxbudget_prompt_tokens_total") == usage["prompt"]
    assert total(scrape, "ctxbudget_prompt_cached_tokens_total") == usage["cached"]
    assert total(scrape, "ctxbudget_output_tokens_total") == usage["output"]
    assert usage["cached"] > 0, "the repeated system prompt should come from the prefix cache"

    model_rows = [r for r in rows if r.method == "POST"]
    assert total(scrape, "ctxbudget_ttfb_seconds_count") == sum(1 for r in rows if r.ttfb_ms is not None)
    assert total(scrape, "ctxbudget_request_duration_seconds_sum") == pytest.approx(
        sum(r.total_ms or 0 for r in rows) / 1000
    )
    assert total(scrape, "ctxbudget_prompt_size_tokens_count") == len(model_rows)
    mcp = sum(r.anatomy.mcp_servers["github"]["tokens"] for r in model_rows if r.anatomy)
    assert mcp > 0 and total(scrape, "ctxbudget_mcp_tool_tokens_total", server="github") == mcp
    for category in ("system", "tools", "mcp_tools"):
        want = sum(r.anatomy.categories[category] for r in model_rows if r.anatomy)
        assert total(scrape, "ctxbudget_context_tokens_total", category=category) == want
    assert total(scrape, "ctxbudget_saved_tokens_total") == 0  # not recorded by the journal yet

    # Server gauges from a real poll.
    props = json.loads(await asyncio.to_thread(_get, shared_llama_server.url + "/props"))
    assert total(scrape, "ctxbudget_server_state", state="up") == 1
    assert total(scrape, "ctxbudget_server_state", state="down") == 0
    assert total(scrape, "ctxbudget_server_slots") == props["total_slots"]
    slot_tokens = total(scrape, "ctxbudget_slot_tokens", slot="0")
    assert slot_tokens > 0
    assert total(scrape, "ctxbudget_slot_fill_ratio", slot="0") == pytest.approx(
        slot_tokens / total(scrape, "ctxbudget_server_slot_ctx_tokens")
    )


def _get(url: str) -> str:
    import httpx

    return httpx.get(url, timeout=10).text

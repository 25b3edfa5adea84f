"""The MCP switch's cost against what the real server re-processes (SmolLM2 with a tool-capable template)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.llama import StartServer
from support.real_model import TOOL_TEMPLATE
from test_control_api import MCP_DESCRIPTION, agent_body

from tui.core.actions.mcp_switch import switch_cost
from tui.core.config import JournalSettings, ProxySettings, Settings
from tui.core.control.client import ControlClient
from tui.core.proxy.service import ProxyService
from tui.core.records import RequestRecord

pytestmark = [pytest.mark.llama, pytest.mark.timeout(300)]


def two_server_body() -> dict[str, Any]:
    body = copy.deepcopy(agent_body())
    body["system"] = body["system"][:1]  # a short prompt: two slow cores process it twice
    body["tools"] += [
        {
            "name": f"mcp__memory__{verb}",
            "description": MCP_DESCRIPTION,
            "input_schema": {"type": "object", "properties": {"entities": {"type": "array"}}},
        }
        for verb in ("create_entities", "read_graph")
    ]
    return body


@pytest.fixture
async def proxy(
    llama_server: StartServer, real_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ProxyService]:
    monkeypatch.setenv("CTXBUDGET_DATA_DIR", str(tmp_path / "data"))
    template = ("--jinja", "--chat-template-file", str(TOOL_TEMPLATE))  # SmolLM2's own drops tools
    server = llama_server(real_model, ctx_size=4096, extra_args=template)
    settings = Settings(
        proxy=ProxySettings(listen="127.0.0.1:0", upstream=server.url),
        journal=JournalSettings(path=str(tmp_path / "j.sqlite3")),
    )
    service = ProxyService(settings, analysis="thread")
    await service.start()
    yield service
    await service.stop()


async def send(service: ProxyService, body: dict[str, Any]) -> RequestRecord:
    async with httpx.AsyncClient(base_url=service.url, timeout=240) as client:
        response = await client.post("/v1/messages", json=body)
    assert response.status_code == 200, response.text
    assert await asyncio.to_thread(service.flush, 60.0)
    await asyncio.sleep(0.05)
    latest = service.tracker.latest
    assert latest is not None and latest.anatomy is not None
    return latest


def reprocessed(record: RequestRecord) -> int:
    """Tokens the server processed anew for this request (its prompt minus what it took from the cache)."""
    return (record.usage.prompt_tokens or 0) - (record.usage.cached_tokens or 0)


def close_to(estimate: int | None, real: int) -> bool:
    """Within a quarter: the estimate spreads the template's tokens evenly over the parts."""
    return estimate is not None and abs(estimate - real) <= 0.25 * real


async def test_switch_cost_matches_the_servers_reprocessing(proxy: ProxyService) -> None:
    body = two_server_body()
    first = await send(proxy, body)
    assert first.anatomy is not None
    off = switch_cost(first.anatomy, "memory", server_prompt_tokens=first.usage.prompt_tokens)
    client = ControlClient(proxy.url)
    try:
        answer = await asyncio.to_thread(client.set_mcp, "memory", False)
        assert answer["cost"]["text"] == off.text()  # the API and the dashboard state one estimate
        second = await send(proxy, body)
        saved = (first.usage.prompt_tokens or 0) - (second.usage.prompt_tokens or 0)
        assert close_to(off.schema_tokens, saved), (off, saved)
        assert close_to(off.reprocess_tokens, reprocessed(second)), (off, second.usage)

        assert second.anatomy is not None
        seen = sum(t.tokens for t in first.anatomy.tools if t.server == "memory")  # the MCP pane's figure
        on = switch_cost(
            second.anatomy, "memory", switching_on=True, known_schema_tokens=seen,
            server_prompt_tokens=second.usage.prompt_tokens,
        )  # fmt: skip
        assert on.schema_tokens  # never "adds 0 tokens"
        await asyncio.to_thread(client.set_mcp, "memory", True)
        third = await send(proxy, body)
    finally:
        client.close()
    assert close_to(on.reprocess_tokens, reprocessed(third)), (on, third.usage)

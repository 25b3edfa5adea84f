"""Counting what the model receives (POST /apply-template + /tokenize on the real SmolLM2): the rendered
parts and the template's own text add up to the server's count exactly, and a template that drops tools
shows it, with the as-sent view kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.llama import StartServer
from support.real_model import TOOL_TEMPLATE
from test_actions_mcp_real import two_server_body

from tui.core.anatomy.analyze import split_body
from tui.core.anatomy.rendered import TemplateRenderer, chat_request
from tui.core.config import JournalSettings, ProxySettings, Settings
from tui.core.proxy.service import ProxyService
from tui.core.records import RequestRecord

pytestmark = [pytest.mark.llama, pytest.mark.timeout(300)]


@pytest.fixture
async def started(
    llama_server: StartServer, real_model: Path, tmp_path: Path
) -> AsyncIterator[Callable[[bool], asyncio.Future[tuple[ProxyService, str]]]]:
    services: list[ProxyService] = []

    async def start(tool_template: bool) -> tuple[ProxyService, str]:
        extra = ("--jinja", "--chat-template-file", str(TOOL_TEMPLATE)) if tool_template else ()
        server = llama_server(real_model, ctx_size=4096, extra_args=extra)
        settings = Settings(
            proxy=ProxySettings(listen="127.0.0.1:0", upstream=server.url),
            journal=JournalSettings(path=str(tmp_path / f"j{len(services)}.sqlite3")),
        )
        service = ProxyService(settings, analysis="thread")
        await service.start()
        services.append(service)
        return service, server.url

    yield start  # type: ignore[misc]
    for service in services:
        await service.stop()


async def send(service: ProxyService) -> RequestRecord:
    async with httpx.AsyncClient(base_url=service.url, timeout=240) as client:
        response = await client.post("/v1/messages", json=two_server_body())
    assert response.status_code == 200, response.text
    assert await asyncio.to_thread(service.flush, 60.0)
    await asyncio.sleep(0.05)
    latest = service.tracker.latest
    assert latest is not None and latest.anatomy is not None
    return latest


async def test_rendered_parts_add_up_to_the_servers_count(started: Callable[..., Any]) -> None:
    service, url = await started(True)
    record = await send(service)
    anatomy = record.anatomy
    assert anatomy is not None and anatomy.rendered and anatomy.dropped == ()
    server_count = record.usage.prompt_tokens
    assert server_count is not None
    assert sum(p.tokens for p in anatomy.parts) == server_count == anatomy.total_tokens
    assert all(p.tokens >= 0 for p in anatomy.parts)
    # The template's text sits between the parts (one part per gap), not lumped at the end.
    gaps = [p for p in anatomy.parts if p.category == "template_overhead"]
    assert len(gaps) > 2 and anatomy.categories["template_overhead"] == sum(p.tokens for p in gaps)
    # Schemas cost more as rendered (tojson spacing, the function wrapper) than as sent.
    assert anatomy.categories["mcp_tools"] > anatomy.as_sent["mcp_tools"] > 0
    # The rendered prompt alone (no usage needed) is the server's count too, for the body as sent
    # straight to the server (the proxy's transforms changed the forwarded one a little): the Anthropic
    # body converted as llama-server converts it (system blocks joined with nothing between them, the
    # billing line's cch as fffff, text blocks as content parts), counted by its own count_tokens.
    body = two_server_body()
    async with httpx.AsyncClient(base_url=url, timeout=240) as client:
        direct = await client.post("/v1/messages/count_tokens", json=body)
        chat = await client.post(
            "/v1/chat/completions", json={**chat_request(body, "anthropic"), "max_tokens": 1}
        )
    assert direct.status_code == 200 and chat.status_code == 200, direct.text + chat.text
    renderer = TemplateRenderer(url)
    pieces = split_body(body, "anthropic", ()).pieces
    try:
        rendered = await asyncio.to_thread(renderer.render, body, "anthropic", pieces)
    finally:
        renderer.close()
    # the billing line is found where the server rendered it (cch as fffff), and so is every message
    located = [t for p, t in zip(pieces, rendered.tokens, strict=True) if p.section in ("system", "messages")]
    assert located and all(t is not None for t in located), list(zip(pieces, rendered.tokens, strict=True))
    assert rendered.total == direct.json()["input_tokens"] == chat.json()["usage"]["prompt_tokens"]


async def test_a_template_that_drops_tools_counts_them_as_dropped(started: Callable[..., Any]) -> None:
    service, _ = await started(False)
    record = await send(service)
    anatomy = record.anatomy
    assert anatomy is not None and anatomy.rendered
    sent_tools = [p for p in anatomy.parts if p.category in ("tools", "mcp_tools")]
    assert sent_tools and len(anatomy.dropped) == len(sent_tools)
    assert anatomy.categories["tools"] == anatomy.categories["mcp_tools"] == 0
    assert anatomy.as_sent["tools"] > 0 and anatomy.as_sent["mcp_tools"] > 0  # the as-sent view, kept
    assert sum(p.tokens for p in anatomy.parts) == record.usage.prompt_tokens
    as_json = anatomy.to_json()
    assert as_json["dropped_by_template"] == list(anatomy.dropped) and as_json["rendered"] is True

"""The chat template drops tools: SmolLM2's own template (supports_tools false) against the ChatML template
with tools the tests ship; the dashboard's red banner and the doctor's check, on the real server."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from support.eventually import eventually
from support.llama import StartServer
from support.real_model import TOOL_TEMPLATE

from tui.core.config import JournalSettings, ProxySettings, ServerSettings, Settings
from tui.core.doctor.gather import gather_facts
from tui.core.doctor.model import Launch
from tui.core.doctor.template_check import check_template
from tui.core.feed.feed import DashboardFeed
from tui.core.feed.live import LiveDriver
from tui.ui.app import make_app
from tui.ui.widgets.budget_bar import BudgetBar
from tui.ui.widgets.server_header import ServerHeader

pytestmark = [pytest.mark.llama, pytest.mark.timeout(240)]

TOOLS = [
    {
        "name": f"mcp__memory__{name}",
        "description": f"{name.replace('_', ' ')} in the knowledge graph",
        "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}},
    }
    for name in ("create_entities", "search_nodes", "read_graph")
]
BODY = {
    "model": "smollm2",
    "max_tokens": 4,
    "system": "You are a coding agent.",
    "tools": TOOLS,
    "messages": [{"role": "user", "content": "find the parser"}],
}


@pytest.mark.parametrize("template", ["own", "chatml_tools"])
async def test_a_template_that_drops_tools_is_shown_and_diagnosed(
    llama_server: StartServer, real_model: Path, tmp_path: Path, free_port: int, template: str
) -> None:
    extra = ("--jinja", "--chat-template-file", str(TOOL_TEMPLATE)) if template == "chatml_tools" else ()
    server = llama_server(real_model, ctx_size=2048, extra_args=extra)
    settings = Settings(
        proxy=ProxySettings(listen=f"127.0.0.1:{free_port}", upstream=server.url),
        journal=JournalSettings(path=str(tmp_path / "journal.sqlite3")),
        server=ServerSettings(url=server.url, log_file=str(server.log_path), poll_interval=0.5),
    )
    drops = template == "own"
    facts = await gather_facts(Launch(url=server.url), gpu_enabled=False)
    result = check_template(facts)
    assert result.status == ("fail" if drops else "pass")
    if drops:
        assert "tool calling cannot work" in result.message and "--chat-template-file" in (result.fix or "")
    app = make_app(DashboardFeed(LiveDriver(settings)), settings)
    async with app.run_test(size=(120, 40)):
        header = app.screen.query_one(ServerHeader)
        await eventually(lambda: header.server is not None and header.server.state == "up")
        assert header.server is not None and header.server.template_tools is (not drops)
        driver = app.feed.driver
        assert isinstance(driver, LiveDriver)
        await eventually(lambda: bool(driver.proxy_url))
        async with httpx.AsyncClient(base_url=driver.proxy_url, timeout=120, trust_env=False) as client:
            response = await client.post("/v1/messages", json=BODY, headers={"x-api-key": "k"})
        assert response.status_code == 200, response.text
        bar = app.screen.query_one(BudgetBar)
        await eventually(lambda: bar.budget is not None, timeout=60)
        if drops:
            await eventually(lambda: "the chat template drops tools" in bar.banner)
            assert "3 tool schemas" in bar.banner
            assert "the chat template drops tools" in str(bar.render())
        else:
            assert bar.banner == ""

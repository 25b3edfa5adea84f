"""The dashboard against the real proxy and a real llama-server: traffic shows up, dead sources explain."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from support.eventually import eventually
from support.llama import StartServer
from support.notices import Notices
from textual.widgets import Tree

from tui.core.config import JournalSettings, ProxySettings, ServerSettings, Settings
from tui.core.feed.feed import DashboardFeed
from tui.core.feed.live import NO_LOG_FILE, LiveDriver
from tui.ui.app import make_app
from tui.ui.screens.detail import RequestDetailScreen
from tui.ui.widgets.budget_bar import BudgetBar
from tui.ui.widgets.log_pane import LogPane
from tui.ui.widgets.memory_panel import MemoryPanel
from tui.ui.widgets.requests_table import RequestsTable
from tui.ui.widgets.server_header import ServerHeader

pytestmark = [pytest.mark.llama, pytest.mark.timeout(180)]

BODY = {
    "model": "claude-test",
    "max_tokens": 12,
    "stream": True,
    "system": [{"type": "text", "text": "You are a careful coding agent. " * 30}],
    "messages": [{"role": "user", "content": [{"type": "text", "text": "list the files please"}]}],
}


async def test_request_through_proxy_appears_in_dashboard(
    llama_server: StartServer, tmp_path: Path, free_port: int
) -> None:
    server = llama_server()
    settings = Settings(
        proxy=ProxySettings(listen=f"127.0.0.1:{free_port}", upstream=server.url),
        journal=JournalSettings(path=str(tmp_path / "journal.sqlite3")),
        server=ServerSettings(url=server.url, log_file=str(server.log_path), poll_interval=0.5),
    )
    app = make_app(DashboardFeed(LiveDriver(settings)), settings)
    async with app.run_test(size=(100, 36)) as pilot:
        header = app.screen.query_one(ServerHeader)
        await eventually(lambda: header.server is not None and header.server.state == "up")
        table = app.screen.query_one(RequestsTable)
        assert table.row_count == 0
        assert "no requests yet" in str(app.screen.query_one("#requests-empty").render())
        driver = app.feed.driver
        assert isinstance(driver, LiveDriver)
        await eventually(lambda: bool(driver.proxy_url))
        async with httpx.AsyncClient(base_url=driver.proxy_url, timeout=60, trust_env=False) as client:
            response = await client.post("/v1/messages", json=BODY, headers={"x-api-key": "k"})
        assert response.status_code == 200
        await eventually(lambda: table.row_count == 1)
        bar = app.screen.query_one(BudgetBar)
        await eventually(lambda: bar.budget is not None)
        assert bar.budget is not None and bar.budget.window == 8192 and bar.budget.used > 0
        memory = app.screen.query_one(MemoryPanel)
        assert memory.server is not None and memory.server.slots
        await pilot.press("l")
        log = app.screen.query_one(LogPane)
        await eventually(lambda: any("slot" in line.text for line in log.kept))
        await pilot.press("l", "enter")
        await eventually(lambda: isinstance(app.screen, RequestDetailScreen))
        tree = app.screen.query_one(Tree)
        assert any(str(node.label).startswith("system") for node in tree.root.children)


async def test_dead_server_and_missing_log_explain_what_to_do(tmp_path: Path, free_port: int) -> None:
    settings = Settings(
        proxy=ProxySettings(listen=f"127.0.0.1:{free_port}", upstream="http://127.0.0.1:9"),
        journal=JournalSettings(path=str(tmp_path / "journal.sqlite3")),
        server=ServerSettings(url="http://127.0.0.1:9", log_file="", poll_interval=0.5),
    )
    app = make_app(DashboardFeed(LiveDriver(settings, attach=True)), settings)
    notices = Notices()
    async with app.run_test(size=(80, 24), message_hook=notices) as pilot:
        header = app.screen.query_one(ServerHeader)
        await eventually(lambda: header.server is not None)
        assert header.server is not None and header.server.state == "down"
        rendered = str(header.render())
        assert "down" in rendered
        await pilot.press("l")
        hint = app.screen.query_one("#log-hint")
        await eventually(lambda: hint.display)
        assert str(hint.render()) == NO_LOG_FILE
        empty = str(app.screen.query_one("#requests-empty").render())
        assert "ctxbudget proxy" in empty
        # --attach with no proxy answering: the proxy's actions say why and what to start.
        main = app.main_screen
        await eventually(lambda: main.control is not None)
        await pilot.press("t")
        await eventually(
            lambda: any(
                f"no proxy answers at 127.0.0.1:{free_port}" in n.message for n in notices.shown
            ),
        )
        assert any("start `ctxbudget proxy`" in n.message for n in notices.shown)

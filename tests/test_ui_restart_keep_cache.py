"""The dashboard restart (`r`) keeps the prompt cache: progress notes, the restored count, reuse."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from support.eventually import eventually
from support.notices import Notices
from test_restart_keep_cache import ask, reuse
from test_ui_actions_restart import open_dialog, server_settings
from textual.widgets import Button, Input

from tui.core.actions.server_control import ServerController
from tui.core.feed.feed import DashboardFeed
from tui.core.feed.live import LiveDriver
from tui.ui.app import make_app
from tui.ui.screens.main import MainScreen
from tui.ui.widgets.server_header import ServerHeader

pytestmark = [pytest.mark.llama, pytest.mark.timeout(240)]


async def test_dashboard_restart_restores_the_prompt_cache(
    llama_server_bin: Path, tiny_model: Path, free_port: int, tmp_path: Path
) -> None:
    settings = server_settings(llama_server_bin, tiny_model, free_port, tmp_path, free_port + 1)
    controller = ServerController(settings, health_timeout=60)
    assert (await asyncio.to_thread(controller.start, 8192, 1, True)).phase == "up"
    await asyncio.to_thread(ask, controller.url)
    app = make_app(DashboardFeed(LiveDriver(settings, attach=True)), settings)
    try:
        notices = Notices()
        async with app.run_test(size=(120, 40), message_hook=notices):
            main = app.main_screen
            await eventually(lambda: main.server is not None and main.server.state == "up")
            dialog = await open_dialog(app)
            assert dialog.query_one("#ctx-size", Input).value == "8192"
            dialog.query_one("#confirm", Button).press()
            await eventually(lambda: isinstance(app.screen, MainScreen))
            await eventually(lambda: main.restart_phase in ("up", "failed"), timeout=120)
            notes = [(str(n.title), n.message) for n in notices.shown]
            assert main.restart_phase == "up", notes
            titles = [title for title, _ in notes]
            assert titles.index("llama-server: saving") < titles.index("llama-server: stopping")
            assert "llama-server: restoring" in titles
            final = [message for title, message in notes if title == "llama-server: up"][-1]
            assert "restored" in final and "not restored" not in final, final

            # The next request shows the restored cache: measured by the server, and said on the dashboard.
            assert reuse(await asyncio.to_thread(ask, controller.url)) >= 0.9
            await eventually(lambda: main.restart_phase == "verified", timeout=30)
            verified = [n.message for n in notices.shown if str(n.title) == "llama-server: verified"]
            assert verified and "the next request reused" in verified[-1], verified
            assert main.query_one(ServerHeader).action == ""
    finally:
        await asyncio.to_thread(controller.stop)

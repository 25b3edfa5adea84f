"""Restart llama-server from the dashboard: the dialog, validation, Cancel by default, a real restart."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import httpx
import pytest
from support.eventually import eventually
from support.llama import StartServer
from support.notices import Notices
from test_ui_actions import cancel_focused
from textual.widgets import Button, Input

from tui.core.actions.server_control import ServerController
from tui.core.config import JournalSettings, ProxySettings, ServerSettings, Settings
from tui.core.feed.feed import DashboardFeed
from tui.core.feed.live import LiveDriver
from tui.ui.app import CtxBudgetApp, make_app
from tui.ui.screens.dialogs import ConfirmDialog
from tui.ui.screens.main import MainScreen
from tui.ui.screens.restart_dialog import RestartDialog
from tui.ui.widgets.server_header import ServerHeader

pytestmark = [pytest.mark.llama, pytest.mark.timeout(240)]


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("CTXBUDGET_DATA_DIR", str(folder))
    return folder


def server_settings(binary: Path, model: Path, port: int, tmp_path: Path, proxy_port: int) -> Settings:
    server = ServerSettings(
        url=f"http://127.0.0.1:{port}",
        model=str(model),
        ctx_size=2048,
        parallel=1,
        log_file=str(tmp_path / "server.log"),
        binary=str(binary),
        extra_args=["-t", "1", "-n", "16"],
        poll_interval=0.5,
    )
    return dataclasses.replace(
        Settings(),
        server=server,
        proxy=ProxySettings(listen=f"127.0.0.1:{proxy_port}", upstream=server.url),
        journal=JournalSettings(path=str(tmp_path / "journal.sqlite3")),
    )


def n_ctx(url: str) -> int:
    return int(httpx.get(url + "/props", timeout=5).json()["default_generation_settings"]["n_ctx"])


async def open_dialog(app: CtxBudgetApp) -> RestartDialog:
    await app.main_screen.run_action("restart_server")
    await eventually(lambda: cancel_focused(app, RestartDialog))
    assert isinstance(app.screen, RestartDialog)
    return app.screen


async def test_restart_dialog_restarts_with_new_sizes(
    llama_server_bin: Path, tiny_model: Path, free_port: int, tmp_path: Path
) -> None:
    settings = server_settings(llama_server_bin, tiny_model, free_port, tmp_path, free_port + 1)
    controller = ServerController(settings, health_timeout=60)
    first = await asyncio.to_thread(controller.start)
    assert first.phase == "up", first
    app = make_app(DashboardFeed(LiveDriver(settings, attach=True)), settings)
    try:
        notices = Notices()
        async with app.run_test(size=(120, 40), message_hook=notices) as pilot:
            main = app.main_screen
            await eventually(lambda: main.server is not None and main.server.state == "up")
            await pilot.press("r")
            await eventually(lambda: cancel_focused(app, RestartDialog))
            first_dialog = app.screen
            assert isinstance(first_dialog, RestartDialog)
            assert first_dialog.query_one("#ctx-size", Input).value == "2048"
            assert first_dialog.query_one("#parallel", Input).value == "1"
            assert "started by ctxbudget" in str(first_dialog.query_one("#dialog-body").render())
            await pilot.press("enter")  # Cancel
            await eventually(lambda: isinstance(app.screen, MainScreen))
            assert (await asyncio.to_thread(controller.status)).pid == first.pid

            dialog = await open_dialog(app)
            dialog.query_one("#ctx-size", Input).value = "100"
            await pilot.click("#confirm")
            assert isinstance(app.screen, RestartDialog)  # refused, the problem is shown
            assert "ctx_size" in str(dialog.query_one("#dialog-error").render())

            dialog.query_one("#ctx-size", Input).value = "4096"
            dialog.query_one("#parallel", Input).value = "2"
            dialog.query_one("#confirm", Button).press()
            await eventually(lambda: isinstance(app.screen, MainScreen))
            header = main.query_one(ServerHeader)
            await eventually(lambda: header.action.startswith("restart: "), timeout=30)
            await eventually(lambda: main.restart_phase in ("up", "failed"), timeout=120)
            assert header.action == ""
            titles = [str(n.title) for n in notices.shown]
            assert main.restart_phase == "up", [n.message for n in notices.shown]
            assert "llama-server: stopping" in titles and "llama-server: starting" in titles
            assert await asyncio.to_thread(n_ctx, controller.url) == 2048  # 4096 over 2 slots
            status = await asyncio.to_thread(controller.status)
            assert status.owned and status.pid != first.pid and status.total_slots == 2
    finally:
        await asyncio.to_thread(controller.stop)


async def test_foreign_server_is_named_before_acting(
    llama_server: StartServer, llama_server_bin: Path, tiny_model: Path, tmp_path: Path, free_port: int
) -> None:
    foreign = llama_server(ctx_size=1024)
    settings = server_settings(llama_server_bin, tiny_model, foreign.port, tmp_path, free_port)
    app = make_app(DashboardFeed(LiveDriver(settings, attach=True)), settings)
    async with app.run_test(size=(120, 40)) as pilot:
        main = app.main_screen
        await eventually(lambda: main.server is not None and main.server.state == "up")  # slots read
        dialog = await open_dialog(app)
        body = str(dialog.query_one("#dialog-body").render())
        assert "not started by ctxbudget" in body and "restarting stops it" in body
        assert "cache: empty, nothing to re-process" in body  # what a restart throws away
        assert dialog.query_one("#ctx-size", Input).value == "1024"
        await pilot.press("escape")
        await eventually(lambda: isinstance(app.screen, MainScreen))
    assert foreign.proc.poll() is None  # cancelled: the foreign server still runs


async def test_refused_restart_can_be_forced_and_fails_with_the_reason(
    llama_server_bin: Path, tmp_path: Path, free_port: int
) -> None:
    missing = tmp_path / "missing.gguf"
    settings = server_settings(llama_server_bin, missing, free_port, tmp_path, free_port + 1)
    app = make_app(DashboardFeed(LiveDriver(settings, attach=True)), settings)
    notices = Notices()
    async with app.run_test(size=(120, 40), message_hook=notices) as pilot:
        main = app.main_screen
        dialog = await open_dialog(app)
        assert dialog.query_one("#ctx-size", Input).value == "2048"  # server down: the configured size
        dialog.query_one("#confirm", Button).press()
        await eventually(lambda: main.restart_phase == "refused", timeout=60)
        await eventually(lambda: cancel_focused(app, ConfirmDialog))
        assert "model" in str(app.screen.query_one("#dialog-body").render())
        await pilot.press("tab", "enter")  # Restart anyway
        await eventually(lambda: main.restart_phase == "failed", timeout=60)
        # The notification is a message of its own: it can reach the hook a moment after the phase.
        failed = await eventually(
            lambda: [n for n in notices.shown if str(n.title) == "llama-server: failed"], timeout=10
        )
        assert failed[-1].severity == "error" and "missing.gguf" in failed[-1].message

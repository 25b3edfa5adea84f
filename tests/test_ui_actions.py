"""Acting keys against the dashboard's own proxy in front of a real llama-server: MCP, transforms, compact."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.eventually import eventually
from support.llama import RunningServer
from support.notices import Notices
from test_actions_compaction import BODIES, follow_up
from test_control_api import agent_body
from textual.screen import Screen
from textual.widgets import DataTable

from tui.core.config import (
    AnatomySettings,
    CompactSettings,
    JournalSettings,
    ProxySettings,
    ServerSettings,
    Settings,
)
from tui.core.control.client import ControlClient
from tui.core.feed.feed import DashboardFeed
from tui.core.feed.live import LiveDriver
from tui.core.transforms.registry import TRANSFORM_ORDER
from tui.ui.app import CtxBudgetApp, make_app
from tui.ui.commands import DashboardCommands
from tui.ui.screens.compact_dialog import CompactDialog
from tui.ui.screens.dialogs import ConfirmDialog
from tui.ui.screens.main import MainScreen
from tui.ui.screens.transforms import TransformsScreen
from tui.ui.widgets.mcp_table import CANDIDATE_NOTE, McpTable

pytestmark = [pytest.mark.llama, pytest.mark.timeout(240)]


def dashboard_settings(tmp_path: Path, port: int, upstream: str, store_bodies: bool = False) -> Settings:
    return Settings(
        proxy=ProxySettings(listen=f"127.0.0.1:{port}", upstream=upstream, analysis="thread"),
        journal=JournalSettings(path=str(tmp_path / "journal.sqlite3"), store_bodies=store_bodies),
        anatomy=AnatomySettings(mcp_servers=["filesystem"]),
        server=ServerSettings(url=upstream, poll_interval=0.5),
        compact=CompactSettings(keep_turns=1, tmux_socket=f"ctxbudget-none-{port}"),
    )


@pytest.fixture
async def dashboard(
    shared_llama_server: RunningServer, tmp_path: Path, free_port: int, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[CtxBudgetApp]:
    """The live dashboard (embedded proxy) with its switch state files in tmp."""
    monkeypatch.setenv("CTXBUDGET_DATA_DIR", str(tmp_path / "data"))
    settings = dashboard_settings(tmp_path, free_port, shared_llama_server.url)
    yield make_app(DashboardFeed(LiveDriver(settings)), settings)


async def send(app: CtxBudgetApp, body: dict[str, Any]) -> None:
    """One agent request through the dashboard's proxy; waits until its row shows."""
    driver = app.feed.driver
    assert isinstance(driver, LiveDriver)
    await eventually(lambda: bool(driver.proxy_url))
    main = app.main_screen
    last = main.selected.id if main.selected is not None else 0
    async with httpx.AsyncClient(base_url=driver.proxy_url, timeout=120, trust_env=False) as client:
        response = await client.post("/v1/messages", json=body, headers={"x-api-key": "k"})
    assert response.status_code == 200, response.text
    await eventually(
        lambda: main.selected is not None and main.selected.id > last and main.selected.anatomy is not None,
        timeout=60,
    )


def cancel_focused(app: CtxBudgetApp, kind: type[Screen[Any]]) -> bool:
    """The dialog is up and its Cancel button has the focus (enter would cancel)."""
    return isinstance(app.screen, kind) and app.focused is not None and app.focused.id == "cancel"


async def proxy_state(app: CtxBudgetApp) -> dict[str, Any]:
    """What the proxy itself says (read outside the dashboard)."""
    driver = app.feed.driver
    assert isinstance(driver, LiveDriver)
    return await asyncio.to_thread(ControlClient(driver.proxy_url).state)


async def test_mcp_toggle_confirms_with_cost_and_switches_the_proxy(dashboard: CtxBudgetApp) -> None:
    app = dashboard
    notices = Notices()
    async with app.run_test(size=(120, 40), message_hook=notices) as pilot:
        await send(app, agent_body())
        main = app.main_screen
        # The server is not in [anatomy] mcp_servers: only the request (and, once off, the proxy) names it.
        main.settings = dataclasses.replace(main.settings, anatomy=AnatomySettings(mcp_servers=[]))
        await eventually(lambda: main.control is not None and main.control.answers)
        await pilot.press("m")
        table = main.query_one(McpTable)
        await eventually(lambda: any(r.name == "filesystem" for r in table.rows_shown))
        table.move_cursor(row=[r.name for r in table.rows_shown].index("filesystem"))
        state_cell = str(table.get_cell("filesystem", "state"))
        assert CANDIDATE_NOTE in state_cell  # offered, never called

        await pilot.press("space")
        await eventually(lambda: cancel_focused(app, ConfirmDialog))
        body = str(app.screen.query_one("#dialog-body").render())
        assert "saves" in body and "tokens per request" in body and "re-processes ~" in body
        await pilot.press("enter")  # Cancel has the focus
        await eventually(lambda: isinstance(app.screen, MainScreen))
        assert (await proxy_state(app))["mcp"]["servers"][0]["enabled"]

        await pilot.press("space")
        await eventually(lambda: cancel_focused(app, ConfirmDialog))
        cost_line = str(app.screen.query_one("#dialog-body").render()).splitlines()[-1]
        await pilot.press("tab", "enter")
        await eventually(lambda: main.control is not None and "filesystem" in main.control.mcp_off)
        state = await proxy_state(app)
        assert {s["server"]: s["enabled"] for s in state["mcp"]["servers"]}["filesystem"] is False
        # The toast repeats the dialog's figures (one cost function, one record).
        await eventually(lambda: f"filesystem switched off: {cost_line}" in notices.texts)

        await send(app, agent_body())  # the next request goes out without the server's tools
        selected = main.selected
        assert selected is not None and selected.mcp_saved_tokens and selected.mcp_saved_tokens > 0
        await eventually(
            lambda: (
                "this request: " in str(table.border_subtitle)
                and "0 tokens" not in str(table.border_subtitle)
            ),
        )
        assert "filesystem" not in (selected.anatomy.mcp_servers if selected.anatomy else {})

        # Switched off, the row stays (the proxy lists it) and space offers to switch it back on.
        await eventually(lambda: "off (switched off" in str(table.get_cell("filesystem", "state")))
        table.focus()
        table.move_cursor(row=[r.name for r in table.rows_shown].index("filesystem"))
        await pilot.press("space")
        await eventually(lambda: cancel_focused(app, ConfirmDialog))
        cost_line = str(app.screen.query_one("#dialog-body").render()).splitlines()[-1]
        assert cost_line.startswith("adds ~") and "adds ~0 " not in cost_line
        assert "re-processes ~" in cost_line
        await pilot.press("tab", "enter")
        await eventually(lambda: main.control is not None and not main.control.mcp_off)
        await eventually(lambda: f"filesystem switched on: {cost_line}" in notices.texts)


async def test_transforms_screen_toggles_after_warning(dashboard: CtxBudgetApp) -> None:
    app = dashboard
    notices = Notices()
    async with app.run_test(size=(120, 40), message_hook=notices) as pilot:
        await send(app, agent_body())
        main = app.main_screen
        await eventually(lambda: main.control is not None and main.control.answers)
        await pilot.press("t")
        await eventually(lambda: isinstance(app.screen, TransformsScreen))
        screen = app.screen
        assert isinstance(screen, TransformsScreen)
        sample = " ".join(str(s.render()) for s in screen.query("#transforms-sample Static"))
        assert "compress_prose, before" in sample and "after" in sample
        before = {t.name: t.enabled for t in screen.snapshot.transforms}
        assert screen.selected_name() == "stabilize" and before["stabilize"]

        await pilot.press("space")
        await eventually(lambda: cancel_focused(app, ConfirmDialog))
        assert "re-processes" in str(app.screen.query_one("#dialog-body").render())
        await pilot.press("enter")  # Cancel
        await eventually(lambda: app.screen is screen)
        assert (await proxy_state(app))["transforms"]["enabled"] == ["stabilize"]

        await pilot.press("space")
        await eventually(lambda: cancel_focused(app, ConfirmDialog))
        await pilot.press("tab", "enter")
        await eventually(
            lambda: not any(t.enabled for t in screen.snapshot.transforms if t.name == "stabilize")
        )
        assert (await proxy_state(app))["transforms"]["enabled"] == []
        assert any("stabilize off" in n.message for n in notices.shown)
        await pilot.press("escape")
        await eventually(lambda: isinstance(app.screen, MainScreen))


async def test_transform_warning_names_where_the_prefix_changes(
    shared_llama_server: RunningServer, tmp_path: Path, free_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CTXBUDGET_DATA_DIR", str(tmp_path / "data"))
    settings = dashboard_settings(tmp_path, free_port, shared_llama_server.url, store_bodies=True)
    app = make_app(DashboardFeed(LiveDriver(settings)), settings)
    noisy = "\n".join(["compiling module core ... ok"] * 300 + ["all 300 modules built"])
    async with app.run_test(size=(120, 40)) as pilot:
        await send(app, agent_body(tool_output=noisy))
        main = app.main_screen
        await eventually(lambda: main.control is not None and main.control.answers)
        await pilot.press("t")
        await eventually(lambda: isinstance(app.screen, TransformsScreen))
        screen = app.screen
        assert isinstance(screen, TransformsScreen)
        screen.query_one(DataTable).move_cursor(row=TRANSFORM_ORDER.index("slim_results"))
        await pilot.press("space")
        await eventually(lambda: cancel_focused(app, ConfirmDialog))
        body = str(app.screen.query_one("#dialog-body").render())
        assert "changes the prompt prefix of the ongoing conversation at messages[2]" in body
        await pilot.press("escape")
        await eventually(lambda: app.screen is screen)
        screen.query_one(DataTable).move_cursor(row=TRANSFORM_ORDER.index("compress_prose"))
        await pilot.press("space")  # the latest user turn is the only prose: the cached prefix stays
        await eventually(lambda: cancel_focused(app, ConfirmDialog))
        body = str(app.screen.query_one("#dialog-body").render())
        assert "cached prefix stays usable" in body or "stays the same" in body


async def test_proxy_compaction_and_undo(dashboard: CtxBudgetApp) -> None:
    app = dashboard
    notices = Notices()
    async with app.run_test(size=(120, 40), message_hook=notices) as pilot:
        body = {**BODIES["anthropic"](3), "max_tokens": 2}
        await send(app, body)
        main = app.main_screen
        await eventually(lambda: main.control is not None and main.control.answers)
        assert main.check_action("compact_undo", ()) is False  # nothing to undo: hidden
        await pilot.press("c")
        await eventually(lambda: cancel_focused(app, CompactDialog))
        dialog = app.screen
        assert isinstance(dialog, CompactDialog) and dialog.chosen_mode() == "proxy"  # no agent in tmux
        await pilot.press("enter")  # Cancel
        await eventually(lambda: isinstance(app.screen, MainScreen))
        assert (await proxy_state(app))["compactions"]["active"] == []

        await pilot.press("c")
        await eventually(lambda: cancel_focused(app, CompactDialog))
        await pilot.press("tab")
        assert app.focused is not None and app.focused.id == "confirm"
        await pilot.press("enter")
        await eventually(lambda: main.control is not None and bool(main.control.compactions), timeout=120)
        assert main.control is not None
        (active,) = main.control.compactions
        assert active.tokens_saved > 0
        assert any("tokens saved per request" in n.message for n in notices.shown)
        assert main.check_action("compact_undo", ()) is True
        palette = [name for name, _, _ in DashboardCommands(main)._commands()]
        assert {"Undo the proxy compaction", "Request transforms"} <= set(palette)
        assert "Restart llama-server" not in palette  # no [server] model: ctxbudget cannot start one
        assert "[server] model" in str(main.reason("restart_server"))

        assert active.status == "waiting"
        await send(app, copy.deepcopy({**follow_up(body, "anthropic"), "max_tokens": 2}))
        assert main.selected is not None and main.selected.compaction_saved_tokens == active.tokens_saved
        await eventually(lambda: main.control is not None and main.control.compactions[0].status == "applied")

        # The agent edits a message inside the compacted prefix: the summary can no longer replace it.
        edited = copy.deepcopy({**follow_up(body, "anthropic"), "max_tokens": 2})
        edited["messages"][3]["content"][0]["text"] = "Fixed task 0 (edited by the agent)."
        await send(app, edited)
        assert main.selected is not None and not main.selected.compaction_saved_tokens
        await eventually(lambda: any(n.title == "compaction not applying" for n in notices.shown))
        (note,) = [n for n in notices.shown if n.title == "compaction not applying"]
        assert "changed message 3 (assistant) inside the compacted prefix" in note.message
        assert "compact again (c)" in note.message
        assert main.control is not None and main.control.compactions[0].status == "not applying"

        # u asks first; Cancel keeps the compaction.
        await pilot.press("u")
        await eventually(lambda: cancel_focused(app, ConfirmDialog))
        assert "Drop the proxy compaction of session" in str(app.screen.query_one("#dialog-body").render())
        await pilot.press("enter")
        await eventually(lambda: isinstance(app.screen, MainScreen))
        assert (await proxy_state(app))["compactions"]["active"]
        await pilot.press("u")
        await eventually(lambda: cancel_focused(app, ConfirmDialog))
        await pilot.press("tab", "enter")
        await eventually(lambda: main.control is not None and not main.control.compactions)
        assert any("full history sent again" in n.message for n in notices.shown)

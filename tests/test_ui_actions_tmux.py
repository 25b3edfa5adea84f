"""Pane compaction from the dashboard (--attach, no proxy): a real tmux server and a stand-in `claude`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import libtmux
import pytest
from support.eventually import eventually
from support.notices import Notices
from test_actions_tmux import stand_in, wait_for
from test_ui_actions import cancel_focused
from textual.widgets import OptionList

from tui.core.config import CompactSettings, JournalSettings, ProxySettings, ServerSettings, Settings
from tui.core.feed.feed import DashboardFeed
from tui.core.feed.live import LiveDriver
from tui.ui.app import CtxBudgetApp, make_app
from tui.ui.commands import DashboardCommands
from tui.ui.screens.compact_dialog import CompactDialog
from tui.ui.screens.dialogs import PickDialog
from tui.ui.screens.main import MainScreen

pytestmark = [pytest.mark.timeout(120)]


@pytest.fixture
def tmux() -> Iterator[libtmux.Server]:
    server = libtmux.Server(socket_name=f"ui-{uuid.uuid4().hex[:12]}")
    yield server
    if server.is_alive():
        server.kill()


def attach_app(tmp_path: Path, port: int, socket: str) -> CtxBudgetApp:
    """--attach with no proxy running and no server: only pane compaction can act."""
    settings = Settings(
        proxy=ProxySettings(listen=f"127.0.0.1:{port}", upstream="http://127.0.0.1:9"),
        journal=JournalSettings(path=str(tmp_path / "journal.sqlite3")),
        server=ServerSettings(url="http://127.0.0.1:9", poll_interval=0.5),
        compact=CompactSettings(tmux_socket=socket),
    )
    return make_app(DashboardFeed(LiveDriver(settings, attach=True)), settings)


async def test_pane_compaction_types_compact_into_the_agent_pane(
    tmux: libtmux.Server, tmp_path: Path, free_port: int
) -> None:
    script, record = stand_in(tmp_path / "agent")
    tmux.new_session("work", window_command=str(script), attach=False)
    wait_for(record, "ready")
    app = attach_app(tmp_path, free_port, str(tmux.socket_name))
    notices = Notices()
    async with app.run_test(size=(120, 40), message_hook=notices) as pilot:
        main = app.main_screen
        await eventually(lambda: main.control is not None and not main.control.answers)
        reason = main.reason("transforms")
        assert reason == f"no proxy answers at 127.0.0.1:{free_port} — start `ctxbudget proxy`"
        assert main.check_action("transforms", ()) is None
        await pilot.press("t")
        await eventually(lambda: any(n.message == reason for n in notices.shown))
        palette = [name for name, _, _ in DashboardCommands(app.screen)._commands()]
        assert "Compact the agent's context" in palette and "Request transforms" not in palette
        assert "Undo the proxy compaction" not in palette

        await pilot.press("c")
        await eventually(lambda: cancel_focused(app, CompactDialog))
        dialog = app.screen
        assert isinstance(dialog, CompactDialog) and dialog.chosen_mode() == "pane"
        assert dialog.query_one("#mode-proxy").disabled  # no proxy answers
        await pilot.press("enter")  # Cancel
        await eventually(lambda: isinstance(app.screen, MainScreen))
        await pilot.pause(0.3)
        assert "/compact" not in record.read_text()

        await pilot.press("c")
        await eventually(lambda: cancel_focused(app, CompactDialog))
        await pilot.press("tab", "enter")
        await eventually(lambda: any("sent /compact to tmux pane" in n.message for n in notices.shown))
        assert wait_for(record, "/compact").splitlines()[-1] == "/compact"


async def test_ambiguous_panes_let_the_user_pick(
    tmux: libtmux.Server, tmp_path: Path, free_port: int
) -> None:
    first, first_record = stand_in(tmp_path / "one")
    second, second_record = stand_in(tmp_path / "two")
    session = tmux.new_session("work", window_command=str(first), attach=False)
    session.new_window("two", window_shell=f"sh -c '{second}; sleep 30'", attach=False)
    wait_for(first_record, "ready")
    wait_for(second_record, "ready")
    app = attach_app(tmp_path, free_port, str(tmux.socket_name))
    notices = Notices()
    async with app.run_test(size=(120, 40), message_hook=notices) as pilot:
        await pilot.press("c")
        await eventually(lambda: cancel_focused(app, CompactDialog))
        await pilot.press("tab", "enter")
        await eventually(lambda: isinstance(app.screen, PickDialog))
        options = app.screen.query_one(OptionList)
        assert options.option_count == 2
        await pilot.pause()
        target = options.get_option_at_index(1)
        assert target.id is not None
        await pilot.press("down", "enter")
        await eventually(lambda: any("sent /compact to tmux pane" in n.message for n in notices.shown))
        pane = tmux.panes.get(pane_id=target.id)
        assert pane is not None
        expected = second_record if pane.window_name == "two" else first_record
        other = first_record if expected is second_record else second_record
        wait_for(expected, "/compact")
        assert "/compact" not in other.read_text()


async def test_no_tmux_server_says_so(tmp_path: Path, free_port: int) -> None:
    app = attach_app(tmp_path, free_port, f"ui-none-{uuid.uuid4().hex[:8]}")
    notices = Notices()
    async with app.run_test(size=(120, 40), message_hook=notices) as pilot:
        await pilot.press("c")
        await eventually(lambda: cancel_focused(app, CompactDialog))
        await pilot.press("tab", "enter")
        await eventually(lambda: any("no tmux server is running" in n.message for n in notices.shown))
        (note,) = [n for n in notices.shown if "tmux" in n.message]
        assert note.severity == "error" and note.title == "compact"

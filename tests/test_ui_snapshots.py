"""Snapshot tests of the main views at 80x24 and 120x40 (demo recording, fixed clock, UTC, no animation)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.screen import ModalScreen

from tui.core.config import Settings
from tui.core.control.client import ControlClient
from tui.core.feed.control import ControlSnapshot, TransformRow
from tui.core.feed.demo import DemoDriver
from tui.core.feed.feed import DashboardFeed
from tui.core.feed.recording import DEMO_RECORDING, load_recording
from tui.core.transforms.registry import TRANSFORM_ORDER
from tui.ui.app import CtxBudgetApp, make_app
from tui.ui.screens.compact_dialog import CompactDialog
from tui.ui.screens.dialogs import ConfirmDialog
from tui.ui.screens.restart_dialog import RestartDialog
from tui.ui.screens.transforms import TransformsScreen

CLOCK_BASE = 1_767_225_600.0
RECORDING = load_recording(DEMO_RECORDING)
PROGRESS_T = [e.t for e in RECORDING.entries if e.type == "log" and "prompt processing, n_tokens" in e.data]


def demo_app(until: float | None = None) -> CtxBudgetApp:
    """The app on the whole recording (or up to `until` seconds into it)."""
    driver = DemoDriver(RECORDING, speed=0, until=until, clock_base=CLOCK_BASE)
    return make_app(DashboardFeed(driver), Settings(), tz=dt.UTC)


def settle(*keys: str) -> Callable[[Pilot[None]], Awaitable[None]]:
    """Wait for the replay, then press keys."""

    async def run_before(pilot: Pilot[None]) -> None:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    return run_before


SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
VIEWS = [
    pytest.param((), id="main"),
    pytest.param(("l",), id="log"),
    pytest.param(("s",), id="slots"),
    pytest.param(("m",), id="mcp"),
    pytest.param(("enter",), id="detail"),
    pytest.param(("question_mark",), id="help"),
]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("keys", VIEWS)
def test_view(snap_compare: Callable[..., bool], size: tuple[int, int], keys: tuple[str, ...]) -> None:
    assert snap_compare(demo_app(), terminal_size=size, run_before=settle(*keys))


@pytest.mark.parametrize("size", SIZES)
def test_prompt_progress(snap_compare: Callable[..., bool], size: tuple[int, int]) -> None:
    app = demo_app(until=PROGRESS_T[len(PROGRESS_T) // 2])
    assert snap_compare(app, terminal_size=size, run_before=settle("s"))


def test_narrow_60_columns(snap_compare: Callable[..., bool]) -> None:
    assert snap_compare(demo_app(), terminal_size=(60, 24), run_before=settle())


def dialog(name: str) -> ModalScreen[Any]:
    """Each acting key's dialog with fixed contents (what the live dashboard shows before acting)."""
    if name == "confirm":
        return ConfirmDialog(
            "switch MCP server filesystem off",
            "Stop sending the tools of 'filesystem' to the model?\n"
            "saves 1,234 tokens per request; the server re-processes ~5,678 tokens once",
            "Switch off",
        )
    if name == "compact":
        return CompactDialog(
            panes=1,
            pane_note="'claude' runs in tmux pane work:1.0",
            proxy_ok=True,
            session="h-0123456789ab",
            keep_turns=2,
        )
    if name == "restart":
        return RestartDialog(
            ctx_size=65536,
            parallel=2,
            note="llama-server up at http://127.0.0.1:8080, not started by ctxbudget (pid 4242): tiny.gguf"
            "\nIt was not started by ctxbudget: restarting stops it and starts the configured one.",
        )
    rows = tuple(TransformRow(n, n == "stabilize", 120 if n == "stabilize" else 0) for n in TRANSFORM_ORDER)
    snapshot = ControlSnapshot(
        answers=True, address="127.0.0.1:3000", transforms=rows, transform_saved_tokens=120, ts=CLOCK_BASE
    )
    return TransformsScreen(snapshot, ControlClient("http://127.0.0.1:9"))


@pytest.mark.parametrize("name", ["confirm", "compact", "restart", "transforms"])
def test_action_dialogs(snap_compare: Callable[..., bool], name: str) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await settle()(pilot)
        await pilot.app.push_screen(dialog(name))
        await pilot.pause()

    assert snap_compare(demo_app(), terminal_size=(100, 30), run_before=run_before)

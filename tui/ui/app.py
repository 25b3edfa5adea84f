"""The ctxbudget dashboard app: subscribes to a DashboardFeed and renders it on MainScreen."""

from __future__ import annotations

import contextlib
import datetime as dt

from textual import work
from textual.app import App
from textual.worker import Worker, WorkerState

from tui.core.config import Settings
from tui.core.feed.feed import DashboardFeed
from tui.core.feed.updates import FeedUpdate
from tui.ui.commands import DashboardCommands
from tui.ui.keys import bindings, keymap_for
from tui.ui.messages import message_for
from tui.ui.screens.help import HelpScreen
from tui.ui.screens.main import MainScreen


class CtxBudgetApp(App[None]):
    """Dashboard; all I/O happens in the feed worker, widgets only render snapshots."""

    CSS_PATH = "app.tcss"
    TITLE = "ctxbudget"
    COMMANDS = App.COMMANDS | {DashboardCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]
    BINDINGS = bindings("app")

    def __init__(self, feed: DashboardFeed, settings: Settings, *, tz: dt.tzinfo | None = None) -> None:
        super().__init__()
        self.feed = feed
        self.settings = settings
        self.tz = tz
        self.main_screen = MainScreen(feed, settings, tz=tz)
        self.feed.subscribe(self._deliver)
        self._feed_worker: Worker[None] | None = None

    def on_mount(self) -> None:
        """Apply the keymap, show the dashboard, start the feed."""
        self.set_keymap(keymap_for(self.settings.keys))
        self.push_screen(self.main_screen)
        self._feed_worker = self.run_feed()

    async def on_unmount(self) -> None:
        """Let the feed's sources finish (the proxy process journals what it captured, then exits)."""
        worker = self._feed_worker
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(Exception):
                await worker.wait()

    @work(exclusive=True, group="feed", exit_on_error=False, description="dashboard feed")
    async def run_feed(self) -> None:
        """Sources run here (their blocking parts in threads), never touching widgets."""
        await self.feed.run()

    def _deliver(self, update: FeedUpdate) -> None:
        self.main_screen.post_message(message_for(update))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """One place for worker failures: say what broke instead of dying silently."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.notify(f"{event.worker.description}: {error}", title="error", severity="error", timeout=10)

    def action_help(self) -> None:
        """Show every key."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.main_screen.action_context(), self.settings.keys))


def make_app(feed: DashboardFeed, settings: Settings, *, tz: dt.tzinfo | None = None) -> CtxBudgetApp:
    """The factory the CLI and the tests share."""
    return CtxBudgetApp(feed, settings, tz=tz)

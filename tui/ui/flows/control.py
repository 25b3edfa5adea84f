"""The proxy's control state as the main screen knows it: read at start, after actions and new rows."""

from __future__ import annotations

import time

from tui.core.feed.control import ControlSnapshot, fetch_control
from tui.ui import action_messages as am
from tui.ui.availability import ActionContext
from tui.ui.flows.host import Flow

# New rows bring a control read at most this often (the switches change only by an action or the CLI).
CONTROL_AFTER_ROWS_S = 2.0
NO_PROXY = "nothing to act on: a replay has no proxy"


class ControlFlow(Flow):
    """Keeps the latest ControlSnapshot; reads go through the feed driver's control client."""

    snapshot: ControlSnapshot | None = None
    _read_at = 0.0
    _read_due = False

    def user(self) -> str | None:
        """Team server: the selected request's user, whose MCP switches and compactions the keys act on."""
        selected = self.view.selected
        return (selected.user or None) if selected is not None else None

    def read(self) -> ControlSnapshot:
        """Ask the proxy now, the MCP switches of the acting user (blocking: worker threads only)."""
        client = self.view.feed.driver.control_client()
        if client is None:
            return ControlSnapshot(answers=False, address="", error=NO_PROXY)
        return fetch_control(client, self.user())

    def address(self) -> str:
        """Where the control API is (what the greyed-key reasons name)."""
        client = self.view.feed.driver.control_client()
        return client.base_url.removeprefix("http://") if client is not None else ""

    def context(self) -> ActionContext:
        """What decides which acting keys run now."""
        server = self.view.feed.driver.server_control()
        model = server.model if server is not None else ""
        router = self.view.server is not None and self.view.server.router  # `r` acts on its models
        return ActionContext(self.view.feed.info.mode, self.snapshot, self.address(), model, router)

    def refresh(self) -> None:
        """Read the proxy's switches in a worker (never polled: at start, once it listens, after actions)."""
        self.in_thread(
            self._read_and_post, group="control-once", description="proxy control state", exclusive=False
        )

    def _read_and_post(self) -> None:
        self.screen.post_message(am.ControlChanged(self.read()))

    def refresh_after_rows(self) -> None:
        """New rows came in: the switches may have changed from the CLI, read them (rate-limited)."""
        now = time.monotonic()
        wait = CONTROL_AFTER_ROWS_S - (now - self._read_at)
        if wait <= 0:
            self._read_at = now
            self.refresh()
        elif not self._read_due:
            # Read once more after the pause, so the last row's effect (a compaction that stopped
            # applying, a switch) still shows when rows come faster than one read per pause.
            self._read_due = True
            self.screen.set_timer(wait, self._deferred_read)

    def _deferred_read(self) -> None:
        self._read_due = False
        self._read_at = time.monotonic()
        self.refresh()

    def changed(self, snapshot: ControlSnapshot) -> bool:
        """Keep a new answer; whether the keys need re-greying. Warns once per new compaction problem."""
        previous = self.snapshot
        changed = previous is None or previous.answers != snapshot.answers
        before = {c.session_id: c.detail for c in previous.compactions} if previous else {}
        self.snapshot = snapshot
        for row in snapshot.compactions:
            if row.status == "not applying" and before.get(row.session_id) != row.detail:
                self.screen.notify(  # once per new reason: the proxy sends the full history again meanwhile
                    f"session {row.session_id}: {row.detail}",
                    title="compaction not applying", severity="warning", timeout=15, markup=False,
                )  # fmt: skip
        return changed or bool(snapshot.compactions)

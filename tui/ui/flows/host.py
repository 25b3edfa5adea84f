"""What an action flow reads from the main screen, and how it runs its blocking part off the event loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from textual.screen import Screen

if TYPE_CHECKING:
    from tui.core.config import Settings
    from tui.core.feed.control import ControlSnapshot
    from tui.core.feed.feed import DashboardFeed
    from tui.core.feed.views import RequestHistory
    from tui.core.poll.snapshots import ServerSnapshot
    from tui.core.records import RequestRecord


class ActionView(Protocol):
    """The main screen's state an action depends on (read on the event loop when the action starts)."""

    @property
    def feed(self) -> DashboardFeed: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def selected(self) -> RequestRecord | None: ...

    @property
    def server(self) -> ServerSnapshot | None: ...

    @property
    def history(self) -> RequestHistory: ...

    @property
    def control(self) -> ControlSnapshot | None: ...


class Flow:
    """One acting key's flow: dialogs on the loop, blocking calls in thread workers that post messages."""

    def __init__(self, screen: Screen[None], view: ActionView) -> None:
        self.screen = screen
        self.view = view

    def in_thread(
        self, work: Callable[..., None], *args: Any, group: str, description: str, exclusive: bool = True
    ) -> None:
        """Run `work(*args)` in a thread worker (one per group; a failure is reported, never fatal)."""
        self.screen.run_worker(
            lambda: work(*args),
            group=group,
            description=description,
            exclusive=exclusive,
            thread=True,
            exit_on_error=False,
        )

    def then(self, go: bool, start: Callable[..., object], *args: object) -> None:
        """A dialog callback: start only when the user confirmed."""
        if go:
            start(*args)

"""The `/` filter input: applies to the requests table or the log pane, live as you type."""

from __future__ import annotations

from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input

PLACEHOLDERS = {
    "requests": (
        "filter requests: words, status:4, kind:main, session:ab12, user:alice (enter: keep, esc: close)"
    ),
    "log": "filter log: level:warn, slot:0, words (enter: keep, esc: close)",
}


class FilterBar(Input):
    """An Input that knows its target and closes on escape."""

    BINDINGS = [Binding("escape", "close", "Close filter", id="filter_close")]

    class Closed(Message):
        """The user closed the filter bar."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, compact=True)
        self.target = "requests"

    def open(self, target: str, current: str) -> None:
        """Show for `target` with its current filter."""
        self.target = target
        self.placeholder = PLACEHOLDERS[target]
        self.value = current
        self.display = True
        self.focus()

    def action_close(self) -> None:
        """Hide; the filter stays applied."""
        self.display = False
        self.post_message(self.Closed())

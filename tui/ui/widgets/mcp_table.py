"""MCP servers of the selected request: tools, schema tokens, calls seen, on/off; space toggles one."""

from __future__ import annotations

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from tui.core.feed.control import ControlSnapshot
from tui.core.feed.views import McpServerRow
from tui.core.terminal_text import printable
from tui.ui.format import grouped
from tui.ui.keys import bindings

CANDIDATE_NOTE = "never called this session — candidate to switch off"


class McpTable(DataTable[Text | str]):
    """One row per MCP server; space asks the screen to switch the highlighted one (after a confirmation)."""

    BINDINGS = bindings("mcp")

    class ToggleRequested(Message):
        """The user wants the server switched (the screen confirms with the cost)."""

        def __init__(self, server: str) -> None:
            super().__init__()
            self.server = server

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row")
        self.rows_shown: tuple[McpServerRow, ...] = ()
        self.off_shown: frozenset[str] | None = None
        self.toggle_reason: str | None = None
        self.last_tokens: dict[str, int] = {}  # tokens per request of each server when last seen on

    def on_mount(self) -> None:
        """Columns."""
        for key, label in (
            ("server", "server"),
            ("tools", "tools"),
            ("tokens", "tokens/req"),
            ("calls", "calls"),
            ("state", "state"),
        ):
            self.add_column(label, key=key)

    def show(self, rows: tuple[McpServerRow, ...], control: ControlSnapshot | None = None) -> None:
        """Replace the rows when they (or the proxy's switches) changed."""
        off = control.mcp_off if control is not None else None
        if rows == self.rows_shown and off == self.off_shown:
            return
        self.rows_shown, self.off_shown = rows, off
        self.last_tokens.update({row.name: row.tokens for row in rows if row.tokens})
        cursor = self.cursor_row
        self.clear()
        for row in rows:
            switched_off = off is not None and row.name in off
            if switched_off:
                state = Text("off (switched off in the proxy)", style="bold")
            else:
                state = Text(row.state, style="bold" if row.state == "on" else "dim")
                if row.state == "on" and row.calls == 0:
                    state = Text.assemble((row.state, "bold"), (f" · {CANDIDATE_NOTE}", "italic"))
            self.add_row(
                Text(printable(row.name)),
                Text(str(row.tools), justify="right"),
                Text(grouped(row.tokens), justify="right"),
                Text(str(row.calls), justify="right"),
                state,
                key=row.name,
            )
        if rows:
            self.move_cursor(row=min(max(cursor, 0), len(rows) - 1), animate=False)
        self.refresh_bindings()

    def selected_server(self) -> str | None:
        """The highlighted server (None when the table is empty)."""
        if not self.rows_shown or self.cursor_row < 0:
            return None
        return self.rows_shown[min(self.cursor_row, len(self.rows_shown) - 1)].name

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The toggle greys out (with its reason on key press) when the proxy cannot switch servers."""
        if action == "toggle_server":
            return None if self.toggle_reason is not None or not self.rows_shown else True
        return True

    def action_toggle_server(self) -> None:
        """Ask the screen to confirm and switch."""
        server = self.selected_server()
        if server is not None:
            self.post_message(self.ToggleRequested(server))

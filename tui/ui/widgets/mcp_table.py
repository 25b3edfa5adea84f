"""MCP servers of the selected request: tools, schema tokens, calls seen, on/off (display only)."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from tui.core.feed.views import McpServerRow
from tui.ui.format import grouped

TOGGLE_REASON = "turning MCP servers on or off is not available yet in this version"


class McpTable(DataTable[Text | str]):
    """One row per MCP server; the on/off toggle is shown greyed with its reason."""

    BINDINGS = [Binding("space", "toggle_server", "Toggle server", id="mcp_toggle", tooltip=TOGGLE_REASON)]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row")
        self.rows_shown: tuple[McpServerRow, ...] = ()

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

    def show(self, rows: tuple[McpServerRow, ...]) -> None:
        """Replace the rows when they changed."""
        if rows == self.rows_shown:
            return
        self.rows_shown = rows
        cursor = self.cursor_row
        self.clear()
        for row in rows:
            state = Text(row.state, style="bold" if row.state == "on" else "dim")
            state.append("  (toggle: not available yet)", style="dim")
            self.add_row(
                row.name,
                Text(str(row.tools), justify="right"),
                Text(grouped(row.tokens), justify="right"),
                Text(str(row.calls), justify="right"),
                state,
                key=row.name,
            )
        if rows:
            self.move_cursor(row=min(cursor, len(rows) - 1), animate=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The toggle belongs to a later version: shown, greyed."""
        if action == "toggle_server":
            return None
        return True

    def action_toggle_server(self) -> None:
        """Never runs (check_action disables it); the app explains on key press."""
        self.notify(TOGGLE_REASON, severity="warning")
